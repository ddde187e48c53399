// The pure parts of the browser's resumable upload: SHA-256 fed in pieces agrees with
// Node's own (OpenSSL) on every length around the block boundaries and on a large input
// split at random; the chunks cover the file exactly once from any offset.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";

import { backoff, contentRange, declaration, nextChunk } from "../../static/js/upload/chunks.js";
import { Sha256 } from "../../static/js/upload/sha256.js";

const reference = (/** @type {Uint8Array} */ bytes) => createHash("sha256").update(bytes).digest("hex");

test("SHA-256 of known inputs", () => {
  assert.equal(
    new Sha256().update(new Uint8Array()).hex(),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.equal(
    new Sha256().update(new TextEncoder().encode("abc")).hex(),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});

test("SHA-256 agrees with OpenSSL at every length from 0 to 300 bytes", () => {
  const bytes = randomBytes(300);
  for (let n = 0; n <= 300; n++) {
    assert.equal(new Sha256().update(bytes.subarray(0, n)).hex(), reference(bytes.subarray(0, n)), `n=${n}`);
  }
});

test("SHA-256 fed in random pieces equals SHA-256 of the whole", () => {
  const bytes = randomBytes(1_000_003);
  const hash = new Sha256();
  for (let at = 0; at < bytes.length; ) {
    const piece = 1 + Math.floor(Math.random() * 70_000);
    hash.update(bytes.subarray(at, at + piece));
    at += piece;
  }
  assert.equal(hash.hex(), reference(bytes));
});

test("chunks from any offset cover the rest of the file exactly once", () => {
  for (const [size, chunk, start] of [[10, 3, 0], [10, 3, 4], [9, 3, 0], [1, 8, 0], [8, 8, 0]]) {
    const seen = [];
    for (let offset = start; offset < size; ) {
      const [first, last] = nextChunk(size, chunk, offset);
      assert.equal(first, offset);
      assert.ok(last - first + 1 <= chunk && last < size);
      for (let i = first; i <= last; i++) seen.push(i);
      offset = last + 1;
    }
    assert.deepEqual(seen, Array.from({ length: size - start }, (_, i) => start + i));
  }
  assert.throws(() => nextChunk(10, 3, 10), RangeError);
  assert.throws(() => nextChunk(10, 0, 0), RangeError);
  assert.equal(contentRange(0, 4, 10), "bytes 0-4/10");
});

test("a declaration takes the form's filled fields by name and the file's facts", () => {
  const file = { kind: "checkpoint", workspace: "lab", filename: "m.pt", size: 5, sha256: "ab".repeat(32) };
  const fields = [["csrfmiddlewaretoken", "t"], ["name", "mine"], ["description", ""], ["dataset", "7"]];
  assert.deepEqual(declaration(/** @type {any} */ (fields), file), { ...file, name: "mine", dataset: 7 });
});

test("backoff doubles from one second up to thirty", () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(backoff), [1, 2, 4, 8, 16, 30, 30]);
});
