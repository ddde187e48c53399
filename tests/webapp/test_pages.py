"""Server-rendered pages: login, what the owner sees, htmx polling, isolation, escaping."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from django.utils.html import escape
from PIL import Image

from analysis.measures.knn import knn_jaccard_chance
from analysis.measures.registry import DEFINITIONS, MEASURES
from tests.conftest import run_with_dependencies
from tests.webapp.builders import labelled_npz, npz_bytes
from webapp.catalog.ingest import ingest_dataset
from webapp.pages.templatetags.runs import plain
from webapp.runs.models import Run
from webapp.runs.submit import request_comparison, request_extraction

pytestmark = pytest.mark.django_db

POLLING = 'hx-trigger="every 2s"'


@pytest.fixture
def browser(client, owner, workspace):
    client.force_login(owner)
    return client


@pytest.fixture
def comparison(owner, ckpt_a, ckpt_b, digits):
    run, _ = request_comparison(owner, ckpt_a, ckpt_b, digits, n_permutations=2)
    return run


def htmx_get(client, url):
    return client.get(url, HTTP_HX_REQUEST="true")


def matrix_data(text: str) -> dict:
    found = re.search(
        r'<script id="matrix-data" type="application/json">(.*?)</script>', text, re.S
    )
    assert found, "no matrix-data script"
    return json.loads(found.group(1))


def owner_urls(comparison) -> dict[str, list[str]]:
    extraction = comparison.depends_on.first()
    return {
        "get": [
            "/w/lab/",
            "/w/lab/runs/",
            "/w/lab/uploads/",
            f"/datasets/{comparison.dataset_id}/",
            f"/datasets/{comparison.dataset_id}/samples/0.png",
            f"/checkpoints/{comparison.checkpoint_id}/",
            f"/runs/{extraction.pk}/",
            f"/runs/{comparison.pk}/",
            f"/comparisons/{comparison.pk}/",
        ],
        "post": [
            "/w/lab/datasets/upload/",
            "/w/lab/checkpoints/upload/",
            "/w/lab/comparisons/new/",
            f"/checkpoints/{comparison.checkpoint_id}/extract/",
            f"/runs/{extraction.pk}/cancel/",
        ],
    }


# --------------------------------------------------------------------------- login


def test_login_required_everywhere(client, comparison):
    urls = owner_urls(comparison)
    for url in ["/", *urls["get"]]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), url
    for url in urls["post"]:
        response = client.post(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/"), url
    assert client.get("/accounts/login/").status_code == 200
    assert Run.objects.filter(state=Run.State.QUEUED).count() == 3


def test_login_form_signs_in(client, owner, workspace):
    response = client.post("/accounts/login/", {"username": "owner", "password": "owner-pass"})
    assert response.status_code == 302
    assert client.get("/w/lab/").status_code == 200


# --------------------------------------------------------------------------- owner's pages


def test_home_redirects_to_the_only_workspace(browser):
    response = browser.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/w/lab/"


def test_workspace_page_lists_datasets_checkpoints_and_comparisons(browser, comparison):
    response = browser.get("/w/lab/")
    assert response.status_code == 200
    text = response.content.decode()
    assert f'href="/datasets/{comparison.dataset_id}/">Digits</a>' in text
    assert f'href="/checkpoints/{comparison.checkpoint_id}/">mlp-seed0</a>' in text
    assert f'href="/checkpoints/{comparison.checkpoint_b_id}/">mlp-seed1</a>' in text
    assert f'href="/comparisons/{comparison.pk}/"' in text
    assert 'action="/w/lab/datasets/upload/"' in text
    # No upload yet: no list of uploads, and nothing polls for one.
    assert "<h2>Uploads</h2>" not in text and 'hx-get="/w/lab/uploads/"' not in text
    # Runs are active: the runs table polls.
    assert 'hx-get="/w/lab/runs/"' in text


def test_workspace_runs_partial_stops_polling_when_idle(browser, comparison):
    response = htmx_get(browser, "/w/lab/runs/")
    assert response.status_code == 200
    assert POLLING in response.content.decode()
    assert "<html" not in response.content.decode()
    run_with_dependencies(comparison)
    response = htmx_get(browser, "/w/lab/runs/")
    assert response.status_code == 286
    assert POLLING not in response.content.decode()
    assert "succeeded" in response.content.decode()
    # Its extraction keeps one vector per sample (pooling mean): rows are samples, not positions.
    page = browser.get(f"/checkpoints/{comparison.checkpoint_id}/").content.decode()
    assert f"(a row per sample: {comparison.dataset.n_samples} samples)" in page
    assert "positions of" not in page


def test_dataset_page_shows_thumbnails(browser, digits):
    response = browser.get(f"/datasets/{digits.pk}/")
    assert response.status_code == 200
    text = response.content.decode()
    assert f'src="/datasets/{digits.pk}/samples/0.png"' in text
    assert f'src="/datasets/{digits.pk}/samples/47.png"' in text
    assert "digit-0000" in text
    assert "60" in text


def test_sample_thumbnail_is_the_sample(browser, digits):
    response = browser.get(f"/datasets/{digits.pk}/samples/3.png")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (8, 8)
    expected = np.round(digits.load_arrays().x[3, 0] * 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(image), expected)


def test_sample_out_of_range_is_404(browser, digits):
    assert browser.get(f"/datasets/{digits.pk}/samples/60.png").status_code == 404
    assert browser.get(f"/datasets/{digits.pk}/samples/59.png").status_code == 200
    assert browser.get(f"/datasets/{digits.pk}/samples/999999.png").status_code == 404


def test_vector_dataset_has_no_thumbnails(browser, workspace, owner):
    dataset, _ = ingest_dataset(workspace, owner, io.BytesIO(labelled_npz()), "v.npz")
    response = browser.get(f"/datasets/{dataset.pk}/")
    assert response.status_code == 200
    assert "samples/0.png" not in response.content.decode()
    assert browser.get(f"/datasets/{dataset.pk}/samples/0.png").status_code == 404


def test_checkpoint_page_shows_the_layer_tree(browser, ckpt_a, digits):
    response = browser.get(f"/checkpoints/{ckpt_a.pk}/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "Layer tree" in text
    for name in ("flatten", "block1", "block1.0", "block1.1", "block2.0", "head"):
        assert f'<span class="mono">{name}</span>' in text, name
    assert "Linear" in text and "ReLU" in text
    assert "2778" in text
    assert f'action="/checkpoints/{ckpt_a.pk}/extract/"' in text


def test_extract_form_requests_a_run(browser, ckpt_a, digits):
    data = {"dataset": digits.pk, "layers": ["block1", "head"], "pooling": "mean"}
    response = browser.post(f"/checkpoints/{ckpt_a.pk}/extract/", data)
    assert response.status_code == 302
    run = Run.objects.get()
    assert response["Location"] == f"/runs/{run.pk}/"
    assert run.params == {"layers": ["block1", "head"], "pooling": "mean"}
    # The run page lists the layers as plain text, not a Python list.
    page = browser.get(f"/runs/{run.pk}/").content.decode()
    assert '<td class="mono">block1, head</td>' in page and "[&#x27;" not in page
    assert plain([[3, "block1"], [4, "head"]]) == "(3, block1), (4, head)"
    again = browser.post(f"/checkpoints/{ckpt_a.pk}/extract/", data)
    assert again["Location"] == f"/runs/{run.pk}/"
    bad = browser.post(f"/checkpoints/{ckpt_a.pk}/extract/", {**data, "layers": ["nope"]})
    assert bad.status_code == 400
    assert "nope" in bad.content.decode()
    assert Run.objects.count() == 1


def test_new_comparison_form(browser, ckpt_a, ckpt_b, digits):
    page = " ".join(browser.get("/w/lab/").content.decode().split())
    assert ">Checkpoint A:</label>" in page and ">Checkpoint B:</label>" in page
    # Pooling's help says what it does to the comparison, not how an extraction stores it.
    assert "layer output becomes one vector for the comparison" in page
    assert "token sequence is stored" not in page
    data = {
        "checkpoint_a": ckpt_a.pk,
        "checkpoint_b": ckpt_b.pk,
        "dataset": digits.pk,
        "pooling": "mean",
        "measure": "cka/linear",
    }
    response = browser.post("/w/lab/comparisons/new/", data)
    assert response.status_code == 302
    run = Run.objects.get(kind=Run.Kind.COMPARE)
    assert run.params["measure"] == "cka/linear"
    assert response["Location"] == f"/comparisons/{run.pk}/"
    assert run.depends_on.count() == 2
    assert browser.post("/w/lab/comparisons/new/", data)["Location"] == response["Location"]
    assert Run.objects.count() == 3


def test_the_comparison_form_compares_the_layers_chosen(browser, ckpt_a, ckpt_b, digits):
    """Each side's layers are offered from the checkpoint chosen there (htmx draws the fields
    again when one changes); the run compares the ticked layers only, its page says which,
    and its chips for other measures ask for the same layers."""
    page = browser.get("/w/lab/").content.decode()
    assert 'name="layers_a"' not in page  # no checkpoint chosen yet: nothing to tick
    assert "choose checkpoint A to pick among its layers" in page
    fields = htmx_get(
        browser, f"/w/lab/comparisons/new/?checkpoint_a={ckpt_a.pk}&measure=cca/svcca"
    )
    text = fields.content.decode()
    assert fields.status_code == 200 and "<html" not in text  # the form's fields only
    for swapped in ("id_layers_a", "id_layers_a_helptext", "id_layers_b", "id_layers_b_helptext"):
        assert page.count(f'id="{swapped}"') == text.count(f'id="{swapped}"') == 1, swapped
    offered = re.findall(r'name="layers_a" value="([^"]+)"', text)
    assert offered == ckpt_a.layers  # every capturable layer of A, in forward order
    assert 'name="layers_b"' not in text  # B is not chosen yet
    assert re.search(r'<option value="cca/svcca" selected>', text)  # the other values kept
    data = {
        "checkpoint_a": ckpt_a.pk,
        "checkpoint_b": ckpt_b.pk,
        "layers_a": ["block1"],
        "layers_b": ["block2", "head"],
        "dataset": digits.pk,
        "pooling": "mean",
        "measure": "cka/linear",
        "n_permutations": 2,
    }
    response = browser.post("/w/lab/comparisons/new/", data)
    assert response.status_code == 302, response.content.decode()
    run = Run.objects.get(kind=Run.Kind.COMPARE)
    assert (run.params["layers_a"], run.params["layers_b"]) == (["block1"], ["block2", "head"])
    extracted = {r.checkpoint_id: r.params["layers"] for r in run.depends_on.all()}
    assert extracted == {ckpt_a.pk: ["block1"], ckpt_b.pk: ["block2", "head"]}
    assert run_with_dependencies(run).state == Run.State.SUCCEEDED, run.error
    pairs = {(s.activation_a.layer, s.activation_b.layer) for s in run.scores.all()}
    assert pairs == {("block1", "block2"), ("block1", "head")}
    shown = " ".join(browser.get(response["Location"]).content.decode().split())
    assert 'Layers compared: of A, <span class="mono">block1</span>;' in shown
    assert 'of B, <span class="mono">block2, head</span>.' in shown
    assert shown.count('name="layers_a" value="block1"') == len(MEASURES) - 1
    chip = re.search(r'<form method="post" action="/w/lab/comparisons/new/".*?</form>', shown)
    assert chip is not None
    posted = dict(re.findall(r'name="(\w+)" value="([^"]*)"', chip.group(0)))
    posted["layers_b"] = re.findall(r'name="layers_b" value="([^"]*)"', chip.group(0))
    asked = browser.post("/w/lab/comparisons/new/", posted)
    other = Run.objects.get(pk=asked["Location"].split("/")[-2])
    assert other.params["measure"] != "cka/linear"
    assert (other.params["layers_a"], other.params["layers_b"]) == (
        ["block1"],
        ["block2", "head"],
    )
    # a layer A does not have: the form says which, nothing is asked for
    bad = browser.post("/w/lab/comparisons/new/", {**data, "layers_a": ["nope"]})
    assert bad.status_code == 400 and "nope" in bad.content.decode()
    assert Run.objects.filter(kind=Run.Kind.COMPARE).count() == 2


def test_the_checkpoint_page_defaults_to_the_newest_dataset_its_model_reads(
    browser, owner, workspace, ckpt_a, digits
):
    """Newer than the digits: 5-wide vectors (the MLP reads 64 values) and texts (it reads
    arrays). Before the fit check the page takes the newest it may read, and says so; once
    the check has run, the digits, and says why not the newest."""
    from tests.formats import texts_jsonl
    from webapp.catalog.fits import check_fits

    narrow, _ = ingest_dataset(workspace, owner, io.BytesIO(labelled_npz()), "v.npz", "Narrow")
    texts, _ = ingest_dataset(workspace, owner, io.BytesIO(texts_jsonl(8)), "t.jsonl", "Texts")

    def chosen() -> tuple[int, str]:
        page = browser.get(f"/checkpoints/{ckpt_a.pk}/").content.decode()
        selected = re.search(r'<option value="(\d+)" selected>', page)
        why = re.search(r'<p class="muted small" id="dataset-why">(.*?)</p>', page)
        assert selected and why
        return int(selected.group(1)), why.group(1)

    picked, why = chosen()
    assert picked == narrow.pk
    assert "none is checked yet" in why and escape("reads arrays; Texts holds text") in why
    check_fits(ckpt_a)  # runs the first sample of each dataset through the model
    picked, why = chosen()
    assert picked == digits.pk
    assert why.startswith("Digits: the newest dataset mlp-seed0 is known to read;")
    # asked for by name, the page takes it and says nothing more
    page = browser.get(f"/checkpoints/{ckpt_a.pk}/?dataset={texts.pk}").content.decode()
    assert f'<option value="{texts.pk}" selected>' in page and "dataset-why" not in page
    # an extraction's dataset comes next after an asked one
    extraction, _ = request_extraction(owner, ckpt_a, digits, ["head"], "mean")
    assert run_with_dependencies(extraction).state == Run.State.SUCCEEDED
    assert chosen() == (digits.pk, "Digits: the dataset of its latest extraction.")


# --------------------------------------------------------------------------- htmx polling


def test_comparison_page_polls_until_terminal(browser, comparison):
    url = f"/comparisons/{comparison.pk}/"
    page = browser.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert POLLING in text
    assert f'hx-get="{url}"' in text
    assert 'id="matrix-data"' not in text

    queued = htmx_get(browser, url)
    assert queued.status_code == 200
    assert POLLING in queued.content.decode()
    assert "<html" not in queued.content.decode()  # only the partial

    Run.objects.filter(pk=comparison.pk).update(state=Run.State.RUNNING, progress=0.5)
    running = htmx_get(browser, url)
    assert running.status_code == 200
    assert POLLING in running.content.decode()
    assert 'value="0.5"' in running.content.decode()
    Run.objects.filter(pk=comparison.pk).update(state=Run.State.QUEUED, progress=0.0)

    assert run_with_dependencies(comparison).state == Run.State.SUCCEEDED
    done = htmx_get(browser, url)
    assert done.status_code == 286
    # The poll's answer is a part of the page under the page's URL: caches must tell them apart.
    assert "HX-Request" in done["Vary"]
    text = done.content.decode()
    assert POLLING not in text
    matrix = matrix_data(text)
    assert matrix["run"] == comparison.pk
    assert matrix["state"] == "succeeded"
    assert len(matrix["value"]) == 4
    assert all(v is not None for row in matrix["value"] for v in row)
    assert matrix["provenance"]["n_permutations"] == 2

    full = browser.get(url)
    assert full.status_code == 200
    assert "HX-Request" in full["Vary"]
    assert POLLING not in full.content.decode()
    assert matrix_data(full.content.decode()) == matrix
    # The heatmap island draws it as SVG: the page loads no charting library.
    assert "js/heatmap/index.js" in full.content.decode()
    assert "plotly" not in full.content.decode()
    definition = DEFINITIONS[comparison.params["measure"]]
    assert matrix["measure"]["definition"] == definition
    assert escape(definition) in full.content.decode()
    # the scores table's columns say what they hold on hover (its estimators are terse words)
    assert 'title="how this score was computed' in full.content.decode()


def test_failed_comparison_stops_polling_with_the_error(browser, comparison):
    for dependency in comparison.depends_on.all():
        dependency.finish(Run.State.FAILED, "layer 'head' produced NaN or Inf activations")
    from workers.tasks import execute_run

    execute_run(comparison.pk)
    response = htmx_get(browser, f"/comparisons/{comparison.pk}/")
    assert response.status_code == 286
    text = response.content.decode()
    assert "This comparison failed" in text
    assert "produced NaN or Inf" in text.replace("&#x27;", "'")
    assert POLLING not in text


def test_run_page_polls_until_terminal(browser, ckpt_a, digits, owner):
    run, _ = request_extraction(owner, ckpt_a, digits)
    url = f"/runs/{run.pk}/"
    assert POLLING in browser.get(url).content.decode()
    assert htmx_get(browser, url).status_code == 200
    response = browser.post(f"/runs/{run.pk}/cancel/")
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.state == Run.State.CANCELLED
    done = htmx_get(browser, url)
    assert done.status_code == 286
    # The poll's answer is a part of the page under the page's URL: caches must tell them apart.
    assert "HX-Request" in done["Vary"]
    assert "cancelled" in done.content.decode()
    assert POLLING not in done.content.decode()


# --------------------------------------------------------------------------- isolation


def test_outsider_gets_404_on_every_page(client, outsider, comparison):
    client.force_login(outsider)
    urls = owner_urls(comparison)
    for url in urls["get"]:
        assert client.get(url).status_code == 404, url
        assert htmx_get(client, url).status_code == 404, url
    for url in urls["post"]:
        assert client.post(url).status_code == 404, url
    assert Run.objects.filter(state=Run.State.QUEUED).count() == 3
    home = client.get("/")
    assert home.status_code == 302 and home["Location"] == "/w/elsewhere/"
    assert "Digits" not in client.get("/w/elsewhere/").content.decode()


def test_viewer_sees_but_cannot_change(client, django_user_model, workspace, comparison):
    viewer = django_user_model.objects.create_user("viewer", password="viewer-pass")
    workspace.memberships.create(user=viewer, role="viewer")
    client.force_login(viewer)
    urls = owner_urls(comparison)
    polls = {"/w/lab/runs/", "/w/lab/uploads/"}  # parts of the workspace page
    for url in urls["get"]:
        expected = 302 if url in polls else 200
        assert client.get(url).status_code == expected, url
        assert htmx_get(client, url).status_code in (200, 286), url
    for url in urls["post"]:
        assert client.post(url).status_code == 404, url
    assert Run.objects.filter(state=Run.State.QUEUED).count() == 3


def test_a_polled_part_asked_for_plainly_goes_to_its_page(browser, comparison):
    assert browser.get("/w/lab/runs/")["Location"] == "/w/lab/#runs"
    assert browser.get("/w/lab/uploads/")["Location"] == "/w/lab/#uploads"


# --------------------------------------------------------------------------- escaping


def test_labels_and_names_are_escaped(browser, workspace, owner):
    script = "<script>alert(1)</script>"
    x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    content = npz_bytes(
        x=x,
        y=np.array([script, "b", script, "b"]),
        ids=np.array([f"<b>id{i}</b>" for i in range(4)]),
    )
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(content), "x.npz", name=f"evil {script}"
    )
    for url in (f"/datasets/{dataset.pk}/", "/w/lab/"):
        text = browser.get(url).content.decode()
        assert script not in text, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, url
        assert "<b>id0</b>" not in text, url


def test_comparison_page_offers_every_registered_measure(browser, comparison):
    from analysis.measures.registry import MEASURES

    page = browser.get(f"/comparisons/{comparison.pk}/").content.decode()
    for measure in MEASURES.values():
        assert measure.name in page
    computed = f'href="/comparisons/{comparison.pk}/"'
    assert computed in page
    queued_forms = page.count('name="measure" value=')
    assert queued_forms == len(MEASURES) - 1


def test_the_measure_chips_keep_the_reading_of_token_level_sets(
    browser, owner, ckpt_a, ckpt_b, digits
):
    """Two comparisons of one pair by one measure, one pooling each sample's tokens to their
    mean and one per position: each page's chip for the measure is the page itself, the page
    says which reading it is, and its chips for the other measures ask for the same reading."""
    from analysis.measures.registry import MEASURES

    tokens = {"pooling": "tokens", "n_permutations": 2}
    pooled, _ = request_comparison(owner, ckpt_a, ckpt_b, digits, positions="mean", **tokens)
    per_position, _ = request_comparison(
        owner, ckpt_a, ckpt_b, digits, positions="per-position", **tokens
    )
    page = browser.get(f"/comparisons/{per_position.pk}/").content.decode()
    assert f'class="chip current" href="/comparisons/{per_position.pk}/"' in page
    assert f'href="/comparisons/{pooled.pk}/"' not in page
    assert "pooling tokens, positions per-position" in page
    assert page.count('name="positions" value="per-position"') == len(MEASURES) - 1
    chip = {
        "checkpoint_a": ckpt_a.pk,
        "checkpoint_b": ckpt_b.pk,
        "dataset": digits.pk,
        "pooling": "tokens",
        "pooling_b": "",
        "positions": "per-position",
        "measure": "cka/rbf",
    }
    asked = browser.post("/w/lab/comparisons/new/", chip)
    assert Run.objects.get(pk=asked["Location"].split("/")[-2]).params["positions"] == (
        "per-position"
    )


def test_the_provenance_names_both_poolings(browser, owner, ckpt_a, ckpt_b, digits):
    """A comparison whose sides were pooled differently says so in its provenance line too,
    not only in its heading."""
    run, _ = request_comparison(
        owner, ckpt_a, ckpt_b, digits, pooling="mean", pooling_b="flatten", n_permutations=2
    )
    assert run_with_dependencies(run).state == Run.State.SUCCEEDED, run.error
    page = browser.get(f"/comparisons/{run.pk}/").content.decode()
    provenance = page[page.index("Provenance: measure") :]
    assert "pooling mean (B: flatten)" in " ".join(provenance.split())


def test_pair_page_drills_down_to_samples(browser, comparison):
    run_with_dependencies(comparison)
    layers = comparison.params["layers_a"]
    score = comparison.scores.get(layer_a=layers[1], layer_b=layers[1])
    agreement = score.sample_agreement.load_array()
    assert agreement.shape == (comparison.dataset.n_samples,)
    assert np.all((agreement >= 0) & (agreement <= 1))

    page = browser.get(f"/comparisons/{comparison.pk}/pairs/1/1/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"{score.value:.4f}" in html and f"{score.baseline:.4f}" in html
    least = comparison.dataset.samples([int(np.argmin(agreement))])[0]
    most = comparison.dataset.samples([int(np.argmax(agreement))])[0]
    assert least["id"] in html and most["id"] in html
    shared = r"title=\"(\d+) of (\d+) neighbours shared \(Jaccard [0-9.]+\): (\d+) samples\""
    bars = [tuple(map(int, found)) for found in re.findall(shared, html)]
    k = score.parameters["knn_k"]
    assert [(j, of) for j, of, _ in bars] == [(j, k) for j in range(k + 1)]  # a bar per value
    counts = [count for *_, count in bars]
    assert sum(counts) == comparison.dataset.n_samples
    chance = knn_jaccard_chance(k, comparison.dataset.n_samples)
    assert f"mean {agreement.mean():.3f}, against {chance:.4f} by chance" in html
    comparison_page = browser.get(f"/comparisons/{comparison.pk}/").content.decode()
    assert f'href="/comparisons/{comparison.pk}/pairs/1/1/"' in comparison_page


def test_pair_page_lists_the_same_layers_by_other_measures(
    browser, owner, ckpt_a, ckpt_b, digits, comparison
):
    run_with_dependencies(comparison)
    other, _ = request_comparison(
        owner, ckpt_a, ckpt_b, digits, measure="procrustes/angular", n_permutations=2
    )
    other = run_with_dependencies(other)
    layers = comparison.params["layers_a"]
    distance = other.scores.get(layer_a=layers[1], layer_b=layers[2])
    html = browser.get(f"/comparisons/{comparison.pk}/pairs/1/2/").content.decode()
    assert "The same two layers by other measures" in html
    assert "Procrustes angular distance" in html and f"{distance.value:.4f}" in html
    assert f'href="/comparisons/{other.pk}/"' in html
    # each measure's one-line definition beside its value
    for measure_id in (comparison.params["measure"], "procrustes/angular"):
        assert escape(DEFINITIONS[measure_id]) in html


def test_pair_page_refuses_cells_outside_the_matrix(browser, client, outsider, comparison):
    run_with_dependencies(comparison)
    assert browser.get(f"/comparisons/{comparison.pk}/pairs/99/0/").status_code == 404
    client.force_login(outsider)
    assert client.get(f"/comparisons/{comparison.pk}/pairs/0/0/").status_code == 404


def test_comparison_exports_as_csv_with_provenance(browser, client, outsider, comparison):
    import csv

    run_with_dependencies(comparison)
    response = browser.get(f"/comparisons/{comparison.pk}/scores.csv")
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == comparison.scores.count()
    first = comparison.scores.order_by("id").first()
    assert float(rows[0]["value"]) == pytest.approx(first.value)
    assert rows[0]["measure"] == "cka/linear" and rows[0]["pooling"] == "mean"
    assert rows[0]["checkpoint_a"] == comparison.checkpoint.name
    client.force_login(outsider)
    assert client.get(f"/comparisons/{comparison.pk}/scores.csv").status_code == 404


def test_samples_without_images_show_their_first_values(workspace, owner, digits):
    from tests.webapp.builders import tabular_csv

    table, _ = ingest_dataset(workspace, owner, io.BytesIO(tabular_csv()), "people.csv")
    [third] = table.samples([3])
    assert (third["id"], third["label"], third["row"]) == ("r3", "tall", "1.8, 63")
    wide, _ = ingest_dataset(
        workspace, owner, io.BytesIO(npz_bytes(x=np.arange(40.0).reshape(4, 10))), "wide.npz"
    )
    assert wide.samples([1])[0]["row"] == "10, 11, 12, 13, 14, 15, …"
    assert "row" not in digits.samples([0])[0]  # images have thumbnails instead
