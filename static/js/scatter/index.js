// @ts-check
// Scatter island (a 2-D projection of a dataset's samples): draws every [data-coords-url] element with WebGL.
//
// Reads: data-coords-url → raw little-endian float32 x0,y0,x1,y1,…; data-labels-url → raw little-endian uint16, one per
// point (65535 = no label); data-label-names → id of a json_script list of strings; data-sample-url + "<i>.png" is a
// sample's thumbnail, shown in the tooltip when data-thumbnails="true". The labels and names are the initial colouring,
// i.e. colourBy({kind: "categorical", codes: labels, names, title: ""}). data-axes → id of a json_script {x, y} of axis
// titles, for coordinates that mean something (PCA): then the plot has axes, ticks at round values of the
// coordinates as served along its bottom and left edges, following pan and zoom.
//
// Sets: data-points and data-drawn="true" after the first complete frame; data-hovered while the user's cursor is on a
// point; data-selected after a click on a point; data-highlighted = how many points highlight() marked (absent when no
// highlight is set); data-shown = how many points the filter shows (all of them when none is on); data-linked-hover
// while hover() rings a point; data-mode = "pan" | "lasso" | "box"; data-error when it cannot draw;
// data-rendering = "points" | "density" (from DENSITY_FROM points, density.js), data-complete = "true" when the
// picture on screen is complete for the view (a density picture fills in over a few frames on a slow renderer);
// data-pictures = how many complete pictures have been drawn; data-lasso-ms = how long the last lasso or box took
// to resolve here.
//
// el.scatter is set synchronously when the element is set up. Its calls that need the points are queued until they
// have loaded, then applied in order; setMode and the getters act at once (the getters on what has been applied).
//   colourBy(spec)   {kind: "categorical", codes: Uint16Array(n) (65535 = missing), names: string[], title: string}
//                    or {kind: "continuous", values: Float32Array(n) (NaN or ±Infinity = missing), title: string,
//                    domain?: [lo, hi], scale?: string} (domain defaults to the finite min and max; scale says how
//                    it was chosen, for the legend). Continuous values are quantised into 256 equal bins of the
//                    domain (values outside it go to the end bins) coloured with viridis; missing values are grey.
//                    Replaces the legend (categorical: a toggle per name; continuous: the title, a gradient bar with
//                    the domain's ends under it, marked ≤ / ≥ when values lie beyond them, a line saying the range,
//                    its scale and how many values are clipped, and "from" / "to" inputs) and clears the filter;
//                    keeps the view. Arrays of the wrong length are cut or padded with "missing".
//                    The legend sits right of the plot, in room the canvas always leaves it (CSS --legend-room): it
//                    never covers a point, and a new colouring does not move the points.
//   setFilter(f)     categorical: an array of codes (empty or null = no filter); continuous: [lo, hi], inclusive, a
//                    null end open (null = no filter; missing values never pass). Read in terms of the current kind.
//   getFilter()      categorical: the filter's codes, ascending ([] = none); continuous: [lo, hi] (an open end as
//                    ±Infinity) or null.
//   highlight(idx)   an array or typed array of point indices (out-of-range ones are ignored; [] highlights none, so
//                    no point is in focus), or null to clear.
//   frame(idx)       zooms and pans to show the given points (an array or typed array of indices; out-of-range ones are
//                    ignored; none: the view stays); the view then counts as moved by the user.
//   hover(i)         rings point i for a linked view (when the user hovers nothing here): no tooltip, no
//                    "scatter:hover"; -1 clears.
//   getView()        {x, y, zoom}: the data coordinates (as served) of the canvas centre, and the scale relative to
//                    the one that fits all the points; null until the points have loaded and the element has a size.
//   setView(v)       applies such a view (zoom clamped to 0.2 … 10⁴); it then counts as moved by the user (kept, not
//                    re-fitted, on resize). resetView() fits all the points again.
//   setMode(m)       "pan" | "lasso" | "box": what a drag does; the toolbar's buttons (top left) do the same.
//   load(url)        other coordinates (same format, same n) for the same points, e.g. aligned ones; returns a
//                    Promise, rejected (the old ones kept) when the URL fails or has another number of points. Colours,
//                    filter and highlight stay; a moved view keeps its centre (data coordinates) and scale, else the
//                    points are fitted again. "Data coordinates as served" are then those of url; the last call wins.
// A point is in focus iff it passes the filter AND (no highlight is set OR it is highlighted). Points out of focus are
// drawn light grey, under those in focus, which keep their colour; hovering and clicking prefer points in focus.
// Colouring, filtering and highlighting cost O(n) once each; hovering, panning and zooming never do O(n) work in JS.
//
// Mouse: a drag pans (pan mode), draws a lasso (lasso mode, or pan mode with Shift held) or a box (box mode); the
// wheel zooms, a double-click fits all the points; a press that moves less than 3 CSS px is a click in every mode.
//
// Events, bubbling CustomEvents on the element, only for what the user does (calls through el.scatter dispatch none,
// so two linked plots cannot ping-pong):
//   "scatter:ready"  {n}, after the first frame.
//   "scatter:hover"  {index}, when the point under the user's cursor changes (-1: none).
//   "scatter:select" {index}, on a click (-1: no point within 8 px); data-selected says which.
//   "scatter:lasso"  {polygon: [[x, y], …], mode: "lasso" | "box", shown, indices, ms}, when a lasso of ≥ 3 vertices
//                    (kept ≥ 3 CSS px apart, at most 500) or a box of non-zero area is released; vertices in data
//                    coordinates as served; shown: Uint8Array(n), 1 for the points the legend's filter shows (only
//                    those may be selected), or null when no filter is on; indices: Uint32Array of the points inside
//                    (among those shown), ascending, resolved here (lasso.js pointsInPolygon, the server's even–odd
//                    rule in float32), in ms.
//   "scatter:view"   getView(), 250 ms after the user last panned, zoomed or double-clicked.
//   "scatter:filter" {filter} (as getFilter()), when the user changes the filter in the legend (the range inputs on
//                    their "change"; the plot follows them as they are typed in).
// Runs on page load and on every htmx swap.
//
// This module is the element API and its wiring; the parts: renderer.js (WebGL), grid.js (hover index), lasso.js
// (lasso and box), legend.js, tooltip.js, view.js (view maths), colours.js, filter.js (what is in focus), points.js
// (the arrays as served), format.js.

