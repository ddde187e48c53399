// @ts-check
// The marks of a hovered point over the canvas: a ring around it, and the tooltip (thumbnail or text of the sample,
// its index, its colour and label or value).

/**
 * @param {{thumbnails: boolean, texts: boolean, sampleUrl: string}} options thumbnails: show
 *   `${sampleUrl}${i}.png`; texts: fetch and show `${sampleUrl}${i}.txt`
 */
export function createTooltip({ thumbnails, texts, sampleUrl }) {
  const ring = document.createElement("div");
  ring.className = "scatter-ring";
  ring.hidden = true;
  const tip = document.createElement("div");
  tip.className = "scatter-tip";
  tip.hidden = true;
  /** @type {Map<number, string | Promise<string>>} index → text (or a promise of it) */
  const textCache = new Map();

  // The text of sample i in a <q>, filled when it arrives (fetched once per sample).
  /** @param {number} i */
  function sampleText(i) {
    const q = document.createElement("q");
    q.className = "scatter-text";
    if (!textCache.has(i)) {
      textCache.set(
        i,
        fetch(`${sampleUrl}${i}.txt`, { credentials: "same-origin" }).then((r) => (r.ok ? r.text() : ""))
      );
    }
    Promise.resolve(textCache.get(i)).then((t = "") => {
      textCache.set(i, t);
      q.textContent = t.length > 200 ? `${t.slice(0, 200)}…` : t;
    });
    return q;
  }

  return {
    ring,
    tip,
    /**
     * Fills the tooltip for point i and shows it.
     * @param {number} i
     * @param {string} text its label or value
     * @param {string} colour CSS
     */
    show(i, text, colour) {
      const parts = [];
      if (thumbnails) {
        const img = document.createElement("img");
        img.src = `${sampleUrl}${i}.png`;
        img.width = 64;
        img.height = 64;
        img.alt = "";
        parts.push(img);
      }
      const block = document.createElement("div");
      const index = document.createElement("b");
      index.textContent = `#${i}`;
      const swatch = document.createElement("span");
      swatch.className = "scatter-swatch";
      swatch.style.background = colour;
      const label = document.createElement("span");
      label.textContent = text;
      const line = document.createElement("div");
      line.append(swatch, label);
      block.append(index, line);
      if (texts) block.append(sampleText(i));
      parts.push(block);
      tip.replaceChildren(...parts);
      tip.hidden = false;
    },
    hide() {
      tip.hidden = true;
    },
    /**
     * Puts the tooltip next to the cursor (mx, my CSS px in the canvas), inside the canvas's width × height.
     * @param {HTMLCanvasElement} canvas
     * @param {number} mx
     * @param {number} my
     * @param {number} width
     * @param {number} height
     */
    place(canvas, mx, my, width, height) {
      if (tip.hidden) return;
      const left0 = canvas.offsetLeft, top0 = canvas.offsetTop;
      const tw = tip.offsetWidth, th = tip.offsetHeight;
      let left = mx + 14, top = my + 14;
      if (left + tw > width - 4) left = mx - 14 - tw;
      if (top + th > height - 4) top = my - 14 - th;
      tip.style.left = `${left0 + Math.max(4, left)}px`;
      tip.style.top = `${top0 + Math.max(4, top)}px`;
    },
    /**
     * Rings the point at p (CSS px in the canvas; null: none); linked: on behalf of a linked view.
     * @param {HTMLCanvasElement} canvas
     * @param {{x: number, y: number} | null} p
     * @param {boolean} linked
     */
    placeRing(canvas, p, linked) {
      ring.hidden = p === null;
      ring.classList.toggle("linked", linked);
      if (!p) return;
      ring.style.left = `${canvas.offsetLeft + p.x}px`;
      ring.style.top = `${canvas.offsetTop + p.y}px`;
    },
  };
}
