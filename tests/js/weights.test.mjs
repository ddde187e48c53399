// The weight-space page's line charts (static/js/weights/figure.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { cosineFigure, figureFor, pathFigure, spectrumFigure } from "../../static/js/weights/figure.js";

const charts = {
  lambdas: [0, 0.5, 1],
  chance: { loss: 2.3, accuracy: 0.1 },
  paths: {
    loss: { naive: [0.1, 2.0, 0.2], matched: [0.1, 0.5, 0.2] },
    accuracy: { naive: [0.9, 0.3, 0.95], matched: [0.9, 0.8, 0.95] },
  },
  layers: {
    "block1.0": { singular_a: [3, 1, 0], singular_b: [2.5, 1.2, 0.1], cosines_before: [0.1, -0.2, 0], cosines_after: [0.9, 0.5, 0.1] },
  },
};

test("both paths over λ, the naive one dashed; accuracy over its whole range", () => {
  const { traces, layout } = pathFigure(charts, "accuracy");
  assert.equal(traces.length, 3);
  assert.deepEqual(traces[0].x, [0, 0.5, 1]);
  assert.deepEqual(traces[0].y, [0.9, 0.3, 0.95]);
  assert.equal(traces[0].line.dash, "dash");
  assert.deepEqual(traces[1].y, [0.9, 0.8, 0.95]);
  assert.deepEqual(layout.yaxis.range, [-0.03, 1.03]);
  assert.equal(layout.yaxis.title.text, "accuracy (share correct)"); // short enough for the chart's height
  assert.deepEqual(traces[2].y, [0.1, 0.1]); // chance across every λ, dotted
  assert.deepEqual(traces[2].x, [0, 1]);
  assert.equal(traces[2].line.dash, "dot");
  assert.deepEqual(pathFigure(charts, "loss").traces[2].y, [2.3, 2.3]);
  assert.equal(pathFigure({ ...charts, chance: null }, "loss").traces.length, 2); // a report from before
  assert.equal(pathFigure(charts, "loss").layout.yaxis.range, undefined);
  assert.equal(pathFigure(charts, "loss").layout.yaxis.title.text, "loss (nats)");
});

test("spectra on a log axis, a zero singular value left out", () => {
  const { traces, layout } = spectrumFigure(charts.layers["block1.0"]);
  assert.equal(layout.yaxis.type, "log");
  assert.deepEqual(traces[0].x, [1, 2, 3]);
  assert.deepEqual(traces[0].y, [3, 1, null]);
  assert.deepEqual(traces[1].y, [2.5, 1.2, 0.1]);
});

test("cosines before and after matching over [−1, 1]; a layer name with a colon is found", () => {
  const { traces, layout } = cosineFigure(charts.layers["block1.0"]);
  assert.deepEqual(traces[1].y, [0.9, 0.5, 0.1]);
  assert.deepEqual(layout.yaxis.range, [-1.05, 1.05]);
  const withColon = { ...charts, layers: { "a:b": charts.layers["block1.0"] } };
  assert.deepEqual(figureFor(withColon, "cosines:a:b").traces[0].y, [0.1, -0.2, 0]);
  assert.throws(() => figureFor(charts, "other:x"));
});
