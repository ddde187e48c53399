"""What the pages of token-level results show while their runs go and once they finish: the
part a page polls carries everything the run's state decides (the comparison's resamples and
measure chips, the projection's reading of positions), and a pair says how its score and the
maps fitted from it read positions."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from analysis.measures.alignment import METHODS as ALIGNMENT_METHODS
from analysis.measures.knn import knn_jaccard_chance
from tests.conftest import run_with_dependencies
from tests.workers.test_token_level_runs import LAYER, layer_comparison, store_tokens
from webapp.runs import explorer
from webapp.runs.models import Run
from webapp.runs.results import score_reading
from webapp.runs.submit import request_comparison, request_probe, request_projection

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client, owner, workspace):
    client.force_login(owner)
    return client


def text_of(page: bytes) -> str:
    """A page's text as read: entities unescaped, white space collapsed."""
    return " ".join(html.unescape(page.decode()).split())


def polled(client, url: str):
    """The part of a page its htmx poll swaps in (the server-rendered partial)."""
    return client.get(url, HTTP_HX_REQUEST="true")


def test_a_comparison_page_redraws_what_its_run_state_decides_while_it_runs(
    browser, owner, ckpt_a, ckpt_b, digits
):
    """The summary's resamples and the measure chips are in the part the page polls: queued,
    it says what was asked; finished, what the scores drew (none per position) and its chip's
    state, not what was true when the page was loaded."""
    for seed, checkpoint in enumerate((ckpt_a, ckpt_b)):
        store_tokens(checkpoint, digits, seed)
    run = layer_comparison(
        owner, ckpt_a, ckpt_b, digits, positions="per-position", n_permutations=2, n_bootstrap=4
    )
    url = reverse("comparison", args=[run.pk])
    before = polled(browser, url)
    assert before.status_code == 200
    part = text_of(before.content)
    assert "4 bootstrap resamples asked (none where a pair is read per position)" in part
    assert f'<span class="badge {run.state}">{run.state}</span>' in part

    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    drawn = run.scores.get().parameters["n_bootstrap"]
    assert drawn == 0  # per position: no interval
    after = polled(browser, url)
    assert after.status_code == 286  # htmx swaps this answer and stops polling
    part = text_of(after.content)
    assert f"· {drawn} bootstrap resamples ·" in part and "asked" not in part
    assert '<span class="badge succeeded">succeeded</span>' in part
    assert "badge queued" not in part and "badge running" not in part


def test_a_projection_page_says_how_positions_were_read_once_its_run_finishes(
    browser, owner, ckpt_a, digits
):
    store_tokens(ckpt_a, digits, 0)
    run, _ = request_projection(owner, ckpt_a, digits, LAYER, "tokens", positions="first")
    url = reverse("projection", args=[run.pk])
    assert "pooling tokens (positions first, as asked)" in text_of(polled(browser, url).content)
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    note = run.projection.parameters["positions"]
    read = score_reading(run.projection.parameters)
    assert read.startswith("pooled on the fly") and "first" in read
    after = polled(browser, url)
    assert after.status_code == 286
    assert f"pooling tokens ({note})" in text_of(after.content)


def test_a_projection_page_tells_apart_projections_of_its_layer_read_otherwise(
    browser, owner, ckpt_a, digits
):
    """The chips of the layer's projections (and the side-by-side list) say a projection's
    pooling and positions where they differ from the page's own: PCA at seed 0 of the same
    layer, pooled by mean and read from tokens' first positions, read alike before."""
    store_tokens(ckpt_a, digits, 0)
    first, _ = request_projection(owner, ckpt_a, digits, LAYER, "tokens", positions="first")
    mean, _ = request_projection(owner, ckpt_a, digits, LAYER, "tokens", positions="mean")
    page = text_of(browser.get(reverse("projection", args=[mean.pk])).content)
    chips = page.split('aria-label="Projections of this layer">')[1].split("</nav>")[0]
    assert chips.count("pca · seed 0") == 2
    assert "pca · seed 0 · pooling tokens, positions first" in chips
    assert "positions mean" not in chips  # the page's own reading, said in its header
    assert "pca · seed 0 · pooling tokens, positions mean" in text_of(
        browser.get(reverse("projection", args=[first.pk])).content
    )
    for run in (first, mean):  # the list is drawn beside a finished projection
        run = run_with_dependencies(run)
        assert run.state == Run.State.SUCCEEDED, run.error
    side_by_side = text_of(browser.get(reverse("projection", args=[mean.pk])).content)
    listed = side_by_side.split("Side by side with…")[1].split("</ul>")[0]
    assert "pca · pooling tokens, positions first</a>" in listed


