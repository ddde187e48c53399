// The heatmap island's SVG figure (static/js/heatmap/figure.js, svg.js): what a cell says, where everything goes,
// the colours (scale.js's colourOf and the colour bar's gradient) and the markup.
import assert from "node:assert/strict";
import { test } from "node:test";

import { cellLines, colourBarLines, figure } from "../../static/js/heatmap/figure.js";
import { colourOf, colourScale, gradient } from "../../static/js/heatmap/scale.js";
import { escape, svg } from "../../static/js/heatmap/svg.js";

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

/** @param {string} rgb */
const channels = (rgb) => /** @type {number[]} */ ((rgb.match(/\d+/g) || []).map(Number));

test("a cell says its layers and value; interval, baseline and estimator only when the matrix has them", () => {
  assert.deepEqual(cellLines(matrix, 0, 0), ["conv1 × x", "CKA: 0.9000"]);
  assert.deepEqual(cellLines(matrix, 0, 1), ["conv1 × y", "CKA: — (no value for this pair)"]);
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
  assert.deepEqual(cellLines(full, 0, 0), [
    "conv1 × x",
    "CKA: 0.9000",
    "95% CI: 0.8000 – 0.9500",
    "baseline: 0.1000 ± 0.0100",
    "n = 300, d = 64 × 10",
    "estimator: debiased",
  ]);
  assert.doesNotMatch(cellLines(full, 0, 1).join("\n"), /CI|estimator/);
});

test("the colour bar names the measure, which way is better, its span and what was clipped", () => {
  const scale = colourScale(matrix.value, matrix.measure);
  assert.deepEqual(colourBarLines(matrix.measure, scale), ["CKA", "higher = more similar", "scale 0 to 1"]);
  const distance = { ...matrix.measure, larger_is_more_similar: false };
  assert.equal(colourBarLines(distance, colourScale(matrix.value, distance))[1], "lower = more similar");
  const map = { ...matrix.measure, name: "mAP", reading: "higher = better retrieval" };
  assert.doesNotMatch(colourBarLines(map, scale).join(" "), /similar/);
  const r2 = { ...matrix.measure, name: "R²", can_be_negative: true };
  assert.deepEqual(colourBarLines(r2, colourScale([[0.5, -3]], r2)).slice(2), [
    "scale −1 to 1",
    "white = 0",
    "1 below −1 drawn as −1",
  ]);
});

