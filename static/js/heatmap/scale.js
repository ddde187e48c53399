// @ts-check
// The colour scale of a heatmap (comparison, model matrix, compatibility, probe) and what its colour bar says.
// A statistic that can go negative gets a diverging scale whose neutral colour is exactly 0 (blue below, red
// above, the same colour per unit on both sides); one that cannot gets viridis. The scale spans the statistic's
// declared range (for a statistic that can go negative but is declared from 0, mirrored: −hi … hi), the same for
// every heatmap of that statistic, so a colour always means one value; values outside it are drawn at its ends,
// counted, and the colour bar says so. The heatmap island (figure.js) paints cells with colourOf and its colour bar with
// gradient; the probe page's plotly.js heatmap takes the same scale as colorscale.

/** The diverging palette (ColorBrewer RdBu, reversed), at −1, −0.5, 0, 0.5, 1 of the largest |end|. */
const DIVERGING = [
  [-1, [33, 102, 172]],
  [-0.5, [146, 197, 222]],
  [0, [247, 247, 247]],
  [0.5, [244, 165, 130]],
  [1, [178, 24, 43]],
];
const STOPS = 20; // colour stops per scale: enough that plotly's linear interpolation between them is exact to a level
/** Viridis at 17 stops, as plotly.js names it ("Viridis"), so the SVG heatmaps and the probe page's plots agree. */
const VIRIDIS = /** @type {[number, string][]} */ ([
  [0, "#440154"], [0.06274509803921569, "#48186a"], [0.12549019607843137, "#472d7b"], [0.18823529411764706, "#424086"],
  [0.25098039215686274, "#3b528b"], [0.3137254901960784, "#33638d"], [0.3764705882352941, "#2c728e"],
  [0.4392156862745098, "#26828e"], [0.5019607843137255, "#21918c"], [0.5647058823529412, "#1fa088"],
  [0.6274509803921569, "#28ae80"], [0.6901960784313725, "#3fbc73"], [0.7529411764705882, "#5ec962"],
  [0.8156862745098039, "#84d44b"], [0.8784313725490196, "#addc30"], [0.9411764705882353, "#d8e219"], [1, "#fde725"],
]);

/**
 * @typedef {{range: [number, number], can_be_negative?: boolean, larger_is_more_similar?: boolean}} Declared
 * @typedef {{zmin: number, zmax: number, colorscale: string | [number, string][], reversescale: boolean,
 *   diverging: boolean, below: number, above: number}} Scale
 */

/**
 * The colour of t in [−1, 1] on the diverging palette, as "rgb(r, g, b)".
 * @param {number} t
 */
export function divergingColour(t) {
  const x = Math.max(-1, Math.min(1, t));
  let k = 0;
  while (k < DIVERGING.length - 2 && x > /** @type {number} */ (DIVERGING[k + 1][0])) k += 1;
  const [t0, c0] = /** @type {[number, number[]]} */ (DIVERGING[k]);
  const [t1, c1] = /** @type {[number, number[]]} */ (DIVERGING[k + 1]);
  const f = (x - t0) / (t1 - t0);
  const rgb = c0.map((c, i) => Math.round(c + f * (c1[i] - c)));
  return `rgb(${rgb.join(", ")})`;
}

/**
 * The span the colours cover: the declared range, mirrored below 0 for a statistic that can go negative but is
 * declared from 0.
 * @param {Declared} declared
 * @returns {[number, number]}
 */
export function span(declared) {
  const [lo, hi] = declared.range;
  return declared.can_be_negative && lo >= 0 ? [-hi, hi] : [lo, hi];
}

/**
 * The scale of a heatmap of `values` (null: no value) for a statistic declared as `declared`.
 * @param {(number | null)[][]} values
 * @param {Declared} declared
 * @returns {Scale}
 */
export function colourScale(values, declared) {
  const [zmin, zmax] = span(declared);
  const flat = /** @type {number[]} */ (values.flat().filter((v) => v !== null && Number.isFinite(v)));
  const below = flat.filter((v) => v < zmin).length;
  const above = flat.filter((v) => v > zmax).length;
  const diverging = zmin < 0 && zmax > 0;
  if (!diverging) {
    return { zmin, zmax, colorscale: "Viridis", reversescale: declared.larger_is_more_similar === false, diverging, below, above };
  }
  const largest = Math.max(-zmin, zmax);
  const at = (/** @type {number} */ v) => (v - zmin) / (zmax - zmin);
  /** @type {[number, string][]} */
  const colorscale = [];
  for (let i = 0; i <= STOPS; i += 1) {
    const v = zmin + ((zmax - zmin) * i) / STOPS;
    colorscale.push([at(v), divergingColour(v / largest)]);
  }
  if (!colorscale.some(([p]) => p === at(0))) {
    colorscale.push([at(0), divergingColour(0)]);
    colorscale.sort((a, b) => a[0] - b[0]);
  }
  return { zmin, zmax, colorscale, reversescale: false, diverging, below, above };
}

