// @ts-check
// The dynamics page's line charts (plotly.js traces and layouts) from the view the server embeds
// (webapp/runs/results.py dynamics_view): a quantity over training steps, one line per layer (or per logged metric),
// with the chance level dashed where the quantity is an accuracy, and the y-axis over the quantity's whole range
// where it has one, so that a flat line near the top is not drawn as a steep one.

/**
 * @typedef {{name: string, y: (number | null)[]}} Line
 * @typedef {{lines: Line[], yTitle: string, range?: [number, number] | null, chance?: number | null}} Chart
 */

/**
 * Steps where every checkpoint has one (a numeric axis), else positions 1…k labelled by name.
 * @param {(number | null)[]} steps
 * @param {string[]} labels
 */
export function stepAxis(steps, labels) {
  const numeric = steps.length > 0 && steps.every((s) => s !== null);
  return numeric
    ? { x: steps, title: "training step", tickvals: null, ticktext: null }
    : { x: labels.map((_, i) => i + 1), title: "checkpoint (upload order)", tickvals: labels.map((_, i) => i + 1), ticktext: labels };
}

/**
 * @param {Chart} chart
 * @param {(number | null)[]} steps
 * @param {string[]} labels
 */
export function lineFigure(chart, steps, labels) {
  const axis = stepAxis(steps, labels);
  /** @type {object[]} */
  const traces = chart.lines.map((line) => ({
    type: "scatter",
    mode: "lines+markers",
    name: line.name,
    x: axis.x,
    y: line.y,
    text: labels,
    hovertemplate: `%{text}<br>${line.name}: %{y:.4f}<extra></extra>`,
  }));
  if (chart.chance !== null && chart.chance !== undefined) {
    traces.push({
      type: "scatter",
      mode: "lines",
      name: `chance (${chart.chance.toFixed(3)})`,
      x: [axis.x[0], axis.x[axis.x.length - 1]],
      y: [chart.chance, chart.chance],
      line: { dash: "dash", color: "#888" },
      hoverinfo: "skip",
    });
  }
  const layout = {
    height: 260,
    margin: { l: 60, r: 10, t: 10, b: 45 },
    // the legend below the plot: it never covers a line
    legend: { orientation: "h", y: -0.3 },
    xaxis: {
      title: { text: axis.title },
      ...(axis.tickvals ? { tickvals: axis.tickvals, ticktext: axis.ticktext } : {}),
    },
    yaxis: { title: { text: chart.yTitle }, ...(chart.range ? { range: padded(chart.range) } : {}) },
  };
  return { traces, layout };
}

/**
 * A range with 3% of room at each end, so markers at the bounds are drawn whole.
 * @param {[number, number]} range
 * @returns {[number, number]}
 */
export function padded([low, high]) {
  const room = 0.03 * (high - low);
  return [low - room, high + room];
}
