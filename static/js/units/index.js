// @ts-check
// Unit matching page islands: every [data-units-chart] element is drawn from the embedded chart JSON
// (json_script "units-charts"): "share" (share above t) or "sparse" (sparse prediction). Sets data-drawn="true" once
// drawn. Runs on page load and every htmx swap. Plotly is the classic script plotly/plotly-cartesian.min.js, loaded
// before this module.

import { shareFigure, sparseFigure } from "./figure.js";

/** @param {Element | Document} root */
function init(root) {
  const script = document.getElementById("units-charts");
  if (!window.Plotly || !script || !root.querySelectorAll) return;
  const charts = JSON.parse(script.textContent || "");
  root.querySelectorAll("[data-units-chart]").forEach((node) => {
    const el = /** @type {HTMLElement} */ (node);
    if (el.dataset.drawn) return;
    const which = String(el.dataset.unitsChart);
    const { traces, layout } = which === "share" ? shareFigure(charts.share) : sparseFigure(charts.sparse);
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