def test_projections_of_one_token_set_read_otherwise_are_different_spaces_side_by_side(
    browser, owner, ckpt_a, digits
):
    """Two projections of one stored token set, its rows read by each sample's mean and by its
    first position, picture two spaces: the side-by-side page compares their neighbourhoods
    (it said both were the same activations, every agreement 1), and gives the mean agreement
    with its chance level."""
    store_tokens(ckpt_a, digits, 0)
    runs = [
        request_projection(owner, ckpt_a, digits, LAYER, "tokens", positions=positions)[0]
        for positions in ("mean", "first")
    ]
    for run in runs:
        run = run_with_dependencies(run)
        assert run.state == Run.State.SUCCEEDED, run.error
    mean, first = (Run.objects.get(pk=run.pk) for run in runs)
    assert mean.projection.activation_id == first.projection.activation_id  # one stored set
    k = 5
    url = reverse("projection-pair-changed", args=[mean.pk, first.pk])
    part = text_of(browser.get(url, {"k": k}).content)
    assert 'data-testid="same-space"' not in part
    agreement = explorer.pair_agreement(mean, first, k)
    assert agreement.mean() < 1
    chance = knn_jaccard_chance(k, digits.n_samples)
    assert f"mean agreement {agreement.mean():.3f} (chance {chance:.4f})" in part


def test_a_pair_page_says_how_its_score_and_its_maps_read_positions(
    browser, owner, ckpt_a, ckpt_b, digits
):
    """A pair read per position counts rows, not samples; the same measure read another way
    is listed with its reading; a map fitted from the pair says it read each sample's mean."""
    for seed, checkpoint in enumerate((ckpt_a, ckpt_b)):
        store_tokens(checkpoint, digits, seed)
    runs = {}
    for how in ("per-position", "mean"):
        run = layer_comparison(
            owner, ckpt_a, ckpt_b, digits, positions=how, n_permutations=2, n_bootstrap=2
        )
        runs[how] = run_with_dependencies(run)
        assert runs[how].state == Run.State.SUCCEEDED, runs[how].error
    per_position, mean = (runs[how].scores.get() for how in ("per-position", "mean"))
    assert per_position.measure == mean.measure
    assert per_position.activation_a == mean.activation_a  # the same stored rows, read two ways
    assert per_position.n > digits.n_samples == mean.n

    pair = reverse("comparison-pair", args=[runs["per-position"].pk, 0, 0])
    page = text_of(browser.get(pair).content)
    assert f"{per_position.n} rows (positions of {digits.n_samples} samples)" in page
    pooled = score_reading(mean.parameters)
    assert score_reading(per_position.parameters) == "per position"
    assert pooled.startswith("pooled on the fly") and "mean" in pooled
    assert f"(read {pooled}, not per position)" in page
    page = text_of(browser.get(reverse("comparison-pair", args=[runs["mean"].pk, 0, 0])).content)
    assert f"{mean.n} samples;" in page and "rows (positions of" not in page
    assert f"(read per position, not {pooled})" in page

    method = next(iter(ALIGNMENT_METHODS))
    browser.post(reverse("align-pair", args=[runs["per-position"].pk, 0, 0]), {"method": method})
    align = Run.objects.get(kind=Run.Kind.ALIGN)
    align = run_with_dependencies(align)
    assert align.state == Run.State.SUCCEEDED, align.error
    note = align.alignment.parameters["positions"]
    assert score_reading(align.alignment.parameters) == pooled  # a map reads sample means
    part = text_of(polled(browser, pair).content)
    assert f"Positions: pooling tokens: {note}" in part
    assert "(a fitted map's row says how), not the positions the score above compared" in part


