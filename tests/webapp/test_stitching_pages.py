"""The model-stitching form and page, and its API: a finished run shows both accuracy
matrices as heatmaps beside B alone, A alone and chance, with the definitions and where the
zero-shot variant fails; a B that cannot run as an eager module is not offered in the form
and refused by the API with one sentence; the API's answers have the schema's shape."""

from __future__ import annotations

import json
import re

import pytest
from django.utils.html import escape

from tests.conftest import checkpoint_from, run_with_dependencies
from tests.formats import texts_jsonl, tiny_bert_dir, zip_dir
from tests.webapp.test_schema import check, schema  # noqa: F401  (the schema fixture)
from tests.workers.test_formats import uploaded
from tests.workers.test_stitching import small_cnn_bytes
from webapp.catalog.models import Checkpoint, Dataset
from webapp.runs.models import Report, Run
from webapp.runs.stitching import request_stitching, zero_shot_failures

pytestmark = pytest.mark.django_db

REFUSAL = "so B must be an eager torch module"


def embedded(html: str, element_id: str) -> dict:
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html)
    assert found, element_id
    return json.loads(found.group(1))


def test_the_page_shows_both_matrices_the_references_and_the_definitions(
    client, owner, workspace, digits, ckpt_a, ckpt_b
):
    run = run_with_dependencies(request_stitching(owner, ckpt_a, ckpt_b, digits)[0])
    client.force_login(owner)
    html = client.get(f"/stitchings/{run.pk}/").content.decode()
    for shown in (
        'data-heatmap="stitching-1"',
        'data-heatmap="stitching-2"',
        "js/heatmap/index.js",
        "B alone",
        "A alone",
        "chance",
        "Fitted map",
        "Zero-shot (relative representations)",
        "fitted by least squares from A&#x27;s layer i to B&#x27;s layer j",
        "Moschella et al. 2023",
        "the largest class share among the held-out labels",
        'data-testid="zero-shot"',
        "both models loaded in a model host",
    ):
        assert shown in html, shown
    fitted = embedded(html, "stitching-1")
    assert fitted["measure"]["name"] == "accuracy" and fitted["measure"]["range"] == [0.0, 1.0]
    assert fitted["measure"]["reading"] == "higher = better"
    assert fitted["layers_a"] == fitted["layers_b"] == ["flatten", "block1", "block2", "head"]
    result = Report.objects.get(run=run).result
    assert fitted["value"] == result["matrices"]["fitted"]["accuracy"]
    r2 = result["matrices"]["fitted"]["r2"][1][2]
    assert fitted["estimator"][1][2].endswith(f"· R² {r2:.4f}")
    relative = embedded(html, "stitching-2")
    assert relative["value"] == result["matrices"]["relative"]["accuracy"]
    for drawn in (fitted, relative):  # the colour bars mark chance and B alone at the report's
        assert drawn["marks"] == [
            {"label": "chance", "value": result["chance"]},
            {"label": "B alone", "value": result["accuracy_b"]},
        ]
    assert escape(zero_shot_failures(result)) in html

    listed = client.get(f"/w/{workspace.slug}/").content.decode()
    assert f"/stitchings/{run.pk}/" in listed and f"/w/{workspace.slug}/stitchings/new/" in listed
    polled = client.get(f"/stitchings/{run.pk}/", HTTP_HX_REQUEST="true")
    assert polled.status_code == 286 and "<html" not in polled.content.decode()


def test_empty_cells_say_why_and_feature_maps_show_their_shape(client, owner, workspace, digits):
    """Stitching small CNNs: a pair that cannot be stitched is an empty cell whose hover says
    why, and the provenance gives a conv layer's map shape."""
    a = checkpoint_from(workspace, owner, small_cnn_bytes(0), "cnn-seed0")
    run = run_with_dependencies(request_stitching(owner, a, a, digits)[0])
    assert run.state == Run.State.SUCCEEDED, run.error
    client.force_login(owner)
    html = client.get(f"/stitchings/{run.pk}/").content.decode()
    fitted = embedded(html, "stitching-1")
    assert fitted["value"][0][1] is None
    assert fitted["estimator"][0][1].startswith("not stitched: A's conv1 outputs maps of 4 ")
    assert "1×1 convolution" in fitted["estimator"][0][0] and fitted["value"][0][0] is not None
    relative = embedded(html, "stitching-2")
    assert relative["estimator"][0][0].startswith(
        "not stitched: the zero-shot variant stitches per-sample vectors only"
    )
    assert "conv1</span> (4 × 8 × 8 map)" in html and "pool</span> (8-d)" in html
    assert "An empty cell is a pair not stitched" in html


def test_a_hugging_face_b_says_how_it_is_run_and_read(client, api, owner, workspace, tmp_path):
    content = zip_dir(tiny_bert_dir(tmp_path / "b"))
    body = uploaded(api, "/api/v1/checkpoints/", "b.zip", content, name="bert")
    bert = Checkpoint.objects.get(pk=body["id"])
    texts = Dataset.objects.get(
        pk=uploaded(api, "/api/v1/datasets/", "t.jsonl", texts_jsonl(40), name="Texts")["id"]
    )
    run = run_with_dependencies(request_stitching(owner, bert, bert, texts, ["hidden.2"])[0])
    assert run.state == Run.State.SUCCEEDED, run.error
    client.force_login(owner)
    html = client.get(f"/stitchings/{run.pk}/").content.decode()
    assert (
        "B a Hugging Face text encoder, stitched at its tokens (one map, shared by every token"
        in (html)
    )
    assert "B is a bare encoder: its accuracy (alone and stitched) is read through a readout" in (
        html.replace("&#x27;", "'")
    )
    assert "hidden.2</span> (32-d)" in html


