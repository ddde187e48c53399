// The projection pages preload every module their entry points import (templates/pages/_explorer_scripts.html):
// a module left out still works, but is only requested once its importer has arrived.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
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

test("the explorer's page preloads exactly the modules its entry points import", () => {
  const page = readFileSync(join(ROOT, "templates", "pages", "_explorer_scripts.html"), "utf8");
  /** @param {RegExp} pattern */
  const paths = (pattern) => Array.from(page.matchAll(pattern), (m) => m[1]).sort();
  const entries = paths(/<script type="module" src="\{% static 'js\/([^']+)' %\}"><\/script>/g);
  const preloaded = paths(/<link rel="modulepreload" href="\{% static 'js\/([^']+)' %\}">/g);
  assert.deepEqual(entries, ["explorer/index.js", "scatter/index.js"]);
  const needed = new Set();
  entries.forEach((e) => imported(e, needed));
  entries.forEach((e) => needed.delete(e));
  assert.ok(needed.size > 5);
  assert.deepEqual(preloaded, Array.from(needed).sort());
});
