"""The explorer's server side: colourings, selections drawn on a projection (resolved against
the stored coordinates), saved and exported, the same through the API, and two projections
compared side by side."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_digits
from sklearn.neighbors import NearestNeighbors

from analysis.explorer.selections import (
    neighbourhood_agreement,
    points_in_polygon,
    similarity_align,
)
from tests.conftest import api_client_for, run_with_dependencies
from webapp.catalog.ingest import ingest_dataset
from webapp.catalog.models import Membership
from webapp.runs.models import Run, Selection
from webapp.runs.submit import request_comparison, request_projection

pytestmark = pytest.mark.django_db

N = 80


@pytest.fixture
def tagged_digits(workspace, owner):
    """80 real digits with metadata: a text column, a float column and a small int column."""
    digits = load_digits()
    buffer = io.BytesIO()
    np.savez(
        buffer,
        x=(digits.images[:N] / 16).astype(np.float32)[:, None],
        y=digits.target[:N],
        ids=np.array([f"digit-{i:04d}" for i in range(N)]),
        writer=np.array([f"w{i % 3}" for i in range(N)]),
        ink=digits.images[:N].sum(axis=(1, 2)).astype(np.float64),
        batch=np.arange(N) % 4,
    )
    buffer.seek(0)
    dataset, _ = ingest_dataset(workspace, owner, buffer, "tagged.npz", "Tagged digits")
    return dataset


@pytest.fixture
def projections(owner, tagged_digits, ckpt_a):
    """PCA of block1 and of block2 of one MLP, both finished."""
    runs = []
    for layer in ("block1", "block2"):
        run, _ = request_projection(owner, ckpt_a, tagged_digits, layer, method="pca")
        run = run_with_dependencies(run)
        assert run.state == Run.State.SUCCEEDED, run.error
        runs.append(run)
    return runs


def _box(coordinates: np.ndarray, quantile: float = 0.5) -> list[list[float]]:
    """A box over the lower-left part of the picture: about a quarter of the points."""
    x0, y0 = coordinates.min(axis=0) - 1
    x1, y1 = np.quantile(coordinates, quantile, axis=0)
    return [
        [float(x0), float(y0)],
        [float(x1), float(y0)],
        [float(x1), float(y1)],
        [float(x0), float(y1)],
    ]


def _colourings(response) -> list[dict]:
    """The colourings a page offers (its json_script)."""
    page = response.content.decode()
    start = page.index('<script id="colourings" type="application/json">')
    return json.loads(page[page.index(">", start) + 1 : page.index("</script>", start)])


def test_colourings_offer_labels_metadata_kept_share_and_agreement(
    client, owner, tagged_digits, ckpt_a, ckpt_b, projections
):
    run = projections[0]
    client.force_login(owner)
    offered = {c["key"]: c for c in _colourings(client.get(f"/projections/{run.pk}/"))}
    assert list(offered) == ["label", "meta:writer", "meta:ink", "meta:batch", "kept"]
    assert offered["meta:writer"]["names"] == ["w0", "w1", "w2"]
    assert offered["label"]["names"] == [str(k) for k in range(10)]

    def colour(key):
        response = client.get(f"/projections/{run.pk}/colour", {"key": key})
        assert response.status_code == 200, key
        return response["X-Colouring-Kind"], response.content

    kind, raw = colour("meta:writer")
    assert kind == "categorical"
    assert np.array_equal(np.frombuffer(raw, "<u2"), np.arange(N) % 3)
    kind, raw = colour("meta:batch")  # few distinct integers: categories
    assert kind == "categorical" and np.array_equal(np.frombuffer(raw, "<u2"), np.arange(N) % 4)
    kind, raw = colour("meta:ink")
    assert kind == "continuous"
    np.testing.assert_allclose(np.frombuffer(raw, "<f4"), tagged_digits.column("meta:ink"))
    kind, raw = colour("kept")
    assert np.array_equal(np.frombuffer(raw, "<f4"), run.projection.kept.load_array())
    assert client.get(f"/projections/{run.pk}/colour", {"key": "meta:nope"}).status_code == 404

    # Once block1 is compared with another model, its per-sample kNN agreement colours too.
    comparison, _ = request_comparison(
        owner, ckpt_a, ckpt_b, tagged_digits, ["block1"], ["block1"], n_bootstrap=0
    )
    comparison = run_with_dependencies(comparison)
    score = comparison.scores.get()
    titles = [c["title"] for c in _colourings(client.get(f"/projections/{run.pk}/"))]
    assert "kNN agreement with mlp-seed1 · block1" in titles
    kind, raw = colour(f"agreement:{score.pk}")
    assert np.array_equal(np.frombuffer(raw, "<f4"), score.sample_agreement.load_array())
    # A score of another layer is not offered on this projection.
    assert (
        client.get(
            f"/projections/{projections[1].pk}/colour", {"key": f"agreement:{score.pk}"}
        ).status_code
        == 404
    )


def test_a_lasso_is_resolved_on_the_server_saved_shared_and_exported(
    client, owner, tagged_digits, projections
):
    run = projections[0]
    coordinates = run.projection.coordinates.load_array()
    polygon = _box(coordinates)
    expected = points_in_polygon(coordinates, polygon)
    assert 5 < len(expected) < N
    client.force_login(owner)

    response = client.post(f"/projections/{run.pk}/select/", {"polygon": json.dumps(polygon)})
    assert response.status_code == 201
    selection = Selection.objects.get()
    assert selection.count == len(expected) and selection.name == ""
    assert selection.projection == run and selection.polygon == polygon
    panel = response.content.decode()
    assert f'data-selection="{selection.pk}"' in panel and f"{len(expected)} samples" in panel
    indices = client.get(f"/selections/{selection.pk}/indices.u32").content
    assert np.array_equal(np.frombuffer(indices, "<u4"), expected)

    # Named and tagged, it is listed on every projection of the dataset and opens by URL.
    saved = client.post(
        f"/selections/{selection.pk}/",
        {"name": "lower left", "tags": "odd, look again,odd", "run": run.pk},
    )
    assert saved.status_code == 200
    selection.refresh_from_db()
    assert selection.name == "lower left" and selection.tags == ["odd", "look again"]
    other_page = client.get(f"/projections/{projections[1].pk}/").content.decode()
    assert "lower left" in other_page and f"?sel={selection.pk}" in other_page
    reopened = client.get(f"/projections/{projections[1].pk}/selections/{selection.pk}/")
    assert reopened.status_code == 200 and "lower left" in reopened.content.decode()

    # Exports: every selected sample with its metadata and coordinates in the chosen projection.
    exported = client.get(f"/selections/{selection.pk}/export.csv")
    assert exported["Content-Disposition"] == 'attachment; filename="lower-left.csv"'
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert [int(r["index"]) for r in rows] == expected.tolist()
    assert set(rows[0]) == {"index", "id", "label", "writer", "ink", "batch", "x", "y"}
    first = int(expected[0])
    assert rows[0]["id"] == f"digit-{first:04d}" and rows[0]["writer"] == f"w{first % 3}"
    assert float(rows[0]["x"]) == pytest.approx(float(coordinates[first, 0]))
    other_xy = projections[1].projection.coordinates.load_array()
    parquet = client.get(
        f"/selections/{selection.pk}/export.parquet", {"projection": projections[1].pk}
    )
    table = pq.read_table(io.BytesIO(parquet.content)).to_pydict()
    assert table["index"] == expected.tolist()
    np.testing.assert_array_equal(table["x"], other_xy[expected, 0])
    np.testing.assert_allclose(table["ink"], tagged_digits.column("meta:ink")[expected])
    assert client.get(f"/selections/{selection.pk}/export.xlsx").status_code == 404


@pytest.mark.parametrize(
    "polygon, message",
    [
        ("", "JSON list"),
        ("[[0, 0], [1, 1]]", "3 to"),
        ('[[0, 0], [1, "a"], [2, 2]]', "pair"),
        ("[[0, 0], [1, NaN], [2, 2]]", "finite"),
        ('{"x": 1}', "3 to"),
    ],
)
def test_bad_polygons_are_refused_and_store_nothing(client, owner, projections, polygon, message):
    client.force_login(owner)
    response = client.post(f"/projections/{projections[0].pk}/select/", {"polygon": polygon})
    assert response.status_code == 400 and message in response.content.decode()
    assert not Selection.objects.exists()


def test_outsiders_and_viewers_cannot_select_or_see_selections(
    client, owner, outsider, django_user_model, workspace, projections
):
    run = projections[0]
    polygon = _box(run.projection.coordinates.load_array())
    client.force_login(owner)
    client.post(f"/projections/{run.pk}/select/", {"polygon": json.dumps(polygon)})
    selection = Selection.objects.get()
    viewer = django_user_model.objects.create_user("viewer", password="x")
    Membership.objects.create(workspace=workspace, user=viewer, role=Membership.Role.VIEWER)
    client.force_login(viewer)
    assert client.get(f"/selections/{selection.pk}/export.csv").status_code == 200
    assert (
        client.post(f"/projections/{run.pk}/select/", {"polygon": json.dumps(polygon)}).status_code
        == 404
    )
    assert client.post(f"/selections/{selection.pk}/", {"name": "mine"}).status_code == 404
    client.force_login(outsider)
    for url in (
        f"/selections/{selection.pk}/indices.u32",
        f"/selections/{selection.pk}/export.csv",
        f"/projections/{run.pk}/selections/{selection.pk}/",
        f"/projections/{run.pk}/colour?key=kept",
        f"/projections/{run.pk}/vs/{projections[1].pk}/",
        f"/projections/{run.pk}/vs/{projections[1].pk}/agreement.f32",
    ):
        assert client.get(url).status_code == 404, url
    assert Selection.objects.count() == 1


def test_two_projections_side_by_side(client, owner, digits, ckpt_a, projections):
    a, b = projections
    client.force_login(owner)
    page = client.get(f"/projections/{a.pk}/vs/{b.pk}/", {"k": 7})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="scatter-a"' in html and 'id="scatter-b"' in html and 'value="7"' in html

    near_a = a.projection.neighbours.load_array()
    near_b = b.projection.neighbours.load_array()
    assert near_a.shape == (N, 30)  # stored wide enough for the k slider
    expected = neighbourhood_agreement(near_a, near_b, 7)
    raw = client.get(f"/projections/{a.pk}/vs/{b.pk}/agreement.f32", {"k": 7}).content
    np.testing.assert_allclose(np.frombuffer(raw, "<f4"), expected, rtol=1e-6)
    worst = int(np.argsort(expected, kind="stable")[0])
    changed = client.get(f"/projections/{a.pk}/vs/{b.pk}/changed/", {"k": 7}).content.decode()
    first_listed = changed.split('data-index="', 1)[1].split('"', 1)[0]
    assert int(first_listed) == worst  # lowest agreement first
    # k beyond what was stored is clamped to it.
    clamped = client.get(f"/projections/{a.pk}/vs/{b.pk}/agreement.f32", {"k": 500}).content
    np.testing.assert_allclose(
        np.frombuffer(clamped, "<f4"), neighbourhood_agreement(near_a, near_b, 30), rtol=1e-6
    )
    displacement = client.get(f"/projections/{a.pk}/vs/{b.pk}/displacement.f32").content
    assert np.frombuffer(displacement, "<f4").shape == (N,)
    aligned = np.frombuffer(client.get(f"/projections/{a.pk}/vs/{b.pk}/aligned.f32").content, "<f4")
    coords_a = a.projection.coordinates.load_array()
    coords_b = b.projection.coordinates.load_array()
    np.testing.assert_allclose(
        aligned.reshape(-1, 2), similarity_align(coords_b, coords_a)[0], rtol=1e-5, atol=1e-5
    )
    # A lasso on the right side, drawn on its aligned coordinates, is resolved in that frame.
    polygon = _box(aligned.reshape(-1, 2))
    selected = client.post(
        f"/projections/{b.pk}/select/?aligned_to={a.pk}", {"polygon": json.dumps(polygon)}
    )
    assert selected.status_code == 201
    indices = Selection.objects.latest("pk").indices.load_array()
    np.testing.assert_array_equal(indices, points_in_polygon(aligned.reshape(-1, 2), polygon))
    assert not np.array_equal(indices, points_in_polygon(coords_b, polygon))
    # A projection of another dataset cannot be put beside it.
    other, _ = request_projection(owner, ckpt_a, digits, "block1")
    other = run_with_dependencies(other)
    assert client.get(f"/projections/{a.pk}/vs/{other.pk}/").status_code == 404
    assert client.get(f"/projections/{a.pk}/vs/{b.pk}/bogus.f32").status_code == 404


def test_two_pictures_of_one_layer_are_coloured_by_the_agreement_of_the_pictures(
    client, owner, tagged_digits, ckpt_a, projections
):
    """PCA and t-SNE of the same activations: every sample's original-space neighbourhood is
    the same on both sides, so "agreement" (1 for all) is neither offered as a colouring nor
    ranked; the page says why and colours by the agreement of the two pictures (the Jaccard
    index of each sample's k nearest 2-D neighbours in each) first."""
    pca = projections[0]
    tsne, _ = request_projection(
        owner, ckpt_a, tagged_digits, "block1", method="tsne", perplexity=10.0
    )
    tsne = run_with_dependencies(tsne)
    assert tsne.projection.activation_id == pca.projection.activation_id
    client.force_login(owner)
    html = client.get(f"/projections/{pca.pk}/vs/{tsne.pk}/").content.decode()
    colourings = json.loads(
        html.split('id="colourings" type="application/json">', 1)[1].split("<")[0]
    )
    assert [c["key"] for c in colourings][:2] == ["picture", "displacement"]
    assert colourings[0]["bounds"] == [0.0, 1.0]
    assert "agreement" not in [c["key"] for c in colourings]
    assert 'data-testid="same-space"' in html and "agreement is 1 for all" in html
    assert "coloured by the <strong>agreement of the two pictures</strong>" in html
    k = 5
    served = client.get(f"/projections/{pca.pk}/vs/{tsne.pk}/picture.f32?k={k}")
    values = np.frombuffer(served.content, dtype="<f4")
    near = [
        NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy, return_distance=False)[:, 1:]
        for xy in (p.projection.coordinates.load_array() for p in (pca, tsne))
    ]
    expected = [len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in zip(*near, strict=True)]
    np.testing.assert_allclose(values, expected, atol=1e-6)
    assert 0 < values.mean() < 1
    changed = client.get(f"/projections/{pca.pk}/vs/{tsne.pk}/changed/").content.decode()
    assert 'data-testid="same-space"' in changed and 'data-index="' not in changed
    # Two layers: agreement first, as before.
    a, b = projections
    html = client.get(f"/projections/{a.pk}/vs/{b.pk}/").content.decode()
    assert 'data-testid="same-space"' not in html
    assert [
        c["key"]
        for c in json.loads(
            html.split('id="colourings" type="application/json">', 1)[1].split("<")[0]
        )
    ][:3] == ["agreement", "picture", "displacement"]


