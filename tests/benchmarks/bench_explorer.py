"""The explorer's scatter: binary transport against JSON, and the cost of a UMAP projection.

Run as ``python -m tests.benchmarks.bench_explorer`` (``--quick``: 10,000 points only and UMAP
on 5,000 samples). It needs Python Playwright and /usr/bin/chromium, no Django:

- for 10,000 / 100,000 / 200,000 random points with 10 labels, the payload of the binary format
  (coords.f32 + labels.u16) against the same data as JSON (``{"x", "y", "label"}`` lists, floats
  as Python's json writes them), and the time from navigation to the first rendered frame in
  headless Chromium (median of 3 loads, each in a fresh context, so nothing is cached):
  (a) static/js/scatter/ fetching the binary files itself;
  (b) a page that fetches the JSON, parses it, builds the typed arrays and hands them to the
  same scatter module as blob: URLs, so only the transport differs;
- at the largest size, interaction: 300 hover moves (wall time, and the page's long tasks over
  50 ms), one recolouring, filter and highlight of every point and the next frame;
- the explorer's server side at 200,000 points (lasso, neighbourhood agreement, alignment,
  displacement) and the geometry panel's leave-one-out linear probe against scikit-learn;
- UMAP wall time (``analysis.explorer.projection.project(x, "umap")``) on a 10-cluster
  Gaussian mixture, 256 dimensions: the first call (numba compilation included), a second
  call on the same data, then the larger data set.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from tests.browser import ARGS, CHROMIUM

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "static" / "js"  # the scatter island and the modules it imports
LOADS = 3
TIMEOUT_MS = 120_000

STYLE = "<style>.scatter{width:900px;height:600px;position:relative}</style>"

# Records performance.now() (ms since navigation start) when any element gets data-drawn="true".
WATCH = """<script>
new MutationObserver((records, obs) => {
  for (const r of records) {
    if (r.target.dataset && r.target.dataset.drawn === "true") {
      window.__drawn = performance.now();
      window.__points = Number(r.target.dataset.points);
      obs.disconnect();
      return;
    }
  }
}).observe(document.documentElement, {subtree: true, attributes: true,
                                      attributeFilter: ["data-drawn"]});
