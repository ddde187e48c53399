// Heatmap island (layer × layer, model × model, query model × gallery model): draws every [data-heatmap] element from the JSON the server
// embedded with json_script. Runs on page load and on every htmx swap.
(function () {
  "use strict";

  function fmt(v) {
    return v === null || v === undefined ? "—" : v.toFixed(4);
  }

  function draw(el) {
    const data = JSON.parse(document.getElementById(el.dataset.heatmap).textContent);
    const m = data.measure;
    const hover = data.layers_a.map((a, i) =>
      data.layers_b.map((b, j) =>
        `<b>${a}</b> × <b>${b}</b><br>${m.name}: ${fmt(data.value[i][j])}` +
        (!data.ci_low || data.ci_low[i][j] === null ? "" :
          `<br>95% CI: ${fmt(data.ci_low[i][j])} – ${fmt(data.ci_high[i][j])}`) +
        (!data.baseline ? "" :
          `<br>baseline: ${fmt(data.baseline[i][j])} ± ${fmt(data.baseline_std[i][j])}` +
          `<br>n = ${data.n}, d = ${data.d_a[i]} × ${data.d_b[j]}`) +
        (data.estimator && data.estimator[i][j] ? `<br>estimator: ${data.estimator[i][j]}` : "")
      )
    );
    const annotations = [];
    data.layers_a.forEach((a, i) =>
      data.layers_b.forEach((b, j) => {
        const v = data.value[i][j];
        if (v === null) return;
        const t = (v - m.range[0]) / (m.range[1] - m.range[0]);
        annotations.push({
          x: b, y: a, text: v.toFixed(2), showarrow: false,
          font: { size: 11, color: t > 0.6 ? "#222" : "#fff" },
        });
      })
    );
    const trace = {
      type: "heatmap",
      x: data.layers_b,
      y: data.layers_a,
      z: data.value,
      zmin: m.range[0],
      zmax: m.range[1],
      colorscale: "Viridis",
      reversescale: !m.larger_is_more_similar,
      text: hover,
      hoverinfo: "text",
      colorbar: { title: { text: m.name + (m.larger_is_more_similar ? " (higher = more similar)" : "") } },
    };
    const layout = {
      // Room for the longest row label (about 7 px a character at 12 px).
      margin: { l: Math.max(110, 7 * Math.max(...data.layers_a.map((a) => a.length))), r: 20, t: 20, b: 90 },
      xaxis: { title: { text: data.checkpoint_b.name }, type: "category" },
      yaxis: { title: { text: data.checkpoint_a.name }, type: "category", autorange: "reversed" },
      annotations: annotations,
      height: Math.max(360, 60 * data.layers_a.length + 140),
    };
    Plotly.newPlot(el, [trace], layout, { responsive: true, displaylogo: false }).then(() => {
      if (!el.dataset.pairUrl) return; // no drill-down page for this matrix
      el.on("plotly_click", (event) => {
        const [row, col] = event.points[0].pointIndex;
        window.location.href = `${el.dataset.pairUrl}${row}/${col}/`;
      });
    });
    el.dataset.drawn = "true";
  }

  function init(root) {
    root.querySelectorAll("[data-heatmap]").forEach((el) => {
      if (!el.dataset.drawn) draw(el);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    init(document);
    if (window.htmx) htmx.onLoad(init);
  });
})();
