// @ts-check
// The maths of the density rendering (renderer.js draws it from DENSITY_FROM points on): where a frame drawn for one
// view lies under another, how many points one frame may draw, the point size, and the count a pixel needs to look
// fully opaque. Pure functions, so Node's tests check them.
//
// Above DENSITY_FROM points a frame is not drawn point by point on the screen. Every point adds its colour and a count
// of 1 to its pixel in a floating-point texture (additive blending): in focus into one texture, out of focus into
// another. The screen then shows, per pixel, the mean colour of the points in focus over it, more opaque the more
// points there are (log of the count), over a light grey of the same kind for the points out of focus. Where points
// overlap the picture is a density, not whichever point was drawn last.
//
// Drawing a million points takes a software renderer (headless Chromium's SwiftShader) far longer than a frame, so the
// texture is filled progressively, `chunk` points per animation frame, the chunk adapted so that each frame stays
// within budget; while it fills, and while the user pans or zooms, the screen shows the last complete picture moved to
// the current view (a framebuffer blit per frame: no work per point). A new picture begins once the view has been still
// for STILL_MS. On a real GPU the chunk grows to every point and each picture completes in a frame.

export const DENSITY_FROM = 50_000;
export const FRAME_MS = 1000 / 60;
export const MIN_CHUNK = 8192;
export const FIRST_CHUNK = 1 << 16;
export const STILL_MS = 120; // how long the view must stay still before a new picture fills in

/**
 * The next chunk size, from how long the last chunk of `chunk` points took to be drawn (the frames until its fence was
 * signalled, × FRAME_MS): shrink when it ran over a frame's budget, grow when there was room.
 * @param {number} chunk
 * @param {number} deltaMs
 * @param {number} n
 */
export function nextChunk(chunk, deltaMs, n) {
  let next = chunk;
  // The renderer runs a frame or two behind the page (its GPU process), so shrinking is quick and growing slow.
  if (deltaMs > FRAME_MS * 1.2) next = Math.floor(chunk * 0.5);
  else if (deltaMs < FRAME_MS * 1.05) next = Math.ceil(chunk * 1.2);
  return Math.max(MIN_CHUNK, Math.min(Math.max(n, MIN_CHUNK), next));
}

/**
 * Where the device pixel (X, Y) (origin bottom left, as gl_FragCoord) of a frame for view `now` lies in a texture drawn
 * for view `then` (the same canvas size): Q = k·(X, Y) + (dx, dy). Views map data to CSS px as in view.js.
 * @param {import("./view.js").View} then
 * @param {import("./view.js").View} now
 * @param {number} dpr device px per CSS px
 * @param {number} heightPx the canvas height in device px
 */
export function textureTransform(then, now, dpr, heightPx) {
  const k = then.s / now.s;
  return {
    k,
    dx: dpr * then.tx - dpr * now.tx * k,
    dy: heightPx - dpr * then.ty + (dpr * now.ty - heightPx) * k,
  };
}

/**
 * Point size in device px: one device pixel when all the points are in view, growing with the zoom (up to 4 CSS px),
 * so a zoomed-in region's few points stay visible.
 * @param {number} zoom the scale relative to the fitting one
 * @param {number} dpr
 */
export function pointSize(zoom, dpr) {
  return dpr * Math.min(4, Math.max(1, Math.sqrt(Math.max(zoom, 0))));
}

/**
 * The count per CSS px that looks fully opaque when all the points are in view: the 99th percentile of the non-zero
 * counts of the points binned by CSS pixel of the fitting view (scale s). O(n) once per set of coordinates.
 * @param {Float32Array} pos x0, y0, x1, y1, … (shifted as points.js serves them)
 * @param {number} n
 * @param {import("./points.js").Box} box
 * @param {number} s the fitting view's scale (CSS px per data unit)
 */
export function referenceCount(pos, n, box, s) {
  const gx = Math.max(1, Math.min(4096, Math.ceil((box.maxX - box.minX) * s) + 1));
  const gy = Math.max(1, Math.min(4096, Math.ceil((box.maxY - box.minY) * s) + 1));
  const cells = new Uint32Array(gx * gy);
  for (let i = 0; i < n; i++) {
    const x = Math.floor((pos[2 * i] - box.minX) * s), y = Math.floor((pos[2 * i + 1] - box.minY) * s);
    if (x >= 0 && x < gx && y >= 0 && y < gy) cells[y * gx + x]++;
  }
  let top = 0, used = 0;
  for (let c = 0; c < cells.length; c++) {
    if (cells[c] > top) top = cells[c];
    if (cells[c]) used++;
  }
  if (!used) return 1;
  const histogram = new Uint32Array(top + 1);
  for (let c = 0; c < cells.length; c++) histogram[cells[c]]++;
  let seen = 0;
  for (let count = 1; count <= top; count++) {
    seen += histogram[count];
    if (seen >= 0.99 * used) return Math.max(1, count);
  }
  return Math.max(1, top);
}

/**
 * The opacity of a pixel holding `count` points when `reference` of them look fully opaque (the shader's formula):
 * half for one point, then growing with the log of the count.
 * @param {number} count
 * @param {number} reference
 */
export function opacity(count, reference) {
  if (!(count > 0)) return 0;
  const ref = Math.max(1, reference);
  return Math.min(1, 0.5 + (0.5 * Math.log(1 + count)) / Math.log(1 + ref));
}
