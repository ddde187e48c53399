"""The scatter widget (static/js/scatter/) on its own, in a real browser: a static page with
synthetic points in four known, well-separated clusters drives el.scatter's API, the toolbar and
the mouse, and checks what the canvas shows (its pixels) and which events the page hears.

The plot's mapping from data to screen is read from the widget itself: hover(i) rings point i at
its place on the screen, so two points far apart give the scale and offset."""

from __future__ import annotations

import functools
import http.server
import io
import json
import math
import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SMALL, BIG = 2_000, 200_000
# Cluster k fills the square CENTRES[k] ± HALF; point i is in cluster i % 4. The data are far from
# the origin: a polygon that forgot to undo the widget's internal centring would be ~(110, 60) off.
CENTRES = np.array([[100.0, 50.0], [120.0, 50.0], [100.0, 70.0], [120.0, 70.0]])
HALF = 2.0
NAMES = ["south-west", "south-east", "north-west", "north-east"]
EVENTS = [
    "scatter:ready",
    "scatter:hover",
    "scatter:select",
    "scatter:lasso",
    "scatter:view",
    "scatter:filter",
]

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>scatter {n}</title>
<link rel="stylesheet" href="app.css">
<!-- main: an 800 px canvas and the legend's 13rem room beside it -->
<style>main {{ width: 1008px; margin: 20px; padding: 0; }} .scatter {{ height: 600px; }}</style>
<script>
window.__events = [];
window.__wheels = [];
{events}.forEach((type) => document.addEventListener(type, (e) => {{
  window.__events.push({{ type, detail: e.detail, t: performance.now() }});
}}));
document.addEventListener("wheel", () => window.__wheels.push(performance.now()),
                          {{ capture: true }});
// Runs after the scatter module (deferred, as modules are) has set the element up, before its
// points have loaded.
document.addEventListener("DOMContentLoaded", () => {{
  const el = document.getElementById("plot");
  window.__apiEarly = typeof el.scatter === "object" && el.dataset.drawn === undefined;
  {early}
}});
</script>
<script type="module" src="js/scatter/index.js"></script>
</head><body><main>
<div class="scatter" id="plot" data-coords-url="{n}.coords.f32{slow}"
     data-labels-url="{n}.labels.u16" data-label-names="names"></div>
<script type="application/json" id="names">{names}</script>
</main></body></html>"""

EARLY = """
  el.scatter.colourBy({ kind: "categorical", codes: new Uint16Array(2000).map((_, i) => i % 2),
                        names: ["even", "odd"], title: "parity" });
  el.scatter.setFilter([1]);
  el.scatter.highlight([0, 4, 8]);
  el.scatter.setMode("box");
  el.scatter.setView({ x: 105, y: 55, zoom: 2 });
  window.__filterEarly = el.scatter.getFilter();
  window.__viewEarly = el.scatter.getView();
"""


def clusters(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 4).astype("<u2")
    coords = (CENTRES[labels] + rng.uniform(-HALF, HALF, size=(n, 2))).astype("<f4")
    return coords, labels


def other_coords(coords: np.ndarray) -> np.ndarray:
    """Other coordinates for the same points (for load(url)): mirrored, squashed and moved."""
    return np.stack([500 - coords[:, 0], 0.5 * coords[:, 1] - 20], axis=1).astype("<f4")


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files; "?slow" holds a response back so that the page's early calls come first."""

    def do_GET(self):  # noqa: N802
        if "?slow" in self.path:
            time.sleep(0.4)
        super().do_GET()

    def log_message(self, format, *args):  # noqa: A002
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    directory = tmp_path_factory.mktemp("scatter")
    shutil.copytree(ROOT / "static" / "js", directory / "js")
    shutil.copy(ROOT / "static" / "css" / "app.css", directory / "app.css")
    for n in (SMALL, BIG):
        coords, labels = clusters(n)
        (directory / f"{n}.coords.f32").write_bytes(coords.tobytes())
        (directory / f"{n}.labels.u16").write_bytes(labels.tobytes())
    (directory / "2000.other.f32").write_bytes(other_coords(clusters(SMALL)[0]).tobytes())
    (directory / "10.coords.f32").write_bytes(clusters(10)[0].tobytes())
    page = functools.partial(PAGE.format, events=json.dumps(EVENTS), names=json.dumps(NAMES))
    (directory / "small.html").write_text(page(n=SMALL, slow="", early=""))
    (directory / "early.html").write_text(page(n=SMALL, slow="?slow", early=EARLY))
    (directory / "big.html").write_text(page(n=BIG, slow="", early=""))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(directory))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# ---- helpers


