// @ts-check
// Browser uploads through the API's resumable protocol, the one the Python client uses: a
// form marked data-resumable-upload="dataset" | "checkpoint" hashes its file a slice at a
// time (SHA-256), declares it (POST data-api with the form's fields), sends it in chunks
// (PUT with Content-Range), resumes where the server's offset says after a dropped
// connection (waiting 1, 2, 4 … 30 s, at most MAX_TRIES times in a row), completes it, then
// goes to data-done, where the workspace's Uploads list shows the worker's check. Bytes the
// server has are never sent again. Without JavaScript the form posts the file in one request.
//
// Reads: data-workspace (slug), data-api (the uploads endpoint), data-done (where to go after),
// data-chunk-size (bytes per chunk; default: the size the server suggests).
// Sets: data-state = "hashing" | "sending" | "completing" | "failed" while it works; the
// form's .upload-status says the same in words, with a progress bar. When an upload turns
// ready, the page's Datasets and Checkpoints lists are fetched again, and an "upload-ready"
// event on the body tells the forms whose menus list them (the New comparison form's).

import { backoff, contentRange, declaration, nextChunk } from "./chunks.js";
import { Sha256 } from "./sha256.js";

const HASH_SLICE = 8 * 1024 * 1024;
const MAX_TRIES = 8;

/** @param {ParentNode} root */
export function setupUploads(root) {
  root.querySelectorAll("form[data-resumable-upload]").forEach((node) => {
    const form = /** @type {HTMLFormElement} */ (node);
    if (data(form).resumableReady) return;
    data(form).resumableReady = "true";
    form.addEventListener("submit", (event) => {
      const input = /** @type {HTMLInputElement | null} */ (form.querySelector("input[type=file]"));
      const file = input?.files?.[0];
      if (!file) return; // the server says what is missing
      event.preventDefault();
      upload(form, file).catch((err) => show(form, "failed", err instanceof Error ? err.message : String(err)));
    });
  });
}

/**
 * The form's data-* attributes. Not `form.dataset`: a form's named controls shadow its
 * properties, and the checkpoint form has a field named "dataset" (its select would answer).
 * @param {HTMLFormElement} form
 * @returns {DOMStringMap}
 */
function data(form) {
  return Reflect.get(HTMLElement.prototype, "dataset", form);
}

/**
 * @param {HTMLFormElement} form
 * @param {File} file
 */
async function upload(form, file) {
  const button = /** @type {HTMLButtonElement | null} */ (form.querySelector("button[type=submit]"));
  if (button) button.disabled = true;
  try {
    const hash = new Sha256();
    for (let at = 0; at < file.size; at += HASH_SLICE) {
      show(form, "hashing", `Reading ${file.name}`, at / file.size);
      hash.update(new Uint8Array(await file.slice(at, at + HASH_SLICE).arrayBuffer()));
    }
    const fields = [...new FormData(form).entries()].filter(([, v]) => typeof v === "string");
    const body = declaration(fields, {
      kind: data(form).resumableUpload || "",
      workspace: data(form).workspace || "",
      filename: file.name,
      size: file.size,
      sha256: hash.hex(),
    });
    const api = data(form).api || "";
    const declared = await call(form, "POST", api, JSON.stringify(body), "application/json");
    if (declared.id && declared.state === "open") {
      const url = `${api}${declared.id}/`;
      await sendChunks(form, file, url, Number(data(form).chunkSize) || declared.chunk_size, declared.offset);
      show(form, "completing", "Sent: a worker checks the file", 1);
      await call(form, "POST", `${url}complete/`);
    }
    goTo(new URL(data(form).done || "", window.location.href));
  } finally {
    if (button) button.disabled = false;
  }
}

/**
 * @param {HTMLFormElement} form
 * @param {File} file
 * @param {string} url
 * @param {number} chunkSize
 * @param {number} offset where the server's bytes end
 */
