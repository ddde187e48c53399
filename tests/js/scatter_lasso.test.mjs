// Lasso and box shapes (static/js/scatter/lasso.js): thinning, corners, and which shapes select.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  LASSO_GAP_PX,
  LASSO_MAX,
  extendShape,
  outlinePath,
  pointsInPolygon,
  selection,
  shapeVertices,
  startShape,
} from "../../static/js/scatter/lasso.js";

test("a lasso skips vertices closer than the gap to the previous one", () => {
  const d = startShape("lasso", { x: 0, y: 0 });
  extendShape(d, { x: 1, y: 1 }); // √2 < 3
  extendShape(d, { x: 3, y: 0 });
  extendShape(d, { x: 4, y: 0 });
  extendShape(d, { x: 6, y: 0 });
  assert.deepEqual(d.path, [{ x: 0, y: 0 }, { x: 3, y: 0 }, { x: 6, y: 0 }]);
  assert.equal(LASSO_GAP_PX, 3);
});

test("a long lasso keeps at most LASSO_MAX vertices, dropping every other one and doubling the gap", () => {
  const d = startShape("lasso", { x: 0, y: 0 });
  for (let k = 1; k <= 5000; k++) extendShape(d, { x: 10 * k, y: 0 });
  assert.ok(d.path.length <= LASSO_MAX);
  assert.ok(d.path.length > LASSO_MAX / 4);
  assert.ok(d.gap > LASSO_GAP_PX);
  assert.deepEqual(d.path[0], { x: 0, y: 0 });
  const steps = d.path.slice(1).map((p, k) => p.x - d.path[k].x);
  assert.ok(steps.every((s) => s >= 10));
});

test("a box's polygon is its four corners, from the press to the current point", () => {
  const d = startShape("box", { x: 10, y: 20 });
  assert.deepEqual(shapeVertices(d), [{ x: 10, y: 20 }, { x: 10, y: 20 }, { x: 10, y: 20 }, { x: 10, y: 20 }]);
  extendShape(d, { x: 30, y: 5 });
  assert.deepEqual(shapeVertices(d), [{ x: 10, y: 20 }, { x: 30, y: 20 }, { x: 30, y: 5 }, { x: 10, y: 5 }]);
  assert.equal(d.path.length, 1);
});

test("only a lasso of three vertices or more, and a box of non-zero area, select", () => {
  const lasso = startShape("lasso", { x: 0, y: 0 });
  extendShape(lasso, { x: 10, y: 0 });
  assert.equal(selection(lasso), null);
  extendShape(lasso, { x: 10, y: 10 });
  assert.equal(selection(lasso)?.length, 3);

  const flat = startShape("box", { x: 0, y: 0 });
  extendShape(flat, { x: 50, y: 0 });
  assert.equal(selection(flat), null);
  const box = startShape("box", { x: 0, y: 0 });
  extendShape(box, { x: 50, y: -2 });
  assert.equal(selection(box)?.length, 4);
});

test("the outline is a closed SVG path", () => {
  assert.equal(outlinePath([]), "");
  assert.equal(outlinePath([{ x: 0, y: 0 }, { x: 1.25, y: 2 }, { x: 3, y: 0.04 }]), "M0.0 0.0L1.3 2.0L3.0 0.0Z");
});

/**
 * Even–odd rule, one edge at a time over every edge (the server's rule, written plainly): the reference.
 * @param {number} x
 * @param {number} y
 * @param {number[][]} polygon
 */
function insideByRays(x, y, polygon) {
  let inside = false;
  for (let i = 0; i < polygon.length; i++) {
    const [x1, y1] = polygon[i], [x2, y2] = polygon[(i + 1) % polygon.length];
    if (y1 === y2) continue;
    const [bottom, top, bx] = y1 < y2 ? [y1, y2, x1] : [y2, y1, x2];
    if (y >= bottom && y < top && x < bx + ((y - bottom) * (x2 - x1)) / (y2 - y1)) inside = !inside;
  }
  return inside;
}

/** @param {number} seed */
function random(seed) {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
}

test("points in a polygon: the banded search finds exactly the points the plain even–odd rule does", () => {
  const next = random(7);
  const n = 20000;
  const pos = new Float32Array(2 * n).map(() => 4 * next() - 2);
  // A 250-pointed star (concave, many edges per height) and a self-intersecting bow tie.
  const star = Array.from({ length: 500 }, (_, k) => {
    const a = (2 * Math.PI * k) / 500, r = k % 2 ? 0.6 : 1.5;
    return [r * Math.cos(a), r * Math.sin(a)];
  });
  const bowTie = [[-1, -1], [1, 1], [1, -1], [-1, 1]];
  for (const polygon of [star, bowTie]) {
    const found = pointsInPolygon(pos, n, polygon, null);
    const expected = [];
    for (let i = 0; i < n; i++) {
      const x = Math.fround(pos[2 * i]), y = Math.fround(pos[2 * i + 1]);
      if (insideByRays(x, y, polygon)) expected.push(i);
    }
    assert.ok(expected.length > 1000);
    assert.deepEqual(Array.from(found), expected);
  }
});

test("points in a polygon: only the shown points, none for a degenerate polygon, NaN never inside", () => {
  const pos = new Float32Array([0, 0, 0.5, 0.5, NaN, 0, 5, 5]);
  const square = [[-1, -1], [1, -1], [1, 1], [-1, 1]];
  assert.deepEqual(Array.from(pointsInPolygon(pos, 4, square, null)), [0, 1]);
  assert.deepEqual(Array.from(pointsInPolygon(pos, 4, square, new Uint8Array([0, 1, 1, 1]))), [1]);
  assert.equal(pointsInPolygon(pos, 4, [[0, 0], [1, 0], [2, 0]], null).length, 0);
});
