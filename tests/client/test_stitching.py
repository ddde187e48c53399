"""Model stitching through the client and the CLI against the live server: asked for,
computed, read back; a B that cannot run as an eager module is refused with the server's one
sentence; every option of the command has help."""

from __future__ import annotations

import io
import json

import pytest
from replens_client import ReplensError, cli

from tests.conftest import (
    checkpoint_from,
    digits_npz_bytes,
    run_with_dependencies,
    torchscript_mlp_bytes,
)
from webapp.catalog.ingest import ingest_dataset
from webapp.catalog.models import Checkpoint
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


def digits_file(n: int) -> io.BytesIO:
    return io.BytesIO(digits_npz_bytes(n))


def test_the_client_asks_for_a_stitching_and_reads_it(
    replens, workspace, owner, server, token, capsys
):
    # The rows as an upload makes them (the client's uploads have tests of their own).
    dataset = {"id": ingest_dataset(workspace, owner, digits_file(300), "d.npz", "d")[0].pk}
    a = {"id": checkpoint_from(workspace, owner, torchscript_mlp_bytes(1), "small-mlp").pk}
    b = {"id": checkpoint_from(workspace, owner, torchscript_mlp_bytes(2), "other").pk}

    run = replens.stitch(a, b, dataset, layers_a=["block1", "block2"], map="linear", seed=3)
    assert run["kind"] == "stitch" and run["state"] == "queued"
    assert run["params"]["layers_a"] == ["block1", "block2"] and run["params"]["map"] == "linear"
    run_with_dependencies(Run.objects.get(pk=run["id"]))  # the worker, in-process
    result = replens.result(run["id"])
    assert result == replens.stitching(run["id"])
    assert result["state"] == "succeeded" and result["architecture_b"] == "mlp"
    found = result["result"]
    assert found["layers_a"] == ["block1", "block2"]
    assert found["layers_b"] == ["flatten", "block1", "block2", "head"]
    assert found["n_test"] == 60 and found["seed"] == 3  # 300 digits, a fifth held out
    for matrix in found["matrices"].values():
        assert len(matrix["accuracy"]) == 2 and len(matrix["accuracy"][0]) == 4
        assert all(0 <= v <= 1 for row in matrix["accuracy"] for v in row)

    Checkpoint.objects.filter(pk=b["id"]).update(format="onnx")
    with pytest.raises(ReplensError, match="so B must be an eager torch module"):
        replens.stitch(a, b, dataset)

    status = cli.main(
        ["--url", server, "--token", token, "--format", "json", "stitch"]
        + ["-a", str(a["id"]), "-b", str(a["id"]), "-d", str(dataset["id"])]
        + ["--layers-b", "head", "--test-fraction", "0.3", "--anchors", "50", "--ridge", "0.1"]
    )
    assert status == 0
    made = json.loads(capsys.readouterr().out)
    asked = Run.objects.get(pk=made["id"])
    assert asked.kind == "stitch" and asked.checkpoint_id == asked.checkpoint_b_id == a["id"]
    assert asked.params["layers_b"] == ["head"] and asked.params["n_anchors"] == 50
    assert asked.params["test_fraction"] == 0.3 and asked.params["ridge"] == 0.1


def test_every_option_of_the_stitch_command_has_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["stitch", "--help"])
    shown = capsys.readouterr().out
    for option in (
        "--checkpoint-a",
        "--checkpoint-b",
        "--dataset",
        "--layers-a",
        "--layers-b",
        "--test-fraction",
        "--seed",
        "--map",
        "--ridge",
        "--anchors",
        "--wait",
    ):
        assert option in shown
    for words in ("share of samples held out", "seed of the split", "penalty of the fitted"):
        assert words in shown
