"""The top bar's "API" opens the API's documentation as a page (Swagger UI, from this site's
own static files, asking nothing of another site), not a YAML download."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_the_api_link_opens_the_documentation(
    transactional_db, live_server, owner, workspace, browser_page
):
    page = browser_page
    outside = []
    page.on(
        "request",
        lambda r: outside.append(r.url) if not r.url.startswith(live_server.url) else None,
    )
    sign_in(page, live_server)
    page.click("header a:text-is('API')")
    expect(page).to_have_url(f"{live_server.url}/api/v1/docs/")
    # Swagger UI drew the schema: its title and the operations of a route.
    expect(page.locator("h1", has_text="RepLens API")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("/api/v1/comparisons/").first).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "api-docs.png"))
    assert [u for u in outside if not u.startswith(("data:", "blob:"))] == []
