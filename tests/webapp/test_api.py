"""The REST API: authentication, schema, isolation between workspaces, run requests, results."""

from __future__ import annotations

import hashlib
import io
import json
import math

import numpy as np
import pytest
import yaml
from rest_framework.test import APIClient

from tests.conftest import (
    api_client_for,
    checkpoint_from,
    run_with_dependencies,
    torchscript_mlp_bytes,
)
from tests.webapp.builders import MLP_DEFAULT_LAYERS, labelled_npz
from webapp.catalog.models import ActivationSet, Upload, Workspace
from webapp.runs.models import Run
from workers.tasks import execute_run

pytestmark = pytest.mark.django_db


def comparison_request(a, b, dataset, **extra) -> dict:
    return {
        "checkpoint_a": a.pk,
        "checkpoint_b": b.pk,
        "dataset": dataset.pk,
        "n_permutations": 3,
        **extra,
    }


@pytest.fixture
def outsider_api(outsider):
    return api_client_for(outsider)


@pytest.fixture
def finished_comparison(api, ckpt_a, ckpt_b, digits):
    response = api.post(
        "/api/v1/comparisons/", comparison_request(ckpt_a, ckpt_b, digits), format="json"
    )
    assert response.status_code == 201, response.content
    return run_with_dependencies(Run.objects.get(pk=response.json()["id"]))


# --------------------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    "method,url",
    [
        ("get", "/api/v1/workspaces/"),
        ("get", "/api/v1/datasets/"),
        ("get", "/api/v1/checkpoints/"),
        ("get", "/api/v1/runs/"),
        ("get", "/api/v1/activations/"),
        ("post", "/api/v1/datasets/"),
        ("post", "/api/v1/extractions/"),
        ("post", "/api/v1/comparisons/"),
    ],
)
def test_unauthenticated_requests_are_refused(method, url):
    response = getattr(APIClient(), method)(url)
    assert response.status_code in (401, 403)
    bad_token = APIClient()
    bad_token.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert getattr(bad_token, method)(url).status_code in (401, 403)


def test_unauthenticated_cannot_read_a_comparison(finished_comparison):
    response = APIClient().get(f"/api/v1/comparisons/{finished_comparison.pk}/")
    assert response.status_code in (401, 403)
    assert "value" not in response.json()


def test_the_api_docs_page_reads_the_schema_with_scripts_of_this_site(client, owner):
    client.force_login(owner)
    page = client.get("/api/v1/docs/").content.decode()
    assert "/api/v1/schema/" in page and "swagger-ui-bundle" in page
    assert "https://" not in page  # no CDN: every script and style from this site


def test_openapi_schema(api):
    response = api.get("/api/v1/schema/")
    assert response.status_code == 200
    content = b"".join(response.streaming_content) if response.streaming else response.content
    schema = yaml.safe_load(content)
    assert str(schema["openapi"]).startswith("3.")
    paths = schema["paths"]
    for path in (
        "/api/v1/comparisons/",
        "/api/v1/comparisons/{id}/",
        "/api/v1/datasets/",
        "/api/v1/checkpoints/",
        "/api/v1/extractions/",
        "/api/v1/runs/{id}/cancel/",
    ):
        assert path in paths, path
    # A one-shot upload is 202 (a worker checks it) or 200 (the same bytes are already here).
    for path in ("/api/v1/datasets/", "/api/v1/checkpoints/"):
        upload = paths[path]["post"]
        assert "multipart/form-data" in upload["requestBody"]["content"]
        assert {"200", "202", "400"} <= set(upload["responses"]), path
    # Chunked: declared (201, or 200 when nothing is left to send), then completed (202
    # while checked, 200 once checked).
    assert {"200", "201", "400"} <= set(paths["/api/v1/uploads/"]["post"]["responses"])
    complete = paths["/api/v1/uploads/{id}/complete/"]["post"]
    assert {"200", "202", "400"} <= set(complete["responses"])

    as_json = api.get("/api/v1/schema/?format=json")
    assert as_json.status_code == 200
    assert "/api/v1/comparisons/" in json.loads(as_json.content)["paths"]


# --------------------------------------------------------------------------- isolation


