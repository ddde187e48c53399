"""A renamed run is called by its name on every page that shows its results: the page's title
and heading; a run without a name keeps the page's own title."""

from __future__ import annotations

import re

import pytest

from tests.conftest import checkpoint_from, run_with_dependencies, torchscript_mlp_bytes
from webapp.runs import lifecycle
from webapp.runs.models import Run
from webapp.runs.submit import (
    request_aligned_projections,
    request_comparison,
    request_compatibility,
    request_model_matrix,
    request_probe,
    request_projection,
)

pytestmark = pytest.mark.django_db


def title_and_heading(client, url: str) -> tuple[str, str]:
    response = client.get(url)
    assert response.status_code == 200, url
    html = response.content.decode()
    title = re.search(r"<title>(.*?)</title>", html, re.S)
    heading = re.search(r"<h1>(.*?)</h1>", html, re.S)
    assert title and heading, url
    return title.group(1), re.sub(r"<[^>]+>", "", heading.group(1))


def test_every_result_page_shows_the_runs_name(client, owner, workspace, ckpt_a, digits):
    b = checkpoint_from(workspace, owner, torchscript_mlp_bytes(1), "mlp-seed1")
    quick = {"n_permutations": 2, "n_bootstrap": 0}
    runs = {
        "comparison": request_comparison(owner, ckpt_a, b, digits, **quick)[0],
        "model-matrix": request_model_matrix(owner, [ckpt_a, b], digits, "block1", **quick)[0],
        "compatibility": request_compatibility(owner, [ckpt_a, b], digits, "block2")[0],
        "projection": request_projection(owner, ckpt_a, digits, "block1")[0],
        "probe": request_probe(
            owner, ckpt_a, digits, ["block1"], families={"image/noise": [0.0, 0.1]}
        )[0],
        "aligned": request_aligned_projections(
            owner, [(ckpt_a, "block1"), (b, "block1")], digits, method="pca"
        )[0],
    }
    for run in runs.values():
        assert run_with_dependencies(run).state == Run.State.SUCCEEDED, run.error
    other = run_with_dependencies(request_projection(owner, b, digits, "block1")[0])
    pages = {
        "comparison": f"/comparisons/{runs['comparison'].pk}/",
        "model-matrix": f"/matrices/{runs['model-matrix'].pk}/",
        "compatibility": f"/compatibility/{runs['compatibility'].pk}/",
        "projection": f"/projections/{runs['projection'].pk}/",
        "probe": f"/probes/{runs['probe'].pk}/",
        "aligned": f"/runs/{runs['aligned'].pk}/",
    }
    client.force_login(owner)

    # Without a name, each page keeps its own title, and says it in its heading.
    before = {key: title_and_heading(client, url) for key, url in pages.items()}
    assert before["comparison"][0].startswith("mlp-seed0 vs mlp-seed1 ·")
    assert "mlp-seed0 vs mlp-seed1" in before["comparison"][1]
    assert before["model-matrix"][0].startswith("Model matrix: block1 ·")
    assert before["compatibility"][0].startswith("Compatibility: 2 checkpoints ·")
    assert before["probe"][0].startswith("Probes of mlp-seed0 ·")
    assert before["aligned"][0].startswith(f"Run {runs['aligned'].pk} ·")

    for key, run in runs.items():
        lifecycle.rename(run, f"the {key} <b>run</b>")
    for key, url in pages.items():
        title, heading = title_and_heading(client, url)
        name = f"the {key} &lt;b&gt;run&lt;/b&gt;"  # escaped, as every name a person typed
        assert title == f"{name} · RepLens", key
        assert heading == name, key
        # What the run is stays beneath the name.
        assert before[key][1].split()[0] in client.get(url).content.decode(), key

    # The pair page names its comparison; side by side names both projections.
    pair = client.get(f"/comparisons/{runs['comparison'].pk}/pairs/1/1/").content.decode()
    assert re.search(
        r"<title>[^<]* · the comparison &lt;b&gt;run&lt;/b&gt; · RepLens</title>", pair
    )
    assert "← the comparison &lt;b&gt;run&lt;/b&gt;</a>" in pair
    lifecycle.rename(other, "seed one")
    side = f"/projections/{runs['projection'].pk}/vs/{other.pk}/"
    title, heading = title_and_heading(client, side)
    assert title == "the projection &lt;b&gt;run&lt;/b&gt; vs seed one · RepLens"
    assert heading.split() == "the projection &lt;b&gt;run&lt;/b&gt; vs seed one".split()
