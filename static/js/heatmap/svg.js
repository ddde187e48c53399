// @ts-check
// The heatmap figure (figure.js) written as SVG markup. Every text is escaped: layer and checkpoint names come from
// uploaded models. Each cell is a link to its pair's page where the matrix has one (click or Enter drills down), and
// carries its hover text as its accessible name, so a keyboard or a screen reader reaches every value.
// Class names follow what the page's tests read: .cell, .xtick, .ytick, .colorbar, .mark.

import { FONT } from "./figure.js";

/**
 * Text safe inside SVG markup, attribute values included.
 * @param {string} text
 */
export function escape(text) {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** @param {number} v */
const px = (v) => String(Math.round(v * 10) / 10);

/**
 * The SVG of figure `fig`. `id` makes the gradient's and pattern's ids unique on the page; `label(i, j)` is cell
 * (i, j)'s accessible name; `href(i, j)`, where given, the page a click on it opens.
 * @param {import("./figure.js").Figure} fig
 * @param {string} id
 * @param {(i: number, j: number) => string} label
 * @param {((i: number, j: number) => string) | null} href
 */
export function svg(fig, id, label, href) {
  const bar = fig.bar;
  const gradientId = `${id}-scale`;
  const noneId = `${id}-none`;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="heatmap-svg" width="${px(fig.width)}" height="${px(fig.height)}"` +
      ` viewBox="0 0 ${px(fig.width)} ${px(fig.height)}" font-size="${FONT}" dominant-baseline="central" role="group">`,
    "<defs>",
    `<linearGradient id="${escape(gradientId)}" x1="0" y1="1" x2="0" y2="0">`,
    ...bar.stops.map(([t, c]) => `<stop offset="${t}" stop-color="${c}"/>`),
    "</linearGradient>",
    `<pattern id="${escape(noneId)}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">` +
      `<rect width="6" height="6" fill="#f4f4f4"/><line x1="0" y1="0" x2="0" y2="6" stroke="#c8c8c8" stroke-width="2"/>` +
      "</pattern>",
    "</defs>",
    '<g class="cells" shape-rendering="crispEdges">',
  ];
  for (const c of fig.cells) {
    const name = escape(label(c.row, c.col));
    const open = href
      ? `<a class="cell" href="${escape(href(c.row, c.col))}" data-row="${c.row}" data-col="${c.col}" aria-label="${name}">`
      : `<g class="cell" tabindex="0" role="img" data-row="${c.row}" data-col="${c.col}" aria-label="${name}">`;
    const fill = c.fill === null ? `url(#${escape(noneId)})` : c.fill;
    const text =
      c.label !== null
        ? `<text x="${px(c.x + c.w / 2)}" y="${px(c.y + c.h / 2)}" fill="${c.ink}" font-size="11" text-anchor="middle">${c.label}</text>`
        : c.fill === null
          ? `<text x="${px(c.x + c.w / 2)}" y="${px(c.y + c.h / 2)}" fill="${c.ink}" font-size="11" text-anchor="middle">—</text>`
          : "";
    out.push(
      `${open}<rect x="${px(c.x)}" y="${px(c.y)}" width="${px(c.w)}" height="${px(c.h)}" fill="${fill}"` +
        ` class="${c.fill === null ? "missing" : "scored"}"/>${text}${href ? "</a>" : "</g>"}`
    );
  }
  out.push("</g>", '<g class="yaxis">');
  for (const r of fig.rows) {
    out.push(`<g class="ytick"><text x="${px(r.x)}" y="${px(r.y)}" text-anchor="end">${escape(r.text)}</text></g>`);
  }
  out.push("</g>", '<g class="xaxis">');
  for (const c of fig.cols) {
    const text = fig.rotated
      ? `<text x="${px(c.x)}" y="${px(c.y - 6)}" text-anchor="end" transform="rotate(-45 ${px(c.x)} ${px(c.y - 6)})">`
      : `<text x="${px(c.x)}" y="${px(c.y)}" text-anchor="middle">`;
    out.push(`<g class="xtick">${text}${escape(c.text)}</text></g>`);
  }
  out.push(
    "</g>",
    `<text class="xtitle" x="${px(fig.xTitle.x)}" y="${px(fig.xTitle.y)}" text-anchor="middle" font-weight="600">` +
      `${escape(fig.xTitle.text)}</text>`,
    `<text class="ytitle" x="${px(fig.yTitle.x)}" y="${px(fig.yTitle.y)}" text-anchor="middle" font-weight="600"` +
      ` transform="rotate(-90 ${px(fig.yTitle.x)} ${px(fig.yTitle.y)})">${escape(fig.yTitle.text)}</text>`,
    '<g class="colorbar">',
    `<rect x="${px(bar.x)}" y="${px(bar.y)}" width="${bar.w}" height="${px(bar.h)}" fill="url(#${escape(gradientId)})"` +
      ' stroke="#999" stroke-width="0.5"/>'
  );
  for (const t of bar.ticks) {
    out.push(
      `<line x1="${px(t.x - 4)}" x2="${px(t.x)}" y1="${px(t.y)}" y2="${px(t.y)}" stroke="#444"/>` +
        `<text class="tick" x="${px(t.x + 2)}" y="${px(t.y)}">${escape(t.text)}</text>`
    );
  }
  // A mark: a dark line with a light edge across the bar (seen on every colour), a tick to its text.
  for (const m of bar.marks) {
    out.push(
      `<g class="mark"><line x1="${px(bar.x - 3)}" x2="${px(bar.x + bar.w + 3)}" y1="${px(m.y)}" y2="${px(m.y)}"` +
        ' stroke="#fff" stroke-width="4"/>' +
        `<line x1="${px(bar.x - 3)}" x2="${px(bar.x + bar.w + 3)}" y1="${px(m.y)}" y2="${px(m.y)}" stroke="#111"` +
        ' stroke-width="1.5"/>' +
        `<line x1="${px(bar.x + bar.w + 3)}" x2="${px(m.x - 2)}" y1="${px(m.y)}" y2="${px(m.textY)}" stroke="#111"/>` +
        `<text class="mark-text" x="${px(m.x)}" y="${px(m.textY)}" font-size="11" font-weight="600">` +
        `${escape(m.text)}</text></g>`
    );
  }
  bar.lines.forEach((l, k) =>
    out.push(
      `<text class="line" x="${px(l.x)}" y="${px(l.y)}"${k === 0 ? ' font-weight="600"' : ' font-size="11" fill="#444"'}>` +
        `${escape(l.text)}</text>`
    )
  );
  if (bar.missing) {
    const m = bar.missing;
    out.push(
      `<rect x="${px(m.x - 18)}" y="${px(m.y - 6)}" width="12" height="12" fill="url(#${escape(noneId)})" stroke="#999"` +
        ' stroke-width="0.5"/>' +
        `<text class="line" x="${px(m.x)}" y="${px(m.y)}" font-size="11" fill="#444">${escape(m.text)}</text>`
    );
  }
  out.push("</g>", "</svg>");
  return out.join("");
}