async function sendChunks(form, file, url, chunkSize, offset) {
  let tries = 0;
  while (offset < file.size) {
    const [first, last] = nextChunk(file.size, chunkSize, offset);
    show(form, "sending", `Sending ${file.name}`, offset / file.size);
    /** @type {Response | null} */
    let response = null;
    try {
      response = await fetch(url, {
        method: "PUT",
        body: file.slice(first, last + 1),
        headers: { ...headers(form), "Content-Type": "application/octet-stream", "Content-Range": contentRange(first, last, file.size) },
        credentials: "same-origin",
      });
    } catch {
      // the connection dropped: response stays null
    }
    if (response && (response.ok || response.status === 409)) {
      offset = (await response.json()).offset; // 409: the server says where to resume
      tries = 0;
      continue;
    }
    if (response && response.status < 500 && response.status !== 429) {
      throw new Error(await detail(response));
    }
    tries += 1;
    if (tries > MAX_TRIES) throw new Error(`The connection to the server keeps failing; ${file.name} was not sent.`);
    show(form, "sending", `Connection lost: resuming in ${backoff(tries)} s`, offset / file.size);
    await new Promise((resolve) => setTimeout(resolve, backoff(tries) * 1000));
    try {
      const state = await fetch(url, { headers: headers(form), credentials: "same-origin" });
      if (state.ok) offset = (await state.json()).offset;
    } catch {
      // still down: the next PUT finds out
    }
  }
}

/**
 * Where the upload ends: another page, or this one loaded afresh (a link to this page with
 * only another #fragment would not reload it, and the Uploads list would not show the file).
 * @param {URL} done
 */
function goTo(done) {
  const here = window.location;
  if (done.pathname === here.pathname && done.search === here.search) {
    here.hash = done.hash;
    here.reload();
  } else {
    here.assign(done);
  }
}

/**
 * One API call; its JSON answer, or an Error with the server's message.
 * @param {HTMLFormElement} form
 * @param {string} method
 * @param {string} url
 * @param {string} [body]
 * @param {string} [type]
 */
async function call(form, method, url, body, type) {
  const response = await fetch(url, {
    method,
    body,
    headers: { ...headers(form), ...(type ? { "Content-Type": type } : {}) },
    credentials: "same-origin",
  });
  if (!response.ok) throw new Error(await detail(response));
  return response.json();
}

/** @param {HTMLFormElement} form */
function headers(form) {
  const token = /** @type {HTMLInputElement | null} */ (form.querySelector("input[name=csrfmiddlewaretoken]"));
  return { "X-CSRFToken": token ? token.value : "", Accept: "application/json" };
}

/** @param {Response} response */
async function detail(response) {
  try {
    const answer = await response.json();
    if (answer && typeof answer.detail === "string") return answer.detail;
  } catch {
    // not JSON
  }
  return `The server refused the upload (${response.status}).`;
}

/**
 * @param {HTMLFormElement} form
 * @param {string} state
 * @param {string} text
 * @param {number} [fraction]
 */
function show(form, state, text, fraction) {
  data(form).state = state;
  let status = form.querySelector(".upload-status");
  if (!status) {
    status = document.createElement("p");
    status.className = "upload-status";
    status.setAttribute("role", "status");
    status.append(document.createElement("progress"), " ", document.createElement("span"));
    form.append(status);
  }
  const bar = /** @type {HTMLProgressElement} */ (status.querySelector("progress"));
  bar.hidden = fraction === undefined;
  if (fraction !== undefined) bar.value = fraction;
  const words = /** @type {HTMLElement} */ (status.querySelector("span"));
  words.textContent = text;
  words.className = state === "failed" ? "error" : "";
}

/**
 * The hrefs of the datasets and checkpoints the Uploads list says are ready.
 * @returns {Set<string>}
 */
function readyResults() {
  const links = document.querySelectorAll("#uploads tr.state-done a[href]");
  return new Set([...links].map((a) => a.getAttribute("href") || ""));
}

/**
 * The Datasets and Checkpoints lists were drawn when the page loaded; when the worker's check
 * makes a new one ready (htmx polls the Uploads list), each list is fetched again through its
 * filter form, so it no longer says "No checkpoints yet" beside an upload marked ready, and
 * "upload-ready" is dispatched on the body, for menus that list them to be drawn again.
 */
export function refreshListsWhenReady() {
  let seen = readyResults();
  document.body.addEventListener("htmx:afterSettle", () => {
    const now = readyResults();
    if ([...now].some((href) => !seen.has(href))) {
      for (const id of ["datasets-list", "checkpoints-list"]) {
        const form = /** @type {HTMLFormElement | null} */ (document.querySelector(`#${id} form.filters`));
        form?.requestSubmit();
      }
      document.body.dispatchEvent(new CustomEvent("upload-ready"));
    }
    seen = now;
  });
}

setupUploads(document);
refreshListsWhenReady();
