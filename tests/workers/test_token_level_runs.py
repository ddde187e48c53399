"""Token-level activation sets (pooling ``tokens``: every position a row) read by every CPU run
kind, not only comparisons (issue 19 part 2; in-process worker, real Postgres). Each kind's
result on a token-level set, pooled on the fly, equals the same kind run on the pooled arrays
computed here independently (NumPy over each sample's rows, stored as a set of one vector per
sample); model matrices and dynamics also read the rows per position, where every set holds
the same rows and the measure compares positions; and each result says how it read them.

The sets are written here, as an extraction stores them (values, and a positions blob with
each row's sample, position and special flag), so the extraction each request makes finds
them and runs nothing. Values are multiples of 1/4 and each sample has 1, 2 or 4 rows that a
mean counts, so every mean is exact in float32 and both ways of pooling give the same bits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from analysis.measures.positions import REDUCTIONS
from tests.conftest import checkpoint_from, run_with_dependencies, torchscript_mlp_bytes
from webapp.catalog.models import ActivationSet, Blob, Checkpoint, Dataset
from webapp.runs.explorer import aligned_members
from webapp.runs.exports import comparison_table
from webapp.runs.models import Report, Run
from webapp.runs.results import comparison_matrix
from webapp.runs.submit import (
    request_aligned_projections,
    request_alignment,
    request_comparison,
    request_compatibility,
    request_dynamics,
    request_model_matrix,
    request_nested,
    request_projection,
)
from webapp.runs.units import request_unit_matching

pytestmark = pytest.mark.django_db

LAYER = "block1"
D = 16
STORED_AS = {"mean": "mean", "first": "cls", "last": "last"}
"""The pooling of one vector per sample that holds what each reading of the rows gives."""


def token_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's sample, position and special flag: every third sample starts with a special
    row (a class token, which mean leaves out), then 1, 2 or 4 rows that mean counts."""
    rng = np.random.default_rng(seed)
    sample, position, special = [], [], []
    for i in range(n):
        extra = int(i % 3 == 0)
        rows = extra + int(rng.choice([1, 2, 4]))
        sample += [i] * rows
        position += list(range(rows))
        special += [j < extra for j in range(rows)]
    return np.array(sample), np.array(position), np.array(special)


def numpy_pooled(values: np.ndarray, sample: np.ndarray, special: np.ndarray, how: str, n: int):
    """Each sample's rows pooled as ``how`` says, one sample at a time."""
    out = []
    for i in range(n):
        rows, kept = values[sample == i], ~special[sample == i]
        out.append({"mean": rows[kept].mean(0), "first": rows[0], "last": rows[-1]}[how])
    return np.asarray(out, dtype=np.float32)


def store_tokens(
    checkpoint: Checkpoint, dataset: Dataset, seed: int, rows_seed: int = 7, layer: str = LAYER
):
    """A token-level set of ``layer`` for ``checkpoint``, and beside it the sets of one vector
    per sample (mean, cls, last) pooled here from the same rows; its values, samples, specials.
    ``rows_seed`` None: one row per sample, at position 0 (as a sentence embedding is kept)."""
    if rows_seed is None:
        n = dataset.n_samples
        sample, position, special = np.arange(n), np.zeros(n, int), np.zeros(n, bool)
    else:
        sample, position, special = token_rows(dataset.n_samples, rows_seed)
    rng = np.random.default_rng(seed)
    values = (rng.integers(-8, 9, size=(len(sample), D)) / 4).astype(np.float32)
    positions = {"sample": sample, "position": position, "special": special}
    ActivationSet.objects.create(
        checkpoint=checkpoint,
        dataset=dataset,
        layer=layer,
        pooling="tokens",
        blob=Blob.store_array(values),
        positions=Blob.store_arrays(positions),
        n=len(values),
        d=D,
    )
    for how, pooling in STORED_AS.items():
        vectors = numpy_pooled(values, sample, special, how, dataset.n_samples)
        ActivationSet.objects.create(
            checkpoint=checkpoint,
            dataset=dataset,
            layer=layer,
            pooling=pooling,
            blob=Blob.store_array(vectors),
            n=dataset.n_samples,
            d=D,
        )
    return values, sample, special


def layer_comparison(owner, ckpt_a, ckpt_b, digits, pooling: str = "tokens", **options) -> Run:
    """A comparison of LAYER of two checkpoints on ``digits`` at ``pooling``, as requested
    (``options``: positions, permutations, resamples …), not yet run."""
    run, _ = request_comparison(owner, ckpt_a, ckpt_b, digits, [LAYER], [LAYER], pooling, **options)
    return run