import { NO_LABEL, domainOf, lutCss, paintLut, quantise } from "./colours.js";
import { filterOf, focus, inFocus, marks, passing, toCodes, toggled, toRange } from "./filter.js";
import { describe, fmt } from "./format.js";
import { buildGrid, nearest } from "./grid.js";
import { DENSITY_FROM, referenceCount } from "./density.js";
import { extendShape, outlinePath, pointsInPolygon, selection, shapeVertices, startShape } from "./lasso.js";
import { createLegend } from "./legend.js";
import { centred, LITTLE_ENDIAN, sized, swapBytes } from "./points.js";
import { createRenderer } from "./renderer.js";
import { createTooltip } from "./tooltip.js";
import {
  boxAround,
  centredOn,
  fitted,
  niceTicks,
  placeOf,
  resized,
  toData,
  toScreen,
  viewOf,
  zoomAt,
} from "./view.js";
import { fetchBuffer } from "../fetch.js";

/**
 * @typedef {object} ScatterApi el.scatter, as documented above
 * @property {(spec: any) => void} colourBy
 * @property {(f: unknown[] | null) => void} setFilter
 * @property {() => number[] | null} getFilter
 * @property {(indices: ArrayLike<unknown> | Iterable<unknown> | null) => void} highlight
 * @property {(indices: ArrayLike<number>) => void} frame
 * @property {(i: number) => void} hover
 * @property {() => import("./view.js").Place | null} getView
 * @property {(v: {x: unknown, y: unknown, zoom: unknown}) => void} setView
 * @property {() => void} resetView
 * @property {(m: string) => void} setMode
 * @property {(url: string) => Promise<void>} load
 */
/** @typedef {"pan" | "lasso" | "box"} Mode */

const HOVER_PX = 8; // how far from the cursor (CSS px) a point still counts as hovered
const CLICK_PX = 3; // a press that moves less than this far is a click
const VIEW_EVENT_MS = 250;

/** @param {string} body */
const ICON = (body) =>
  `<svg viewBox="0 0 16 16" width="16" height="16" fill="none" stroke="currentColor" stroke-width="1.4" ` +
  `stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">${body}</svg>`;
/** @type {{mode: Mode, label: string, title: string, icon: string}[]} */
const TOOLS = [
  {
    mode: "pan",
    label: "Pan",
    title: "Pan: drag to move, scroll to zoom, double-click to fit (hold Shift and drag to lasso)",
    icon: ICON("<path d='M8 1.5v13M1.5 8h13M6 3.5l2-2 2 2M6 12.5l2 2 2-2M3.5 6l-2 2 2 2M12.5 6l2 2-2 2'/>"),
  },
  {
    mode: "lasso",
    label: "Lasso",
    title: "Lasso: drag around the points to select",
    icon: ICON(
      "<ellipse cx='8' cy='6.5' rx='6' ry='4.2' stroke-dasharray='2.2 1.6'/><path d='M4.6 10c-.7 1.7.3 3.4 2.4 3.9'/>"
    ),
  },
  {
    mode: "box",
    label: "Box",
    title: "Box: drag a rectangle around the points to select",
    icon: ICON("<rect x='2' y='3' width='12' height='10' rx='1' stroke-dasharray='2.2 1.6'/>"),
  },
];
const MODES = TOOLS.map((t) => t.mode);

/**
 * The JSON of the json_script element with this id (null when there is none or it does not parse).
 * @param {HTMLElement} el
 * @param {string | undefined} id
 * @returns {unknown}
 */
