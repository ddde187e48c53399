// The colour scales of every heatmap (static/js/heatmap/scale.js) and the probe page's plotly.js figures
// (static/js/probes/figure.js). The heatmap island's own SVG figure: heatmap.test.mjs.
import assert from "node:assert/strict";
import { test } from "node:test";

import { colourScale, divergingColour, inkOn, scaleNote, span, ticks } from "../../static/js/heatmap/scale.js";
import { COLOURS, curvesFigure, heatmapFigure, shortFmt } from "../../static/js/probes/figure.js";

test("values are written dark on the light part of the scale, white elsewhere", () => {
  const viridis = colourScale([[0.5]], { range: [0, 1] });
  assert.equal(inkOn(0.9, viridis), "#222");
  assert.equal(inkOn(0.6, viridis), "#fff");
  const distance = colourScale([[0.5]], { range: [0, 1], larger_is_more_similar: false });
  assert.equal(inkOn(0.1, distance), "#222"); // reversed: small distances are the light end
  const diverging = colourScale([[0.5]], { range: [-1, 1] });
  assert.equal(inkOn(-0.9, diverging), "#fff");
  assert.equal(inkOn(0.1, diverging), "#222");
});

/** @param {string} rgb */
const channels = (rgb) => /** @type {number[]} */ ((rgb.match(/\d+/g) || []).map(Number));

test("the diverging palette: neutral at 0, blue below, red above, saturating beyond ±1", () => {
  assert.equal(divergingColour(0), "rgb(247, 247, 247)");
  const [r, , b] = channels(divergingColour(-0.7));
  assert.ok(b > r, "negative values are blue");
  const [r2, , b2] = channels(divergingColour(0.7));
  assert.ok(r2 > b2, "positive values are red");
  assert.equal(divergingColour(-5), divergingColour(-1));
  assert.equal(divergingColour(1), "rgb(178, 24, 43)");
});

test("a statistic that can go negative gets a diverging scale centred on 0, mirrored when declared from 0", () => {
  assert.deepEqual(span({ range: [0, 1], can_be_negative: true }), [-1, 1]);
  assert.deepEqual(span({ range: [-0.2, 1], can_be_negative: true }), [-0.2, 1]);
  assert.deepEqual(span({ range: [0, 1] }), [0, 1]);
  const scale = colourScale([[1, 0.5, -10], [-481, null, 0.2]], { range: [0, 1], can_be_negative: true });
  assert.equal(scale.diverging, true);
  assert.deepEqual([scale.zmin, scale.zmax, scale.below, scale.above], [-1, 1, 2, 0]);
  const stops = /** @type {[number, string][]} */ (scale.colorscale);
  assert.deepEqual(stops[0], [0, divergingColour(-1)]);
  assert.deepEqual(stops[stops.length - 1], [1, divergingColour(1)]);
  assert.deepEqual(stops.find(([p]) => p === 0.5), [0.5, "rgb(247, 247, 247)"]); // 0 sits at the middle
  // An asymmetric span keeps the same colour per unit: −0.2 is a pale blue, not the darkest.
  const asym = /** @type {[number, string][]} */ (colourScale([[0]], { range: [-0.2, 1] }).colorscale);
  assert.deepEqual(asym[0], [0, divergingColour(-0.2)]);
  assert.ok(asym.some(([p, c]) => Math.abs(p - 0.2 / 1.2) < 1e-12 && c === "rgb(247, 247, 247)"));
});

test("the colour bar states its span, where 0 is, and what was clipped", () => {
  const scale = colourScale([[-481, -10, 0.5, 1.4]], { range: [0, 1], can_be_negative: true });
  assert.equal(scaleNote(scale), "scale −1 to 1 · white = 0 · 2 below −1 drawn as −1 · 1 above 1 drawn as 1");
  assert.deepEqual(ticks(scale), { tickvals: [-1, 0, 1], ticktext: ["≤ −1", "0", "≥ 1"] });
  const plain = colourScale([[0.2, 0.9]], { range: [0, 1] });
  assert.equal(scaleNote(plain), "scale 0 to 1");
  assert.deepEqual(ticks(plain), { tickvals: [0, 1], ticktext: ["0", "1"] });
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
const summary = {
  measures: {
    learned: { name: "learned R²", range: [0, 1] },
    invariance: { name: "invariance", range: [0, 1], can_be_negative: true },
  },
  families: [family],
};

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
  assert.deepEqual(trace.x, ["0", "5", "10"]);
  assert.equal(layout.xaxis.title.text, "t (°)");
  assert.deepEqual([trace.zmin, trace.zmax, trace.colorscale], [0, 1, "Viridis"]);
  assert.equal(trace.text[0][2], "<b>l1</b> at 10 °<br>learned R²: —");
  assert.equal(trace.text[1][1], "<b>l2</b> at 5 °<br>learned R²: 0.600");
  assert.equal(layout.yaxis.autorange, "reversed");
  assert.deepEqual(layout.annotations, []);
});

test("a probe heatmap of invariance diverges around 0, one scale for every family, clipped cells written", () => {
  const noise = { ...family, magnitudes: [0, 0.1, 0.2], invariance: [[1, -10, -481], [1, 0.2, 0]] };
  const both = { ...summary, families: [family, noise] };
  const rotation = heatmapFigure(both, family, "invariance");
  const [trace] = rotation.traces;
  assert.deepEqual([trace.zmin, trace.zmax], [-1, 1]);
  assert.equal(rotation.scale.below, 0); // its own cells: none below −1
  assert.doesNotMatch(trace.colorbar.title.text, /below/);
  assert.deepEqual(rotation.layout.annotations, []);
  const noisy = heatmapFigure(both, noise, "invariance");
  assert.match(noisy.traces[0].colorbar.title.text, /2 below −1 drawn as −1/);
  // written in their cells, placed by index (row, column): "0.1" is a label, not a position
  assert.deepEqual(noisy.layout.annotations.map((a) => [a.y, a.x, a.text]), [[0, 1, "−10"], [0, 2, "−481"]]);
  assert.deepEqual(noisy.traces[0].x, ["0", "0.1", "0.2"]);
  assert.deepEqual(noisy.traces[0].colorscale, trace.colorscale); // the same span: one colour, one value
  assert.equal(shortFmt(0.12345), "0.123");
});
