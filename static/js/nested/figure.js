// @ts-check
// The nested-embedding page's line charts (plotly.js traces and layouts) from the charts the server embeds
// (webapp/runs/results.py nested_charts): a statistic of each prefix of an embedding against the prefix dimension m,
// one line per checkpoint, on a log2 x-axis with a tick at each m measured, the y-axis over [0, 1] and chance dashed.

import { padded } from "../dynamics/figure.js";

/**
 * @typedef {{name: string, x: number[], y: (number | null)[]}} Line
 * @typedef {{lines: Line[], yTitle: string, range?: [number, number] | null, chance?: number | null}} Chart
 */

/**
 * @param {Chart} chart
 * @param {number[]} dims every prefix dimension measured, increasing: the x-axis ticks
 */
export function prefixFigure(chart, dims) {
  /** @type {object[]} */
  const traces = chart.lines.map((line) => ({
    type: "scatter",
    mode: "lines+markers",
    name: line.name,
    x: line.x,
    y: line.y,
    hovertemplate: `${line.name}<br>m = %{x}: %{y:.4f}<extra></extra>`,
  }));
  const low = dims[0];
  const high = dims[dims.length - 1];
  if (chart.chance !== null && chart.chance !== undefined) {
    traces.push({
      type: "scatter",
      mode: "lines",
      name: `chance (${chart.chance.toFixed(3)})`,
      x: [low, high],
      y: [chart.chance, chart.chance],
      line: { dash: "dash", color: "#888" },
      hoverinfo: "skip",
    });
  }
  const layout = {
    height: 260,
    margin: { l: 60, r: 10, t: 10, b: 45 },
    legend: { orientation: "h", y: -0.3 },
    xaxis: {
      title: { text: "prefix dimension m (log₂ scale)" },
      type: "log",
      range: logRange(low, high),
      tickvals: dims,
      ticktext: dims.map(String),
    },
    yaxis: { title: { text: chart.yTitle }, ...(chart.range ? { range: padded(chart.range) } : {}) },
  };
  return { traces, layout };
}

/**
 * A log axis' range (plotly takes log10 of the bounds) with a tenth of an octave of room at each end, so markers at
 * the first and last prefix are drawn whole.
 * @param {number} low
 * @param {number} high
 * @returns {[number, number]}
 */
export function logRange(low, high) {
  const room = 0.1 * Math.log10(2);
  return [Math.log10(low) - room, Math.log10(high) + room];
}
