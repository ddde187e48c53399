"""A token-level extraction through the client: its size asked before the run, then the
stored rows' sample, position and special downloaded (issue 19 item 2)."""

from __future__ import annotations

import json

import numpy as np
from replens_client import cli

from tests.conftest import run_with_dependencies
from webapp.runs.models import Run


def test_the_size_before_the_run_and_the_positions_after(
    replens, small_digits_file, small_mlp_file, tmp_path
):
    dataset = replens.upload_dataset(small_digits_file, "lab")
    checkpoint = replens.upload_checkpoint(small_mlp_file, "lab")

    # The MLP's block1 is one vector per sample: one row each, known exactly before the run.
    estimate = replens.extraction_storage(checkpoint, dataset, ["block1"])
    (layer,) = estimate["layers"]
    assert estimate["estimate"] == layer["estimate"] == "exact"
    assert layer["rows"] == 300 and estimate["bytes"] == 300 * (4 * layer["d"] + 17)

    run = replens.extract(checkpoint, dataset, ["block1"], pooling="tokens")
    assert run_with_dependencies(Run.objects.get(pk=run["id"])).state == Run.State.SUCCEEDED
    (stored,) = [a for a in replens.activations(checkpoint, dataset) if a["pooling"] == "tokens"]
    values = np.load(replens.download_activations(stored["id"], tmp_path / "values.npy"))
    with np.load(replens.download_positions(stored["id"], tmp_path / "positions.npz")) as found:
        sample, position, special = found["sample"], found["position"], found["special"]
    np.testing.assert_array_equal(sample, np.arange(300))
    assert not position.any() and not special.any()  # one position per sample, none left out
    assert values.nbytes + sample.nbytes + position.nbytes + special.nbytes == estimate["bytes"]


def test_the_cli_projects_a_token_level_set_pooled_as_positions_says(
    replens, server, token, small_digits_file, small_mlp_file, capsys
):
    """``replens project --pooling tokens --positions last``: the run reads each sample's last
    row, and its projection says so (here one row per sample: the rows themselves)."""
    dataset = replens.upload_dataset(small_digits_file, "lab")
    checkpoint = replens.upload_checkpoint(small_mlp_file, "lab")
    argv = ["--url", server, "--token", token, "--format", "json", "project"]
    argv += ["-c", str(checkpoint["id"]), "-d", str(dataset["id"]), "--layer", "block1"]
    assert cli.main([*argv, "--pooling", "tokens", "--positions", "last"]) == 0
    asked = json.loads(capsys.readouterr().out)
    run = run_with_dependencies(Run.objects.get(pk=asked["id"]))
    assert run.state == Run.State.SUCCEEDED, run.error
    assert run.params["pooling"] == "tokens" and run.params["positions"] == "last"
    note = replens.projection(run.pk)["parameters"]["positions"]
    assert note.startswith("pooled on the fly by last: each sample's last position")
