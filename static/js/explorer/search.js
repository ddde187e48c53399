// @ts-check
// The explorer's search: what the page says of its hits.

/**
 * The line beside the search box: how many of the n samples match, and what was searched.
 * @param {number} hits
 * @param {number} n
 * @param {string} query
 */
export function searchSummary(hits, n, query) {
  if (!hits) return `No sample's id, label, text or metadata contains “${query}”.`;
  const verb = hits === 1 ? "contains" : "contain";
  return (
    `${hits.toLocaleString("en")} of ${n.toLocaleString("en")} samples ${verb} “${query}” in their id, label, ` +
    "text or metadata (highlighted; the plot zooms to them)."
  );
}
