// @ts-check
// What is in focus. A point is in focus iff it passes the filter AND (no highlight is set OR it is highlighted): the
// categorical filter is a set of codes (empty = none), the continuous one an inclusive range [lo, hi] (null = none).

import { NO_LABEL } from "./colours.js";

/** @typedef {[number, number]} Range */

/**
 * The range of a filter given for a continuous colouring: [lo, hi] in either order, an end that is null, undefined,
 * "" or not a number is open (±Infinity); null when both ends are open or f is not a pair.
 * @param {ArrayLike<unknown> | null | undefined} f
 * @returns {Range | null}
 */
export function toRange(f) {
  if (!f || f.length < 2) return null;
  /** @type {(v: unknown, open: number) => number} */
  const end = (v, open) => (v === null || v === undefined || v === "" || Number.isNaN(Number(v)) ? open : Number(v));
  const lo = end(f[0], -Infinity), hi = end(f[1], Infinity);
  if (lo === -Infinity && hi === Infinity) return null;
  return [Math.min(lo, hi), Math.max(lo, hi)];
}

/**
 * The codes of a filter given for a categorical colouring (anything not an integer code is dropped).
 * @param {Iterable<unknown> | ArrayLike<unknown> | null | undefined} f
 * @returns {Set<number>}
 */
export function toCodes(f) {
  /** @param {number} v */
  const ok = (v) => Number.isInteger(v) && v >= 0 && v <= NO_LABEL;
  return new Set(Array.from(f || [], Number).filter(ok));
}

/**
 * The filter a legend toggle asks for: the codes with `code` added, or removed when it was in.
 * @param {Set<number>} codes
 * @param {number} code
 */
export function toggled(codes, code) {
  const next = new Set(codes);
  if (next.has(code)) next.delete(code);
  else next.add(code);
  return Array.from(next);
}

/**
 * The filter as getFilter() reports it: continuous → a copy of the range or null; categorical → the codes, ascending.
 * @param {"categorical" | "continuous"} kind
 * @param {Set<number>} codes
 * @param {Range | null} range
 * @returns {number[] | null}
 */
export function filterOf(kind, codes, range) {
  if (kind === "continuous") return range ? range.slice() : null;
  return Array.from(codes).sort((a, b) => a - b);
}

/**
 * The points highlight(indices) marks among n (1 = marked; out-of-range and non-integer indices are ignored), and
 * how many.
 * @param {ArrayLike<unknown> | Iterable<unknown>} indices
 * @param {number} n
 */
export function marks(indices, n) {
  const list = /** @type {ArrayLike<unknown>} */ (
    /** @type {ArrayLike<unknown>} */ (indices).length !== undefined ? indices : Array.from(indices)
  );
  const marked = new Uint8Array(n);
  let count = 0;
  for (let k = 0; k < list.length; k++) {
    const i = Number(list[k]);
    if (Number.isInteger(i) && i >= 0 && i < n && !marked[i]) {
      marked[i] = 1;
      count++;
    }
  }
  return { marked, count };
}

/**
 * Writes what is in focus: the lookup table's alpha (255 when a code passes the categorical filter, or none is on)
 * and sel (1 when a point is highlighted or no highlight is set, and its value is inside the range when one is given;
 * missing values fail it). Returns whether any point can be out of focus (then the grey pass is drawn).
 * @param {Uint8Array} lut 65536 RGBA entries
 * @param {Uint8Array} sel one per point
 * @param {{codes: Set<number> | null, values: ArrayLike<number> | null, range: Range | null,
 *   marked: Uint8Array | null}} filter codes: the categorical filter (null when colouring is continuous); values and
 *   range: the continuous filter (null when none)
 */
export function focus(lut, sel, { codes, values, range, marked }) {
  const byCode = codes !== null && codes.size > 0;
  for (let v = 0; v < 65536; v++) lut[v * 4 + 3] = !byCode || /** @type {Set<number>} */ (codes).has(v) ? 255 : 0;
  const byValue = values && range ? values : null;
  const lo = range ? range[0] : 0, hi = range ? range[1] : 0;
  for (let i = 0; i < sel.length; i++) {
    let f = marked ? marked[i] : 1;
    if (f && byValue) f = Number.isFinite(byValue[i]) && byValue[i] >= lo && byValue[i] <= hi ? 1 : 0;
    sel[i] = f;
  }
  return byCode || byValue !== null || marked !== null;
}

/**
 * Whether point i is in focus, as focus() left lut and sel.
 * @param {Uint8Array} lut
 * @param {Uint8Array} sel
 * @param {Uint16Array} codes
 * @param {number} i
 */
export function inFocus(lut, sel, codes, i) {
  return sel[i] !== 0 && lut[codes[i] * 4 + 3] !== 0;
}

/**
 * The shares of the domain a range leaves out below and above it (for the masks over the legend's gradient bar).
 * @param {Range | null} range
 * @param {[number, number]} domain
 * @returns {[number, number]}
 */
export function outside(range, domain) {
  const [lo, hi] = domain;
  /** @param {number} v */
  const share = (v) => (hi > lo ? Math.min(1, Math.max(0, (v - lo) / (hi - lo))) : 0);
  return [range ? share(range[0]) : 0, range ? 1 - share(range[1]) : 0];
}

/**
 * How many points have each code below k (the legend's counts).
 * @param {Uint16Array} codes
 * @param {number} k
 */
export function countCodes(codes, k) {
  const counts = new Uint32Array(k);
  for (let i = 0; i < codes.length; i++) if (codes[i] < k) counts[codes[i]]++;
  return counts;
}

/**
 * Which points pass the filter alone (the highlight aside): 1 = shown by the filter; null when no filter is on.
 * @param {Uint16Array} codes the points' codes (categorical codes, or colour levels of a continuous colouring)
 * @param {{codes: Set<number> | null, values: ArrayLike<number> | null, range: Range | null}} filter as focus() takes
 * @returns {Uint8Array | null}
 */
export function passing(codes, { codes: codeFilter, values, range }) {
  const byCode = codeFilter !== null && codeFilter.size > 0 ? codeFilter : null;
  const byValue = values && range ? values : null;
  if (!byCode && !byValue) return null;
  const lo = range ? range[0] : 0, hi = range ? range[1] : 0;
  const out = new Uint8Array(codes.length);
  for (let i = 0; i < codes.length; i++) {
    let f = byCode ? byCode.has(codes[i]) : true;
    if (f && byValue) f = Number.isFinite(byValue[i]) && byValue[i] >= lo && byValue[i] <= hi;
    out[i] = f ? 1 : 0;
  }
  return out;
}

/**
 * A 0/1 mask as base64 bits, point i at bit i % 8 (least significant first) of byte i >> 3: what the server reads
 * back with numpy's unpackbits(bitorder="little").
 * @param {Uint8Array} mask
 */
export function packMask(mask) {
  const bytes = new Uint8Array(Math.ceil(mask.length / 8));
  for (let i = 0; i < mask.length; i++) if (mask[i]) bytes[i >> 3] |= 1 << (i & 7);
  let text = "";
  for (let k = 0; k < bytes.length; k += 0x8000) text += String.fromCharCode(...bytes.subarray(k, k + 0x8000));
  return btoa(text);
}