def test_outsider_gets_404_for_everything_of_the_owner(
    outsider_api, finished_comparison, ckpt_a, digits
):
    extraction = finished_comparison.depends_on.first()
    activation = ActivationSet.objects.first()
    for url in (
        f"/api/v1/datasets/{digits.pk}/",
        f"/api/v1/checkpoints/{ckpt_a.pk}/",
        f"/api/v1/runs/{extraction.pk}/",
        f"/api/v1/runs/{finished_comparison.pk}/",
        f"/api/v1/comparisons/{finished_comparison.pk}/",
        f"/api/v1/activations/{activation.pk}/",
        f"/api/v1/activations/{activation.pk}/values/",
        "/api/v1/workspaces/lab/",
    ):
        response = outsider_api.get(url)
        assert response.status_code == 404, url
        assert "digits" not in response.content.decode().lower(), url


def test_activation_values_download_as_npy_whose_sha256_is_the_sets(
    api, member, finished_comparison, ckpt_a, digits
):
    activation = ActivationSet.objects.filter(checkpoint=ckpt_a, layer="block1").get()
    described = api.get(f"/api/v1/activations/{activation.pk}/").json()

    for client in (api, api_client_for(member)):  # the owner and another member alike
        response = client.get(f"/api/v1/activations/{activation.pk}/values/")
        assert response.status_code == 200
        assert response["Content-Disposition"].endswith(f'"activations-{activation.pk}.npy"')
        content = b"".join(response.streaming_content)
        assert hashlib.sha256(content).hexdigest() == described["sha256"]
        values = np.load(io.BytesIO(content), allow_pickle=False)
        assert values.shape == (described["n"], described["d"]) == (digits.n_samples, activation.d)
        assert values.dtype == np.dtype("<f4") and described["dtype"] == "float32"
        assert values.flags.c_contiguous and np.isfinite(values).all()
        np.testing.assert_array_equal(values, activation.load())

    listed = api.get(f"/api/v1/activations/?checkpoint={ckpt_a.pk}&dataset={digits.pk}").json()
    assert {a["layer"] for a in listed["results"]} == set(MLP_DEFAULT_LAYERS)
    missing = api.get(f"/api/v1/activations/{activation.pk + 1000}/values/")
    assert missing.status_code == 404 and missing.json()["detail"]


def test_outsider_lists_show_nothing_of_the_owner(outsider_api, finished_comparison):
    for url in (
        "/api/v1/datasets/",
        "/api/v1/checkpoints/",
        "/api/v1/runs/",
        "/api/v1/activations/",
        "/api/v1/datasets/?workspace=lab",
        "/api/v1/runs/?workspace=lab",
    ):
        response = outsider_api.get(url)
        assert response.status_code == 200, url
        assert response.json()["count"] == 0, url
    workspaces = outsider_api.get("/api/v1/workspaces/").json()["results"]
    assert [w["slug"] for w in workspaces] == ["elsewhere"]


def test_owner_lists_show_their_objects(api, finished_comparison):
    assert api.get("/api/v1/datasets/").json()["count"] == 1
    assert api.get("/api/v1/checkpoints/").json()["count"] == 2
    assert api.get("/api/v1/runs/").json()["count"] == 3
    assert api.get("/api/v1/runs/?kind=compare").json()["count"] == 1
    assert api.get("/api/v1/activations/").json()["count"] == 8  # 2 checkpoints × 4 layers


def test_outsider_cannot_upload_into_the_owners_workspace(outsider_api, workspace):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = outsider_api.post(
        "/api/v1/datasets/",
        {
            "workspace": "lab",
            "file": SimpleUploadedFile("a.npz", labelled_npz()),
        },
        format="multipart",
    )
    assert response.status_code == 404
    assert workspace.datasets.count() == 0
    from tests.conftest import torchscript_mlp_bytes

    response = outsider_api.post(
        "/api/v1/checkpoints/",
        {
            "workspace": "lab",
            "file": SimpleUploadedFile("m.pt", torchscript_mlp_bytes(0)),
        },
        format="multipart",
    )
    assert response.status_code == 404
    assert workspace.checkpoints.count() == 0
    assert not Upload.objects.exists()  # nothing stored for a worker to check either


