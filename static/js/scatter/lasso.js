// @ts-check
// The shapes a drag draws to select points: a lasso (a polygon of the cursor's path) or a box, in CSS px of the canvas.

export const LASSO_GAP_PX = 3; // a lasso vertex closer than this to the previous one is skipped…
export const LASSO_MAX = 500; // …and a lasso keeps at most this many (every other one is dropped when it would get more)

/** @typedef {{x: number, y: number}} Point */
/**
 * A lasso's vertices (kept at least `gap` apart), or a box's first corner in path[0] and its other one in end.
 * @typedef {{kind: "lasso" | "box", path: Point[], gap: number, end?: Point}} Shape
 */

/**
 * @param {"lasso" | "box"} kind
 * @param {Point} at where the drag started
 * @returns {Shape}
 */
export function startShape(kind, at) {
  return { kind, path: [at], gap: LASSO_GAP_PX };
}

/**
 * Box: the press point and the current one. Lasso: vertices at least `gap` apart, at most LASSO_MAX of them (past
 * that, every other one is dropped and the gap doubles), so a long drag stays cheap to draw and to send.
 * @param {Shape} d
 * @param {Point} at
 */
export function extendShape(d, at) {
  if (d.kind === "box") {
    d.end = at;
    return;
  }
  const last = d.path[d.path.length - 1];
  if (Math.hypot(at.x - last.x, at.y - last.y) < d.gap) return;
  d.path.push(at);
  if (d.path.length > LASSO_MAX) {
    d.path = d.path.filter((_, k) => k % 2 === 0);
    d.gap *= 2;
  }
}

/**
 * The shape's polygon: the lasso's vertices, or the box's four corners.
 * @param {Shape} d
 * @returns {Point[]}
 */
export function shapeVertices(d) {
  if (d.kind === "lasso") return d.path;
  const a = d.path[0], b = d.end || a;
  return [a, { x: b.x, y: a.y }, b, { x: a.x, y: b.y }];
}

/**
 * The polygon a released shape selects with: a lasso of at least 3 vertices, a box of non-zero area; else null.
 * @param {Shape} d
 * @returns {Point[] | null}
 */
export function selection(d) {
  const v = shapeVertices(d);
  if (d.kind === "lasso") return v.length < 3 ? null : v;
  return Math.abs((v[2].x - v[0].x) * (v[2].y - v[0].y)) > 0 ? v : null;
}

/**
 * The SVG path of a polygon's outline ("" for none).
 * @param {Point[]} v
 */
export function outlinePath(v) {
  return v.length ? `M${v.map((p) => `${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join("L")}Z` : "";
}

/**
 * Ascending indices of the points (pos: x0, y0, x1, y1, …) inside polygon (vertices [x, y] in the same frame), among
 * those shown (1 in `shown`; null: all), by the even–odd rule the server uses (analysis/explorer/selections.py): a
 * point is inside when a ray to its left crosses an odd number of edges, an edge counting for the points with
 * bottom ≤ y < top. Points outside the polygon's bounding box are skipped first; the edges are sorted into horizontal
 * bands so each point tests only the edges level with it: O(n + edges in a band per candidate), no allocation per
 * point.
 * @param {Float32Array} pos
 * @param {number} n
 * @param {number[][]} polygon
 * @param {Uint8Array | null} shown
 * @returns {Uint32Array}
 */
export function pointsInPolygon(pos, n, polygon, shown = null) {
  const m = polygon.length;
  let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  for (const [x, y] of polygon) {
    if (x < minX) minX = x;
    if (x > maxX) maxX = x;
    if (y < minY) minY = y;
    if (y > maxY) maxY = y;
  }
  if (m < 3 || !(maxX >= minX && maxY > minY)) return new Uint32Array(0);
  const bands = Math.max(1, Math.min(4096, 2 * m));
  const bandH = (maxY - minY) / bands;
  /** @param {number} y */
  const bandOf = (y) => Math.min(bands - 1, Math.max(0, Math.floor((y - minY) / bandH)));
  // Each non-horizontal edge: its bottom y, top y, x at the bottom and dx/dy, listed in every band it spans.
  const edges = [];
  const perBand = new Int32Array(bands + 1);
  for (let i = 0; i < m; i++) {
    const [x1, y1] = polygon[i], [x2, y2] = polygon[(i + 1) % m];
    if (y1 === y2) continue; // a horizontal edge is never level with a point by the half-open rule
    const up = y1 < y2;
    const edge = { bottom: up ? y1 : y2, top: up ? y2 : y1, x: up ? x1 : x2, slope: (x2 - x1) / (y2 - y1) };
    edges.push(edge);
    for (let b = bandOf(edge.bottom); b <= bandOf(edge.top); b++) perBand[b + 1]++;
  }
  for (let b = 0; b < bands; b++) perBand[b + 1] += perBand[b];
  const fill = perBand.slice(0, bands);
  const total = perBand[bands];
  const bottom = new Float64Array(total), top = new Float64Array(total), ex = new Float64Array(total);
  const slope = new Float64Array(total);
  for (const e of edges) {
    for (let b = bandOf(e.bottom); b <= bandOf(e.top); b++) {
      const k = fill[b]++;
      bottom[k] = e.bottom;
      top[k] = e.top;
      ex[k] = e.x;
      slope[k] = e.slope;
    }
  }
  let out = new Uint32Array(1024), count = 0;
  for (let i = 0; i < n; i++) {
    const x = pos[2 * i], y = pos[2 * i + 1];
    if (!(x >= minX && x <= maxX && y >= minY && y <= maxY)) continue; // NaN fails too
    if (shown && !shown[i]) continue;
    const b = bandOf(y);
    let inside = false;
    for (let k = perBand[b], end = perBand[b + 1]; k < end; k++) {
      if (y >= bottom[k] && y < top[k] && x < ex[k] + (y - bottom[k]) * slope[k]) inside = !inside;
    }
    if (!inside) continue;
    if (count === out.length) {
      const grown = new Uint32Array(out.length * 2);
      grown.set(out);
      out = grown;
    }
    out[count++] = i;
  }
  return out.slice(0, count);
}
