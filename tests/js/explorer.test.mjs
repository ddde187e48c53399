// The explorer's state in the URL and its colourings (static/js/explorer/url_state.js, colourings.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  colourSpec,
  colouringUrl,
  defaultScale,
  pooledQuantiles,
  sameKind,
  scaleDomain,
  scaleNote,
} from "../../static/js/explorer/colourings.js";
import { searchSummary } from "../../static/js/explorer/search.js";
import {
  decodeFilter,
  decodeView,
  encodeFilter,
  encodeView,
  round,
  withParam,
} from "../../static/js/explorer/url_state.js";

test("a parameter is set, replaced, or removed when empty; the others stay", () => {
  assert.equal(withParam("?a=1&b=2", "b", "3"), "a=1&b=3");
  assert.equal(withParam("a=1", "view", "1,2,3"), "a=1&view=1%2C2%2C3");
  assert.equal(withParam("?a=1&b=2", "a", null), "b=2");
  assert.equal(withParam("?a=1", "a", ""), "");
  assert.equal(withParam("", "a", undefined), "");
});

test("filters: codes with commas, ranges with a tilde and six digits, open ends as ±Infinity", () => {
  assert.equal(encodeFilter([1, 3], "categorical"), "1,3");
  assert.equal(encodeFilter([], "categorical"), null);
  assert.equal(encodeFilter(null, "continuous"), null);
  assert.equal(encodeFilter([0.123456789, Infinity], "continuous"), "0.123457~Infinity");
  assert.deepEqual(decodeFilter("1,3", "categorical"), [1, 3]);
  assert.deepEqual(decodeFilter("-Infinity~2.5", "continuous"), [-Infinity, 2.5]);
  assert.equal(decodeFilter("1,x", "categorical"), null);
  assert.equal(decodeFilter("", "continuous"), null);
  const range = [-Infinity, 0.5];
  assert.deepEqual(decodeFilter(encodeFilter(range, "continuous"), "continuous"), range);
});

test("views: x,y,zoom to six digits, and only three finite numbers read back", () => {
  assert.equal(round(123.456789), 123.457);
  assert.equal(encodeView({ x: 105.123456, y: -0.000123456789, zoom: 2 }), "105.123,-0.000123457,2");
  assert.deepEqual(decodeView("105.123,-1,2"), { x: 105.123, y: -1, zoom: 2 });
  assert.equal(decodeView("1,2"), null);
  assert.equal(decodeView("1,2,Infinity"), null);
  assert.equal(decodeView(null), null);
});

test("a colouring per k asks for k; the values become a categorical or continuous spec", () => {
  /** @type {import("../../static/js/explorer/colourings.js").ColouringChoice} */
  const label = { key: "label", title: "label", kind: "categorical", url: "/c/label", names: ["a", "b"] };
  /** @type {import("../../static/js/explorer/colourings.js").ColouringChoice} */
  const agreement = { key: "agree", title: "agreement", kind: "continuous", url: "/c/agree?x=1", per_k: true };
  assert.equal(colouringUrl(label, 10), "/c/label");
  assert.equal(colouringUrl(agreement, 10), "/c/agree?x=1&k=10");
  assert.equal(colouringUrl({ ...agreement, url: "/c/agree" }, 5), "/c/agree?k=5");

  const codes = colourSpec(label, new Uint16Array([1, 0, 65535]).buffer);
  assert.ok(codes.kind === "categorical");
  assert.deepEqual(Array.from(codes.codes), [1, 0, 65535]);
  assert.deepEqual(codes.names, ["a", "b"]);
  const values = colourSpec(agreement, new Float32Array([0.5, NaN]).buffer);
  assert.ok(values.kind === "continuous");
  assert.equal(values.title, "agreement");
  assert.equal(values.values[0], 0.5);
  assert.ok(Number.isNaN(values.values[1]));
  const unnamed = colourSpec({ ...label, names: undefined }, new ArrayBuffer(0));
  assert.ok(unnamed.kind === "categorical");
  assert.deepEqual(unnamed.names, []);
});

test("the search says how many of the samples match what", () => {
  assert.equal(
    searchSummary(1200, 1797, "digit"),
    "1,200 of 1,797 samples contain “digit” in their id, label, text or metadata (highlighted; the plot zooms to them)."
  );
  assert.match(searchSummary(1, 40, "x"), /^1 of 40 samples contains “x”/);
  assert.equal(searchSummary(0, 40, "zzz"), "No sample's id, label, text or metadata contains “zzz”.");
});

test("colour scales: pooled over a kind's colourings; quantiles, min–max or a fixed range", () => {
  const a = Float32Array.from({ length: 101 }, (_, i) => i); // 0 … 100
  const b = Float32Array.from([NaN, Infinity, -Infinity, 1000]);
  assert.deepEqual(pooledQuantiles([a], [0.02, 0.5, 0.98]), [2, 50, 98]);
  assert.equal(pooledQuantiles([b.subarray(0, 3)], [0.5]), null);
  assert.deepEqual(scaleDomain("minmax", [a, b], null), [0, 1000]);
  const [lo, hi] = scaleDomain("quantiles", [a, b], null); // 102 finite values: the outlier moves the top only
  assert.ok(Math.abs(lo - 2.02) < 1e-9 && Math.abs(hi - 98.98) < 1e-9);
  assert.deepEqual(scaleDomain("fixed", [a], [1, -1]), [-1, 1]);
  assert.deepEqual(scaleDomain("quantiles", [Float32Array.from([3, 3, 3])], null), [3, 3]); // all equal
  assert.deepEqual(scaleDomain("quantiles", [b.subarray(0, 3)], null), [0, 1]); // nothing finite
});

test("a kind's colourings share a scale; bounded statistics start at their whole range", () => {
  /** @type {import("../../static/js/explorer/colourings.js").ColouringChoice[]} */
  const all = [
    { key: "label", title: "label", kind: "categorical", url: "" },
    { key: "agreement:1", title: "with A", kind: "continuous", url: "", group: "agreement", bounds: [0, 1] },
    { key: "agreement:2", title: "with B", kind: "continuous", url: "", group: "agreement", bounds: [0, 1] },
    { key: "probe:3:1", title: "rotation 90", kind: "continuous", url: "", group: "probe:image/rotation" },
  ];
  assert.deepEqual(sameKind(all[1], all).map((c) => c.key), ["agreement:1", "agreement:2"]);
  assert.deepEqual(sameKind(all[0], all), [all[0]]);
  assert.equal(defaultScale(all[1]), "fixed");
  assert.equal(defaultScale(all[3]), "quantiles");
  assert.equal(scaleNote("fixed", all[1], [0, 1], 2), "fixed range (all the statistic can take)");
  assert.equal(scaleNote("fixed", all[1], [0, 0.5], 2), "fixed range");
  assert.equal(scaleNote("quantiles", all[1], [0.1, 0.9], 2), "2–98% quantiles of all 2 colourings of this kind");
  assert.equal(scaleNote("minmax", all[3], [-3, 1], 1), "min–max");
});
