// The hover index (static/js/scatter/grid.js): the nearest point within a radius, in focus first.
import assert from "node:assert/strict";
import { test } from "node:test";

import { buildGrid, nearest } from "../../static/js/scatter/grid.js";
import { centred } from "../../static/js/scatter/points.js";

/**
 * Points from [[x, y], …], centred as the widget uploads them, with their grid.
 * @param {number[][]} list
 */
function indexed(list) {
  const buffer = new Float32Array(list.flat()).buffer;
  const { points, shift, box } = centred(buffer, list.length);
  return { pos: points, shift, grid: buildGrid(points, list.length, box) };
}
const all = () => true;

test("every finite point is in exactly one cell, non-finite ones in none", () => {
  const list = Array.from({ length: 1000 }, (_, i) => [Math.cos(i) * i, Math.sin(i * 1.3) * 50]);
  list[10] = [NaN, 1];
  list[20] = [1, Infinity];
  const { grid } = indexed(list);
  const seen = Array.from(grid.items).sort((a, b) => a - b);
  assert.equal(seen.length, 998);
  assert.equal(new Set(seen).size, 998);
  assert.ok(!seen.includes(10) && !seen.includes(20));
  assert.equal(grid.start[grid.gx * grid.gy], 998);
});

test("finds the nearest point within the radius, and none beyond it", () => {
  const { pos, shift, grid } = indexed([[0, 0], [10, 0], [10, 1], [50, 50]]);
  /** @type {(x: number, y: number, r: number) => number} */
  const at = (x, y, r) => nearest(grid, pos, x - shift.x, y - shift.y, r, all);
  assert.equal(at(9, 0.2, 2), 1);
  assert.equal(at(10, 0.9, 2), 2);
  assert.equal(at(0.5, 0.5, 1), 0);
  assert.equal(at(30, 30, 5), -1);
  assert.equal(at(49, 49, 1), -1); // √2 away
  assert.equal(at(49, 49, 1.5), 3);
});

test("searches the neighbouring cells, not only the cursor's", () => {
  const list = Array.from({ length: 400 }, (_, i) => [i % 20, Math.floor(i / 20)]);
  const { pos, shift, grid } = indexed(list);
  assert.ok(grid.gx * grid.gy > 1);
  for (const [x, y] of [[3.4, 7.4], [19.2, 0.1], [0.4, 19.4], [9.6, 9.6]]) {
    const expected = Math.round(y) * 20 + Math.round(x);
    assert.equal(nearest(grid, pos, x - shift.x, y - shift.y, 0.9, all), expected, `at ${x}, ${y}`);
  }
});

test("a point in focus wins over a nearer one out of focus; the later of equals wins", () => {
  const { pos, shift, grid } = indexed([[0, 0], [1, 0], [0, 0]]);
  const x = 0.2 - shift.x, y = -shift.y;
  assert.equal(nearest(grid, pos, x, y, 2, all), 2); // 0 and 2 coincide: the one drawn on top
  assert.equal(nearest(grid, pos, x, y, 2, (i) => i === 1), 1);
  assert.equal(nearest(grid, pos, x, y, 2, (i) => i === 0), 0);
  assert.equal(nearest(grid, pos, x, y, 2, () => false), 2); // none in focus: the nearest
});

test("a grid of one point, or of points on a line, still answers", () => {
  const one = indexed([[5, 5]]);
  assert.equal(nearest(one.grid, one.pos, 0, 0, 0.1, all), 0);
  const line = indexed([[0, 3], [1, 3], [2, 3]]);
  assert.equal(nearest(line.grid, line.pos, 1.1 - line.shift.x, 3 - line.shift.y, 0.5, all), 1);
});
