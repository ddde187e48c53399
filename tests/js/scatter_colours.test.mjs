// Colour scales (static/js/scatter/colours.js): viridis, quantisation into levels, missing values, the palette.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  GREY,
  LEVELS,
  NO_LABEL,
  PALETTE,
  RAMP,
  RAMP_CSS,
  clipped,
  colourOf,
  domainOf,
  finiteBounds,
  hexToRgb,
  lutCss,
  paintLut,
  quantise,
} from "../../static/js/scatter/colours.js";

test("the ramp runs from viridis's dark purple to its yellow, one colour per level", () => {
  assert.equal(RAMP.length, LEVELS);
  assert.deepEqual(RAMP[0], [0x44, 0x01, 0x54]);
  assert.deepEqual(RAMP[LEVELS - 1], [0xfd, 0xe7, 0x25]);
  assert.ok(RAMP.every((c) => c.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)));
  // Perceptually uniform and rising in lightness: the green channel never falls.
  assert.ok(RAMP.every((c, k) => k === 0 || c[1] >= RAMP[k - 1][1]));
  assert.match(RAMP_CSS, /^linear-gradient\(to right, rgb\(68, 1, 84\) 0\.0%, .* rgb\(253, 231, 37\) 100\.0%\)$/);
});

test("values are quantised into equal bins of the domain, the ends clamped", () => {
  const values = new Float32Array([0, 0.5, 1, -3, 7, 0.25, 0.999]);
  const codes = new Uint16Array(values.length);
  quantise(values, [0, 1], codes);
  assert.deepEqual(Array.from(codes), [0, 128, 255, 0, 255, 64, 255]);
  // Equal bins: 4 evenly spaced values per bin land in that bin, none in the next.
  const even = Float32Array.from({ length: 4 * LEVELS }, (_, k) => (k + 0.5) / (4 * LEVELS));
  const levels = new Uint16Array(even.length);
  quantise(even, [0, 1], levels);
  assert.ok(levels.every((c, k) => c === Math.floor(k / 4)));
});

test("missing values (NaN, ±Infinity) get no level; a one-value domain puts everything in the middle", () => {
  const codes = new Uint16Array(4);
  quantise(new Float32Array([NaN, Infinity, -Infinity, 2]), [2, 2], codes);
  assert.deepEqual(Array.from(codes), [NO_LABEL, NO_LABEL, NO_LABEL, LEVELS / 2]);
});

test("the domain is the given pair in order, else the finite bounds of the values", () => {
  const values = [3, NaN, -1, Infinity, 2];
  assert.deepEqual(finiteBounds(values), [-1, 3]);
  assert.deepEqual(finiteBounds([NaN, Infinity]), [0, 1]);
  assert.deepEqual(domainOf([5, -5], values), [-5, 5]);
  assert.deepEqual(domainOf(["1", "2"], values), [1, 2]);
  assert.deepEqual(domainOf([0, NaN], values), [-1, 3]);
  assert.deepEqual(domainOf([0, 1, 2], values), [-1, 3]);
  assert.deepEqual(domainOf(null, values), [-1, 3]);
});

test("the lookup table: categorical codes cycle the palette, missing ones are grey; alpha is left alone", () => {
  const lut = new Uint8Array(65536 * 4).fill(7);
  paintLut(lut, false);
  assert.deepEqual(Array.from(lut.subarray(0, 4)), [...hexToRgb(PALETTE[0]), 7]);
  assert.equal(lutCss(lut, PALETTE.length + 2), lutCss(lut, 2));
  assert.equal(lutCss(lut, 3), `rgb(${hexToRgb(PALETTE[3]).join(", ")})`);
  assert.equal(lutCss(lut, NO_LABEL), `rgb(${GREY.join(", ")})`);
  assert.equal(colourOf(NO_LABEL), "#9aa0a6");
  assert.equal(colourOf(PALETTE.length + 1), PALETTE[1]);
});

test("the lookup table: continuous levels are the ramp, anything above them grey", () => {
  const lut = new Uint8Array(65536 * 4);
  paintLut(lut, true);
  assert.equal(lutCss(lut, 0), "rgb(68, 1, 84)");
  assert.equal(lutCss(lut, LEVELS - 1), "rgb(253, 231, 37)");
  assert.equal(lutCss(lut, LEVELS), `rgb(${GREY.join(", ")})`);
  assert.equal(lutCss(lut, NO_LABEL), `rgb(${GREY.join(", ")})`);
});

test("values beyond a domain are counted at each end; missing ones are not", () => {
  const values = Float32Array.from([-5, 0, 0.5, 1, 2, 3, NaN, Infinity, -Infinity]);
  assert.deepEqual(clipped(values, [0, 1]), [1, 2]);
  assert.deepEqual(clipped(values, [-10, 10]), [0, 0]);
});
