// @ts-check
// The points' arrays as served: byte order, arrays of the wrong length, and the coordinates centred on 0.

/** @typedef {{minX: number, maxX: number, minY: number, maxY: number}} Box */
/** @typedef {{x: number, y: number}} Shift */

export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Reverses the bytes of each `width`-byte word of buffer, in place (the files are little-endian).
 * @param {ArrayBufferLike} buffer
 * @param {number} width
 */
export function swapBytes(buffer, width) {
  const b = new Uint8Array(buffer);
  for (let i = 0; i + width <= b.length; i += width) {
    for (let j = 0; j < width / 2; j++) {
      const t = b[i + j];
      b[i + j] = b[i + width - 1 - j];
      b[i + width - 1 - j] = t;
    }
  }
}

/**
 * A copy of `given` as a Type array of length n, cut or padded with `fill` (with a warning when the length is off).
 * @template {Float32Array | Uint16Array} T
 * @param {new (n: number) => T} Type
 * @param {ArrayLike<number> & {slice(start: number, end: number): ArrayLike<number>}} given
 * @param {number} n
 * @param {number} fill
 * @param {string} what named in the warning
 * @returns {T}
 */
export function sized(Type, given, n, fill, what) {
  const out = new Type(n);
  out.fill(fill);
  const k = Math.min(n, given.length);
  if (given.length !== n) console.warn(`scatter: ${given.length} ${what} for ${n} points`);
  out.set(given.length > k ? given.slice(0, k) : given);
  return out;
}

/**
 * The n points of a coordinates buffer (little-endian float32 x0, y0, x1, y1, …; byte-swapped in place if need be),
 * shifted in place to be centred on 0 so float32 keeps its precision when zoomed in; with the shift (add it back for
 * data coordinates as served) and the bounding box of the finite points after the shift.
 * @param {ArrayBuffer} buffer
 * @param {number} n
 * @returns {{points: Float32Array<ArrayBuffer>, shift: Shift, box: Box}}
 */
export function centred(buffer, n) {
  if (!LITTLE_ENDIAN) swapBytes(buffer, 4);
  const points = new Float32Array(buffer, 0, n * 2);
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = points[2 * i], y = points[2 * i + 1];
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    if (x < minX) minX = x;
    if (x > maxX) maxX = x;
    if (y < minY) minY = y;
    if (y > maxY) maxY = y;
  }
  if (minX > maxX) minX = maxX = minY = maxY = 0;
  const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
  if (cx !== 0 || cy !== 0) {
    for (let i = 0; i < n; i++) {
      points[2 * i] -= cx;
      points[2 * i + 1] -= cy;
    }
  }
  return {
    points,
    shift: { x: cx, y: cy },
    box: { minX: minX - cx, maxX: maxX - cx, minY: minY - cy, maxY: maxY - cy },
  };
}
