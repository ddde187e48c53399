// @ts-check
// Measure forms: every measure's declared parameters are in the form; show only those of the
// measure chosen (the server ignores the others). Runs on page load and on every htmx swap.

/** @param {HTMLSelectElement} select */
function show(select) {
  const form = select.form;
  if (!form) return;
  form.querySelectorAll("[data-measure]").forEach((input) => {
    const row = /** @type {HTMLElement} */ (input.closest("p") || input);
    // style, not the hidden attribute: the form's own CSS sets display on its rows
    row.style.display = input.getAttribute("data-measure") === select.value ? "" : "none";
  });
}

function setup() {
  document.querySelectorAll("select[name=measure]").forEach((el) => {
    const select = /** @type {HTMLSelectElement} */ (el);
    if (select.dataset.measureForm) return;
    select.dataset.measureForm = "1";
    select.addEventListener("change", () => show(select));
    show(select);
  });
}

document.addEventListener("DOMContentLoaded", setup);
document.addEventListener("htmx:load", setup);
