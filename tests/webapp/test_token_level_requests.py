"""Asking for runs on token-level activation sets (pooling ``tokens``) beyond comparisons
(issue 19 part 2): what the API and the forms take, what they refuse in one sentence, and
where each result says how it read the rows (the API and the pages)."""

from __future__ import annotations

import html
import io
import re

import numpy as np
import pytest

from tests.conftest import run_with_dependencies
from tests.workers.test_token_level_runs import LAYER, store_tokens
from webapp.catalog.ingest import ingest_checkpoint
from webapp.pages.templatetags.runs import page_of
from webapp.runs.models import Run
from webapp.runs.submit import request_dynamics, request_projection

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client, owner, workspace):
    client.force_login(owner)
    return client


@pytest.fixture
def precomputed(workspace, owner, digits):
    buffer = io.BytesIO()
    np.savez(buffer, emb=np.ones((digits.n_samples, 4), np.float32), ids=digits.column("ids"))
    buffer.seek(0)
    checkpoint, _ = ingest_checkpoint(
        workspace, owner, buffer, "acts.npz", "Precomputed", dataset=digits
    )
    return checkpoint


def form_fields(page: str, action: str) -> dict[str, list[str]]:
    """The fields of the page's form posted to ``action``: each select's options, and [] for
    other inputs."""
    form = page[page.index(f'action="{action}"') :]
    form = form[: form.index("</form>")]
    fields: dict[str, list[str]] = {}
    for name, options in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        fields[name] = re.findall(r'<option value="([^"]*)"', options)
    for name in re.findall(r'<input type="[^"]+" name="([^"]+)"', form):
        fields.setdefault(name, [])
    return fields


def test_forms_offer_tokens_and_positions_only_where_positions_are_kept(
    browser, ckpt_a, precomputed, digits
):
    model = browser.get(f"/checkpoints/{ckpt_a.pk}/").content.decode()
    fields = form_fields(model, f"/checkpoints/{ckpt_a.pk}/project/")
    assert "tokens" in fields["pooling"]
    assert fields["positions"] == ["mean", "first", "last"]  # a projection reads vectors
    aligned = form_fields(model, f"/checkpoints/{ckpt_a.pk}/project-aligned/")
    assert "tokens" in aligned["aligned-pooling"] and "aligned-positions" in aligned

    activations = browser.get(f"/checkpoints/{precomputed.pk}/").content.decode()
    fields = form_fields(activations, f"/checkpoints/{precomputed.pk}/project/")
    assert "tokens" not in fields["pooling"] and "positions" not in fields

    # The workspace's model matrix may read rows per position; its form says so.
    workspace = browser.get("/w/lab/").content.decode()
    matrix = form_fields(workspace, "/w/lab/matrices/new/")
    assert "tokens" in matrix["pooling"] and "per-position" in matrix["positions"]


def test_a_choice_that_cannot_work_is_refused_in_one_sentence(
    api, owner, ckpt_a, ckpt_b, precomputed, digits
):
    request = {
        "checkpoint_a": ckpt_a.pk,
        "checkpoint_b": ckpt_b.pk,
        "dataset": digits.pk,
        "layer_a": LAYER,
        "layer_b": LAYER,
        "pooling": "tokens",
        "positions": "per-position",
    }
    refused = api.post("/api/v1/alignments/", request, format="json")
    assert refused.status_code == 400
    assert refused.json()["detail"] == (
        'positions: "per-position" is not one of its choices here: mean, first, last'
    )
    projection = {"checkpoint": precomputed.pk, "dataset": digits.pk, "layer": "emb"}
    refused = api.post("/api/v1/projections/", {**projection, "pooling": "tokens"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["detail"] == (
        "Precomputed holds precomputed activations, one vector per sample: they have no "
        "positions to keep"
    )
    # The Python interface says why per position cannot work there.
    with pytest.raises(Exception, match="a project run reads one vector per sample"):
        request_projection(owner, ckpt_a, digits, LAYER, "tokens", positions="per-position")
    assert not Run.objects.exists()

    # Without a token-level side, positions says nothing: the request finds the same run.
    plain, created = request_projection(owner, ckpt_a, digits, LAYER, "mean")
    again, created_again = request_projection(
        owner, ckpt_a, digits, LAYER, "mean", positions="last"
    )
    assert created and not created_again and again.pk == plain.pk
    assert "positions" not in again.params


WHERE = {
    "alignments": ("provenance", "positions"),
    "unit-matchings": ("positions",),
    "compatibility": ("provenance", "positions"),
    "nested": ("provenance", "positions"),
    "model-matrices": ("provenance", "positions"),
    "projections": ("parameters", "positions"),
}
"""Where each kind's API answer says how token-level sets were read."""


def text_of(page: bytes) -> str:
    """A page's text as read: entities unescaped, white space collapsed."""
    return " ".join(html.unescape(page.decode()).split())


def test_results_say_how_token_sets_were_read_in_the_api_and_on_their_pages(
    api, browser, owner, ckpt_a, ckpt_b, digits
):
    for seed, checkpoint in enumerate((ckpt_a, ckpt_b)):
        store_tokens(checkpoint, digits, seed)
    base = {"dataset": digits.pk, "pooling": "tokens", "positions": "last"}
    pair = {**base, "checkpoint_a": ckpt_a.pk, "checkpoint_b": ckpt_b.pk}
    series = {**base, "checkpoints": [ckpt_a.pk, ckpt_b.pk], "layer": LAYER}
    note = "pooled on the fly by last: each sample's last position"
    asked = {
        "alignments": {**pair, "layer_a": LAYER, "layer_b": LAYER},
        "unit-matchings": {**pair, "layer_a": LAYER, "layer_b": LAYER},
        "compatibility": series,
        "nested": series,
        "model-matrices": {**series, "n_permutations": 2, "n_bootstrap": 0},
        "projections": {**base, "checkpoint": ckpt_a.pk, "layer": LAYER},
    }
    for path, request in asked.items():
        response = api.post(f"/api/v1/{path}/", request, format="json")
        assert response.status_code == 201, (path, response.content)
        run = run_with_dependencies(Run.objects.get(pk=response.json()["id"]))
        assert run.state == Run.State.SUCCEEDED, (path, run.error)
        assert run.params["positions"] == "last"
        found = api.get(f"/api/v1/{path}/{run.pk}/").json()
        said = found
        for key in WHERE[path]:
            said = said[key]
        assert said.startswith(note), (path, said)
        page = text_of(browser.get(page_of(run)).content)
        assert note in page, path

    for step, checkpoint in enumerate((ckpt_a, ckpt_b)):
        checkpoint.seed_group, checkpoint.step = "series", step
        checkpoint.save()
    run, _ = request_dynamics(
        owner, ckpt_a.workspace, "series", digits, [LAYER], "tokens", positions="last"
    )
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    assert api.get(f"/api/v1/dynamics/{run.pk}/").json()["positions"].startswith(note)
    assert note in text_of(browser.get(page_of(run)).content)
