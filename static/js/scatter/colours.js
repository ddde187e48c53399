// @ts-check
// The scatter's colours: the categorical palette, viridis for continuous values (quantised into LEVELS levels), grey
// for missing values, and the lookup table the shader reads: one RGBA texel per possible uint16 code.

/**
 * The colouring applied: categorical codes with their names, or continuous values with their domain.
 * @typedef {{kind: "categorical", title: string, names: string[]}
 *   | {kind: "continuous", title: string, values: Float32Array, domain: [number, number], scale: string}} Colouring
 */

/** @typedef {[number, number, number]} Rgb */

export const NO_LABEL = 65535;
export const LEVELS = 256; // colour levels of a continuous colouring: codes 0 … 255
export const PALETTE = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79",
  "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#637939",
];
export const UNLABELLED = "#9aa0a6";

/**
 * @param {string} hex "#rrggbb"
 * @returns {Rgb}
 */
export function hexToRgb(hex) {
  const v = parseInt(hex.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

const PALETTE_RGB = PALETTE.map(hexToRgb);
export const GREY = hexToRgb(UNLABELLED);
// Viridis (matplotlib's perceptually uniform sequential map), 32 evenly spaced anchors; the 256 levels interpolate.
export const VIRIDIS = (
  "440154 470d60 48186a 482374 472e7c 453882 424186 3e4a89 3a548c 365d8d 32658e 2e6d8e 2b758e 287d8e 25848e " +
  "228c8d 1f948c 1e9c89 20a386 25ab82 2eb37c 3aba76 48c16e 58c765 6ccd5a 7fd34e 93d741 a8db34 c0df25 d5e21a " +
  "eae51a fde725"
)
  .split(" ")
  .map((h) => hexToRgb("#" + h));
/** @type {Rgb[]} the colour of each level */
export const RAMP = Array.from({ length: LEVELS }, (_, k) => {
  const t = (k / (LEVELS - 1)) * (VIRIDIS.length - 1);
  const j = Math.min(VIRIDIS.length - 2, Math.floor(t)), f = t - j;
  return /** @type {Rgb} */ (VIRIDIS[j].map((c, m) => Math.round(c + (VIRIDIS[j + 1][m] - c) * f)));
});
export const RAMP_CSS = `linear-gradient(to right, ${VIRIDIS.map(
  (c, k) => `rgb(${c.join(", ")}) ${((100 * k) / (VIRIDIS.length - 1)).toFixed(1)}%`
).join(", ")})`;

/**
 * The CSS colour of a categorical code.
 * @param {number} label
 */
export function colourOf(label) {
  return label === NO_LABEL ? UNLABELLED : PALETTE[label % PALETTE.length];
}

/**
 * [min, max] of the finite values ([0, 1] when there are none).
 * @param {ArrayLike<number>} values
 * @returns {[number, number]}
 */
export function finiteBounds(values) {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [0, 1];
}

/**
 * The domain of a continuous colouring: the given [lo, hi] (in either order) when both ends are finite numbers, else
 * the finite min and max of the values.
 * @param {ArrayLike<unknown> | null | undefined} given
 * @param {ArrayLike<number>} values
 * @returns {[number, number]}
 */
export function domainOf(given, values) {
  const d = given && given.length === 2 ? Array.from(given, Number) : null;
  return d && d.every(Number.isFinite) ? [Math.min(d[0], d[1]), Math.max(d[0], d[1])] : finiteBounds(values);
}

/**
 * Writes each value's colour level into codes: LEVELS equal bins of the domain (values outside it go to the end bins),
 * the middle level when the domain is a single value, NO_LABEL (grey) for NaN and ±Infinity.
 * @param {ArrayLike<number>} values
 * @param {[number, number]} domain
 * @param {Uint16Array} codes as long as values
 */
export function quantise(values, domain, codes) {
  const scale = domain[1] > domain[0] ? LEVELS / (domain[1] - domain[0]) : 0;
  for (let i = 0; i < codes.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) codes[i] = NO_LABEL;
    else codes[i] = scale ? Math.min(LEVELS - 1, Math.max(0, Math.floor((v - domain[0]) * scale))) : LEVELS / 2;
  }
}

/**
 * Fills the colours (rgb, not alpha) of the 65536-entry RGBA lookup table: continuous → viridis for the LEVELS levels
 * and grey above; categorical → the palette, cycled, and grey for NO_LABEL.
 * @param {Uint8Array} lut
 * @param {boolean} continuous
 */
export function paintLut(lut, continuous) {
  for (let v = 0; v < 65536; v++) {
    if (continuous) lut.set(v < LEVELS ? RAMP[v] : GREY, v * 4);
    else lut.set(v === NO_LABEL ? GREY : PALETTE_RGB[v % PALETTE_RGB.length], v * 4);
  }
}

/**
 * The CSS colour the lookup table gives a code.
 * @param {Uint8Array} lut
 * @param {number} code
 */
export function lutCss(lut, code) {
  return `rgb(${lut[code * 4]}, ${lut[code * 4 + 1]}, ${lut[code * 4 + 2]})`;
}

/**
 * How many finite values lie below and above a domain (they are drawn in its end colours).
 * @param {ArrayLike<number>} values
 * @param {[number, number]} domain
 * @returns {[number, number]}
 */
export function clipped(values, domain) {
  let below = 0, above = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < domain[0] && v !== -Infinity) below++;
    else if (v > domain[1] && v !== Infinity) above++;
  }
  return [below, above];
}
