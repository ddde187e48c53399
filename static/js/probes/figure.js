// @ts-check
// The probe page's figures (plotly.js traces and layouts) from the summary the server embeds
// (webapp/runs/results.py probe_summary): a layer × magnitude heatmap of one statistic, and invariance over depth.
// A statistic's colour scale (heatmap/scale.js) spans its declared range, the same in every family's heatmap:
// diverging around 0 for one that can go negative; values beyond the span are drawn at its ends, written in their
// cells and counted on the colour bar.

import { clipped, colourScale, inkOn, scaleNote, ticks } from "../heatmap/scale.js";

/**
 * @typedef {{name: string, range: [number, number], can_be_negative?: boolean, definition?: string}} ProbeMeasure
 * @typedef {{checkpoint: string, invariance: (number | null)[][], layers: string[]}} Overlay
 * @typedef {{layers: string[], magnitudes: number[], unit: string, invariance: (number | null)[][],
 *   overlays: Overlay[]} & Record<string, unknown>} Family one family; each statistic is a layer × magnitude grid
 * @typedef {{measures: Record<string, ProbeMeasure>, families: Family[]}} Summary
 */

export const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];
const LAYOUT = { margin: { l: 90, r: 10, t: 10, b: 50 }, height: 300, font: { size: 11 } };

/**
 * A statistic for people: three decimals, "—" for none.
 * @param {number | null | undefined} v
 */
export function fmt(v) {
  return v === null || v === undefined ? "—" : v.toFixed(3);
}

/**
 * The heatmap of statistic `measure` of a family: layers down, magnitudes across, on the statistic's scale; a value
 * outside the scale is written in its cell.
 * @param {Summary} summary
 * @param {Family} family
 * @param {string} measure
 */
export function heatmapFigure(summary, family, measure) {
  const m = summary.measures[measure];
  const z = /** @type {(number | null)[][]} */ (family[measure] || []);
  const scale = colourScale(z, m);
  const x = family.magnitudes.map((t) => String(t)); // the unit is the axis title
  const text = family.layers.map((layer, i) =>
    family.magnitudes.map((t, j) => `<b>${layer}</b> at ${t} ${family.unit}<br>${m.name}: ${fmt(z[i][j])}`)
  );
  /** @type {{x: number, y: number, text: string, showarrow: boolean, font: {size: number, color: string}}[]} */
  const annotations = [];
  // Positioned by category index: a label that reads as a number ("0.1") would be taken for a position.
  family.layers.forEach((_, i) =>
    x.forEach((_, j) => {
      const v = z[i][j];
      if (v === null || !clipped(v, scale)) return;
      annotations.push({ x: j, y: i, text: shortFmt(v), showarrow: false, font: { size: 10, color: inkOn(v, scale) } });
    })
  );
  const trace = {
    type: "heatmap",
    z,
    x,
    y: family.layers,
    zmin: scale.zmin,
    zmax: scale.zmax,
    colorscale: scale.colorscale,
    reversescale: scale.reversescale,
    text,
    hoverinfo: "text",
    colorbar: { title: { text: `${m.name}<br><sub>${scaleNote(scale)}</sub>`, side: "right" }, thickness: 12, ...ticks(scale) },
  };
  const layout = {
    ...LAYOUT,
    margin: { ...LAYOUT.margin, r: 40 },
    yaxis: { autorange: "reversed", automargin: true, type: "category" },
    xaxis: { title: { text: `t (${family.unit})` }, type: "category" },
    annotations,
  };
  return { traces: [trace], layout, scale };
}

/**
 * A value written in a cell: three significant digits, a real minus sign.
 * @param {number} v
 */
export function shortFmt(v) {
  return String(Number(v.toPrecision(3))).replace("-", "−");
}

/**
 * Invariance over depth: one curve per non-zero magnitude (invariance is 1 at 0 by definition), the family's own
 * solid, each other checkpoint's dashed in the same colour; the y axis reaches down to the lowest value (and to 0).
 * @param {Family} family
 */
export function curvesFigure(family) {
  /** @type {{type: string, mode: string, x: string[], y: (number | null)[], name: string, line: object}[]} */
  const traces = [];
  const series = [{ name: "", invariance: family.invariance, layers: family.layers, dash: "solid" }].concat(
    family.overlays.map((o) => ({ name: ` · ${o.checkpoint}`, invariance: o.invariance, layers: o.layers, dash: "dash" }))
  );
  series.forEach((s) => {
    family.magnitudes.forEach((t, j) => {
      if (t === 0) return; // invariance 1 by definition
      traces.push({
        type: "scatter",
        mode: "lines+markers",
        x: s.layers,
        y: s.invariance.map((row) => row[j]),
        name: `${t} ${family.unit}${s.name}`,
        line: { color: COLOURS[j % COLOURS.length], dash: s.dash },
      });
    });
  });
  const low = Math.min(0, .../** @type {number[]} */ (traces.flatMap((t) => t.y)));
  const layout = {
    ...LAYOUT,
    yaxis: { title: { text: "invariance" }, range: [low - 0.05, 1.05] },
    legend: { font: { size: 10 } },
  };
  return { traces, layout };
}
