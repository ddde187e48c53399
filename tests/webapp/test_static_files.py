"""Static files as a server sends them after collectstatic (the web image and `make demo` run
it): names with a hash of their content, cached for a year, gzip-compressed for browsers that
accept it, and ES modules that import each other under the same hashed names the pages name."""

from __future__ import annotations

import gzip
import json
import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

HASHED = re.compile(r"\.[0-9a-f]{12}\.\w+$")


def test_modules_import_each_other_under_their_hashed_names(collected):
    paths = json.loads((collected / "staticfiles.json").read_text())["paths"]
    modules = [h for name, h in paths.items() if name.startswith("js/") and name.endswith(".js")]
    assert len(modules) > 20
    imports = 0
    for hashed in modules:
        text = (collected / hashed).read_text(encoding="utf-8")
        for target in re.findall(r'(?:from|import)\s*"(\.{1,2}/[^"]+)"', text):
            imports += 1
            assert HASHED.search(target), f"{hashed} imports {target} by its plain name"
            assert ((collected / hashed).parent / target).is_file(), f"{hashed}: {target}"
    assert imports > 20


def test_pages_name_hashed_files_sent_compressed_and_cached_for_a_year(collected, client, owner):
    client.force_login(owner)
    page = client.get("/").content.decode()
    names = re.findall(r'(?:src|href)="/static/([^"]+)"', page)
    assert names and all(HASHED.search(n) for n in names), names

    plotly = json.loads((collected / "staticfiles.json").read_text())["paths"][
        "plotly/plotly-cartesian.min.js"
    ]
    fresh = Client()  # WhiteNoise indexes STATIC_ROOT when its middleware starts
    response = fresh.get(f"/static/{plotly}", HTTP_ACCEPT_ENCODING="gzip, br")
    body = b"".join(response.streaming_content)
    assert response.status_code == 200 and response["Content-Encoding"] == "gzip"
    assert (
        "immutable" in response["Cache-Control"]
        and "max-age=315360000" in response["Cache-Control"]
    )
    original = (collected / plotly).read_bytes()
    assert gzip.decompress(body) == original and len(body) < len(original) / 2
    assert b"plotly.js (cartesian - minified)" in original[:200]


def test_before_collectstatic_pages_name_the_sources(settings, tmp_path, client, owner):
    settings.STATIC_ROOT = tmp_path / "not-collected"
    client.force_login(owner)
    response = client.get("/")
    assert response.status_code == 200
    assert 'href="/static/css/app.css"' in response.content.decode()
