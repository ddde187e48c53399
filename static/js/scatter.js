// Scatter island (a 2-D projection of a dataset's samples): draws every [data-coords-url] element with WebGL.
//
// Reads: data-coords-url → raw little-endian float32 x0,y0,x1,y1,…; data-labels-url → raw little-endian uint16, one per
// point (65535 = no label); data-label-names → id of a json_script list of strings; data-sample-url + "<i>.png" is a
// sample's thumbnail, shown in the tooltip when data-thumbnails="true". The labels and names are the initial colouring,
// i.e. colourBy({kind: "categorical", codes: labels, names, title: ""}).
//
// Sets: data-points and data-drawn="true" after the first frame; data-hovered while the user's cursor is on a point;
// data-selected after a click on a point; data-highlighted = how many points highlight() marked (absent when no
// highlight is set); data-linked-hover while hover() rings a point; data-mode = "pan" | "lasso" | "box"; data-error
// when it cannot draw.
//
// el.scatter is set synchronously when the element is set up. Its calls that need the points are queued until they
// have loaded, then applied in order; setMode and the getters act at once (the getters on what has been applied).
//   colourBy(spec)   {kind: "categorical", codes: Uint16Array(n) (65535 = missing), names: string[], title: string}
//                    or {kind: "continuous", values: Float32Array(n) (NaN or ±Infinity = missing), title: string,
//                    domain?: [lo, hi]} (domain defaults to the finite min and max). Continuous values are quantised
//                    into 256 equal bins of the domain (values outside it go to the end bins) coloured with viridis;
//                    missing values are grey. Replaces the legend (categorical: a toggle per name; continuous: the
//                    title, a gradient bar with the domain's ends under it and "from" / "to" inputs) and clears the
//                    filter; keeps the view. Arrays of the wrong length are cut or padded with "missing".
//   setFilter(f)     categorical: an array of codes (empty or null = no filter); continuous: [lo, hi], inclusive, a
//                    null end open (null = no filter; missing values never pass). Read in terms of the current kind.
//   getFilter()      categorical: the filter's codes, ascending ([] = none); continuous: [lo, hi] (an open end as
//                    ±Infinity) or null.
//   highlight(idx)   an array or typed array of point indices (out-of-range ones are ignored; [] highlights none, so
//                    no point is in focus), or null to clear.
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
//   "scatter:lasso"  {polygon: [[x, y], …], mode: "lasso" | "box"}, when a lasso of ≥ 3 vertices (kept ≥ 3 CSS px
//                    apart, at most 500) or a box of non-zero area is released; vertices in data coordinates as served.
//   "scatter:view"   getView(), 250 ms after the user last panned, zoomed or double-clicked.
//   "scatter:filter" {filter} (as getFilter()), when the user changes the filter in the legend (the range inputs on
//                    their "change"; the plot follows them as they are typed in).
// Runs on page load and on every htmx swap.
(function () {
  "use strict";

  const NO_LABEL = 65535;
  const LEVELS = 256; // colour levels of a continuous colouring: codes 0 … 255
  const HOVER_PX = 8; // how far from the cursor (CSS px) a point still counts as hovered
  const CLICK_PX = 3; // a press that moves less than this far is a click
  const LASSO_GAP_PX = 3; // a lasso vertex closer than this to the previous one is skipped…
  const LASSO_MAX = 500; // …and a lasso keeps at most this many (every other one is dropped when it would get more)
  const VIEW_EVENT_MS = 250;
  const PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#637939",
  ];
  const UNLABELLED = "#9aa0a6";
  const PALETTE_RGB = PALETTE.map(hexToRgb), GREY = hexToRgb(UNLABELLED);
  // Viridis (matplotlib's perceptually uniform sequential map), 32 evenly spaced anchors; the 256 levels interpolate.
  const VIRIDIS = (
    "440154 470d60 48186a 482374 472e7c 453882 424186 3e4a89 3a548c 365d8d 32658e 2e6d8e 2b758e 287d8e 25848e " +
    "228c8d 1f948c 1e9c89 20a386 25ab82 2eb37c 3aba76 48c16e 58c765 6ccd5a 7fd34e 93d741 a8db34 c0df25 d5e21a " +
    "eae51a fde725"
  )
    .split(" ")
    .map((h) => hexToRgb("#" + h));
  const RAMP = Array.from({ length: LEVELS }, (_, k) => {
    const t = (k / (LEVELS - 1)) * (VIRIDIS.length - 1);
    const j = Math.min(VIRIDIS.length - 2, Math.floor(t)), f = t - j;
    return VIRIDIS[j].map((c, m) => Math.round(c + (VIRIDIS[j + 1][m] - c) * f));
  });
  const RAMP_CSS = `linear-gradient(to right, ${VIRIDIS.map(
    (c, k) => `rgb(${c.join(", ")}) ${((100 * k) / (VIRIDIS.length - 1)).toFixed(1)}%`
  ).join(", ")})`;
  const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

  const ICON = (body) =>
    `<svg viewBox="0 0 16 16" width="16" height="16" fill="none" stroke="currentColor" stroke-width="1.4" ` +
    `stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">${body}</svg>`;
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

  // Every point looks its code up in a 256 × 256 texture (one texel per possible uint16 code): rgb = colour, a = 1
  // when the code passes the categorical filter (or none is on). a_sel is 1 when the point passes the per-point tests
  // (highlighted or no highlight, and inside the continuous range when one is set). A point is in focus iff both are 1.
  // Points out of focus are drawn first, in light grey, those in focus over them. The hovered point is marked by a DOM
  // ring, so hovering never redraws the points.
  const VERTEX_SHADER = `
    attribute vec2 a_pos;
    attribute float a_label;
    attribute float a_sel;
    uniform vec2 u_scale;
    uniform vec2 u_offset;
    uniform float u_size;
    uniform float u_alpha;
    uniform float u_pass; // 0: points out of focus only, 1: points in focus only
    uniform sampler2D u_lut;
    varying vec4 v_color;
    void main() {
      vec2 uv = vec2((mod(a_label, 256.0) + 0.5) / 256.0, (floor(a_label / 256.0) + 0.5) / 256.0);
      vec4 c = texture2D(u_lut, uv);
      bool focus = c.a > 0.5 && a_sel > 0.5;
      if (focus != (u_pass > 0.5)) {
        gl_Position = vec4(2.0, 2.0, 2.0, 1.0); // outside the clip volume: not drawn in this pass
        gl_PointSize = 1.0;
        v_color = vec4(0.0);
        return;
      }
      v_color = u_pass < 0.5 ? vec4(0.80, 0.82, 0.85, 0.5 * u_alpha) : vec4(c.rgb, u_alpha);
      gl_Position = vec4(a_pos * u_scale + u_offset, 0.0, 1.0);
      gl_PointSize = u_size;
    }`;
  const FRAGMENT_SHADER = `
    precision mediump float;
    varying vec4 v_color;
    uniform float u_round; // 1: clip the point's square to a disc (only worth it from about 5 device px)
    void main() {
      if (u_round > 0.5 && length(gl_PointCoord - vec2(0.5)) > 0.5) discard;
      gl_FragColor = v_color;
    }`;

  function hexToRgb(hex) {
    const v = parseInt(hex.slice(1), 16);
    return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
  }

  function colourOf(label) {
    return label === NO_LABEL ? UNLABELLED : PALETTE[label % PALETTE.length];
  }

  // A number for people: four significant digits, exponent notation when very large or small.
  function fmt(v) {
    if (!Number.isFinite(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }

  // A copy of `given` as a Type array of length n, cut or padded with `fill` (with a warning when the length is off).
  function sized(Type, given, n, fill, what) {
    const out = new Type(n).fill(fill);
    const k = Math.min(n, given.length);
    if (given.length !== n) console.warn(`scatter: ${given.length} ${what} for ${n} points`);
    out.set(given.length > k ? given.slice(0, k) : given);
    return out;
  }

  function fetchBuffer(url) {
    return fetch(url, { credentials: "same-origin" }).then((r) => {
      if (!r.ok) throw new Error(`could not load ${url} (HTTP ${r.status})`);
      return r.arrayBuffer();
    });
  }

  function readNames(el) {
    const script = el.dataset.labelNames && document.getElementById(el.dataset.labelNames);
    if (!script) return [];
    try {
      const names = JSON.parse(script.textContent);
      return Array.isArray(names) ? names.map(String) : [];
    } catch (e) {
      return [];
    }
  }

  function swapBytes(buffer, width) {
    const b = new Uint8Array(buffer);
    for (let i = 0; i + width <= b.length; i += width) {
      for (let j = 0; j < width / 2; j++) {
        const t = b[i + j];
        b[i + j] = b[i + width - 1 - j];
        b[i + width - 1 - j] = t;
      }
    }
  }

  function compile(gl, type, source) {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS) && !gl.isContextLost()) {
      throw new Error("shader: " + gl.getShaderInfoLog(shader));
    }
    return shader;
  }

  // Uniform grid over the data's bounding box (counting sort: the points of cell c are items[start[c] .. start[c+1])),
  // so a hover only looks at the few cells around the cursor.
  function buildGrid(pos, n, box) {
    let w = box.maxX - box.minX, h = box.maxY - box.minY;
    if (!(w > 0)) w = h > 0 ? h : 1;
    if (!(h > 0)) h = w;
    const target = Math.max(1, n / 4); // about four points a cell
    const gx = Math.min(2048, Math.max(1, Math.round(Math.sqrt((target * w) / h))));
    const gy = Math.min(2048, Math.max(1, Math.round(target / gx)));
    const x0 = (box.minX + box.maxX) / 2 - w / 2, y0 = (box.minY + box.maxY) / 2 - h / 2;
    const cw = w / gx, ch = h / gy;
    const cellOf = new Int32Array(n);
    const start = new Int32Array(gx * gy + 1);
    for (let i = 0; i < n; i++) {
      const x = pos[2 * i], y = pos[2 * i + 1];
      if (!Number.isFinite(x) || !Number.isFinite(y)) {
        cellOf[i] = -1;
        continue;
      }
      const cx = Math.min(gx - 1, Math.max(0, Math.floor((x - x0) / cw)));
      const cy = Math.min(gy - 1, Math.max(0, Math.floor((y - y0) / ch)));
      const c = cy * gx + cx;
      cellOf[i] = c;
      start[c + 1]++;
    }
    for (let c = 0; c < gx * gy; c++) start[c + 1] += start[c];
    const fill = start.slice(0, gx * gy);
    const items = new Uint32Array(start[gx * gy]);
    for (let i = 0; i < n; i++) if (cellOf[i] >= 0) items[fill[cellOf[i]]++] = i;
    return { gx, gy, x0, y0, cw, ch, start, items };
  }

  function checkSpec(spec) {
    const ok =
      spec &&
      ((spec.kind === "categorical" && spec.codes && spec.codes.length !== undefined) ||
        (spec.kind === "continuous" && spec.values && spec.values.length !== undefined));
    if (!ok) {
      throw new TypeError('scatter: colourBy wants {kind: "categorical", codes, …} or {kind: "continuous", values, …}');
    }
  }

  function setup(el) {
    el._scatter = true;
    const thumbnails = el.dataset.thumbnails === "true";
    const texts = el.dataset.texts === "true"; // text samples: the tooltip fetches `${sampleUrl}${i}.txt`
    const textCache = new Map(); // index → text (or a promise of it)
    const sampleUrl = el.dataset.sampleUrl || "";

    // Points: n, pos (float32 x,y, shifted by `shift` so that the data are centred on 0), their bounding box and the
    // hover grid; codes is the label buffer as uploaded (categorical codes, or colour levels of a continuous spec).
    let n = 0, pos = null, box = null, grid = null, shift = { x: 0, y: 0 }, codes = null;
    let spec = { kind: "categorical", names: [], title: "" }; // the colouring applied (+ values, domain if continuous)
    let codeFilter = new Set(), range = null; // the categorical filter's codes; the continuous filter's [lo, hi]
    let marked = null, sel = null; // highlighted points (Uint8Array or null); a_sel (Uint8Array, 1 = passes)
    let dimming = false; // whether any point is out of focus: then the grey pass is drawn
    const lut = new Uint8Array(65536 * 4);
    let glState = null; // program, locations, buffers, texture; rebuilt after a context restore
    let cssW = 0, cssH = 0;
    let view = { s: 1, tx: 0, ty: 0 }, fitScale = 1, userMoved = false, hasView = false, pendingView = null;
    let hovered = -1, linked = -1, drag = null, mouse = null, mode = "pan";
    let frame = 0, hoverFrame = 0, viewTimer = 0, lost = false, destroyed = false;
    let legend = null, legendItems = [], rangeUi = null;
    const pending = []; // el.scatter calls made before the data loaded

    function whenLoaded(f) {
      if (pos) f();
      else pending.push(f);
    }
    el.scatter = {
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
    const ring = document.createElement("div");
    ring.className = "scatter-ring";
    ring.hidden = true;
    const tip = document.createElement("div");
    tip.className = "scatter-tip";
    tip.hidden = true;
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
    el.append(canvas, overlay, message, ring, tip, toolbar);
    setMode(mode);

    function setMode(m) {
      if (!MODES.includes(m)) throw new TypeError(`scatter: mode ${m} is not one of ${MODES.join(", ")}`);
      mode = m;
      el.dataset.mode = m;
      toolButtons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.mode === m)));
    }

    function showMessage(text) {
      message.textContent = text;
      message.hidden = !text;
    }
    function fail(text) {
      el.dataset.error = "true";
      canvas.hidden = true;
      ring.hidden = true;
      tip.hidden = true;
      toolbar.hidden = true;
      showMessage(text);
    }

    const attrs = { alpha: false, antialias: false, depth: false, stencil: false, premultipliedAlpha: false };
    const gl = canvas.getContext("webgl2", attrs) || canvas.getContext("webgl", attrs);
    if (!gl) return fail("Cannot draw the scatter plot: WebGL is not available in this browser.");
    if (gl.getParameter(gl.MAX_VERTEX_TEXTURE_IMAGE_UNITS) < 1) {
      return fail("Cannot draw the scatter plot: this browser's WebGL lacks vertex textures.");
    }
    function clearWhite() {
      // An opaque (alpha: false) canvas is black until drawn on; keep it white while the points load.
      gl.clearColor(1, 1, 1, 1);
      gl.clear(gl.COLOR_BUFFER_BIT);
    }
    clearWhite();

    // ---- Colouring, filter and highlight. Each is O(n) (+ the 65536 LUT entries) per change, never per frame.

    // Fills codes, the LUT's colours and the legend from spec s (checked by checkSpec); clears the filter.
    function colourBy(s) {
      const title = s.title ? String(s.title) : "";
      if (s.kind === "continuous") {
        const values = sized(Float32Array, s.values, n, NaN, "values");
        const d = s.domain && s.domain.length === 2 ? Array.from(s.domain, Number) : null;
        const domain =
          d && d.every(Number.isFinite) ? [Math.min(d[0], d[1]), Math.max(d[0], d[1])] : finiteBounds(values);
        const scale = domain[1] > domain[0] ? LEVELS / (domain[1] - domain[0]) : 0;
        for (let i = 0; i < n; i++) {
          const v = values[i];
          if (!Number.isFinite(v)) codes[i] = NO_LABEL;
          else codes[i] = scale ? Math.min(LEVELS - 1, Math.max(0, Math.floor((v - domain[0]) * scale))) : LEVELS / 2;
        }
        spec = { kind: "continuous", title, values, domain };
      } else {
        codes.set(sized(Uint16Array, s.codes, n, NO_LABEL, "codes"));
        spec = { kind: "categorical", title, names: Array.from(s.names || [], String) };
      }
      const continuous = spec.kind === "continuous";
      for (let v = 0; v < 65536; v++) {
        if (continuous) lut.set(v < LEVELS ? RAMP[v] : GREY, v * 4);
        else lut.set(v === NO_LABEL ? GREY : PALETTE_RGB[v % PALETTE_RGB.length], v * 4);
      }
      if (glState) {
        gl.bindBuffer(gl.ARRAY_BUFFER, glState.codes);
        gl.bufferSubData(gl.ARRAY_BUFFER, 0, codes);
      }
      codeFilter = new Set();
      range = null;
      buildLegend();
      refocus();
      if (hovered >= 0) fillTip(hovered);
      // Fit the points again clear of the new legend only while nothing has been shown yet (a call made before the
      // data loaded); later the view stays as it is, as a jump when only the colours change would be disorienting.
      if (hasView && !userMoved && el.dataset.drawn !== "true") fit();
    }

    // [min, max] of the finite values ([0, 1] when there are none).
    function finiteBounds(values) {
      let lo = Infinity, hi = -Infinity;
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (!Number.isFinite(v)) continue;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      return lo <= hi ? [lo, hi] : [0, 1];
    }

    function getFilter() {
      if (spec.kind === "continuous") return range ? range.slice() : null;
      return Array.from(codeFilter).sort((a, b) => a - b);
    }

    // byUser: the legend changed it, so the page hears of it ("scatter:filter").
    function setFilter(f, byUser) {
      if (spec.kind === "continuous") range = toRange(f);
      else {
        const ok = (v) => Number.isInteger(v) && v >= 0 && v <= NO_LABEL;
        codeFilter = new Set(Array.from(f || [], Number).filter(ok));
      }
      refocus();
      if (byUser) emit("scatter:filter", { filter: getFilter() });
    }

    // [lo, hi] from a filter given for a continuous colouring: null / NaN ends are open; null when both are.
    function toRange(f) {
      if (!f || f.length < 2) return null;
      const end = (v, open) =>
        v === null || v === undefined || v === "" || Number.isNaN(Number(v)) ? open : Number(v);
      const lo = end(f[0], -Infinity), hi = end(f[1], Infinity);
      if (lo === -Infinity && hi === Infinity) return null;
      return [Math.min(lo, hi), Math.max(lo, hi)];
    }

    function highlight(indices) {
      if (indices === null || indices === undefined) {
        marked = null;
        delete el.dataset.highlighted;
      } else {
        const list = indices.length !== undefined ? indices : Array.from(indices);
        marked = new Uint8Array(n);
        let count = 0;
        for (let k = 0; k < list.length; k++) {
          const i = Number(list[k]);
          if (Number.isInteger(i) && i >= 0 && i < n && !marked[i]) {
            marked[i] = 1;
            count++;
          }
        }
        el.dataset.highlighted = String(count);
      }
      refocus();
    }

    // After the filter or the highlight changed: the LUT's alpha (categorical filter) and a_sel (highlight and
    // continuous range); uploads both, updates the legend and redraws.
    function refocus() {
      const byCode = spec.kind === "categorical" && codeFilter.size > 0;
      for (let v = 0; v < 65536; v++) lut[v * 4 + 3] = !byCode || codeFilter.has(v) ? 255 : 0;
      const values = spec.kind === "continuous" && range ? spec.values : null;
      const lo = range ? range[0] : 0, hi = range ? range[1] : 0;
      for (let i = 0; i < n; i++) {
        let f = marked ? marked[i] : 1;
        if (f && values) f = Number.isFinite(values[i]) && values[i] >= lo && values[i] <= hi ? 1 : 0; // missing fail
        sel[i] = f;
      }
      dimming = byCode || values !== null || marked !== null;
      if (glState) {
        gl.bindTexture(gl.TEXTURE_2D, glState.lut);
        gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, 256, 256, gl.RGBA, gl.UNSIGNED_BYTE, lut);
        gl.bindBuffer(gl.ARRAY_BUFFER, glState.sel);
        gl.bufferSubData(gl.ARRAY_BUFFER, 0, sel);
      }
      syncLegend();
      requestDraw();
    }

    // ---- Legend: categorical → one toggle button per name (any pressed → only those codes in focus);
    // continuous → title, gradient bar over the domain, and "from" / "to" inputs for the range.

    function buildLegend() {
      if (legend) legend.remove();
      legend = null;
      legendItems = [];
      rangeUi = null;
      if (spec.kind === "continuous") legend = continuousLegend();
      else if (spec.names.length) legend = categoricalLegend();
      if (legend) el.append(legend);
    }

    function legendFrame() {
      const wrap = document.createElement("div");
      wrap.className = "scatter-legend";
      const all = document.createElement("button");
      all.type = "button";
      all.className = "scatter-legend-all";
      all.textContent = "show all";
      all.addEventListener("click", () => setFilter(null, true));
      wrap.append(all);
      if (spec.title) {
        const title = document.createElement("div");
        title.className = "scatter-legend-title";
        title.textContent = spec.title;
        wrap.append(title);
      }
      return wrap;
    }

    function categoricalLegend() {
      const wrap = legendFrame();
      const counts = new Uint32Array(spec.names.length);
      for (let i = 0; i < n; i++) if (codes[i] < counts.length) counts[codes[i]]++;
      spec.names.forEach((name, i) => {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "scatter-legend-item";
        b.dataset.label = String(i);
        b.setAttribute("aria-pressed", "false");
        b.title = `${name}: ${counts[i].toLocaleString()} point${counts[i] === 1 ? "" : "s"} (click to filter)`;
        const swatch = document.createElement("span");
        swatch.className = "scatter-swatch";
        swatch.style.background = colourOf(i);
        const text = document.createElement("span");
        text.textContent = name;
        b.append(swatch, text);
        if (!counts[i]) b.classList.add("empty");
        b.addEventListener("click", () => {
          const next = new Set(codeFilter);
          if (next.has(i)) next.delete(i);
          else next.add(i);
          setFilter(Array.from(next), true);
        });
        wrap.append(b);
        legendItems.push(b);
      });
      return wrap;
    }

    function continuousLegend() {
      const wrap = legendFrame();
      wrap.classList.add("scatter-legend-continuous");
      const [lo, hi] = spec.domain;
      const bar = document.createElement("div");
      bar.className = "scatter-bar";
      bar.style.background = RAMP_CSS;
      const below = document.createElement("div"), above = document.createElement("div");
      below.className = above.className = "scatter-bar-mask";
      below.style.left = above.style.right = "0";
      bar.append(below, above);
      const ends = document.createElement("div");
      ends.className = "scatter-bar-ends";
      const min = document.createElement("span"), max = document.createElement("span");
      min.textContent = fmt(lo);
      max.textContent = fmt(hi);
      ends.append(min, max);
      const row = document.createElement("div");
      row.className = "scatter-range";
      const input = (name, placeholder) => {
        const label = document.createElement("label");
        const i = document.createElement("input");
        i.type = "number";
        i.step = "any";
        i.name = name;
        i.placeholder = fmt(placeholder);
        i.setAttribute("aria-label", `${spec.title || "value"} ${name}`);
        // The plot follows the typing; the page hears of the change once it is committed.
        i.addEventListener("input", () => setFilter([from.value, to.value], false));
        i.addEventListener("change", () => {
          setFilter([from.value, to.value], false);
          emit("scatter:filter", { filter: getFilter() });
        });
        label.append(name, i);
        row.append(label);
        return i;
      };
      const from = input("from", lo), to = input("to", hi);
      wrap.append(bar, ends, row);
      rangeUi = { from, to, below, above };
      return wrap;
    }

    function syncLegend() {
      if (!legend) return;
      legend.classList.toggle("filtering", spec.kind === "continuous" ? range !== null : codeFilter.size > 0);
      legendItems.forEach((b) => b.setAttribute("aria-pressed", String(codeFilter.has(Number(b.dataset.label)))));
      if (!rangeUi) return;
      const [dlo, dhi] = spec.domain;
      const share = (v) => (dhi > dlo ? Math.min(1, Math.max(0, (v - dlo) / (dhi - dlo))) : 0);
      rangeUi.below.style.width = `${100 * (range ? share(range[0]) : 0)}%`;
      rangeUi.above.style.width = `${100 * (range ? 1 - share(range[1]) : 0)}%`;
      // Leave an input alone while it is being typed in (its text may not be a number yet).
      [rangeUi.from, rangeUi.to].forEach((input, k) => {
        if (input === document.activeElement) return;
        input.value = range && Number.isFinite(range[k]) ? String(range[k]) : "";
      });
    }

    // ---- GL

    function initGL() {
      const program = gl.createProgram();
      gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX_SHADER));
      gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT_SHADER));
      gl.bindAttribLocation(program, 0, "a_pos");
      gl.bindAttribLocation(program, 1, "a_label");
      gl.bindAttribLocation(program, 2, "a_sel");
      gl.linkProgram(program);
      if (!gl.getProgramParameter(program, gl.LINK_STATUS) && !gl.isContextLost()) {
        throw new Error("shader link: " + gl.getProgramInfoLog(program));
      }
      gl.useProgram(program);
      const u = {};
      ["u_scale", "u_offset", "u_size", "u_alpha", "u_pass", "u_lut", "u_round"].forEach((name) => {
        u[name] = gl.getUniformLocation(program, name);
      });

      const buffer = (data, usage, index, size, type) => {
        const b = gl.createBuffer();
        gl.bindBuffer(gl.ARRAY_BUFFER, b);
        gl.bufferData(gl.ARRAY_BUFFER, data, usage);
        gl.enableVertexAttribArray(index);
        gl.vertexAttribPointer(index, size, type, false, 0, 0); // not normalised: codes and 0/1 as they are
        return b;
      };
      const posBuffer = buffer(pos, gl.DYNAMIC_DRAW, 0, 2, gl.FLOAT);
      const codesBuffer = buffer(codes, gl.DYNAMIC_DRAW, 1, 1, gl.UNSIGNED_SHORT);
      const selBuffer = buffer(sel, gl.DYNAMIC_DRAW, 2, 1, gl.UNSIGNED_BYTE);

      const texture = gl.createTexture();
      gl.activeTexture(gl.TEXTURE0);
      gl.bindTexture(gl.TEXTURE_2D, texture);
      gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, 256, 256, 0, gl.RGBA, gl.UNSIGNED_BYTE, lut);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
      gl.uniform1i(u.u_lut, 0);

      gl.disable(gl.DEPTH_TEST);
      gl.enable(gl.BLEND);
      gl.blendFuncSeparate(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA, gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
      const sizeRange = gl.getParameter(gl.ALIASED_POINT_SIZE_RANGE);
      glState = { u, lut: texture, pos: posBuffer, codes: codesBuffer, sel: selBuffer };
      glState.maxPointSize = sizeRange ? sizeRange[1] : 64;
    }

    // ---- View. It maps (shifted) data (x, y) to CSS px in the canvas: (x·s + tx, −y·s + ty); one scale for both axes.

    // The view that shows every point, clear of the legend (top right) when that leaves them most of the width.
    function fitted() {
      const m = Math.max(12, 0.05 * Math.min(cssW, cssH));
      const lw = legend ? legend.offsetWidth + 8 : 0;
      const right = lw && lw < 0.35 * cssW ? Math.max(m, lw + 8) : m;
      const sx = (cssW - m - right) / (box.maxX - box.minX), sy = (cssH - 2 * m) / (box.maxY - box.minY);
      let s = Math.min(sx, sy);
      if (!(s > 0 && Number.isFinite(s))) s = [sx, sy].find((v) => v > 0 && Number.isFinite(v)) || 1;
      return {
        s,
        tx: (cssW + m - right) / 2 - s * (box.minX + box.maxX) / 2,
        ty: cssH / 2 + s * (box.minY + box.maxY) / 2,
      };
    }

    function fit() {
      view = fitted();
      fitScale = view.s;
      userMoved = false;
      hasView = true;
    }

    function clampScale(s) {
      return Math.min(fitScale * 1e4, Math.max(fitScale * 0.2, s));
    }

    function zoomAt(mx, my, factor) {
      const s = clampScale(view.s * factor);
      const f = s / view.s;
      view = { s, tx: mx - (mx - view.tx) * f, ty: my - (my - view.ty) * f };
      userMoved = true;
      requestDraw();
    }

    // CSS px in the canvas → data coordinates as served.
    function toData(p) {
      return [(p.x - view.tx) / view.s + shift.x, (view.ty - p.y) / view.s + shift.y];
    }

    function getView() {
      if (!hasView) return pendingView ? { ...pendingView } : null;
      const [x, y] = toData({ x: cssW / 2, y: cssH / 2 });
      return { x, y, zoom: view.s / fitScale };
    }

    function setView(v) {
      if (!hasView) {
        pendingView = v; // applied once the element has a size
        return;
      }
      const s = clampScale(v.zoom * fitScale);
      view = { s, tx: cssW / 2 - s * (v.x - shift.x), ty: cssH / 2 + s * (v.y - shift.y) };
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
      viewTimer = setTimeout(() => {
        viewTimer = 0;
        if (!destroyed) emit("scatter:view", getView());
      }, VIEW_EVENT_MS);
    }

    function render() {
      frame = 0;
      if (!glState || lost || destroyed) return;
      const dpr = cssW > 0 ? canvas.width / cssW : window.devicePixelRatio || 1;
      const u = glState.u;
      gl.viewport(0, 0, canvas.width, canvas.height);
      clearWhite();
      const w = cssW || 1, h = cssH || 1;
      gl.uniform2f(u.u_scale, (2 * view.s) / w, (2 * view.s) / h);
      gl.uniform2f(u.u_offset, (2 * view.tx) / w - 1, 1 - (2 * view.ty) / h);
      const size = Math.min(glState.maxPointSize, (n > 50000 ? 3 : 4) * dpr);
      gl.uniform1f(u.u_size, size);
      gl.uniform1f(u.u_round, size >= 5 ? 1 : 0);
      gl.uniform1f(u.u_alpha, n > 50000 ? 0.6 : 0.8);
      if (dimming) {
        gl.uniform1f(u.u_pass, 0);
        gl.drawArrays(gl.POINTS, 0, n);
      }
      gl.uniform1f(u.u_pass, 1);
      gl.drawArrays(gl.POINTS, 0, n);
      placeRing();
      if (el.dataset.drawn !== "true") {
        el.dataset.points = String(n);
        el.dataset.drawn = "true";
        emit("scatter:ready", { n });
      }
    }

    function requestDraw() {
      if (!frame) frame = requestAnimationFrame(render);
    }

    function resize(width, height, devW, devH) {
      const dpr = window.devicePixelRatio || 1;
      const oldW = cssW, oldH = cssH;
      cssW = width;
      cssH = height;
      // The exact device-pixel size when the browser reports one that agrees with devicePixelRatio (emulated ratios
      // in test browsers do not always), else the CSS size × devicePixelRatio.
      const ok = (dev, css) => dev > 0 && Math.abs(dev - css * dpr) <= 2;
      canvas.width = Math.max(1, ok(devW, width) ? devW : Math.round(width * dpr));
      canvas.height = Math.max(1, ok(devH, height) ? devH : Math.round(height * dpr));
      if (!box) return clearWhite();
      if (!hasView || !userMoved) fit();
      else {
        fitScale = fitted().s;
        view = { s: view.s, tx: view.tx + (cssW - oldW) / 2, ty: view.ty + (cssH - oldH) / 2 };
      }
      if (pendingView) {
        const v = pendingView;
        pendingView = null;
        setView(v);
      }
      render(); // now, not on the next frame: resizing the canvas cleared it
    }

    // ---- Hover, rings and tooltip

    // Nearest point (screen distance) within HOVER_PX of (mx, my); points in focus win over the others.
    function nearest(mx, my) {
      if (!grid) grid = buildGrid(pos, n, box);
      const g = grid, s = view.s;
      const x = (mx - view.tx) / s, y = (view.ty - my) / s, r = HOVER_PX / s;
      const cx0 = Math.max(0, Math.floor((x - r - g.x0) / g.cw)), cx1 = Math.min(g.gx - 1, Math.floor((x + r - g.x0) / g.cw));
      const cy0 = Math.max(0, Math.floor((y - r - g.y0) / g.ch)), cy1 = Math.min(g.gy - 1, Math.floor((y + r - g.y0) / g.ch));
      let best = -1, bestD = r * r, bestFocus = false;
      for (let cy = cy0; cy <= cy1; cy++) {
        for (let cx = cx0; cx <= cx1; cx++) {
          const c = cy * g.gx + cx;
          for (let k = g.start[c], end = g.start[c + 1]; k < end; k++) {
            const i = g.items[k];
            const dx = pos[2 * i] - x, dy = pos[2 * i + 1] - y, d = dx * dx + dy * dy;
            if (d > r * r) continue;
            const focus = sel[i] !== 0 && lut[codes[i] * 4 + 3] !== 0;
            // Later points are drawn on top, so they win ties.
            if ((focus && !bestFocus) || (focus === bestFocus && (d < bestD || (d === bestD && i > best)))) {
              best = i;
              bestD = d;
              bestFocus = focus;
            }
          }
        }
      }
      return best;
    }

    // The point under the user's cursor (-1: none); the page hears of each change ("scatter:hover").
    function setHovered(i) {
      if (i === hovered) return;
      hovered = i;
      if (i < 0) {
        delete el.dataset.hovered;
        tip.hidden = true;
      } else {
        el.dataset.hovered = String(i);
        fillTip(i);
      }
      placeRing();
      emit("scatter:hover", { index: i });
    }

    // A point shown on behalf of a linked view: ringed (when the user hovers nothing here), no tooltip, no event.
    function linkHover(i) {
      const k = Number(i);
      linked = Number.isInteger(k) && k >= 0 && k < n ? k : -1;
      if (linked < 0) delete el.dataset.linkedHover;
      else el.dataset.linkedHover = String(linked);
      placeRing();
    }

    function fillTip(i) {
      const code = codes[i];
      let text;
      if (spec.kind === "continuous") {
        const v = spec.values[i];
        text = `${spec.title || "value"}: ${Number.isFinite(v) ? fmt(v) : "no value"}`;
      } else {
        const name = code === NO_LABEL ? "no label" : code < spec.names.length ? spec.names[code] : String(code);
        text = spec.title ? `${spec.title}: ${name}` : name;
      }
      const parts = [];
      if (thumbnails) {
        const img = document.createElement("img");
        img.src = `${sampleUrl}${i}.png`;
        img.width = 64;
        img.height = 64;
        img.alt = "";
        parts.push(img);
      }
      const block = document.createElement("div");
      const index = document.createElement("b");
      index.textContent = `#${i}`;
      const swatch = document.createElement("span");
      swatch.className = "scatter-swatch";
      swatch.style.background = `rgb(${lut[code * 4]}, ${lut[code * 4 + 1]}, ${lut[code * 4 + 2]})`;
      const label = document.createElement("span");
      label.textContent = text;
      const line = document.createElement("div");
      line.append(swatch, label);
      block.append(index, line);
      if (texts) block.append(sampleText(i));
      parts.push(block);
      tip.replaceChildren(...parts);
      tip.hidden = false;
    }

    // The text of sample i in a <q>, filled when it arrives (fetched once per sample).
    function sampleText(i) {
      const q = document.createElement("q");
      q.className = "scatter-text";
      if (!textCache.has(i)) {
        textCache.set(
          i,
          fetch(`${sampleUrl}${i}.txt`, { credentials: "same-origin" }).then((r) => (r.ok ? r.text() : "")),
        );
      }
      Promise.resolve(textCache.get(i)).then((t) => {
        textCache.set(i, t);
        q.textContent = t.length > 200 ? `${t.slice(0, 200)}…` : t;
      });
      return q;
    }

    function placeRing() {
      const i = hovered >= 0 ? hovered : linked;
      ring.hidden = i < 0 || !pos;
      ring.classList.toggle("linked", hovered < 0 && linked >= 0);
      if (ring.hidden) return;
      ring.style.left = `${canvas.offsetLeft + pos[2 * i] * view.s + view.tx}px`;
      ring.style.top = `${canvas.offsetTop + view.ty - pos[2 * i + 1] * view.s}px`;
    }

    function placeTip(mx, my) {
      if (tip.hidden) return;
      const left0 = canvas.offsetLeft, top0 = canvas.offsetTop;
      const tw = tip.offsetWidth, th = tip.offsetHeight;
      let left = mx + 14, top = my + 14;
      if (left + tw > cssW - 4) left = mx - 14 - tw;
      if (top + th > cssH - 4) top = my - 14 - th;
      tip.style.left = `${left0 + Math.max(4, left)}px`;
      tip.style.top = `${top0 + Math.max(4, top)}px`;
    }

    function hoverNow() {
      hoverFrame = 0;
      if (!mouse || drag || !box) return;
      setHovered(nearest(mouse.x, mouse.y));
      placeTip(mouse.x, mouse.y);
    }

    function local(e) {
      const r = canvas.getBoundingClientRect();
      return { x: e.clientX - r.left, y: e.clientY - r.top };
    }

    // ---- Dragging: pan, or draw a lasso / box (an SVG outline over the canvas, in canvas CSS px).

    canvas.addEventListener("pointerdown", (e) => {
      if (e.button !== 0 || !box) return;
      const at = local(e);
      const kind = mode === "box" ? "box" : mode === "lasso" || e.shiftKey ? "lasso" : "pan";
      drag = { kind, x: e.clientX, y: e.clientY, tx: view.tx, ty: view.ty, moved: false };
      drag.path = [at]; // lasso vertices (or the box's first corner), CSS px in the canvas
      drag.gap = LASSO_GAP_PX;
      canvas.setPointerCapture(e.pointerId);
      el.classList.add(kind === "pan" ? "dragging" : "selecting");
      setHovered(-1);
    });
    canvas.addEventListener("pointermove", (e) => {
      if (drag) {
        if (Math.hypot(e.clientX - drag.x, e.clientY - drag.y) >= CLICK_PX) drag.moved = true;
        if (drag.kind === "pan") {
          view = { s: view.s, tx: drag.tx + e.clientX - drag.x, ty: drag.ty + e.clientY - drag.y };
          userMoved = true;
          requestDraw();
        } else if (drag.moved) {
          extendShape(drag, local(e));
          drawShape(drag);
        }
        return;
      }
      mouse = local(e);
      if (!hoverFrame) hoverFrame = requestAnimationFrame(hoverNow);
    });

    // Box: the press point and the current one. Lasso: vertices at least `gap` apart, at most LASSO_MAX of them
    // (past that, every other one is dropped and the gap doubles), so a long drag stays cheap to draw and to send.
    function extendShape(d, at) {
      if (d.kind === "box") {
        d.end = at;
        return;
      }
      const last = d.path[d.path.length - 1];
      if (Math.hypot(at.x - last.x, at.y - last.y) < d.gap) return;
      d.path.push(at);
      if (d.path.length > LASSO_MAX) {
        d.path = d.path.filter((_, k) => k % 2 === 0);
        d.gap *= 2;
      }
    }

    function shapeVertices(d) {
      if (d.kind === "lasso") return d.path;
      const a = d.path[0], b = d.end || a;
      return [a, { x: b.x, y: a.y }, b, { x: a.x, y: b.y }];
    }

    function drawShape(d) {
      const v = d ? shapeVertices(d) : [];
      outline.setAttribute("d", v.length ? `M${v.map((p) => `${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join("L")}Z` : "");
    }

    function endDrag(e) {
      if (!drag) return;
      const d = drag;
      drag = null;
      if (canvas.hasPointerCapture(e.pointerId)) canvas.releasePointerCapture(e.pointerId);
      el.classList.remove("dragging", "selecting");
      drawShape(null);
      if (d.kind === "pan" && (view.tx !== d.tx || view.ty !== d.ty)) viewChanged();
      if (e.type !== "pointerup") return; // cancelled
      if (!d.moved) return select(local(e));
      if (d.kind === "pan") return;
      extendShape(d, local(e));
      const v = shapeVertices(d);
      const area = d.kind === "box" && Math.abs((v[2].x - v[0].x) * (v[2].y - v[0].y)) > 0;
      if (d.kind === "lasso" ? v.length < 3 : !area) return;
      emit("scatter:lasso", { polygon: v.map(toData), mode: d.kind });
    }

    // A click (a press that did not drag) selects the nearest point: the page listens for
    // "scatter:select" (detail.index, -1 for none) and el.dataset.selected says which.
    function select(at) {
      const i = nearest(at.x, at.y);
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
        zoomAt(mouse.x, mouse.y, Math.exp(-e.deltaY * unit * 0.0015));
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
      glState = null;
      if (!destroyed) showMessage("The graphics context was lost; reload the page if the plot does not come back.");
    });
    canvas.addEventListener("webglcontextrestored", () => {
      lost = false;
      if (destroyed || !pos) return;
      try {
        initGL();
        showMessage("");
        render();
      } catch (err) {
        fail("Cannot draw the scatter plot: " + err.message);
      }
    });

    function start(coordsBuffer, labelsBuffer) {
      if (destroyed) return;
      n = Math.floor(coordsBuffer.byteLength / 8);
      if (!LITTLE_ENDIAN && labelsBuffer) swapBytes(labelsBuffer, 2);
      const points = centred(coordsBuffer);
      const given = labelsBuffer ? new Uint16Array(labelsBuffer, 0, Math.floor(labelsBuffer.byteLength / 2)) : null;
      const labels = given ? sized(Uint16Array, given, n, NO_LABEL, "labels") : new Uint16Array(n).fill(NO_LABEL);
      codes = new Uint16Array(n);
      sel = new Uint8Array(n).fill(1);
      colourBy({ kind: "categorical", codes: labels, names: readNames(el), title: "" }); // the initial colouring
      pos = points; // from here on el.scatter applies its calls at once

      initGL();
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

    // The n points of a coordinates buffer (byte-swapped in place if need be), shifted to be centred on 0 so float32
    // keeps its precision when zoomed in (the shifted copy is what is uploaded and indexed; toData() shifts back);
    // sets shift and box (the bounding box of the finite points).
    function centred(coordsBuffer) {
      if (!LITTLE_ENDIAN) swapBytes(coordsBuffer, 4);
      const points = new Float32Array(coordsBuffer, 0, n * 2);
      let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
      for (let i = 0; i < n; i++) {
        const x = points[2 * i], y = points[2 * i + 1];
        if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
        if (x < minX) minX = x;
        if (x > maxX) maxX = x;
        if (y < minY) minY = y;
        if (y > maxY) maxY = y;
      }
      if (minX > maxX) minX = maxX = minY = maxY = 0;
      const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
      if (cx !== 0 || cy !== 0) {
        for (let i = 0; i < n; i++) {
          points[2 * i] -= cx;
          points[2 * i + 1] -= cy;
        }
      }
      shift = { x: cx, y: cy };
      box = { minX: minX - cx, maxX: maxX - cx, minY: minY - cy, maxY: maxY - cy };
      return points;
    }

    // The hover index is not needed to draw: build it when the browser is idle (or on the first hover).
    function gridLater() {
      const later = window.requestIdleCallback || ((f) => setTimeout(f, 50));
      later(() => {
        if (!grid && !destroyed && pos) grid = buildGrid(pos, n, box);
      });
    }

    // load(url): other coordinates for the same n points (say, aligned to another plot). Colours, filter, highlight
    // and selection stay, as they are per point. A view moved by the user (or setView) keeps its centre in data
    // coordinates and its scale in px per unit; otherwise the new points are fitted. The last load called wins.
    let loads = 0;
    function load(url) {
      const ticket = ++loads;
      return fetchBuffer(url).then((buffer) => {
        if (destroyed || ticket !== loads) return;
        const m = Math.floor(buffer.byteLength / 8);
        if (m !== n) throw new Error(`${url} has ${m} points, not ${n}`);
        const centre = hasView ? toData({ x: cssW / 2, y: cssH / 2 }) : null;
        pos = centred(buffer);
        grid = null;
        if (glState) {
          gl.bindBuffer(gl.ARRAY_BUFFER, glState.pos);
          gl.bufferSubData(gl.ARRAY_BUFFER, 0, pos);
        }
        if (centre && userMoved) {
          fitScale = fitted().s;
          const s = view.s;
          view = { s, tx: cssW / 2 - s * (centre[0] - shift.x), ty: cssH / 2 + s * (centre[1] - shift.y) };
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
    } catch (e) {
      observer.observe(canvas);
    }

    // When htmx swaps the element out, free the GL context (browsers allow only a few at once).
    el.addEventListener("htmx:beforeCleanupElement", (e) => {
      if (e.target !== el || destroyed) return;
      destroyed = true;
      clearTimeout(viewTimer);
      observer.disconnect();
      const ext = gl.getExtension("WEBGL_lose_context");
      if (ext) ext.loseContext();
    });

    const labelsUrl = el.dataset.labelsUrl;
    Promise.all([fetchBuffer(el.dataset.coordsUrl), labelsUrl ? fetchBuffer(labelsUrl) : Promise.resolve(null)])
      .then(([coords, labelsBuffer]) => start(coords, labelsBuffer))
      .catch((err) => {
        console.error("scatter:", err);
        fail("Cannot draw the scatter plot: " + err.message);
      });
  }

  function init(root) {
    const els = Array.from(root.querySelectorAll ? root.querySelectorAll("[data-coords-url]") : []);
    if (root.matches && root.matches("[data-coords-url]")) els.push(root);
    els.forEach((el) => {
      if (!el._scatter && !el.dataset.drawn) setup(el);
    });
  }

  function boot() {
    init(document);
    if (window.htmx) htmx.onLoad(init);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