def test_outsider_cannot_request_or_cancel_runs_on_the_owners_objects(
    outsider_api, ckpt_a, ckpt_b, digits, api
):
    response = outsider_api.post(
        "/api/v1/extractions/", {"checkpoint": ckpt_a.pk, "dataset": digits.pk}, format="json"
    )
    assert response.status_code == 404
    response = outsider_api.post(
        "/api/v1/comparisons/", comparison_request(ckpt_a, ckpt_b, digits), format="json"
    )
    assert response.status_code == 404
    assert Run.objects.count() == 0

    run_id = api.post(
        "/api/v1/extractions/", {"checkpoint": ckpt_a.pk, "dataset": digits.pk}, format="json"
    ).json()["id"]
    assert outsider_api.post(f"/api/v1/runs/{run_id}/cancel/").status_code == 404
    assert Run.objects.get(pk=run_id).state == Run.State.QUEUED


def test_viewer_cannot_cancel_through_the_api(django_user_model, workspace, api, ckpt_a, digits):
    viewer = django_user_model.objects.create_user("viewer", password="viewer-pass")
    workspace.memberships.create(user=viewer, role="viewer")
    run_id = api.post(
        "/api/v1/extractions/", {"checkpoint": ckpt_a.pk, "dataset": digits.pk}, format="json"
    ).json()["id"]
    response = api_client_for(viewer).post(f"/api/v1/runs/{run_id}/cancel/")
    assert Run.objects.get(pk=run_id).state == Run.State.QUEUED
    assert response.status_code == 404


# --------------------------------------------------------------------------- run requests


def test_extraction_request_is_idempotent(api, ckpt_a, digits):
    body = {"checkpoint": ckpt_a.pk, "dataset": digits.pk}
    first = api.post("/api/v1/extractions/", body, format="json")
    assert first.status_code == 201, first.content
    run = first.json()
    assert run["kind"] == "extract"
    assert run["state"] == "queued"
    assert run["params"] == {"layers": MLP_DEFAULT_LAYERS, "pooling": "mean"}
    assert run["workspace"] == "lab"
    second = api.post("/api/v1/extractions/", body, format="json")
    assert second.status_code == 200
    assert second.json()["id"] == run["id"]
    explicit = api.post(
        "/api/v1/extractions/", {**body, "layers": MLP_DEFAULT_LAYERS}, format="json"
    )
    assert explicit.status_code == 200
    assert explicit.json()["id"] == run["id"]
    other_layers = api.post("/api/v1/extractions/", {**body, "layers": ["head"]}, format="json")
    assert other_layers.status_code == 201
    assert Run.objects.count() == 2


def test_comparison_request_is_idempotent_and_depends_on_two_extractions(
    api, ckpt_a, ckpt_b, digits
):
    body = comparison_request(ckpt_a, ckpt_b, digits)
    first = api.post("/api/v1/comparisons/", body, format="json")
    assert first.status_code == 201, first.content
    run = first.json()
    assert run["kind"] == "compare"
    assert (run["checkpoint"], run["checkpoint_b"], run["dataset"]) == (
        ckpt_a.pk,
        ckpt_b.pk,
        digits.pk,
    )
    dependencies = Run.objects.filter(pk__in=run["depends_on"])
    assert len(run["depends_on"]) == 2
    assert {d.kind for d in dependencies} == {"extract"}
    assert {d.checkpoint_id for d in dependencies} == {ckpt_a.pk, ckpt_b.pk}
    assert Run.objects.count() == 3

    second = api.post("/api/v1/comparisons/", body, format="json")
    assert second.status_code == 200
    assert second.json()["id"] == run["id"]
    assert Run.objects.count() == 3
    # The extraction a comparison asked for is the one an extraction request gets.
    same = api.post(
        "/api/v1/extractions/", {"checkpoint": ckpt_a.pk, "dataset": digits.pk}, format="json"
    )
    assert same.status_code == 200
    assert same.json()["id"] in run["depends_on"]


def test_invalid_layer_is_named(api, ckpt_a, ckpt_b, digits):
    response = api.post(
        "/api/v1/extractions/",
        {"checkpoint": ckpt_a.pk, "dataset": digits.pk, "layers": ["block1", "block9"]},
        format="json",
    )
    assert response.status_code == 400
    assert "block9" in response.json()["detail"]
    response = api.post(
        "/api/v1/comparisons/",
        comparison_request(ckpt_a, ckpt_b, digits, layers_b=["no.such.layer"]),
        format="json",
    )
    assert response.status_code == 400
    assert "no.such.layer" in response.json()["detail"]
    assert Run.objects.count() == 0


