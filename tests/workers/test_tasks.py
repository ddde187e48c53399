"""The worker's tasks, played in-process: ``execute_run(run_id)`` is what a message triggers.

With the ``db`` fixture nothing is committed, so on-commit enqueues never reach the broker;
``django_capture_on_commit_callbacks`` shows what would have been sent.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

import webapp.dispatch
import workers.tasks
from analysis.measures.registry import MEASURES
from analysis.models.checkpoints import load_checkpoint
from analysis.models.extraction import extract_activations
from tests.conftest import (
    checkpoint_from,
    digits_npz_bytes,
    run_with_dependencies,
    torchscript_mlp_bytes,
)
from webapp.catalog.ingest import ingest_dataset
from webapp.catalog.models import ActivationSet, Blob
from webapp.runs.models import Cancelled, Run, Score
from webapp.runs.submit import request_comparison, request_extraction
from workers.tasks import execute_run

pytestmark = pytest.mark.django_db

DEFAULT_LAYERS = ["flatten", "block1", "block2", "head"]
WIDTHS = {"flatten": 64, "block1": 32, "block2": 16, "head": 10}


class NaNNet(nn.Module):
    """Finite first block, NaN output."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.block1 = nn.Linear(64, 8)

    def forward(self, x):
        return self.block1(self.flatten(x)) * float("nan")


@pytest.fixture
def nan_ckpt(workspace, owner):
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(NaNNet()), buffer)
    return checkpoint_from(workspace, owner, buffer.getvalue(), "nan-net")


@pytest.fixture
def sent(monkeypatch):
    """The queues a worker of which would have been woken when a captured callback runs."""
    queues = []
    monkeypatch.setattr(webapp.dispatch, "wake", queues.append)
    return queues


def fresh(run: Run) -> Run:
    return Run.objects.get(pk=run.pk)


# --------------------------------------------------------------------------- extraction


