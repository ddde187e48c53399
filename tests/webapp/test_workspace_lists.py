"""The workspace page's datasets and checkpoints: found by words of a name or description,
filtered by modality, format and seed group, a page at a time, swapped in place with htmx."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from tests.conftest import torchscript_mlp_bytes
from tests.webapp.builders import labelled_npz, mlp_safetensors, npz_bytes
from webapp.catalog import listing
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset
from webapp.pages.forms import CATALOG_PER_PAGE

pytestmark = pytest.mark.django_db


def vectors(n: int) -> bytes:
    return npz_bytes(x=np.arange(n * 3, dtype=np.float32).reshape(n, 3))


@pytest.fixture
def catalog(workspace, owner, digits, tmp_path):
    """Digits (image), "Animals" (vectors, found by its description) and enough unnamed
    vector sets for a second page; two seeds of an MLP in one seed group and a safetensors
    MLP in none."""
    ingest_dataset(workspace, owner, io.BytesIO(labelled_npz()), "a.npz", "Animals", "cats, dogs")
    for n in range(4, 4 + CATALOG_PER_PAGE):
        ingest_dataset(workspace, owner, io.BytesIO(vectors(n)), f"v{n}.npz", f"Vectors {n}")
    for seed in (0, 1):
        ingest_checkpoint(
            workspace,
            owner,
            io.BytesIO(torchscript_mlp_bytes(seed)),
            f"mlp{seed}.pt",
            f"mlp-seed{seed}",
            seed_group="mlp recipe",
        )
    ingest_checkpoint(
        workspace,
        owner,
        io.BytesIO(mlp_safetensors(2, tmp_path)),
        "w.safetensors",
        "weights",
        architecture="mlp",
        description="exported from the trainer",
    )
    return workspace


def names(rows) -> set[str]:
    return {row.name for row in rows}


def test_the_service_finds_by_words_and_filters(catalog):
    assert names(listing.datasets(catalog, "cats")) == {"Animals"}
    assert names(listing.datasets(catalog, "ANIMALS dogs")) == {"Animals"}
    assert names(listing.datasets(catalog, modality="image")) == {"Digits"}
    assert listing.datasets(catalog, modality="vector").count() == 1 + CATALOG_PER_PAGE
    assert listing.modalities(catalog) == ["image", "vector"]
    assert names(listing.checkpoints(catalog, "trainer")) == {"weights"}
    assert names(listing.checkpoints(catalog, format="torchscript")) == {"mlp-seed0", "mlp-seed1"}
    assert names(listing.checkpoints(catalog, seed_group="mlp recipe")) == {
        "mlp-seed0",
        "mlp-seed1",
    }
    assert names(listing.checkpoints(catalog, "seed1", seed_group="mlp recipe")) == {"mlp-seed1"}
    assert not listing.checkpoints(catalog, format="onnx").exists()
    assert listing.seed_groups(catalog) == ["mlp recipe"]


def rows_of(html: str, list_id: str) -> list[str]:
    """The names in the first column of the list's table."""
    part = html.split(f'id="{list_id}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr>\s*<td><a href=\"[^\"]+\">([^<]+)</a>", part)


def test_the_lists_filter_and_page_in_place(client, owner, catalog):
    client.force_login(owner)
    page = client.get("/w/lab/").content.decode()
    assert len(rows_of(page, "datasets-list")) == CATALOG_PER_PAGE  # the first page
    assert "datasets-page=2" in page  # "older →"
    assert sorted(rows_of(page, "checkpoints-list")) == ["mlp-seed0", "mlp-seed1", "weights"]

    # An htmx request gets the list alone, filtered.
    found = client.get("/w/lab/datasets/?datasets-q=dogs", HTTP_HX_REQUEST="true")
    assert found.status_code == 200
    html = found.content.decode()
    assert html.lstrip().startswith('<div id="datasets-list">')
    assert rows_of(html, "datasets-list") == ["Animals"]
    image = client.get("/w/lab/datasets/?datasets-modality=image", HTTP_HX_REQUEST="true")
    assert rows_of(image.content.decode(), "datasets-list") == ["Digits"]
    second = client.get(
        "/w/lab/datasets/?datasets-modality=vector&datasets-page=2", HTTP_HX_REQUEST="true"
    )
    assert len(rows_of(second.content.decode(), "datasets-list")) == 1
    assert "page 2 of 2" in second.content.decode()
    grouped = client.get(
        "/w/lab/checkpoints/?checkpoints-seed_group=mlp+recipe&checkpoints-q=seed0",
        HTTP_HX_REQUEST="true",
    )
    assert rows_of(grouped.content.decode(), "checkpoints-list") == ["mlp-seed0"]
    safetensors = client.get(
        "/w/lab/checkpoints/?checkpoints-format=safetensors", HTTP_HX_REQUEST="true"
    )
    assert rows_of(safetensors.content.decode(), "checkpoints-list") == ["weights"]
    none = client.get("/w/lab/checkpoints/?checkpoints-q=nothing", HTTP_HX_REQUEST="true")
    assert "No checkpoint matches." in none.content.decode()

    # The page itself keeps the filters (a link, a reload, no JavaScript).
    page = client.get("/w/lab/?checkpoints-format=safetensors&q=x").content.decode()
    assert rows_of(page, "checkpoints-list") == ["weights"]
    assert len(rows_of(page, "datasets-list")) == CATALOG_PER_PAGE
    plain = client.get("/w/lab/checkpoints/?checkpoints-format=onnx")
    assert plain.status_code == 302
    assert plain["Location"] == "/w/lab/?checkpoints-format=onnx#checkpoints"

    # A value that is not one of the choices is refused, saying which.
    bad = client.get("/w/lab/datasets/?datasets-modality=audio", HTTP_HX_REQUEST="true")
    assert bad.status_code == 400 and "modality" in bad.content.decode()
    assert client.get("/w/lab/?checkpoints-seed_group=other").status_code == 400


def test_an_outsider_sees_no_list(client, outsider, catalog):
    client.force_login(outsider)
    assert client.get("/w/lab/datasets/", HTTP_HX_REQUEST="true").status_code == 404
    assert client.get("/w/lab/checkpoints/", HTTP_HX_REQUEST="true").status_code == 404


def test_the_datasets_list_counts_the_classes_its_samples_carry(client, owner, catalog):
    """Classes are the distinct labels stored: digits' integer labels have no names (the list
    said 0 for them), "Animals" has three named ones, unlabelled vectors have none."""
    from tests.conftest import digits_npz_bytes

    client.force_login(owner)
    y = np.load(io.BytesIO(digits_npz_bytes(60)))["y"]
    want = {"Digits": str(len(set(y.tolist()))), "Animals": "3", "Vectors 4": "—"}
    for name, classes in want.items():
        html = client.get(f"/w/lab/datasets/?datasets-q={name}", HTTP_HX_REQUEST="true")
        part = html.content.decode().split(f">{name}</a>", 1)[1].split("</tr>", 1)[0]
        cells = re.findall(r"<td[^>]*>(.*?)</td>", part, re.S)
        assert cells[3] == classes, (name, cells)  # samples, modality, shape, classes
    digits = client.get("/w/lab/datasets/?datasets-q=Digits", HTTP_HX_REQUEST="true")
    pk = re.search(r'href="/datasets/(\d+)/">Digits<', digits.content.decode())
    assert pk is not None
    page = client.get(f"/datasets/{pk.group(1)}/").content.decode()
    assert f"<dd>{want['Digits']} distinct labels, numbered, without names</dd>" in page
