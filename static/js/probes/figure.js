// @ts-check
// The probe page's figures (plotly.js traces and layouts) from the summary the server embeds
// (webapp/runs/results.py probe_summary): a layer × magnitude heatmap of one statistic, and invariance over depth.

/**
 * @typedef {{name: string, range: [number, number]}} ProbeMeasure
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
 * The heatmap of statistic `measure` of a family: layers down, magnitudes across.
 * @param {Summary} summary
 * @param {Family} family
 * @param {string} measure
 */
export function heatmapFigure(summary, family, measure) {
  const m = summary.measures[measure];
  const z = /** @type {(number | null)[][]} */ (family[measure]);
  const x = family.magnitudes.map((t) => `${t} ${family.unit}`);
  const text = family.layers.map((layer, i) =>
    family.magnitudes.map((t, j) => `<b>${layer}</b> at ${t} ${family.unit}<br>${m.name}: ${fmt(z[i][j])}`)
  );
  const trace = {
    type: "heatmap",
    z,
    x,
    y: family.layers,
    zmin: m.range[0],
    zmax: m.range[1],
    colorscale: "Viridis",
    text,
    hoverinfo: "text",
    colorbar: { title: { text: m.name, side: "right" }, thickness: 12 },
  };
  const layout = { ...LAYOUT, yaxis: { autorange: "reversed", automargin: true }, xaxis: { title: { text: family.unit } } };
  return { traces: [trace], layout };
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
