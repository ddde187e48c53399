// @ts-check
// The colourings the explorer offers in its "Colour by" select: where their values are, and what the scatter is given.

/**
 * A colouring the page offers (the json_script named by the select's data-colourings).
 * @typedef {{key: string, title: string, kind: "categorical" | "continuous", url: string, names?: string[],
 *   per_k?: boolean}} ColouringChoice
 */

/**
 * Where a colouring's values are: its URL, with the neighbourhood size k when they depend on it.
 * @param {ColouringChoice} c
 * @param {number | null} k
 */
export function colouringUrl(c, k) {
  return c.per_k ? `${c.url}${c.url.includes("?") ? "&" : "?"}k=${k}` : c.url;
}

/**
 * What scatter's colourBy takes for a colouring whose values arrived as buffer (uint16 codes or float32 values).
 * @param {ColouringChoice} c
 * @param {ArrayBuffer} buffer
 * @returns {{kind: "categorical", codes: Uint16Array, names: string[], title: string}
 *   | {kind: "continuous", values: Float32Array, title: string}}
 */
export function colourSpec(c, buffer) {
  return c.kind === "categorical"
    ? { kind: "categorical", codes: new Uint16Array(buffer), names: c.names || [], title: c.title }
    : { kind: "continuous", values: new Float32Array(buffer), title: c.title };
}
