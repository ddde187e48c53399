// View maths (static/js/scatter/view.js): fitting, zoom limits, and data ↔ screen.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  MAX_ZOOM,
  MIN_ZOOM,
  boxAround,
  clampScale,
  fitted,
  niceTicks,
  placeOf,
  resized,
  toData,
  toScreen,
  viewOf,
  zoomAt,
} from "../../static/js/scatter/view.js";

const box = { minX: -50, maxX: 50, minY: -20, maxY: 20 };
/** @type {(a: number, b: number, eps?: number) => boolean} */
const near = (a, b, eps = 1e-9) => Math.abs(a - b) <= eps * Math.max(1, Math.abs(a), Math.abs(b));

/**
 * The screen box of the data box under a view.
 * @param {import("../../static/js/scatter/view.js").View} view
 */
function onScreen(view) {
  const a = toScreen(view, box.minX, box.maxY), b = toScreen(view, box.maxX, box.minY);
  return { left: a.x, top: a.y, right: b.x, bottom: b.y };
}

test("fitting shows every point, with a margin, centred, y up", () => {
  const view = fitted(800, 600, box, null);
  const s = onScreen(view);
  const m = Math.max(12, 0.05 * 600);
  assert.ok(near(s.left, m) && near(s.right, 800 - m)); // the width limits the scale
  assert.ok(s.top > m && s.bottom < 600 - m);
  assert.ok(near((s.top + s.bottom) / 2, 300));
  assert.ok(s.top < s.bottom); // maxY at the top
});

test("fitting keeps clear of a narrow legend, and ignores a wide one", () => {
  const plain = onScreen(fitted(800, 600, box, null));
  const narrow = onScreen(fitted(800, 600, box, 150));
  assert.ok(narrow.right <= 800 - 150 - 8 + 1e-9);
  assert.ok(near(narrow.left, plain.left));
  assert.deepEqual(onScreen(fitted(800, 600, box, 400)), plain);
});

test("a box of no width or height still fits", () => {
  const view = fitted(800, 600, { minX: -1, maxX: 1, minY: 0, maxY: 0 }, null);
  assert.ok(view.s > 0 && Number.isFinite(view.s));
  assert.ok(near(toScreen(view, 0, 0).y, 300));
  const point = fitted(800, 600, { minX: 0, maxX: 0, minY: 0, maxY: 0 }, null);
  assert.equal(point.s, 1);
  assert.deepEqual(toScreen(point, 0, 0), { x: 400, y: 300 });
});

test("zoom is clamped to MIN_ZOOM … MAX_ZOOM of the fitting scale", () => {
  assert.equal(clampScale(3, 2), 3);
  assert.equal(clampScale(0.01, 2), 2 * MIN_ZOOM);
  assert.equal(clampScale(1e9, 2), 2 * MAX_ZOOM);
});

test("zooming about a point keeps that point under the cursor", () => {
  const view = fitted(800, 600, box, null);
  const before = toData(view, { x: 0, y: 0 }, { x: 200, y: 150 });
  const zoomed = zoomAt(view, 200, 150, 3, view.s);
  assert.ok(near(zoomed.s, 3 * view.s));
  const after = toData(zoomed, { x: 0, y: 0 }, { x: 200, y: 150 });
  assert.ok(near(before[0], after[0]) && near(before[1], after[1]));
  assert.equal(zoomAt(view, 0, 0, 1e12, view.s).s, view.s * MAX_ZOOM);
});

test("data → screen → data is the identity, shift included", () => {
  const shift = { x: 110, y: 60 };
  const view = { s: 37.5, tx: 123.4, ty: 456.7 };
  for (const [x, y] of [[110, 60], [98.2, 71.9], [-3, 1e4]]) {
    const [bx, by] = toData(view, shift, toScreen(view, x - shift.x, y - shift.y));
    assert.ok(near(bx, x) && near(by, y), `${x}, ${y} came back as ${bx}, ${by}`);
  }
});

test("a view's public form round-trips, and its zoom is clamped on the way in", () => {
  const shift = { x: 110, y: 60 };
  const place = { x: 105, y: 55, zoom: 2 };
  const view = viewOf(place, 4, 800, 600, shift);
  assert.equal(view.s, 8);
  const back = placeOf(view, 4, 800, 600, shift);
  assert.ok(near(back.x, 105) && near(back.y, 55) && near(back.zoom, 2));
  assert.equal(placeOf(viewOf({ ...place, zoom: 1e7 }, 4, 800, 600, shift), 4, 800, 600, shift).zoom, MAX_ZOOM);
});

test("resizing keeps the centre in place", () => {
  const shift = { x: 0, y: 0 };
  const view = { s: 2, tx: 10, ty: 20 };
  const centre = placeOf(view, 1, 800, 600, shift);
  const bigger = placeOf(resized(view, 800, 600, 1000, 500), 1, 1000, 500, shift);
  assert.ok(near(centre.x, bigger.x) && near(centre.y, bigger.y) && centre.zoom === bigger.zoom);
});

test("the box around some points: their bounds, grown to a least share of the whole, null for none", () => {
  const pos = Float32Array.from([0, 0, 10, 5, -4, 2, NaN, 1]);
  const whole = { minX: -50, maxX: 50, minY: -20, maxY: 20 };
  assert.deepEqual(boxAround(pos, [0, 1, 2], whole), { minX: -4, maxX: 10, minY: 0, maxY: 5 });
  // One point: a box of 5% of the whole's width and height about it.
  assert.deepEqual(boxAround(pos, [1], whole), { minX: 7.5, maxX: 12.5, minY: 4, maxY: 6 });
  assert.equal(boxAround(pos, [3, 9, -1], whole), null);
  assert.equal(boxAround(pos, [], whole), null);
});

test("axis ticks: round steps of 1, 2 or 5 × 10^k inside the span", () => {
  assert.deepEqual(niceTicks(0, 10, 5), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(-0.33, 0.71, 5), [-0.2, 0, 0.2, 0.4, 0.6]);
  assert.deepEqual(niceTicks(-0.33, 0.71, 2), [0, 0.5]);
  assert.deepEqual(niceTicks(103.2, 104.9, 3), [103.5, 104, 104.5]);
  assert.deepEqual(niceTicks(1, 1, 5), []);
  assert.deepEqual(niceTicks(0, Infinity, 5), []);
  assert.ok(niceTicks(-1e6, 3e6, 6).every((t) => t % 1e6 === 0));
});
