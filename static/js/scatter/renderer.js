// @ts-check
// The WebGL side of the scatter: shaders, buffers, the colour lookup texture, and drawing a frame.
//
// Every point looks its code up in a 256 × 256 texture (one texel per possible uint16 code): rgb = colour, a = 1
// when the code passes the categorical filter (or none is on). a_sel is 1 when the point passes the per-point tests
// (highlighted or no highlight, and inside the continuous range when one is set). A point is in focus iff both are 1.
// Points out of focus are drawn first, in light grey, those in focus over them. The hovered point is marked by a DOM
// ring, so hovering never redraws the points.
//
// From DENSITY_FROM points on (with WebGL 2's float render targets), a frame is a density rendering instead, drawn
// progressively within each frame's budget (density.js says how).

import { DENSITY_FROM, FIRST_CHUNK, FRAME_MS, STILL_MS, nextChunk, pointSize, textureTransform } from "./density.js";

// Both point programs' vertex shaders start with this: the colour lookup and the in-focus test. placePoint puts the
// point on screen when it belongs to this pass and returns true, with c its lookup texel; otherwise it places it
// outside the clip volume (not drawn in this pass), with no colour, and returns false.
const POINT_PRELUDE = `
    attribute vec2 a_pos;
    attribute float a_label;
    attribute float a_sel;
    uniform vec2 u_scale;
    uniform vec2 u_offset;
    uniform float u_size;
    uniform float u_pass; // 0: points out of focus only, 1: points in focus only
    uniform sampler2D u_lut;
    varying vec4 v_color;
    bool placePoint(out vec4 c) {
      vec2 uv = vec2((mod(a_label, 256.0) + 0.5) / 256.0, (floor(a_label / 256.0) + 0.5) / 256.0);
      c = texture2D(u_lut, uv);
      bool focus = c.a > 0.5 && a_sel > 0.5;
      if (focus != (u_pass > 0.5)) {
        gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
        gl_PointSize = 1.0;
        v_color = vec4(0.0);
        return false;
      }
      gl_Position = vec4(a_pos * u_scale + u_offset, 0.0, 1.0);
      gl_PointSize = u_size;
      return true;
    }`;
const VERTEX_SHADER = `${POINT_PRELUDE}
    uniform float u_alpha;
    void main() {
      vec4 c;
      if (placePoint(c)) v_color = u_pass < 0.5 ? vec4(0.80, 0.82, 0.85, 0.5 * u_alpha) : vec4(c.rgb, u_alpha);
    }`;
const FRAGMENT_SHADER = `
    precision mediump float;
    varying vec4 v_color;
    uniform float u_round; // 1: clip the point's square to a disc (only worth it from about 5 device px)
    void main() {
      if (u_round > 0.5 && length(gl_PointCoord - vec2(0.5)) > 0.5) discard;
      gl_FragColor = v_color;
    }`;
const UNIFORMS = /** @type {const} */ (["u_scale", "u_offset", "u_size", "u_alpha", "u_pass", "u_lut", "u_round"]);

// Density rendering (density.js): each point adds (colour, 1) to its pixel of a float texture, in focus (u_pass 1)
// or out of focus (u_pass 0, grey) into separate textures; the screen pass maps the sums to colours.
const ACCUMULATE_VERTEX = `${POINT_PRELUDE}
    void main() {
      vec4 c;
      if (placePoint(c)) v_color = vec4(c.rgb, 1.0);
    }`;
const ACCUMULATE_FRAGMENT = `
    precision highp float;
    varying vec4 v_color;
    void main() {
      gl_FragColor = v_color;
    }`;
const SCREEN_VERTEX = `
    attribute vec2 a_corner;
    void main() {
      gl_Position = vec4(a_corner, 0.0, 1.0);
    }`;
