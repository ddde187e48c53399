// Explorer page: a click on a point of the scatter loads that sample's panel (its nearest
// neighbours in the original space) into #point-panel with htmx.
(function () {
  "use strict";

  document.addEventListener("scatter:select", (event) => {
    const panel = document.getElementById("point-panel");
    if (!panel || event.detail.index < 0) return;
    htmx.ajax("GET", `${panel.dataset.pointUrl}${event.detail.index}/`, {
      target: "#point-panel",
      swap: "outerHTML",
    });
  });
})();