def test_extraction_stores_one_activation_set_per_layer(owner, ckpt_a, digits):
    run, created = request_extraction(owner, ckpt_a, digits)
    assert created
    execute_run(run.pk)
    run = fresh(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    assert run.progress == 1.0
    assert run.started_at <= run.finished_at
    assert run.timings["layers_extracted"] == 4
    sets = {s.layer: s for s in ActivationSet.objects.filter(checkpoint=ckpt_a, dataset=digits)}
    assert sorted(sets) == sorted(DEFAULT_LAYERS)

    arrays = digits.load_arrays()
    with ckpt_a.blob.local_path() as path:
        model = load_checkpoint(path, "torchscript")
    expected = extract_activations(model, arrays.x, DEFAULT_LAYERS, "mean", device="cpu")
    for layer, s in sets.items():
        assert (s.n, s.d, s.pooling, s.run_id) == (60, WIDTHS[layer], "mean", run.pk)
        values = s.load()
        assert values.dtype == np.float32
        assert values.shape == (digits.n_samples, WIDTHS[layer])
        np.testing.assert_allclose(values, expected[layer], rtol=1e-6, atol=1e-7)
    # The input layer holds the dataset itself: sample order is kept.
    np.testing.assert_array_equal(sets["flatten"].load(), arrays.x.reshape(60, -1))


def test_extraction_only_computes_missing_layers(owner, ckpt_a, digits):
    first, _ = request_extraction(owner, ckpt_a, digits, ["block1"])
    execute_run(first.pk)
    stored = ActivationSet.objects.get(layer="block1")
    second, _ = request_extraction(owner, ckpt_a, digits, ["block1", "head"])
    execute_run(second.pk)
    second = fresh(second)
    assert second.state == Run.State.SUCCEEDED
    assert second.timings["layers_extracted"] == 1
    assert ActivationSet.objects.get(layer="block1").blob_id == stored.blob_id
    assert ActivationSet.objects.get(layer="head").run_id == second.pk


def test_replayed_message_is_a_no_op(owner, ckpt_a, ckpt_b, digits):
    comparison, _ = request_comparison(owner, ckpt_a, ckpt_b, digits, n_permutations=2)
    for dependency in comparison.depends_on.all():
        execute_run(dependency.pk)
    execute_run(comparison.pk)
    runs = {r.pk: (r.state, r.started_at, r.finished_at, r.timings) for r in Run.objects.all()}
    activations = sorted(ActivationSet.objects.values_list("pk", "blob_id", "created_at"))
    scores = sorted(Score.objects.values_list("pk", "value", "created_at"))
    blobs = Blob.objects.count()
    assert len(activations) == 8 and len(scores) == 16

    for run_id in runs:
        execute_run(run_id)
    assert {
        r.pk: (r.state, r.started_at, r.finished_at, r.timings) for r in Run.objects.all()
    } == runs
    assert sorted(ActivationSet.objects.values_list("pk", "blob_id", "created_at")) == activations
    assert sorted(Score.objects.values_list("pk", "value", "created_at")) == scores
    assert Blob.objects.count() == blobs


def test_message_for_an_unknown_run_is_ignored():
    execute_run(987654321)
    assert Run.objects.count() == 0


# --------------------------------------------------------------------------- dependencies


def test_early_comparison_message_waits_for_its_dependencies(
    owner, ckpt_a, ckpt_b, digits, django_capture_on_commit_callbacks, sent
):
    comparison, _ = request_comparison(owner, ckpt_a, ckpt_b, digits, n_permutations=2)
    extract_a, extract_b = comparison.depends_on.order_by("pk")

    execute_run(comparison.pk)  # arrives before any extraction ran
    assert fresh(comparison).state == Run.State.QUEUED
    assert fresh(comparison).started_at is None

    execute_run(extract_a.pk)
    execute_run(comparison.pk)  # one of two dependencies done
    assert fresh(comparison).state == Run.State.QUEUED
    assert Score.objects.count() == 0

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        execute_run(extract_b.pk)
    # Finishing the last dependency sends the waiting comparison again.
    for callback in callbacks:
        callback()
    assert sent == ["cpu"]  # the comparison's queue, once

    execute_run(comparison.pk)
    comparison = fresh(comparison)
    assert comparison.state == Run.State.SUCCEEDED, comparison.error
    assert Score.objects.filter(run=comparison).count() == 16
    assert set(Score.objects.values_list("layer_a", flat=True)) == set(DEFAULT_LAYERS)


def test_failing_dependency_fails_the_extraction_and_the_comparison(
    owner, nan_ckpt, ckpt_b, digits
):
    assert nan_ckpt.default_layers == ["flatten", "block1", "output"]
    comparison, _ = request_comparison(owner, nan_ckpt, ckpt_b, digits, n_permutations=2)
    nan_extraction = comparison.depends_on.get(checkpoint=nan_ckpt)
    for dependency in comparison.depends_on.all():
        execute_run(dependency.pk)

    nan_extraction = fresh(nan_extraction)
    assert nan_extraction.state == Run.State.FAILED
    assert "'output'" in nan_extraction.error
    assert "NaN" in nan_extraction.error
    assert nan_extraction.finished_at is not None
    assert not ActivationSet.objects.filter(checkpoint=nan_ckpt).exists()
    assert ActivationSet.objects.filter(checkpoint=ckpt_b).count() == 4

    execute_run(comparison.pk)
    comparison = fresh(comparison)
    assert comparison.state == Run.State.FAILED
    assert str(nan_extraction) in comparison.error  # "Extract activations #<id>"
    assert f"#{nan_extraction.pk}" in comparison.error
    assert "'output'" in comparison.error
    assert comparison.started_at is None
    assert Score.objects.count() == 0


class WideNet(nn.Module):
    """Wants 100 features: on 8 × 8 digits TorchScript fails with a long traceback."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(100, 4)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_a_model_failure_shows_its_meaningful_line_first_and_the_traceback_folded(
    client, owner, workspace, digits
):
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(WideNet()), buffer)
    wide = checkpoint_from(workspace, owner, buffer.getvalue(), "wide-net")
    run, _ = request_extraction(owner, wide, digits, ["fc"], "mean")
    execute_run(run.pk)
    run = fresh(run)
    assert run.state == Run.State.FAILED
    assert run.error.startswith("the model failed on input of shape (")
    assert "cannot be multiplied" in run.error and "64" in run.error, run.error
    assert "\n" not in run.error and "Traceback" not in run.error and len(run.error) < 300
    assert "Traceback of TorchScript" in run.error_details
    client.force_login(owner)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert page.index(run.error.split(":")[0]) < page.index("<details")
    assert "Traceback of TorchScript" in page


def test_comparison_failure_names_the_dependency_that_failed(owner, nan_ckpt, ckpt_b, digits):
    comparison, _ = request_comparison(owner, nan_ckpt, ckpt_b, digits, n_permutations=2)
    nan_extraction = comparison.depends_on.get(checkpoint=nan_ckpt)
    execute_run(nan_extraction.pk)  # fails; the other extraction is still queued
    assert fresh(nan_extraction).state == Run.State.FAILED
    execute_run(comparison.pk)
    comparison = fresh(comparison)
    assert comparison.state == Run.State.FAILED
    assert f"#{nan_extraction.pk}" in comparison.error
    assert "NaN" in comparison.error


def test_comparison_with_activations_of_the_wrong_length_fails_clearly(
    owner, ckpt_a, ckpt_b, digits
):
    comparison, _ = request_comparison(owner, ckpt_a, ckpt_b, digits, n_permutations=2)
    rng = np.random.default_rng(0)
    for checkpoint in (ckpt_a, ckpt_b):
        for layer in DEFAULT_LAYERS:
            values = rng.normal(size=(59, WIDTHS[layer])).astype(np.float32)
            ActivationSet.objects.create(
                checkpoint=checkpoint,
                dataset=digits,
                layer=layer,
                pooling="mean",
                blob=Blob.store_array(values),
                n=59,
                d=WIDTHS[layer],
            )
    for dependency in comparison.depends_on.all():
        execute_run(dependency.pk)  # everything is stored already: nothing to extract
        assert fresh(dependency).state == Run.State.SUCCEEDED
        assert fresh(dependency).timings == {"layers_extracted": 0}
    execute_run(comparison.pk)
    comparison = fresh(comparison)
    assert comparison.state == Run.State.FAILED
    assert "59 rows" in comparison.error
    assert "60 samples" in comparison.error
    assert "internal error" not in comparison.error
    assert Score.objects.count() == 0


# --------------------------------------------------------------------------- submitting


def test_same_request_twice_is_one_run_enqueued_once(
    owner, ckpt_a, ckpt_b, digits, django_capture_on_commit_callbacks, sent
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first, created_first = request_extraction(owner, ckpt_a, digits)
        second, created_second = request_extraction(owner, ckpt_a, digits, list(DEFAULT_LAYERS))
    assert (created_first, created_second) == (True, False)
    assert first.pk == second.pk
    assert Run.objects.count() == 1
    assert len(callbacks) == 1
    callbacks[0]()
    assert sent == ["gpu"]  # the extraction's queue, once

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        comparison, created = request_comparison(owner, ckpt_a, ckpt_b, digits)
        again, created_again = request_comparison(owner, ckpt_a, ckpt_b, digits)
    assert created and not created_again and comparison.pk == again.pk
    assert Run.objects.count() == 3  # the ckpt_a extraction is shared
    assert len(callbacks) == 2  # the new extraction and the comparison


def test_only_a_comparison_of_token_level_sets_says_how_it_reads_them(
    owner, ckpt_a, ckpt_b, digits
):
    """``positions`` is a parameter of a comparison of token-level sets only, so a request for
    one vector per sample keys its run as it did before there were any."""
    plain, _ = request_comparison(owner, ckpt_a, ckpt_b, digits)
    assert "positions" not in plain.params
    tokens, _ = request_comparison(owner, ckpt_a, ckpt_b, digits, pooling="tokens")
    assert tokens.params["positions"] == "mean"


def test_failed_run_submitted_again_is_requeued(
    owner, ckpt_a, digits, django_capture_on_commit_callbacks
):
    run, _ = request_extraction(owner, ckpt_a, digits)
    run.claim()
    run.finish(Run.State.FAILED, "the worker ran out of memory")
    assert fresh(run).state == Run.State.FAILED

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        again, created = request_extraction(owner, ckpt_a, digits)
    assert created
    assert again.pk == run.pk
    run = fresh(run)
    assert (run.state, run.error, run.progress) == (Run.State.QUEUED, "", 0.0)
    assert run.started_at is None and run.finished_at is None
    assert len(callbacks) == 1

    execute_run(run.pk)
    assert fresh(run).state == Run.State.SUCCEEDED

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _, created = request_extraction(owner, ckpt_a, digits)
    assert not created and len(callbacks) == 0  # a succeeded run is not redone


def test_claim_is_exclusive(owner, ckpt_a, digits):
    run, _ = request_extraction(owner, ckpt_a, digits)
    other_delivery = Run.objects.get(pk=run.pk)
    assert run.claim() is True
    assert run.state == Run.State.RUNNING
    assert run.started_at is not None
    assert other_delivery.claim() is False
    assert run.claim() is False
    assert fresh(run).state == Run.State.RUNNING


def test_report_progress(owner, ckpt_a, digits):
    run, _ = request_extraction(owner, ckpt_a, digits)
    with pytest.raises(Cancelled):
        run.report_progress(0.1)  # not claimed: not running
    run.claim()
    run.report_progress(0.25)
    assert fresh(run).progress == 0.25
    run.report_progress(7)
    assert fresh(run).progress == 1.0
    assert run.cancel() is True
    with pytest.raises(Cancelled):
        run.report_progress(0.5)
    assert fresh(run).state == Run.State.CANCELLED


def test_run_cancelled_while_computing_stays_cancelled(owner, ckpt_a, digits, monkeypatch):
    run, _ = request_extraction(owner, ckpt_a, digits)
    real = workers.tasks.run_in_host
    calls = []

    def cancel_then_extract(*args, **kwargs):
        calls.append(kwargs["progress"])
        Run.objects.get(pk=run.pk).cancel()  # the user presses "Cancel" mid-run
        return real(*args, **kwargs)

    monkeypatch.setattr(workers.tasks, "run_in_host", cancel_then_extract)
    execute_run(run.pk)
    assert len(calls) == 1
    run = fresh(run)
    assert run.state == Run.State.CANCELLED
    assert run.error == ""
    assert run.finished_at is not None
    assert ActivationSet.objects.count() == 0
    execute_run(run.pk)
    assert fresh(run).state == Run.State.CANCELLED


def test_cancelled_before_delivery_is_never_run(owner, ckpt_a, digits):
    run, _ = request_extraction(owner, ckpt_a, digits)
    run.cancel()
    execute_run(run.pk)
    assert fresh(run).state == Run.State.CANCELLED
    assert fresh(run).started_at is None
    assert ActivationSet.objects.count() == 0


# --------------------------------------------------------------------------- stored scores


def test_stored_scores_stay_in_the_declared_range(workspace, owner, ckpt_a, ckpt_b, digits):
    """Thirty layers, each stored identically for both checkpoints and compared with itself:
    every value must be 1 up to rounding and none outside [0, 1]."""
    rng = np.random.default_rng(1)
    runs = []
    for i in range(30):
        values = rng.normal(size=(60, int(rng.integers(2, 90)))).astype(np.float32)
        blob = Blob.store_array(values)
        for checkpoint in (ckpt_a, ckpt_b):
            ActivationSet.objects.create(
                checkpoint=checkpoint,
                dataset=digits,
                layer=f"l{i}",
                pooling="mean",
                blob=blob,
                n=60,
                d=values.shape[1],
            )
        params = {
            "layers_a": [f"l{i}"],
            "layers_b": [f"l{i}"],
            "pooling": "mean",
            "measure": "cka/linear",
            "n_permutations": 1,
            "seed": 0,
        }
        runs.append(
            Run.objects.create(
                workspace=workspace,
                kind=Run.Kind.COMPARE,
                params=params,
                request_key=Run.key_for(Run.Kind.COMPARE, test="range", layer=i),
                dataset=digits,
                checkpoint=ckpt_a,
                checkpoint_b=ckpt_b,
                created_by=owner,
            )
        )
    for run in runs:
        execute_run(run.pk)
        assert fresh(run).state == Run.State.SUCCEEDED, fresh(run).error
    values = list(Score.objects.values_list("value", flat=True))
    assert len(values) == 30
    assert all(abs(v - 1.0) < 1e-9 for v in values)
    assert all(0.0 <= v <= 1.0 for v in values), max(values)


@pytest.mark.parametrize("measure_id", sorted(MEASURES))
def test_every_registered_measure_runs_as_a_comparison(owner, workspace, measure_id):
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(300)), "digits300.npz", "digits300"
    )
    a = checkpoint_from(workspace, owner, torchscript_mlp_bytes(0), "a")
    b = checkpoint_from(workspace, owner, torchscript_mlp_bytes(1), "b")
    run, _ = request_comparison(
        owner, a, b, dataset, measure=measure_id, n_permutations=2, n_bootstrap=2
    )
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    measure = MEASURES[measure_id]
    low, high = measure.bounds or measure.range
    scores = list(run.scores.all())
    assert len(scores) == len(a.default_layers) * len(b.default_layers)
    for score in scores:
        assert score.measure == measure_id
        assert low - 1e-9 <= score.value <= high + 1e-9
        assert np.isfinite([score.value, score.baseline]).all()
        assert score.sample_agreement is not None


def test_a_dead_layer_leaves_its_cells_empty_with_the_reason(client, owner, ckpt_b, digits):
    """block2 of this MLP never fires (zero weights, negative bias): its activations and the
    head's are constant, so CKA is undefined for them. The comparison still succeeds, with
    those cells empty and the reason shown, and every other pair scored."""
    from analysis.models.architectures import mlp

    torch.manual_seed(0)
    model = mlp(64, [32, 16], 10)
    with torch.no_grad():
        model.block2[0].weight.zero_()
        model.block2[0].bias.fill_(-1.0)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    dead = checkpoint_from(ckpt_b.workspace, owner, buffer.getvalue(), "dead-block2")
    comparison, _ = request_comparison(owner, dead, ckpt_b, digits, n_permutations=2)
    comparison = run_with_dependencies(comparison)
    assert comparison.state == Run.State.SUCCEEDED, comparison.error
    scores = {(s.layer_a, s.layer_b): s for s in Score.objects.filter(run=comparison)}
    assert len(scores) == 16
    for (layer_a, _), score in scores.items():
        if layer_a in ("block2", "head"):
            assert score.value is None and score.baseline is None
            assert "every column is constant" in score.warnings[0]
        else:
            assert score.value is not None and 0 <= score.value <= 1
    client.force_login(owner)
    page = client.get(f"/comparisons/{comparison.pk}/").content.decode()
    assert "block2: every column is constant" in page
    pair = client.get(f"/comparisons/{comparison.pk}/pairs/2/0/").content.decode()
    assert "every column is constant" in pair
