// @ts-check
// The scatter's legend (top right): categorical → one toggle button per name (any pressed → only those codes in
// focus); continuous → the title, a gradient bar over the domain, and "from" / "to" inputs for the range. It shows
// the filter (sync) and asks the widget to change it (hooks); what the filter does is in filter.js.

import { RAMP_CSS, clipped, colourOf } from "./colours.js";
import { countCodes, outside } from "./filter.js";
import { fmt } from "./format.js";

/**
 * @typedef {object} LegendHooks
 * @property {(f: unknown[] | null, byUser: boolean) => void} setFilter apply a filter; byUser: the page hears of it
 * @property {(code: number) => void} toggle the user toggled a categorical name
 * @property {() => void} committed the user committed a range input (its "change")
 */
/**
 * @typedef {object} Legend
 * @property {HTMLElement} element
 * @property {(codes: Set<number>, range: import("./filter.js").Range | null) => void} sync show the filter
 */

/**
 * The legend of a colouring (null for a categorical one without names).
 * @param {import("./colours.js").Colouring} colouring
 * @param {Uint16Array} codes the points' codes, for the counts by name
 * @param {LegendHooks} hooks
 * @returns {Legend | null}
 */
export function createLegend(colouring, codes, hooks) {
  if (colouring.kind === "continuous") return continuousLegend(colouring, hooks);
  if (colouring.names.length) return categoricalLegend(colouring, codes, hooks);
  return null;
}

/**
 * @param {string} title
 * @param {LegendHooks} hooks
 */
function legendFrame(title, hooks) {
  const wrap = document.createElement("div");
  wrap.className = "scatter-legend";
  const all = document.createElement("button");
  all.type = "button";
  all.className = "scatter-legend-all";
  all.textContent = "show all";
  all.addEventListener("click", () => hooks.setFilter(null, true));
  wrap.append(all);
  if (title) {
    const heading = document.createElement("div");
    heading.className = "scatter-legend-title";
    heading.textContent = title;
    wrap.append(heading);
  }
  return wrap;
}

/**
 * @param {{title: string, names: string[]}} colouring
 * @param {Uint16Array} codes
 * @param {LegendHooks} hooks
 * @returns {Legend}
 */
function categoricalLegend(colouring, codes, hooks) {
  const wrap = legendFrame(colouring.title, hooks);
  const counts = countCodes(codes, colouring.names.length);
  const items = colouring.names.map((name, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "scatter-legend-item";
    b.dataset.label = String(i);
    b.setAttribute("aria-pressed", "false");
    b.title = `${name}: ${counts[i].toLocaleString()} point${counts[i] === 1 ? "" : "s"} (click to filter)`;
    const swatch = document.createElement("span");
    swatch.className = "scatter-swatch";
    swatch.style.background = colourOf(i);
    const text = document.createElement("span");
    text.textContent = name;
    b.append(swatch, text);
    if (!counts[i]) b.classList.add("empty");
    b.addEventListener("click", () => hooks.toggle(i));
    wrap.append(b);
    return b;
  });
  return {
    element: wrap,
    sync(codeFilter) {
      wrap.classList.toggle("filtering", codeFilter.size > 0);
      items.forEach((b) => b.setAttribute("aria-pressed", String(codeFilter.has(Number(b.dataset.label)))));
    },
  };
}

/**
 * @param {{title: string, values: Float32Array, domain: [number, number], scale: string}} colouring
 * @param {LegendHooks} hooks
 * @returns {Legend}
 */
function continuousLegend(colouring, hooks) {
  const wrap = legendFrame(colouring.title, hooks);
  wrap.classList.add("scatter-legend-continuous");
  const [lo, hi] = colouring.domain;
  const bar = document.createElement("div");
  bar.className = "scatter-bar";
  bar.style.background = RAMP_CSS;
  const below = document.createElement("div"), above = document.createElement("div");
  below.className = above.className = "scatter-bar-mask";
  below.style.left = above.style.right = "0";
  bar.append(below, above);
  const ends = document.createElement("div");
  ends.className = "scatter-bar-ends";
  const min = document.createElement("span"), max = document.createElement("span");
  const [under, over] = clipped(colouring.values, colouring.domain);
  min.textContent = `${under ? "≤ " : ""}${fmt(lo)}`;
  max.textContent = `${over ? "≥ " : ""}${fmt(hi)}`;
  ends.append(min, max);
  const scale = document.createElement("div");
  scale.className = "scatter-scale";
  scale.dataset.clipped = String(under + over);
  const clip = under + over
    ? `clipped: ${clipText(under, "below")}, ${clipText(over, "above")}, drawn in the end colours`
    : "not clipped";
  scale.textContent = `${fmt(lo)} to ${fmt(hi)}: ${colouring.scale}; ${clip}`;
  const row = document.createElement("div");
  row.className = "scatter-range";
  /**
   * @param {string} name
   * @param {number} placeholder
   */
  const input = (name, placeholder) => {
    const label = document.createElement("label");
    const i = document.createElement("input");
    i.type = "number";
    i.step = "any";
    i.name = name;
    i.placeholder = fmt(placeholder);
    i.setAttribute("aria-label", `${colouring.title || "value"} ${name}`);
    // The plot follows the typing; the page hears of the change once it is committed.
    i.addEventListener("input", () => hooks.setFilter([from.value, to.value], false));
    i.addEventListener("change", () => {
      hooks.setFilter([from.value, to.value], false);
      hooks.committed();
    });
    label.append(name, i);
    row.append(label);
    return i;
  };
  const from = input("from", lo), to = input("to", hi);
  wrap.append(bar, ends, scale, row);
  return {
    element: wrap,
    sync(_codes, range) {
      wrap.classList.toggle("filtering", range !== null);
      const [left, right] = outside(range, colouring.domain);
      below.style.width = `${100 * left}%`;
      above.style.width = `${100 * right}%`;
      // Leave an input alone while it is being typed in (its text may not be a number yet).
      [from, to].forEach((field, k) => {
        if (field === document.activeElement) return;
        field.value = range && Number.isFinite(range[k]) ? String(range[k]) : "";
      });
    },
  };
}

/**
 * "3 values below" (what the legend says of values beyond one end of the scale).
 * @param {number} count
 * @param {string} where
 */
function clipText(count, where) {
  return `${count.toLocaleString("en")} value${count === 1 ? "" : "s"} ${where}`;
}
