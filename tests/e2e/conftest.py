"""A real browser for the end-to-end tests: Debian's Chromium driven by Playwright."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.browser import ARGS, CHROMIUM
from tests.conftest import ROOT

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def browser_page(monkeypatch):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test and
    # of live_server's thread are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page
        browser.close()


def sign_in(page, live_server) -> None:
    """Sign in as the owner persona and land on the workspace page."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "owner")
    page.fill("input[name=password]", "owner-pass")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Lab")
