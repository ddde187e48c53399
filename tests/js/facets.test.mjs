// The explorer's facets (static/js/explorer/facets.js): counts per value, all and selected; bins of a number column.
import assert from "node:assert/strict";
import { test } from "node:test";

import { binned, chosenBars, tally, toggledBar } from "../../static/js/explorer/facets.js";
import { NO_LABEL } from "../../static/js/scatter/colours.js";

test("counts per code, among all points and among the marked ones", () => {
  const codes = Uint16Array.from([0, 1, 1, 2, NO_LABEL, 1]);
  const none = tally(codes, 3, null);
  assert.deepEqual(Array.from(none.all), [1, 3, 1]);
  assert.equal(none.chosen, null);
  const some = tally(codes, 3, Uint8Array.from([1, 1, 0, 0, 1, 1]));
  assert.deepEqual(Array.from(some.chosen || []), [1, 2, 0]);
});

test("a number column in equal bins: the top value in the last bin, missing values in none", () => {
  const b = binned(Float32Array.from([0, 1, 2.5, 9.99, 10, NaN]), 4, String);
  assert.ok(b);
  assert.deepEqual(b.edges, [0, 2.5, 5, 7.5, 10]);
  assert.deepEqual(Array.from(b.codes), [0, 0, 1, 3, 3, NO_LABEL]);
  assert.deepEqual(b.names, ["0 – 2.5", "2.5 – 5", "5 – 7.5", "7.5 – 10"]);
  const one = binned([3, 3], 4, String);
  assert.deepEqual(one && one.names, ["3 – 3"]);
  assert.equal(binned([NaN], 4, String), null);
});

test("several values of a categorical facet: a click adds a value, a second click takes it away", () => {
  let filter = toggledBar("categorical", null, 3, 10);
  assert.deepEqual(filter, [3]);
  filter = toggledBar("categorical", filter, 1, 10);
  assert.deepEqual(filter, [1, 3]);
  assert.deepEqual(chosenBars("categorical", filter, 5), [false, true, false, true, false]);
  filter = toggledBar("categorical", filter, 3, 10);
  assert.deepEqual(filter, [1]);
  assert.equal(toggledBar("categorical", filter, 1, 10), null); // the last one off: every value again
  assert.deepEqual(chosenBars("categorical", null, 3), [false, false, false]);
});

test("bins of a number column: a range of adjacent bins grows and shrinks from its ends", () => {
  const edges = [0, 1, 2, 3, 4, 5];
  let filter = toggledBar("continuous", null, 1, 5, edges);
  assert.deepEqual(filter, [1, 2]);
  filter = toggledBar("continuous", filter, 3, 5, edges); // the bin between joins too
  assert.deepEqual(filter, [1, 4]);
  assert.deepEqual(chosenBars("continuous", filter, 5, edges), [false, true, true, true, false]);
  filter = toggledBar("continuous", filter, 0, 5, edges);
  assert.deepEqual(filter, [0, 4]);
  filter = toggledBar("continuous", filter, 3, 5, edges); // an end leaves
  assert.deepEqual(filter, [0, 3]);
  filter = toggledBar("continuous", filter, 0, 5, edges);
  assert.deepEqual(filter, [1, 3]);
  assert.deepEqual(toggledBar("continuous", filter, 1, 5, edges), [2, 3]);
  assert.deepEqual(toggledBar("continuous", [0, 5], 2, 5, edges), [2, 3]); // inside: a new range at the bin
  assert.equal(toggledBar("continuous", [2, 3], 2, 5, edges), null);
  // A range typed in the legend that cuts through a bin leaves that bin unchosen.
  assert.deepEqual(chosenBars("continuous", [0.5, 3], 5, edges), [false, true, true, false, false]);
});
