// @ts-check
// Builds the hover index (grid.js) off the page's thread: a million points take a few hundred ms, which on the main
// thread would stall a pan. Message in: {pos: Float32Array, n, box}; out: the Grid, its arrays transferred.
import { buildGrid } from "./grid.js";

const scope = /** @type {any} */ (self);
scope.onmessage = (/** @type {MessageEvent} */ e) => {
  const { pos, n, box, ticket } = e.data;
  const grid = buildGrid(pos, n, box);
  scope.postMessage({ grid, ticket }, [grid.start.buffer, grid.items.buffer]);
};
