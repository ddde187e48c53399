// @ts-check
// Numbers and labels as people read them (the legend's ends, the tooltip).

import { NO_LABEL } from "./colours.js";

/**
 * A number for people: four significant digits, exponent notation when very large or small.
 * @param {number} v
 */
export function fmt(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

/**
 * The tooltip's line for point i under a colouring: its value, or its label's name.
 * @param {import("./colours.js").Colouring} colouring
 * @param {number} code the point's code (its label, or its colour level)
 * @param {number} i
 */
export function describe(colouring, code, i) {
  if (colouring.kind === "continuous") {
    const v = colouring.values[i];
    return `${colouring.title || "value"}: ${Number.isFinite(v) ? fmt(v) : "no value"}`;
  }
  const names = colouring.names;
  const name = code === NO_LABEL ? "no label" : code < names.length ? names[code] : String(code);
  return colouring.title ? `${colouring.title}: ${name}` : name;
}
