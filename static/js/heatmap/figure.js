// @ts-check
// The heatmap's figure from the matrix the server embeds, as plain geometry (svg.js writes it, index.js mounts it):
// where each cell, tick label and axis title goes for a given width, each cell's colour (scale.js) and the value
// written in it, what each cell says on hover, and the colour bar (its gradient, ticks and what it says).
// Drawn by our own code, not plotly.js: the comparison page then loads no 1.5 MB charting library.

import { colourOf, colourScale, gradient, inkOn, scaleNote, tick, ticks } from "./scale.js";

/**
 * The matrix as the server embeds it (webapp/runs/results.py); the optional grids are absent or null when the run has
 * none of them. `reading` says what a higher value means ("more similar", "better retrieval"). `marks`, where given,
 * are reference values of the whole matrix (the stitching page's chance and B alone): marked on the colour bar, and
 * each cell's hover says its value relative to them.
 * @typedef {{name: string, range: [number, number], larger_is_more_similar: boolean, can_be_negative?: boolean,
 *   reading?: string}} Measure
 * @typedef {(number | null)[][]} Grid
 * @typedef {{label: string, value: number}} Reference
 * @typedef {{measure: Measure, layers_a: string[], layers_b: string[], value: Grid, ci_low?: Grid | null,
 *   ci_high?: Grid | null, baseline?: Grid | null, baseline_std?: Grid | null, n?: number,
 *   d_a?: (number | null)[], d_b?: (number | null)[], estimator?: (string | null)[][] | null,
 *   marks?: Reference[] | null, checkpoint_a: {name: string}, checkpoint_b: {name: string}}} Matrix
 *
 * A cell: its row (A's layer) and column (B's layer), its box, its fill (null: no value), the value written in it
 * (null where the cell is too small or has no value) and that text's colour.
 * @typedef {{row: number, col: number, x: number, y: number, w: number, h: number, fill: string | null,
 *   label: string | null, ink: string}} Cell
 * @typedef {{text: string, x: number, y: number}} Label
 * A reference value on the colour bar: a line across the bar at `y` (where its value's colour is), its text at
 * (x, textY), moved off the ticks' and the other marks' texts.
 * @typedef {{text: string, x: number, y: number, textY: number}} Mark
 * @typedef {{x: number, y: number, w: number, h: number, stops: [number, string][], ticks: Label[],
 *   marks: Mark[], lines: Label[], missing: Label | null}} ColourBar
 * @typedef {{width: number, height: number, plot: {x: number, y: number, w: number, h: number}, cells: Cell[],
 *   rows: Label[], cols: Label[], rotated: boolean, xTitle: Label, yTitle: Label, bar: ColourBar}} Figure
 */

export const FONT = 12; // px, tick labels and titles
const CHAR = 7; // px, the width of a character at FONT (an estimate that errs wide)
const SMALL_CHAR = 6.2; // px, at the colour bar's 11 px
const LINE = 15; // px between the colour bar's lines
const ROW = 56; // px, the height of a row of cells
const MIN_PLOT_H = 240;
const MAX_CELL_W = 160; // px: wider cells only stretch the picture
const MIN_CELL_W = 14;
const BAR_W = 14;
const MARK_GAP = 13; // px, the least distance between two texts beside the colour bar

/**
 * A score for people: four decimals, "—" for none.
 * @param {number | null | undefined} v
 */
export function fmt(v) {
  return v === null || v === undefined ? "—" : v.toFixed(4);
}

/**
 * What cell (i, j) says on hover, line by line (plain text): the two layers, the value, and the confidence interval,
 * baseline and estimator when the matrix has them.
 * @param {Matrix} data
 * @param {number} i
 * @param {number} j
 * @returns {string[]}
 */