def open_plot(page, url: str, n: int = SMALL):
    page.goto(url)
    plot = page.locator("#plot[data-drawn=true]")
    expect(plot).to_have_attribute("data-points", str(n), timeout=60_000)
    settle(page)
    return plot


def settle(page) -> None:
    """Wait for two animation frames, so the latest change is drawn, and for every plot's
    picture to be complete (a density picture of many points fills in over a few frames)."""
    page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    page.wait_for_function(
        "[...document.querySelectorAll('[data-coords-url]')]"
        ".every((el) => el.dataset.complete !== 'false')"
    )


def call(page, method: str, *args):
    return page.evaluate(
        "([m, args]) => document.getElementById('plot').scatter[m](...args)", [method, list(args)]
    )


def events(page, kind: str | None = None) -> list[dict]:
    got = page.evaluate("window.__events")
    return [e for e in got if kind is None or e["type"] == kind]


def clear_events(page) -> None:
    page.evaluate("window.__events.length = 0")


def ring_centre(page, i: int) -> tuple[float, float]:
    """Where on the page point i is: the centre of the ring hover(i) puts on it."""
    call(page, "hover", i)
    box = page.locator(".scatter-ring").bounding_box()
    call(page, "hover", -1)
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


class Mapping:
    """Data → page CSS px, read from the rings of the left- and rightmost points."""

    def __init__(self, page, coords: np.ndarray):
        a, b = int(np.argmin(coords[:, 0])), int(np.argmax(coords[:, 0]))
        (xa, ya), (xb, yb) = ring_centre(page, a), ring_centre(page, b)
        self.s = (xb - xa) / float(coords[b, 0] - coords[a, 0])
        self.ox = xa - self.s * float(coords[a, 0])
        self.oy = ya + self.s * float(coords[a, 1])
        # One scale for both axes, y up.
        assert yb == pytest.approx(self.oy - self.s * float(coords[b, 1]), abs=1.0)

    def screen(self, x: float, y: float) -> tuple[float, float]:
        return self.ox + self.s * float(x), self.oy - self.s * float(y)

    def data(self, sx: float, sy: float) -> tuple[float, float]:
        return (sx - self.ox) / self.s, (self.oy - sy) / self.s


def patch_rgb(page, mapping: Mapping, centre, half: int = 15) -> np.ndarray:
    """Mean colour of the (2·half+1)² screen pixels around a data point."""
    sx, sy = mapping.screen(*centre)
    clip = {"x": sx - half, "y": sy - half, "width": 2 * half + 1, "height": 2 * half + 1}
    png = page.screenshot(clip=clip)
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)
    return rgb.reshape(-1, 3).mean(0)


def is_grey(rgb: np.ndarray) -> bool:
    """The light grey of points out of focus (or white): no hue, bright."""
    return rgb.max() - rgb.min() < 16 and rgb.min() > 200


def is_coloured(rgb: np.ndarray) -> bool:
    return rgb.max() - rgb.min() > 30


def cluster_colours(page, mapping: Mapping) -> list[np.ndarray]:
    page.mouse.move(2, 2)  # no ring or tooltip over the points
    settle(page)
    return [patch_rgb(page, mapping, c) for c in CENTRES]


