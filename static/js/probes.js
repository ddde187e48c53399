// Probe page islands: for each family (the json_script named by data-probe, families[data-index]) a layer × magnitude
// heatmap of the statistic its section's select names, and invariance over depth, one curve per magnitude, other
// checkpoints' runs dashed. Sets data-drawn="true" on each plot once drawn. Runs on page load and every htmx swap.
(function () {
  "use strict";

  const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];
  const LAYOUT = { margin: { l: 90, r: 10, t: 10, b: 50 }, height: 300, font: { size: 11 } };
  const CONFIG = { displaylogo: false, responsive: true };

  function data(el) {
    const all = JSON.parse(document.getElementById(el.dataset.probe).textContent);
    return { all, family: all.families[Number(el.dataset.index)] };
  }

  function fmt(v) {
    return v === null || v === undefined ? "—" : v.toFixed(3);
  }

  function heatmap(el, measure) {
    const { all, family } = data(el);
    const m = all.measures[measure];
    const z = family[measure];
    const x = family.magnitudes.map((t) => `${t} ${family.unit}`);
    const text = family.layers.map((layer, i) =>
      family.magnitudes.map((t, j) => `<b>${layer}</b> at ${t} ${family.unit}<br>${m.name}: ${fmt(z[i][j])}`)
    );
    Plotly.react(
      el,
      [
        {
          type: "heatmap",
          z,
          x,
          y: family.layers,
          zmin: m.range[0],
          zmax: m.range[1],
          colorscale: "Viridis",
          text,
          hoverinfo: "text",
          colorbar: { title: { text: m.name, side: "right" }, thickness: 12 },
        },
      ],
      { ...LAYOUT, yaxis: { autorange: "reversed", automargin: true }, xaxis: { title: { text: family.unit } } },
      CONFIG
    ).then(() => (el.dataset.drawn = "true"));
  }

  function curves(el) {
    const { family } = data(el);
    const traces = [];
    const series = [{ name: "", invariance: family.invariance, layers: family.layers, dash: "solid" }].concat(
      family.overlays.map((o) => ({ name: ` · ${o.checkpoint}`, invariance: o.invariance, layers: o.layers, dash: "dash" }))
    );
    series.forEach((s) => {
      family.magnitudes.forEach((t, j) => {
        if (t === 0) return; // invariance 1 by definition
        traces.push({
          type: "scatter",
          mode: "lines+markers",
          x: s.layers,
          y: s.invariance.map((row) => row[j]),
          name: `${t} ${family.unit}${s.name}`,
          line: { color: COLOURS[j % COLOURS.length], dash: s.dash },
        });
      });
    });
    Plotly.react(
      el,
      traces,
      { ...LAYOUT, yaxis: { title: { text: "invariance" }, range: [Math.min(0, ...traces.flatMap((t) => t.y)) - 0.05, 1.05] }, legend: { font: { size: 10 } } },
      CONFIG
    ).then(() => (el.dataset.drawn = "true"));
  }

  function init(root) {
    if (!window.Plotly || !root.querySelectorAll) return;
    root.querySelectorAll(".probe-family").forEach((section) => {
      if (section._probe) return;
      section._probe = true;
      const map = section.querySelector(".probe-heatmap");
      const select = section.querySelector("select[name=measure]");
      heatmap(map, select.value);
      select.addEventListener("change", () => heatmap(map, select.value));
      curves(section.querySelector(".probe-curves"));
    });
  }

  function boot() {
    init(document);
    if (window.htmx) htmx.onLoad(init);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