const SCREEN_FRAGMENT = `
    precision highp float;
    uniform sampler2D u_focus;
    uniform sampler2D u_rest;
    uniform vec2 u_size;   // the textures' size, device px
    uniform float u_k;     // textureTransform: Q = k·gl_FragCoord + (dx, dy)
    uniform vec2 u_d;
    uniform float u_ref;   // the count that looks fully opaque
    uniform float u_dim;   // 1: draw the points out of focus
    float opacity(float count) {
      return min(1.0, 0.5 + 0.5 * log(1.0 + count) / log(1.0 + max(u_ref, 1.0)));
    }
    void main() {
      vec2 uv = (gl_FragCoord.xy * u_k + u_d) / u_size;
      vec3 colour = vec3(1.0);
      if (uv.x >= 0.0 && uv.y >= 0.0 && uv.x <= 1.0 && uv.y <= 1.0) {
        vec4 f = texture2D(u_focus, uv);
        if (u_dim > 0.5) {
          float g = texture2D(u_rest, uv).a;
          if (g > 0.0) colour = mix(colour, vec3(0.80, 0.82, 0.85), 0.8 * opacity(g));
        }
        if (f.a > 0.0) colour = mix(colour, f.rgb / f.a, opacity(f.a));
      }
      gl_FragColor = vec4(colour, 1.0);
    }`;

/**
 * @typedef {{u: Record<typeof UNIFORMS[number], WebGLUniformLocation | null>, program: WebGLProgram,
 *   lut: WebGLTexture, pos: WebGLBuffer, codes: WebGLBuffer, sel: WebGLBuffer, maxPointSize: number}} GlState
 */
/**
 * What a frame shows: the view (see view.js), the canvas's CSS size, how many points, whether any is out of focus,
 * the zoom (scale relative to the fitting one) and the density's reference count (density.js referenceCount).
 * @typedef {{view: import("./view.js").View, width: number, height: number, n: number, dimming: boolean,
 *   zoom: number, reference: number}} Frame
 */

/**
 * @param {WebGLRenderingContext} gl
 * @param {number} type
 * @param {string} source
 */
function compile(gl, type, source) {
  const shader = /** @type {WebGLShader} */ (gl.createShader(type));
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS) && !gl.isContextLost()) {
    throw new Error("shader: " + gl.getShaderInfoLog(shader));
  }
  return shader;
}

/**
 * @param {WebGLRenderingContext} gl
 * @param {string} vertex
 * @param {string} fragment
 * @param {string[]} attributes bound to locations 0, 1, …
 */
function link(gl, vertex, fragment, attributes) {
  const program = /** @type {WebGLProgram} */ (gl.createProgram());
  gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, vertex));
  gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, fragment));
  attributes.forEach((name, i) => gl.bindAttribLocation(program, i, name));
  gl.linkProgram(program);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS) && !gl.isContextLost()) {
    throw new Error("shader link: " + gl.getProgramInfoLog(program));
  }
  return program;
}

/**
 * A renderer drawing on canvas, or the reason there cannot be one.
 * @param {HTMLCanvasElement} canvas
 */
export function createRenderer(canvas) {
  const attrs = { alpha: false, antialias: false, depth: false, stencil: false, premultipliedAlpha: false };
  // WebGL 2 is only asked for first; what is used of it is WebGL 1.
  const gl = /** @type {WebGLRenderingContext | null} */ (
    canvas.getContext("webgl2", attrs) || canvas.getContext("webgl", attrs)
  );
  if (!gl) return "Cannot draw the scatter plot: WebGL is not available in this browser.";
  if (gl.getParameter(gl.MAX_VERTEX_TEXTURE_IMAGE_UNITS) < 1) {
    return "Cannot draw the scatter plot: this browser's WebGL lacks vertex textures.";
  }
  return renderer(canvas, gl);
}

/** @typedef {{pending: boolean, complete: boolean, completed: boolean, mode: "points" | "density"}} Drawn */
/**
 * The float textures and framebuffers of one density frame: points in focus, and out of focus.
 * @typedef {{focus: WebGLTexture, rest: WebGLTexture, focusFb: WebGLFramebuffer, restFb: WebGLFramebuffer}} Layer
 */
