// @ts-check
// Nested-embedding page islands: every [data-chart] element is a line chart against the prefix dimension; its
// data-chart names the key of the embedded chart JSON (json_script "nested-charts"). Sets data-drawn="true" once drawn.
// Runs on page load and every htmx swap. Plotly is the classic script plotly/plotly-cartesian.min.js, loaded before
// this module.

import { prefixFigure } from "./figure.js";

/** @param {Element | Document} root */
function init(root) {
  const script = document.getElementById("nested-charts");
  if (!window.Plotly || !script || !root.querySelectorAll) return;
  const all = JSON.parse(script.textContent || "");
  root.querySelectorAll("[data-chart]").forEach((node) => {
    const el = /** @type {HTMLElement} */ (node);
    if (el.dataset.drawn) return;
    const { traces, layout } = prefixFigure(all.charts[String(el.dataset.chart)], all.dims);
    Plotly.newPlot(el, traces, layout, { displaylogo: false, responsive: true }).then(
      () => (el.dataset.drawn = "true"),
    );
  });
}

function boot() {
  init(document);
  if (window.htmx) htmx.onLoad(init);
}
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