def inside_polygon(polygon: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over the points."""
    x, y = points[:, 0], points[:, 1]
    result = np.zeros(len(points), dtype=bool)
    j = len(polygon) - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(len(polygon)):
            (xi, yi), (xj, yj) = polygon[i], polygon[j]
            crosses = (yi > y) != (yj > y)
            result ^= crosses & (x < (xj - xi) * (y - yi) / (yj - yi) + xi)
            j = i
    return result


def drag(page, path, shift: bool = False) -> None:
    page.mouse.move(*path[0])
    if shift:
        page.keyboard.down("Shift")
    page.mouse.down()
    for p in path[1:]:
        page.mouse.move(*p)
    page.mouse.up()
    if shift:
        page.keyboard.up("Shift")


# ---- tests


def test_calls_before_the_data_load_are_applied_once_they_have(browser_page, site):
    page = browser_page
    plot = open_plot(page, f"{site}/early.html")
    assert page.evaluate("window.__apiEarly") is True  # el.scatter existed before any point did
    assert page.evaluate("window.__filterEarly") == []
    assert page.evaluate("window.__viewEarly") is None
    expect(plot).to_have_attribute("data-highlighted", "3")
    expect(plot).to_have_attribute("data-mode", "box")
    expect(page.locator(".scatter-toolbar button[aria-pressed=true]")).to_have_attribute(
        "data-mode", "box"
    )
    view = call(page, "getView")
    assert view == pytest.approx({"x": 105, "y": 55, "zoom": 2}, abs=1e-6)
    expect(page.locator(".scatter-legend-title")).to_have_text("parity")
    expect(page.locator(".scatter-legend-item")).to_have_text(["even", "odd"])
    assert call(page, "getFilter") == [1]  # applied after colourBy, which clears the filter
    assert events(page, "scatter:filter") == []
    ready = events(page, "scatter:ready")
    assert [e["detail"] for e in ready] == [{"n": SMALL}]
    assert events(page, "scatter:view") == []  # programmatic: no event


def test_toolbar_and_box_selection_in_data_coordinates(browser_page, site):
    page = browser_page
    plot = open_plot(page, f"{site}/small.html")
    coords, _ = clusters(SMALL)
    buttons = page.locator(".scatter-toolbar button")
    expect(buttons).to_have_count(3)
    assert [buttons.nth(k).get_attribute("aria-label") for k in range(3)] == ["Pan", "Lasso", "Box"]
    assert all(buttons.nth(k).get_attribute("title") for k in range(3))
    expect(plot).to_have_attribute("data-mode", "pan")
    expect(buttons.nth(0)).to_have_attribute("aria-pressed", "true")

    mapping = Mapping(page, coords)
    assert mapping.s > 10  # the 24 × 24 data units fill most of the 600 px
    page.locator(".scatter-toolbar button[data-mode=box]").click()
    expect(plot).to_have_attribute("data-mode", "box")
    expect(buttons.nth(2)).to_have_attribute("aria-pressed", "true")
    expect(buttons.nth(0)).to_have_attribute("aria-pressed", "false")
    view = call(page, "getView")
    clear_events(page)

    # A box around the south-east cluster (120, 50) ± 2, from (117, 53) to (123, 47).
    start, end = mapping.screen(117, 53), mapping.screen(123, 47)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=12)
    outline = page.locator(".scatter-lasso path")
    assert outline.get_attribute("d").startswith("M")  # drawn while dragging
    page.mouse.up()
    assert outline.get_attribute("d") == ""
    lassos = events(page, "scatter:lasso")
    assert len(lassos) == 1 and lassos[0]["detail"]["mode"] == "box"
    polygon = np.array(lassos[0]["detail"]["polygon"])
    assert polygon.shape == (4, 2)
    tolerance = 1.5 / mapping.s  # about a pixel
    assert polygon[:, 0].min() == pytest.approx(117, abs=tolerance)
    assert polygon[:, 0].max() == pytest.approx(123, abs=tolerance)
    assert polygon[:, 1].min() == pytest.approx(47, abs=tolerance)
    assert polygon[:, 1].max() == pytest.approx(53, abs=tolerance)
    chosen = inside_polygon(polygon, coords.astype(float))
    assert np.array_equal(np.flatnonzero(chosen), np.arange(1, SMALL, 4))  # cluster 1, all and only
    assert call(page, "getView") == pytest.approx(view)  # a box does not pan
    assert events(page, "scatter:select") == []

    # A press without movement still selects the point under it.
    i = 5  # cluster 1
    sx, sy = ring_centre(page, i)
    page.mouse.move(sx, sy)
    page.mouse.down()
    page.mouse.up()
    selected = events(page, "scatter:select")
    assert len(selected) == 1
    index = selected[0]["detail"]["index"]
    expect(plot).to_have_attribute("data-selected", str(index))
    near = np.hypot(*(np.array(mapping.screen(*coords[index])) - (sx, sy)))
    assert near <= 2.0
    assert len(events(page, "scatter:lasso")) == 1


def test_lasso_shift_lasso_and_thinning(browser_page, site):
    page = browser_page
    open_plot(page, f"{site}/small.html")
    coords, _ = clusters(SMALL)
    mapping = Mapping(page, coords)
    view = call(page, "getView")
    call(page, "setMode", "lasso")
    clear_events(page)

    def circle(centre, radius, steps):
        return [
            mapping.screen(centre[0] + radius * math.cos(t), centre[1] + radius * math.sin(t))
            for t in np.linspace(0, 2 * math.pi, steps)
        ]

    # Around the north-west cluster in 1-2 px steps: thinned to vertices >= 3 px apart.
    path = circle(CENTRES[2], 3.6, 300)
    drag(page, path)
    lassos = events(page, "scatter:lasso")
    assert len(lassos) == 1 and lassos[0]["detail"]["mode"] == "lasso"
    polygon = np.array(lassos[0]["detail"]["polygon"])
    assert 3 <= len(polygon) < len(path)
    screen = np.array([mapping.screen(*p) for p in polygon])
    gaps = np.hypot(*np.diff(screen, axis=0).T)
    assert gaps.min() >= 2.9
    chosen = inside_polygon(polygon, coords.astype(float))
    assert np.array_equal(np.flatnonzero(chosen), np.arange(2, SMALL, 4))
    assert call(page, "getView") == pytest.approx(view)

    # Pan mode with Shift held lassos too (and does not pan).
    call(page, "setMode", "pan")
    clear_events(page)
    drag(page, circle(CENTRES[3], 3.6, 120), shift=True)
    lassos = events(page, "scatter:lasso")
    assert len(lassos) == 1 and lassos[0]["detail"]["mode"] == "lasso"
    chosen = inside_polygon(np.array(lassos[0]["detail"]["polygon"]), coords.astype(float))
    assert np.array_equal(np.flatnonzero(chosen), np.arange(3, SMALL, 4))
    assert call(page, "getView") == pytest.approx(view)
    assert events(page, "scatter:view") == []

    # A long spiral (about 1,200 vertices 4 px apart) is capped at 500.
    call(page, "setMode", "lasso")
    clear_events(page)
    cx, cy = mapping.screen(110, 60)
    spiral, r, angle = [], 10.0, 0.0
    while r < 250:
        spiral.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
        angle += 4 / r
        r += 0.2
    drag(page, spiral)
    lassos = events(page, "scatter:lasso")
    assert len(lassos) == 1
    assert 100 <= len(lassos[0]["detail"]["polygon"]) <= 500

    # Dragging less than 3 px in lasso mode is a click, not a lasso.
    clear_events(page)
    drag(page, [(cx, cy), (cx + 1, cy + 1)])
    assert events(page, "scatter:lasso") == []
    assert [e["detail"]["index"] for e in events(page, "scatter:select")] == [-1]  # nothing there


def test_continuous_colouring_and_range_filter(browser_page, site):
    page = browser_page
    plot = open_plot(page, f"{site}/small.html")
    coords, _ = clusters(SMALL)
    mapping = Mapping(page, coords)
    categorical = cluster_colours(page, mapping)
    assert all(is_coloured(c) for c in categorical)

    # Colour by each point's x (fetched again, so the values are exactly the served ones).
    page.evaluate(
        """async () => {
          const xy = new Float32Array(await (await fetch("2000.coords.f32")).arrayBuffer());
          const values = new Float32Array(xy.length / 2).map((_, i) => xy[2 * i]);
          values[0] = NaN;  // missing
          const spec = {kind: "continuous", values, title: "x"};
          document.getElementById("plot").scatter.colourBy(spec);
        }"""
    )
    legend = page.locator(".scatter-legend")
    expect(legend.locator(".scatter-legend-title")).to_have_text("x")
    expect(legend.locator(".scatter-bar")).to_be_visible()
    expect(legend.locator(".scatter-legend-item")).to_have_count(0)
    ends = legend.locator(".scatter-bar-ends span").all_text_contents()
    expect(legend.locator(".scatter-scale")).to_contain_text(": min–max; not clipped")
    # The legend has its own room beside the plot: it covers no point.
    canvas, room = page.locator(".scatter-canvas").bounding_box(), legend.bounding_box()
    assert canvas["x"] + canvas["width"] <= room["x"]
    finite = coords[1:, 0]
    assert float(ends[0]) == pytest.approx(float(finite.min()), abs=0.01)
    assert float(ends[1]) == pytest.approx(float(finite.max()), abs=0.01)
    low, high = legend.locator("input[name=from]"), legend.locator("input[name=to]")
    expect(low).to_have_value("")
    assert call(page, "getFilter") is None

    # Viridis: the low-x clusters are purple-blue, the high-x ones yellow-green.
    colours = cluster_colours(page, mapping)
    for k in (0, 2):
        assert colours[k][2] > colours[k][1] and is_coloured(colours[k])
    for k in (1, 3):
        assert colours[k][1] > colours[k][2] + 40

    # Tooltip of a hovered point says its value.
    i = 6
    page.mouse.move(*ring_centre(page, i))
    expect(plot).to_have_attribute("data-hovered", str(i))
    expect(page.locator(".scatter-tip")).to_contain_text(f"x: {float(coords[i, 0]):.4g}")

    clear_events(page)
    call(page, "setFilter", [95, 105])
    assert call(page, "getFilter") == [95, 105]
    expect(low).to_have_value("95")
    expect(high).to_have_value("105")
    colours = cluster_colours(page, mapping)
    assert is_coloured(colours[0]) and is_coloured(colours[2])
    assert is_grey(colours[1]) and is_grey(colours[3])
    assert events(page, "scatter:filter") == []  # programmatic: no event
    expect(legend).to_have_class(re.compile(r"\bfiltering\b"))

    # The user widens the range to take in everything: the page hears of it.
    high.fill("125")
    high.press("Tab")
    filters = events(page, "scatter:filter")
    assert filters and filters[-1]["detail"]["filter"] == [95, 125]
    assert call(page, "getFilter") == [95, 125]
    colours = cluster_colours(page, mapping)
    assert all(is_coloured(c) for c in colours)

    # An open end (null) and a bound beyond all data: nothing in focus but NaN is out too.
    call(page, "setFilter", [None, 90])
    assert call(page, "getFilter") == [-math.inf, 90]
    assert all(is_grey(c) for c in cluster_colours(page, mapping))

    # "show all" clears the filter, as the user's act.
    clear_events(page)
    legend.locator(".scatter-legend-all").click()
    assert [e["detail"]["filter"] for e in events(page, "scatter:filter")] == [None]
    assert call(page, "getFilter") is None
    expect(low).to_have_value("")

    # An explicit domain: values outside it go to the ends of the map.
    page.evaluate(
        """() => {
          const values = new Float32Array(2000).map((_, i) => i % 4 === 1 ? 1000 : 0);
          document.getElementById("plot").scatter.colourBy(
            {kind: "continuous", values, title: "d", domain: [0, 10]});
        }"""
    )
    # The end the values pass is marked, and the legend says how many are drawn there.
    assert legend.locator(".scatter-bar-ends span").all_text_contents() == ["0", "≥ 10"]
    expect(legend.locator(".scatter-scale")).to_have_text(
        "0 to 10: fixed range; clipped: 0 values below, 500 values above, drawn in the end colours"
    )
    colours = cluster_colours(page, mapping)
    assert colours[1][1] > colours[1][2] + 40  # 1000 → the top of the map (yellow)
    assert colours[0][2] > colours[0][1]  # 0 → the bottom (purple)


def test_categorical_colouring_and_legend_filter(browser_page, site):
    page = browser_page
    open_plot(page, f"{site}/small.html")
    coords, labels = clusters(SMALL)
    mapping = Mapping(page, coords)
    legend = page.locator(".scatter-legend")
    expect(legend.locator(".scatter-legend-item")).to_have_text(NAMES)  # the initial colouring

    page.evaluate(
        """() => {
          const codes = new Uint16Array(2000).map((_, i) => 3 - (i % 4));
          codes[3] = 65535;
          document.getElementById("plot").scatter.colourBy(
            {kind: "categorical", codes, names: ["a", "b", "c", "d"], title: "cluster"});
        }"""
    )
    expect(legend.locator(".scatter-legend-title")).to_have_text("cluster")
    expect(legend.locator(".scatter-legend-item")).to_have_text(["a", "b", "c", "d"])
    assert call(page, "getFilter") == []

    clear_events(page)
    legend.locator(".scatter-legend-item", has_text="b").click()  # code 1 = cluster 2
    assert [e["detail"]["filter"] for e in events(page, "scatter:filter")] == [[1]]
    assert call(page, "getFilter") == [1]
    expect(legend.locator(".scatter-legend-item[aria-pressed=true]")).to_have_text(["b"])
    colours = cluster_colours(page, mapping)
    assert is_coloured(colours[2])
    assert all(is_grey(colours[k]) for k in (0, 1, 3))

    clear_events(page)
    call(page, "setFilter", [0, 2])  # clusters 3 and 1
    assert call(page, "getFilter") == [0, 2]
    colours = cluster_colours(page, mapping)
    assert is_coloured(colours[1]) and is_coloured(colours[3])
    assert is_grey(colours[0]) and is_grey(colours[2])
    call(page, "setFilter", [])
    assert all(is_coloured(c) for c in cluster_colours(page, mapping))
    assert events(page, "scatter:filter") == []


def test_highlight_and_focus(browser_page, site):
    page = browser_page
    plot = open_plot(page, f"{site}/small.html")
    coords, _ = clusters(SMALL)
    mapping = Mapping(page, coords)

    page.evaluate(  # cluster 0, as a typed array
        "() => document.getElementById('plot').scatter.highlight("
        "new Uint32Array(500).map((_, k) => 4 * k))"
    )
    expect(plot).to_have_attribute("data-highlighted", "500")
    colours = cluster_colours(page, mapping)
    assert is_coloured(colours[0])
    assert all(is_grey(colours[k]) for k in (1, 2, 3))

    # In focus = passes the filter AND is highlighted: filtering to cluster 1 leaves nothing.
    call(page, "setFilter", [1])
    assert all(is_grey(c) for c in cluster_colours(page, mapping))
    call(page, "highlight", None)
    expect(plot).not_to_have_attribute("data-highlighted", re.compile(".*"))
    colours = cluster_colours(page, mapping)
    assert is_coloured(colours[1])
    assert all(is_grey(colours[k]) for k in (0, 2, 3))
    call(page, "setFilter", [])

    # Duplicates and out-of-range indices are not counted; [] highlights nothing.
    call(page, "highlight", [1, 1, -3, 10**7, 2.5])
    expect(plot).to_have_attribute("data-highlighted", "1")
    call(page, "highlight", [])
    expect(plot).to_have_attribute("data-highlighted", "0")
    assert all(is_grey(c) for c in cluster_colours(page, mapping))

    # Hovering prefers a point in focus over nearer ones out of focus: with the cursor 5 px from the
    # point nearest cluster 0's centre, where others are nearer, it is hovered while alone in focus.
    first = coords[0::4] - CENTRES[0]
    i = 4 * int(np.argmin(np.hypot(first[:, 0], first[:, 1])))
    sx, sy = ring_centre(page, i)
    distances = np.hypot(*(np.array([mapping.screen(*p) for p in coords]) - (sx + 5, sy)).T)
    assert distances.min() < distances[i] - 0.5
    call(page, "highlight", [i])
    page.mouse.move(sx + 5, sy)
    expect(plot).to_have_attribute("data-hovered", str(i))
    call(page, "highlight", None)
    page.mouse.move(2, 2)
    page.mouse.move(sx + 5, sy)
    expect(plot).to_have_attribute("data-hovered", str(int(np.argmin(distances))))


def test_linked_hover_and_user_hover_events(browser_page, site):
    page = browser_page
    plot = open_plot(page, f"{site}/small.html")
    coords, _ = clusters(SMALL)
    mapping = Mapping(page, coords)
    clear_events(page)

    i = 123
    call(page, "hover", i)
    expect(plot).to_have_attribute("data-linked-hover", str(i))
    ring = page.locator(".scatter-ring")
    expect(ring).to_be_visible()
    box = ring.bounding_box()
    expected = mapping.screen(*coords[i])
    assert box["x"] + box["width"] / 2 == pytest.approx(expected[0], abs=1.0)
    assert box["y"] + box["height"] / 2 == pytest.approx(expected[1], abs=1.0)
    expect(page.locator(".scatter-tip")).to_be_hidden()
    assert plot.get_attribute("data-hovered") is None
    call(page, "hover", -1)
    expect(plot).not_to_have_attribute("data-linked-hover", re.compile(".*"))
    expect(ring).to_be_hidden()
    assert events(page, "scatter:hover") == []  # linked hovers are never echoed

    # The user's own hover is announced, and its end too.
    sx, sy = mapping.screen(*coords[i])
    page.mouse.move(sx, sy)
    expect(plot).to_have_attribute("data-hovered", re.compile(r"\d+"))
    expect(page.locator(".scatter-tip")).to_be_visible()
    hovered = int(plot.get_attribute("data-hovered"))
    page.mouse.move(*mapping.screen(110, 60))  # the empty middle
    expect(plot).not_to_have_attribute("data-hovered", re.compile(".*"))
    indices = [e["detail"]["index"] for e in events(page, "scatter:hover")]
    assert indices[0] == hovered and indices[-1] == -1
    assert events(page, "scatter:select") == []


def test_view_round_trip_and_view_events(browser_page, site):
    page = browser_page
    plot = open_plot(page, f"{site}/small.html")
    coords, _ = clusters(SMALL)
    mapping = Mapping(page, coords)
    fitted = call(page, "getView")
    assert fitted["zoom"] == pytest.approx(1)
    assert fitted["y"] == pytest.approx(60, abs=0.05)  # the data's middle, as served
    canvas = page.locator(".scatter-canvas").bounding_box()
    middle = (canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2)
    assert mapping.data(*middle) == pytest.approx((fitted["x"], fitted["y"]), abs=0.05)
    clear_events(page)

    call(page, "setView", {"x": 105, "y": 55, "zoom": 2.5})
    assert call(page, "getView") == pytest.approx({"x": 105, "y": 55, "zoom": 2.5})
    # Point i is where the view says: 2.5 × the fitted scale away from (105, 55) at the middle.
    i = 17
    sx, sy = ring_centre(page, i)
    assert sx == pytest.approx(middle[0] + 2.5 * mapping.s * (coords[i, 0] - 105), abs=1.0)
    assert sy == pytest.approx(middle[1] - 2.5 * mapping.s * (coords[i, 1] - 55), abs=1.0)
    call(page, "resetView")
    assert call(page, "getView") == pytest.approx(fitted)
    with pytest.raises(Exception, match="setView"):
        call(page, "setView", {"x": 1, "y": 2, "zoom": 0})
    page.wait_for_timeout(400)
    assert events(page, "scatter:view") == []  # programmatic: no events

    # A wheel zoom: one event, 250 ms after the last wheel turn, saying the new view.
    page.mouse.move(*middle)
    for _ in range(3):
        page.mouse.wheel(0, -120)
    page.wait_for_function("window.__events.some((e) => e.type === 'scatter:view')")
    page.wait_for_timeout(400)
    views = events(page, "scatter:view")
    assert len(views) == 1
    now = call(page, "getView")
    assert views[0]["detail"] == pytest.approx(now)
    assert now["zoom"] > 1.2
    last_wheel = max(page.evaluate("window.__wheels"))
    assert views[0]["t"] - last_wheel >= 240

    # A pan: the centre moves by the drag over the scale.
    clear_events(page)
    before = call(page, "getView")
    drag(page, [middle, (middle[0] + 40, middle[1] + 30), (middle[0] + 80, middle[1] + 60)])
    page.wait_for_function("window.__events.some((e) => e.type === 'scatter:view')")
    after = events(page, "scatter:view")[-1]["detail"]
    scale = mapping.s * before["zoom"]
    assert after["x"] == pytest.approx(before["x"] - 80 / scale, abs=0.02)
    assert after["y"] == pytest.approx(before["y"] + 60 / scale, abs=0.02)
    assert events(page, "scatter:select") == []

    # A double-click fits the points again.
    clear_events(page)
    page.mouse.dblclick(*middle)
    page.wait_for_function("window.__events.some((e) => e.type === 'scatter:view')")
    assert events(page, "scatter:view")[-1]["detail"] == pytest.approx(fitted)
    expect(plot).to_have_attribute("data-drawn", "true")


def test_two_hundred_thousand_points_stay_responsive(browser_page, site):
    page = browser_page
    plot = open_plot(page, f"{site}/big.html", n=BIG)
    assert [e["detail"] for e in events(page, "scatter:ready")] == [{"n": BIG}]
    coords, _ = clusters(BIG)
    mapping = Mapping(page, coords)

    # Hovering: a few hundred moves over the dense clusters, each finding the point under the
    # cursor. (How long they take, and whether any blocks the page, is measured by
    # tests/benchmarks/bench_explorer.py: timings depend on the machine's load, not on the code.)
    x0, y0 = mapping.screen(98.5, 51)
    x1, y1 = mapping.screen(121.5, 49)
    page.mouse.move(x0, y0)  # the first hover builds the hover grid if the idle time has not yet
    expect(plot).to_have_attribute("data-hovered", re.compile(r"\d+"))
    for k in range(300):
        t = k / 299
        page.mouse.move(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t + 3 * math.sin(k))
    expect(plot).to_have_attribute("data-hovered", re.compile(r"\d+"))
    hovers = events(page, "scatter:hover")
    assert len(hovers) > 10

    # Recolouring, filtering and highlighting all 200,000 points.
    page.evaluate(
        """async () => {
          const el = document.getElementById("plot");
          const xy = new Float32Array(await (await fetch("200000.coords.f32")).arrayBuffer());
          const values = new Float32Array(xy.length / 2).map((_, i) => xy[2 * i + 1]);
          el.scatter.colourBy({kind: "continuous", values, title: "y"});
          el.scatter.setFilter([45, 55]);
          el.scatter.highlight(new Uint32Array(50000).map((_, k) => 4 * k));
          await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
        }"""
    )
    expect(plot).to_have_attribute("data-highlighted", "50000")
    colours = cluster_colours(page, mapping)
    # y in [45, 55] and highlighted (cluster 0): only the south-west cluster is in colour.
    assert is_coloured(colours[0])
    assert all(is_grey(colours[k]) for k in (1, 2, 3))
    assert plot.get_attribute("data-error") is None
    # So many points are drawn as a density (the mean colour of a pixel's points).
    assert plot.get_attribute("data-rendering") == "density"


def test_load_other_coordinates_for_the_same_points(browser_page, site):
    page = browser_page
    plot = open_plot(page, f"{site}/small.html")
    coords, _ = clusters(SMALL)
    call(page, "highlight", list(range(0, SMALL, 4)))  # cluster 0
    expect(plot).to_have_attribute("data-highlighted", "500")
    clear_events(page)

    load = (
        "(url) => document.getElementById('plot').scatter.load(url)"
        ".then(() => 'ok', (e) => e.message)"
    )
    assert page.evaluate(load, "2000.other.f32") == "ok"
    other = other_coords(coords)
    mapping = Mapping(page, other)  # rings where the new coordinates say, one scale, y up
    assert call(page, "getView")["zoom"] == pytest.approx(1)  # not moved: fitted again
    assert call(page, "getView")["y"] == pytest.approx(
        (other[:, 1].min() + other[:, 1].max()) / 2, abs=0.05
    )
    expect(plot).to_have_attribute("data-highlighted", "500")
    centres = np.stack([500 - CENTRES[:, 0], 0.5 * CENTRES[:, 1] - 20], axis=1)
    page.mouse.move(2, 2)
    settle(page)
    colours = [patch_rgb(page, mapping, c, half=8) for c in centres]
    assert is_coloured(colours[0])
    assert all(is_grey(colours[k]) for k in (1, 2, 3))
    assert events(page, "scatter:view") == []

    # Another number of points: refused, the coordinates shown stay.
    view = call(page, "getView")
    assert "10 points" in page.evaluate(load, "10.coords.f32")
    assert call(page, "getView") == pytest.approx(view)

    # A moved view keeps its centre in data coordinates across a load.
    call(page, "setView", {"x": 390, "y": 10, "zoom": 2})
    assert page.evaluate(load, "2000.coords.f32") == "ok"
    moved = call(page, "getView")
    assert (moved["x"], moved["y"]) == pytest.approx((390, 10))
