"""Pages of the site as a whole: a 404 and a 500 keep the site's layout and say why; the browser's
/favicon.ico finds the site's icon."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_a_404_page_has_the_site_layout_and_says_what_was_not_found(client, owner):
    client.force_login(owner)
    response = client.get("/w/no-such-workspace/")
    assert response.status_code == 404
    html = response.content.decode()
    assert 'class="topbar"' in html and 'class="brand"' in html  # the site's layout
    assert "<h1>Not found</h1>" in html and "only to its members" in html


def test_favicon_ico_leads_to_the_site_icon(client, collected):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].startswith("/static/favicon")
    icon = Client().get(response["Location"])  # served by WhiteNoise from what was collected
    assert icon.status_code == 200
    assert b"<svg" in b"".join(icon.streaming_content if icon.streaming else [icon.content])


def test_a_500_page_has_the_site_layout_and_no_details(rf):
    """What Django's handler500 renders (without the request's context)."""
    from django.views.defaults import server_error

    response = server_error(rf.get("/w/anything/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert 'class="topbar"' in html and 'class="brand"' in html
    assert "<h1>Something went wrong on the server</h1>" in html and "Traceback" not in html
