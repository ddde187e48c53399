// @ts-check
// The heatmap's figure (a plotly.js trace and layout) from the matrix the server embeds: what each cell says on hover,
// the value written in each cell, the colour scale (scale.js) and what its colour bar says, and room for the labels.

import { colourScale, inkOn, scaleNote, ticks } from "./scale.js";

/**
 * The matrix as the server embeds it (webapp/runs/results.py); the optional grids are absent or null when the run has
 * none of them. `reading` says what a higher value means ("more similar", "better retrieval").
 * @typedef {{name: string, range: [number, number], larger_is_more_similar: boolean, can_be_negative?: boolean,
 *   reading?: string}} Measure
 * @typedef {(number | null)[][]} Grid
 * @typedef {{measure: Measure, layers_a: string[], layers_b: string[], value: Grid, ci_low?: Grid | null,
 *   ci_high?: Grid | null, baseline?: Grid | null, baseline_std?: Grid | null, n?: number,
 *   d_a?: (number | null)[], d_b?: (number | null)[], estimator?: (string | null)[][] | null,
 *   checkpoint_a: {name: string}, checkpoint_b: {name: string}}} Matrix
 */

/**
 * A score for people: four decimals, "—" for none.
 * @param {number | null | undefined} v
 */
export function fmt(v) {
  return v === null || v === undefined ? "—" : v.toFixed(4);
}

/**
 * The hover text of cell (i, j): the two layers, the value, and the confidence interval, baseline and estimator when
 * the matrix has them.
 * @param {Matrix} data
 * @param {number} i
 * @param {number} j
 */
export function cellText(data, i, j) {
  const m = data.measure;
  return (
    `<b>${data.layers_a[i]}</b> × <b>${data.layers_b[j]}</b><br>${m.name}: ${fmt(data.value[i][j])}` +
    (!data.ci_low || data.ci_low[i][j] === null
      ? ""
      : `<br>95% CI: ${fmt(data.ci_low[i][j])} – ${fmt(/** @type {Grid} */ (data.ci_high)[i][j])}`) +
    (!data.baseline
      ? ""
      : `<br>baseline: ${fmt(data.baseline[i][j])} ± ${fmt(/** @type {Grid} */ (data.baseline_std)[i][j])}` +
        `<br>n = ${data.n}, d = ${(data.d_a || [])[i]} × ${(data.d_b || [])[j]}`) +
    (data.estimator && data.estimator[i][j] ? `<br>estimator: ${data.estimator[i][j]}` : "")
  );
}

/**
 * The colour bar's title: the measure, what higher (or lower) means, and the scale's span and clipping.
 * @param {Measure} m
 * @param {import("./scale.js").Scale} scale
 */
export function colourBarTitle(m, scale) {
  const reading = m.reading || (m.larger_is_more_similar ? "higher = more similar" : "lower = more similar");
  return `${m.name}<br><sub>${reading}<br>${scaleNote(scale)}</sub>`;
}

/**
 * The plotly.js trace and layout of the matrix.
 * @param {Matrix} data
 */
export function figure(data) {
  const m = data.measure;
  const scale = colourScale(data.value, m);
  const hover = data.layers_a.map((_, i) => data.layers_b.map((_, j) => cellText(data, i, j)));
  /** @type {{x: number, y: number, text: string, showarrow: boolean, font: {size: number, color: string}}[]} */
  const annotations = [];
  // Positioned by category index: a layer named like a number ("0") would be taken for a position.
  data.layers_a.forEach((_, i) =>
    data.layers_b.forEach((_, j) => {
      const v = data.value[i][j];
      if (v === null) return;
      annotations.push({
        x: j,
        y: i,
        text: v.toFixed(2),
        showarrow: false,
        font: { size: 11, color: inkOn(v, scale) },
      });
    })
  );
  const trace = {
    type: "heatmap",
    x: data.layers_b,
    y: data.layers_a,
    z: data.value,
    zmin: scale.zmin,
    zmax: scale.zmax,
    colorscale: scale.colorscale,
    reversescale: scale.reversescale,
    text: hover,
    hoverinfo: "text",
    colorbar: { title: { text: colourBarTitle(m, scale), side: "right" }, ...ticks(scale) },
  };
  const layout = {
    // Room for the longest row label (about 7 px a character at 12 px).
    margin: { l: Math.max(110, 7 * Math.max(...data.layers_a.map((a) => a.length))), r: 20, t: 20, b: 90 },
    xaxis: { title: { text: data.checkpoint_b.name }, type: "category" },
    yaxis: { title: { text: data.checkpoint_a.name }, type: "category", autorange: "reversed" },
    annotations: annotations,
    height: Math.max(360, 60 * data.layers_a.length + 140),
  };
  return { trace, layout };
}