def finished(run: Run) -> Run:
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    return run


def report(run: Run) -> dict:
    return Report.objects.get(run=run).result


def without_positions(result: dict) -> tuple[dict, str]:
    """A stored result without its ``positions`` note, and the note ("" where none)."""
    result = dict(result)
    return result, result.pop("positions", "")


# Each kind: ask for a run at (pooling, positions) and read back (its result, how it says it
# read token-level sets). A result is JSON-like: dicts, lists, numbers and arrays.
Asker = Callable[[Any, list[Checkpoint], Dataset, str, str], tuple[Any, str]]


def model_matrix(owner, ckpts, digits, pooling, positions):
    run, _ = request_model_matrix(
        owner, ckpts, digits, LAYER, pooling, positions=positions, n_permutations=3, n_bootstrap=2
    )
    scores = finished(run).scores.select_related("activation_a", "activation_b")
    result = {
        f"{s.activation_a.checkpoint_id},{s.activation_b.checkpoint_id}": [
            s.value,
            s.baseline,
            s.baseline_std,
            s.ci_low,
            s.ci_high,
            s.n,
        ]
        for s in scores
    }
    return result, scores[0].parameters["positions"]


def align(owner, ckpts, digits, pooling, positions):
    run, _ = request_alignment(
        owner, ckpts[0], ckpts[1], digits, LAYER, LAYER, pooling=pooling, positions=positions
    )
    a = finished(run).alignment
    fields = ("r2", "r2_shuffled", "retrieval_top1", "retrieval_top5", "retrieval_chance_top1")
    result = {f: getattr(a, f) for f in fields} | {"residuals": a.residuals.load_array()}
    return result, a.parameters.get("positions", "")


def compatibility(owner, ckpts, digits, pooling, positions):
    run, _ = request_compatibility(
        owner, ckpts, digits, LAYER, pooling=pooling, positions=positions
    )
    return without_positions(finished(run).compatibility.result)


def projection(owner, ckpts, digits, pooling, positions):
    run, _ = request_projection(
        owner, ckpts[0], digits, LAYER, pooling=pooling, positions=positions, method="pca"
    )
    p = finished(run).projection
    result = {
        "coordinates": p.coordinates.load_array(),
        "neighbours": p.neighbours.load_array(),
        "kept": p.kept.load_array(),
        "geometry": p.geometry,
    }
    return result, p.parameters.get("positions", "")


def aligned_projections(owner, ckpts, digits, pooling, positions):
    spaces = [(c, LAYER) for c in ckpts]
    run, _ = request_aligned_projections(
        owner, spaces, digits, pooling=pooling, positions=positions, method="pca"
    )
    members = [m.projection for m in aligned_members(finished(run))]
    notes = {m.parameters.get("positions", "") for m in members}
    assert len(notes) == 1
    return [m.coordinates.load_array() for m in members], notes.pop()


def dynamics(owner, ckpts, digits, pooling, positions):
    for step, checkpoint in enumerate(ckpts):
        checkpoint.seed_group, checkpoint.step = "series", step * 10
        checkpoint.save()
    run, _ = request_dynamics(
        owner, ckpts[0].workspace, "series", digits, [LAYER], pooling, positions=positions
    )
    result, note = without_positions(report(finished(run)))
    return {"layers": result["layers"]}, note


def nested(owner, ckpts, digits, pooling, positions):
    run, _ = request_nested(owner, ckpts, digits, LAYER, pooling=pooling, positions=positions)
    return without_positions(report(finished(run)))


def units(owner, ckpts, digits, pooling, positions):
    run, _ = request_unit_matching(
        owner, ckpts[0], ckpts[1], digits, LAYER, LAYER, pooling=pooling, positions=positions
    )
    result, note = without_positions(report(finished(run)))
    return {"report": result["report"], "top_b": result["top_b"]}, note


KINDS: dict[str, Asker] = {
    "model_matrix": model_matrix,
    "align": align,
    "compatibility": compatibility,
    "project": projection,
    "project_aligned": aligned_projections,
    "dynamics": dynamics,
    "nested": nested,
    "units": units,
}