function readJson(el, id) {
  const script = id && el.ownerDocument.getElementById(id);
  if (!script) return null;
  try {
    return JSON.parse(script.textContent || "");
  } catch {
    return null;
  }
}

/** @param {HTMLElement} el */
function readNames(el) {
  const names = readJson(el, el.dataset.labelNames);
  return Array.isArray(names) ? names.map(String) : [];
}

const SVG = "http://www.w3.org/2000/svg";
const TICK_SPACING_PX = 90; // about one tick per this many CSS px

/**
 * Axes over the canvas's bottom and left edges, for coordinates that mean something: their titles, and ticks at round
 * values of the coordinates as served, drawn again with every frame (a handful of elements: O(1)).
 * @param {unknown} titles {x, y}
 */
function createAxes(titles) {
  const t = /** @type {{x?: unknown, y?: unknown} | null} */ (titles);
  if (!t || typeof t !== "object" || !t.x || !t.y) return null;
  const element = document.createElementNS(SVG, "svg");
  element.setAttribute("class", "scatter-axes");
  element.setAttribute("aria-hidden", "true");
  const ticks = document.createElementNS(SVG, "g");
  /** @param {string} text */
  const title = (text) => {
    const node = document.createElementNS(SVG, "text");
    node.textContent = text;
    node.setAttribute("class", "scatter-axis-title");
    element.append(node);
    return node;
  };
  const xTitle = title(String(t.x)), yTitle = title(String(t.y));
  element.append(ticks);
  return {
    element,
    /**
     * @param {import("./view.js").View} view
     * @param {import("./points.js").Shift} shift
     * @param {number} width
     * @param {number} height
     */
    draw(view, shift, width, height) {
      const [x0, y1] = toData(view, shift, { x: 0, y: 0 });
      const [x1, y0] = toData(view, shift, { x: width, y: height });
      const parts = [];
      for (const v of niceTicks(x0, x1, width / TICK_SPACING_PX)) {
        const at = toScreen(view, v - shift.x, 0).x.toFixed(1);
        parts.push(`<line x1="${at}" x2="${at}" y1="${height}" y2="${height - 5}"/>`);
        parts.push(`<text class="scatter-tick x" x="${at}" y="${height - 8}">${fmt(v)}</text>`);
      }
      for (const v of niceTicks(y0, y1, height / TICK_SPACING_PX)) {
        const at = toScreen(view, 0, v - shift.y).y.toFixed(1);
        parts.push(`<line x1="0" x2="5" y1="${at}" y2="${at}"/>`);
        parts.push(`<text class="scatter-tick y" x="8" y="${at}">${fmt(v)}</text>`);
      }
      ticks.innerHTML = parts.join(""); // numbers only
      xTitle.setAttribute("x", String(width / 2));
      xTitle.setAttribute("y", String(height - 22));
      yTitle.setAttribute("transform", `translate(56 ${height / 2}) rotate(-90)`); // right of the tick labels
    },
  };
}

/** @param {any} spec */
function checkSpec(spec) {
  const ok =
    spec &&
    ((spec.kind === "categorical" && spec.codes && spec.codes.length !== undefined) ||
      (spec.kind === "continuous" && spec.values && spec.values.length !== undefined));
  if (!ok) {
    throw new TypeError('scatter: colourBy wants {kind: "categorical", codes, …} or {kind: "continuous", values, …}');
  }
}

/** @type {WeakSet<HTMLElement>} the elements set up */
const setUp = new WeakSet();