test("cell colours: viridis over the declared range (reversed for distances), clipped at its ends; diverging at 0", () => {
  const viridis = colourScale([[0.5]], { range: [0, 1] });
  assert.equal(colourOf(0, viridis), "rgb(68, 1, 84)"); // #440154
  assert.equal(colourOf(1, viridis), "rgb(253, 231, 37)"); // #fde725
  assert.equal(colourOf(1.7, viridis), colourOf(1, viridis));
  const distance = colourScale([[0.5]], { range: [0, 2], larger_is_more_similar: false });
  assert.equal(colourOf(0, distance), "rgb(253, 231, 37)"); // the most similar end is the light one
  assert.equal(colourOf(2, distance), "rgb(68, 1, 84)");
  const diverging = colourScale([[0.5]], { range: [0, 1], can_be_negative: true });
  assert.equal(colourOf(0, diverging), "rgb(247, 247, 247)");
  const [r, , b] = channels(colourOf(-0.5, diverging));
  assert.ok(b > r, "negative values are blue");
  assert.equal(colourOf(-481, diverging), colourOf(-1, diverging));
  // Brighter means larger on viridis: luminance grows along the scale.
  const lum = (/** @type {number} */ v) => {
    const [R, G, B] = channels(colourOf(v, viridis));
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  for (let v = 0; v < 1; v += 0.05) assert.ok(lum(v + 0.05) > lum(v), `luminance at ${v}`);
});

test("the colour bar's gradient, interpolated linearly as SVG does, gives each value the colour of its cells", () => {
  for (const declared of [
    { range: /** @type {[number, number]} */ ([0, 1]) },
    { range: /** @type {[number, number]} */ ([0, 2]), larger_is_more_similar: false },
    { range: /** @type {[number, number]} */ ([-0.2, 1]) },
    { range: /** @type {[number, number]} */ ([0, 1]), can_be_negative: true },
  ]) {
    const scale = colourScale([[0.5]], declared);
    const stops = gradient(scale);
    assert.equal(stops[0][0], 0);
    assert.equal(stops[stops.length - 1][0], 1);
    for (let t = 0; t <= 1; t += 0.01) {
      const k = Math.max(0, stops.findIndex(([p]) => p >= t) - 1);
      const [t0, c0] = stops[k];
      const [t1, c1] = stops[Math.min(k + 1, stops.length - 1)];
      const f = t1 > t0 ? (t - t0) / (t1 - t0) : 0;
      const a = channels(c0);
      const b = channels(c1);
      const drawn = a.map((c, i) => c + f * (b[i] - c));
      const cell = channels(colourOf(scale.zmin + t * (scale.zmax - scale.zmin), scale));
      drawn.forEach((c, i) => assert.ok(Math.abs(c - cell[i]) <= 1.5, `${JSON.stringify(declared)} at ${t}`));
    }
  }
});

test("the cells tile the plot, A's layers top down and B's left to right, labels beside their cells", () => {
  const fig = figure(matrix, 1000);
  const { plot, cells } = fig;
  assert.equal(cells.length, 4);
  const area = cells.reduce((sum, c) => sum + c.w * c.h, 0);
  assert.ok(Math.abs(area - plot.w * plot.h) < 1e-6);
  for (const c of cells) {
    assert.ok(c.x >= plot.x - 1e-9 && c.x + c.w <= plot.x + plot.w + 1e-9);
    assert.ok(c.y >= plot.y - 1e-9 && c.y + c.h <= plot.y + plot.h + 1e-9);
    assert.equal(c.x, plot.x + c.col * c.w);
    assert.equal(c.y, plot.y + c.row * c.h);
  }
  assert.deepEqual(fig.rows.map((r) => r.text), matrix.layers_a);
  assert.deepEqual(fig.cols.map((c) => c.text), matrix.layers_b);
  fig.rows.forEach((r, i) => assert.equal(r.y, cells[2 * i].y + cells[2 * i].h / 2));
  fig.cols.forEach((c, j) => assert.equal(c.x, cells[j].x + cells[j].w / 2));
  assert.ok(fig.rows.every((r) => r.x < plot.x), "row labels left of the plot");
  // Long row names push the plot right: the longest (24 characters) fits left of it.
  assert.ok(plot.x >= 7 * "a-much-longer-layer-name".length);
  assert.deepEqual([fig.xTitle.text, fig.yTitle.text], ["B", "A"]);
  assert.ok(fig.width <= 1000);
  // A missing value has no colour and no number; the others are written, dark on light cells.
  assert.deepEqual(cells.map((c) => c.label), ["0.90", null, "0.10", "0.65"]);
  assert.equal(cells[1].fill, null);
  assert.deepEqual([cells[0].ink, cells[2].ink], ["#222", "#fff"]);
  assert.ok(fig.bar.missing, "the colour bar explains the hatched cells");
  assert.equal(figure({ ...matrix, value: [[0.9, 0.2], [0.1, 0.65]] }, 1000).bar.missing, null);
});

test("a wide page does not stretch the cells; long column names turn 45°; small cells keep their numbers for hover", () => {
  const wide = figure(matrix, 5000);
  assert.ok(wide.cells[0].w <= 160);
  assert.equal(wide.rotated, false);
  const long = { ...matrix, layers_b: ["encoder.layer.11.output", "encoder.layer.12.output"] };
  assert.equal(figure(long, 700).rotated, true);
  const many = 40;
  const names = Array.from({ length: many }, (_, i) => `step ${i}`);
  const big = figure(
    {
      ...matrix,
      layers_a: names,
      layers_b: names,
      value: names.map(() => names.map(() => 0.5)),
    },
    900
  );
  assert.equal(big.cells.length, many * many);
  assert.ok(big.cells.every((c) => c.label === null && c.fill !== null));
  assert.ok(big.height >= big.plot.y + big.plot.h);
});

test("the colour bar's ticks sit at their values: the top end at the top, 0 in the middle of a symmetric scale", () => {
  const r2 = { ...matrix, value: [[0.9, -3], [0.1, 0.65]], measure: { ...matrix.measure, can_be_negative: true } };
  const { bar } = figure(r2, 1000);
  assert.deepEqual(bar.ticks.map((t) => t.text), ["≤ −1", "0", "1"]);
  assert.equal(bar.ticks[0].y, bar.y + bar.h);
  assert.equal(bar.ticks[1].y, bar.y + bar.h / 2);
  assert.equal(bar.ticks[2].y, bar.y);
  assert.deepEqual(bar.lines.map((l) => l.text), ["CKA", "higher = more similar", "scale −1 to 1", "white = 0",
    "1 below −1 drawn as −1"]);
  assert.equal(figure(r2, 1000).cells[1].label, "-3.00"); // the cell still says its value
});

/**
 * Whether every element of `markup` is closed in order (a check that it is well-formed XML, element-wise).
 * @param {string} markup
 */
function balanced(markup) {
  /** @type {string[]} */
  const open = [];
  for (const [tag, close, name, self] of markup.matchAll(/<(\/)?([a-zA-Z]+)[^>]*?(\/)?>/g)) {
    if (self) continue;
    if (!close) open.push(name);
    else if (open.pop() !== name) return false;
    assert.ok(tag);
  }
  return open.length === 0;
}

test("the SVG: one link per cell to its pair's page, named by its hover text; every name escaped", () => {
  const hostile = { ...matrix, layers_a: ['<script>alert("a")</script>', "b&c"], checkpoint_b: { name: "<img src=x>" } };
  const fig = figure(hostile, 900);
  const label = (/** @type {number} */ i, /** @type {number} */ j) => cellLines(hostile, i, j).join("; ");
  const markup = svg(fig, "hm-matrix-data", label, (i, j) => `/comparisons/7/pairs/${i}/${j}/`);
  assert.ok(balanced(markup));
  assert.doesNotMatch(markup, /<script|<img/);
  assert.match(markup, /&#60;script&#62;alert\(&#34;a&#34;\)&#60;\/script&#62;/);
  assert.match(markup, /b&#38;c/);
  const links = [...markup.matchAll(/<a class="cell" href="([^"]*)" data-row="(\d)" data-col="(\d)" aria-label="([^"]*)">/g)];
  assert.deepEqual(
    links.map((m) => m[1]),
    ["/comparisons/7/pairs/0/0/", "/comparisons/7/pairs/0/1/", "/comparisons/7/pairs/1/0/", "/comparisons/7/pairs/1/1/"]
  );
  assert.equal(links[3][4], escape("b&c × y; CKA: 0.6500"));
  assert.equal((markup.match(/class="ytick"/g) || []).length, 2);
  assert.equal((markup.match(/class="xtick"/g) || []).length, 2);
  assert.match(markup, /<linearGradient id="hm-matrix-data-scale"/);
  assert.match(markup, /fill="url\(#hm-matrix-data-none\)" class="missing"/);
  const colorbar = markup.slice(markup.indexOf('<g class="colorbar">'));
  for (const line of ["CKA", "higher = more similar", "scale 0 to 1", "no value"]) assert.ok(colorbar.includes(`>${line}<`));
});

test("without a pair page, cells are focusable images named by their hover text, not links", () => {
  const fig = figure(matrix, 900);
  const markup = svg(fig, "k", (i, j) => cellLines(matrix, i, j).join("; "), null);
  assert.ok(balanced(markup));
  assert.doesNotMatch(markup, /<a /);
  assert.equal((markup.match(/<g class="cell" tabindex="0" role="img"/g) || []).length, 4);
  assert.match(markup, /aria-label="conv1 × x; CKA: 0.9000"/);
});

/** @type {import("../../static/js/heatmap/figure.js").Matrix} */
const stitched = {
  ...matrix,
  measure: { name: "accuracy", range: [0, 1], larger_is_more_similar: true, reading: "higher = better" },
  value: [
    [0.335, null],
    [0.9, 0.96],
  ],
  marks: [
    { label: "chance", value: 0.335 },
    { label: "B alone", value: 0.95 },
  ],
};

test("reference marks sit on the colour bar at their values, where the gradient has their cells' colour", () => {
  for (const measure of [stitched.measure, { ...stitched.measure, range: /** @type {[number, number]} */ ([0, 2]), larger_is_more_similar: false }]) {
    const data = { ...stitched, measure };
    const { bar } = figure(data, 1000);
    const scale = colourScale(data.value, measure);
    assert.deepEqual(bar.marks.map((m) => m.text), ["chance 0.34", "B alone 0.95"]);
    /** @type {[number, number]} */
    const ends = [bar.y, bar.y + bar.h];
    bar.marks.forEach((m, k) => {
      const value = /** @type {import("../../static/js/heatmap/figure.js").Reference[]} */ (data.marks)[k].value;
      // y runs from zmax at the top to zmin at the bottom, as the ticks do ...
      assert.ok(Math.abs(m.y - (bar.y + (bar.h * (scale.zmax - value)) / (scale.zmax - scale.zmin))) < 1e-9);
      assert.ok(m.y >= ends[0] && m.y <= ends[1]);
      // ... and the gradient (offset 0 at the bottom) is there the colour a cell of that value has.
      const t = (bar.y + bar.h - m.y) / bar.h;
      const stops = gradient(scale);
      const k1 = Math.max(1, stops.findIndex(([p]) => p >= t));
      const [t0, c0] = stops[k1 - 1];
      const [t1, c1] = stops[k1];
      const f = (t - t0) / (t1 - t0);
      const drawn = channels(c0).map((c, i) => c + f * (channels(c1)[i] - c));
      drawn.forEach((c, i) => assert.ok(Math.abs(c - channels(colourOf(value, scale))[i]) <= 1.5));
      assert.ok(m.x > bar.x + bar.w, "its text right of the bar");
    });
    // The cell at chance is the colour the mark points at.
    assert.equal(figure(data, 1000).cells[0].fill, colourOf(0.335, scale));
  }
});

test("marks' texts keep clear of the ticks' and of each other; a value outside the scale is marked at its end", () => {
  const close = { ...stitched, marks: [{ label: "chance", value: 0.5 }, { label: "B alone", value: 0.51 }, { label: "top", value: 0.99 }] };
  const { bar } = figure(close, 1000);
  const texts = [...bar.ticks.map((t) => t.y), ...bar.marks.map((m) => m.textY)];
  for (const [a, ya] of texts.entries()) {
    for (const [b, yb] of texts.entries()) if (a !== b) assert.ok(Math.abs(ya - yb) >= 13, `${a} ${b}: ${ya} ${yb}`);
  }
  assert.ok(bar.marks.every((m) => m.textY >= bar.y && m.textY <= bar.y + bar.h));
  assert.equal(bar.marks[1].textY, bar.marks[1].y, "the higher value's text, placed first, stays at its mark");
  assert.notEqual(bar.marks[0].textY, bar.marks[0].y);
  assert.ok(Math.abs(bar.marks[0].y - (bar.y + 0.5 * bar.h)) < 1e-9, "the line stays at the value when its text moves");
  const outside = figure({ ...stitched, marks: [{ label: "far", value: 1.7 }] }, 1000).bar;
  assert.equal(outside.marks[0].y, outside.y);
});

test("a cell's hover says its value relative to the marks; a matrix without marks draws as before", () => {
  assert.deepEqual(cellLines(stitched, 1, 0).slice(2), ["+0.5650 above chance (0.3350)", "−0.0500 below B alone (0.9500)"]);
  assert.deepEqual(cellLines(stitched, 0, 0).slice(2), ["at chance (0.3350)", "−0.6150 below B alone (0.9500)"]);
  assert.deepEqual(cellLines(stitched, 0, 1), ["conv1 × y", "accuracy: — (no value for this pair)"]);
  const plain = figure(matrix, 1000);
  assert.deepEqual(plain.bar.marks, []);
  assert.deepEqual(figure({ ...matrix, marks: null }, 1000), plain);
  assert.doesNotMatch(svg(plain, "k", () => "", null), /class="mark"/);
});

test("the marks' texts are escaped in the SVG", () => {
  const hostile = { ...stitched, marks: [{ label: '<img src=x onerror="a">', value: 0.5 }] };
  const markup = svg(figure(hostile, 900), "k", (i, j) => cellLines(hostile, i, j).join("; "), null);
  assert.ok(balanced(markup));
  assert.doesNotMatch(markup, /<img/);
  assert.equal((markup.match(/<g class="mark">/g) || []).length, 1);
  assert.match(markup, /&#60;img src=x onerror=&#34;a&#34;&#62; 0.5<\/text>/);
});