def assert_same(got: Any, want: Any, where: str = "result") -> None:
    """Equal JSON-like results: the same keys and lengths, numbers within 1e-6 relative."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), where
        for key in want:
            assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, np.ndarray):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9, err_msg=where)
    elif isinstance(want, list | tuple):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and want == want:
        assert got == pytest.approx(want, rel=1e-6, abs=1e-9), where
    elif isinstance(want, float):  # NaN
        assert got != got, where
    else:
        assert got == want, where


@pytest.mark.parametrize(
    ("kind", "how"),
    [(kind, "mean") for kind in KINDS] + [("project", "first"), ("align", "last")],
)
def test_each_kind_reads_token_sets_pooled_as_numpy_pools_their_rows(
    kind, how, owner, workspace, digits, ckpt_a, ckpt_b
):
    ckpts = [ckpt_a, ckpt_b]
    for seed, checkpoint in enumerate(ckpts):
        store_tokens(checkpoint, digits, seed, rows_seed=seed)  # different rows per model
    ask = KINDS[kind]
    got, note = ask(owner, ckpts, digits, "tokens", how)
    want, plain = ask(owner, ckpts, digits, STORED_AS[how], how)
    assert_same(got, want)
    assert note.startswith(f"pooled on the fly by {how}: {REDUCTIONS[how]}"), note
    assert plain == ""  # sets of one vector per sample are read as they are: nothing to say
    tokens = Run.objects.get(kind=kind, params__pooling="tokens")
    assert tokens.params["positions"] == how


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA in its feature-space form (Kornblith et al. 2019, eq. 5), in float64."""
    x = x.astype(np.float64) - x.mean(0)
    y = y.astype(np.float64) - y.mean(0)
    cross = np.linalg.norm(y.T @ x) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def test_model_matrices_and_dynamics_read_the_same_rows_per_position(
    owner, workspace, digits, ckpt_a, ckpt_b
):
    """Three checkpoints whose sets hold the same rows (models that read the same tokens):
    per position, linear CKA takes every row as a sample; a series read per position and then
    pooled keeps each reading's cells apart (a cell is stored with how it was read)."""
    third = checkpoint_from(workspace, owner, torchscript_mlp_bytes(2), "mlp-seed2")
    ckpts = [ckpt_a, ckpt_b, third]
    rows = [store_tokens(c, digits, seed) for seed, c in enumerate(ckpts)]
    values = [r[0] for r in rows]
    _, sample, special = rows[0]

    matrix, note = model_matrix(owner, ckpts, digits, "tokens", "per-position")
    for i, a in enumerate(ckpts):
        for j, b in enumerate(ckpts):
            value, _, _, ci_low, _, n = matrix[f"{a.pk},{b.pk}"]
            assert value == pytest.approx(linear_cka(values[i], values[j]), rel=1e-6)
            assert n == len(sample) > digits.n_samples and ci_low is None
    assert note.startswith(f"per position: each of the {len(sample)} rows")

    per_position, note = dynamics(owner, ckpts, digits, "tokens", "per-position")
    assert note.startswith(f"per position: each of the {len(sample)} rows")
    assert note.endswith("the statistics of each step read each sample's mean")
    cells = per_position["layers"][0]["matrix"]
    means = [numpy_pooled(v, sample, special, "mean", digits.n_samples) for v in values]
    pooled, note = dynamics(owner, ckpts, digits, "tokens", "mean")
    assert note.startswith("pooled on the fly by mean")
    for i in range(3):
        for j in range(3):
            if cells[i][j] is None:  # a symmetric measure fills one triangle
                continue
            assert cells[i][j] == pytest.approx(linear_cka(values[i], values[j]), rel=1e-6)
            mean = pooled["layers"][0]["matrix"][i][j]
            assert mean == pytest.approx(linear_cka(means[i], means[j]), rel=1e-6)
    # the statistics read each sample's mean whichever way the matrix read the rows
    assert_same(per_position["layers"][0]["statistics"], pooled["layers"][0]["statistics"])

    # A measure that compares samples only: asked per position, pooled, and it says why.
    run, _ = request_model_matrix(
        owner,
        ckpts,
        digits,
        LAYER,
        "tokens",
        positions="per-position",
        measure="cka/linear-debiased",
        n_permutations=2,
        n_bootstrap=0,
    )
    note = finished(run).scores.first().parameters["positions"]
    assert note.startswith("per position was asked, but Debiased") and "compares samples" in note