def test_a_projections_agreement_colourings_say_how_each_comparison_read_the_rows(
    owner, ckpt_a, ckpt_b, digits
):
    """A token set's projection is coloured by its kNN agreement with B's layer as each
    comparison read the rows (by first, by last): the two colourings are named apart (both
    were 'kNN agreement with mlp-seed1 · block1')."""
    for seed, checkpoint in enumerate((ckpt_a, ckpt_b)):
        store_tokens(checkpoint, digits, seed, rows_seed=seed)
    projection, _ = request_projection(owner, ckpt_a, digits, LAYER, "tokens", positions="mean")
    projection = run_with_dependencies(projection)
    for how in ("first", "last"):
        run = layer_comparison(owner, ckpt_a, ckpt_b, digits, positions=how, n_permutations=2)
        assert run_with_dependencies(run).state == Run.State.SUCCEEDED
    titles = [c.title for c in explorer.colourings(projection) if c.key.startswith("agreement")]
    assert sorted(titles) == [
        f"kNN agreement with {ckpt_b.name} · {LAYER} (pooling tokens, positions {how})"
        for how in ("first", "last")
    ]


def test_the_workspace_lists_comparisons_read_otherwise_apart(
    browser, owner, ckpt_a, ckpt_b, digits
):
    """The Comparisons list names a comparison's pooling (where it is not the default mean)
    and how it read positions: the same two checkpoints by pooled means, per position and by
    first positions were listed as three identical lines."""
    for positions in ("per-position", "first"):
        layer_comparison(owner, ckpt_a, ckpt_b, digits, positions=positions)
    request_comparison(owner, ckpt_a, ckpt_b, digits, [LAYER], [LAYER])
    page = text_of(browser.get(reverse("workspace", args=[digits.workspace.slug])).content)
    listed = page.split('id="comparisons">')[1].split("</ul>")[0]
    on = f"on {digits.name} · cka/linear"
    assert f"{on} · pooling tokens, positions per-position</span>" in listed
    assert f"{on} · pooling tokens, positions first</span>" in listed
    assert f"{on}</span>" in listed  # pooled by mean: the default, unsaid


def test_projection_lists_say_how_a_projection_read_its_layer(browser, owner, ckpt_a, digits):
    """The workspace's and the checkpoint's lists of projections name a projection's pooling
    (where it is not the default mean) and how it read positions: PCA of one layer pooled by
    mean and of its tokens read by first were listed alike."""
    store_tokens(ckpt_a, digits, 0)
    request_projection(owner, ckpt_a, digits, LAYER)
    request_projection(owner, ckpt_a, digits, LAYER, "tokens", positions="first")
    workspace = text_of(browser.get(reverse("workspace", args=[digits.workspace.slug])).content)
    listed = workspace.split('id="projections">')[1].split("</ul>")[0]
    assert f"on {digits.name} · pooling tokens, positions first</span>" in listed
    assert f"on {digits.name}</span>" in listed
    checkpoint = text_of(browser.get(reverse("checkpoint", args=[ckpt_a.pk])).content)
    listed = checkpoint.split('id="project"')[1].split("</ul>")[0]
    assert "· seed 0 · pooling tokens, positions first</span>" in listed
    assert "· seed 0</span>" in listed
    # the probes list likewise
    request_probe(owner, ckpt_a, digits, [LAYER], "tokens", ["image/noise"])
    workspace = text_of(browser.get(reverse("workspace", args=[digits.workspace.slug])).content)
    listed = workspace.split('id="probes">')[1].split("</ul>")[0]
    assert f"on {digits.name} · pooling tokens, positions per-position</span>" in listed
