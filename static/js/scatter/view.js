// @ts-check
// View maths. A view maps (shifted) data (x, y) to CSS px in the canvas: (x·s + tx, −y·s + ty); one scale for both
// axes. Zoom is the scale relative to the one that fits all the points, clamped to MIN_ZOOM … MAX_ZOOM.

/** @typedef {{s: number, tx: number, ty: number}} View */
/** @typedef {{x: number, y: number, zoom: number}} Place the public form: the centre in data as served, and zoom */
/** @typedef {import("./points.js").Box} Box */
/** @typedef {import("./points.js").Shift} Shift */

export const MIN_ZOOM = 0.2;
export const MAX_ZOOM = 1e4;

/**
 * The view that shows every point of box in a canvas of width × height CSS px, clear of the legend (top right, its
 * width in CSS px; null when there is none) when that leaves the points most of the width.
 * @param {number} width
 * @param {number} height
 * @param {Box} box
 * @param {number | null} legendWidth
 * @returns {View}
 */
export function fitted(width, height, box, legendWidth) {
  const m = Math.max(12, 0.05 * Math.min(width, height));
  const lw = legendWidth === null ? 0 : legendWidth + 8;
  const right = lw && lw < 0.35 * width ? Math.max(m, lw + 8) : m;
  const sx = (width - m - right) / (box.maxX - box.minX), sy = (height - 2 * m) / (box.maxY - box.minY);
  let s = Math.min(sx, sy);
  if (!(s > 0 && Number.isFinite(s))) s = [sx, sy].find((v) => v > 0 && Number.isFinite(v)) || 1;
  return {
    s,
    tx: (width + m - right) / 2 - (s * (box.minX + box.maxX)) / 2,
    ty: height / 2 + (s * (box.minY + box.maxY)) / 2,
  };
}

/**
 * A scale clamped to MIN_ZOOM … MAX_ZOOM times the fitting one.
 * @param {number} s
 * @param {number} fitScale
 */
export function clampScale(s, fitScale) {
  return Math.min(fitScale * MAX_ZOOM, Math.max(fitScale * MIN_ZOOM, s));
}

/**
 * The view zoomed by factor (then clamped) about (mx, my) CSS px, which stays over the same data point.
 * @param {View} view
 * @param {number} mx
 * @param {number} my
 * @param {number} factor
 * @param {number} fitScale
 * @returns {View}
 */
export function zoomAt(view, mx, my, factor, fitScale) {
  const s = clampScale(view.s * factor, fitScale);
  const f = s / view.s;
  return { s, tx: mx - (mx - view.tx) * f, ty: my - (my - view.ty) * f };
}

/**
 * CSS px in the canvas → data coordinates as served.
 * @param {View} view
 * @param {Shift} shift
 * @param {{x: number, y: number}} p
 * @returns {[number, number]}
 */
export function toData(view, shift, p) {
  return [(p.x - view.tx) / view.s + shift.x, (view.ty - p.y) / view.s + shift.y];
}

/**
 * Shifted data coordinates (as uploaded) → CSS px in the canvas.
 * @param {View} view
 * @param {number} x
 * @param {number} y
 */
export function toScreen(view, x, y) {
  return { x: x * view.s + view.tx, y: view.ty - y * view.s };
}

/**
 * The view of scale s that puts the data point (x, y) (as served) at the centre of a width × height canvas.
 * @param {number} x
 * @param {number} y
 * @param {number} s
 * @param {number} width
 * @param {number} height
 * @param {Shift} shift
 * @returns {View}
 */
export function centredOn(x, y, s, width, height, shift) {
  return { s, tx: width / 2 - s * (x - shift.x), ty: height / 2 + s * (y - shift.y) };
}

/**
 * The public form of a view: the data coordinates (as served) of the canvas centre, and the zoom.
 * @param {View} view
 * @param {number} fitScale
 * @param {number} width
 * @param {number} height
 * @param {Shift} shift
 * @returns {Place}
 */
export function placeOf(view, fitScale, width, height, shift) {
  const [x, y] = toData(view, shift, { x: width / 2, y: height / 2 });
  return { x, y, zoom: view.s / fitScale };
}

/**
 * A view of the public form (zoom clamped).
 * @param {Place} place
 * @param {number} fitScale
 * @param {number} width
 * @param {number} height
 * @param {Shift} shift
 * @returns {View}
 */
export function viewOf(place, fitScale, width, height, shift) {
  return centredOn(place.x, place.y, clampScale(place.zoom * fitScale, fitScale), width, height, shift);
}

/**
 * The view kept centred on the same point when the canvas changes from oldW × oldH to width × height CSS px.
 * @param {View} view
 * @param {number} oldW
 * @param {number} oldH
 * @param {number} width
 * @param {number} height
 * @returns {View}
 */
export function resized(view, oldW, oldH, width, height) {
  return { s: view.s, tx: view.tx + (width - oldW) / 2, ty: view.ty + (height - oldH) / 2 };
}

/**
 * The box to fit to show some points: the bounding box of the finite ones among indices (into pos, x,y interleaved),
 * grown about its centre to at least `least` of the whole box's width and height (so that one point is not shown at
 * the greatest zoom); null when none of them is a finite point.
 * @param {Float32Array} pos
 * @param {ArrayLike<number>} indices
 * @param {Box} whole
 * @param {number} [least]
 * @returns {Box | null}
 */
export function boxAround(pos, indices, whole, least = 0.05) {
  let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  const n = pos.length / 2;
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    if (!(i >= 0 && i < n)) continue;
    const x = pos[2 * i], y = pos[2 * i + 1];
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    if (x < minX) minX = x;
    if (x > maxX) maxX = x;
    if (y < minY) minY = y;
    if (y > maxY) maxY = y;
  }
  if (minX > maxX) return null;
  const w = Math.max(maxX - minX, least * (whole.maxX - whole.minX));
  const h = Math.max(maxY - minY, least * (whole.maxY - whole.minY));
  const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
  return { minX: cx - w / 2, maxX: cx + w / 2, minY: cy - h / 2, maxY: cy + h / 2 };
}

/**
 * Round numbers for an axis over [lo, hi]: steps of 1, 2 or 5 × 10ᵏ, about `count` of them (at least two ticks
 * whenever the span is positive); [] for an empty or non-finite span.
 * @param {number} lo
 * @param {number} hi
 * @param {number} count
 * @returns {number[]}
 */
export function niceTicks(lo, hi, count) {
  const span = hi - lo;
  if (!(span > 0) || !Number.isFinite(span)) return [];
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => span / s <= count + 1) || 10 * power;
  const out = [];
  for (let k = Math.ceil(lo / step); k * step <= hi; k++) out.push(Number((k * step).toPrecision(12)));
  return out;
}
