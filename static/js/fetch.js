// @ts-check
// The binary files the islands read (coordinates, labels, colourings, selections).

/**
 * The body of url as an ArrayBuffer; rejected when the response is not OK.
 * @param {string} url
 * @returns {Promise<ArrayBuffer>}
 */
export function fetchBuffer(url) {
  return fetch(url, { credentials: "same-origin" }).then((r) => {
    if (!r.ok) throw new Error(`could not load ${url} (HTTP ${r.status})`);
    return r.arrayBuffer();
  });
}
