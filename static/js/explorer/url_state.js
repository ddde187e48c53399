// @ts-check
// The explorer's state in the page's URL (colour, filter, sel, view, view_b, k, align), so a URL can be shared:
// how each value is written and read back.

/**
 * A number as the URL keeps it: six significant digits.
 * @param {number} v
 */
export function round(v) {
  return Number(v.toPrecision(6));
}

/**
 * The query string (without "?") of `search` with name set to value, or removed when value is null, undefined or "".
 * @param {string} search
 * @param {string} name
 * @param {string | null | undefined} value
 */
export function withParam(search, name, value) {
  const p = new URLSearchParams(search);
  if (value === null || value === undefined || value === "") p.delete(name);
  else p.set(name, value);
  return p.toString();
}

/**
 * A scatter's filter in the URL: codes "1,3" or a range "lo~hi" (an open end as ±Infinity); null for no filter.
 * @param {number[] | null} filter
 * @param {"categorical" | "continuous" | undefined} kind
 */
export function encodeFilter(filter, kind) {
  if (!filter || (Array.isArray(filter) && !filter.length)) return null;
  return kind === "continuous" ? filter.map(round).join("~") : filter.join(",");
}

/**
 * The filter encodeFilter wrote (null when there is none or it does not read as numbers).
 * @param {string | null} text
 * @param {"categorical" | "continuous"} kind
 */
export function decodeFilter(text, kind) {
  if (!text) return null;
  const parts = text.split(kind === "continuous" ? "~" : ",").map(Number); // an open end is ±Infinity
  return parts.every((v) => !Number.isNaN(v)) ? parts : null;
}

/**
 * A scatter's view in the URL: "x,y,zoom".
 * @param {{x: number, y: number, zoom: number}} v
 */
export function encodeView(v) {
  return [v.x, v.y, v.zoom].map(round).join(",");
}

/**
 * The view encodeView wrote (null unless it is three finite numbers).
 * @param {string | null} text
 */
export function decodeView(text) {
  const v = (text || "").split(",").map(Number);
  return v.length === 3 && v.every(Number.isFinite) ? { x: v[0], y: v[1], zoom: v[2] } : null;
}
