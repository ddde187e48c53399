// @ts-check
// Heatmap island (layer × layer, model × model, query model × gallery model, step × step): draws every
// [data-heatmap] element from the JSON the server embedded with json_script, as SVG (figure.js, svg.js), on page
// load and on every htmx swap, and again when its width changes. Hovering or focusing a cell shows what it says
// (value, interval, baseline, estimator); where the element has data-pair-url, a cell is a link to its pair's page.
// When drawn, the element gets data-drawn="true" and a "heatmap:drawn" event (tests and the page benchmark wait
// for it).

import { cellLines, figure } from "./figure.js";
import { svg } from "./svg.js";

/**
 * Show cell (i, j)'s hover text in the element's tooltip, beside (x, y) px from the element's corner.
 * @param {HTMLElement} tip
 * @param {string[]} lines
 * @param {number} x
 * @param {number} y
 * @param {number} width the element's width: the tooltip flips to the left of the point near the right edge
 */
function showTip(tip, lines, x, y, width) {
  tip.replaceChildren(
    ...lines.map((text, k) => {
      const line = document.createElement(k === 0 ? "strong" : "span");
      line.textContent = text;
      return line;
    })
  );
  tip.hidden = false;
  const left = x + 14 + tip.offsetWidth > width ? x - 14 - tip.offsetWidth : x + 14;
  tip.style.left = `${Math.max(0, left)}px`;
  tip.style.top = `${y + 14}px`;
}

/** @param {HTMLElement} el */
function mount(el) {
  const key = String(el.dataset.heatmap);
  const script = /** @type {HTMLElement} */ (document.getElementById(key));
  const data = /** @type {import("./figure.js").Matrix} */ (JSON.parse(script.textContent || ""));
  const pairUrl = el.dataset.pairUrl;
  const href = pairUrl ? (/** @type {number} */ i, /** @type {number} */ j) => `${pairUrl}${i}/${j}/` : null;
  const label = (/** @type {number} */ i, /** @type {number} */ j) => cellLines(data, i, j).join("; ");

  const holder = document.createElement("div");
  holder.className = "heatmap-plot";
  const tip = document.createElement("div");
  tip.className = "heatmap-tip";
  tip.hidden = true;
  tip.setAttribute("aria-hidden", "true"); // the cells' own names say the same to assistive technology
  el.replaceChildren(holder, tip);

  let drawnWidth = -1;
  const draw = () => {
    const width = el.clientWidth;
    if (width === drawnWidth) return;
    drawnWidth = width;
    holder.innerHTML = svg(figure(data, width), `hm-${key}`, label, href);
  };
  draw();

  /** @param {EventTarget | null} target */
  const cellOf = (target) => /** @type {Element | null} */ (target instanceof Element ? target.closest(".cell") : null);
  /** @param {Element} cell */
  const linesOf = (cell) => cellLines(data, Number(cell.getAttribute("data-row")), Number(cell.getAttribute("data-col")));
  holder.addEventListener("pointermove", (event) => {
    const cell = cellOf(event.target);
    if (!cell) {
      tip.hidden = true;
      return;
    }
    const box = el.getBoundingClientRect();
    showTip(tip, linesOf(cell), event.clientX - box.left, event.clientY - box.top, el.clientWidth);
  });
  holder.addEventListener("pointerleave", () => (tip.hidden = true));
  holder.addEventListener("focusin", (event) => {
    const cell = cellOf(event.target);
    if (!cell) return;
    const box = el.getBoundingClientRect();
    const at = cell.getBoundingClientRect();
    showTip(tip, linesOf(cell), at.right - box.left - 10, at.top - box.top, el.clientWidth);
  });
  holder.addEventListener("focusout", () => (tip.hidden = true));
  if (typeof ResizeObserver !== "undefined") new ResizeObserver(draw).observe(el);

  el.dataset.drawn = "true";
  el.dispatchEvent(new CustomEvent("heatmap:drawn", { bubbles: true }));
}

/** @param {Element | Document} root */
function init(root) {
  root.querySelectorAll("[data-heatmap]").forEach((node) => {
    const el = /** @type {HTMLElement} */ (node);
    if (!el.dataset.drawn) mount(el);
  });
}

// A module runs once the document is parsed: draw now, not at DOMContentLoaded (which waits for deferred scripts).
init(document);
document.addEventListener("DOMContentLoaded", () => {
  if (window.htmx) htmx.onLoad(init);
});
