// What is in focus (static/js/scatter/filter.js): the legend's filters, highlights, and how they combine.
import assert from "node:assert/strict";
import { test } from "node:test";

import { NO_LABEL } from "../../static/js/scatter/colours.js";
import {
  countCodes,
  filterOf,
  focus,
  inFocus,
  marks,
  outside,
  packMask,
  passing,
  toCodes,
  toRange,
  toggled,
} from "../../static/js/scatter/filter.js";

test("a continuous filter: ordered ends, open ends as ±Infinity, none when both are open", () => {
  assert.deepEqual(toRange([2, 1]), [1, 2]);
  assert.deepEqual(toRange([null, 3]), [-Infinity, 3]);
  assert.deepEqual(toRange(["", "4.5"]), [-Infinity, 4.5]);
  assert.deepEqual(toRange(["0", "abc"]), [0, Infinity]);
  assert.deepEqual(toRange([-Infinity, 1]), [-Infinity, 1]);
  assert.equal(toRange([null, undefined]), null);
  assert.equal(toRange([5]), null);
  assert.equal(toRange(null), null);
});

test("a categorical filter keeps the integer codes only", () => {
  assert.deepEqual(Array.from(toCodes([3, "1", 1.5, -1, NO_LABEL, NO_LABEL + 1, "x"])).sort(), [1, 3, NO_LABEL].sort());
  assert.equal(toCodes(null).size, 0);
  assert.deepEqual(Array.from(toCodes(new Uint16Array([2, 2]))), [2]);
});

test("a legend toggle adds a code, or removes it when it was in", () => {
  const on = new Set([1, 4]);
  assert.deepEqual(toggled(on, 2).sort(), [1, 2, 4]);
  assert.deepEqual(toggled(on, 4), [1]);
  assert.deepEqual(Array.from(on), [1, 4]); // not changed in place
});

test("getFilter's form: codes ascending, or a copy of the range", () => {
  assert.deepEqual(filterOf("categorical", new Set([9, 2, 5]), null), [2, 5, 9]);
  assert.deepEqual(filterOf("categorical", new Set(), [0, 1]), []);
  /** @type {[number, number]} */
  const range = [0, Infinity];
  const got = filterOf("continuous", new Set([1]), range);
  assert.deepEqual(got, [0, Infinity]);
  assert.notEqual(got, range);
  assert.equal(filterOf("continuous", new Set(), null), null);
});

test("a highlight marks each valid index once", () => {
  const { marked, count } = marks([0, 2, 2, -1, 5, 1.5, "3"], 5);
  assert.deepEqual(Array.from(marked), [1, 0, 1, 1, 0]);
  assert.equal(count, 3);
  assert.equal(marks(new Set([1]), 3).count, 1);
  assert.equal(marks([], 3).count, 0);
});

test("in focus = passes the categorical filter", () => {
  const lut = new Uint8Array(65536 * 4);
  const codes = new Uint16Array([0, 1, 2, NO_LABEL]);
  const sel = new Uint8Array(4);
  let dimming = focus(lut, sel, { codes: new Set(), values: null, range: null, marked: null });
  assert.equal(dimming, false);
  assert.deepEqual([0, 1, 2, 3].map((i) => inFocus(lut, sel, codes, i)), [true, true, true, true]);
  dimming = focus(lut, sel, { codes: new Set([1, NO_LABEL]), values: null, range: null, marked: null });
  assert.equal(dimming, true);
  assert.deepEqual([0, 1, 2, 3].map((i) => inFocus(lut, sel, codes, i)), [false, true, false, true]);
});

test("in focus = inside the range AND highlighted; missing values never pass a range", () => {
  const lut = new Uint8Array(65536 * 4);
  const sel = new Uint8Array(5);
  const values = new Float32Array([0, 1, 2, NaN, 3]);
  focus(lut, sel, { codes: null, values, range: [1, 2], marked: null });
  assert.deepEqual(Array.from(sel), [0, 1, 1, 0, 0]);
  focus(lut, sel, { codes: null, values, range: [1, Infinity], marked: new Uint8Array([1, 1, 0, 1, 1]) });
  assert.deepEqual(Array.from(sel), [0, 1, 0, 0, 1]);
  const dimming = focus(lut, sel, { codes: null, values, range: null, marked: null });
  assert.deepEqual(Array.from(sel), [1, 1, 1, 1, 1]); // no range: missing values are in focus
  assert.equal(dimming, false);
  assert.equal(focus(lut, sel, { codes: null, values, range: null, marked: new Uint8Array(5) }), true);
  assert.deepEqual(Array.from(sel), [0, 0, 0, 0, 0]); // an empty highlight: nothing in focus
});

test("the legend's bar masks: the shares of the domain below and above the range", () => {
  assert.deepEqual(outside(null, [0, 10]), [0, 0]);
  assert.deepEqual(outside([2, 7], [0, 10]), [0.2, 0.30000000000000004]);
  assert.deepEqual(outside([-Infinity, 20], [0, 10]), [0, 0]);
  assert.deepEqual(outside([1, 1], [1, 1]), [0, 1]);
});

test("the legend's counts by code", () => {
  assert.deepEqual(Array.from(countCodes(new Uint16Array([0, 2, 2, NO_LABEL, 5]), 3)), [1, 0, 2]);
});

test("the points the filter alone passes: codes, a range (missing values fail it), both; null without a filter", () => {
  const codes = Uint16Array.from([0, 1, 2, 1, NO_LABEL]);
  assert.equal(passing(codes, { codes: new Set(), values: null, range: null }), null);
  assert.deepEqual(Array.from(passing(codes, { codes: new Set([1]), values: null, range: null }) || []), [0, 1, 0, 1, 0]);
  const values = Float32Array.from([0.1, 0.5, NaN, 0.9, 0.5]);
  const byRange = passing(codes, { codes: null, values, range: [0.4, 0.9] });
  assert.deepEqual(Array.from(byRange || []), [0, 1, 0, 1, 1]);
  const both = passing(codes, { codes: new Set([1, 2]), values, range: [0.4, 0.6] });
  assert.deepEqual(Array.from(both || []), [0, 1, 0, 0, 0]);
});

test("a mask packs into base64 bits, least significant bit first", () => {
  const mask = new Uint8Array(10);
  mask[0] = mask[3] = mask[9] = 1;
  const bytes = Buffer.from(packMask(mask), "base64");
  assert.deepEqual(Array.from(bytes), [0b00001001, 0b00000010]);
  assert.equal(packMask(new Uint8Array(0)), "");
  const big = new Uint8Array(300000).fill(1);
  assert.equal(Buffer.from(packMask(big), "base64").length, 37500);
});