def test_a_comparison_reads_per_position_each_pair_whose_two_sets_allow_it(
    owner, digits, ckpt_a, ckpt_b
):
    """block1 of A and of B hold the same rows; block2 one row per sample (as a sentence
    embedding is kept at pooling tokens); B's head other rows. Asked per position, only the
    pair of block1 is read per position (every row a sample, no interval); every other pair is
    pooled to each sample's mean, with its interval, and says why. Before, one layer of one
    row per sample made the whole comparison fall back to pooled means."""
    rows = {
        (c, layer): store_tokens(c, digits, seed, rows_seed=rows_seed, layer=layer)
        for seed, (c, layer, rows_seed) in enumerate(
            [
                (ckpt_a, "block1", 7),
                (ckpt_a, "block2", None),
                (ckpt_b, "block1", 7),
                (ckpt_b, "block2", None),
                (ckpt_b, "head", 8),
            ]
        )
    }
    run, _ = request_comparison(
        owner,
        ckpt_a,
        ckpt_b,
        digits,
        ["block1", "block2"],
        ["block1", "block2", "head"],
        "tokens",
        positions="per-position",
        n_permutations=2,
        n_bootstrap=4,
    )
    scores = {(s.layer_a, s.layer_b): s for s in finished(run).scores.all()}
    assert len(scores) == 6

    def mean(checkpoint: Checkpoint, layer: str) -> np.ndarray:
        values, sample, special = rows[(checkpoint, layer)]
        return numpy_pooled(values, sample, special, "mean", digits.n_samples)

    same = scores["block1", "block1"]
    x, y = rows[(ckpt_a, "block1")][0], rows[(ckpt_b, "block1")][0]
    assert same.value == pytest.approx(linear_cka(x, y), rel=1e-6)
    assert same.n == len(x) > digits.n_samples and same.ci_low is None
    assert same.parameters["positions"].startswith(f"per position: each of the {len(x)} rows")
    assert same.parameters["n_bootstrap"] == 0
    whys = {
        ("block1", "block2"): "block2 holds one row per sample; pooled on the fly by mean",
        ("block2", "block1"): "block2 holds one row per sample; pooled on the fly by mean",
        ("block2", "block2"): "block2 holds one row per sample; one vector per sample, compared",
        ("block1", "head"): "the two sets hold different rows",
        ("block2", "head"): "block2 holds one row per sample; pooled on the fly by mean",
    }
    for (a, b), why in whys.items():
        score = scores[a, b]
        want = linear_cka(mean(ckpt_a, a), mean(ckpt_b, b))
        assert score.value == pytest.approx(want, rel=1e-6), (a, b)
        assert score.n == digits.n_samples and score.ci_low is not None, (a, b)
        assert score.parameters["n_bootstrap"] == 4
        note = score.parameters["positions"]
        assert note.startswith(f"per position was asked, but {why}"), (a, b, note)

    # The matrix's provenance says how many pairs each reading holds for.
    provenance = comparison_matrix(run)["provenance"]
    assert provenance["positions"].startswith("1 of 6 pairs: per position: each of")
    assert "3 of 6 pairs: per position was asked, but block2 holds" in provenance["positions"]
    assert provenance["n_bootstrap"] == 4

    # So does its CSV, each row with the pair's reading and the resamples it drew.
    header, table = comparison_table(run)
    exported = {}
    for values in table:
        row = dict(zip(header, values, strict=True))
        exported[row["layer_a"], row["layer_b"]] = row
    for pair, score in scores.items():
        assert exported[pair]["positions"] == score.parameters["positions"]
        assert exported[pair]["n_bootstrap"] == (0 if pair == ("block1", "block1") else 4)


@pytest.mark.parametrize("how", ["first", "last"])
def test_a_comparisons_drill_down_reads_each_sample_as_its_score_does(
    how, owner, digits, ckpt_a, ckpt_b
):
    """Token-level sets pooled on the fly by first or last: the per-sample neighbourhood
    agreement behind a score is that of the vectors the score read, as from the sets stored at
    that pooling (it was each sample's mean whatever the reading, while the pair page said the
    rows were read by first or last)."""
    for seed, checkpoint in enumerate((ckpt_a, ckpt_b)):
        store_tokens(checkpoint, digits, seed, rows_seed=seed)
    agreements = []
    for pooling in ("tokens", STORED_AS[how]):
        run = layer_comparison(
            owner, ckpt_a, ckpt_b, digits, pooling, positions=how, n_permutations=2
        )
        agreements.append(finished(run).scores.get().sample_agreement.load_array())
    got, want = agreements
    np.testing.assert_array_equal(got, want)
