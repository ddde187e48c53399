// @ts-check
// Heatmap island (layer × layer, model × model, query model × gallery model): draws every [data-heatmap] element from the JSON the server
// embedded with json_script. Runs on page load and on every htmx swap.
// Plotly is the classic script plotly/plotly-cartesian.min.js, loaded before this module.

import { figure } from "./figure.js";

/** @param {HTMLElement} el */
function draw(el) {
  const script = /** @type {HTMLElement} */ (document.getElementById(String(el.dataset.heatmap)));
  const data = /** @type {import("./figure.js").Matrix} */ (JSON.parse(script.textContent || ""));
  const { trace, layout } = figure(data);
  Plotly.newPlot(el, [trace], layout, { responsive: true, displaylogo: false }).then((plot) => {
    if (!el.dataset.pairUrl) return; // no drill-down page for this matrix
    plot.on("plotly_click", (event) => {
      const [row, col] = event.points[0].pointIndex;
      window.location.href = `${el.dataset.pairUrl}${row}/${col}/`;
    });
  });
  el.dataset.drawn = "true";
}

/** @param {Element | Document} root */
function init(root) {
  root.querySelectorAll("[data-heatmap]").forEach((node) => {
    const el = /** @type {HTMLElement} */ (node);
    if (!el.dataset.drawn) draw(el);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  init(document);
  if (window.htmx) htmx.onLoad(init);
});
