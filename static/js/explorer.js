// Explorer pages (one projection, or two side by side): wires the scatter islands (scatter.js) to the page.
// - "Colour by" select: options from the json_script named by data-colourings ({key, title, kind, url, names?, per_k?});
//   the values are fetched as binary (uint16 codes or float32) and given to every scatter on the page.
// - Lasso / box: the polygon is POSTed to the scatter's (or the .explorer section's) data-select-url; the server answers
//   the selection panel (#selection-panel), whose data-indices-url gives the uint32 indices to highlight everywhere.
// - Click: the point's panel (nearest neighbours in the original space) is loaded with htmx.
// - Side by side (.explorer[data-pair]): hover and click are linked, k slider, Procrustes-aligned right side, and the
//   list of samples whose neighbourhoods changed most.
// - The whole view is in the URL (colour, filter, sel, view, k, align) and restored from it, so a URL can be shared.
(function () {
  "use strict";

  function param(name) {
    return new URLSearchParams(window.location.search).get(name);
  }

  function setParam(name, value) {
    const p = new URLSearchParams(window.location.search);
    if (value === null || value === undefined || value === "") p.delete(name);
    else p.set(name, value);
    const query = p.toString();
    history.replaceState(history.state, "", `${window.location.pathname}${query ? "?" + query : ""}${window.location.hash}`);
  }

  function fetchBuffer(url) {
    return fetch(url, { credentials: "same-origin" }).then((r) => {
      if (!r.ok) throw new Error(`could not load ${url} (HTTP ${r.status})`);
      return r.arrayBuffer();
    });
  }

  function readJson(id) {
    const script = id && document.getElementById(id);
    if (!script) return [];
    try {
      return JSON.parse(script.textContent);
    } catch (e) {
      return [];
    }
  }

  function round(v) {
    return Number(v.toPrecision(6));
  }

  function setup(root) {
    if (root._explorer) return;
    root._explorer = true;
    const pair = root.dataset.pair === "true";
    const plots = Array.from(root.querySelectorAll(".scatter[data-coords-url]"));
    if (!plots.length) return;
    const select = root.querySelector("select[name=colour]");
    const colourings = select ? readJson(select.dataset.colourings) : [];
    const slider = root.querySelector("input[name=k]");
    const align = root.querySelector("input[name=align]");
    let colouring = null; // the descriptor shown
    let restoring = true; // while the URL's state is being applied, do not write it back

    const k = () => (slider ? Number(slider.value) : null);
    const others = (el) => plots.filter((p) => p !== el);

    // Colour ------------------------------------------------------------------------------------------------------
    if (select) {
      colourings.forEach((c) => {
        const option = document.createElement("option");
        option.value = c.key;
        option.textContent = c.title;
        select.append(option);
      });
      select.addEventListener("change", () => {
        colour(select.value).then(() => {
          setParam("colour", select.value === colourings[0].key ? null : select.value);
          setParam("filter", null);
        });
      });
    }

    function colour(key, filter) {
      const c = colourings.find((x) => x.key === key);
      if (!c) return Promise.resolve();
      const url = c.per_k ? `${c.url}${c.url.includes("?") ? "&" : "?"}k=${k()}` : c.url;
      root.dataset.colouring = "loading";
      return fetchBuffer(url)
        .then((buffer) => {
          const spec =
            c.kind === "categorical"
              ? { kind: "categorical", codes: new Uint16Array(buffer), names: c.names || [], title: c.title }
              : { kind: "continuous", values: new Float32Array(buffer), title: c.title };
          colouring = c;
          plots.forEach((p) => {
            p.scatter.colourBy(spec);
            if (filter) p.scatter.setFilter(filter);
          });
          root.dataset.colouring = c.key;
        })
        .catch((err) => {
          root.dataset.colouring = "error";
          console.error("explorer:", err);
        });
    }

    function encodeFilter(filter) {
      if (!filter || (Array.isArray(filter) && !filter.length)) return null;
      return colouring && colouring.kind === "continuous" ? filter.map(round).join("~") : filter.join(",");
    }

    function decodeFilter(text, kind) {
      if (!text) return null;
      const parts = text.split(kind === "continuous" ? "~" : ",").map(Number); // an open end is ±Infinity
      return parts.every((v) => !Number.isNaN(v)) ? parts : null;
    }

    // A legend filter applies to both sides of a pair, and is kept in the URL.
    plots.forEach((el) => {
      el.addEventListener("scatter:filter", (e) => {
        others(el).forEach((p) => p.scatter.setFilter(e.detail.filter));
        if (!restoring) setParam("filter", encodeFilter(e.detail.filter));
      });
      el.addEventListener("scatter:view", (e) => {
        if (restoring) return;
        const v = e.detail;
        setParam(el.dataset.side === "b" ? "view_b" : "view", [v.x, v.y, v.zoom].map(round).join(","));
      });
    });

    // Selection -----------------------------------------------------------------------------------------------------
    function highlight(indices) {
      plots.forEach((p) => p.scatter.highlight(indices));
    }

    function showSelection(panel) {
      if (!panel || !panel.dataset.indicesUrl) return;
      setParam("sel", panel.dataset.selection);
      fetchBuffer(panel.dataset.indicesUrl)
        .then((buffer) => highlight(new Uint32Array(buffer)))
        .catch((err) => console.error("explorer:", err));
    }

    function clearSelection() {
      highlight(null);
      setParam("sel", null);
      const panel = document.getElementById("selection-panel");
      if (panel) {
        const empty = document.createElement("div");
        empty.id = "selection-panel";
        empty.hidden = true;
        panel.replaceWith(empty);
      }
    }

    plots.forEach((el) => {
      el.addEventListener("scatter:lasso", (e) => {
        // The right side of a pair may show coordinates aligned to the left: its polygon is in that frame.
        const aligned = align && align.checked && el.dataset.alignedSelectUrl;
        const url = aligned ? el.dataset.alignedSelectUrl : el.dataset.selectUrl || root.dataset.selectUrl;
        htmx.ajax("POST", url, {
          values: { polygon: JSON.stringify(e.detail.polygon) },
          target: "#selection-panel",
          swap: "outerHTML",
        });
      });
    });

    document.body.addEventListener("htmx:afterSwap", (e) => {
      if (e.target.id === "selection-panel" || e.detail.target.id === "selection-panel") {
        showSelection(document.getElementById("selection-panel"));
      }
    });
    document.body.addEventListener("htmx:responseError", (e) => {
      const panel = document.getElementById("selection-panel");
      if (!panel || e.detail.target !== panel) return;
      const message = document.createElement("section");
      message.id = "selection-panel";
      message.className = "card";
      message.setAttribute("role", "alert");
      message.textContent = e.detail.xhr.responseText || "That selection could not be made.";
      panel.replaceWith(message);
    });
    document.body.addEventListener("click", (e) => {
      const button = e.target.closest("#selection-panel [data-action]");
      if (!button) return;
      if (button.dataset.action === "clear-selection") clearSelection();
      if (button.dataset.action === "copy-link") {
        const done = () => (button.textContent = "Link copied");
        if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(window.location.href).then(done);
        else window.prompt("Copy this link:", window.location.href);
      }
    });

    // Click and hover ------------------------------------------------------------------------------------------------
    function loadPoint(el, index) {
      const panel = pair ? document.getElementById(`point-panel-${el.dataset.side}`) : document.getElementById("point-panel");
      if (!panel || index < 0) return;
      const url = `${el.dataset.pointUrl || panel.dataset.pointUrl}${index}/`;
      htmx.ajax("GET", url, { target: panel, swap: pair ? "innerHTML" : "outerHTML" });
    }

    function focusPoint(index) {
      plots.forEach((p) => {
        if (pair) p.scatter.hover(index);
        loadPoint(p, index);
      });
    }

    plots.forEach((el) => {
      el.addEventListener("scatter:select", (e) => {
        if (e.detail.index >= 0) focusPoint(e.detail.index);
      });
      if (pair) {
        el.addEventListener("scatter:hover", (e) => others(el).forEach((p) => p.scatter.hover(e.detail.index)));
      }
    });

    // Side by side ----------------------------------------------------------------------------------------------------
    if (pair) {
      document.body.addEventListener("click", (e) => {
        const figure = e.target.closest("#changed figure[data-index]");
        if (!figure) return;
        focusPoint(Number(figure.dataset.index));
        root.scrollIntoView({ behavior: "smooth", block: "start" });
      });
      if (slider) {
        const output = root.querySelector("output[name=k-value]");
        slider.addEventListener("input", () => (output.textContent = slider.value));
        slider.addEventListener("change", () => {
          setParam("k", slider.value);
          if (colouring && colouring.per_k) colour(colouring.key);
          htmx.ajax("GET", `${root.dataset.changedUrl}?k=${slider.value}`, { target: "#changed", swap: "outerHTML" });
        });
      }
      if (align) {
        const b = plots.find((p) => p.dataset.side === "b");
        align.addEventListener("change", () => {
          setParam("align", align.checked ? null : "0");
          b.scatter.load(align.checked ? b.dataset.alignedCoordsUrl : b.dataset.rawCoordsUrl);
        });
      }
    }

    // The URL's state, once every plot has drawn ------------------------------------------------------------------------
    function restore() {
      const view = (text) => {
        const v = (text || "").split(",").map(Number);
        return v.length === 3 && v.every(Number.isFinite) ? { x: v[0], y: v[1], zoom: v[2] } : null;
      };
      plots.forEach((p) => {
        const v = view(param(p.dataset.side === "b" ? "view_b" : "view"));
        if (v) p.scatter.setView(v);
      });
      if (align && param("align") === "0") {
        align.checked = false;
        const b = plots.find((p) => p.dataset.side === "b");
        b.scatter.load(b.dataset.rawCoordsUrl);
      }
      const key = param("colour") || (colourings[0] && colourings[0].key);
      if (select && key && colourings.some((c) => c.key === key)) select.value = key;
      const c = colourings.find((x) => x.key === key);
      const steps = [];
      if (c && (param("colour") || c.kind !== "categorical" || c.key !== "label" || param("filter"))) {
        steps.push(colour(key, decodeFilter(param("filter"), c.kind)));
      } else if (c) {
        colouring = c;
        root.dataset.colouring = c.key;
      }
      const sel = param("sel");
      if (sel && /^\d+$/.test(sel) && root.dataset.selectionUrl) {
        steps.push(htmx.ajax("GET", `${root.dataset.selectionUrl}${sel}/`, { target: "#selection-panel", swap: "outerHTML" }));
      }
      Promise.allSettled(steps).then(() => {
        restoring = false;
        root.dataset.ready = "true";
      });
    }

    let waiting = plots.filter((p) => p.dataset.drawn !== "true").length;
    if (!waiting) restore();
    else
      plots.forEach((p) =>
        p.addEventListener(
          "scatter:ready",
          () => {
            waiting -= 1;
            if (waiting === 0) restore();
          },
          { once: true }
        )
      );
  }

  function init(root) {
    const sections = Array.from(root.querySelectorAll ? root.querySelectorAll(".explorer") : []);
    if (root.matches && root.matches(".explorer")) sections.push(root);
    sections.forEach(setup);
  }

  function boot() {
    init(document);
    if (window.htmx) htmx.onLoad(init);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