def test_selections_and_neighbourhood_agreement_through_the_api(
    owner, outsider, tagged_digits, projections
):
    api = api_client_for(owner)
    a, b = projections
    polygon = _box(a.projection.coordinates.load_array())
    created = api.post(
        "/api/v1/selections/",
        {"projection": a.pk, "polygon": polygon, "name": "corner", "tags": ["qa"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    expected = points_in_polygon(a.projection.coordinates.load_array(), polygon)
    assert body["count"] == len(expected) and body["tags"] == ["qa"] and body["workspace"] == "lab"
    listed = api.post(
        "/api/v1/selections/", {"dataset": tagged_digits.pk, "indices": [5, 3, 3, 9]}, format="json"
    )
    assert listed.status_code == 201 and listed.json()["count"] == 3
    assert api.get(f"/api/v1/selections/{listed.json()['id']}/indices/").json() == {
        "indices": [3, 5, 9]
    }
    for bad in (
        {"projection": a.pk},
        {"dataset": tagged_digits.pk, "indices": [N]},
        {"projection": a.pk, "polygon": [[0, 0], [1, 1]]},
    ):
        response = api.post("/api/v1/selections/", bad, format="json")
        assert response.status_code == 400 and response.json()["detail"], bad
    assert Selection.objects.count() == 2

    selection = body["id"]
    renamed = api.patch(
        f"/api/v1/selections/{selection}/",
        {"name": "corner 2", "tags": ["a", "a", "b"]},
        format="json",
    )
    assert renamed.status_code == 200 and renamed.json()["tags"] == ["a", "b"]
    assert [s["id"] for s in api.get("/api/v1/selections/", {"tag": "b"}).json()["results"]] == [
        selection
    ]
    exported = api.get(
        f"/api/v1/selections/{selection}/export/", {"file": "parquet", "projection": b.pk}
    )
    table = pq.read_table(io.BytesIO(exported.content)).to_pydict()
    assert table["index"] == expected.tolist()
    assert api.get(f"/api/v1/selections/{selection}/export/", {"file": "xls"}).status_code == 400

    agreement = api.get(f"/api/v1/projections/{a.pk}/agreement/", {"other": b.pk, "k": 5}).json()
    near_a, near_b = a.projection.neighbours.load_array(), b.projection.neighbours.load_array()
    np.testing.assert_allclose(
        agreement["agreement"], neighbourhood_agreement(near_a, near_b, 5), rtol=1e-6
    )
    assert len(agreement["displacement"]) == N

    stranger = api_client_for(outsider)
    assert stranger.get(f"/api/v1/selections/{selection}/").status_code == 404
    assert stranger.delete(f"/api/v1/selections/{selection}/").status_code == 404
    assert (
        stranger.post(
            "/api/v1/selections/", {"projection": a.pk, "polygon": polygon}, format="json"
        ).status_code
        == 404
    )
    assert api.delete(f"/api/v1/selections/{selection}/").status_code == 204
    assert Selection.objects.count() == 1


def test_aligned_projections_make_one_projection_per_layer(client, owner, tagged_digits, ckpt_a):
    client.force_login(owner)
    form = {
        "aligned-dataset": tagged_digits.pk,
        "aligned-layers": ["block1", "block2", "head"],
        "aligned-pooling": "mean",
        "aligned-method": "pca",
        "aligned-n_neighbors": 15,
        "aligned-min_dist": 0.1,
        "aligned-metric": "euclidean",
        "aligned-seed": 0,
    }
    response = client.post(f"/checkpoints/{ckpt_a.pk}/project-aligned/", form)
    run = Run.objects.get(kind=Run.Kind.PROJECT_ALIGNED)
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert run.params["spaces"] == [
        [ckpt_a.pk, "block1"],
        [ckpt_a.pk, "block2"],
        [ckpt_a.pk, "head"],
    ]
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error

    members = Run.objects.filter(kind=Run.Kind.PROJECT, params__aligned=run.pk).order_by("pk")
    assert [m.params["layer"] for m in members] == ["block1", "block2", "head"]
    assert all(m.state == Run.State.SUCCEEDED for m in members)
    first, second = (m.projection.coordinates.load_array() for m in members[:2])
    # Each picture is its layer's PCA moved onto the previous one.
    from analysis.explorer.projection import project
    from analysis.explorer.selections import similarity_align
    from webapp.catalog.models import ActivationSet

    own = project(ActivationSet.objects.get(checkpoint=ckpt_a, layer="block2").load(), "pca")
    np.testing.assert_allclose(second, similarity_align(own.coordinates, first)[0], atol=1e-4)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert f'href="/projections/{members[0].pk}/vs/{members[1].pk}/"' in page
    assert client.get(f"/projections/{members[1].pk}/vs/{members[2].pk}/").status_code == 200
    # Run again (say, after a failure), the same member runs are updated, not duplicated.
    from workers.tasks import aligned_projections

    Run.objects.filter(pk=run.pk).update(state=Run.State.RUNNING)
    aligned_projections(Run.objects.get(pk=run.pk))
    assert Run.objects.filter(kind=Run.Kind.PROJECT, params__aligned=run.pk).count() == 3

    bad = client.post(
        f"/checkpoints/{ckpt_a.pk}/project-aligned/", {**form, "aligned-layers": ["block1"]}
    )
    assert bad.status_code == 400 and "at least two" in bad.content.decode()


def test_aligned_projections_through_the_api(owner, outsider, tagged_digits, ckpt_a, ckpt_b):
    api = api_client_for(owner)
    request = {
        "dataset": tagged_digits.pk,
        "spaces": [
            {"checkpoint": ckpt_a.pk, "layer": "block2"},
            {"checkpoint": ckpt_b.pk, "layer": "block2"},
        ],
        "method": "pca",
    }
    created = api.post("/api/v1/aligned-projections/", request, format="json")
    assert created.status_code == 201, created.content
    run = run_with_dependencies(Run.objects.get(pk=created.json()["id"]))
    assert run.state == Run.State.SUCCEEDED, run.error
    body = api.get(f"/api/v1/aligned-projections/{run.pk}/").json()
    assert [(p["checkpoint"], p["layer"]) for p in body["projections"]] == [
        (ckpt_a.pk, "block2"),
        (ckpt_b.pk, "block2"),
    ]
    member = body["projections"][1]["id"]
    assert api.get(f"/api/v1/projections/{member}/").json()["method"] == "aligned-pca"
    assert api.post("/api/v1/aligned-projections/", request, format="json").status_code == 200
    one = {**request, "spaces": request["spaces"][:1]}
    assert api.post("/api/v1/aligned-projections/", one, format="json").status_code == 400
    unknown = {
        **request,
        "spaces": [{"checkpoint": ckpt_a.pk, "layer": "nope"}, request["spaces"][0]],
    }
    response = api.post("/api/v1/aligned-projections/", unknown, format="json")
    assert response.status_code == 400 and "nope" in response.json()["detail"]
    assert (
        api_client_for(outsider)
        .post("/api/v1/aligned-projections/", request, format="json")
        .status_code
        == 404
    )