def test_unknown_pooling_and_measure_are_refused(api, ckpt_a, ckpt_b, digits):
    response = api.post(
        "/api/v1/extractions/",
        {"checkpoint": ckpt_a.pk, "dataset": digits.pk, "pooling": "max"},
        format="json",
    )
    assert response.status_code == 400
    assert "max" in str(response.json())
    response = api.post(
        "/api/v1/comparisons/",
        comparison_request(ckpt_a, ckpt_b, digits, measure="cca/magic"),
        format="json",
    )
    assert response.status_code == 400
    assert "cca/magic" in str(response.json())
    response = api.post(
        "/api/v1/comparisons/",
        comparison_request(ckpt_a, ckpt_b, digits, n_permutations=0),
        format="json",
    )
    assert response.status_code == 400
    assert Run.objects.count() == 0


def test_checkpoint_from_another_workspace(api, owner, outsider, ckpt_a, digits):
    foreign = checkpoint_from(
        Workspace.objects.get(slug="elsewhere"), outsider, torchscript_mlp_bytes(5), "theirs"
    )
    response = api.post(
        "/api/v1/extractions/", {"checkpoint": foreign.pk, "dataset": digits.pk}, format="json"
    )
    assert response.status_code == 404
    response = api.post(
        "/api/v1/comparisons/", comparison_request(ckpt_a, foreign, digits), format="json"
    )
    assert response.status_code == 404
    # Visible to a member of both workspaces, but still not mixable with this dataset.
    foreign.workspace.memberships.create(user=owner, role="editor")
    response = api.post(
        "/api/v1/extractions/", {"checkpoint": foreign.pk, "dataset": digits.pk}, format="json"
    )
    assert response.status_code == 400
    assert "same workspace" in response.json()["detail"]
    assert Run.objects.count() == 0


def test_comparison_needs_enough_samples(api, workspace, owner, ckpt_a, ckpt_b):
    import io

    import numpy as np

    from tests.webapp.builders import npz_bytes
    from webapp.catalog.ingest import ingest_dataset

    tiny, _ = ingest_dataset(
        workspace,
        owner,
        io.BytesIO(npz_bytes(x=np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32))),
        "tiny.npz",
    )
    response = api.post(
        "/api/v1/comparisons/", comparison_request(ckpt_a, ckpt_b, tiny), format="json"
    )
    assert response.status_code == 400
    assert "at least" in response.json()["detail"]


# --------------------------------------------------------------------------- results


def test_comparison_before_it_ran_has_empty_cells(api, ckpt_a, ckpt_b, digits):
    run_id = api.post(
        "/api/v1/comparisons/", comparison_request(ckpt_a, ckpt_b, digits), format="json"
    ).json()["id"]
    matrix = api.get(f"/api/v1/comparisons/{run_id}/").json()
    assert matrix["state"] == "queued"
    assert matrix["layers_a"] == MLP_DEFAULT_LAYERS
    assert all(cell is None for row in matrix["value"] for cell in row)


def test_comparison_matrix_after_the_workers_ran(api, finished_comparison, ckpt_a, ckpt_b):
    assert finished_comparison.state == Run.State.SUCCEEDED, finished_comparison.error
    response = api.get(f"/api/v1/comparisons/{finished_comparison.pk}/")
    assert response.status_code == 200
    m = response.json()
    assert m["state"] == "succeeded"
    assert m["measure"]["id"] == "cka/linear"
    assert m["checkpoint_a"] == {"id": ckpt_a.pk, "name": "mlp-seed0"}
    assert m["checkpoint_b"] == {"id": ckpt_b.pk, "name": "mlp-seed1"}
    assert m["layers_a"] == m["layers_b"] == MLP_DEFAULT_LAYERS
    assert m["n"] == 60
    assert m["d_a"] == m["d_b"] == [64, 32, 16, 10]
    values = [cell for row in m["value"] for cell in row]
    baselines = [cell for row in m["baseline"] for cell in row]
    assert len(values) == len(baselines) == 16
    assert all(v is not None and 0.0 <= v <= 1.0 + 1e-12 for v in values)
    assert all(v is not None and 0.0 <= v <= 1.0 for v in baselines)
    assert all(s is not None and s >= 0 for row in m["baseline_std"] for s in row)
    # Both models see the same input: their flatten layers are identical.
    assert math.isclose(m["value"][0][0], 1.0, abs_tol=1e-9)
    provenance = m["provenance"]
    assert provenance["pooling"] == "mean"
    assert provenance["n_permutations"] == 3
    assert provenance["seed"] == 0
    assert provenance["code_version"]
    assert all(e for row in m["estimator"] for e in row)


