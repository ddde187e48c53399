// @ts-check
// The hover index: a uniform grid over the points' bounding box, so finding the point under the cursor looks only at
// the few cells around it, never at all n points.

/**
 * Counting sort of the points by cell: the points of cell c are items[start[c] .. start[c + 1]).
 * @typedef {{gx: number, gy: number, x0: number, y0: number, cw: number, ch: number, start: Int32Array,
 *   items: Uint32Array}} Grid
 */

/**
 * The grid of n points (pos: x0, y0, x1, y1, …) in box, about four points a cell; points with a non-finite coordinate
 * are left out.
 * @param {Float32Array} pos
 * @param {number} n
 * @param {import("./points.js").Box} box
 * @returns {Grid}
 */
export function buildGrid(pos, n, box) {
  let w = box.maxX - box.minX, h = box.maxY - box.minY;
  if (!(w > 0)) w = h > 0 ? h : 1;
  if (!(h > 0)) h = w;
  const target = Math.max(1, n / 4); // about four points a cell
  const gx = Math.min(2048, Math.max(1, Math.round(Math.sqrt((target * w) / h))));
  const gy = Math.min(2048, Math.max(1, Math.round(target / gx)));
  const x0 = (box.minX + box.maxX) / 2 - w / 2, y0 = (box.minY + box.maxY) / 2 - h / 2;
  const cw = w / gx, ch = h / gy;
  const cellOf = new Int32Array(n);
  const start = new Int32Array(gx * gy + 1);
  for (let i = 0; i < n; i++) {
    const x = pos[2 * i], y = pos[2 * i + 1];
    if (!Number.isFinite(x) || !Number.isFinite(y)) {
      cellOf[i] = -1;
      continue;
    }
    const cx = Math.min(gx - 1, Math.max(0, Math.floor((x - x0) / cw)));
    const cy = Math.min(gy - 1, Math.max(0, Math.floor((y - y0) / ch)));
    const c = cy * gx + cx;
    cellOf[i] = c;
    start[c + 1]++;
  }
  for (let c = 0; c < gx * gy; c++) start[c + 1] += start[c];
  const fill = start.slice(0, gx * gy);
  const items = new Uint32Array(start[gx * gy]);
  for (let i = 0; i < n; i++) if (cellOf[i] >= 0) items[fill[cellOf[i]]++] = i;
  return { gx, gy, x0, y0, cw, ch, start, items };
}

/**
 * The point nearest (x, y) within distance r (-1: none). Points in focus win over the others; among equally near
 * ones the later wins, as later points are drawn on top.
 * @param {Grid} g
 * @param {Float32Array} pos
 * @param {number} x
 * @param {number} y
 * @param {number} r
 * @param {(i: number) => boolean} inFocus
 */
export function nearest(g, pos, x, y, r, inFocus) {
  const cx0 = Math.max(0, Math.floor((x - r - g.x0) / g.cw)), cx1 = Math.min(g.gx - 1, Math.floor((x + r - g.x0) / g.cw));
  const cy0 = Math.max(0, Math.floor((y - r - g.y0) / g.ch)), cy1 = Math.min(g.gy - 1, Math.floor((y + r - g.y0) / g.ch));
  let best = -1, bestD = r * r, bestFocus = false;
  for (let cy = cy0; cy <= cy1; cy++) {
    for (let cx = cx0; cx <= cx1; cx++) {
      const c = cy * g.gx + cx;
      for (let k = g.start[c], end = g.start[c + 1]; k < end; k++) {
        const i = g.items[k];
        const dx = pos[2 * i] - x, dy = pos[2 * i + 1] - y, d = dx * dx + dy * dy;
        if (d > r * r) continue;
        const focus = inFocus(i);
        if ((focus && !bestFocus) || (focus === bestFocus && (d < bestD || (d === bestD && i > best)))) {
          best = i;
          bestD = d;
          bestFocus = focus;
        }
      }
    }
  }
  return best;
}