/** @param {HTMLElement} el */
function setup(el) {
  setUp.add(el);
  const sampleUrl = el.dataset.sampleUrl || "";
  const marksUi = createTooltip({
    thumbnails: el.dataset.thumbnails === "true",
    texts: el.dataset.texts === "true", // text samples: the tooltip fetches `${sampleUrl}${i}.txt`
    sampleUrl,
  });

  // Points: n, pos (float32 x,y, shifted by `shift` so that the data are centred on 0), their bounding box and the
  // hover grid; codes is the label buffer as uploaded (categorical codes, or colour levels of a continuous spec).
  let n = 0;
  /** @type {Float32Array<ArrayBuffer> | null} */
  let pos = null;
  /** @type {import("./points.js").Box | null} */
  let box = null;
  /** @type {import("./grid.js").Grid | null} */
  let grid = null;
  let shift = { x: 0, y: 0 };
  let codes = new Uint16Array(0);
  /** @type {import("./colours.js").Colouring} the colouring applied */
  let spec = { kind: "categorical", names: [], title: "" };
  /** @type {Set<number>} the categorical filter's codes */
  let codeFilter = new Set();
  /** @type {import("./filter.js").Range | null} the continuous filter's [lo, hi] */
  let range = null;
  /** @type {Uint8Array | null} highlighted points */
  let marked = null;
  let sel = new Uint8Array(0); // a_sel (1 = passes)
  let dimming = false; // whether any point is out of focus: then the grey pass is drawn
  const lut = new Uint8Array(65536 * 4);
  let cssW = 0, cssH = 0;
  /** @type {import("./view.js").View} */
  let view = { s: 1, tx: 0, ty: 0 };
  let fitScale = 1, userMoved = false, hasView = false;
  /** @type {import("./view.js").Place | null} */
  let pendingView = null;
  let hovered = -1, linked = -1;
  /** @type {Mode} */
  let mode = "pan";
  /**
   * @type {{kind: "pan" | "lasso" | "box", x: number, y: number, tx: number, ty: number, moved: boolean,
   *   shape: import("./lasso.js").Shape | null} | null}
   */
  let drag = null;
  /** @type {{x: number, y: number} | null} */
  let mouse = null;
  let frame = 0, hoverFrame = 0, viewTimer = 0, lost = false, destroyed = false;
  // The density rendering's reference count (density.js referenceCount), for the fitting scale it was counted at.
  let reference = 0, referenceScale = 0;
  let drawnView = ""; // the view the axes and ring were last placed for
  /** @type {import("./legend.js").Legend | null} */
  let legend = null;
  /** @type {(() => void)[]} el.scatter calls made before the data loaded */
  const pending = [];

  /** @param {() => void} f */
  function whenLoaded(f) {
    if (pos) f();
    else pending.push(f);
  }
  /** @type {ScatterApi} */
  const api = {
    colourBy(s) {
      checkSpec(s);
      whenLoaded(() => colourBy(s));
    },
    setFilter(f) {
      whenLoaded(() => setFilter(f, false));
    },
    getFilter,
    highlight(indices) {
      whenLoaded(() => highlight(indices));
    },
    frame(indices) {
      whenLoaded(() => frameOn(indices));
    },
    hover(i) {
      whenLoaded(() => linkHover(i));
    },
    getView,
    setView(v) {
      if (!v || ![v.x, v.y, v.zoom].every((c) => Number.isFinite(Number(c))) || !(Number(v.zoom) > 0)) {
        throw new TypeError("scatter: setView wants {x, y, zoom} with finite numbers and zoom > 0");
      }
      const copy = { x: Number(v.x), y: Number(v.y), zoom: Number(v.zoom) };
      whenLoaded(() => setView(copy));
    },
    resetView() {
      whenLoaded(resetView);
    },
    setMode,
    load(url) {
      return new Promise((resolve, reject) => whenLoaded(() => load(url).then(resolve, reject)));
    },
  };
  el.scatter = api;
  /**
   * @param {string} type
   * @param {unknown} detail
   */
  function emit(type, detail) {
    el.dispatchEvent(new CustomEvent(type, { bubbles: true, detail }));
  }

  el.replaceChildren();
  const canvas = document.createElement("canvas");
  canvas.className = "scatter-canvas";
  const overlay = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  overlay.setAttribute("class", "scatter-lasso");
  overlay.setAttribute("aria-hidden", "true");
  const outline = document.createElementNS("http://www.w3.org/2000/svg", "path");
  overlay.append(outline);
  const message = document.createElement("div");
  message.className = "scatter-message";
  message.textContent = "Loading points…";
  const toolbar = document.createElement("div");
  toolbar.className = "scatter-toolbar";
  toolbar.setAttribute("role", "toolbar");
  toolbar.setAttribute("aria-label", "Plot tools");
  const toolButtons = TOOLS.map((t) => {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.mode = t.mode;
    b.title = t.title;
    b.setAttribute("aria-label", t.label);
    b.innerHTML = t.icon; // a constant of this file
    b.addEventListener("click", () => setMode(t.mode));
    return b;
  });
  toolbar.append(...toolButtons);
  const axes = createAxes(readJson(el, el.dataset.axes));
  el.append(canvas, overlay, ...(axes ? [axes.element] : []), message, marksUi.ring, marksUi.tip, toolbar);
  setMode(mode);

  /** @param {string} m */
  function setMode(m) {
    if (!MODES.includes(/** @type {Mode} */ (m))) {
      throw new TypeError(`scatter: mode ${m} is not one of ${MODES.join(", ")}`);
    }
    mode = /** @type {Mode} */ (m);
    el.dataset.mode = m;
    toolButtons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.mode === m)));
  }

  /** @param {string} text */
  function showMessage(text) {
    message.textContent = text;
    message.hidden = !text;
  }
  /** @param {string} text */
  function fail(text) {
    el.dataset.error = "true";
    canvas.hidden = true;
    marksUi.ring.hidden = true;
    marksUi.tip.hidden = true;
    toolbar.hidden = true;
    showMessage(text);
  }

  const made = createRenderer(canvas);
  if (typeof made === "string") return fail(made);
  const renderer = made;
  renderer.clearWhite();

  // ---- Colouring, filter and highlight. Each is O(n) (+ the 65536 LUT entries) per change, never per frame.

  // Fills codes, the LUT's colours and the legend from spec s (checked by checkSpec); clears the filter.
  /** @param {any} s */
  function colourBy(s) {
    const title = s.title ? String(s.title) : "";
    if (s.kind === "continuous") {
      const values = sized(Float32Array, s.values, n, NaN, "values");
      const domain = domainOf(s.domain, values);
      quantise(values, domain, codes);
      const scale = s.scale ? String(s.scale) : s.domain ? "fixed range" : "min–max";
      spec = { kind: "continuous", title, values, domain, scale };
    } else {
      codes.set(sized(Uint16Array, s.codes, n, NO_LABEL, "codes"));
      spec = { kind: "categorical", title, names: Array.from(s.names || [], String) };
    }
    paintLut(lut, spec.kind === "continuous");
    renderer.uploadCodes(codes);
    codeFilter = new Set();
    range = null;
    buildLegend();
    refocus();
    if (hovered >= 0) fillTip(hovered);
    // Fit the points again clear of the new legend only while nothing has been shown yet (a call made before the
    // data loaded); later the view stays as it is, as a jump when only the colours change would be disorienting.
    if (hasView && !userMoved && el.dataset.drawn !== "true") fit();
  }

  // The points the legend's filter shows (null: no filter on), which is all a lasso or a box may select.
  function shownByFilter() {
    return passing(codes, {
      codes: spec.kind === "categorical" ? codeFilter : null,
      values: spec.kind === "continuous" ? spec.values : null,
      range,
    });
  }

  function getFilter() {
    return filterOf(spec.kind, codeFilter, range);
  }

  /**
   * byUser: the legend changed it, so the page hears of it ("scatter:filter").
   * @param {unknown[] | null | undefined} f
   * @param {boolean} byUser
   */
  function setFilter(f, byUser) {
    if (spec.kind === "continuous") range = toRange(f);
    else codeFilter = toCodes(f);
    refocus();
    if (byUser) emit("scatter:filter", { filter: getFilter() });
  }

  /** @param {ArrayLike<unknown> | Iterable<unknown> | null | undefined} indices */
  function highlight(indices) {
    if (indices === null || indices === undefined) {
      marked = null;
      delete el.dataset.highlighted;
    } else {
      const m = marks(indices, n);
      marked = m.marked;
      el.dataset.highlighted = String(m.count);
    }
    refocus();
  }

  // After the filter or the highlight changed: the LUT's alpha (categorical filter) and a_sel (highlight and
  // continuous range); uploads both, updates the legend and redraws.
  function refocus() {
    dimming = focus(lut, sel, {
      codes: spec.kind === "categorical" ? codeFilter : null,
      values: spec.kind === "continuous" ? spec.values : null,
      range,
      marked,
    });
    renderer.uploadFocus(lut, sel);
    const shown = shownByFilter();
    el.dataset.shown = String(shown ? shown.reduce((sum, v) => sum + v, 0) : n);
    if (legend) legend.sync(codeFilter, range);
    requestDraw();
  }

  function buildLegend() {
    if (legend) legend.element.remove();
    legend = createLegend(spec, codes, {
      setFilter,
      toggle: (code) => setFilter(toggled(codeFilter, code), true),
      committed: () => emit("scatter:filter", { filter: getFilter() }),
    });
    if (legend) el.append(legend.element);
  }

  // ---- View (view.js): the points' place on the canvas.

  // The view that shows every point (the legend has its own room beside the canvas).
  function fitView() {
    return fitted(cssW, cssH, /** @type {import("./points.js").Box} */ (box), null);
  }

  function fit() {
    view = fitView();
    fitScale = view.s;
    userMoved = false;
    hasView = true;
  }

  /**
   * @param {number} mx
   * @param {number} my
   * @param {number} factor
   */
  function zoom(mx, my, factor) {
    view = zoomAt(view, mx, my, factor, fitScale);
    userMoved = true;
    requestDraw();
  }

  /**
   * CSS px in the canvas → data coordinates as served.
   * @param {{x: number, y: number}} p
   */
  function dataAt(p) {
    return toData(view, shift, p);
  }

  function getView() {
    if (!hasView) return pendingView ? { ...pendingView } : null;
    return placeOf(view, fitScale, cssW, cssH, shift);
  }

  /** @param {import("./view.js").Place} v */
  function setView(v) {
    if (!hasView) {
      pendingView = v; // applied once the element has a size
      return;
    }
    view = viewOf(v, fitScale, cssW, cssH, shift);
    userMoved = true;
    requestDraw();
  }

  /** @param {ArrayLike<number>} indices */
  function frameOn(indices) {
    const around = box && pos && cssW ? boxAround(pos, indices, box) : null;
    if (!around) return;
    view = fitted(cssW, cssH, around, null);
    userMoved = true;
    requestDraw();
  }

  function resetView() {
    pendingView = null;
    if (!cssW) return;
    fit();
    requestDraw();
  }

  // The user moved the view: the page hears of it once they have stopped for a moment.
  function viewChanged() {
    clearTimeout(viewTimer);
    viewTimer = window.setTimeout(() => {
      viewTimer = 0;
      if (!destroyed) emit("scatter:view", getView());
    }, VIEW_EVENT_MS);
  }

  function render() {
    frame = 0;
    if (!renderer.ready || lost || destroyed) return;
    if (n >= DENSITY_FROM && pos && box && referenceScale !== fitScale) {
      reference = referenceCount(pos, n, box, fitScale); // O(n): once per set of points and canvas size
      referenceScale = fitScale;
    }
    const zoom = view.s / fitScale;
    const drawn = renderer.draw({ view, width: cssW, height: cssH, n, dimming, zoom, reference });
    // The axes and the ring only move with the view (a density picture asks for frames while it fills in).
    const key = `${view.s} ${view.tx} ${view.ty} ${cssW} ${cssH}`;
    if (key !== drawnView) {
      drawnView = key;
      if (axes) axes.draw(view, shift, cssW, cssH);
      placeRing();
    }
    if (el.dataset.rendering !== drawn.mode) el.dataset.rendering = drawn.mode;
    const complete = String(drawn.complete);
    if (el.dataset.complete !== complete) el.dataset.complete = complete;
    if (drawn.completed) el.dataset.pictures = String(Number(el.dataset.pictures || 0) + 1);
    if (drawn.pending) requestDraw(); // the density picture is still filling in
    if (el.dataset.drawn !== "true" && drawn.complete) {
      el.dataset.points = String(n);
      el.dataset.drawn = "true";
      emit("scatter:ready", { n });
    }
  }

  function requestDraw() {
    if (!frame) frame = requestAnimationFrame(render);
  }

  /**
   * @param {number} width
   * @param {number} height
   * @param {number | undefined} devW
   * @param {number | undefined} devH
   */
  function resize(width, height, devW, devH) {
    const dpr = window.devicePixelRatio || 1;
    const oldW = cssW, oldH = cssH;
    cssW = width;
    cssH = height;
    // The exact device-pixel size when the browser reports one that agrees with devicePixelRatio (emulated ratios
    // in test browsers do not always), else the CSS size × devicePixelRatio.
    /**
     * @param {number | undefined} dev
     * @param {number} css
     * @returns {dev is number}
     */
    const ok = (dev, css) => dev !== undefined && dev > 0 && Math.abs(dev - css * dpr) <= 2;
    canvas.width = Math.max(1, ok(devW, width) ? devW : Math.round(width * dpr));
    canvas.height = Math.max(1, ok(devH, height) ? devH : Math.round(height * dpr));
    if (!box) return renderer.clearWhite();
    if (!hasView || !userMoved) fit();
    else {
      fitScale = fitView().s;
      view = resized(view, oldW, oldH, cssW, cssH);
    }
    if (pendingView) {
      const v = pendingView;
      pendingView = null;
      setView(v);
    }
    render(); // now, not on the next frame: resizing the canvas cleared it
  }

  // ---- Hover, rings and tooltip

  /**
   * Nearest point (screen distance) within HOVER_PX of (mx, my); points in focus win over the others.
   * @param {number} mx
   * @param {number} my
   */
  function pointAt(mx, my) {
    const p = /** @type {Float32Array} */ (pos);
    if (!grid) grid = buildGrid(p, n, /** @type {import("./points.js").Box} */ (box));
    const s = view.s;
    return nearest(grid, p, (mx - view.tx) / s, (view.ty - my) / s, HOVER_PX / s, (i) => inFocus(lut, sel, codes, i));
  }

  /**
   * The point under the user's cursor (-1: none); the page hears of each change ("scatter:hover").
   * @param {number} i
   */
  function setHovered(i) {
    if (i === hovered) return;
    hovered = i;
    if (i < 0) {
      delete el.dataset.hovered;
      marksUi.hide();
    } else {
      el.dataset.hovered = String(i);
      fillTip(i);
    }
    placeRing();
    emit("scatter:hover", { index: i });
  }

  /**
   * A point shown on behalf of a linked view: ringed (when the user hovers nothing here), no tooltip, no event.
   * @param {unknown} i
   */
  function linkHover(i) {
    const k = Number(i);
    linked = Number.isInteger(k) && k >= 0 && k < n ? k : -1;
    if (linked < 0) delete el.dataset.linkedHover;
    else el.dataset.linkedHover = String(linked);
    placeRing();
  }

  /** @param {number} i */
  function fillTip(i) {
    const code = codes[i];
    marksUi.show(i, describe(spec, code, i), lutCss(lut, code));
  }

  function placeRing() {
    const i = hovered >= 0 ? hovered : linked;
    const at = i < 0 || !pos ? null : toScreen(view, pos[2 * i], pos[2 * i + 1]);
    marksUi.placeRing(canvas, at, hovered < 0 && linked >= 0);
  }

  function hoverNow() {
    hoverFrame = 0;
    if (!mouse || drag || !box) return;
    setHovered(pointAt(mouse.x, mouse.y));
    marksUi.place(canvas, mouse.x, mouse.y, cssW, cssH);
  }

  /** @param {MouseEvent} e */
  function local(e) {
    const r = canvas.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  }

  // ---- Dragging: pan, or draw a lasso / box (an SVG outline over the canvas, in canvas CSS px).

  canvas.addEventListener("pointerdown", (e) => {
    if (e.button !== 0 || !box) return;
    const at = local(e);
    const kind = mode === "box" ? "box" : mode === "lasso" || e.shiftKey ? "lasso" : "pan";
    // A lasso's vertices (or the box's first corner), CSS px in the canvas.
    const shape = kind === "pan" ? null : startShape(kind, at);
    drag = { kind, x: e.clientX, y: e.clientY, tx: view.tx, ty: view.ty, moved: false, shape };
    canvas.setPointerCapture(e.pointerId);
    el.classList.add(kind === "pan" ? "dragging" : "selecting");
    setHovered(-1);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (drag) {
      if (Math.hypot(e.clientX - drag.x, e.clientY - drag.y) >= CLICK_PX) drag.moved = true;
      if (!drag.shape) {
        view = { s: view.s, tx: drag.tx + e.clientX - drag.x, ty: drag.ty + e.clientY - drag.y };
        userMoved = true;
        requestDraw();
      } else if (drag.moved) {
        extendShape(drag.shape, local(e));
        outline.setAttribute("d", outlinePath(shapeVertices(drag.shape)));
      }
      return;
    }
    mouse = local(e);
    if (!hoverFrame) hoverFrame = requestAnimationFrame(hoverNow);
  });

  /** @param {PointerEvent} e */
  function endDrag(e) {
    if (!drag) return;
    const d = drag;
    drag = null;
    if (canvas.hasPointerCapture(e.pointerId)) canvas.releasePointerCapture(e.pointerId);
    el.classList.remove("dragging", "selecting");
    outline.setAttribute("d", "");
    if (!d.shape && (view.tx !== d.tx || view.ty !== d.ty)) viewChanged();
    if (e.type !== "pointerup") return; // cancelled
    if (!d.moved) return select(local(e));
    if (!d.shape) return;
    extendShape(d.shape, local(e));
    const polygon = selection(d.shape);
    if (!polygon) return;
    // Resolved here at once (the page can highlight it before the server has kept it), in the points' own frame.
    const started = performance.now();
    const shown = shownByFilter();
    const vertices = polygon.map((p) => toData(view, { x: 0, y: 0 }, p));
    const indices = pointsInPolygon(/** @type {Float32Array} */ (pos), n, vertices, shown);
    const ms = performance.now() - started;
    el.dataset.lassoMs = ms.toFixed(1);
    emit("scatter:lasso", { polygon: polygon.map(dataAt), mode: d.shape.kind, shown, indices, ms });
  }

  /**
   * A click (a press that did not drag) selects the nearest point: the page listens for
   * "scatter:select" (detail.index, -1 for none) and el.dataset.selected says which.
   * @param {{x: number, y: number}} at
   */
  function select(at) {
    const i = pointAt(at.x, at.y);
    if (i < 0) delete el.dataset.selected;
    else el.dataset.selected = String(i);
    emit("scatter:select", { index: i });
  }
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);
  canvas.addEventListener("pointerleave", () => {
    mouse = null;
    if (!drag) setHovered(-1);
  });
  canvas.addEventListener(
    "wheel",
    (e) => {
      if (!box) return;
      e.preventDefault();
      const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? cssH : 1;
      mouse = local(e);
      zoom(mouse.x, mouse.y, Math.exp(-e.deltaY * unit * 0.0015));
      viewChanged();
      if (!hoverFrame) hoverFrame = requestAnimationFrame(hoverNow);
    },
    { passive: false }
  );
  canvas.addEventListener("dblclick", (e) => {
    if (!box) return;
    e.preventDefault();
    fit();
    requestDraw();
    viewChanged();
  });

  canvas.addEventListener("webglcontextlost", (e) => {
    e.preventDefault(); // lets the browser restore it
    lost = true;
    renderer.forget();
    if (!destroyed) showMessage("The graphics context was lost; reload the page if the plot does not come back.");
  });
  canvas.addEventListener("webglcontextrestored", () => {
    lost = false;
    if (destroyed || !pos) return;
    try {
      renderer.init(pos, codes, sel, lut);
      showMessage("");
      render();
    } catch (err) {
      fail("Cannot draw the scatter plot: " + /** @type {Error} */ (err).message);
    }
  });

  /**
   * @param {ArrayBuffer} coordsBuffer
   * @param {ArrayBuffer | null} labelsBuffer
   */
  function start(coordsBuffer, labelsBuffer) {
    if (destroyed) return;
    n = Math.floor(coordsBuffer.byteLength / 8);
    if (!LITTLE_ENDIAN && labelsBuffer) swapBytes(labelsBuffer, 2);
    const points = place(coordsBuffer);
    const given = labelsBuffer ? new Uint16Array(labelsBuffer, 0, Math.floor(labelsBuffer.byteLength / 2)) : null;
    const labels = given ? sized(Uint16Array, given, n, NO_LABEL, "labels") : new Uint16Array(n).fill(NO_LABEL);
    codes = new Uint16Array(n);
    sel = new Uint8Array(n).fill(1);
    colourBy({ kind: "categorical", codes: labels, names: readNames(el), title: "" }); // the initial colouring
    pos = points; // from here on el.scatter applies its calls at once

    renderer.init(pos, codes, sel, lut);
    showMessage(n ? "" : "No points to draw.");
    if (cssW) fit();
    pending.splice(0).forEach((f) => {
      try {
        f();
      } catch (err) {
        console.error("scatter:", err);
      }
    });
    requestDraw();
    gridLater();
  }

  /**
   * The n points of a coordinates buffer, centred on 0 (see points.js); sets shift and box.
   * @param {ArrayBuffer} coordsBuffer
   */
  function place(coordsBuffer) {
    const c = centred(coordsBuffer, n);
    shift = c.shift;
    box = c.box;
    return c.points;
  }

  // The hover index is not needed to draw: build it when the browser is idle (or on the first hover); from
  // DENSITY_FROM points in a worker (a copy of the points goes there), so the page's thread never stalls on it.
  let gridTicket = 0;
  function gridLater() {
    const ticket = ++gridTicket;
    if (n >= DENSITY_FROM && typeof Worker !== "undefined") {
      try {
        const worker = new Worker(new URL("./grid_worker.js", import.meta.url), { type: "module" });
        worker.onmessage = (e) => {
          worker.terminate();
          if (e.data.ticket === gridTicket && !grid && !destroyed) grid = e.data.grid;
        };
        worker.onerror = () => worker.terminate(); // the first hover builds it here instead
        worker.postMessage({ pos: pos && pos.slice(), n, box, ticket });
        return;
      } catch {
        // no module workers: build it here when idle
      }
    }
    /** @type {(f: () => void) => unknown} */
    const later = window.requestIdleCallback || ((f) => setTimeout(f, 50));
    later(() => {
      if (!grid && !destroyed && pos) grid = buildGrid(pos, n, /** @type {import("./points.js").Box} */ (box));
    });
  }

  // load(url): other coordinates for the same n points (say, aligned to another plot). Colours, filter, highlight
  // and selection stay, as they are per point. A view moved by the user (or setView) keeps its centre in data
  // coordinates and its scale in px per unit; otherwise the new points are fitted. The last load called wins.
  let loads = 0;
  /** @param {string} url */
  function load(url) {
    const ticket = ++loads;
    return fetchBuffer(url).then((buffer) => {
      if (destroyed || ticket !== loads) return;
      const m = Math.floor(buffer.byteLength / 8);
      if (m !== n) throw new Error(`${url} has ${m} points, not ${n}`);
      const centre = hasView ? dataAt({ x: cssW / 2, y: cssH / 2 }) : null;
      pos = place(buffer);
      grid = null;
      referenceScale = 0;
      drawnView = ""; // the ring moves with its point
      renderer.uploadPos(pos);
      if (centre && userMoved) {
        fitScale = fitView().s;
        view = centredOn(centre[0], centre[1], view.s, cssW, cssH, shift);
      } else if (cssW) fit();
      requestDraw();
      gridLater();
    });
  }

  const observer = new ResizeObserver((entries) => {
    const entry = entries[entries.length - 1];
    const dev = entry.devicePixelContentBoxSize && entry.devicePixelContentBoxSize[0];
    resize(entry.contentRect.width, entry.contentRect.height, dev && dev.inlineSize, dev && dev.blockSize);
  });
  try {
    observer.observe(canvas, { box: "device-pixel-content-box" });
  } catch {
    observer.observe(canvas);
  }

  // When htmx swaps the element out, free the GL context (browsers allow only a few at once).
  el.addEventListener("htmx:beforeCleanupElement", (e) => {
    if (e.target !== el || destroyed) return;
    destroyed = true;
    clearTimeout(viewTimer);
    observer.disconnect();
    renderer.release();
  });

  const labelsUrl = el.dataset.labelsUrl;
  Promise.all([fetchBuffer(el.dataset.coordsUrl || ""), labelsUrl ? fetchBuffer(labelsUrl) : Promise.resolve(null)])
    .then(([coords, labelsBuffer]) => start(coords, labelsBuffer))
    .catch((err) => {
      console.error("scatter:", err);
      fail("Cannot draw the scatter plot: " + err.message);
    });
}

/**
 * Sets up every scatter element in root (and root itself if it is one) that is not set up yet.
 * @param {Element | Document} root
 */
export function init(root) {
  const els = Array.from(root.querySelectorAll ? root.querySelectorAll("[data-coords-url]") : []);
  if (root instanceof Element && root.matches("[data-coords-url]")) els.push(root);
  els.forEach((node) => {
    const el = /** @type {HTMLElement} */ (node);
    if (!setUp.has(el) && !el.dataset.drawn) setup(el);
  });
}

function boot() {
  init(document);
  if (window.htmx) htmx.onLoad(init);
}
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
