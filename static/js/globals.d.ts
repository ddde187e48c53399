// Types of what the islands share with the page: the globals of the classic scripts they rely on (htmx, from
// django-htmx; plotly.js, from the plotly package), and what they set on elements. For type checking only
// (jsconfig.json); no page loads this file.

import type { ScatterApi } from "./scatter/index.js";

interface HtmxAjaxContext {
  values?: Record<string, string>;
  target?: string | Element;
  swap?: string;
}

export interface Htmx {
  onLoad(callback: (element: Element) => void): void;
  ajax(verb: string, path: string, context: HtmxAjaxContext): Promise<void>;
}

/** The part of plotly.js the islands use. */
export interface Plotly {
  newPlot(el: HTMLElement, data: object[], layout?: object, config?: object): Promise<PlotlyElement>;
  react(el: HTMLElement, data: object[], layout?: object, config?: object): Promise<PlotlyElement>;
}

/** A plot's element once plotly.js has drawn on it. */
export interface PlotlyElement extends HTMLElement {
  on(event: "plotly_click", handler: (event: { points: { pointIndex: [number, number] }[] }) => void): void;
}

declare global {
  const htmx: Htmx;
  const Plotly: Plotly;
  interface Window {
    htmx?: Htmx;
    Plotly?: Plotly;
  }
  interface HTMLElement {
    /** The scatter widget's API (scatter/index.js), on each element it draws. */
    scatter?: ScatterApi;
  }
}
