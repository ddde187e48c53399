"""The ``replens`` command, run in-process (``cli.main(argv)``) against the real server, and
once as the installed console script."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
from django.utils import timezone
from replens_client import cli

from tests.client.conftest import sha256_of, stored_chunks
from tests.conftest import run_with_dependencies
from webapp.catalog.models import Checkpoint, Dataset, Fit, Upload
from webapp.runs.models import Run
from webapp.runs.submit import request_model_matrix


@pytest.fixture
def replens_cli(server, token, capsys):
    """``replens_cli(*args)`` → (exit status, parsed stdout JSON or None, stderr); with
    ``json_out=False`` the stdout text of the default format (tables)."""

    def run(*args: str, connect: bool = True, json_out: bool = True):
        argv = ["--url", server, "--token", token, *args] if connect else list(args)
        status = cli.main(["--format", "json", *argv] if json_out else argv)
        captured = capsys.readouterr()
        if not json_out:
            return status, captured.out, captured.err
        out = json.loads(captured.out) if captured.out.strip() else None
        return status, out, captured.err

    return run


def upload(replens_cli, kind: str, path: Path) -> dict:
    status, obj, err = replens_cli("--no-progress", f"upload-{kind}", str(path), "-w", "lab")
    assert status == 0, err
    return obj


def test_upload_dataset_prints_it_and_draws_a_byte_bar(replens_cli, digits_file):
    status, dataset, err = replens_cli(
        "upload-dataset", str(digits_file), "-w", "lab", "--name", "digits", "--chunk-size", "64K"
    )
    assert status == 0, err
    assert dataset["name"] == "digits" and dataset["n_samples"] == 1797
    assert dataset["sha256"] == sha256_of(digits_file)
    assert "\rupload digits.npz [" in err and "100%" in err and "/s" in err
    assert "KiB / " in err and "sha256 digits.npz" in err
    # Then a bar for the worker's check, ending "ready", before the dataset is named.
    assert "\rcheck digits.npz [" in err and "100% ready" in err
    assert err.index("\rupload digits.npz [") < err.index("\rcheck digits.npz [")
    assert f"created dataset #{dataset['id']} in lab" in err
    assert err.index("100% ready") < err.index("created dataset")

    # Again, options after the command, no bars: the same dataset, nothing sent.
    status, again, err = replens_cli(
        "upload-dataset", str(digits_file), "-w", "lab", "--no-progress"
    )
    assert status == 0 and again == dataset
    assert "\r" not in err and "[" not in err
    assert f"dataset #{dataset['id']} was already in lab (identical file)" in err


def test_a_refused_upload_exits_non_zero_with_the_reason(replens_cli, tmp_path):
    bogus = tmp_path / "notes.npz"
    bogus.write_bytes(b"these are not arrays\n" * 5000)
    status, out, err = replens_cli("upload-dataset", str(bogus), "-w", "lab", "--chunk-size", "64K")
    assert status == 1 and out is None
    # Every byte went up; the worker's check refused the file, and says why on a line of its own.
    assert "\rupload notes.npz [" in err and "100%" in err
    assert "\nreplens: error: notes.npz was refused: not an .npz archive" in err
    assert "created dataset" not in err and "(HTTP" not in err
    upload = Upload.objects.get()
    assert upload.state == Upload.State.FAILED and upload.error in err
    assert Dataset.objects.count() == 0 and stored_chunks(upload.pk) == []

    # A model file is refused by its check in a model host, the same way.
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x80\x02not torchscript" * 100)
    status, out, err = replens_cli("--no-progress", "upload-checkpoint", str(broken), "-w", "lab")
    assert status == 1 and out is None and "\r" not in err and err.count("\n") == 1
    assert err.startswith("replens: error: broken.pt was refused:") and "TorchScript" in err
    refused = Upload.objects.get(filename="broken.pt")
    assert refused.state == Upload.State.FAILED and refused.error in err
    assert Checkpoint.objects.count() == 0 and stored_chunks(refused.pk) == []


def test_upload_checkpoint_with_step_and_seed_group(replens_cli, mlp_file):
    status, checkpoint, err = replens_cli(
        "--no-progress",
        "upload-checkpoint",
        str(mlp_file),
        "--workspace",
        "lab",
        "--seed-group",
        "wide",
        "--step",
        "300",
        "--chunk-size",
        "128K",
    )
    assert status == 0, err
    assert checkpoint["step"] == 300 and checkpoint["seed_group"] == "wide"
    assert Checkpoint.objects.get(pk=checkpoint["id"]).step == 300


def test_connection_settings_from_the_environment(replens_cli, server, token, monkeypatch):
    monkeypatch.setenv("REPLENS_URL", server)
    monkeypatch.setenv("REPLENS_TOKEN", token)
    status, run, err = replens_cli("run", "4242", connect=False)
    assert status == 1 and run is None
    assert "replens: error:" in err and "(HTTP 404)" in err


def test_errors_exit_non_zero_with_the_servers_message(
    replens_cli, small_digits_file, small_mlp_file, server, monkeypatch
):
    dataset = upload(replens_cli, "dataset", small_digits_file)
    ckpt = upload(replens_cli, "checkpoint", small_mlp_file)

    status, out, err = replens_cli(
        "extract", "-c", str(ckpt["id"]), "-d", str(dataset["id"]), "--layers", "nope"
    )
    assert status == 1 and out is None
    assert "replens: error:" in err and "has no layer(s) nope" in err and "(HTTP 400)" in err

    status, _, err = replens_cli("extract", "-c", "999999", "-d", str(dataset["id"]))
    assert status == 1 and "No Checkpoint matches" in err

    status, _, err = replens_cli("--no-progress", "upload-dataset", "/no/such.npz", "-w", "lab")
    assert status == 1 and "No such file" in err

    status, _, err = replens_cli("probe", "-c", "1", "-d", "1", "--family", "a=1", "--family", "b")
    assert status == 2 and "magnitudes for every --family" in err

    monkeypatch.delenv("REPLENS_TOKEN", raising=False)
    status, _, err = replens_cli("--url", server, "run", "1", connect=False)
    assert status == 2 and "no API token" in err
    status, _, err = replens_cli("--url", server, "--token", "wrong", "run", "1", connect=False)
    assert status == 1 and "Invalid token" in err and "(HTTP 401)" in err
    with pytest.raises(SystemExit) as usage:
        cli.main(["--token", "t", "extract", "-c", "x"])
    assert usage.value.code == 2


@pytest.mark.integration
def test_extract_wait_and_a_failed_run_through_a_real_worker(
    worker, replens_cli, small_digits_file, small_mlp_file, nan_file
):
    dataset = upload(replens_cli, "dataset", small_digits_file)
    ckpt = upload(replens_cli, "checkpoint", small_mlp_file)

    status, run, err = replens_cli(
        "extract", "-c", str(ckpt["id"]), "-d", str(dataset["id"]), "--wait", "--poll", "0.2"
    )
    assert status == 0, err
    assert run["kind"] == "extract" and run["state"] == "succeeded"
    assert f"\rrun #{run['id']} extract [" in err and "100% succeeded" in err

    status, again, _ = replens_cli("--no-progress", "wait", str(run["id"]))
    assert status == 0 and again["id"] == run["id"] and again["state"] == "succeeded"
    status, shown, _ = replens_cli("run", str(run["id"]))
    assert status == 0 and shown["state"] == "succeeded"

    nan = upload(replens_cli, "checkpoint", nan_file)
    # The worker ran the first digit through it when its upload was checked: refused at once.
    extract_nan = ("extract", "-c", str(nan["id"]), "-d", str(dataset["id"]))
    status, _, err = replens_cli(*extract_nan)
    assert status == 1 and f"{nan['name']} fails on the first sample of" in err and "NaN" in err
    # A pair not checked yet is taken, and its run fails in the worker with the reason.
    Fit.objects.filter(checkpoint_id=nan["id"]).delete()
    status, queued, _ = replens_cli(*extract_nan)
    assert status == 0 and queued["state"] in ("queued", "running")
    status, failed, err = replens_cli("wait", str(queued["id"]), "--poll", ".2", "--timeout", "99")
    assert status == 3
    assert failed["id"] == queued["id"] and failed["state"] == "failed"
    assert f"replens: error: run #{queued['id']} (extract) failed:" in err and "NaN" in err


@pytest.mark.integration
def test_wait_timeout_cancel_and_result(replens_cli, small_digits_file, small_mlp_file, mlp_file):
    # No worker: the runs stay queued.
    dataset = upload(replens_cli, "dataset", small_digits_file)
    a = upload(replens_cli, "checkpoint", small_mlp_file)
    b = upload(replens_cli, "checkpoint", mlp_file)
    status, comparison, _ = replens_cli(
        "compare", "-a", str(a["id"]), "-b", str(b["id"]), "-d", str(dataset["id"]),
        "--layers-a", "block1", "--permutations", "2",
    )  # fmt: skip
    assert status == 0 and comparison["kind"] == "compare" and len(comparison["depends_on"]) == 2
    assert comparison["params"]["layers_a"] == ["block1"]

    run_id = str(comparison["id"])
    status, late, err = replens_cli("wait", run_id, "--poll", ".1", "--timeout", ".3")
    assert status == 4 and late["state"] == "queued" and "still queued" in err
    status, result, _ = replens_cli("result", str(comparison["id"]))
    assert status == 0 and result["run"] == comparison["id"] and result["state"] == "queued"

    status, cancelled, _ = replens_cli("cancel", str(comparison["id"]))
    assert status == 0 and cancelled["state"] == "cancelled"
    status, _, err = replens_cli("--no-progress", "wait", str(comparison["id"]))
    assert status == 3 and "cancelled" in err

    status, probe, _ = replens_cli(
        "probe", "-c", str(a["id"]), "-d", str(dataset["id"]),
        "--family", "image/rotation=0,90", "--family", "image/noise=0,0.1",
    )  # fmt: skip
    assert status == 0 and probe["kind"] == "probe"
    assert probe["params"]["families"] == [["image/rotation", [0, 90]], ["image/noise", [0, 0.1]]]

    status, knn, _ = replens_cli(
        "compare", "-a", str(a["id"]), "-b", str(b["id"]), "-d", str(dataset["id"]),
        "--measure", "knn/jaccard", "--param", "k=5", "--param", "metric=euclidean",
    )  # fmt: skip
    assert status == 0 and knn["params"]["measure_params"] == {"k": 5, "metric": "euclidean"}
    assert knn["queue"]["waiting_for"] == 2  # its two extractions
    status, _, err = replens_cli(
        "compare", "-a", str(a["id"]), "-b", str(b["id"]), "-d", str(dataset["id"]),
        "--measure", "knn/jaccard", "--param", "k=0",
    )  # fmt: skip
    assert status != 0 and "k must be ≥ 1" in err


def test_export_a_selection(replens_cli, replens, small_digits_file, tmp_path):
    dataset = replens.upload_dataset(small_digits_file, "lab")
    selection = replens.select(dataset, [1, 2], name="pair")
    target = tmp_path / "pair.parquet"
    status, saved, err = replens_cli("export", str(selection["id"]), str(target))
    assert status == 0, err
    size = len(target.read_bytes())
    assert saved == {"selection": selection["id"], "path": str(target), "bytes": size}
    assert target.read_bytes()[:4] == b"PAR1"

    status, saved, _ = replens_cli(
        "export", str(selection["id"]), str(tmp_path / "pair.txt"), "--file", "csv"
    )
    assert status == 0 and (tmp_path / "pair.txt").read_text().startswith("index,id,label")


def test_console_script_help():
    script = Path(sys.executable).parent / "replens"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for command in ("upload-checkpoint", "upload-dataset", "extract", "compare", "probe", "wait"):
        assert command in done.stdout
    assert "REPLENS_URL" in done.stdout and "REPLENS_TOKEN" in done.stdout

    module = subprocess.run(
        [sys.executable, "-m", "replens_client", "--version"], capture_output=True, text=True
    )
    assert module.returncode == 0 and module.stdout.strip() == "replens 0.1.0"


# --------------------------------------------------------------------------- lists and output


def test_ls_lists_datasets_checkpoints_and_runs_as_a_table_or_json(
    replens_cli, replens, small_digits_file, small_mlp_file
):
    dataset = replens.upload_dataset(small_digits_file, "lab", name="digits-300")
    ckpt = replens.upload_checkpoint(small_mlp_file, "lab", seed_group="mlp", step=7)
    extraction = replens.extract(ckpt, dataset, ["block1"])
    replens.cancel(replens.extract(ckpt, dataset, ["head"]))

    status, text, _ = replens_cli("ls", "datasets", json_out=False)
    assert status == 0
    header, row = text.splitlines()
    assert header.split() == ["ID", "WORKSPACE", "NAME", "MODALITY", "N_SAMPLES", "CREATED_AT"]
    assert row.split()[:5] == [str(dataset["id"]), "lab", "digits-300", "image", "300"]

    status, text, _ = replens_cli("ls", "checkpoints", "-w", "lab", json_out=False)
    header, row = text.splitlines()
    assert header.split()[:3] == ["ID", "WORKSPACE", "NAME"]
    assert row.split()[-2:] == ["mlp", "7"] and row.split()[0] == str(ckpt["id"])

    status, text, _ = replens_cli("ls", "runs", "--state", "queued", json_out=False)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["ID", "WORKSPACE", "KIND", "STATE"]
    assert [line.split()[:4] for line in lines[1:]] == [
        [str(extraction["id"]), "lab", "extract", "queued"]
    ]
    status, runs, _ = replens_cli("ls", "runs", "--kind", "extract", "--limit", "1")
    assert status == 0 and [r["state"] for r in runs] == ["cancelled"]  # the newest only
    status, runs, _ = replens_cli("ls", "runs", "-w", "elsewhere")
    assert status == 0 and runs == []
    status, _, err = replens_cli("ls", "runs", "--state", "done")
    assert status == 1 and "state must be one of queued, running" in err and "(HTTP 400)" in err

    status, datasets, _ = replens_cli("ls", "datasets", "--workspace", "lab")
    assert [d["id"] for d in datasets] == [dataset["id"]]
    status, checkpoints, _ = replens_cli(
        "--format", "table", "ls", "checkpoints", "--format", "json"
    )
    assert [c["id"] for c in checkpoints] == [ckpt["id"]]  # the option after the command wins


def test_commands_that_make_something_print_its_web_address(
    replens_cli, small_digits_file, small_mlp_file, server
):
    status, dataset, err = replens_cli(
        "--no-progress", "upload-dataset", str(small_digits_file), "-w", "lab"
    )
    assert status == 0
    page = f"{server}/datasets/{dataset['id']}/"
    assert dataset["page"] == page and f"created dataset #{dataset['id']} in lab: {page}\n" in err
    status, ckpt, err = replens_cli(
        "--no-progress", "upload-checkpoint", str(small_mlp_file), "-w", "lab"
    )
    assert ckpt["page"] == f"{server}/checkpoints/{ckpt['id']}/" and ckpt["page"] in err

    status, text, err = replens_cli(
        "compare", "-a", str(ckpt["id"]), "-b", str(ckpt["id"]), "-d", str(dataset["id"]),
        json_out=False,
    )  # fmt: skip
    assert status == 0
    fields = dict(line.split(None, 1) for line in text.splitlines())
    run_id, page = fields["id"], fields["page"]
    assert fields["kind"] == "compare" and fields["state"] == "queued"
    assert page == f"{server}/comparisons/{run_id}/"
    assert err == f"replens: run #{run_id} (compare) queued: {page}\n"
    assert requests.get(page, timeout=10).status_code in (200, 302)  # a page (sign-in first)


def test_wait_shows_time_waited_the_runs_it_waits_for_and_its_place_in_line(
    replens_cli, replens, small_digits_file, small_mlp_file, mlp_file
):
    dataset = replens.upload_dataset(small_digits_file, "lab")
    a = replens.upload_checkpoint(small_mlp_file, "lab")
    b = replens.upload_checkpoint(mlp_file, "lab")
    comparison = replens.compare(a, b, dataset, n_permutations=2)
    first, second = sorted(comparison["depends_on"])
    Run.objects.filter(pk=first).update(state="running", progress=0.45, started_at=timezone.now())

    status, late, err = replens_cli(
        "wait", str(comparison["id"]), "--poll", ".1", "--timeout", ".3"
    )
    assert status == 4 and late["state"] == "queued"
    line = err.split("\r")[-1].splitlines()[0]
    assert line.startswith(
        f"run #{comparison['id']} compare queued, waiting for 2 run(s): "
        f"#{first} extract running 45%, #{second} extract queued · waited 0:0"
    ), line
    assert "[" not in err and "0%" not in err.replace("45%", "")  # no bar while queued

    # The extraction of its own: first in its queue's line.
    status, late, err = replens_cli("wait", str(second), "--poll", ".1", "--timeout", ".2")
    assert status == 4
    assert f"run #{second} extract queued, number 1 in line, estimated start " in err
    assert "waited 0:00" in err

    # Running: a bar with its progress and the time waited.
    Run.objects.filter(pk=first).update(progress=0.5)
    status, _, err = replens_cli("wait", str(first), "--poll", ".1", "--timeout", ".2")
    assert (
        f"run #{first} extract [###############---------------]  50% running · waited 0:00" in err
    )


def test_every_option_has_help_and_the_token_help_names_the_token_page():
    parser = cli.build_parser()

    def parsers(p):
        yield p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    missing = [
        f"{p.prog} {action.option_strings or action.dest}"
        for p in parsers(parser)
        for action in p._actions
        if not action.help and not isinstance(action, argparse._SubParsersAction)
    ]
    assert missing == []
    token = next(a for a in parser._actions if "--token" in a.option_strings)
    assert "/account/token/" in token.help and "API token" in token.help
    assert "manage.py" not in token.help
    compare = next(
        a.choices["compare"] for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    helps = {a.dest: a.help for a in compare._actions}
    assert "rows" in helps["checkpoint_a"] and "columns" in helps["checkpoint_b"]
    assert "dataset" in helps["dataset"]


def test_download_activations_and_results_as_tables(
    replens_cli, replens, small_digits_file, small_mlp_file, mlp_file, tmp_path
):
    dataset = replens.upload_dataset(small_digits_file, "lab")
    ckpt = replens.upload_checkpoint(small_mlp_file, "lab")
    comparison = replens.compare(ckpt, ckpt, dataset, layers_a=["block1", "head"], n_permutations=2)
    run_with_dependencies(Run.objects.get(pk=comparison["id"]))  # the worker, in-process

    status, text, _ = replens_cli("result", str(comparison["id"]), json_out=False)
    assert status == 0
    title, header, *rows = text.splitlines()
    assert title.startswith("cka/linear on ") and title.endswith("succeeded")
    assert header.split() == ["A", "\\", "B", *comparison["params"]["layers_b"]]
    assert [r.split()[0] for r in rows] == ["block1", "head"]
    diagonal = float(rows[0].split()[1 + comparison["params"]["layers_b"].index("block1")])
    assert diagonal == pytest.approx(1.0, abs=1e-3)  # a layer against itself

    # A model matrix: its checkpoints as rows and columns.
    owner = Run.objects.get(pk=comparison["id"]).created_by
    second = replens.upload_checkpoint(mlp_file, "lab", name="wide")
    matrix, _ = request_model_matrix(
        owner,
        [Checkpoint.objects.get(pk=ckpt["id"]), Checkpoint.objects.get(pk=second["id"])],
        Dataset.objects.get(pk=dataset["id"]),
        "block1",
        n_permutations=2,
    )
    run_with_dependencies(matrix)
    status, text, _ = replens_cli("result", str(matrix.pk), json_out=False)
    title, header, *rows = text.splitlines()
    assert title.startswith("cka/linear on ") and title.endswith("succeeded")
    assert (
        sorted(header.split()[3:])
        == sorted(r.split()[0] for r in rows)
        == sorted([ckpt["name"], "wide"])
    )
    status, shown, _ = replens_cli("result", str(matrix.pk))
    assert shown["run"] == matrix.pk and shown["layer"] == "block1"

    status, sets, _ = replens_cli("ls", "activations", "-c", str(ckpt["id"]))
    block1 = next(s for s in sets if s["layer"] == "block1")
    target = tmp_path / "block1.npy"
    status, saved, err = replens_cli("download-activations", str(block1["id"]), str(target))
    assert status == 0, err
    assert saved == {
        "activation": block1["id"],
        "path": str(target),
        "bytes": target.stat().st_size,
    }
    assert sha256_of(target) == block1["sha256"]
    values = np.load(target, allow_pickle=False)
    assert values.shape == (300, block1["d"]) and values.dtype == np.float32

    status, _, err = replens_cli("download-activations", "999999", str(tmp_path / "none.npy"))
    assert status == 1 and "(HTTP 404)" in err and not (tmp_path / "none.npy").exists()
