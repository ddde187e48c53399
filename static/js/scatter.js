// Scatter island (a 2-D projection of a dataset's samples): draws every [data-coords-url] element with WebGL.
// Contract: data-coords-url → raw little-endian float32 x0,y0,x1,y1,…; data-labels-url → raw little-endian uint16, one
// per point (65535 = no label); data-label-names → id of a json_script list of strings; data-sample-url + "<i>.png" is a
// sample's thumbnail, shown in the tooltip when data-thumbnails="true". Sets data-points and data-drawn="true" after the
// first frame, data-hovered while a point is under the cursor, data-error when it cannot draw; a click on a point
// sets data-selected and dispatches "scatter:select" (detail.index). Runs on page load and on every htmx swap.
(function () {
  "use strict";

  const NO_LABEL = 65535;
  const HOVER_PX = 8; // how far from the cursor (CSS px) a point still counts as hovered
  const PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#637939",
  ];
  const UNLABELLED = "#9aa0a6";
  const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

  // Every point looks its label up in a 256 × 256 texture (one texel per possible uint16 label): rgb = colour,
  // a = 1 when the label is selected (or no filter is on). Unselected points are drawn first, in light grey, selected
  // ones over them. The hovered point is marked by a DOM ring, so hovering never redraws the points.
  const VERTEX_SHADER = `
    attribute vec2 a_pos;
    attribute float a_label;
    uniform vec2 u_scale;
    uniform vec2 u_offset;
    uniform float u_size;
    uniform float u_alpha;
    uniform float u_pass; // 0: unselected labels only, 1: selected labels only
    uniform sampler2D u_lut;
    varying vec4 v_color;
    void main() {
      vec2 uv = vec2((mod(a_label, 256.0) + 0.5) / 256.0, (floor(a_label / 256.0) + 0.5) / 256.0);
      vec4 c = texture2D(u_lut, uv);
      bool selected = c.a > 0.5;
      if (selected != (u_pass > 0.5)) {
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

  function setup(el) {
    el._scatter = true;
    const names = readNames(el);
    const thumbnails = el.dataset.thumbnails === "true";
    const sampleUrl = el.dataset.sampleUrl || "";

    el.replaceChildren();
    const canvas = document.createElement("canvas");
    canvas.className = "scatter-canvas";
    const message = document.createElement("div");
    message.className = "scatter-message";
    message.textContent = "Loading points…";
    const ring = document.createElement("div");
    ring.className = "scatter-ring";
    ring.hidden = true;
    const tip = document.createElement("div");
    tip.className = "scatter-tip";
    tip.hidden = true;
    el.append(canvas, message, ring, tip);

    function showMessage(text) {
      message.textContent = text;
      message.hidden = !text;
    }
    function fail(text) {
      el.dataset.error = "true";
      canvas.hidden = true;
      ring.hidden = true;
      tip.hidden = true;
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

    let n = 0, pos = null, labels = null, box = null, grid = null;
    let glState = null; // program, locations, buffers, texture; rebuilt after a context restore
    const lut = new Uint8Array(65536 * 4);
    const selected = new Set();
    let cssW = 0, cssH = 0;
    let view = { s: 1, tx: 0, ty: 0 }, fitScale = 1, userMoved = false;
    let hovered = -1, drag = null, mouse = null;
    let frame = 0, hoverFrame = 0, lost = false, destroyed = false;

    // Colours and selection flags of every possible label.
    const rgb = PALETTE.map(hexToRgb);
    for (let v = 0; v < 65536; v++) {
      const c = v === NO_LABEL ? hexToRgb(UNLABELLED) : rgb[v % rgb.length];
      lut[v * 4] = c[0];
      lut[v * 4 + 1] = c[1];
      lut[v * 4 + 2] = c[2];
      lut[v * 4 + 3] = 255;
    }
    function updateSelection() {
      const filtering = selected.size > 0;
      for (let v = 0; v < 65536; v++) lut[v * 4 + 3] = !filtering || selected.has(v) ? 255 : 0;
      if (glState) {
        gl.bindTexture(gl.TEXTURE_2D, glState.lut);
        gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, 256, 256, gl.RGBA, gl.UNSIGNED_BYTE, lut);
      }
      legendItems.forEach((b, i) => b.setAttribute("aria-pressed", String(selected.has(i))));
      if (legend) legend.classList.toggle("filtering", filtering);
      requestDraw();
    }

    function initGL() {
      const program = gl.createProgram();
      gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX_SHADER));
      gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT_SHADER));
      gl.bindAttribLocation(program, 0, "a_pos");
      gl.bindAttribLocation(program, 1, "a_label");
      gl.linkProgram(program);
      if (!gl.getProgramParameter(program, gl.LINK_STATUS) && !gl.isContextLost()) {
        throw new Error("shader link: " + gl.getProgramInfoLog(program));
      }
      gl.useProgram(program);
      const u = {};
      ["u_scale", "u_offset", "u_size", "u_alpha", "u_pass", "u_lut", "u_round"].forEach((name) => {
        u[name] = gl.getUniformLocation(program, name);
      });

      const posBuffer = gl.createBuffer();
      gl.bindBuffer(gl.ARRAY_BUFFER, posBuffer);
      gl.bufferData(gl.ARRAY_BUFFER, pos, gl.STATIC_DRAW);
      gl.enableVertexAttribArray(0);
      gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
      const labelBuffer = gl.createBuffer();
      gl.bindBuffer(gl.ARRAY_BUFFER, labelBuffer);
      gl.bufferData(gl.ARRAY_BUFFER, labels, gl.STATIC_DRAW);
      gl.enableVertexAttribArray(1);
      gl.vertexAttribPointer(1, 1, gl.UNSIGNED_SHORT, false, 0, 0);

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
      glState = { u, lut: texture, maxPointSize: sizeRange ? sizeRange[1] : 64 };
    }

    // The view maps data (x, y) to CSS px in the canvas: (x·s + tx, −y·s + ty). One scale for both axes.
    function fit() {
      const m = Math.max(12, 0.05 * Math.min(cssW, cssH));
      // Keep the data clear of the legend (top right) when that leaves them most of the width.
      const lw = legend ? legend.offsetWidth + 8 : 0;
      const right = lw && lw < 0.35 * cssW ? Math.max(m, lw + 8) : m;
      const sx = (cssW - m - right) / (box.maxX - box.minX), sy = (cssH - 2 * m) / (box.maxY - box.minY);
      let s = Math.min(sx, sy);
      if (!(s > 0 && Number.isFinite(s))) s = [sx, sy].find((v) => v > 0 && Number.isFinite(v)) || 1;
      fitScale = s;
      view = {
        s,
        tx: (cssW + m - right) / 2 - s * (box.minX + box.maxX) / 2,
        ty: cssH / 2 + s * (box.minY + box.maxY) / 2,
      };
      userMoved = false;
    }

    function zoomAt(mx, my, factor) {
      const s = Math.min(fitScale * 1e4, Math.max(fitScale * 0.2, view.s * factor));
      const f = s / view.s;
      view = { s, tx: mx - (mx - view.tx) * f, ty: my - (my - view.ty) * f };
      userMoved = true;
      requestDraw();
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
      if (selected.size > 0) {
        gl.uniform1f(u.u_pass, 0);
        gl.drawArrays(gl.POINTS, 0, n);
      }
      gl.uniform1f(u.u_pass, 1);
      gl.drawArrays(gl.POINTS, 0, n);
      placeRing();
      if (el.dataset.drawn !== "true") {
        el.dataset.points = String(n);
        el.dataset.drawn = "true";
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
      if (!userMoved) fit();
      else view = { s: view.s, tx: view.tx + (cssW - oldW) / 2, ty: view.ty + (cssH - oldH) / 2 };
      render(); // now, not on the next frame: resizing the canvas cleared it
    }

    // Nearest point (screen distance) within HOVER_PX of (mx, my); points of selected labels win when a filter is on.
    function nearest(mx, my) {
      if (!grid) grid = buildGrid(pos, n, box);
      const g = grid, s = view.s;
      const x = (mx - view.tx) / s, y = (view.ty - my) / s, r = HOVER_PX / s;
      const cx0 = Math.max(0, Math.floor((x - r - g.x0) / g.cw)), cx1 = Math.min(g.gx - 1, Math.floor((x + r - g.x0) / g.cw));
      const cy0 = Math.max(0, Math.floor((y - r - g.y0) / g.ch)), cy1 = Math.min(g.gy - 1, Math.floor((y + r - g.y0) / g.ch));
      const filtering = selected.size > 0;
      let best = -1, bestD = r * r, bestSel = false;
      for (let cy = cy0; cy <= cy1; cy++) {
        for (let cx = cx0; cx <= cx1; cx++) {
          const c = cy * g.gx + cx;
          for (let k = g.start[c], end = g.start[c + 1]; k < end; k++) {
            const i = g.items[k];
            const dx = pos[2 * i] - x, dy = pos[2 * i + 1] - y, d = dx * dx + dy * dy;
            if (d > r * r) continue;
            const sel = !filtering || selected.has(labels[i]);
            // Later points are drawn on top, so they win ties.
            if ((sel && !bestSel) || (sel === bestSel && (d < bestD || (d === bestD && i > best)))) {
              best = i;
              bestD = d;
              bestSel = sel;
            }
          }
        }
      }
      return best;
    }

    function setHovered(i) {
      if (i === hovered) return;
      hovered = i;
      if (i < 0) {
        delete el.dataset.hovered;
        tip.hidden = true;
      } else {
        el.dataset.hovered = String(i);
        const label = labels[i];
        const name = label === NO_LABEL ? "no label" : label < names.length ? names[label] : String(label);
        const parts = [];
        if (thumbnails) {
          const img = document.createElement("img");
          img.src = `${sampleUrl}${i}.png`;
          img.width = 64;
          img.height = 64;
          img.alt = "";
          parts.push(img);
        }
        const text = document.createElement("div");
        const index = document.createElement("b");
        index.textContent = `#${i}`;
        const swatch = document.createElement("span");
        swatch.className = "scatter-swatch";
        swatch.style.background = colourOf(label);
        const labelText = document.createElement("span");
        labelText.textContent = name;
        const line = document.createElement("div");
        line.append(swatch, labelText);
        text.append(index, line);
        parts.push(text);
        tip.replaceChildren(...parts);
        tip.hidden = false;
      }
      placeRing();
    }

    function placeRing() {
      ring.hidden = hovered < 0;
      if (hovered < 0) return;
      ring.style.left = `${canvas.offsetLeft + pos[2 * hovered] * view.s + view.tx}px`;
      ring.style.top = `${canvas.offsetTop + view.ty - pos[2 * hovered + 1] * view.s}px`;
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

    canvas.addEventListener("pointerdown", (e) => {
      if (e.button !== 0 || !box) return;
      drag = { x: e.clientX, y: e.clientY, tx: view.tx, ty: view.ty };
      canvas.setPointerCapture(e.pointerId);
      el.classList.add("dragging");
      setHovered(-1);
    });
    canvas.addEventListener("pointermove", (e) => {
      if (drag) {
        view = { s: view.s, tx: drag.tx + e.clientX - drag.x, ty: drag.ty + e.clientY - drag.y };
        userMoved = true;
        requestDraw();
        return;
      }
      mouse = local(e);
      if (!hoverFrame) hoverFrame = requestAnimationFrame(hoverNow);
    });
    function endDrag(e) {
      if (!drag) return;
      const still = Math.hypot(e.clientX - drag.x, e.clientY - drag.y) < 3;
      drag = null;
      if (canvas.hasPointerCapture(e.pointerId)) canvas.releasePointerCapture(e.pointerId);
      el.classList.remove("dragging");
      if (still && e.type === "pointerup") select(local(e));
    }
    // A click (a press that did not drag) selects the nearest point: the page listens for
    // "scatter:select" (detail.index, -1 for none) and el.dataset.selected says which.
    function select(at) {
      const i = nearest(at.x, at.y);
      if (i < 0) delete el.dataset.selected;
      else el.dataset.selected = String(i);
      el.dispatchEvent(new CustomEvent("scatter:select", { bubbles: true, detail: { index: i } }));
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
        if (!hoverFrame) hoverFrame = requestAnimationFrame(hoverNow);
      },
      { passive: false }
    );
    canvas.addEventListener("dblclick", (e) => {
      if (!box) return;
      e.preventDefault();
      fit();
      requestDraw();
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

    // Legend: one toggle button per label name; any selected → only those labels in colour.
    let legend = null;
    const legendItems = [];
    function buildLegend(counts) {
      if (!names.length) return;
      legend = document.createElement("div");
      legend.className = "scatter-legend";
      const all = document.createElement("button");
      all.type = "button";
      all.className = "scatter-legend-all";
      all.textContent = "show all";
      all.addEventListener("click", () => {
        selected.clear();
        updateSelection();
      });
      legend.append(all);
      names.forEach((name, i) => {
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
          if (selected.has(i)) selected.delete(i);
          else selected.add(i);
          updateSelection();
        });
        legend.append(b);
        legendItems.push(b);
      });
      el.append(legend);
    }

    function start(coordsBuffer, labelsBuffer) {
      if (destroyed) return;
      n = Math.floor(coordsBuffer.byteLength / 8);
      if (!LITTLE_ENDIAN) {
        swapBytes(coordsBuffer, 4);
        if (labelsBuffer) swapBytes(labelsBuffer, 2);
      }
      pos = new Float32Array(coordsBuffer, 0, n * 2);
      const given = labelsBuffer ? Math.floor(labelsBuffer.byteLength / 2) : 0;
      if (labelsBuffer && given === n) {
        labels = new Uint16Array(labelsBuffer, 0, n);
      } else {
        if (labelsBuffer) console.warn(`scatter: ${given} labels for ${n} points`);
        labels = new Uint16Array(n).fill(NO_LABEL);
        if (labelsBuffer) labels.set(new Uint16Array(labelsBuffer, 0, Math.min(given, n)));
      }

      // Bounding box of the finite points; the data are shifted to be centred on 0 so float32 keeps its precision
      // when zoomed in (the shifted copy is what is uploaded and indexed; only indices are ever shown).
      let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
      for (let i = 0; i < n; i++) {
        const x = pos[2 * i], y = pos[2 * i + 1];
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
          pos[2 * i] -= cx;
          pos[2 * i + 1] -= cy;
        }
      }
      box = { minX: minX - cx, maxX: maxX - cx, minY: minY - cy, maxY: maxY - cy };

      const counts = new Uint32Array(names.length);
      for (let i = 0; i < n; i++) if (labels[i] < names.length) counts[labels[i]]++;
      buildLegend(counts);

      initGL();
      showMessage(n ? "" : "No points to draw.");
      if (cssW) fit();
      requestDraw();
      // The hover index is not needed for the first frame: build it when the browser is idle (or on first hover).
      const later = window.requestIdleCallback || ((f) => setTimeout(f, 50));
      later(() => {
        if (!grid && !destroyed) grid = buildGrid(pos, n, box);
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