export function cellLines(data, i, j) {
  const m = data.measure;
  const v = data.value[i][j];
  const lines = [
    `${data.layers_a[i]} × ${data.layers_b[j]}`,
    v === null ? `${m.name}: — (no value for this pair)` : `${m.name}: ${fmt(v)}`,
  ];
  if (data.ci_low && data.ci_low[i][j] !== null) {
    lines.push(`95% CI: ${fmt(data.ci_low[i][j])} – ${fmt(/** @type {Grid} */ (data.ci_high)[i][j])}`);
  }
  if (data.baseline) {
    lines.push(`baseline: ${fmt(data.baseline[i][j])} ± ${fmt(/** @type {Grid} */ (data.baseline_std)[i][j])}`);
    lines.push(`n = ${data.n}, d = ${(data.d_a || [])[i]} × ${(data.d_b || [])[j]}`);
  }
  if (data.estimator && data.estimator[i][j]) lines.push(`estimator: ${data.estimator[i][j]}`);
  if (v !== null) for (const mark of data.marks || []) lines.push(relative(v, mark));
  return lines;
}

/**
 * Where a value lies relative to a reference, e.g. "+0.0120 above chance (0.3350)", "at B alone (0.9500)".
 * @param {number} v
 * @param {Reference} mark
 */
export function relative(v, mark) {
  const d = Number((v - mark.value).toFixed(4));
  const where = d === 0 ? "at" : `${d > 0 ? "+" : "−"}${fmt(Math.abs(d))} ${d > 0 ? "above" : "below"}`;
  return `${where} ${mark.label} (${fmt(mark.value)})`;
}

/**
 * The colour bar's texts for its marks: each at its own y unless that comes closer than MARK_GAP to a tick's text
 * or a mark's placed before (the higher values first), then at the nearest y that does not, within the bar.
 * @param {number[]} ys the marks' y
 * @param {number[]} taken the ticks' y
 * @param {number} top
 * @param {number} bottom
 * @returns {number[]}
 */
export function markTextYs(ys, taken, top, bottom) {
  const placed = [...taken];
  const free = (/** @type {number} */ y) => placed.every((p) => Math.abs(p - y) >= MARK_GAP);
  /** @type {number[]} */
  const out = new Array(ys.length);
  for (const k of ys.map((_, k) => k).sort((a, b) => ys[a] - ys[b])) {
    let y = ys[k];
    for (let step = 1; !free(y) && step <= bottom - top; step += 1) {
      y = [ys[k] + step, ys[k] - step].find((c) => c >= top && c <= bottom && free(c)) ?? y;
    }
    placed.push(y);
    out[k] = y;
  }
  return out;
}

/**
 * The colour bar's lines: the measure, what higher (or lower) means, then the scale's span, where 0 is and what was
 * clipped, one part a line.
 * @param {Measure} m
 * @param {import("./scale.js").Scale} scale
 */
export function colourBarLines(m, scale) {
  const reading = m.reading || (m.larger_is_more_similar ? "higher = more similar" : "lower = more similar");
  return [m.name, reading, ...scaleNote(scale).split(" · ")];
}

/**
 * The longest of some texts, in characters.
 * @param {string[]} texts
 */
function longest(texts) {
  return Math.max(0, ...texts.map((t) => t.length));
}

/**
 * The heatmap of `data` laid out in `width` px: rows are A's layers top down, columns B's left to right, the colour
 * bar on the right. Cells keep a readable size: a wide page leaves room on the right rather than stretch them.
 * @param {Matrix} data
 * @param {number} width
 * @returns {Figure}
 */
