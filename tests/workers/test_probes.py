"""Probe runs: request, worker, stored results, the probe page, transformed previews and API."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.utils.html import escape
from PIL import Image

from analysis.probes.engine import run_probe
from analysis.probes.statistics import most_moved
from tests.conftest import api_client_for, run_with_dependencies
from tests.webapp.test_schema import check
from webapp.catalog.models import ActivationSet
from webapp.runs.drilldown import MOVED_SHOWN
from webapp.runs.models import ProbeResult, Run
from webapp.runs.results import PROBE_MEASURES, PROBE_SCORES
from webapp.runs.submit import request_probe

pytestmark = pytest.mark.django_db

FAMILIES = {"image/rotation": [0, 90, 180], "image/noise": [0, 0.2]}


def assert_same(got, want):
    if isinstance(want, dict):
        assert set(got) == set(want)
        for key in want:
            assert_same(got[key], want[key])
    elif isinstance(want, list):
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_same(g, w)
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
    else:
        assert got == want


def test_a_probe_run_stores_every_family_and_shows_it(client, owner, digits, ckpt_a, ckpt_b):
    run, created = request_probe(owner, ckpt_a, digits, ["block1", "head"], families=FAMILIES)
    assert created and run.params["families"] == [
        [k, [float(t) for t in v]] for k, v in FAMILIES.items()
    ]
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    assert run.timings["transformed_samples_per_s"] > 0
    rows = {r.family: r for r in ProbeResult.objects.filter(run=run)}
    assert set(rows) == set(FAMILIES)

    # What the worker stored is what the engine computes on the stored activations.
    from analysis.models.checkpoints import load_checkpoint

    with ckpt_a.blob.local_path() as path:
        model = load_checkpoint(path, ckpt_a.format)
    stored = {
        a.layer: a.load()
        for a in ActivationSet.objects.filter(checkpoint=ckpt_a, layer__in=["block1", "head"])
    }
    expected = run_probe(
        model, digits.load_arrays().x, ["block1", "head"], FAMILIES, stored, device="cpu"
    )
    for result in expected:
        # Computed in another process (the model host): equal up to the last bits of BLAS.
        assert_same(rows[result.family].result, json.loads(json.dumps(result.to_json())))
        np.testing.assert_array_equal(
            rows[result.family].per_sample.load_array(), result.per_sample
        )
    assert rows["image/rotation"].result["invariance"][0][0] == pytest.approx(1.0)

    client.force_login(owner)
    page = client.get(f"/probes/{run.pk}/").content.decode()
    assert 'id="probe-data"' in page and "rotation" in page and "probe-heatmap" in page
    # Every statistic and score is defined on the page, as the code computes it.
    defined = [(m[0], m[-1]) for m in PROBE_MEASURES.values()] + list(PROBE_SCORES.values())
    for name, definition in defined:
        assert f"<dt>{escape(name)}</dt><dd" in page and escape(definition) in page
    moved = client.get(
        f"/probes/{run.pk}/moved/", {"family": "image/rotation", "layer": 1, "t": 2}
    ).content.decode()
    per_sample = rows["image/rotation"].per_sample.load_array()[1, 2]
    worst = int(np.argsort(per_sample, kind="stable")[0])
    assert moved.split('data-index="', 1)[1].split('"', 1)[0] == str(worst)
    assert f"/probes/{run.pk}/samples/{worst}.png?family=image/rotation&amp;t=180.0" in moved

    # The preview is the sample as the model saw it: rotated by 180°, here exactly.
    png = client.get(
        f"/probes/{run.pk}/samples/{worst}.png", {"family": "image/rotation", "t": 180.0}
    )
    assert png["Content-Type"] == "image/png"
    shown = np.asarray(Image.open(io.BytesIO(png.content)))
    original = np.asarray(
        Image.open(io.BytesIO(client.get(f"/datasets/{digits.pk}/samples/{worst}.png").content))
    )
    np.testing.assert_array_equal(shown, original[::-1, ::-1])
    # The run kept a preview of every sample a page shows, at every layer and magnitude.
    everything = rows["image/rotation"].per_sample.load_array()
    kept = rows["image/rotation"].previews.load_arrays()
    for layer, t in np.ndindex(everything.shape[:2]):
        at_t = set(kept["index"][kept["magnitude"] == t].tolist())
        assert set(most_moved(everything[layer, t], MOVED_SHOWN).tolist()) <= at_t
    assert (
        client.get(
            f"/probes/{run.pk}/samples/0.png", {"family": "image/rotation", "t": 45}
        ).status_code
        == 404
    )

    # Another checkpoint's probe overlays on the same page.
    other = run_with_dependencies(
        request_probe(owner, ckpt_b, digits, ["block1", "head"], families=FAMILIES)[0]
    )
    overlaid = client.get(f"/probes/{run.pk}/", {"with": other.pk}).content.decode()
    assert "mlp-seed1" in overlaid and '"overlays": [{"run": ' + str(other.pk) in overlaid


def test_probe_requests_are_checked(client, owner, outsider, digits, ckpt_a):
    from analysis.errors import InputError

    with pytest.raises(InputError, match="unknown"):
        request_probe(owner, ckpt_a, digits, families=["image/warp"])
    with pytest.raises(InputError, match="vector"):
        request_probe(owner, ckpt_a, digits, families=["vector/noise"])
    with pytest.raises(InputError):
        request_probe(owner, ckpt_a, digits, families={"image/rotation": [0, 720]})
    run, _ = request_probe(owner, ckpt_a, digits)  # the default image families and grids
    assert [key for key, _ in run.params["families"]] == [
        "image/rotation",
        "image/translate-circular",
        "image/noise",
    ]

    api = api_client_for(owner)
    created = api.post(
        "/api/v1/probes/",
        {
            "checkpoint": ckpt_a.pk,
            "dataset": digits.pk,
            "layers": ["head"],
            "families": {"image/hflip": [0, 1]},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    probe = run_with_dependencies(Run.objects.get(pk=created.json()["id"]))
    schema = api.get("/api/v1/schema/?format=json")
    schema = json.loads(b"".join(schema.streaming_content) if schema.streaming else schema.content)
    body = check(schema, api.get(f"/api/v1/probes/{probe.pk}/"), "get", "/api/v1/probes/{id}/")
    assert [f["key"] for f in body["families"]] == ["image/hflip"]
    assert body["measures"]["invariance"]["can_be_negative"] is True
    assert body["scores"]["transform_r2"]["definition"].endswith("chance (always the mean t) is 0")
    assert body["families"][0]["layers"] == ["head"]
    raw = api.get(f"/api/v1/probes/{probe.pk}/per-sample/", {"family": "image/hflip"})
    assert np.load(io.BytesIO(b"".join(raw.streaming_content))).shape == (1, 2, digits.n_samples)
    keys = [f["key"] for f in api.get("/api/v1/transformations/").json()]
    assert "image/rotation" in keys and "text/word-dropout" in keys
    bad = api.post(
        "/api/v1/probes/",
        {"checkpoint": ckpt_a.pk, "dataset": digits.pk, "families": {"image/rotation": "big"}},
        format="json",
    )
    assert bad.status_code == 400 and "magnitudes" in bad.json()["detail"]
    stranger = api_client_for(outsider)
    assert stranger.get(f"/api/v1/probes/{probe.pk}/").status_code == 404
    client.force_login(outsider)
    assert client.get(f"/probes/{probe.pk}/").status_code == 404
    assert (
        client.get(
            f"/probes/{probe.pk}/samples/0.png", {"family": "image/hflip", "t": 1}
        ).status_code
        == 404
    )


def test_the_checkpoint_page_starts_a_probe(client, owner, digits, ckpt_a):
    client.force_login(owner)
    page = client.get(f"/checkpoints/{ckpt_a.pk}/").content.decode()
    assert 'name="probe-families"' in page and "image/rotation" in page
    response = client.post(
        f"/checkpoints/{ckpt_a.pk}/probe/",
        {
            "probe-dataset": digits.pk,
            "probe-layers": ["block2"],
            "probe-pooling": "mean",
            "probe-families": ["image/vflip"],
            "probe-seed": 3,
        },
    )
    run = Run.objects.get(kind=Run.Kind.PROBE)
    assert response.status_code == 302 and response["Location"] == f"/probes/{run.pk}/"
    assert run.params == {
        "layers": ["block2"],
        "pooling": "mean",
        "families": [["image/vflip", [0.0, 1.0]]],
        "seed": 3,
    }
    bad = client.post(
        f"/checkpoints/{ckpt_a.pk}/probe/",
        {
            "probe-dataset": digits.pk,
            "probe-families": ["vector/noise"],
            "probe-pooling": "mean",
            "probe-seed": 0,
        },
    )
    assert bad.status_code == 400 and "vector" in bad.content.decode()


def test_an_explorer_colours_by_probe_invariance(client, owner, digits, ckpt_a):
    from webapp.runs.submit import request_projection

    probe = run_with_dependencies(
        request_probe(owner, ckpt_a, digits, ["block1", "head"], families=FAMILIES)[0]
    )
    projection = run_with_dependencies(request_projection(owner, ckpt_a, digits, "head")[0])
    result = probe.probe_results.get(family="image/noise")
    client.force_login(owner)
    key = f"probe:{result.pk}:1"
    page = client.get(f"/projections/{projection.pk}/").content.decode()
    assert key in page and "invariance under image/noise 0.2" in page
    raw = client.get(f"/projections/{projection.pk}/colour", {"key": key})
    expected = result.per_sample.load_array()[1, 1]  # layer "head", t = 0.2
    np.testing.assert_array_equal(np.frombuffer(raw.content, "<f4"), expected)
    # t = 0 (invariance 1 by definition) is not offered.
    assert (
        client.get(
            f"/projections/{projection.pk}/colour", {"key": f"probe:{result.pk}:0"}
        ).status_code
        == 404
    )


def _invariance(fx: np.ndarray, fgx: np.ndarray) -> tuple[float, np.ndarray]:
    """I and Iᵢ by the definition, in float64: D the mean of ‖fᵢ − fⱼ‖² over ordered pairs."""
    fx, fgx = fx.astype(np.float64), fgx.astype(np.float64)
    n = len(fx)
    distance = np.sum((fx[:, None] - fx[None]) ** 2) / (n * (n - 1))
    each = 1 - np.sum((fgx - fx) ** 2, axis=1) / distance
    return float(each.mean()), each


def test_a_vit_is_probed_at_every_patch_where_the_family_keeps_them(
    api, client, owner, workspace, tmp_path
):
    """A tiny ViT's token-level set (a class token and 16 patches per digit): brightness keeps
    every patch in place, so each row of f(x + t) is compared with the same row of f(x);
    rotation moves them, so each digit's patches are averaged first, of x and of g x alike.
    Both against numpy on the rows of the model run here on the transformed digits; the page
    and the API say how each family read them; positions without pooling tokens is a 400."""
    import torch

    from analysis.models.extraction import extract_tokens
    from analysis.models.hf import load_huggingface
    from analysis.probes.transforms import get_transform
    from tests.conftest import digits_npz_bytes
    from tests.formats import tiny_hf_dir, zip_dir
    from tests.workers.test_token_extraction import PATCHES, uploaded
    from webapp.catalog.models import Dataset

    digits = uploaded(api, "/api/v1/datasets/", "digits.npz", digits_npz_bytes(30))
    content = zip_dir(tiny_hf_dir(tmp_path / "vit", "vit"))
    vit = uploaded(api, "/api/v1/checkpoints/", "vit.zip", content, name="Tiny ViT")
    request = {"checkpoint": vit["id"], "dataset": digits["id"], "layers": ["hidden.1"]}
    families = {"image/brightness": [0, 0.3], "image/rotation": [0, 90]}
    created = api.post(
        "/api/v1/probes/", {**request, "pooling": "tokens", "families": families}, format="json"
    )
    assert created.status_code == 201, created.content
    run = run_with_dependencies(Run.objects.get(pk=created.json()["id"]))
    assert run.state == Run.State.SUCCEEDED, run.error
    assert run.params["positions"] == "per-position"
    found = {r.family: r for r in run.probe_results.all()}

    (tmp_path / "vit.zip").write_bytes(content)
    model = load_huggingface(tmp_path / "vit.zip", "vit.zip", 100, 10**9)
    x = Dataset.objects.get(pk=digits["id"]).load_arrays().x
    fx = ActivationSet.objects.get(checkpoint=vit["id"], layer="hidden.1", pooling="tokens").load()
    assert fx.shape == (30 * (1 + PATCHES), 32)

    def rows_of(images: np.ndarray) -> np.ndarray:
        return extract_tokens(model, images, ["hidden.1"], device="cpu")["hidden.1"].values

    brightness = found["image/brightness"].result
    assert brightness["positions"] == "per-position"
    score, each = _invariance(fx, rows_of(x + np.float32(0.3)))
    assert brightness["invariance"][0][1] == pytest.approx(score, rel=1e-5)
    per_sample = found["image/brightness"].per_sample.load_array()[0, 1]
    np.testing.assert_allclose(per_sample, each.reshape(30, -1).mean(axis=1), rtol=1e-4)

    rotation = found["image/rotation"].result
    assert rotation["positions"] == "mean"
    assert rotation["positions_note"].startswith("per position was asked, but rotation moves")
    turned = get_transform("image/rotation")(torch.from_numpy(x), 90).numpy()
    patches = fx.reshape(30, 1 + PATCHES, 32)[:, 1:].mean(axis=1)  # the class token left out
    turned_patches = rows_of(turned).reshape(30, 1 + PATCHES, 32)[:, 1:].mean(axis=1)
    score, _ = _invariance(patches, turned_patches)
    assert rotation["invariance"][0][1] == pytest.approx(score, rel=1e-5)

    schema = api.get("/api/v1/schema/?format=json")
    schema = json.loads(b"".join(schema.streaming_content) if schema.streaming else schema.content)
    body = check(schema, api.get(f"/api/v1/probes/{run.pk}/"), "get", "/api/v1/probes/{id}/")
    read = {f["key"]: (f["positions"], f["positions_note"]) for f in body["families"]}
    assert read["image/brightness"] == ("per-position", brightness["positions_note"])
    assert read["image/rotation"] == ("mean", rotation["positions_note"])
    client.force_login(owner)
    page = client.get(f"/probes/{run.pk}/").content.decode()
    assert "positions per-position" in page
    for note in (brightness["positions_note"], rotation["positions_note"]):
        assert f"<strong>Positions read:</strong> {escape(note)}</p>" in page
    transformations = {f["key"]: f for f in api.get("/api/v1/transformations/").json()}
    assert transformations["image/brightness"]["keeps_positions"] is True
    assert transformations["image/rotation"]["keeps_positions"] is False

    # How rows are read means nothing for one vector per sample: refused in one sentence.
    bad = api.post(
        "/api/v1/probes/",
        {**request, "pooling": "mean", "positions": "first", "families": families},
        format="json",
    )
    assert bad.status_code == 400
    assert bad.json()["detail"] == (
        "positions says how the rows of token-level activations are read, so it needs pooling "
        "tokens, not mean, where every sample is one vector"
    )
