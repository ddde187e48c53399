// The nested-embedding page's line charts (static/js/nested/figure.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { padded } from "../../static/js/dynamics/figure.js";
import { logRange, prefixFigure } from "../../static/js/nested/figure.js";

const chart = {
  lines: [
    { name: "matryoshka", x: [8, 16, 32, 64], y: [0.8, 0.9, 0.95, 0.96] },
    { name: "plain", x: [8, 16, 32, 64], y: [0.3, 0.6, 0.9, 0.96] },
  ],
  yTitle: "top-1",
  range: /** @type {[number, number]} */ ([0, 1]),
  chance: 0.1,
};

test("one line per checkpoint at its own prefixes, the chance level dashed across every prefix", () => {
  const { traces } = prefixFigure(chart, [8, 16, 32, 64]);
  assert.equal(traces.length, 3);
  const [first, , chance] = /** @type {any[]} */ (traces);
  assert.deepEqual(first.x, [8, 16, 32, 64]);
  assert.deepEqual(first.y, [0.8, 0.9, 0.95, 0.96]);
  assert.deepEqual(chance.x, [8, 64]);
  assert.deepEqual(chance.y, [0.1, 0.1]);
  assert.equal(chance.line.dash, "dash");
});

test("a log x-axis with a tick at each prefix, y over [0, 1]", () => {
  const { layout } = /** @type {any} */ (prefixFigure(chart, [8, 16, 32, 64]));
  assert.equal(layout.xaxis.type, "log");
  assert.deepEqual(layout.xaxis.tickvals, [8, 16, 32, 64]);
  assert.deepEqual(layout.xaxis.ticktext, ["8", "16", "32", "64"]);
  assert.deepEqual(layout.xaxis.range, logRange(8, 64));
  assert.ok(layout.xaxis.range[0] < Math.log10(8) && layout.xaxis.range[1] > Math.log10(64));
  assert.deepEqual(layout.yaxis.range, padded([0, 1]));
});

test("a statistic without a chance level (CKA) has no dashed line", () => {
  const { traces } = prefixFigure({ ...chart, chance: null }, [8, 16, 32, 64]);
  assert.equal(traces.length, 2);
});
