"""A person uploads a dataset in a real browser over a connection that drops: the page sends
it through the API's resumable protocol, resumes where the server's bytes end (nothing sent
twice but the chunk that was lost), and the worker's check makes the dataset."""

from __future__ import annotations

import hashlib

import pytest
from playwright.sync_api import expect

from tests.conftest import check_uploads, digits_npz_bytes
from tests.e2e.conftest import sign_in
from webapp.catalog.models import Dataset, Upload

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CHUNK = 16 * 1024


def test_a_browser_upload_survives_a_dropped_connection(
    transactional_db, live_server, owner, workspace, browser_page
):
    content = digits_npz_bytes(300)
    assert len(content) > 4 * CHUNK
    page = browser_page
    sign_in(page, live_server)
    sent, dropped = [], []

    def network(route):
        request = route.request
        if request.method == "PUT":
            if len(sent) == 2 and not dropped:  # the third chunk is lost on the way
                dropped.append(request.headers["content-range"])
                return route.abort("connectionreset")
            sent.append(request.headers["content-range"])
        return route.continue_()

    page.route("**/api/v1/uploads/**", network)
    page.click("summary:has-text('Upload a dataset')")  # the form opens on demand
    form = page.locator("form[data-resumable-upload=dataset]")
    form.evaluate(f"f => f.dataset.chunkSize = '{CHUNK}'")
    form.locator("input[type=file]").set_input_files(
        {"name": "digits.npz", "mimeType": "application/octet-stream", "buffer": content}
    )
    form.locator("input[name=name]").fill("digits from the browser")
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"{live_server.url}/w/{workspace.slug}/#uploads", timeout=60_000)
    expect(page.locator("#uploads")).to_contain_text("digits.npz")

    chunks = -(-len(content) // CHUNK)
    assert len(sent) == chunks  # every chunk once: the lost one sent again, nothing else
    assert dropped == [sent[2]]
    upload = Upload.objects.get(workspace=workspace, filename="digits.npz")
    assert (upload.state, upload.received, upload.sha256) == (
        Upload.State.CHECKING,
        len(content),
        hashlib.sha256(content).hexdigest(),
    )
    (checked,) = check_uploads()
    assert checked.state == Upload.State.DONE, checked.error
    dataset = Dataset.objects.get(workspace=workspace, name="digits from the browser")
    assert dataset.n_samples == 300