/**
 * Density rendering's state: the program that adds points to a layer, the screen pass, two layers (one complete,
 * shown; one filling), the view the filling one is drawn for, how far it is, and the chunk size.
 * @typedef {{add: WebGLProgram, addU: Record<string, WebGLUniformLocation | null>, screen: WebGLProgram,
 *   screenU: Record<string, WebGLUniformLocation | null>, quad: WebGLBuffer, layers: Layer[], w: number, h: number,
 *   shown: number, shownView: import("./view.js").View | null, shownDim: boolean,
 *   target: import("./view.js").View | null, targetDim: boolean, next: number, chunk: number,
 *   fence: WebGLSync | null, waited: number,
 *   stale: boolean, presented: import("./view.js").View | null, movedAt: number, cleared: boolean, format: number,
 *   type: number, picture: WebGLTexture | null, pictureFb: WebGLFramebuffer | null}} Density
 */

/**
 * @param {HTMLCanvasElement} canvas
 * @param {WebGLRenderingContext} gl
 */
function renderer(canvas, gl) {
  /** @type {GlState | null} program, locations, buffers, texture; rebuilt after a context restore */
  let glState = null;
  /** @type {Density | null} set up on the first density frame */
  let density = null;
  const gl2 =
    typeof WebGL2RenderingContext !== "undefined" && gl instanceof WebGL2RenderingContext
      ? /** @type {WebGL2RenderingContext} */ (gl)
      : null;
  // Float textures that can be rendered to and blended: WebGL 2 with EXT_color_buffer_float (half float is enough).
  const canAccumulate = !!(gl2 && gl2.getExtension("EXT_color_buffer_float"));

  function clearWhite() {
    // An opaque (alpha: false) canvas is black until drawn on; keep it white while the points load.
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    gl.clearColor(1, 1, 1, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
  }

  /**
   * Compiles the program and uploads everything (again after a context restore).
   * @param {Float32Array<ArrayBuffer>} pos
   * @param {Uint16Array<ArrayBuffer>} codes
   * @param {Uint8Array<ArrayBuffer>} sel
   * @param {Uint8Array<ArrayBuffer>} lut
   */
  function init(pos, codes, sel, lut) {
    density = null;
    const program = link(gl, VERTEX_SHADER, FRAGMENT_SHADER, ["a_pos", "a_label", "a_sel"]);
    gl.useProgram(program);
    const u = /** @type {GlState["u"]} */ (
      Object.fromEntries(UNIFORMS.map((name) => [name, gl.getUniformLocation(program, name)]))
    );

    /**
     * @param {BufferSource} data
     * @param {number} index
     * @param {number} size
     * @param {number} type
     */
    const buffer = (data, index, size, type) => {
      const b = /** @type {WebGLBuffer} */ (gl.createBuffer());
      gl.bindBuffer(gl.ARRAY_BUFFER, b);
      gl.bufferData(gl.ARRAY_BUFFER, data, gl.DYNAMIC_DRAW);
      gl.enableVertexAttribArray(index);
      gl.vertexAttribPointer(index, size, type, false, 0, 0); // not normalised: codes and 0/1 as they are
      return b;
    };
    const posBuffer = buffer(pos, 0, 2, gl.FLOAT);
    const codesBuffer = buffer(codes, 1, 1, gl.UNSIGNED_SHORT);
    const selBuffer = buffer(sel, 2, 1, gl.UNSIGNED_BYTE);

    const texture = /** @type {WebGLTexture} */ (gl.createTexture());
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
    const sizeRange = gl.getParameter(gl.ALIASED_POINT_SIZE_RANGE);
    const maxPointSize = sizeRange ? sizeRange[1] : 64;
    glState = { u, program, lut: texture, pos: posBuffer, codes: codesBuffer, sel: selBuffer, maxPointSize };
  }

  /**
   * @param {WebGLBuffer} b
   * @param {BufferSource} data
   */
  function upload(b, data) {
    gl.bindBuffer(gl.ARRAY_BUFFER, b);
    gl.bufferSubData(gl.ARRAY_BUFFER, 0, data);
    if (density) density.stale = true;
  }

  /**
   * Draws a frame (nothing before init or after the context was lost): every point at once below DENSITY_FROM points
   * (or without float textures), else the density rendering, progressively. Returns whether more frames are needed
   * to complete the picture (pending), whether the picture on screen is complete for this view (complete) and whether
   * this frame completed a picture (completed).
   * @param {Frame} f
   * @returns {Drawn}
   */
  function draw(f) {
    if (!glState) return { pending: false, complete: false, completed: false, mode: "points" };
    if (canAccumulate && f.n >= DENSITY_FROM) {
      try {
        return drawDensity(f);
      } catch (err) {
        console.warn("scatter: density rendering failed, drawing points instead:", err);
        density = null;
      }
    }
    drawPoints(f);
    return { pending: false, complete: true, completed: true, mode: "points" };
  }

  /** @param {Frame} f */
  function drawPoints({ view, width, height, n, dimming }) {
    const state = /** @type {GlState} */ (glState);
    const dpr = width > 0 ? canvas.width / width : window.devicePixelRatio || 1;
    const u = state.u;
    gl.useProgram(state.program);
    bindPoints(state);
    gl.blendFuncSeparate(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA, gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    gl.viewport(0, 0, canvas.width, canvas.height);
    clearWhite();
    const w = width || 1, h = height || 1;
    gl.uniform2f(u.u_scale, (2 * view.s) / w, (2 * view.s) / h);
    gl.uniform2f(u.u_offset, (2 * view.tx) / w - 1, 1 - (2 * view.ty) / h);
    const size = Math.min(state.maxPointSize, (n > 50000 ? 3 : 4) * dpr);
    gl.uniform1f(u.u_size, size);
    gl.uniform1f(u.u_round, size >= 5 ? 1 : 0);
    gl.uniform1f(u.u_alpha, n > 50000 ? 0.6 : 0.8);
    if (dimming) {
      gl.uniform1f(u.u_pass, 0);
      gl.drawArrays(gl.POINTS, 0, n);
    }
    gl.uniform1f(u.u_pass, 1);
    gl.drawArrays(gl.POINTS, 0, n);
  }

  /** @param {GlState} state the point attributes, as the programs expect them at locations 0, 1, 2 */
  function bindPoints(state) {
    /** @type {[WebGLBuffer, number, number][]} */
    const attrs = [
      [state.pos, 2, gl.FLOAT],
      [state.codes, 1, gl.UNSIGNED_SHORT],
      [state.sel, 1, gl.UNSIGNED_BYTE],
    ];
    attrs.forEach(([b, size, type], i) => {
      gl.bindBuffer(gl.ARRAY_BUFFER, b);
      gl.enableVertexAttribArray(i);
      gl.vertexAttribPointer(i, size, type, false, 0, 0);
    });
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, state.lut);
  }

  /** @returns {Density} */
  function setUpDensity() {
    const g = /** @type {WebGL2RenderingContext} */ (gl2);
    const add = link(gl, ACCUMULATE_VERTEX, ACCUMULATE_FRAGMENT, ["a_pos", "a_label", "a_sel"]);
    const screen = link(gl, SCREEN_VERTEX, SCREEN_FRAGMENT, ["a_corner"]);
    /**
     * @param {WebGLProgram} program
     * @param {string[]} names
     */
    const locations = (program, names) => Object.fromEntries(names.map((x) => [x, gl.getUniformLocation(program, x)]));
    const quad = /** @type {WebGLBuffer} */ (gl.createBuffer());
    gl.bindBuffer(gl.ARRAY_BUFFER, quad);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    // Half floats: they blend wherever float textures render (32-bit ones need EXT_float_blend), take half the memory
    // traffic, and count exactly up to 2048 points a pixel (beyond that a pixel is fully opaque anyway).
    return {
      add,
      addU: locations(add, ["u_scale", "u_offset", "u_size", "u_pass", "u_lut"]),
      screen,
      screenU: locations(screen, ["u_focus", "u_rest", "u_size", "u_k", "u_d", "u_ref", "u_dim"]),
      quad,
      layers: [],
      w: 0,
      h: 0,
      shown: -1,
      shownView: null,
      shownDim: false,
      target: null,
      targetDim: false,
      next: 0,
      chunk: FIRST_CHUNK,
      fence: null,
      waited: 0,
      stale: false,
      presented: null,
      movedAt: 0,
      cleared: false,
      picture: null,
      pictureFb: null,
      format: g.RGBA16F,
      type: g.HALF_FLOAT,
    };
  }

  /**
   * Two layers of canvas size (again when the canvas was resized).
   * @param {Density} d
   */
  function sizeLayers(d) {
    const g = /** @type {WebGL2RenderingContext} */ (gl2);
    if (d.w === canvas.width && d.h === canvas.height && d.layers.length) return;
    d.layers.forEach((l) => {
      g.deleteTexture(l.focus);
      g.deleteTexture(l.rest);
      g.deleteFramebuffer(l.focusFb);
      g.deleteFramebuffer(l.restFb);
    });
    const texture = () => {
      const t = /** @type {WebGLTexture} */ (g.createTexture());
      g.bindTexture(g.TEXTURE_2D, t);
      g.texImage2D(g.TEXTURE_2D, 0, d.format, canvas.width, canvas.height, 0, g.RGBA, d.type, null);
      g.texParameteri(g.TEXTURE_2D, g.TEXTURE_MIN_FILTER, g.NEAREST);
      g.texParameteri(g.TEXTURE_2D, g.TEXTURE_MAG_FILTER, g.NEAREST);
      g.texParameteri(g.TEXTURE_2D, g.TEXTURE_WRAP_S, g.CLAMP_TO_EDGE);
      g.texParameteri(g.TEXTURE_2D, g.TEXTURE_WRAP_T, g.CLAMP_TO_EDGE);
      return t;
    };
    /** @param {WebGLTexture} t */
    const framebuffer = (t) => {
      const fb = /** @type {WebGLFramebuffer} */ (g.createFramebuffer());
      g.bindFramebuffer(g.FRAMEBUFFER, fb);
      g.framebufferTexture2D(g.FRAMEBUFFER, g.COLOR_ATTACHMENT0, g.TEXTURE_2D, t, 0);
      if (g.checkFramebufferStatus(g.FRAMEBUFFER) !== g.FRAMEBUFFER_COMPLETE) {
        throw new Error("float framebuffer incomplete");
      }
      return fb;
    };
    d.layers = [0, 1].map(() => {
      const focus = texture(), rest = texture();
      return { focus, rest, focusFb: framebuffer(focus), restFb: framebuffer(rest) };
    });
    if (d.picture) g.deleteTexture(d.picture);
    if (d.pictureFb) g.deleteFramebuffer(d.pictureFb);
    d.picture = /** @type {WebGLTexture} */ (g.createTexture());
    g.bindTexture(g.TEXTURE_2D, d.picture);
    g.texStorage2D(g.TEXTURE_2D, 1, g.RGBA8, canvas.width, canvas.height);
    d.pictureFb = framebuffer(d.picture);
    g.bindFramebuffer(g.FRAMEBUFFER, null);
    d.w = canvas.width;
    d.h = canvas.height;
    d.shown = -1;
    d.shownView = null;
    d.target = null;
    d.presented = null;
  }

  /**
   * @param {import("./view.js").View | null} a
   * @param {import("./view.js").View} b
   */
  const sameView = (a, b) => !!a && a.s === b.s && a.tx === b.tx && a.ty === b.ty;

  /**
   * @param {Frame} f
   * @returns {Drawn}
   */
  function drawDensity(f) {
    const state = /** @type {GlState} */ (glState);
    if (!density) density = setUpDensity();
    const d = density;
    sizeLayers(d);
    const { view, width, height, n, dimming } = f;
    const dpr = width > 0 ? canvas.width / width : window.devicePixelRatio || 1;
    const now = performance.now();
    // While the view moves (pan, zoom), a frame only moves the complete picture: no point is drawn, so an
    // interaction's frames cost one screen pass. A new picture is begun for the view once it has stopped moving (a
    // frame whose view is the one last shown), or at once when the points, colours or focus changed (stale); the
    // picture shown stays, moved to the view, until the new one is complete.
    const moving = d.shown >= 0 && !!d.presented && !sameView(d.presented, view);
    if (moving) d.movedAt = now;
    // Points are added only once the view has been still for STILL_MS: a drag's events do not come every frame, and
    // a frame that adds points between two of them would delay the next.
    const still = d.shown < 0 || now - d.movedAt >= STILL_MS;
    const current = d.shown >= 0 && sameView(d.shownView, view) && d.shownDim === dimming && !d.stale;
    if (d.stale || moving || (!d.target && !current)) {
      d.target = current ? null : { ...view };
      d.targetDim = dimming;
      d.next = 0;
      d.cleared = false;
      d.stale = false;
    }
    let completed = false;
    // At most one chunk in flight: the renderer (its GPU process) runs behind the page, so a chunk is added only once
    // the last has been drawn (its fence signalled); the frames it took to say so set the next chunk's size.
    // Before the first picture there is nothing to keep fluid: chunks are queued without waiting (the renderer draws
    // them back to back), so the first picture comes as soon as it can.
    const g2 = /** @type {WebGL2RenderingContext} */ (gl2);
    let ready = true;
    if (d.fence && d.shown >= 0) {
      d.waited++;
      ready = g2.getSyncParameter(d.fence, g2.SYNC_STATUS) === g2.SIGNALED;
      if (ready) {
        g2.deleteSync(d.fence);
        d.fence = null;
        // A fence is seen signalled a frame after the one that drew its chunk at the earliest.
        d.chunk = nextChunk(d.chunk, (d.waited - 1) * FRAME_MS, n);
      }
    }
    if (d.target && !moving && still && ready) {
      const filling = d.layers[d.shown === 0 ? 1 : 0];
      if (!d.cleared) {
        gl.clearColor(0, 0, 0, 0);
        for (const fb of [filling.focusFb, filling.restFb]) {
          gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
          gl.clear(gl.COLOR_BUFFER_BIT);
        }
        d.cleared = true;
      }
      const count = Math.min(d.chunk, n - d.next);
      const w = width || 1, h = height || 1, t = d.target;
      gl.useProgram(d.add);
      bindPoints(state);
      gl.uniform1i(d.addU.u_lut, 0);
      gl.uniform2f(d.addU.u_scale, (2 * t.s) / w, (2 * t.s) / h);
      gl.uniform2f(d.addU.u_offset, (2 * t.tx) / w - 1, 1 - (2 * t.ty) / h);
      gl.uniform1f(d.addU.u_size, Math.min(state.maxPointSize, pointSize(f.zoom, dpr)));
      gl.blendFunc(gl.ONE, gl.ONE);
      gl.viewport(0, 0, d.w, d.h);
      /** @type {[WebGLFramebuffer, number][]} */
      const passes = d.targetDim ? [[filling.restFb, 0], [filling.focusFb, 1]] : [[filling.focusFb, 1]];
      for (const [fb, pass] of passes) {
        gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
        gl.uniform1f(d.addU.u_pass, pass);
        gl.drawArrays(gl.POINTS, d.next, count);
      }
      d.next += count;
      if (d.fence) g2.deleteSync(d.fence);
      d.fence = g2.fenceSync(g2.SYNC_GPU_COMMANDS_COMPLETE, 0);
      d.waited = 0;
      gl.flush();
      if (d.next >= n) {
        d.shown = d.shown === 0 ? 1 : 0;
        d.shownView = d.target;
        d.shownDim = d.targetDim;
        d.target = null;
        completed = true;
      }
    }
    const complete = d.shown >= 0 && sameView(d.shownView, view) && d.shownDim === dimming && !d.target;
    /** @type {Drawn} */
    const result = { pending: !complete, complete, completed: false, mode: "density" };
    // The screen is drawn only when what it shows changed: a moved view or a newly completed picture (a frame that
    // does not draw on the canvas is not composited again, and a software compositor reads every drawn one back).
    // Before the first picture is complete the canvas stays blank.
    if (d.shown < 0 || (d.presented && sameView(d.presented, view) && !completed)) return result;
    const g = /** @type {WebGL2RenderingContext} */ (gl2);
    if (completed) {
      // The counts become colours once per picture, into an 8-bit picture the frames then only copy.
      const layer = d.layers[d.shown];
      g.bindFramebuffer(g.FRAMEBUFFER, d.pictureFb);
      gl.viewport(0, 0, d.w, d.h);
      gl.disable(gl.BLEND);
      gl.useProgram(d.screen);
      gl.activeTexture(gl.TEXTURE1);
      gl.bindTexture(gl.TEXTURE_2D, layer.focus);
      gl.activeTexture(gl.TEXTURE2);
      gl.bindTexture(gl.TEXTURE_2D, layer.rest);
      gl.activeTexture(gl.TEXTURE0);
      const u = d.screenU;
      gl.uniform1i(u.u_focus, 1);
      gl.uniform1i(u.u_rest, 2);
      gl.uniform2f(u.u_size, d.w, d.h);
      gl.uniform1f(u.u_k, 1);
      gl.uniform2f(u.u_d, 0, 0);
      // The reference count per CSS px of the fitting view, per device px of the picture (drawn at its own zoom).
      const size = pointSize(f.zoom, dpr);
      gl.uniform1f(u.u_ref, Math.max(1, (f.reference * size * size) / (dpr * dpr * Math.max(f.zoom, 1e-9) ** 2)));
      gl.uniform1f(u.u_dim, d.shownDim ? 1 : 0);
      for (let i = 1; i < 3; i++) gl.disableVertexAttribArray(i);
      gl.bindBuffer(gl.ARRAY_BUFFER, d.quad);
      gl.enableVertexAttribArray(0);
      gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
      gl.enable(gl.BLEND);
    }
    // The picture, moved to this view: a framebuffer blit (a scaled copy), no shader per pixel.
    d.presented = { ...view };
    const tr = textureTransform(/** @type {import("./view.js").View} */ (d.shownView), view, dpr, d.h);
    clearWhite();
    g.bindFramebuffer(g.READ_FRAMEBUFFER, d.pictureFb);
    const x0 = Math.round(-tr.dx / tr.k), x1 = Math.round((d.w - tr.dx) / tr.k);
    const y0 = Math.round(-tr.dy / tr.k), y1 = Math.round((d.h - tr.dy) / tr.k);
    g.blitFramebuffer(0, 0, d.w, d.h, x0, y0, x1, y1, g.COLOR_BUFFER_BIT, g.NEAREST);
    g.bindFramebuffer(g.READ_FRAMEBUFFER, null);
    return { ...result, completed };
  }

  return {
    clearWhite,
    init,
    draw,
    /** Whether init has run since the context was (last) created. */
    get ready() {
      return glState !== null;
    },
    /** @param {Float32Array<ArrayBuffer>} pos */
    uploadPos(pos) {
      if (glState) upload(glState.pos, pos);
    },
    /** @param {Uint16Array<ArrayBuffer>} codes */
    uploadCodes(codes) {
      if (glState) upload(glState.codes, codes);
    },
    /**
     * The lookup table (its alpha: the categorical filter) and sel.
     * @param {Uint8Array<ArrayBuffer>} lut
     * @param {Uint8Array<ArrayBuffer>} sel
     */
    uploadFocus(lut, sel) {
      if (!glState) return;
      gl.activeTexture(gl.TEXTURE0);
      gl.bindTexture(gl.TEXTURE_2D, glState.lut);
      gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, 256, 256, gl.RGBA, gl.UNSIGNED_BYTE, lut);
      upload(glState.sel, sel);
    },
    /** The context was lost: everything on the GPU is gone until init runs again. */
    forget() {
      glState = null;
      density = null;
    },
    /** Gives the context back (browsers allow only a few at once). */
    release() {
      const ext = gl.getExtension("WEBGL_lose_context");
      if (ext) ext.loseContext();
    },
  };
}

/** @typedef {ReturnType<typeof renderer>} Renderer */
