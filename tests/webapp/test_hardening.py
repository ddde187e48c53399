"""Hostile and malformed requests (issue 16's findings): each is refused with a 4xx and one
plain sentence, and costs neither memory nor stored bytes."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage

from tests.conftest import digits_npz_bytes
from tests.webapp.test_chunked_uploads import declare, put
from webapp.catalog import uploads
from webapp.catalog.models import Upload

pytestmark = pytest.mark.django_db


def test_json_nested_too_deeply_is_a_400_not_a_500(api, workspace):
    depth = 100_000
    body = "[" * depth + "]" * depth
    response = api.post("/api/v1/comparisons/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"] == "The JSON body is nested too deeply."


def test_a_chunk_over_the_cap_is_refused_from_its_content_length_before_it_is_read(api, workspace):
    content = digits_npz_bytes(50)
    uid = declare(api, content).json()["id"]
    claimed = uploads.MAX_CHUNK_SIZE + 1
    response = api.put(
        f"/api/v1/uploads/{uid}/",
        content[:1000],
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"bytes 0-{claimed - 1}/{len(content)}",
        CONTENT_LENGTH=str(claimed),
    )
    assert response.status_code == 413
    assert str(uploads.MAX_CHUNK_SIZE) in response.json()["detail"]
    assert Upload.objects.get(pk=uid).received == 0


def test_chunks_are_stored_from_a_spooled_body_and_the_server_says_the_cap(api, workspace):
    content = digits_npz_bytes(50)
    declared = declare(api, content).json()
    assert declared["max_chunk_size"] == uploads.MAX_CHUNK_SIZE
    response = put(api, declared["id"], content, 0, len(content) - 1)
    assert response.status_code == 200, response.content
    upload = Upload.objects.get(pk=declared["id"])
    assert upload.received == len(content)
    with default_storage.open(upload.chunk_key(0)) as f:
        assert f.read() == content
