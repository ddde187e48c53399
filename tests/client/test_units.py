"""Pieces of the client that need no server: argument parsing, bars, URLs, errors."""

from __future__ import annotations

import argparse
import io

import pytest
import requests
from replens_client import Client, ReplensError, RunFailed
from replens_client.cli import Bar, UploadBar, byte_count, families_arg, human_bytes
from replens_client.client import _error_from


def test_base_url_is_normalised():
    assert Client("http://h:8000/", "t").api == "http://h:8000/api/v1/"
    assert Client("http://h:8000/api/v1/", "t").api == "http://h:8000/api/v1/"
    assert Client("http://h:8000", "t").session.headers["Authorization"] == "Token t"
    with pytest.raises(ValueError, match="token"):
        Client("http://h:8000", "")


def test_from_env(monkeypatch):
    monkeypatch.setenv("REPLENS_URL", "http://example:9000")
    monkeypatch.setenv("REPLENS_TOKEN", "abc")
    client = Client.from_env(timeout=5)
    assert client.url == "http://example:9000" and client.timeout == 5


def test_byte_counts():
    assert byte_count("65536") == 65536
    assert byte_count("64K") == byte_count("64KiB") == 64 * 1024
    assert byte_count("8m") == 8 << 20 and byte_count("1G") == 1 << 30
    for bad in ("", "abc", "0", "-5"):
        with pytest.raises(argparse.ArgumentTypeError):
            byte_count(bad)


def test_families():
    assert families_arg(None) is None
    assert families_arg(["image/noise", "image/blur"]) == ["image/noise", "image/blur"]
    parsed = families_arg(["image/rotation=0,45,90", "image/noise=0,0.1"])
    assert parsed == {"image/rotation": [0, 45, 90], "image/noise": [0, 0.1]}
    assert isinstance(parsed["image/rotation"][1], int)


def test_bar_redraws_one_line_and_blanks_leftovers():
    stream = io.StringIO()
    bar = Bar(stream, fps=1e9)
    bar.draw("upload x", 0.5, "a long detail")
    bar.draw("upload x", 1.0, "short")
    bar.end()
    first, second = stream.getvalue().split("\r")[1:]
    assert first.startswith("upload x [###############---------------]  50% a long detail")
    assert second.rstrip(" \n") == "upload x [##############################] 100% short"
    assert len(second.rstrip("\n")) == len(first)  # the longer line is blanked
    assert stream.getvalue().endswith("\n")


def test_disabled_bar_writes_nothing():
    stream = io.StringIO()
    bar = Bar(stream, enabled=False)
    UploadBar(bar, "f")("send", 5, 10)
    bar.end()
    assert stream.getvalue() == ""


def test_human_bytes():
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 << 30) == "3.0 GiB"


def test_error_detail_and_fallbacks():
    def response(status, body, content_type="application/json"):
        r = requests.Response()
        r.status_code, r.reason, r._content = status, "Bad Gateway", body
        r.headers["Content-Type"] = content_type
        return r

    error = _error_from(response(400, b'{"detail": "layers: nope", "errors": {}}'))
    assert str(error) == "layers: nope (HTTP 400)" and error.data["errors"] == {}
    html = _error_from(response(502, b"<html>  upstream\n down </html>", "text/html"))
    assert str(html) == "Bad Gateway: <html> upstream down </html> (HTTP 502)"
    failed = RunFailed({"id": 4, "kind": "extract", "state": "failed", "error": "boom"})
    assert str(failed) == "run #4 (extract) failed: boom" and isinstance(failed, ReplensError)
