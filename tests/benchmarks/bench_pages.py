"""Cold load of the heatmap pages: how long a first visit to a comparison takes to draw.

Run as ``python -m tests.benchmarks.bench_pages`` against a running demo (``make demo`` or
``manage.py demo --addr HOST:PORT``; ``--base`` names it, ``--login`` its account; where no
site answers, it says so and times nothing). It needs Python Playwright and /usr/bin/chromium,
no Django.

Signed in once, it opens each page ``--loads`` times, each in a fresh browser context (no HTTP
cache, no compiled scripts kept; only the session cookie carried over), and reports medians of:

- HTML: when the page's HTML has arrived (navigation timing's responseEnd), the floor set by
  the server and the machine: nothing can draw before it;
- drawn: when every heatmap on the page is drawn (its element's data-drawn="true") and the
  frame after it has been painted (the next requestAnimationFrame), in ms since navigation
  start: what a person waits for;
- scripts: the bytes of script the page fetched (transfer sizes, compressed as served).

The pages are the lowest-numbered comparison and model matrix the workspace lists (``--path``
names others). The target (issue 17): the first comparison page drawn in under 0.5 s.
"""

from __future__ import annotations

import argparse
import re
import statistics
import urllib.request

from tests.browser import ARGS, CHROMIUM

TIMEOUT_MS = 60_000

# Installed before any page script: performance.now() once every heatmap on the page is drawn
# (data-drawn="true" and its cells in the DOM: SVG cells, or plotly.js's heatmap image before the
# SVG renderer), then at the next animation frame (the frame with the cells painted).
WATCH = """
new MutationObserver((records, obs) => {
  const maps = [...document.querySelectorAll("[data-heatmap]")];
  if (!maps.length || !maps.every((el) => el.dataset.drawn === "true" &&
                                          el.querySelector(".cell, .hm"))) return;
  obs.disconnect();
  window.__drawn = performance.now();
  requestAnimationFrame(() => { window.__painted = performance.now(); });
}).observe(document, {subtree: true, childList: true, attributes: true,
                      attributeFilter: ["data-drawn"]});
"""

MEASURE = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const scripts = performance.getEntriesByType("resource")
    .filter((r) => r.initiatorType === "script" || r.name.endsWith(".js"))
    .reduce((sum, r) => sum + r.transferSize, 0);
  const cells = document.querySelectorAll("[data-heatmap] .cell, [data-heatmap] .hm").length;
  return {html: nav.responseEnd, painted: window.__painted, scripts, cells,
          plotly: performance.getEntriesByType("resource").some((r) => /plotly/.test(r.name))};
}"""


def sign_in(browser, base: str, user: str, password: str) -> dict:
    """The storage state (session cookie) of a signed-in context."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    if "/accounts/login/" in page.url:
        raise SystemExit(f"could not sign in to {base} as {user}")
    state = context.storage_state()
    context.close()
    return state


def discover(browser, base: str, state: dict, workspace: str) -> list[str]:
    """The lowest-numbered comparison and model matrix the workspace page links to."""
    context = browser.new_context(storage_state=state)
    html = context.new_page().goto(f"{base}/w/{workspace}/").text()
    context.close()
    paths = []
    for kind in ("comparisons", "matrices"):
        ids = sorted({int(i) for i in re.findall(rf'href="/{kind}/(\d+)/"', html)})
        if ids:
            paths.append(f"/{kind}/{ids[0]}/")
    if not paths:
        raise SystemExit(f"/w/{workspace}/ lists no comparison or matrix: is the demo built?")
    return paths


def cold_load(browser, url: str, state: dict) -> dict:
    """One visit in a fresh context: the page's timings (ms since navigation start)."""
    context = browser.new_context(storage_state=state, viewport={"width": 1400, "height": 1000})
    try:
        context.add_init_script(WATCH)
        page = context.new_page()
        page.goto(url)
        page.wait_for_function("window.__painted !== undefined", timeout=TIMEOUT_MS)
        found = page.evaluate(MEASURE)
        if not found["cells"]:
            raise RuntimeError(f"{url}: data-drawn set but no heatmap cell in the page")
        return found
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--login", default="demo:demo", help="USER:PASSWORD")
    parser.add_argument("--workspace", default="demo")
    parser.add_argument("--path", action="append", help="a page to time (repeatable)")
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    user, password = args.login.split(":", 1)

    from playwright.sync_api import sync_playwright

    try:
        urllib.request.urlopen(f"{args.base}/accounts/login/", timeout=5).close()
    except OSError:
        print(f"bench_pages: no site answers at {args.base}; start the demo (make demo) to time it")
        return
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        state = sign_in(browser, args.base, user, password)
        paths = args.path or discover(browser, args.base, state, args.workspace)
        print(f"Chromium {browser.version} (headless) against {args.base}, {args.loads} cold loads")
        cold_load(browser, f"{args.base}{paths[0]}", state)  # browser warm-up, not reported
        print(
            f"\n{'page':<18} {'HTML (floor)':>12} {'drawn':>9} {'drawn/HTML':>10} "
            f"{'script KB':>9} {'plotly':>6}  drawn per load (ms)"
        )
        for path in paths:
            loads = [cold_load(browser, f"{args.base}{path}", state) for _ in range(args.loads)]
            html = statistics.median(x["html"] for x in loads)
            drawn = statistics.median(x["painted"] for x in loads)
            kb = statistics.median(x["scripts"] for x in loads) / 1024
            each = " ".join(f"{x['painted']:.0f}" for x in loads)
            print(
                f"{path:<18} {html:>9.0f} ms {drawn:>6.0f} ms {drawn / html:>9.1f}x "
                f"{kb:>9.0f} {'yes' if loads[0]['plotly'] else 'no':>6}  {each}"
            )
        browser.close()
    print(
        "\n(medians; drawn: every heatmap drawn and the next frame painted, ms since navigation"
        " start; target for the first comparison page: under 500 ms)"
    )


if __name__ == "__main__":
    main()
