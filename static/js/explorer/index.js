// @ts-check
// Explorer pages (one projection, or two side by side): wires the scatter islands (scatter.js) to the page.
// - "Colour by" select: options from the json_script named by data-colourings ({key, title, kind, url, names?, per_k?});
//   the values are fetched as binary (uint16 codes or float32) and given to every scatter on the page.
// - Scale (continuous colourings): 2–98% quantiles, min–max or a fixed range, over the values of every colouring of the
//   same kind (group), so one colour means one value across them; kept in the URL (scale, range).
// - Facets: a small bar chart per metadata column (and the label) of the samples per value, all and among those
//   highlighted; a click on a bar colours by that column and toggles that value in the filter, so several values of a
//   column can be shown at once (bins of a number column: a range of adjacent bins); "all" shows every value again
//   (facets.js counts and chooses).
// - Lasso / box: the points the plot found inside are highlighted everywhere at once; the polygon (and which points the
//   legend's filter shows, when one is on) is POSTed to the scatter's (or the .explorer section's) data-select-url;
//   the server answers the selection panel (#selection-panel), whose data-indices-url gives the uint32 indices it
//   kept, highlighted everywhere in their turn.
// - Search (form.explorer-search, its data-search-url answers uint32 indices): the hits are highlighted everywhere and
//   every plot zooms to them.
// - Click: the point's panel (nearest neighbours in the original space) is loaded with htmx.
// - Side by side (.explorer[data-pair]): hover and click are linked, k slider, Procrustes-aligned right side, and the
//   list of samples whose neighbourhoods changed most.
// The scatter islands are set up first (this module imports them), so every plot has its el.scatter.

import { fetchBuffer } from "../fetch.js";
import { marks, packMask } from "../scatter/filter.js";
import { fmt } from "../scatter/format.js";
import { init as initScatter } from "../scatter/index.js";
import {
  SCALES,
  colourSpec,
  colouringUrl,
  defaultScale,
  sameKind,
  scaleDomain,
  scaleNote,
} from "./colourings.js";
import { BINS, MAX_BARS, binned, chosenBars, tally, toggledBar } from "./facets.js";
import { searchSummary } from "./search.js";
import { decodeFilter, decodeView, encodeFilter, encodeView, round, withParam } from "./url_state.js";

/** @typedef {import("./colourings.js").ColouringChoice} ColouringChoice */
/** @typedef {import("./colourings.js").Scale} Scale */
/** @typedef {import("../scatter/index.js").ScatterApi} ScatterApi */

/** @param {string} name */
function param(name) {
  return new URLSearchParams(window.location.search).get(name);
}

/**
 * @param {string} name
 * @param {string | null} value null or "": removed
 */
function setParam(name, value) {
  const query = withParam(window.location.search, name, value);
  history.replaceState(history.state, "", `${window.location.pathname}${query ? "?" + query : ""}${window.location.hash}`);
}

/**
 * @param {string | undefined} id
 * @returns {unknown}
 */
function readJson(id) {
  const script = id && document.getElementById(id);
  if (!script) return [];
  try {
    return JSON.parse(script.textContent || "");
  } catch {
    return [];
  }
}

/**
 * A plot's scatter API (scatter/index.js sets it up before this module runs).
 * @param {HTMLElement} el
 */
function scatterOf(el) {
  return /** @type {ScatterApi} */ (el.scatter);
}

/** @type {WeakSet<HTMLElement>} the .explorer sections set up */
const setUp = new WeakSet();

