"""A training run through the client: checkpoints logged with their metrics make a series,
whose dynamics are asked for, computed and read back, through the client and the CLI."""

from __future__ import annotations

import json

import pytest
from replens_client import ReplensError, cli

from tests.conftest import nudged_mlp_bytes, run_with_dependencies
from webapp.catalog.models import Checkpoint
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


def test_logged_checkpoints_make_a_series_whose_dynamics_the_client_reads(
    replens, small_digits_file, tmp_path, server, token, capsys
):
    dataset = replens.upload_dataset(small_digits_file, "lab")
    for step in range(3):
        path = tmp_path / "mlp.pt"
        path.write_bytes(nudged_mlp_bytes(0, 0.05 * step))
        logged = replens.log_checkpoint(
            path, "lab", step * 10, seed_group="run-1", metrics={"loss": 3.0 - step, "epoch": step}
        )
        assert logged["metrics"] == {"loss": 3.0 - step, "epoch": float(step)}
    with pytest.raises(ReplensError, match="must be a number"):
        replens.log_checkpoint(path, "lab", 40, seed_group="run-1", metrics={"loss": "low"})
    assert Checkpoint.objects.count() == 3  # the refused one was never stored

    (series,) = replens.series("lab")
    assert series["name"] == "run-1" and series["page"].endswith("/w/lab/series/?group=run-1")
    assert [c["step"] for c in series["checkpoints"]] == [0, 10, 20]

    run = replens.follow("lab", "run-1", dataset, layers=["block1"])
    assert run["kind"] == "dynamics"
    run_with_dependencies(Run.objects.get(pk=run["id"]))  # the worker, in-process
    result = replens.result(run["id"])
    assert result["steps"] == [0, 10, 20] and result["metrics"]["loss"] == [3.0, 2.0, 1.0]
    (layer,) = result["layers"]
    assert layer["layer"] == "block1" and len(layer["matrix"]["value"]) == 3
    assert layer["to_final"][-1] == pytest.approx(1.0)

    status = cli.main(
        ["--url", server, "--token", token, "--format", "json", "ls", "series", "-w", "lab"]
    )
    assert status == 0 and json.loads(capsys.readouterr().out)[0]["name"] == "run-1"
    status = cli.main(
        [
            "--url",
            server,
            "--token",
            token,
            "dynamics",
            "-w",
            "lab",
            "--series",
            "run-1",
            "-d",
            str(dataset["id"]),
            "--layers",
            "block1",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0 and f"run #{run['id']} (dynamics)" in err  # the same request, the same run