</script>"""

BINARY_PAGE = """<!doctype html><html><head><meta charset="utf-8">{style}{watch}</head><body>
<div class="scatter" data-coords-url="{n}.coords.f32" data-labels-url="{n}.labels.u16"></div>
<script type="module" src="js/scatter/index.js"></script></body></html>"""

JSON_PAGE = """<!doctype html><html><head><meta charset="utf-8">{style}{watch}</head><body>
<script>
fetch("{n}.json").then((r) => r.text()).then((text) => {{
  const d = JSON.parse(text);
  const n = d.x.length;
  const pos = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {{ pos[2 * i] = d.x[i]; pos[2 * i + 1] = d.y[i]; }}
  const labels = Uint16Array.from(d.label);
  const el = document.createElement("div");
  el.className = "scatter";
  el.dataset.coordsUrl = URL.createObjectURL(new Blob([pos.buffer]));
  el.dataset.labelsUrl = URL.createObjectURL(new Blob([labels.buffer]));
  document.body.append(el);
  const s = document.createElement("script");
  s.type = "module";
  s.src = "js/scatter/index.js";
  document.body.append(s);
}});
</script></body></html>"""


def write_payloads(directory: Path, n: int, rng: np.random.Generator) -> tuple[int, int]:
    """Write the binary files, the JSON and both pages for n points; return (binary, JSON) bytes."""
    centres = rng.normal(scale=8.0, size=(10, 2))
    labels = rng.integers(0, 10, size=n).astype("<u2")
    coords = (centres[labels] + rng.standard_normal((n, 2))).astype("<f4")
    (directory / f"{n}.coords.f32").write_bytes(coords.tobytes())
    (directory / f"{n}.labels.u16").write_bytes(labels.tobytes())
    payload = {
        "x": coords[:, 0].tolist(),
        "y": coords[:, 1].tolist(),
        "label": labels.tolist(),
    }
    text = json.dumps(payload)
    (directory / f"{n}.json").write_text(text)
    fmt = {"n": n, "style": STYLE, "watch": WATCH}
    (directory / f"{n}.binary.html").write_text(BINARY_PAGE.format(**fmt))
    (directory / f"{n}.json.html").write_text(JSON_PAGE.format(**fmt))
    return coords.nbytes + labels.nbytes, len(text.encode())


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        pass


def serve(directory: Path) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def first_frame_ms(browser, url: str, n: int) -> float:
    """Milliseconds from navigation start to data-drawn, in a fresh (cache-less) context."""
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    try:
        page = context.new_page()
        page.goto(url)
        page.wait_for_function("window.__drawn !== undefined", timeout=TIMEOUT_MS)
        drawn, points = page.evaluate("[window.__drawn, window.__points]")
        error = page.evaluate("document.querySelector('.scatter').dataset.error")
        if error or points != n:
            raise RuntimeError(f"{url}: drew {points} points of {n} (error={error})")
        return float(drawn)
    finally:
        context.close()


def bench_scatter(sizes: list[int]) -> None:
    from playwright.sync_api import sync_playwright

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        shutil.copytree(JS, directory / "js")
        sizes_bytes = {n: write_payloads(directory, n, rng) for n in sizes}
        server = serve(directory)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                print(f"Chromium {browser.version} (headless, SwiftShader WebGL)")
                # Warm-up load (browser process start, shader compiler), not reported.
                first_frame_ms(browser, f"{base}/{sizes[0]}.binary.html", sizes[0])
                print(
                    f"\n{'points':>8} | {'binary':>9} {'JSON':>9} {'ratio':>6} | "
                    f"{'binary first frame':>18} {'JSON first frame':>17} {'JSON/bin':>8}"
                )
                print("-" * 86)
                for n in sizes:
                    binary, text = sizes_bytes[n]
                    times = {}
                    for kind in ("binary", "json"):
                        url = f"{base}/{n}.{kind}.html"
                        times[kind] = statistics.median(
                            first_frame_ms(browser, url, n) for _ in range(LOADS)
                        )
                    print(
                        f"{n:>8,} | {binary / 1e6:>7.2f}MB {text / 1e6:>7.2f}MB "
                        f"{text / binary:>5.1f}x | {times['binary']:>15.0f} ms "
                        f"{times['json']:>14.0f} ms {times['json'] / times['binary']:>7.1f}x"
                    )
                interaction(browser, f"{base}/{sizes[-1]}.binary.html", sizes[-1])
                browser.close()
        finally:
            server.shutdown()
            server.server_close()
    print(f"(first frame: median of {LOADS} loads, ms from navigation start to data-drawn)")


def interaction(browser, url: str, n: int) -> None:
    """At ``n`` points: 300 hover moves across the clusters (their wall time, and the page's
    long tasks, over 50 ms, in Chrome's own accounting), then one recolouring, filter and
    highlight of every point and the next frame (ms each, as the page measures them)."""
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    try:
        page = context.new_page()
        page.goto(url)
        page.wait_for_function("window.__drawn !== undefined", timeout=TIMEOUT_MS)
        page.evaluate(
            """() => {
              window.__long = [];
              new PerformanceObserver((list) => list.getEntries().forEach(
                (e) => window.__long.push(e.duration))).observe({ type: "longtask" });
            }"""
        )
        page.mouse.move(200, 200)
        start = time.perf_counter()
        for k in range(300):
            page.mouse.move(200 + 2 * k, 350 + 60 * np.sin(k / 10))
        hover_s = time.perf_counter() - start
        long_tasks = page.evaluate("window.__long")
        steps = page.evaluate(
            """async (n) => {
              const el = document.querySelector(".scatter");
              const values = Float32Array.from({length: n}, (_, i) => Math.sin(i));
              const t = [performance.now()];
              el.scatter.colourBy({kind: "continuous", values, title: "v"});
              t.push(performance.now());
              el.scatter.setFilter([-0.5, 0.5]);
              t.push(performance.now());
              el.scatter.highlight(new Uint32Array(n / 4).map((_, k) => 4 * k));
              t.push(performance.now());
              await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
              t.push(performance.now());
              return t.slice(1).map((v, k) => v - t[k]);
            }""",
            n,
        )
    finally:
        context.close()
    worst = f", the longest {max(long_tasks):.0f} ms" if long_tasks else ""
    print(
        f"\nInteraction at {n:,} points: 300 hover moves in {hover_s:.1f} s, "
        f"{len(long_tasks)} long tasks (> 50 ms){worst}"
    )
    names = ("recolour", "filter", "highlight", "next frame")
    print("  " + ", ".join(f"{name} {ms:.0f} ms" for name, ms in zip(names, steps, strict=True)))


def mixture(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(scale=0.5, size=(10, d))  # overlapping enough for one kNN graph
    return (centres[rng.integers(0, 10, size=n)] + rng.standard_normal((n, d))).astype(np.float32)


def timed_umap(x: np.ndarray) -> float:
    from analysis.explorer.projection import project

    start = time.perf_counter()
    result = project(x, "umap")
    seconds = time.perf_counter() - start
    assert result.coordinates.shape == (len(x), 2)
    return seconds


def bench_umap(small: int, large: int | None) -> None:
    rng = np.random.default_rng(1)
    x = mixture(small, 256, rng)
    print(
        "\nUMAP (analysis.explorer.projection.project, defaults), "
        f"{small:,} × 256 float32, 10 clusters"
    )
    first = timed_umap(x)
    print(f"  first call  (includes numba compilation): {first:7.1f} s")
    second = timed_umap(x)
    print(f"  second call (same data, compiled):        {second:7.1f} s")
    print(f"  one-off JIT cost ≈ {first - second:.1f} s")
    if large:
        y = mixture(large, 256, rng)
        seconds = timed_umap(y)
        label = f"{large:,} × 256 (compiled):"
        print(f"  {label:<41} {seconds:7.1f} s")


def bench_server_side(n: int) -> None:
    """What the explorer computes per request at ``n`` points: a 500-vertex lasso resolved
    against the stored coordinates (matplotlib's Path as the peer), neighbourhood agreement of
    two spaces at k = 30, neighbour-aware displacement, and a Procrustes alignment of two
    pictures; plus the geometry panel's linear probe (scikit-learn's leave-one-out ridge
    classifier as the peer, on a smaller set: it refits n times)."""
    from matplotlib.path import Path as PolygonPath

    from analysis.explorer.geometry import linear_probe_accuracy
    from analysis.explorer.selections import (
        displacement,
        neighbourhood_agreement,
        points_in_polygon,
        similarity_align,
    )

    rng = np.random.default_rng(2)
    xy = rng.normal(size=(n, 2)).astype(np.float32)
    angles = np.linspace(0, 2 * np.pi, 500, endpoint=False)
    radius = np.where(np.arange(500) % 2 == 0, 1.5, 0.6)  # a 250-pointed star
    star = np.column_stack([radius * np.cos(angles), radius * np.sin(angles)])
    start = time.perf_counter()
    ours = points_in_polygon(xy, star)
    lasso = time.perf_counter() - start
    start = time.perf_counter()
    peer = np.flatnonzero(PolygonPath(star).contains_points(xy))
    peer_s = time.perf_counter() - start
    print(f"\nServer side at {n:,} points")
    print(
        f"  lasso, 500 vertices: {lasso * 1e3:6.0f} ms ({len(ours):,} inside); "
        f"matplotlib Path {peer_s * 1e3:.0f} ms; same points: {np.array_equal(ours, peer)}"
    )
    a = rng.integers(0, n, size=(n, 30)).astype(np.int32)
    b = rng.integers(0, n, size=(n, 30)).astype(np.int32)
    start = time.perf_counter()
    neighbourhood_agreement(a, b, 30)
    print(f"  neighbourhood agreement, k = 30:     {(time.perf_counter() - start) * 1e3:6.0f} ms")
    moved = xy @ np.array([[0.0, -1.0], [1.0, 0.0]], dtype=np.float32) + 3
    start = time.perf_counter()
    similarity_align(moved, xy)
    print(f"  Procrustes alignment of two pictures: {(time.perf_counter() - start) * 1e3:5.0f} ms")
    start = time.perf_counter()
    displacement(xy, moved, a[:, :10], 10)
    print(f"  neighbour-aware displacement, k = 10: {(time.perf_counter() - start) * 1e3:5.0f} ms")

    from sklearn.linear_model import RidgeClassifier
    from sklearn.model_selection import LeaveOneOut, cross_val_predict

    m, d = 2_000, 64
    labels = rng.integers(0, 10, size=m)
    x = (rng.normal(size=(10, d))[labels] + rng.normal(size=(m, d)) * 2).astype(np.float32)
    start = time.perf_counter()
    probe = linear_probe_accuracy(x, labels, alphas=(1e-3,))
    ours_s = time.perf_counter() - start
    alpha = 1e-3 * float(((x - x.mean(0)) ** 2).sum())
    start = time.perf_counter()
    predicted = cross_val_predict(RidgeClassifier(alpha=alpha), x, labels, cv=LeaveOneOut())
    peer_s = time.perf_counter() - start
    print(
        f"  linear probe, exact leave-one-out, {m:,} × {d}: {ours_s * 1e3:.0f} ms (accuracy "
        f"{probe:.3f}); scikit-learn refitting {m:,} times {peer_s:.1f} s "
        f"(accuracy {np.mean(predicted == labels):.3f}): {peer_s / ours_s:.0f}× faster"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k points; UMAP on 5k only")
    args = parser.parse_args()
    bench_scatter([10_000] if args.quick else [10_000, 100_000, 200_000])
    bench_server_side(10_000 if args.quick else 200_000)
    if args.quick:
        bench_umap(5_000, None)
    else:
        bench_umap(20_000, 100_000)


if __name__ == "__main__":
    main()
