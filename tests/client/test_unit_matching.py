"""Unit matching through the client and the CLI against the live server: asked for, computed
(the worker in-process), read back; a refused request carries the server's reason."""

from __future__ import annotations

import json

import pytest
from replens_client import ReplensError, cli

from tests.conftest import checkpoint_from, run_with_dependencies, torchscript_mlp_bytes
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


def test_match_units_then_read_the_curves_and_pairs(
    replens, workspace, owner, digits, server, token, capsys
):
    dataset = {"id": digits.pk}
    a = {"id": checkpoint_from(workspace, owner, torchscript_mlp_bytes(1), "mlp").pk}
    run = replens.match_units(
        a, a, dataset, "block1", "block2", n_pairs=2, top_m=3, n_alphas=8, test_fraction=0.5
    )
    assert run["kind"] == "units" and run["params"]["n_pairs"] == 2
    assert replens.unit_matching(run["id"])["report"] is None  # not computed yet
    run_with_dependencies(Run.objects.get(pk=run["id"]))  # the worker, in-process
    result = replens.result(run["id"])
    report = result["report"]
    assert (result["layer_a"], result["layer_b"]) == ("block1", "block2")
    assert (report["p"], report["q"], report["n"]) == (32, 16, 60)
    assert len(report["share_hungarian"]) == len(report["thresholds"]) == 101
    assert report["sparse"]["error_at_nonzeros"][0] == pytest.approx(1.0)
    assert (report["heldout"]["n_test"], report["heldout"]["n_train"]) == (30, 30)
    assert report["heldout"]["error_at_nonzeros"][0] == pytest.approx(1.0)
    assert result["parameters"]["test_fraction"] == 0.5 and result["parameters"]["seed"] == 0
    assert len(report["best_pairs"]) == 2 and len(report["best_pairs"][0]["top_samples"]) == 3
    assert "Hungarian" in result["definitions"]["hungarian"]

    with pytest.raises(ReplensError, match="n_pairs"):
        replens.match_units(a, a, dataset, "block1", "block2", n_pairs=0)
    with pytest.raises(ReplensError, match="layer 'nope' is not in"):
        replens.match_units(a, a, dataset, "nope", "block2")

    argv = ["--url", server, "--token", token, "--format", "json", "match-units"]
    ids = ["-a", str(a["id"]), "-b", str(a["id"]), "-d", str(dataset["id"])]
    options = ["--layer-a", "block1", "--layer-b", "block2", "--pairs", "2", "--top", "3"]
    status = cli.main([*argv, *ids, *options, "--alphas", "8", "--test-fraction", "0.5"])
    out, err = capsys.readouterr()
    assert status == 0 and json.loads(out)["id"] == run["id"]  # the same request, the same run
    assert f"run #{run['id']} (units)" in err


def test_every_option_of_the_command_has_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["match-units", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--layer-a",
        "--layer-b",
        "--pooling",
        "--pairs",
        "--top",
        "--alphas",
        "--test-fraction",
        "--seed",
        "--wait",
    ):
        assert option in text
    command = cli.build_parser()._subparsers._group_actions[0].choices["match-units"]
    assert all(action.help for action in command._actions)
