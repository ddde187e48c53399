// The unit matching page's plots (static/js/units/figure.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { shareFigure, sparseFigure } from "../../static/js/units/figure.js";

test("one step line per matching over t, both axes over [0, 1] whatever the curves reach", () => {
  const { traces, layout } = shareFigure({
    x: [0, 0.5, 1],
    lines: [
      { name: "Hungarian (one-to-one)", y: [0.9, 0.4, 0] },
      { name: "best partner A → B", y: [1, 0.6, 0] },
    ],
  });
  assert.equal(traces.length, 2);
  assert.deepEqual(traces[0].x, [0, 0.5, 1]);
  assert.equal(traces[1].name, "best partner A → B");
  assert.ok(layout.yaxis.range[0] < 0 && layout.yaxis.range[0] > -0.05);
  assert.ok(layout.yaxis.range[1] > 1 && layout.yaxis.range[1] < 1.05);
});

test("the sparse curve with the mean's error dashed across every number of weights", () => {
  const { traces, layout } = sparseFigure({ x: [0, 1, 2, 3], y: [1, 0.5, 0.3, 0.2], reference: 1 });
  assert.deepEqual(traces[0].y, [1, 0.5, 0.3, 0.2]);
  assert.deepEqual(traces[1].x, [0, 3]);
  assert.deepEqual(traces[1].y, [1, 1]);
  assert.equal(traces[1].line?.dash, "dash");
  assert.ok(layout.yaxis.range[1] > 1);
});

test("the held-out curve beside the in-sample one, the y axis up to its highest error", () => {
  const { traces, layout } = sparseFigure({
    x: [0, 1, 2],
    y: [1, 0.4, 0.1],
    reference: 1,
    heldout: { x: [0, 1, 2, 3], y: [1, 0.5, 0.9, 1.6] },
  });
  assert.equal(traces.length, 3);
  assert.deepEqual(traces[1].y, [1, 0.5, 0.9, 1.6]);
  assert.match(String(traces[1].name), /held-out/);
  assert.deepEqual(traces[2].x, [0, 3]);
  assert.ok(layout.yaxis.range[1] > 1.6 && layout.yaxis.range[1] < 1.7);
});

test("a run kept without a held-out curve draws the in-sample curve and the mean alone", () => {
  const { traces } = sparseFigure({ x: [0, 1], y: [1, 0.5], reference: 1, heldout: null });
  assert.equal(traces.length, 2);
  assert.equal(traces[1].line?.dash, "dash");
});