def test_an_unfinished_run_polls(client, owner, workspace, digits, ckpt_a, ckpt_b):
    run, _ = request_stitching(owner, ckpt_a, ckpt_b, digits)
    client.force_login(owner)
    html = client.get(f"/stitchings/{run.pk}/").content.decode()
    assert 'hx-trigger="every 2s"' in html and "data-heatmap" not in html


def test_the_form_asks_for_a_run_and_offers_only_bs_that_run_eagerly(
    client, owner, workspace, digits, ckpt_a, ckpt_b
):
    client.force_login(owner)
    url = f"/w/{workspace.slug}/stitchings/new/"
    page = client.get(f"{url}?a={ckpt_a.pk}&b={ckpt_b.pk}").content.decode()
    assert f'<option value="{ckpt_a.pk}" selected>' in page
    assert f'<option value="{ckpt_b.pk}" selected>' in page
    body = {
        "checkpoint_a": ckpt_a.pk,
        "checkpoint_b": ckpt_b.pk,
        "dataset": digits.pk,
        "layers_a": "block1, block2",
        "layers_b": "head",
    }
    answer = client.post(url, body)
    run = Run.objects.get(kind=Run.Kind.STITCH)
    assert answer.status_code == 302 and answer["Location"] == f"/stitchings/{run.pk}/"
    assert run.params["layers_a"] == ["block1", "block2"] and run.params["layers_b"] == ["head"]
    assert run.params["map"] == "affine" and run.params["test_fraction"] == 0.2

    refused = client.post(url, {**body, "layers_b": "nope"})
    assert (
        refused.status_code == 400 and "has no layer &#x27;nope&#x27;" in refused.content.decode()
    )

    Checkpoint.objects.filter(pk=ckpt_b.pk).update(format="onnx")
    page = client.get(url).content.decode()
    b_field = page[page.index('name="checkpoint_b"') :]
    b_field = b_field[: b_field.index("</select>")]
    assert f'value="{ckpt_b.pk}"' not in b_field  # not offered as B
    a_field = page[page.index('name="checkpoint_a"') :]
    assert f'value="{ckpt_b.pk}"' in a_field[: a_field.index("</select>")]  # but as A


def test_the_api_asks_for_reads_and_refuses(
    schema,  # noqa: F811
    api,
    owner,
    workspace,
    digits,
    ckpt_a,
    ckpt_b,
):
    body = {"checkpoint_a": ckpt_a.pk, "checkpoint_b": ckpt_b.pk, "dataset": digits.pk}
    made = check(
        schema,
        api.post("/api/v1/stitchings/", {**body, "layers_b": ["block2", "head"]}, format="json"),
        "post",
        "/api/v1/stitchings/",
        201,
    )
    assert made["kind"] == "stitch" and made["page"].endswith(f"/stitchings/{made['id']}/")
    path = "/api/v1/stitchings/{id}/"
    waiting = check(schema, api.get(f"/api/v1/stitchings/{made['id']}/"), "get", path)
    assert waiting["result"] is None and waiting["layers_b"] == ["block2", "head"]
    run_with_dependencies(Run.objects.get(pk=made["id"]))
    read = check(schema, api.get(f"/api/v1/stitchings/{made['id']}/"), "get", path)
    assert read["state"] == "succeeded" and read["result"]["layers_b"] == ["block2", "head"]
    assert read["definitions"]["chance"].startswith("the largest class share")
    assert len(read["result"]["matrices"]["fitted"]["accuracy"][0]) == 2
    check(schema, api.get(f"/api/v1/runs/{made['id']}/"), "get", "/api/v1/runs/{id}/")

    refused = api.post("/api/v1/stitchings/", {**body, "ridge": -1}, format="json")
    assert refused.status_code == 400 and "ridge" in refused.json()["errors"]
    Checkpoint.objects.filter(pk=ckpt_b.pk).update(format="precomputed")
    refused = api.post("/api/v1/stitchings/", body, format="json")
    assert refused.status_code == 400 and REFUSAL in refused.json()["detail"]


def test_a_report_stored_before_feature_maps_still_shows(
    schema,  # noqa: F811
    client,
    api,
    owner,
    workspace,
    digits,
    ckpt_a,
    ckpt_b,
):
    """A report stored before stitching took feature maps has no shapes and no refused cells:
    its page and its API answer read every layer as a vector and every cell as stitched."""
    run = run_with_dependencies(request_stitching(owner, ckpt_a, ckpt_b, digits)[0])
    report = Report.objects.get(run=run)
    old = {
        key: value for key, value in report.result.items() if key not in ("shapes_a", "shapes_b")
    }
    for matrix in old["matrices"].values():
        del matrix["refused"]
    Report.objects.filter(pk=report.pk).update(result=old)

    client.force_login(owner)
    page = client.get(f"/stitchings/{run.pk}/")
    assert page.status_code == 200
    fitted = embedded(page.content.decode(), "stitching-1")
    assert fitted["value"] == old["matrices"]["fitted"]["accuracy"]
    assert not any(note.startswith("not stitched") for row in fitted["estimator"] for note in row)
    read = check(
        schema, api.get(f"/api/v1/stitchings/{run.pk}/"), "get", "/api/v1/stitchings/{id}/"
    )
    assert read["result"]["shapes_a"] == [[width] for width in old["dims_a"]]
    assert read["result"]["matrices"]["fitted"]["refused"][0] == [None] * len(old["layers_b"])
