// The projection pages and the heatmap pages preload every module their entry points import
// (templates/pages/_explorer_scripts.html, _heatmap_scripts.html): a module left out still works, but is only
// requested once its importer has arrived.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const JS = join(ROOT, "static", "js");

/**
 * The modules `entry` imports, directly or not (paths relative to static/js).
 * @param {string} entry
 * @param {Set<string>} seen
 */
function imported(entry, seen = new Set()) {
  const source = readFileSync(join(JS, entry), "utf8");
  for (const [, spec] of source.matchAll(/^import\s[^;]*?from\s+"(\.{1,2}\/[^"]+)";/gms)) {
    const path = relative(JS, join(JS, dirname(entry), spec));
    if (!seen.has(path)) {
      seen.add(path);
      imported(path, seen);
    }
  }
  return seen;
}

/**
 * The entry points and the preloaded modules of a template (paths relative to static/js).
 * @param {string} name
 */
function scripts(name) {
  const page = readFileSync(join(ROOT, "templates", "pages", name), "utf8");
  /** @param {RegExp} pattern */
  const paths = (pattern) => Array.from(page.matchAll(pattern), (m) => m[1]).sort();
  const entries = paths(/<script type="module" src="\{% static 'js\/([^']+)' %\}"><\/script>/g);
  const preloaded = paths(/<link rel="modulepreload" href="\{% static 'js\/([^']+)' %\}">/g);
  const needed = new Set();
  entries.forEach((e) => imported(e, needed));
  entries.forEach((e) => needed.delete(e));
  return { entries, preloaded, needed: Array.from(needed).sort() };
}

test("the explorer's page preloads exactly the modules its entry points import", () => {
  const { entries, preloaded, needed } = scripts("_explorer_scripts.html");
  assert.deepEqual(entries, ["explorer/index.js", "scatter/index.js"]);
  assert.ok(needed.length > 5);
  assert.deepEqual(preloaded, needed);
});

test("the heatmap pages preload exactly the modules the heatmap island imports", () => {
  const { entries, preloaded, needed } = scripts("_heatmap_scripts.html");
  assert.deepEqual(entries, ["heatmap/index.js"]);
  assert.deepEqual(needed, ["heatmap/figure.js", "heatmap/scale.js", "heatmap/svg.js"]);
  assert.deepEqual(preloaded, needed);
});

test("a page loads plotly.js exactly when one of its modules draws with it (the heatmaps are SVG)", () => {
  const pages = join(ROOT, "templates", "pages");
  /**
   * @param {string} name
   * @returns {string}
   */
  const text = (name) => {
    const page = readFileSync(join(pages, name), "utf8");
    // Partials included from the page's own directory count as the page.
    return page.replace(/\{% include "pages\/([^"]+)"[^%]*%\}/g, (_, /** @type {string} */ partial) => text(partial));
  };
  /** @type {Record<string, boolean>} */
  const loads = {};
  /** @type {Record<string, boolean>} */
  const draws = {};
  for (const name of readdirSync(pages).filter((n) => n.endsWith(".html") && !n.startsWith("_"))) {
    const page = text(name);
    const entries = Array.from(page.matchAll(/<script type="module" src="\{% static 'js\/([^']+)' %\}"><\/script>/g), (m) => m[1]);
    const modules = new Set(entries);
    entries.forEach((e) => imported(e, modules));
    loads[name] = page.includes("plotly/plotly-cartesian.min.js");
    draws[name] = Array.from(modules).some((m) => /\bPlotly\.\w+\(/.test(readFileSync(join(JS, m), "utf8")));
  }
  assert.deepEqual(loads, draws);
  for (const name of ["comparison.html", "matrix.html", "compatibility.html", "stitching.html"]) {
    assert.equal(loads[name], false, name);
  }
  assert.equal(loads["dynamics.html"], true); // its curves
});
