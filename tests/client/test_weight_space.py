"""Weight space through the client and the CLI against the live server: two checkpoints asked
for, computed, read back; a checkpoint whose weights no permutation spec reads is refused with
the server's one sentence."""

from __future__ import annotations

import json

import pytest
from replens_client import ReplensError, cli

from tests.conftest import run_with_dependencies, torchscript_mlp_bytes
from webapp.catalog.models import Checkpoint
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_client_asks_for_a_weight_space_and_reads_it(
    replens, small_digits_file, mlp_file, small_mlp_file, server, token, capsys
):
    dataset = replens.upload_dataset(small_digits_file, "lab")
    a = replens.upload_checkpoint(small_mlp_file, "lab")
    wide = replens.upload_checkpoint(mlp_file, "lab")  # the same architecture, wider
    with pytest.raises(ReplensError, match="different widths or depths"):
        replens.compare_weights(a, wide, dataset)

    other = small_mlp_file.with_name("other.pt")
    other.write_bytes(torchscript_mlp_bytes(2))
    b = replens.upload_checkpoint(other, "lab")
    run = replens.compare_weights(a, b, dataset)
    assert run["kind"] == "weights" and run["state"] == "queued"
    run_with_dependencies(Run.objects.get(pk=run["id"]))
    result = replens.result(run["id"])
    assert result == replens.weight_space(run["id"])
    assert result["state"] == "succeeded" and result["architecture"] == "mlp"
    found = result["result"]
    assert found["function_check"]["passed"] and len(found["lambdas"]) == 11
    assert found["l2"]["after"] <= found["l2"]["before"]
    assert [layer["layer"] for layer in found["layers"]] == ["block1.0", "block2.0", "head"]

    status = cli.main(
        ["--url", server, "--token", token, "--format", "json", "weights"]
        + ["-a", str(b["id"]), "-b", str(a["id"]), "-d", str(dataset["id"]), "--seed", "3"]
    )
    assert status == 0
    assert json.loads(capsys.readouterr().out)["id"] == Run.objects.get(params__seed=3).pk

    Checkpoint.objects.filter(pk=b["id"]).update(format="onnx")
    with pytest.raises(ReplensError, match="weight space reads weights only from .safetensors"):
        replens.compare_weights(a, b, dataset)


def test_every_option_of_the_weights_command_has_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["weights", "--help"])
    shown = capsys.readouterr().out
    for option in ("--checkpoint-a", "--checkpoint-b", "--dataset", "--seed", "--wait"):
        assert option in shown
