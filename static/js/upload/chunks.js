// @ts-check
// The pure parts of a resumable upload (webapp/api: declare, PUT chunks with Content-Range,
// resume from the server's offset, complete): which bytes each chunk carries, what a
// declaration says, how long to wait before trying again.

/**
 * The chunks [first, last] (inclusive byte offsets) that remain of a file of `size` bytes
 * once the server has `offset` of them, `chunkSize` bytes each (the last one shorter).
 * @param {number} size
 * @param {number} chunkSize
 * @param {number} offset
 * @returns {[number, number]}
 */
export function nextChunk(size, chunkSize, offset) {
  if (!(chunkSize >= 1) || offset < 0 || offset >= size) {
    throw new RangeError(`no chunk of a ${size}-byte file at offset ${offset}`);
  }
  return [offset, Math.min(offset + chunkSize, size) - 1];
}

/**
 * @param {number} first
 * @param {number} last
 * @param {number} size
 */
export function contentRange(first, last, size) {
  return `bytes ${first}-${last}/${size}`;
}

/**
 * The body that declares an upload: the form's fields by their API names (empty ones left
 * out, so the server's defaults apply; the dataset of precomputed activations as a number).
 * @param {Iterable<[string, FormDataEntryValue]>} fields
 * @param {{kind: string, workspace: string, filename: string, size: number, sha256: string}} file
 * @returns {Record<string, string | number>}
 */
export function declaration(fields, file) {
  /** @type {Record<string, string | number>} */
  const body = { ...file };
  for (const [name, value] of fields) {
    if (typeof value !== "string" || value === "" || name === "csrfmiddlewaretoken") continue;
    body[name] = name === "dataset" ? Number(value) : value;
  }
  return body;
}

/**
 * Seconds to wait before try `attempt` (1, 2, …) after a dropped connection: doubling from
 * 1 s, at most 30 s.
 * @param {number} attempt
 */
export function backoff(attempt) {
  return Math.min(30, 2 ** (attempt - 1));
}
