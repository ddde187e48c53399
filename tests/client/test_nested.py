"""Nested-embedding runs through the client and the ``replens nested`` command against the
real server: asked once, read back as curves (JSON and a table), refused with the reason."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from replens_client import ReplensError, cli

from tests.conftest import (
    checkpoint_from,
    digits_npz_bytes,
    run_with_dependencies,
    torchscript_mlp_bytes,
)
from webapp.catalog.ingest import ingest_dataset
from webapp.runs.models import Run


def stored(workspace, owner) -> tuple[dict, dict, dict]:
    """300 digits and two MLPs (32 and 256 units at block2) in the lab, as the API lists them
    (stored here: the uploads have tests of their own)."""
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(300)), "digits.npz", "digits"
    )
    a = checkpoint_from(workspace, owner, torchscript_mlp_bytes(1), "small-mlp")
    b = checkpoint_from(workspace, owner, torchscript_mlp_bytes(0, (512, 256)), "wide-mlp")
    return (
        {"id": dataset.pk},
        {"id": a.pk, "name": a.name},
        {"id": b.pk, "name": b.name},
    )


def test_request_read_and_print_the_curves(replens, server, token, workspace, owner, capsys):
    dataset, a, b = stored(workspace, owner)
    run = replens.request_nested([a, b["id"]], dataset, "block2", metric="euclidean")
    assert run["kind"] == "nested" and run["params"]["checkpoints"] == [a["id"], b["id"]]
    assert run["params"] == {**run["params"], "layer": "block2", "metric": "euclidean"}

    connect = ["--url", server, "--token", token, "--no-progress"]
    argv = ["nested", "-c", str(a["id"]), str(b["id"]), "-d", str(dataset["id"])]
    status = cli.main(
        ["--format", "json", *connect, *argv, "--layer", "block2", "--metric", "euclidean"]
    )
    captured = capsys.readouterr()
    assert status == 0 and json.loads(captured.out)["id"] == run["id"]  # the same request
    assert f"run #{run['id']} (nested)" in captured.err and f"/nested/{run['id']}/" in captured.err

    waiting = replens.nested(run)
    assert waiting["curves"] == [] and waiting["state"] == "queued"
    run_with_dependencies(Run.objects.get(pk=run["id"]))
    view = replens.nested(run["id"])
    assert replens.result(run["id"]) == view
    assert [c["checkpoint"]["id"] for c in view["curves"]] == [a["id"], b["id"]]
    small, wide = view["curves"]
    assert small["dims"] == [8, 16] and wide["dims"] == [8, 16, 32, 64, 128, 256]
    assert small["cka"][-1] == pytest.approx(1) and wide["cka"][-1] == pytest.approx(1)
    assert view["provenance"]["metric"] == "euclidean" and view["provenance"]["n"] == 300

    assert cli.main([*connect, "result", str(run["id"])]) == 0
    table = capsys.readouterr().out
    assert f"{b['name']} at block2 (d = 256)" in table
    assert re.search(r"^ *m +mAP +top-1 +top-5 +probe +CKA$", table, re.M)
    assert "\n256  " in table
    assert table.rstrip().splitlines()[-1].startswith("chance: mAP ")


def test_an_unlabelled_dataset_is_refused(replens, workspace, owner):
    buffer = io.BytesIO()
    np.savez(buffer, x=np.random.default_rng(0).random((20, 1, 8, 8), dtype=np.float32))
    dataset, _ = ingest_dataset(workspace, owner, io.BytesIO(buffer.getvalue()), "u.npz", "u")
    checkpoint = checkpoint_from(workspace, owner, torchscript_mlp_bytes(1), "small-mlp")
    with pytest.raises(ReplensError, match="^u has no labels: nested-embedding quality needs"):
        replens.request_nested([checkpoint.pk], dataset.pk, "block1")
    with pytest.raises(ReplensError, match="checkpoints"):
        replens.request_nested([], dataset.pk, "block1")
