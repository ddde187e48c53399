// @ts-check
// The unit matching page's plots (plotly.js traces and layouts) from the charts the server embeds
// (webapp/runs/units.py unit_matching_charts): the share of units whose partner correlates above t, one line per
// matching, with y over [0, 1] whatever the curves reach; and the sparse prediction's in-sample and held-out errors
// against the number of non-zero weights, with the error of predicting the mean (1) dashed as the reference and the
// y axis up to the highest held-out error (it can pass 1 where the weights fit noise).

/**
 * @typedef {{name: string, y: number[]}} Line
 * @typedef {{x: number[], lines: Line[]}} ShareChart
 * @typedef {{x: number[], y: number[]}} Curve
 * @typedef {{x: number[], y: number[], reference: number, heldout?: Curve | null}} SparseChart
 */

const HEIGHT = 300;
const MARGIN = { l: 60, r: 10, t: 10, b: 45 };

/**
 * A range with 3% of room at each end, so markers at the bounds are drawn whole.
 * @param {number} low
 * @param {number} high
 * @returns {[number, number]}
 */
export function padded(low, high) {
  const room = 0.03 * (high - low);
  return [low - room, high + room];
}

/** @param {ShareChart} chart */
export function shareFigure(chart) {
  const traces = chart.lines.map((line) => ({
    type: "scatter",
    mode: "lines",
    line: { shape: "hv" },
    name: line.name,
    x: chart.x,
    y: line.y,
    hovertemplate: `t = %{x:.2f}<br>${line.name}: %{y:.3f}<extra></extra>`,
  }));
  const layout = {
    height: HEIGHT,
    margin: MARGIN,
    legend: { orientation: "h", y: -0.3 },
    xaxis: { title: { text: "correlation threshold t" }, range: padded(0, 1) },
    yaxis: { title: { text: "share of units above t" }, range: padded(0, 1) },
  };
  return { traces, layout };
}

/** @param {SparseChart} chart */
export function sparseFigure(chart) {
  const heldout = chart.heldout ?? null;
  const lastOf = (/** @type {number[]} */ x) => (x.length > 0 ? x[x.length - 1] : 1);
  const last = Math.max(lastOf(chart.x), heldout ? lastOf(heldout.x) : 0);
  const top = Math.max(1, chart.reference, ...(heldout ? heldout.y : []));
  const traces = [
    {
      type: "scatter",
      mode: "lines+markers",
      name: "in-sample (all samples)",
      x: chart.x,
      y: chart.y,
      hovertemplate: "≤ %{x} weights: in-sample error %{y:.3f}<extra></extra>",
    },
    ...(heldout
      ? [
          {
            type: "scatter",
            mode: "lines+markers",
            name: "held-out (fitted on the training split)",
            x: heldout.x,
            y: heldout.y,
            hovertemplate: "≤ %{x} weights: held-out error %{y:.3f}<extra></extra>",
          },
        ]
      : []),
    {
      type: "scatter",
      mode: "lines",
      name: `predicting the mean (${chart.reference})`,
      x: [0, Math.max(last, 1)],
      y: [chart.reference, chart.reference],
      line: { dash: "dash", color: "#888" },
      hoverinfo: "skip",
    },
  ];
  const layout = {
    height: HEIGHT,
    margin: MARGIN,
    legend: { orientation: "h", y: -0.3 },
    xaxis: { title: { text: "non-zero weights (units of A), at most" } },
    yaxis: { title: { text: "unexplained variance" }, range: padded(0, top) },
  };
  return { traces, layout };
}