/**
 * A number for a colour bar: up to two decimals, a real minus sign.
 * @param {number} v
 */
export function tick(v) {
  return String(Number(v.toFixed(2))).replace("-", "−");
}

/**
 * What the colour bar says under the statistic's name: the span, where its neutral colour is, and how many values
 * lie outside it, drawn at its ends.
 * @param {Scale} scale
 */
export function scaleNote(scale) {
  const parts = [`scale ${tick(scale.zmin)} to ${tick(scale.zmax)}`];
  if (scale.diverging) parts.push("white = 0");
  if (scale.below) parts.push(`${scale.below} below ${tick(scale.zmin)} drawn as ${tick(scale.zmin)}`);
  if (scale.above) parts.push(`${scale.above} above ${tick(scale.zmax)} drawn as ${tick(scale.zmax)}`);
  return parts.join(" · ");
}

/**
 * The colour bar's ticks: the two ends (marked ≤ / ≥ where values were clipped there) and 0 on a diverging scale.
 * @param {Scale} scale
 */
export function ticks(scale) {
  const tickvals = [scale.zmin, ...(scale.diverging ? [0] : []), scale.zmax];
  const ticktext = tickvals.map((v, i) => {
    if (i === 0 && scale.below) return `≤ ${tick(v)}`;
    if (i === tickvals.length - 1 && scale.above) return `≥ ${tick(v)}`;
    return tick(v);
  });
  return { tickvals, ticktext };
}

/**
 * The colour of the text written over a cell of value v: dark on light colours (the top 40 % of viridis, the
 * middle of the diverging scale), else white.
 * @param {number} v
 * @param {Scale} scale
 */
export function inkOn(v, scale) {
  if (scale.diverging) return Math.abs(v) / Math.max(-scale.zmin, scale.zmax) < 0.6 ? "#222" : "#fff";
  const t = (Math.max(scale.zmin, Math.min(scale.zmax, v)) - scale.zmin) / (scale.zmax - scale.zmin);
  return (scale.reversescale ? 1 - t : t) > 0.6 ? "#222" : "#fff";
}

/**
 * Whether v lies outside the scale (drawn at one of its ends).
 * @param {number | null} v
 * @param {Scale} scale
 */
export function clipped(v, scale) {
  return v !== null && (v < scale.zmin || v > scale.zmax);
}

/**
 * "#rrggbb" as [r, g, b].
 * @param {string} hex
 */
function rgbOf(hex) {
  return [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));
}

/**
 * The colour of t in [0, 1] on viridis (dark purple at 0, yellow at 1), as "rgb(r, g, b)".
 * @param {number} t
 */
export function viridisColour(t) {
  const x = Math.max(0, Math.min(1, t));
  let k = 0;
  while (k < VIRIDIS.length - 2 && x > VIRIDIS[k + 1][0]) k += 1;
  const [t0, c0] = VIRIDIS[k];
  const [t1, c1] = VIRIDIS[k + 1];
  const f = (x - t0) / (t1 - t0);
  const a = rgbOf(c0);
  const b = rgbOf(c1);
  return `rgb(${a.map((c, i) => Math.round(c + f * (b[i] - c))).join(", ")})`;
}

/**
 * The colour of value v on the scale: values outside it take the colour of the end they pass.
 * @param {number} v
 * @param {Scale} scale
 */
export function colourOf(v, scale) {
  const x = Math.max(scale.zmin, Math.min(scale.zmax, v));
  if (scale.diverging) return divergingColour(x / Math.max(-scale.zmin, scale.zmax));
  const t = (x - scale.zmin) / (scale.zmax - scale.zmin);
  return viridisColour(scale.reversescale ? 1 - t : t);
}

/**
 * The colour bar's gradient: [offset from zmin (0) to zmax (1), colour] at every stop of the palette within the
 * scale, so a linear gradient between them draws exactly what colourOf gives.
 * @param {Scale} scale
 * @returns {[number, string][]}
 */
export function gradient(scale) {
  const at = (/** @type {number} */ v) => (v - scale.zmin) / (scale.zmax - scale.zmin);
  if (scale.diverging) {
    // The ends and every knot of the palette between them: between knots the palette is linear in the value.
    const largest = Math.max(-scale.zmin, scale.zmax);
    const knots = DIVERGING.map(([t]) => /** @type {number} */ (t) * largest).filter((v) => v > scale.zmin && v < scale.zmax);
    return [scale.zmin, ...knots, scale.zmax].map((v) => /** @type {[number, string]} */ ([at(v), colourOf(v, scale)]));
  }
  // Reversed (lower = more similar), viridis' stops fall at 1 − t.
  const offsets = VIRIDIS.map(([t]) => (scale.reversescale ? 1 - t : t));
  if (scale.reversescale) offsets.reverse();
  return offsets.map((t) => /** @type {[number, string]} */ ([t, colourOf(scale.zmin + t * (scale.zmax - scale.zmin), scale)]));
}
