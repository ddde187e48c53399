// The explorer's facets (static/js/explorer/facets.js): counts per value, all and selected; bins of a number column.
import assert from "node:assert/strict";
import { test } from "node:test";

import { binned, tally } from "../../static/js/explorer/facets.js";
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
