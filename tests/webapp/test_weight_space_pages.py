"""The weight-space form and page, and its API: a finished run shows its numbers with their
definitions; a checkpoint whose weights no permutation spec reads is refused in the form and
the API with one sentence saying which formats expose weights this way."""

from __future__ import annotations

import re

import pytest

from analysis.models.architectures import mlp
from analysis.weights.chance import alignment_chance
from tests.conftest import run_with_dependencies
from webapp.catalog.models import Checkpoint
from webapp.runs.models import Report, Run
from webapp.runs.weight_space import request_weight_space

pytestmark = pytest.mark.django_db

REFUSAL = "weight space reads weights only from .safetensors state dicts"

WEIGHT_SHAPES = [
    list(weight.shape)
    for name, weight in mlp(64, [32, 16], 10).state_dict().items()
    if name.endswith(".weight")
]
"""[out, in] of each layer of the checkpoints ``ckpt_a`` and ``ckpt_b`` (tests.conftest)."""


def test_the_page_shows_the_paths_barriers_l2_and_spectra(
    client, owner, workspace, digits, ckpt_a, ckpt_b
):
    run = run_with_dependencies(request_weight_space(owner, ckpt_a, ckpt_b, digits)[0])
    client.force_login(owner)
    html = client.get(f"/weight-spaces/{run.pk}/").content.decode()
    for shown in (
        'data-chart="path:loss"',
        'data-chart="path:accuracy"',
        'data-chart="spectrum:block1.0"',
        'data-chart="cosines:head"',
        "loss barrier",
        "largest rise of the loss",
        "L2 distance to A",
        "✓ Passed",
        'id="weights-charts"',
        'data-testid="chance"',
        "a classifier that ignores its input",
    ):
        assert shown in html
    chance = Report.objects.get(run=run).result["chance"]
    assert f"Chance: loss {chance['loss']:.4f} nats, accuracy {chance['accuracy']:.4f}" in html
    # each layer's alignment beside what unrelated weights of its shape score
    assert "<th>unrelated weights</th>" in html and "uniformly random (Haar) orientation" in html
    layers = Report.objects.get(run=run).result["layers"]
    assert [layer["shape"] for layer in layers] == WEIGHT_SHAPES
    for layer in layers:
        expected = alignment_chance(*layer["shape"])
        assert layer["alignment_chance"] == pytest.approx(expected, rel=1e-12)
        assert f"<td>{layer['shape'][0]} × {layer['shape'][1]}</td>" in html
    cells = re.findall(r'data-testid="alignment-chance" title="([^"]*)">([^<]*)</td>', html)
    assert [shown for _, shown in cells] == [f"{layer['alignment_chance']:.3g}" for layer in layers]
    assert all("m(out) m(in) / 2" in title for title, _ in cells)
    assert 'data-testid="alignment-chance-unknown"' not in html
    # and after matching beside what the same matching gives unrelated weights, with its interval
    assert "<th>unrelated weights, matched (95% interval)</th>" in html
    assert "what unrelated weights score after the same matching" in html
    assert "Here K = 8 pairs, drawn with seed 0." in html
    matched = re.findall(
        r'data-testid="alignment-matched-chance" title="([^"]*)">([^<]*)</td>', html
    )
    assert [shown for _, shown in matched] == [
        "{mean:.3g} [{low:.3g}, {high:.3g}]".format(**layer["alignment_matched_chance"])
        for layer in layers
    ]
    assert all(title.startswith("mean of 8 pairs of unrelated networks") for title, _ in matched)
    assert 'data-testid="alignment-matched-chance-unknown"' not in html
    listed = client.get(f"/w/{workspace.slug}/").content.decode()
    assert f"/weight-spaces/{run.pk}/" in listed
    assert f"/weight-spaces/{run.pk}/" in client.get(f"/checkpoints/{ckpt_b.pk}/").content.decode()


def test_the_form_asks_for_a_run_and_refuses_a_checkpoint_without_readable_weights(
    client, owner, workspace, digits, ckpt_a, ckpt_b
):
    client.force_login(owner)
    url = f"/w/{workspace.slug}/weight-spaces/new/"
    page = client.get(f"{url}?a={ckpt_a.pk}").content.decode()
    assert f'<option value="{ckpt_a.pk}" selected>' in page
    body = {"checkpoint_a": ckpt_a.pk, "checkpoint_b": ckpt_b.pk, "dataset": digits.pk, "seed": 0}
    answer = client.post(url, body)
    run = Run.objects.get(kind=Run.Kind.WEIGHTS)
    assert answer.status_code == 302 and answer["Location"] == f"/weight-spaces/{run.pk}/"

    Checkpoint.objects.filter(pk=ckpt_b.pk).update(format="onnx")
    assert f'value="{ckpt_b.pk}"' not in client.get(url).content.decode()  # not offered
    checkpoint_page = client.get(f"/checkpoints/{ckpt_b.pk}/").content.decode()
    assert "This checkpoint is stored as ONNX, whose graph holds no parameters" in checkpoint_page
    assert REFUSAL in checkpoint_page
    Checkpoint.objects.filter(pk=ckpt_b.pk).update(format="huggingface")
    checkpoint_page = client.get(f"/checkpoints/{ckpt_b.pk}/").content.decode()
    assert "This checkpoint is a Hugging Face directory of another model than a BERT" in (
        checkpoint_page
    )
    assert "transformer" in checkpoint_page  # the built-ins it reads are named


