"""Pages of the site as a whole: a 404 keeps the site's layout and says why; the browser's
/favicon.ico finds the site's icon."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_a_404_page_has_the_site_layout_and_says_what_was_not_found(client, owner):
    client.force_login(owner)
    response = client.get("/w/no-such-workspace/")
    assert response.status_code == 404
    html = response.content.decode()
    assert 'class="topbar"' in html and 'class="brand"' in html  # the site's layout
    assert "<h1>Not found</h1>" in html and "only to its members" in html


def test_favicon_ico_leads_to_the_site_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/favicon.svg"
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    assert b"<svg" in b"".join(icon.streaming_content if icon.streaming else [icon.content])
