// The dynamics page's line charts (static/js/dynamics/figure.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { lineFigure, padded, stepAxis } from "../../static/js/dynamics/figure.js";

test("steps are the x-axis when every checkpoint has one, else upload positions labelled by name", () => {
  assert.deepEqual(stepAxis([0, 100, 200], ["a", "b", "c"]).x, [0, 100, 200]);
  const byOrder = stepAxis([0, null], ["first", "second"]);
  assert.deepEqual(byOrder.x, [1, 2]);
  assert.deepEqual(byOrder.ticktext, ["first", "second"]);
  assert.equal(byOrder.title, "checkpoint (upload order)");
});

test("one line per layer, the chance level dashed across, the y-axis over the whole declared range", () => {
  const { traces, layout } = lineFigure(
    {
      lines: [
        { name: "block1", y: [0.2, 0.5, 1] },
        { name: "head", y: [0.1, null, 1] },
      ],
      yTitle: "linear-probe accuracy",
      range: [0, 1],
      chance: 0.1,
    },
    [0, 10, 20],
    ["step 0", "step 10", "step 20"],
  );
  assert.equal(traces.length, 3);
  const [first, , chance] = /** @type {any[]} */ (traces);
  assert.deepEqual(first.x, [0, 10, 20]);
  assert.deepEqual(chance.y, [0.1, 0.1]);
  assert.deepEqual(chance.x, [0, 20]);
  assert.equal(chance.line.dash, "dash");
  assert.deepEqual(layout.yaxis.range, padded([0, 1]));
  assert.ok(layout.yaxis.range[0] < 0 && layout.yaxis.range[1] > 1);
  assert.equal(layout.legend.orientation, "h");
});

test("a quantity without a declared range gets plotly's own axis", () => {
  const { layout } = lineFigure({ lines: [{ name: "loss", y: [3, 1] }], yTitle: "loss" }, [0, 1], ["a", "b"]);
  assert.equal(/** @type {any} */ (layout.yaxis).range, undefined);
});
