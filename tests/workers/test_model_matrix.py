"""Many checkpoints compared at one layer: request, worker, matrix, page and API."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.errors import InputError
from tests.conftest import (
    api_client_for,
    checkpoint_from,
    run_with_dependencies,
    torchscript_mlp_bytes,
)
from webapp.runs.models import Run
from webapp.runs.results import model_matrix
from webapp.runs.submit import request_model_matrix

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeds(workspace, owner):
    """Four MLPs: seeds 0 and 1 twice each (identical bytes would deduplicate, so the twins
    differ by one hidden width)."""
    return [
        checkpoint_from(workspace, owner, torchscript_mlp_bytes(seed, hidden), f"mlp-{seed}-{h}")
        for seed, hidden, h in [
            (0, (32, 16), "a"),
            (1, (32, 16), "b"),
            (0, (32, 17), "c"),
            (1, (32, 17), "d"),
        ]
    ]


def test_model_matrix_scores_every_pair_and_orders_twins_together(owner, digits, seeds):
    run, created = request_model_matrix(
        owner, seeds, digits, "block1", n_permutations=2, n_bootstrap=0
    )
    assert created and run.depends_on.count() == 4
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    matrix = model_matrix(run)
    values = np.array(matrix["value"], dtype=float)
    assert values.shape == (4, 4)
    assert np.allclose(np.diag(values), 1.0)
    assert np.allclose(values, values.T)
    # block1 of mlp-0-a and mlp-0-c share seed 0: their first layers start from the same
    # random weights, so they should be more alike than across seeds and sit side by side.
    order = [c["name"] for c in matrix["checkpoints"]]
    assert abs(order.index("mlp-0-a") - order.index("mlp-0-c")) == 1
    assert matrix["layers_a"] == order == matrix["layers_b"]


def test_model_matrix_refuses_bad_requests(owner, digits, seeds):
    with pytest.raises(InputError, match="at least two"):
        request_model_matrix(owner, seeds[:1], digits, "block1")
    with pytest.raises(InputError, match="not in"):
        request_model_matrix(owner, seeds, digits, "no-such-layer")


def test_model_matrix_through_api_and_page(client, owner, outsider, digits, seeds):
    api = api_client_for(owner)
    body = {
        "checkpoints": [c.pk for c in seeds],
        "dataset": digits.pk,
        "layer": "head",
        "n_permutations": 2,
        "n_bootstrap": 0,
    }
    response = api.post("/api/v1/model-matrices/", body, format="json")
    assert response.status_code == 201, response.content
    again = api.post("/api/v1/model-matrices/", body, format="json")
    assert again.status_code == 200 and again.json()["id"] == response.json()["id"]
    run = run_with_dependencies(Run.objects.get(pk=response.json()["id"]))
    matrix = api.get(f"/api/v1/model-matrices/{run.pk}/").json()
    assert len(matrix["checkpoints"]) == 4 and matrix["layer"] == "head"
    client.force_login(owner)
    page = client.get(f"/matrices/{run.pk}/")
    assert page.status_code == 200 and b'id="matrix-data"' in page.content
    # where a cell's interval and baseline are, and the code that computed them
    text = page.content.decode()
    assert "Hover a cell for its value, 95% interval, permutation baseline" in text
    assert f"RepLens analysis {matrix['provenance']['code_version']}" in text
    assert f'href="/api/v1/model-matrices/{run.pk}/"' in text
    assert client.get(f"/matrices/{run.pk}/", HTTP_HX_REQUEST="true").status_code == 286
    assert api_client_for(outsider).get(f"/api/v1/model-matrices/{run.pk}/").status_code == 404
    client.force_login(outsider)
    assert client.get(f"/matrices/{run.pk}/").status_code == 404


def test_model_matrix_form_on_the_workspace_page(client, owner, digits, seeds):
    client.force_login(owner)
    page = client.get("/w/lab/").content.decode()
    assert "Many checkpoints at one layer" in page
    data = {
        "checkpoints": [c.pk for c in seeds[:2]],
        "dataset": digits.pk,
        "layer": "block2",
        "pooling": "mean",
        "measure": "cka/linear",
    }
    response = client.post("/w/lab/matrices/new/", data)
    run = Run.objects.get(kind=Run.Kind.MODEL_MATRIX)
    assert response.status_code == 302 and response["Location"] == f"/matrices/{run.pk}/"
    refused = client.post("/w/lab/matrices/new/", {**data, "checkpoints": [seeds[0].pk]})
    assert refused.status_code == 400 and "at least two" in refused.content.decode()
