// @ts-check
// Probe page islands: for each family (the json_script named by data-probe, families[data-index]) a layer × magnitude
// heatmap of the statistic its section's select names (its definition written under the select), and invariance over depth, one curve per magnitude, other
// checkpoints' runs dashed. Sets data-drawn="true" on each plot once drawn. Runs on page load and every htmx swap.
// Plotly is the classic script plotly/plotly-cartesian.min.js, loaded before this module.

import { curvesFigure, heatmapFigure } from "./figure.js";

const CONFIG = { displaylogo: false, responsive: true };

/** @param {HTMLElement} el */
function data(el) {
  const script = /** @type {HTMLElement} */ (document.getElementById(String(el.dataset.probe)));
  const all = /** @type {import("./figure.js").Summary} */ (JSON.parse(script.textContent || ""));
  return { all, family: all.families[Number(el.dataset.index)] };
}

/**
 * @param {HTMLElement} el
 * @param {string} measure
 */
function heatmap(el, measure) {
  const { all, family } = data(el);
  const { traces, layout } = heatmapFigure(all, family, measure);
  Plotly.react(el, traces, layout, CONFIG).then(() => (el.dataset.drawn = "true"));
}

/** @param {HTMLElement} el */
function curves(el) {
  const { family } = data(el);
  const { traces, layout } = curvesFigure(family);
  Plotly.react(el, traces, layout, CONFIG).then(() => (el.dataset.drawn = "true"));
}

/** @type {WeakSet<Element>} the families set up */
const setUp = new WeakSet();

/** @param {Element | Document} root */
function init(root) {
  if (!window.Plotly || !root.querySelectorAll) return;
  root.querySelectorAll(".probe-family").forEach((section) => {
    if (setUp.has(section)) return;
    setUp.add(section);
    const map = /** @type {HTMLElement} */ (section.querySelector(".probe-heatmap"));
    const select = /** @type {HTMLSelectElement} */ (section.querySelector("select[name=measure]"));
    const definition = section.querySelector(".measure-definition");
    heatmap(map, select.value);
    select.addEventListener("change", () => {
      heatmap(map, select.value);
      if (definition) definition.textContent = data(map).all.measures[select.value].definition || "";
    });
    curves(/** @type {HTMLElement} */ (section.querySelector(".probe-curves")));
  });
}

function boot() {
  init(document);
  if (window.htmx) htmx.onLoad(init);
}
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
