"""Runs through the client: extraction, comparison and probe in a real Celery worker, waiting
for them, failures and cancellations raising the server's reason, results and exports."""

from __future__ import annotations

import csv

import pyarrow.parquet as pq
import pytest
from replens_client import ReplensError, RunFailed, WaitTimeout

from webapp.catalog.models import ActivationSet, Fit

pytestmark = pytest.mark.integration


def test_extract_and_wait_through_a_real_worker(worker, replens, small_digits_file, mlp_file):
    dataset = replens.upload_dataset(small_digits_file, "lab")
    checkpoint = replens.upload_checkpoint(mlp_file, "lab")
    run = replens.extract(checkpoint, dataset, layers=["block1", "block2"])
    assert run["kind"] == "extract" and run["state"] in ("queued", "running")
    assert replens.extract(checkpoint["id"], dataset["id"], ["block1", "block2"])["id"] == run["id"]

    polled = []
    finished = replens.wait(run["id"], poll=0.2, timeout=120, progress=polled.append)

    assert finished["state"] == "succeeded" and finished["progress"] == 1.0
    assert polled[-1] == finished and all(p["id"] == run["id"] for p in polled)
    assert replens.run(run["id"])["finished_at"] == finished["finished_at"]
    layers = ActivationSet.objects.filter(checkpoint_id=checkpoint["id"]).values_list("layer")
    assert sorted(layer for (layer,) in layers) == ["block1", "block2"]


def test_compare_and_probe_through_a_real_worker(
    worker, replens, small_digits_file, mlp_file, small_mlp_file
):
    dataset = replens.upload_dataset(small_digits_file, "lab")
    a = replens.upload_checkpoint(mlp_file, "lab")
    b = replens.upload_checkpoint(small_mlp_file, "lab")
    comparison = replens.compare(
        a, b, dataset, layers_a=["block1", "block2"], n_permutations=2, n_bootstrap=0
    )
    probe = replens.probe(b, dataset, layers=["block1"], families={"image/noise": [0, 0.1]})

    assert replens.wait(comparison["id"], poll=0.2, timeout=180)["state"] == "succeeded"
    matrix = replens.comparison(comparison["id"])
    assert matrix["run"] == comparison["id"] and matrix["layers_a"] == ["block1", "block2"]
    values = [v for row in matrix["value"] for v in row]
    assert len(values) == 2 * len(matrix["layers_b"]) and all(0 <= v <= 1 for v in values)

    assert replens.wait(probe["id"], poll=0.2, timeout=180)["state"] == "succeeded"
    result = replens.probe_result(probe["id"])
    assert result["run"] == probe["id"]
    assert [f["key"] for f in result["families"]] == ["image/noise"]
    assert [row["layer"] for row in result["families"][0]["rows"]] == ["block1"]


def test_wait_raises_the_servers_reason_for_a_failed_run(
    worker, replens, small_digits_file, nan_file
):
    dataset = replens.upload_dataset(small_digits_file, "lab")
    checkpoint = replens.upload_checkpoint(nan_file, "lab")
    # The worker ran the first digit through it when its upload was checked: refused at once.
    with pytest.raises(ReplensError, match="fails on the first sample of .*NaN"):
        replens.extract(checkpoint, dataset)
    # A pair not checked yet is taken, and its run fails in the worker with the reason.
    Fit.objects.filter(checkpoint_id=checkpoint["id"]).delete()
    run = replens.extract(checkpoint, dataset)
    with pytest.raises(RunFailed) as caught:
        replens.wait(run["id"], poll=0.2, timeout=120)
    failed = caught.value
    assert failed.run["state"] == "failed" and failed.run["id"] == run["id"]
    assert "NaN" in str(failed) and f"run #{run['id']} (extract) failed" in str(failed)
    assert isinstance(failed, ReplensError)


def test_wait_times_out_then_raises_for_a_cancelled_run(replens, small_digits_file, small_mlp_file):
    # No worker: the run stays queued.
    dataset = replens.upload_dataset(small_digits_file, "lab")
    checkpoint = replens.upload_checkpoint(small_mlp_file, "lab")
    run = replens.extract(checkpoint, dataset)
    with pytest.raises(WaitTimeout) as late:
        replens.wait(run["id"], poll=0.1, timeout=0.5)
    assert late.value.run["state"] == "queued" and isinstance(late.value, TimeoutError)

    assert replens.cancel(run["id"])["state"] == "cancelled"
    with pytest.raises(RunFailed, match="cancelled") as caught:
        replens.wait(run)
    assert caught.value.run["state"] == "cancelled"


def test_refused_requests_carry_the_servers_detail(replens, small_digits_file, small_mlp_file):
    dataset = replens.upload_dataset(small_digits_file, "lab")
    checkpoint = replens.upload_checkpoint(small_mlp_file, "lab")
    with pytest.raises(ReplensError) as bad_layer:
        replens.extract(checkpoint, dataset, layers=["nope"])
    assert bad_layer.value.status == 400 and "has no layer(s) nope" in str(bad_layer.value)
    with pytest.raises(ReplensError) as missing:
        replens.run(987654)
    assert missing.value.status == 404
    with pytest.raises(ReplensError) as bad_measure:
        replens.compare(checkpoint, checkpoint, dataset, measure="no/such")
    assert bad_measure.value.status == 400 and "measure" in str(bad_measure.value)
    with pytest.raises(ReplensError) as unknown:
        replens.compare(checkpoint, checkpoint, dataset, bogus=1)
    assert unknown.value.status == 400 and "bogus" in str(unknown.value)
    # A parameter of the run kind's spec goes through without the client naming it.
    run = replens.compare(checkpoint, checkpoint, dataset, agreement_k=5, n_permutations=2)
    assert (run["params"]["agreement_k"], run["params"]["n_permutations"]) == (5, 2)


def test_export_a_selection_as_csv_and_parquet(replens, small_digits_file, tmp_path):
    dataset = replens.upload_dataset(small_digits_file, "lab")
    selection = replens.select(dataset, [0, 3, 5], name="three", tags=["review"])
    assert selection["count"] == 3 and selection["tags"] == ["review"]

    written = replens.export_selection(selection["id"], tmp_path / "three.csv")
    with open(written, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["index"] for r in rows] == ["0", "3", "5"]
    assert [r["id"] for r in rows] == ["digit-0000", "digit-0003", "digit-0005"]

    table = pq.read_table(replens.export_selection(selection, tmp_path / "three.parquet"))
    assert table.column("index").to_pylist() == [0, 3, 5]
    explicit = replens.export_selection(selection, tmp_path / "as-csv.out", file="csv")
    assert explicit.read_text() == written.read_text()
    assert not list(tmp_path.glob("*.part"))

    with pytest.raises(ReplensError) as missing:
        replens.export_selection(424242, tmp_path / "missing.csv")
    assert missing.value.status == 404 and not (tmp_path / "missing.csv").exists()
