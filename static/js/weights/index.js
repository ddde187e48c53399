// @ts-check
// Weight-space page islands: every [data-chart] element is a line chart; its data-chart names the figure
// (figure.js figureFor) drawn from the embedded charts JSON (json_script "weights-charts"). Sets data-drawn="true" once
// drawn. Runs on page load and every htmx swap. Plotly is the classic script plotly/plotly-cartesian.min.js, loaded
// before this module.

import { figureFor } from "./figure.js";

/** @param {Element | Document} root */
function init(root) {
  const script = document.getElementById("weights-charts");
  if (!window.Plotly || !script || !root.querySelectorAll) return;
  const charts = JSON.parse(script.textContent || "");
  root.querySelectorAll("[data-chart]").forEach((node) => {
    const el = /** @type {HTMLElement} */ (node);
    if (el.dataset.drawn) return;
    const { traces, layout } = figureFor(charts, String(el.dataset.chart));
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