/** @param {HTMLElement} root */
function setup(root) {
  if (setUp.has(root)) return;
  setUp.add(root);
  const pair = root.dataset.pair === "true";
  const plots = /** @type {HTMLElement[]} */ (Array.from(root.querySelectorAll(".scatter[data-coords-url]")));
  if (!plots.length) return;
  const select = root.querySelector("select[name=colour]");
  const colourings = /** @type {ColouringChoice[]} */ (select instanceof HTMLSelectElement ? readJson(select.dataset.colourings) : []);
  const slider = /** @type {HTMLInputElement | null} */ (root.querySelector("input[name=k]"));
  const align = /** @type {HTMLInputElement | null} */ (root.querySelector("input[name=align]"));
  /** @type {ColouringChoice | null} the descriptor shown */
  let colouring = null;
  let restoring = true; // while the URL's state is being applied, do not write it back

  const k = () => (slider ? Number(slider.value) : null);
  /** @param {HTMLElement} el */
  const others = (el) => plots.filter((p) => p !== el);

  // Colour ------------------------------------------------------------------------------------------------------
  if (select instanceof HTMLSelectElement) {
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

  // Colour scale (continuous colourings): quantiles, min–max or a fixed range, over every colouring of the kind shown.
  const scaleControls = document.createElement("span");
  scaleControls.className = "explorer-scale";
  scaleControls.hidden = true;
  scaleControls.innerHTML =
    '<label>Scale <select name="scale"></select></label> <span class="explorer-fixed" hidden>' +
    '<input type="number" step="any" name="scale-from" aria-label="fixed range from"> to ' +
    '<input type="number" step="any" name="scale-to" aria-label="fixed range to"></span>';
  const scaleSelect = /** @type {HTMLSelectElement} */ (scaleControls.querySelector("select"));
  Object.entries(SCALES).forEach(([value, text]) => scaleSelect.add(new Option(text, value)));
  const fixedSpan = /** @type {HTMLElement} */ (scaleControls.querySelector(".explorer-fixed"));
  const [fixedFrom, fixedTo] = /** @type {HTMLInputElement[]} */ (Array.from(fixedSpan.querySelectorAll("input")));
  if (select instanceof HTMLSelectElement) /** @type {HTMLElement} */ (select.closest("label")).after(scaleControls);
  /** @type {Scale | null} the scale the user chose (null: each colouring's default) */
  let chosenScale = null;
  /** @type {Map<string, [number, number]>} the fixed range the user set for each kind of colouring */
  const fixedRanges = new Map();
  /** @type {Map<string, Promise<ArrayBuffer>>} colouring values by URL */
  const fetched = new Map();

  /** @param {string} url */
  function valuesAt(url) {
    let got = fetched.get(url);
    if (!got) {
      got = fetchBuffer(url);
      got.catch(() => fetched.delete(url));
      fetched.set(url, got);
    }
    return got;
  }

  /**
   * What colourBy takes for c, whose values (and those of the colourings of its kind) arrived as buffers.
   * @param {ColouringChoice} c
   * @param {ColouringChoice[]} kind
   * @param {ArrayBuffer[]} buffers
   */
  function specOf(c, kind, buffers) {
    const spec = colourSpec(c, buffers[kind.indexOf(c)]);
    scaleControls.hidden = c.kind !== "continuous";
    if (spec.kind !== "continuous") return spec;
    const arrays = buffers.map((b) => new Float32Array(b));
    const group = c.group || c.key;
    const scale = chosenScale || defaultScale(c);
    const fixed = fixedRanges.get(group) || c.bounds || scaleDomain("minmax", arrays, null);
    const domain = scaleDomain(scale, arrays, fixed);
    scaleSelect.value = scale;
    fixedSpan.hidden = scale !== "fixed";
    fixedFrom.value = String(round(domain[0]));
    fixedTo.value = String(round(domain[1]));
    return { ...spec, domain, scale: scaleNote(scale, c, domain, kind.length) };
  }

  /**
   * @param {string} key
   * @param {number[] | null} [filter]
   */
  function colour(key, filter) {
    const c = colourings.find((x) => x.key === key);
    if (!c) return Promise.resolve();
    const kind = sameKind(c, colourings);
    root.dataset.colouring = "loading";
    return Promise.all(kind.map((x) => valuesAt(colouringUrl(x, k()))))
      .then((buffers) => {
        const spec = specOf(c, kind, buffers);
        colouring = c;
        plots.forEach((p) => {
          scatterOf(p).colourBy(spec);
          if (filter) scatterOf(p).setFilter(filter);
        });
        root.dataset.colouring = c.key;
        refreshFacets();
      })
      .catch((err) => {
        root.dataset.colouring = "error";
        console.error("explorer:", err);
      });
  }

  /** The colouring shown again, on its new scale; the filter stays. */
  function rescale() {
    if (!colouring) return;
    setParam("scale", chosenScale);
    const group = colouring.group || colouring.key;
    const range = fixedRanges.get(group);
    setParam("range", chosenScale === "fixed" && range ? encodeFilter(range, "continuous") : null);
    colour(colouring.key, scatterOf(plots[0]).getFilter());
  }
  scaleSelect.addEventListener("change", () => {
    chosenScale = /** @type {Scale} */ (scaleSelect.value);
    rescale();
  });
  [fixedFrom, fixedTo].forEach((field) =>
    field.addEventListener("change", () => {
      const range = [Number(fixedFrom.value), Number(fixedTo.value)];
      if (!colouring || !range.every(Number.isFinite) || range[0] === range[1]) return;
      fixedRanges.set(colouring.group || colouring.key, [Math.min(...range), Math.max(...range)]);
      chosenScale = "fixed";
      rescale();
    })
  );

  // A legend filter applies to both sides of a pair, and is kept in the URL.
  plots.forEach((el) => {
    el.addEventListener("scatter:filter", (e) => {
      const filter = /** @type {CustomEvent<{filter: number[] | null}>} */ (e).detail.filter;
      others(el).forEach((p) => scatterOf(p).setFilter(filter));
      if (!restoring) setParam("filter", encodeFilter(filter, colouring ? colouring.kind : undefined));
      refreshFacets();
    });
    el.addEventListener("scatter:view", (e) => {
      if (restoring) return;
      const v = /** @type {CustomEvent<{x: number, y: number, zoom: number}>} */ (e).detail;
      setParam(el.dataset.side === "b" ? "view_b" : "view", encodeView(v));
    });
  });

  // Facets: per metadata column (and the label), a small bar chart of how many samples have each value, all and among
  // those selected or found; a click on a bar colours by that column and adds that value to those shown (or takes it
  // away); "all" shows every value again. The bars chosen are read from the plots' filter, whoever set it.
  const facetChoices = colourings.filter((c) => c.key === "label" || c.key.startsWith("meta:"));
  /**
   * @typedef {{key: string, kind: "categorical" | "continuous", codes: Uint16Array, names: string[],
   *   edges: number[] | undefined, bars: HTMLButtonElement[], reset: HTMLButtonElement}} Facet
   */
  /** @type {Facet[]} */
  const facets = [];
  /** @type {ArrayLike<number> | null} the indices highlighted (a selection or a search), null for none */
  let chosen = null;
  const facetBox = document.createElement("section");
  facetBox.className = "explorer-facets";
  facetBox.innerHTML =
    '<h3 class="small">Samples per value <span class="muted">(bar height: how many samples; dark part: how many ' +
    "of them are selected or found; click bars to show only those values, several at once; “all” shows every " +
    'value again)</span> <output class="facet-shown"></output></h3>';
  if (facetChoices.length) root.append(facetBox);
  const facetShown = /** @type {HTMLOutputElement} */ (facetBox.querySelector(".facet-shown"));

  /**
   * The plots' filter while they are coloured by the facet's column (null otherwise).
   * @param {{key: string}} f
   */
  function filterOn(f) {
    return colouring && colouring.key === f.key ? scatterOf(plots[0]).getFilter() : null;
  }

  /**
   * Shows only the values `filter` keeps of column c (null: every value), colouring by c first when needed.
   * @param {ColouringChoice} c
   * @param {number[] | null} filter
   */
  function filterBy(c, filter) {
    if (select instanceof HTMLSelectElement) select.value = c.key;
    const coloured = colouring && colouring.key === c.key ? Promise.resolve() : colour(c.key);
    return coloured.then(() => {
      plots.forEach((p) => scatterOf(p).setFilter(filter));
      setParam("colour", c.key === colourings[0].key ? null : c.key);
      setParam("filter", encodeFilter(filter, c.kind));
      refreshFacets();
    });
  }

  /** Every facet's bars and choices again, and how many samples the filter shows. */
  function refreshFacets() {
    facets.forEach(drawFacet);
    const shown = Number(plots[0].dataset.shown), all = Number(plots[0].dataset.points);
    facetShown.textContent = shown < all ? `${shown} of ${all} samples shown` : "";
  }

  /**
   * @param {ColouringChoice} c
   * @param {ArrayBuffer} buffer
   */
  function addFacet(c, buffer) {
    const b = c.kind === "continuous" ? binned(new Float32Array(buffer), BINS, fmt) : null;
    if (c.kind === "continuous" && !b) return;
    const codes = b ? b.codes : new Uint16Array(buffer);
    const names = b ? b.names : c.names || [];
    const figure = document.createElement("figure");
    figure.className = "facet";
    figure.dataset.key = c.key;
    const caption = document.createElement("figcaption");
    caption.textContent = c.title + (names.length > MAX_BARS ? ` (the first ${MAX_BARS} of ${names.length} values)` : "");
    const reset = document.createElement("button");
    reset.type = "button";
    reset.className = "link facet-reset";
    reset.textContent = "all";
    reset.title = "Show every value again";
    reset.addEventListener("click", () => filterBy(c, null));
    caption.append(" ", reset);
    const row = document.createElement("div");
    row.className = "facet-bars";
    const bars = names.slice(0, MAX_BARS).map((name, j) => {
      const bar = document.createElement("button");
      bar.type = "button";
      bar.className = "facet-bar";
      bar.dataset.code = String(j);
      bar.dataset.name = name;
      bar.innerHTML = '<span class="facet-all"></span><span class="facet-chosen"></span>';
      bar.addEventListener("click", () =>
        filterBy(c, toggledBar(c.kind, filterOn(c), j, bars.length, b ? b.edges : undefined))
      );
      row.append(bar);
      return bar;
    });
    const ends = document.createElement("div");
    ends.className = "facet-ends muted";
    // What the first and the last bar stand for (every bar's title says its own).
    ends.textContent = b
      ? `${fmt(b.edges[0])} … ${fmt(b.edges[b.edges.length - 1])}`
      : `${names[0] || ""} … ${names[bars.length - 1] || ""}`;
    figure.append(caption, row, ends);
    facetBox.append(figure);
    /** @type {Facet} */
    const facet = { key: c.key, kind: c.kind, codes, names, edges: b ? b.edges : undefined, bars, reset };
    facets.push(facet);
    drawFacet(facet);
  }

  /** @param {Facet} f */
  function drawFacet(f) {
    const picked = chosen ? marks(chosen, f.codes.length).marked : null;
    const { all, chosen: among } = tally(f.codes, f.bars.length, picked);
    const top = Math.max(1, ...all);
    const on = filterOn(f);
    const shownBars = chosenBars(f.kind, on, f.bars.length, f.edges);
    f.reset.disabled = !on || !on.length;
    f.bars.forEach((bar, j) => {
      bar.setAttribute("aria-pressed", String(shownBars[j]));
      const [whole, part] = /** @type {HTMLElement[]} */ (Array.from(bar.children));
      whole.style.height = `${(100 * all[j]) / top}%`;
      part.style.height = `${(100 * (among ? among[j] : 0)) / top}%`;
      bar.dataset.count = String(all[j]);
      bar.dataset.chosen = among ? String(among[j]) : "";
      const of = among ? `, ${among[j]} of them selected or found` : "";
      const click = shownBars[j] ? "click to hide these" : "click to show these too";
      bar.title = `${f.names[j]}: ${all[j]} sample${all[j] === 1 ? "" : "s"}${of} (${click})`;
    });
  }

  // Selection -----------------------------------------------------------------------------------------------------
  /** @param {Uint32Array | null} indices */
  function highlight(indices) {
    plots.forEach((p) => scatterOf(p).highlight(indices));
    chosen = indices;
    facets.forEach(drawFacet);
  }

  /** @param {HTMLElement | null} panel */
  function showSelection(panel) {
    if (!panel || !panel.dataset.indicesUrl) return;
    setParam("sel", panel.dataset.selection || null);
    fetchBuffer(panel.dataset.indicesUrl)
      .then((buffer) => {
        const kept = new Uint32Array(buffer);
        // The plot's own answer to a lasso is usually the same points: then nothing is drawn again.
        const now = chosen;
        const same = now !== null && now.length === kept.length && kept.every((v, k) => v === now[k]);
        if (!same) highlight(kept);
      })
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
      const detail =
        /** @type {CustomEvent<{polygon: [number, number][], shown: Uint8Array | null, indices?: Uint32Array}>} */ (e)
          .detail;
      // The right side of a pair may show coordinates aligned to the left: its polygon is in that frame.
      const aligned = align && align.checked && el.dataset.alignedSelectUrl;
      // The plot resolved the lasso itself: highlighted at once everywhere; the server's selection (the same points,
      // as it keeps them) replaces it when it arrives. Not on an aligned side: its points are drawn moved.
      if (detail.indices && !aligned) highlight(detail.indices);
      const url = aligned ? el.dataset.alignedSelectUrl : el.dataset.selectUrl || root.dataset.selectUrl;
      /** @type {Record<string, string>} */
      const values = { polygon: JSON.stringify(detail.polygon) };
      if (detail.shown) values.shown = packMask(detail.shown); // points hidden by the legend's filter are not selected
      htmx.ajax("POST", /** @type {string} */ (url), {
        values,
        target: "#selection-panel",
        swap: "outerHTML",
      });
    });
  });

  document.body.addEventListener("htmx:afterSwap", (e) => {
    const target = /** @type {Element} */ (e.target);
    if (target.id === "selection-panel" || /** @type {CustomEvent} */ (e).detail.target.id === "selection-panel") {
      showSelection(document.getElementById("selection-panel"));
    }
  });
  document.body.addEventListener("htmx:responseError", (e) => {
    const detail = /** @type {CustomEvent<{target: Element, xhr: XMLHttpRequest}>} */ (e).detail;
    const panel = document.getElementById("selection-panel");
    if (!panel || detail.target !== panel) return;
    const message = document.createElement("section");
    message.id = "selection-panel";
    message.className = "card";
    message.setAttribute("role", "alert");
    message.textContent = detail.xhr.responseText || "That selection could not be made.";
    panel.replaceWith(message);
  });
  document.body.addEventListener("click", (e) => {
    const button = /** @type {HTMLElement | null} */ (
      /** @type {Element} */ (e.target).closest("#selection-panel [data-action]")
    );
    if (!button) return;
    if (button.dataset.action === "clear-selection") clearSelection();
    if (button.dataset.action === "copy-link") {
      const done = () => (button.textContent = "Link copied");
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(window.location.href).then(done);
      else window.prompt("Copy this link:", window.location.href);
    }
  });

  // Search ----------------------------------------------------------------------------------------------------------
  const searchForm = /** @type {HTMLFormElement | null} */ (root.querySelector("form.explorer-search"));
  const searchInput = searchForm && /** @type {HTMLInputElement} */ (searchForm.querySelector("input[name=q]"));
  const searchOutput = searchForm && /** @type {HTMLOutputElement} */ (searchForm.querySelector("output"));

  /**
   * Highlights the samples whose id, label, text or metadata contains the query (the server finds them) and zooms
   * every plot to them; an empty query clears the highlight.
   * @param {string} text
   */
  function search(text) {
    if (!searchForm || !searchOutput) return Promise.resolve();
    const q = text.trim();
    setParam("q", q || null);
    if (!q) {
      highlight(null);
      searchOutput.textContent = "";
      delete root.dataset.hits;
      return Promise.resolve();
    }
    return fetchBuffer(`${searchForm.dataset.searchUrl}?${new URLSearchParams({ q })}`)
      .then((buffer) => {
        const hits = new Uint32Array(buffer);
        highlight(hits);
        plots.forEach((p) => scatterOf(p).frame(hits));
        searchOutput.textContent = searchSummary(hits.length, Number(plots[0].dataset.points || 0), q);
        root.dataset.hits = String(hits.length);
      })
      .catch((err) => {
        searchOutput.textContent = `The search failed: ${err.message}`;
        root.dataset.hits = "error";
      });
  }
  if (searchForm && searchInput) {
    searchForm.addEventListener("submit", (e) => {
      e.preventDefault();
      search(searchInput.value);
    });
    searchInput.addEventListener("search", () => {
      if (!searchInput.value) search(""); // the field's clear button
    });
  }

  // Click and hover ------------------------------------------------------------------------------------------------
  /**
   * @param {HTMLElement} el
   * @param {number} index
   */
  function loadPoint(el, index) {
    const panel = pair ? document.getElementById(`point-panel-${el.dataset.side}`) : document.getElementById("point-panel");
    if (!panel || index < 0) return;
    const url = `${el.dataset.pointUrl || panel.dataset.pointUrl}${index}/`;
    htmx.ajax("GET", url, { target: panel, swap: pair ? "innerHTML" : "outerHTML" });
  }

  /** @param {number} index */
  function focusPoint(index) {
    plots.forEach((p) => {
      if (pair) scatterOf(p).hover(index);
      loadPoint(p, index);
    });
  }

  plots.forEach((el) => {
    el.addEventListener("scatter:select", (e) => {
      const index = /** @type {CustomEvent<{index: number}>} */ (e).detail.index;
      if (index >= 0) focusPoint(index);
    });
    if (pair) {
      el.addEventListener("scatter:hover", (e) => {
        const index = /** @type {CustomEvent<{index: number}>} */ (e).detail.index;
        others(el).forEach((p) => scatterOf(p).hover(index));
      });
    }
  });

  // Side by side ----------------------------------------------------------------------------------------------------
  if (pair) {
    document.body.addEventListener("click", (e) => {
      const figure = /** @type {HTMLElement | null} */ (
        /** @type {Element} */ (e.target).closest("#changed figure[data-index]")
      );
      if (!figure) return;
      focusPoint(Number(figure.dataset.index));
      root.scrollIntoView({ behavior: "smooth", block: "start" });
    });
    if (slider) {
      const output = /** @type {HTMLOutputElement} */ (root.querySelector("output[name=k-value]"));
      slider.addEventListener("input", () => (output.textContent = slider.value));
      slider.addEventListener("change", () => {
        setParam("k", slider.value);
        if (colouring && colouring.per_k) colour(colouring.key);
        htmx.ajax("GET", `${root.dataset.changedUrl}?k=${slider.value}`, { target: "#changed", swap: "outerHTML" });
      });
    }
    if (align) {
      const b = /** @type {HTMLElement} */ (plots.find((p) => p.dataset.side === "b"));
      align.addEventListener("change", () => {
        setParam("align", align.checked ? null : "0");
        scatterOf(b).load(/** @type {string} */ (align.checked ? b.dataset.alignedCoordsUrl : b.dataset.rawCoordsUrl));
      });
    }
  }

  // The URL's state, once every plot has drawn ------------------------------------------------------------------------
  function restore() {
    plots.forEach((p) => {
      const v = decodeView(param(p.dataset.side === "b" ? "view_b" : "view"));
      if (v) scatterOf(p).setView(v);
    });
    if (align && param("align") === "0") {
      align.checked = false;
      const b = /** @type {HTMLElement} */ (plots.find((p) => p.dataset.side === "b"));
      scatterOf(b).load(/** @type {string} */ (b.dataset.rawCoordsUrl));
    }
    const key = param("colour") || (colourings[0] && colourings[0].key);
    const scale = param("scale");
    if (scale && scale in SCALES) chosenScale = /** @type {Scale} */ (scale);
    const range = decodeFilter(param("range"), "continuous");
    const shown = colourings.find((x) => x.key === key);
    if (shown && range && range.length === 2 && range.every(Number.isFinite)) {
      fixedRanges.set(shown.group || shown.key, [Math.min(range[0], range[1]), Math.max(range[0], range[1])]);
    }
    if (select instanceof HTMLSelectElement && key && colourings.some((c) => c.key === key)) select.value = key;
    const c = colourings.find((x) => x.key === key);
    /** @type {Promise<unknown>[]} */
    const steps = [];
    if (c && (param("colour") || c.kind !== "categorical" || c.key !== "label" || param("filter") || scale)) {
      steps.push(colour(c.key, decodeFilter(param("filter"), c.kind)));
    } else if (c) {
      colouring = c;
      root.dataset.colouring = c.key;
    }
    const q = param("q");
    if (q && searchInput) {
      searchInput.value = q;
      steps.push(search(q));
    }
    const sel = param("sel");
    if (sel && /^\d+$/.test(sel) && root.dataset.selectionUrl) {
      steps.push(htmx.ajax("GET", `${root.dataset.selectionUrl}${sel}/`, { target: "#selection-panel", swap: "outerHTML" }));
    }
    steps.push(
      Promise.all(facetChoices.map((x) => valuesAt(colouringUrl(x, k()))))
        .then((buffers) => facetChoices.forEach((x, j) => addFacet(x, buffers[j])))
        .catch((err) => console.error("explorer:", err))
    );
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

/**
 * Sets up the scatters, then every .explorer section, in root (and root itself if it is one).
 * @param {Element | Document} root
 */
function init(root) {
  initScatter(root);
  const sections = /** @type {HTMLElement[]} */ (
    Array.from(root.querySelectorAll ? root.querySelectorAll(".explorer") : [])
  );
  if (root instanceof HTMLElement && root.matches(".explorer")) sections.push(root);
  sections.forEach(setup);
}

function boot() {
  init(document);
  if (window.htmx) htmx.onLoad(init);
}
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