def test_the_api_asks_for_reads_and_refuses(api, owner, workspace, digits, ckpt_a, ckpt_b):
    body = {"checkpoint_a": ckpt_a.pk, "checkpoint_b": ckpt_b.pk, "dataset": digits.pk}
    answer = api.post("/api/v1/weight-spaces/", body, format="json")
    assert answer.status_code == 201 and answer.json()["kind"] == "weights"
    run = run_with_dependencies(Run.objects.get(pk=answer.json()["id"]))
    read = api.get(f"/api/v1/weight-spaces/{run.pk}/").json()
    assert read["state"] == "succeeded" and read["result"]["function_check"]["passed"]
    assert read["definitions"]["alignment"].startswith("Σ s_i^A s_i^B")
    layers = read["result"]["layers"]
    assert [layer["shape"] for layer in layers] == WEIGHT_SHAPES
    for layer in layers:
        expected = alignment_chance(*layer["shape"])
        assert layer["alignment_chance"] == pytest.approx(expected, rel=1e-12)
    assert "uniformly random" in read["definitions"]["alignment_chance"]
    assert read["result"]["unrelated"] == {"draws": 8, "seed": 0}
    for layer in layers:
        level = layer["alignment_matched_chance"]
        assert set(level) == {"mean", "low", "high", "sd"}
        assert 0 <= level["low"] < level["mean"] < level["high"] <= 1
    assert "after the same matching" in read["definitions"]["alignment_matched_chance"]

    Checkpoint.objects.filter(pk=ckpt_b.pk).update(format="precomputed")
    refused = api.post("/api/v1/weight-spaces/", {**body, "seed": 1}, format="json")
    assert refused.status_code == 400 and REFUSAL in str(refused.json())
    Checkpoint.objects.filter(pk=ckpt_b.pk).update(format="huggingface")
    refused = api.post("/api/v1/weight-spaces/", {**body, "seed": 1}, format="json")
    assert refused.status_code == 400
    other = "is a Hugging Face directory of another model than a BERT, RoBERTa or DistilBERT"
    assert f"{other} encoder, and" in str(refused.json())


def test_a_refusal_is_said_once(client, owner, workspace, digits, ckpt_a):
    """The service's refusal is the form's one non-field error, which ``as_p`` already shows
    (a second ``non_field_errors`` in the template said it twice)."""
    client.force_login(owner)
    body = {"checkpoint_a": ckpt_a.pk, "checkpoint_b": ckpt_a.pk, "dataset": digits.pk, "seed": 0}
    answer = client.post(f"/w/{workspace.slug}/weight-spaces/new/", body)
    assert answer.status_code == 400
    assert answer.content.decode().count("choose two different checkpoints") == 1


def test_a_report_stored_before_the_chance_level_still_renders(
    client, api, owner, workspace, digits, ckpt_a, ckpt_b
):
    """A report without the layers' shapes shows a dash for unrelated weights, saying why and
    the most it can be (m(r)² / 2 for r singular values); one with the shape but not the
    chance level shows the level computed from the shape; the API serves both as stored."""
    run = run_with_dependencies(request_weight_space(owner, ckpt_a, ckpt_b, digits)[0])
    report = Report.objects.get(run=run)
    stored = report.result["layers"]
    report.result["layers"] = [
        {k: v for k, v in layer.items() if k not in ("shape", "alignment_chance")}
        for layer in stored
    ]
    report.save()
    client.force_login(owner)
    html = client.get(f"/weight-spaces/{run.pk}/").content.decode()
    assert 'data-testid="alignment-chance-unknown"' in html
    assert "stored before the layers' shapes were kept" in html
    for layer in stored:
        r = len(layer["singular_a"])
        bound = alignment_chance(r, r)
        assert bound >= layer["alignment_chance"]
        assert f"at least {r} × {r}, so its unrelated weights score at most {bound:.3g}" in html
    assert html.count('data-testid="alignment-chance" class="muted"') == len(stored)
    read = api.get(f"/api/v1/weight-spaces/{run.pk}/")
    assert read.status_code == 200
    assert all("alignment_chance" not in layer for layer in read.json()["result"]["layers"])

    report.result["layers"] = [
        {k: v for k, v in layer.items() if k != "alignment_chance"} for layer in stored
    ]
    report.save()
    html = client.get(f"/weight-spaces/{run.pk}/").content.decode()
    assert 'data-testid="alignment-chance-unknown"' not in html
    shown = re.findall(r'data-testid="alignment-chance" title="[^"]*">([^<]*)</td>', html)
    assert shown == [f"{alignment_chance(*layer['shape']):.3g}" for layer in stored]


def test_a_report_stored_before_the_level_after_matching_shows_a_dash(
    client, api, owner, workspace, digits, ckpt_a, ckpt_b
):
    """A report without what matching gives unrelated weights shows a dash in that column for
    every layer and one sentence saying why; the API serves it as stored."""
    run = run_with_dependencies(request_weight_space(owner, ckpt_a, ckpt_b, digits)[0])
    report = Report.objects.get(run=run)
    del report.result["unrelated"]
    report.result["layers"] = [
        {k: v for k, v in layer.items() if k != "alignment_matched_chance"}
        for layer in report.result["layers"]
    ]
    report.save()
    client.force_login(owner)
    html = client.get(f"/weight-spaces/{run.pk}/").content.decode()
    dashes = re.findall(
        r'data-testid="alignment-matched-chance" class="muted" title="([^"]*)">—</td>', html
    )
    assert dashes == [
        "not known: this report was stored before the level after matching was kept"
    ] * len(report.result["layers"])
    assert 'data-testid="alignment-matched-chance-unknown"' in html
    assert "the alignment after matching has no chance level here" in html
    assert "Here K =" not in html
    read = api.get(f"/api/v1/weight-spaces/{run.pk}/")
    assert read.status_code == 200 and "unrelated" not in read.json()["result"]
    assert all("alignment_matched_chance" not in layer for layer in read.json()["result"]["layers"])
