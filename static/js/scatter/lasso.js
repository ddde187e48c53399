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
