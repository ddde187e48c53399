// @ts-check
// The colourings the explorer offers in its "Colour by" select: where their values are, what the scatter is given,
// and their colour scales. Continuous colourings of one kind (group: say, kNN agreement with each other space) share
// one scale, so that one colour means one value across them.

/**
 * A colouring the page offers (the json_script named by the select's data-colourings).
 * @typedef {{key: string, title: string, kind: "categorical" | "continuous", url: string, names?: string[],
 *   per_k?: boolean, group?: string, bounds?: [number, number]}} ColouringChoice
 */
/** @typedef {"quantiles" | "minmax" | "fixed"} Scale */

/** @type {Record<Scale, string>} the scales, as the "Scale" select names them */
export const SCALES = { quantiles: "2–98% quantiles", minmax: "min–max", fixed: "fixed range" };
export const QUANTILES = [0.02, 0.98];

/**
 * Where a colouring's values are: its URL, with the neighbourhood size k when they depend on it.
 * @param {ColouringChoice} c
 * @param {number | null} k
 */
export function colouringUrl(c, k) {
  return c.per_k ? `${c.url}${c.url.includes("?") ? "&" : "?"}k=${k}` : c.url;
}

/**
 * What scatter's colourBy takes for a colouring whose values arrived as buffer (uint16 codes or float32 values).
 * @param {ColouringChoice} c
 * @param {ArrayBuffer} buffer
 * @returns {{kind: "categorical", codes: Uint16Array, names: string[], title: string}
 *   | {kind: "continuous", values: Float32Array, title: string}}
 */
export function colourSpec(c, buffer) {
  return c.kind === "categorical"
    ? { kind: "categorical", codes: new Uint16Array(buffer), names: c.names || [], title: c.title }
    : { kind: "continuous", values: new Float32Array(buffer), title: c.title };
}

/**
 * The colourings that share c's scale: c's group among the continuous ones (c alone when it is categorical).
 * @param {ColouringChoice} c
 * @param {ColouringChoice[]} all
 */
export function sameKind(c, all) {
  if (c.kind !== "continuous") return [c];
  const group = c.group || c.key;
  return all.filter((x) => x.kind === "continuous" && (x.group || x.key) === group);
}

/**
 * The scale a colouring starts with: the statistic's whole range when it has one, else the 2–98% quantiles.
 * @param {ColouringChoice} c
 * @returns {Scale}
 */
export function defaultScale(c) {
  return c.bounds ? "fixed" : "quantiles";
}

/**
 * Quantiles (linear interpolation between order statistics, numpy's default) of the finite values of all arrays
 * pooled; null when there are none.
 * @param {ArrayLike<number>[]} arrays
 * @param {number[]} probs in [0, 1]
 * @returns {number[] | null}
 */
export function pooledQuantiles(arrays, probs) {
  let m = 0;
  for (const a of arrays) for (let i = 0; i < a.length; i++) if (Number.isFinite(a[i])) m++;
  if (!m) return null;
  const all = new Float64Array(m);
  let j = 0;
  for (const a of arrays) for (let i = 0; i < a.length; i++) if (Number.isFinite(a[i])) all[j++] = a[i];
  all.sort();
  return probs.map((p) => {
    const at = p * (m - 1), lo = Math.floor(at), hi = Math.min(m - 1, lo + 1);
    return all[lo] + (all[hi] - all[lo]) * (at - lo);
  });
}

/**
 * The domain of a colour scale over the values of every colouring of one kind: their finite min and max, their
 * pooled 2–98% quantiles (the min and max when those coincide), or the fixed range given (in either order).
 * @param {Scale} scale
 * @param {ArrayLike<number>[]} arrays
 * @param {[number, number] | null} fixed
 * @returns {[number, number]}
 */
export function scaleDomain(scale, arrays, fixed) {
  if (scale === "fixed" && fixed) return [Math.min(fixed[0], fixed[1]), Math.max(fixed[0], fixed[1])];
  let lo = Infinity, hi = -Infinity;
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      if (!Number.isFinite(v)) continue; // missing
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (!(lo <= hi)) return [0, 1];
  const q = scale === "quantiles" ? pooledQuantiles(arrays, QUANTILES) : null;
  return q && q[1] > q[0] ? [q[0], q[1]] : [lo, hi];
}

/**
 * How the legend names a scale: which one, over how many colourings of this kind, and whether a fixed range is the
 * statistic's whole range.
 * @param {Scale} scale
 * @param {ColouringChoice} c
 * @param {[number, number]} domain
 * @param {number} members how many colourings share the scale
 */
export function scaleNote(scale, c, domain, members) {
  const whole = scale === "fixed" && c.bounds && c.bounds[0] === domain[0] && c.bounds[1] === domain[1];
  const over = scale !== "fixed" && members > 1 ? ` of all ${members} colourings of this kind` : "";
  return `${SCALES[scale]}${over}${whole ? " (all the statistic can take)" : ""}`;
}
