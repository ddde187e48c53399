// @ts-check
// The WebGL side of the scatter: shaders, buffers, the colour lookup texture, and drawing a frame.
//
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
const UNIFORMS = /** @type {const} */ (["u_scale", "u_offset", "u_size", "u_alpha", "u_pass", "u_lut", "u_round"]);

/**
 * @typedef {{u: Record<typeof UNIFORMS[number], WebGLUniformLocation | null>, lut: WebGLTexture, pos: WebGLBuffer,
 *   codes: WebGLBuffer, sel: WebGLBuffer, maxPointSize: number}} GlState
 */
/**
 * What a frame shows: the view (see view.js), the canvas's CSS size, how many points, and whether any is out of focus.
 * @typedef {{view: import("./view.js").View, width: number, height: number, n: number, dimming: boolean}} Frame
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

/**
 * @param {HTMLCanvasElement} canvas
 * @param {WebGLRenderingContext} gl
 */
function renderer(canvas, gl) {
  /** @type {GlState | null} program, locations, buffers, texture; rebuilt after a context restore */
  let glState = null;

  function clearWhite() {
    // An opaque (alpha: false) canvas is black until drawn on; keep it white while the points load.
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
    const program = /** @type {WebGLProgram} */ (gl.createProgram());
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
    gl.blendFuncSeparate(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA, gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    const sizeRange = gl.getParameter(gl.ALIASED_POINT_SIZE_RANGE);
    const maxPointSize = sizeRange ? sizeRange[1] : 64;
    glState = { u, lut: texture, pos: posBuffer, codes: codesBuffer, sel: selBuffer, maxPointSize };
  }

  /**
   * @param {WebGLBuffer} b
   * @param {BufferSource} data
   */
  function upload(b, data) {
    gl.bindBuffer(gl.ARRAY_BUFFER, b);
    gl.bufferSubData(gl.ARRAY_BUFFER, 0, data);
  }

  /**
   * Draws a frame (nothing before init or after the context was lost).
   * @param {Frame} f
   */
  function draw({ view, width, height, n, dimming }) {
    if (!glState) return;
    const dpr = width > 0 ? canvas.width / width : window.devicePixelRatio || 1;
    const u = glState.u;
    gl.viewport(0, 0, canvas.width, canvas.height);
    clearWhite();
    const w = width || 1, h = height || 1;
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
      gl.bindTexture(gl.TEXTURE_2D, glState.lut);
      gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, 256, 256, gl.RGBA, gl.UNSIGNED_BYTE, lut);
      upload(glState.sel, sel);
    },
    /** The context was lost: everything on the GPU is gone until init runs again. */
    forget() {
      glState = null;
    },
    /** Gives the context back (browsers allow only a few at once). */
    release() {
      const ext = gl.getExtension("WEBGL_lose_context");
      if (ext) ext.loseContext();
    },
  };
}

/** @typedef {ReturnType<typeof renderer>} Renderer */