export function figure(data, width) {
  const m = data.measure;
  const scale = colourScale(data.value, m);
  const na = data.layers_a.length;
  const nb = data.layers_b.length;

  const lines = colourBarLines(m, scale);
  const tickLabels = ticks(scale);
  const marks = data.marks || [];
  const markTexts = marks.map((mark) => `${mark.label} ${tick(mark.value)}`);
  const tickW = CHAR * longest(tickLabels.ticktext.concat(markTexts)) + 10;
  const linesW = Math.max(CHAR * lines[0].length, SMALL_CHAR * longest(lines.slice(1).concat(["no value"])));
  const right = 18 + BAR_W + 6 + tickW + linesW + 8;
  const left = 24 + Math.max(40, CHAR * longest(data.layers_a)) + 8; // the rotated axis title, labels, a gap
  const top = 14; // room for the colour bar's top tick label

  const plotW = Math.max(nb * MIN_CELL_W, Math.min(nb * MAX_CELL_W, width - left - right));
  const plotH = Math.max(MIN_PLOT_H, ROW * na);
  const cw = plotW / nb;
  const ch = plotH / na;

  // Column labels across when they fit their cell, else at 45° (as much room below as they are long).
  const colChars = longest(data.layers_b);
  const rotated = CHAR * colChars + 6 > cw;
  const labelsH = rotated ? Math.ceil(CHAR * colChars * Math.SQRT1_2) + 16 : 22;
  const plot = { x: left, y: top, w: plotW, h: plotH };
  const height = Math.max(top + plotH + labelsH + 30, top + LINE * (lines.length + 2) + 10);

  const writeValues = cw >= 34 && ch >= 16;
  /** @type {Cell[]} */
  const cells = [];
  data.layers_a.forEach((_, i) =>
    data.layers_b.forEach((_, j) => {
      const v = data.value[i][j];
      cells.push({
        row: i,
        col: j,
        x: plot.x + j * cw,
        y: plot.y + i * ch,
        w: cw,
        h: ch,
        fill: v === null ? null : colourOf(v, scale),
        label: v === null || !writeValues ? null : v.toFixed(2),
        ink: v === null ? "#555" : inkOn(v, scale),
      });
    })
  );

  const rows = data.layers_a.map((text, i) => ({ text, x: plot.x - 6, y: plot.y + (i + 0.5) * ch }));
  const cols = data.layers_b.map((text, j) => ({ text, x: plot.x + (j + 0.5) * cw, y: plot.y + plotH + 16 }));
  const xTitle = { text: data.checkpoint_b.name, x: plot.x + plotW / 2, y: plot.y + plotH + labelsH + 16 };
  const yTitle = { text: data.checkpoint_a.name, x: 14, y: plot.y + plotH / 2 };

  const bar = { x: plot.x + plotW + 18, y: plot.y, w: BAR_W, h: plotH };
  const at = (/** @type {number} */ v) => bar.y + (bar.h * (scale.zmax - v)) / (scale.zmax - scale.zmin);
  const tickYs = tickLabels.tickvals.map(at);
  // A reference outside the scale is marked at the end it passes, as its cells' colours are.
  const markYs = marks.map((mark) => at(Math.max(scale.zmin, Math.min(scale.zmax, mark.value))));
  const markTextY = markTextYs(markYs, tickYs, bar.y, bar.y + bar.h);
  const linesX = bar.x + BAR_W + 6 + tickW;
  const anyMissing = cells.some((c) => c.fill === null);
  return {
    width: Math.ceil(bar.x + BAR_W + 6 + tickW + linesW + 8),
    height,
    plot,
    cells,
    rows,
    cols,
    rotated,
    xTitle,
    yTitle,
    bar: {
      ...bar,
      stops: gradient(scale),
      ticks: tickYs.map((y, k) => ({ text: tickLabels.ticktext[k], x: bar.x + BAR_W + 4, y })),
      marks: markYs.map((y, k) => ({ text: markTexts[k], x: bar.x + BAR_W + 10, y, textY: markTextY[k] })),
      lines: lines.map((text, k) => ({ text, x: linesX, y: bar.y + 12 + LINE * k })),
      missing: anyMissing ? { text: "no value", x: linesX + 18, y: bar.y + 12 + LINE * (lines.length + 0.5) } : null,
    },
  };
}
