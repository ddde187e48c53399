// @ts-check
// The explorer's facets: a small bar chart per metadata column (and the label) of how many samples have each value,
// and how many of them are selected; several values of one column can be chosen at once (the plots' filter). Pure
// counting and choosing here; the page draws the bars (index.js).

import { NO_LABEL } from "../scatter/colours.js";
import { toCodes, toRange, toggled } from "../scatter/filter.js";

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

/**
 * Which of a facet's bars the plots' filter shows: a categorical facet's values among the filter's codes; a
 * continuous facet's bins that lie inside the filter's range (edges: the bins' count + 1 edges). All false when
 * filter is null (no filter on this column).
 * @param {"categorical" | "continuous"} kind
 * @param {ArrayLike<number> | null} filter the plots' filter (codes, or [lo, hi]) while they are coloured by this column
 * @param {number} count how many bars
 * @param {ArrayLike<number>} [edges]
 * @returns {boolean[]}
 */
export function chosenBars(kind, filter, count, edges) {
  if (kind === "categorical") {
    const codes = toCodes(filter);
    return Array.from({ length: count }, (_, j) => codes.has(j));
  }
  const range = toRange(filter);
  const e = edges || [];
  return Array.from({ length: count }, (_, j) => range !== null && e[j] >= range[0] && e[j + 1] <= range[1]);
}

/**
 * The filter a click on bar j asks for (null: none, every value shown). A categorical facet toggles value j among
 * the chosen ones. A continuous facet chooses a range of adjacent bins: bar j joins the range (and the bins between),
 * or leaves it when it is at one of its ends; a click inside the range starts a new one at j.
 * @param {"categorical" | "continuous"} kind
 * @param {ArrayLike<number> | null} filter as chosenBars takes it
 * @param {number} j
 * @param {number} count how many bars
 * @param {ArrayLike<number>} [edges]
 * @returns {number[] | null}
 */
export function toggledBar(kind, filter, j, count, edges) {
  if (kind === "categorical") {
    const next = toggled(toCodes(filter), j).sort((a, b) => a - b);
    return next.length ? next : null;
  }
  const e = edges || [];
  const chosen = chosenBars(kind, filter, count, e);
  const first = chosen.indexOf(true), last = chosen.lastIndexOf(true);
  /** @type {(a: number, b: number) => number[] | null} bins a … b, null when none */
  const span = (a, b) => (a <= b ? [e[a], e[b + 1]] : null);
  if (first < 0) return span(j, j);
  if (j < first) return span(j, last);
  if (j > last) return span(first, j);
  if (j === first) return span(first + 1, last);
  if (j === last) return span(first, last - 1);
  return span(j, j);
}
