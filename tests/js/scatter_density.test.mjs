// The density rendering's maths (static/js/scatter/density.js): where a frame drawn for one view lies under another,
// the adaptive chunk, the reference count and the opacity.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  FRAME_MS,
  MIN_CHUNK,
  nextChunk,
  opacity,
  pointSize,
  referenceCount,
  textureTransform,
} from "../../static/js/scatter/density.js";

/**
 * Device px (origin bottom left) of data point (x, y) in a view (data → CSS px: x·s + tx, −y·s + ty).
 * @param {{s: number, tx: number, ty: number}} v
 * @param {number} x
 * @param {number} y
 * @param {number} dpr
 * @param {number} heightPx
 */
const device = (v, x, y, dpr, heightPx) => [dpr * (x * v.s + v.tx), heightPx - dpr * (-y * v.s + v.ty)];

test("a texture drawn for one view is sampled where each data point lies in it", () => {
  const then = { s: 40, tx: 300, ty: 200 }, now = { s: 95, tx: -120, ty: 410 };
  for (const dpr of [1, 2]) {
    const heightPx = 600 * dpr;
    const t = textureTransform(then, now, dpr, heightPx);
    for (const [x, y] of [[0, 0], [3.5, -2], [-7, 11]]) {
      const [X, Y] = device(now, x, y, dpr, heightPx);
      const [QX, QY] = device(then, x, y, dpr, heightPx);
      assert.ok(Math.abs(t.k * X + t.dx - QX) < 1e-9 && Math.abs(t.k * Y + t.dy - QY) < 1e-9);
    }
  }
  assert.deepEqual(textureTransform(then, then, 1, 600), { k: 1, dx: 0, dy: 0 });
});

test("the chunk shrinks after a late frame, grows after a quick one, and stays within its bounds", () => {
  assert.ok(nextChunk(100000, 3 * FRAME_MS, 1e6) < 100000);
  assert.ok(nextChunk(100000, FRAME_MS, 1e6) > 100000);
  assert.equal(nextChunk(100000, 1.1 * FRAME_MS, 1e6), 100000);
  assert.equal(nextChunk(MIN_CHUNK, 1000, 1e6), MIN_CHUNK);
  assert.equal(nextChunk(900000, 1, 1e6), 1e6);
});

test("the reference count is the 99th percentile of the non-zero counts per CSS px", () => {
  // 100 pixels with one point each and one pixel with 500: the 99th percentile of 101 counts is 1.
  const pos = [];
  for (let i = 0; i < 100; i++) pos.push(i + 0.5, 0.5);
  for (let i = 0; i < 500; i++) pos.push(50.25, 10.5);
  const box = { minX: 0, maxX: 100, minY: 0, maxY: 11 };
  assert.equal(referenceCount(new Float32Array(pos), pos.length / 2, box, 1), 1);
  // Every point on one pixel: that count.
  assert.equal(referenceCount(new Float32Array(40).fill(0.5), 20, { minX: 0, maxX: 1, minY: 0, maxY: 1 }, 1), 20);
});

test("opacity: none without points, half for one among many, full at the reference and above", () => {
  assert.equal(opacity(0, 10), 0);
  assert.ok(Math.abs(opacity(1, 1e9) - 0.5) < 0.02);
  assert.equal(opacity(10, 10), 1);
  assert.equal(opacity(1000, 10), 1);
  assert.ok(opacity(2, 10) < opacity(5, 10));
  assert.equal(pointSize(1, 2), 2);
  assert.equal(pointSize(100, 1), 4);
});
