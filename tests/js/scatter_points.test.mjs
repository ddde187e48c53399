// The points' arrays (static/js/scatter/points.js) and their formatting (format.js).
import assert from "node:assert/strict";
import { mock, test } from "node:test";

import { NO_LABEL } from "../../static/js/scatter/colours.js";
import { describe, fmt } from "../../static/js/scatter/format.js";
import { centred, sized, swapBytes } from "../../static/js/scatter/points.js";

test("coordinates are centred on the finite points' box, in place", () => {
  const buffer = new Float32Array([100, 50, 120, 70, NaN, 1e9, 110, 52]).buffer;
  const { points, shift, box } = centred(buffer, 4);
  assert.deepEqual(shift, { x: 110, y: 60 });
  assert.deepEqual(box, { minX: -10, maxX: 10, minY: -10, maxY: 10 });
  assert.equal(points.buffer, buffer);
  assert.deepEqual(Array.from(points.subarray(0, 4)), [-10, -10, 10, 10]);
  assert.ok(Number.isNaN(points[4]));
});

test("no finite point: nothing shifted, an empty box at 0", () => {
  const { shift, box } = centred(new Float32Array([NaN, 0]).buffer, 1);
  assert.deepEqual(shift, { x: 0, y: 0 });
  assert.deepEqual(box, { minX: 0, maxX: 0, minY: 0, maxY: 0 });
});

test("arrays of the wrong length are cut or padded with 'missing', with a warning", () => {
  const warn = mock.method(console, "warn", () => {});
  try {
    assert.deepEqual(Array.from(sized(Uint16Array, [1, 2, 3], 2, NO_LABEL, "codes")), [1, 2]);
    assert.deepEqual(Array.from(sized(Uint16Array, [1], 3, NO_LABEL, "codes")), [1, NO_LABEL, NO_LABEL]);
    const values = sized(Float32Array, new Float32Array([0.5]), 2, NaN, "values");
    assert.equal(values[0], 0.5);
    assert.ok(Number.isNaN(values[1]));
    assert.equal(warn.mock.callCount(), 3);
    assert.match(warn.mock.calls[0].arguments[0], /3 codes for 2 points/);
    sized(Uint16Array, [1, 2], 2, NO_LABEL, "codes");
    assert.equal(warn.mock.callCount(), 3);
  } finally {
    warn.mock.restore();
  }
});

test("byte swapping reverses each word", () => {
  const bytes = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  swapBytes(bytes.buffer, 4);
  assert.deepEqual(Array.from(bytes), [4, 3, 2, 1, 8, 7, 6, 5]);
  swapBytes(bytes.buffer, 2);
  assert.deepEqual(Array.from(bytes), [3, 4, 1, 2, 7, 8, 5, 6]);
});

test("numbers for people: four significant digits, exponents when very large or small", () => {
  assert.equal(fmt(3.14159), "3.142");
  assert.equal(fmt(0), "0");
  assert.equal(fmt(-1234567), "-1.23e+6");
  assert.equal(fmt(0.0001234), "1.23e-4");
  assert.equal(fmt(0.001), "0.001");
  assert.equal(fmt(NaN), "NaN");
  assert.equal(fmt(-Infinity), "-Infinity");
});

test("the tooltip's line: a label's name, or the value; missing ones said so", () => {
  /** @type {import("../../static/js/scatter/colours.js").Colouring} */
  const categorical = { kind: "categorical", title: "", names: ["cat", "dog"] };
  assert.equal(describe(categorical, 1, 0), "dog");
  assert.equal(describe(categorical, NO_LABEL, 0), "no label");
  assert.equal(describe(categorical, 7, 0), "7");
  assert.equal(describe({ ...categorical, title: "class" }, 0, 0), "class: cat");
  /** @type {import("../../static/js/scatter/colours.js").Colouring} */
  const continuous = {
    kind: "continuous",
    title: "",
    values: new Float32Array([2.5, NaN]),
    domain: [0, 1],
    scale: "min–max",
  };
  assert.equal(describe(continuous, 0, 0), "value: 2.5");
  assert.equal(describe({ ...continuous, title: "loss" }, NO_LABEL, 1), "loss: no value");
});
