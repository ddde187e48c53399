// @ts-check
// The weight-space page's line charts (plotly.js traces and layouts) from the charts the server embeds
// (webapp/runs/weight_space.py weight_space_charts): loss or accuracy along the naive and the matched linear path over
// λ, and per layer the singular values of A and B (log y) or the cosines c_i of their i-th directions before and after
// matching.

/**
 * @typedef {{naive: number[], matched: number[]}} Path
 * @typedef {{singular_a: number[], singular_b: number[], cosines_before: number[], cosines_after: number[]}} Layer
 * @typedef {{lambdas: number[], chance: Record<string, number> | null, paths: Record<string, Path>, layers: Record<string, Layer>}} Charts
 */

const NAIVE = "#888";
const MATCHED = "#1f77b4";
const CHANCE = "#d62728";

/**
 * @param {string} name
 * @param {number[]} x
 * @param {number[]} y
 * @param {string} color
 * @param {string} hover
 * @param {boolean} [dashed]
 */
function line(name, x, y, color, hover, dashed = false) {
  return {
    type: "scatter",
    mode: "lines+markers",
    name,
    x,
    y,
    line: { color, ...(dashed ? { dash: "dash" } : {}) },
    hovertemplate: `${name}<br>${hover}<extra></extra>`,
  };
}

/**
 * @param {string} xTitle
 * @param {string} yTitle
 * @param {{range?: [number, number], type?: string}} [yaxis]
 */
function layout(xTitle, yTitle, yaxis = {}) {
  return {
    height: 260,
    margin: { l: 60, r: 10, t: 10, b: 45 },
    legend: { orientation: "h", y: -0.3 },
    xaxis: { title: { text: xTitle } },
    yaxis: { title: { text: yTitle }, ...yaxis },
  };
}

/**
 * Loss or accuracy along both paths over λ (0: A, 1: B), and a dotted line at chance (what a classifier that ignores
 * its input scores) where the report has it.
 * @param {Charts} charts
 * @param {string} quantity "loss" or "accuracy"
 */
export function pathFigure(charts, quantity) {
  const path = charts.paths[quantity];
  const x = charts.lambdas;
  const traces = [
    line("naive: (1−λ)θA + λθB", x, path.naive, NAIVE, `λ = %{x:.1f}: ${quantity} %{y:.4f}`, true),
    line("matched: (1−λ)θA + λπ(θB)", x, path.matched, MATCHED, `λ = %{x:.1f}: ${quantity} %{y:.4f}`),
  ];
  if (charts.chance) {
    const level = charts.chance[quantity];
    traces.push({
      type: "scatter",
      mode: "lines",
      name: "chance: input ignored",
      x: [x[0], x[x.length - 1]],
      y: [level, level],
      line: { color: CHANCE, dash: "dot" },
      hovertemplate: `chance: ${quantity} %{y:.4f}<extra></extra>`,
    });
  }
  /** @type {{range?: [number, number]}} */
  const yaxis = quantity === "accuracy" ? { range: [-0.03, 1.03] } : {};
  const title = quantity === "loss" ? "loss (nats)" : "accuracy (share correct)";
  return { traces, layout: layout("λ", title, yaxis) };
}

/**
 * The singular values of A and B at one layer, largest first, on a log axis (zeros left out: a log axis has no 0).
 * @param {Layer} layer
 */
export function spectrumFigure(layer) {
  const positive = (/** @type {number[]} */ s) => s.map((v) => (v > 0 ? v : null));
  const rank = layer.singular_a.map((_, i) => i + 1);
  const traces = [
    line("A", rank, /** @type {number[]} */ (positive(layer.singular_a)), "#d62728", "s_%{x} = %{y:.4g}"),
    line("B (and π(B): the same values)", rank, /** @type {number[]} */ (positive(layer.singular_b)), MATCHED, "s_%{x} = %{y:.4g}"),
  ];
  return { traces, layout: layout("index i (largest first)", "singular value s<sub>i</sub>", { type: "log" }) };
}

/**
 * c_i, the cosine between the i-th rank-one components of A and B, before and after matching, over [−1, 1].
 * @param {Layer} layer
 */
export function cosineFigure(layer) {
  const rank = layer.cosines_before.map((_, i) => i + 1);
  const traces = [
    line("before matching", rank, layer.cosines_before, NAIVE, "c_%{x} = %{y:.3f}", true),
    line("after matching", rank, layer.cosines_after, MATCHED, "c_%{x} = %{y:.3f}"),
  ];
  return { traces, layout: layout("index i (largest first)", "cosine c<sub>i</sub>", { range: [-1.05, 1.05] }) };
}

/**
 * The figure a data-chart key names: "path:<quantity>", "spectrum:<layer>" or "cosines:<layer>".
 * @param {Charts} charts
 * @param {string} key
 */
export function figureFor(charts, key) {
  const [what, ...rest] = key.split(":");
  const name = rest.join(":");
  if (what === "path") return pathFigure(charts, name);
  if (what === "spectrum") return spectrumFigure(charts.layers[name]);
  if (what === "cosines") return cosineFigure(charts.layers[name]);
  throw new Error(`unknown chart ${key}`);
}