def test_checkpoint_compared_with_itself_has_a_unit_diagonal(api, ckpt_a, digits):
    response = api.post(
        "/api/v1/comparisons/", comparison_request(ckpt_a, ckpt_a, digits), format="json"
    )
    assert response.status_code == 201
    run = run_with_dependencies(Run.objects.get(pk=response.json()["id"]))
    assert run.state == Run.State.SUCCEEDED, run.error
    m = api.get(f"/api/v1/comparisons/{run.pk}/").json()
    size = len(m["layers_a"])
    assert size == 4
    for i in range(size):
        assert math.isclose(m["value"][i][i], 1.0, abs_tol=1e-9), (i, m["value"][i][i])
        for j in range(size):
            # Rounding may overshoot 1 by an ulp (see tests/workers: declared range).
            assert 0.0 <= m["value"][i][j] <= 1.0 + 1e-12
            assert math.isclose(m["value"][i][j], m["value"][j][i], abs_tol=1e-9)
        assert m["baseline"][i][i] < m["value"][i][i]


def test_comparison_detail_is_only_for_comparisons(api, finished_comparison):
    extraction = finished_comparison.depends_on.first()
    assert api.get(f"/api/v1/comparisons/{extraction.pk}/").status_code == 404
    assert api.get("/api/v1/comparisons/999999/").status_code == 404


def test_cancel_endpoint(api, ckpt_a, digits):
    run_id = api.post(
        "/api/v1/extractions/", {"checkpoint": ckpt_a.pk, "dataset": digits.pk}, format="json"
    ).json()["id"]
    response = api.post(f"/api/v1/runs/{run_id}/cancel/")
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    run = Run.objects.get(pk=run_id)
    assert run.state == Run.State.CANCELLED
    assert run.finished_at is not None
    execute_run(run_id)  # a message still in the queue is a no-op
    assert Run.objects.get(pk=run_id).state == Run.State.CANCELLED
    assert ActivationSet.objects.count() == 0


def test_cancelling_a_finished_run_changes_nothing(api, finished_comparison):
    finished_at = finished_comparison.finished_at
    response = api.post(f"/api/v1/runs/{finished_comparison.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["state"] == "succeeded"
    finished_comparison.refresh_from_db()
    assert finished_comparison.state == Run.State.SUCCEEDED
    assert finished_comparison.finished_at == finished_at


def test_cancelled_request_asked_again_is_queued_again(api, ckpt_a, digits):
    body = {"checkpoint": ckpt_a.pk, "dataset": digits.pk}
    run_id = api.post("/api/v1/extractions/", body, format="json").json()["id"]
    api.post(f"/api/v1/runs/{run_id}/cancel/")
    again = api.post("/api/v1/extractions/", body, format="json")
    assert again.status_code == 201
    assert again.json()["id"] == run_id
    assert again.json()["state"] == "queued"


def test_measures_are_listed_with_their_properties(api, client):
    from analysis.measures.registry import MEASURES

    listed = api.get("/api/v1/measures/").json()
    assert [m["id"] for m in listed] == list(MEASURES)
    cka = next(m for m in listed if m["id"] == "cka/linear")
    assert cka["range"] == [0.0, 1.0] and cka["larger_is_more_similar"] is True
    assert "orthogonal" in cka["invariant_to"]
    assert client.get("/api/v1/measures/").status_code in (401, 403)


@pytest.mark.parametrize(
    "path", ["/api/v1/runs/1/cancel/x/", "/api/v1/runs/1/nothing/", "/api/v1/no-such-thing/"]
)
def test_a_url_no_api_route_matches_is_a_json_404(client, api, path):
    """Signed in or not, GET or POST: the API's JSON error, never the site's HTML page."""
    for response in (api.get(path), api.post(path, {}), client.get(path), client.post(path)):
        assert response.status_code == 404
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == {"detail": "Not found."}
