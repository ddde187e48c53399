// The plotly.js figures of the heatmap and probe pages (static/js/heatmap/figure.js, probes/figure.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { cellText, figure, inkOn } from "../../static/js/heatmap/figure.js";
import { COLOURS, curvesFigure, heatmapFigure } from "../../static/js/probes/figure.js";

/** @type {import("../../static/js/heatmap/figure.js").Matrix} */
const matrix = {
  measure: { name: "CKA", range: [0, 1], larger_is_more_similar: true },
  layers_a: ["conv1", "a-much-longer-layer-name"],
  layers_b: ["x", "y"],
  value: [
    [0.9, null],
    [0.1, 0.65],
  ],
  checkpoint_a: { name: "A" },
  checkpoint_b: { name: "B" },
};

test("a cell's hover text has its layers and value; CI, baseline and estimator only when there are some", () => {
  assert.equal(cellText(matrix, 0, 0), "<b>conv1</b> × <b>x</b><br>CKA: 0.9000");
  assert.equal(cellText(matrix, 0, 1), "<b>conv1</b> × <b>y</b><br>CKA: —");
  /** @type {import("../../static/js/heatmap/figure.js").Matrix} */
  const full = {
    ...matrix,
    ci_low: [[0.8, null], [0, 0]],
    ci_high: [[0.95, null], [0.2, 0.7]],
    baseline: [[0.1, 0.1], [0.1, 0.1]],
    baseline_std: [[0.01, 0.01], [0.01, 0.01]],
    n: 300,
    d_a: [64, 128],
    d_b: [10, 20],
    estimator: [["debiased", null], [null, null]],
  };
  assert.equal(
    cellText(full, 0, 0),
    "<b>conv1</b> × <b>x</b><br>CKA: 0.9000<br>95% CI: 0.8000 – 0.9500" +
      "<br>baseline: 0.1000 ± 0.0100<br>n = 300, d = 64 × 10<br>estimator: debiased"
  );
  assert.doesNotMatch(cellText(full, 0, 1), /CI|estimator/);
});

test("values are written dark on the light end of the scale, white elsewhere", () => {
  assert.equal(inkOn(0.9, [0, 1]), "#222");
  assert.equal(inkOn(0.6, [0, 1]), "#fff");
  assert.equal(inkOn(-0.5, [-1, 1]), "#fff");
  assert.equal(inkOn(0.5, [-1, 1]), "#222");
});

test("the heatmap: one annotation per scored cell, the scale reversed for distances, room for labels", () => {
  const { trace, layout } = figure(matrix);
  const annotations = layout.annotations;
  assert.equal(annotations.length, 3);
  assert.deepEqual(annotations.map((a) => a.text), ["0.90", "0.10", "0.65"]);
  assert.equal(trace.reversescale, false);
  assert.match(trace.colorbar.title.text, /higher = more similar/);
  assert.equal(layout.margin.l, 7 * "a-much-longer-layer-name".length);
  assert.equal(layout.height, 360);
  const distance = figure({ ...matrix, measure: { ...matrix.measure, larger_is_more_similar: false } });
  assert.equal(distance.trace.reversescale, true);
  assert.equal(distance.trace.colorbar.title.text, "CKA");
});

/** @type {import("../../static/js/probes/figure.js").Family} */
const family = {
  layers: ["l1", "l2"],
  magnitudes: [0, 5, 10],
  unit: "°",
  invariance: [
    [1, 0.9, 0.8],
    [1, 0.5, -0.2],
  ],
  learned: [
    [1, 0.7, null],
    [1, 0.6, 0.4],
  ],
  overlays: [{ checkpoint: "other", layers: ["l1", "l2"], invariance: [[1, 0.95, 0.9], [1, 0.7, 0.6]] }],
};
/** @type {import("../../static/js/probes/figure.js").Summary} */
const summary = { measures: { learned: { name: "learned R²", range: [0, 1] } }, families: [family] };

test("probe curves: one per non-zero magnitude and series, overlays dashed in the same colour", () => {
  const { traces, layout } = curvesFigure(family);
  const lines = /** @type {{color: string, dash: string}[]} */ (traces.map((t) => t.line));
  assert.deepEqual(traces.map((t) => t.name), ["5 °", "10 °", "5 ° · other", "10 ° · other"]);
  assert.deepEqual(traces[1].y, [0.8, -0.2]);
  assert.deepEqual(lines.map((l) => l.dash), ["solid", "solid", "dash", "dash"]);
  assert.equal(lines[0].color, COLOURS[1]);
  assert.equal(lines[2].color, COLOURS[1]);
  assert.deepEqual(layout.yaxis.range, [-0.25, 1.05]);
});

test("a probe heatmap: layers down, magnitudes across, the statistic's range", () => {
  const { traces, layout } = heatmapFigure(summary, family, "learned");
  const [trace] = traces;
  assert.deepEqual(trace.x, ["0 °", "5 °", "10 °"]);
  assert.deepEqual([trace.zmin, trace.zmax], [0, 1]);
  assert.equal(trace.text[0][2], "<b>l1</b> at 10 °<br>learned R²: —");
  assert.equal(trace.text[1][1], "<b>l2</b> at 5 °<br>learned R²: 0.600");
  assert.equal(layout.yaxis.autorange, "reversed");
});
