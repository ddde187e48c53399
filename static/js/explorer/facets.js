// @ts-check
// The explorer's facets: a small bar chart per metadata column (and the label) of how many samples have each value,
// and how many of them are selected. Pure counting here; the page draws the bars (index.js).

import { NO_LABEL } from "../scatter/colours.js";

export const BINS = 10; // bars of a continuous column
export const MAX_BARS = 24; // bars of a categorical column: its first categories

/**
 * How many points have each code below k, among all and among the marked ones (null: none marked).
 * @param {ArrayLike<number>} codes
 * @param {number} k
 * @param {Uint8Array | null} marked
 */
export function tally(codes, k, marked) {
  const all = new Uint32Array(k), chosen = marked ? new Uint32Array(k) : null;
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c >= k) continue;
    all[c]++;
    if (chosen && marked && marked[i]) chosen[c]++;
  }
  return { all, chosen };
}

/**
 * Equal-width bins over the finite values' range: each value's bin (NO_LABEL for a missing one), the bins' edges
 * (count + 1 of them) and their names ("lo – hi"); null when no value is finite.
 * @param {ArrayLike<number>} values
 * @param {number} count
 * @param {(v: number) => string} format
 */
export function binned(values, count, format) {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!(lo <= hi)) return null;
  const k = hi > lo ? count : 1;
  const width = hi > lo ? (hi - lo) / k : 1;
  const edges = Array.from({ length: k + 1 }, (_, j) => (j === k ? hi : lo + j * width));
  const codes = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    codes[i] = Number.isFinite(v) ? Math.min(k - 1, Math.floor((v - lo) / width)) : NO_LABEL;
  }
  const names = edges.slice(0, k).map((e, j) => `${format(e)} – ${format(edges[j + 1])}`);
  return { codes, edges, names };
}
