"""``replens``: make and archive workspaces, upload checkpoints and datasets, list them, start
runs, wait for them, export selections and activations.

Results go to stdout as a table for people (``--format table``, the default) or as JSON for
scripts (``--format json``: the API's objects as they are); progress bars and messages, with
the web address of what a command made, go to stderr. Exit status: 0 done, 1 the server
refused the request or could not be reached, 2 wrong usage, 3 the run failed or was
cancelled, 4 ``--timeout`` passed while waiting, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, TextIO

from replens_client import __version__
from replens_client.client import (
    TOKEN_PAGE,
    Client,
    ReplensError,
    RunFailed,
    WaitTimeout,
    workspace_slug,
)

EXIT_ERROR, EXIT_USAGE, EXIT_RUN_FAILED, EXIT_TIMEOUT, EXIT_INTERRUPTED = 1, 2, 3, 4, 130
DEFAULT_URL = "http://127.0.0.1:8000"


# --------------------------------------------------------------------------- progress bars


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # unreachable


class Bar:
    """One line of text redrawn in place with ``\\r`` (at most ``fps`` times a second, and
    always when ``force``): ``label [#######---------]  42% detail``."""

    WIDTH = 30

    def __init__(self, stream: TextIO, enabled: bool = True, fps: float = 10.0) -> None:
        self.stream = stream
        self.enabled = enabled
        self.interval = 1.0 / fps
        self.last = 0.0
        self.drawn = 0  # length of the line on screen, to blank what a shorter one leaves
        self.active = False

    def draw(
        self, label: str, fraction: float | None, detail: str = "", force: bool = False
    ) -> None:
        """Redraw the line; ``fraction`` None draws no bar (nothing has started yet)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and self.active and now - self.last < self.interval:
            return
        if fraction is None:
            line = f"{label} {detail}".rstrip()
        else:
            fraction = min(max(fraction, 0.0), 1.0)
            filled = int(fraction * self.WIDTH)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            line = f"{label} [{bar}] {fraction:4.0%} {detail}".rstrip()
        self.stream.write("\r" + line + " " * max(0, self.drawn - len(line)))
        self.stream.flush()
        self.drawn, self.last, self.active = len(line), now, True

    def end(self) -> None:
        """Leave the line as it is and move below it."""
        if self.active:
            self.stream.write("\n")
            self.stream.flush()
            self.active, self.drawn = False, 0


class UploadBar:
    """``progress(phase, done, total)`` for uploads: hashing, bytes sent and the rate, then
    the server's check of the file."""

    def __init__(self, bar: Bar, name: str) -> None:
        self.bar, self.name = bar, name
        self.started: float | None = None
        self.first = 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        fraction = done / total if total else 1.0
        amounts = f"{human_bytes(done)} / {human_bytes(total)}"
        if phase == "hash":
            self.bar.draw(f"sha256 {self.name}", fraction, amounts, force=done >= total)
            return
        if phase == "check":
            detail = "ready" if done >= total else "a worker checks the file"
            self.bar.draw(f"check {self.name}", fraction, detail, force=done >= total)
            return
        now = time.monotonic()
        if self.started is None:
            self.started, self.first = now, done
        elapsed = now - self.started
        rate = (done - self.first) / elapsed if elapsed > 0 else 0.0
        detail = f"{amounts}  {human_bytes(rate)}/s"
        self.bar.draw(f"upload {self.name}", fraction, detail, force=done >= total)


def elapsed(seconds: float) -> str:
    """``0:07``, ``12:30``, ``1:02:03``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class RunBar:
    """``progress(run)`` for ``wait``. A queued run shows no bar but where it stands: the
    runs it waits for with their own state and progress, or its place in its queue's line
    and the estimated start; a running one its progress. Every line ends with the time
    waited so far."""

    def __init__(self, bar: Bar) -> None:
        self.bar = bar
        self.started = time.monotonic()
        self.state: str | None = None

    def __call__(self, run: dict) -> None:
        label = f"run #{run.get('id')} {run.get('kind', '')}".rstrip()
        state = str(run.get("state"))
        waited = f"waited {elapsed(time.monotonic() - self.started)}"
        if state == "queued":
            self.bar.draw(label, None, f"{self.standing(run)} · {waited}", force=True)
        else:
            changed = state != self.state
            progress = float(run.get("progress") or 0.0)
            self.bar.draw(label, progress, f"{state} · {waited}", force=changed)
        self.state = state

    @staticmethod
    def standing(run: dict) -> str:
        """Where a queued run stands."""
        standing = run.get("queue") or {}
        waiting = [d for d in run.get("dependencies") or [] if d.get("state") != "succeeded"]
        if waiting:
            parts = []
            for d in waiting:
                part = f"#{d['id']} {d['kind']} {d['state']}"
                if d["state"] == "running":
                    part += f" {float(d.get('progress') or 0):.0%}"
                parts.append(part)
            return f"queued, waiting for {len(waiting)} run(s): " + ", ".join(parts)
        if standing.get("position"):
            text = f"queued, number {standing['position']} in line"
            if standing.get("estimated_start"):
                text += f", estimated start {standing['estimated_start'][11:19]}"
            return text
        return "queued"


# --------------------------------------------------------------------------- arguments


def measure_param(text: str) -> tuple[str, Any]:
    """``k=20`` → ("k", 20); a value that is not JSON stays a string (``metric=cosine``)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def slug_arg(text: str) -> str:
    """A workspace's slug (the client's check), or a usage error that says why."""
    try:
        return workspace_slug(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def byte_count(text: str) -> int:
    """``65536``, ``64K``, ``8M``, ``1G`` (binary multiples)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    try:
        value = int(text[:-1]) * units[text[-1]] if text[-1:] in units else int(text)
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("the chunk size must be at least 1 byte")
    return value


def families_arg(values: list[str] | None) -> dict[str, list[float]] | list[str] | None:
    """``--family image/rotation=0,45,90`` (magnitudes) or ``--family image/noise`` (its
    default grid); every family with magnitudes, or none."""
    if not values:
        return None
    parsed: dict[str, list[float] | None] = {}
    for value in values:
        key, _, grid = value.partition("=")
        try:
            parsed[key.strip()] = [_number(t) for t in grid.split(",") if t.strip()] or None
        except ValueError:
            raise ReplensUsage(f"--family {value}: magnitudes are numbers, e.g. 0,45,90") from None
    grids = {key: grid for key, grid in parsed.items() if grid is not None}
    if not grids:
        return list(parsed)
    if len(grids) < len(parsed):
        raise ReplensUsage("give magnitudes for every --family (KEY=t1,t2,…) or for none")
    return grids


def _number(text: str) -> int | float:
    """``45`` stays an int (the same request maps to the same run), ``0.1`` is a float."""
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else float(text)


class ReplensUsage(Exception):
    """A command line that makes no sense (exit status 2)."""


def build_parser() -> argparse.ArgumentParser:
    url = os.environ.get("REPLENS_URL") or DEFAULT_URL
    # The connection and output options are accepted before and after the subcommand: the
    # subcommands' copies default to SUPPRESS so they only override what was given at the top.
    common = argparse.ArgumentParser(add_help=False)
    connection = common.add_argument_group("server and output")
    connection.add_argument("--url", default=argparse.SUPPRESS, help="see replens --help")
    connection.add_argument("--token", default=argparse.SUPPRESS, help="see replens --help")
    connection.add_argument(
        "--request-timeout", type=float, default=argparse.SUPPRESS, help="see replens --help"
    )
    connection.add_argument(
        "--no-progress", action="store_true", default=argparse.SUPPRESS, help="no progress bars"
    )
    connection.add_argument(
        "--format", choices=FORMATS, default=argparse.SUPPRESS, help="see replens --help"
    )

    parser = argparse.ArgumentParser(
        prog="replens",
        description="Upload checkpoints and datasets to RepLens, list them, start runs, wait "
        "for them and download results. Results are printed on stdout (a table, or JSON with "
        "--format json); progress and the web address of what was made go to stderr.",
        epilog="Exit status: 0 done, 1 refused by the server or unreachable, 2 wrong usage, "
        "3 the run failed or was cancelled, 4 --timeout passed while waiting.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--url", default=url, help=f"the server (env REPLENS_URL; default {DEFAULT_URL})"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("REPLENS_TOKEN", ""),
        help=f"API token (env REPLENS_TOKEN): {TOKEN_PAGE.replace('/account/', url + '/account/')}",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="per HTTP request (default 30)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="draw no progress bars on stderr"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table: for people (default); json: the API's objects, for scripts",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, parents=[common])

    def waiting(p: argparse.ArgumentParser, optional: bool = True) -> None:
        if optional:
            p.add_argument("--wait", action="store_true", help="wait for the run to finish")
        p.add_argument(
            "--poll", type=float, default=1.0, metavar="SECONDS", help="ask every (default 1)"
        )
        p.add_argument(
            "--timeout", type=float, default=None, metavar="SECONDS", help="stop waiting after"
        )

    def ids(p: argparse.ArgumentParser, *which: str) -> None:
        """-c / -a / -b / -d: the ids a run request takes."""
        helps = {
            "checkpoint": ("-c", "the checkpoint's id (replens ls checkpoints)"),
            "checkpoint-a": ("-a", "checkpoint A's id: the matrix's rows (replens ls checkpoints)"),
            "checkpoint-b": ("-b", "checkpoint B's id: the columns (replens ls checkpoints)"),
            "dataset": ("-d", "the dataset's id (replens ls datasets)"),
        }
        for name in which:
            short, text = helps[name]
            p.add_argument(short, f"--{name}", type=int, required=True, metavar="ID", help=text)

    pooling = "how a layer's output becomes one vector per sample: mean, flatten, cls, last"
    seed = "random seed (default 0)"

    def token_reading(p: argparse.ArgumentParser, per_position: bool = False) -> None:
        """--pooling, with tokens, and --positions: how a kind reads sets of pooling tokens."""
        p.add_argument("--pooling", help=pooling + ", or tokens (see --positions)")
        choices = (
            "per-position (where the sets hold the same rows and the measure allows "
            "it), mean, first, last"
            if per_position
            else "mean, first, last"
        )
        p.add_argument(
            "--positions",
            help=f"how sets of pooling tokens are read: {choices} (default mean)",
        )

    p = command("upload-dataset", "upload a dataset (.npz, .zip of images, .csv) in chunks")
    p.add_argument("path", help="the file")
    p.add_argument("-w", "--workspace", required=True, help="workspace slug")
    p.add_argument("--name", default="", help="default: the file name")
    p.add_argument("--description", default="", help="a line about it")
    p.add_argument("--chunk-size", type=byte_count, help="e.g. 8M (default: server's)")

    p = command(
        "upload-checkpoint",
        "upload a checkpoint (.pt TorchScript, .safetensors, .onnx, .zip of a Hugging Face "
        "directory) or precomputed activations (--dataset)",
    )
    p.add_argument("path", help="the file")
    p.add_argument("-w", "--workspace", required=True, help="workspace slug")
    p.add_argument("--name", default="", help="default: the file name")
    p.add_argument("--architecture", default="", help="for .safetensors: mlp, small-cnn, …")
    p.add_argument(
        "--dataset", type=int, default=None, help="precomputed activations: the dataset's id"
    )
    p.add_argument("--seed-group", default="", help="the series it belongs to")
    p.add_argument("--step", type=int, default=None, help="its training step")
    p.add_argument(
        "--metric",
        action="append",
        type=measure_param,
        default=[],
        metavar="NAME=VALUE",
        help="a training metric logged with it, e.g. loss=0.31 (repeatable)",
    )
    p.add_argument("--description", default="", help="a line about it")
    p.add_argument("--chunk-size", type=byte_count, help="e.g. 8M (default: server's)")

    p = command("workspace", "make a workspace, rename it, archive it or bring it back")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    slug = "the workspace's slug (replens ls workspaces)"
    for action, text in (
        ("create", "make a workspace; you become its owner"),
        ("rename", "rename a workspace you own (its slug stays)"),
        ("archive", "archive a workspace you own: read-only for everyone, listed apart"),
        ("unarchive", "bring a workspace you own back from the archive"),
    ):
        q = actions.add_parser(action, help=text, description=text, parents=[common])
        if action != "create":
            q.add_argument("workspace", type=slug_arg, metavar="SLUG", help=slug)
        if action in ("create", "rename"):
            q.add_argument("name", help="its name (at most 200 characters)")

    p = command("ls", "list workspaces, datasets, checkpoints, runs or stored activations")
    listing = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    for what, text in (
        ("workspaces", "the workspaces you are a member of"),
        ("datasets", "the datasets you can see"),
        ("checkpoints", "the checkpoints you can see"),
        ("runs", "runs, newest first"),
        ("activations", "stored activation sets"),
        ("series", "a workspace's series: seed groups with their checkpoints by step"),
    ):
        q = listing.add_parser(what, help=text, description=text, parents=[common])
        if what == "workspaces":
            shown = q.add_mutually_exclusive_group()
            shown.add_argument(
                "--archived",
                dest="archived",
                action="store_true",
                default=None,
                help="only the archived ones",
            )
            shown.add_argument(
                "--active",
                dest="archived",
                action="store_false",
                default=None,
                help="only the active ones (default: both)",
            )
            continue
        if what == "series":
            q.add_argument("-w", "--workspace", required=True, help="the workspace's slug")
            continue
        if what == "activations":
            q.add_argument("-c", "--checkpoint", type=int, metavar="ID", help="of this checkpoint")
            q.add_argument("-d", "--dataset", type=int, metavar="ID", help="over this dataset")
            continue
        q.add_argument("-w", "--workspace", help="only this workspace's (its slug)")
        if what == "runs":
            q.add_argument("--kind", help="only this kind: extract, compare, probe, project, …")
            q.add_argument(
                "--state", help="only runs in it: queued, running, succeeded, failed, cancelled"
            )
            q.add_argument(
                "--limit", type=int, default=50, metavar="N", help="the newest N (default 50)"
            )

    p = command("extract", "store activations of a checkpoint's layers on a dataset")
    ids(p, "checkpoint", "dataset")
    p.add_argument("--layers", nargs="+", help="default: top-level blocks and the output")
    p.add_argument(
        "--pooling",
        default="mean",
        help=pooling + "; or tokens: every position a row, with its sample and position "
        "(default mean)",
    )
    waiting(p)

    p = command("compare", "compare every layer of checkpoint A with every layer of B")
    ids(p, "checkpoint-a", "checkpoint-b", "dataset")
    p.add_argument("--layers-a", nargs="+", help="A's layers (default: its default layers)")
    p.add_argument("--layers-b", nargs="+", help="B's layers (default: its default layers)")
    p.add_argument("--measure", help="default cka/linear (GET /api/v1/measures/)")
    p.add_argument(
        "--param",
        action="append",
        type=measure_param,
        default=[],
        metavar="NAME=VALUE",
        help="a parameter of the measure, e.g. k=20 or alphas=[0.1,1] (repeatable)",
    )
    p.add_argument("--pooling", help=pooling + ", or tokens (see --positions)")
    p.add_argument(
        "--positions",
        help="how sets of pooling tokens are read: per-position (where both sides hold the "
        "same rows and the measure allows it), mean, first, last (default mean)",
    )
    p.add_argument(
        "--permutations",
        type=int,
        dest="n_permutations",
        metavar="N",
        help="shuffles of the samples for the chance baseline",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        dest="n_bootstrap",
        metavar="N",
        help="resamples for the confidence intervals (0: none)",
    )
    p.add_argument("--seed", type=int, help=seed)
    waiting(p)

    p = command(
        "dynamics",
        "follow layers over the checkpoints of a series (a seed group, by step): step × step "
        "matrices, similarity to the final step, statistics per step",
    )
    p.add_argument("-w", "--workspace", required=True, help="the workspace's slug")
    p.add_argument("--series", required=True, help="the seed group (replens ls series)")
    ids(p, "dataset")
    p.add_argument("--layers", nargs="+", help="default: the last checkpoint's default layers")
    p.add_argument("--measure", help="default cka/linear (GET /api/v1/measures/)")
    p.add_argument(
        "--param",
        action="append",
        type=measure_param,
        default=[],
        metavar="NAME=VALUE",
        help="a parameter of the measure, e.g. k=20 (repeatable)",
    )
    token_reading(p, per_position=True)
    waiting(p)

    p = command(
        "match-units",
        "match the units of a layer of checkpoint A with those of a layer of B: Hungarian and "
        "best partner both ways, share above a correlation t, sparse prediction, best and "
        "worst pairs (layers of at most 256 units)",
    )
    ids(p, "checkpoint-a", "checkpoint-b", "dataset")
    p.add_argument("--layer-a", required=True, help="a layer of A (replens ls activations)")
    p.add_argument("--layer-b", required=True, help="a layer of B")
    token_reading(p)
    p.add_argument("--pairs", type=int, dest="n_pairs", metavar="N", help="pairs shown (default 5)")
    p.add_argument(
        "--top", type=int, dest="top_m", metavar="M", help="samples per unit shown (default 9)"
    )
    p.add_argument(
        "--alphas", type=int, dest="n_alphas", metavar="N", help="lasso penalties (default 30)"
    )
    p.add_argument(
        "--test-fraction",
        type=float,
        metavar="F",
        help="share of samples held out to score the lasso path (default 0.25)",
    )
    p.add_argument("--seed", type=int, help="seed of the held-out split")
    waiting(p)

    p = command(
        "weights",
        "the weight space between two checkpoints of one architecture: B's units matched to "
        "A's, loss and accuracy along the linear paths with their barriers, L2 and per-layer "
        "spectra before and after matching (.safetensors of a built-in architecture, "
        "TorchScript named after mlp or small-cnn, or Hugging Face BERT, RoBERTa or "
        "DistilBERT encoders, which have no paths)",
    )
    ids(p, "checkpoint-a", "checkpoint-b", "dataset")
    p.add_argument(
        "--seed", type=int, help="seed of the order weight matching visits the layers in"
    )
    waiting(p)

    p = command(
        "stitch",
        "stitch each layer of checkpoint A into each layer of B (a map fitted by least squares "
        "and a zero-shot one through relative representations, then the rest of B): held-out "
        "accuracy as an A-layer × B-layer matrix, beside B alone, A alone and chance (B: "
        ".safetensors or TorchScript named after a built-in architecture)",
    )
    ids(p, "checkpoint-a", "checkpoint-b", "dataset")
    p.add_argument(
        "--layers-a", nargs="+", help="A's layers (default: those with vector or map outputs)"
    )
    p.add_argument(
        "--layers-b", nargs="+", help="B's layers (default: those with vector or map outputs)"
    )
    p.add_argument(
        "--test-fraction", type=float, metavar="F", help="share of samples held out (default 0.2)"
    )
    p.add_argument("--seed", type=int, help="seed of the split and of the anchors")
    p.add_argument("--map", choices=("affine", "linear"), help="the fitted map (default affine)")
    p.add_argument(
        "--ridge",
        type=float,
        help="penalty of the fitted maps, in units of the training ‖X_c‖² (default 0)",
    )
    p.add_argument(
        "--anchors",
        type=int,
        dest="n_anchors",
        metavar="M",
        help="anchors of the zero-shot map (default 0: min(300, half the training samples))",
    )
    waiting(p)

    p = command("probe", "probe layers' invariance and equivariance to transformations")
    ids(p, "checkpoint", "dataset")
    p.add_argument("--layers", nargs="+", help="default: top-level blocks and the output")
    p.add_argument(
        "--family",
        action="append",
        metavar="KEY[=T,…]",
        help="e.g. image/rotation=0,45,90 (repeatable; default: three for the modality)",
    )
    p.add_argument("--pooling", help=pooling)
    p.add_argument(
        "--positions",
        help="with --pooling tokens: per-position (default; where a family keeps positions in "
        "place, else each sample's mean), mean, first or last",
    )
    p.add_argument("--seed", type=int, help=seed)
    waiting(p)

    p = command("project", "project every sample of a layer to 2-D (pca, umap, tsne)")
    ids(p, "checkpoint", "dataset")
    p.add_argument("--layer", required=True, help="the layer (replens ls activations)")
    p.add_argument("--method", default="pca", help="pca (default), umap or tsne")
    token_reading(p)
    p.add_argument("--n-neighbors", type=int, metavar="N", help="umap: neighbourhood size")
    p.add_argument("--min-dist", type=float, metavar="D", help="umap: how tightly it packs")
    p.add_argument("--metric", help="umap: euclidean or cosine")
    p.add_argument("--perplexity", type=float, help="tsne: effective number of neighbours")
    p.add_argument("--seed", type=int, help=seed)
    waiting(p)

    p = command(
        "nested",
        "quality of every prefix (8, 16, 32, … d dimensions) of one layer's embedding of one or "
        "more checkpoints: retrieval mAP, top-1, top-5, probe accuracy, CKA to the full one",
    )
    p.add_argument(
        "-c",
        "--checkpoints",
        type=int,
        nargs="+",
        required=True,
        metavar="ID",
        help="one or more checkpoint ids, drawn overlaid in this order (replens ls checkpoints)",
    )
    ids(p, "dataset")
    p.add_argument("--layer", required=True, help="the embedding layer; every checkpoint has it")
    p.add_argument("--metric", help="retrieval distance: cosine (default) or euclidean")
    token_reading(p)
    waiting(p)

    p = command(
        "wait",
        "wait for a run to finish, showing where it stands; print it (exit 3 if it failed)",
    )
    p.add_argument("run", type=int, help="the run's id")
    waiting(p, optional=False)

    p = command("run", "print a run (state, progress, error, web page)")
    p.add_argument("run", type=int, help="the run's id")

    p = command("cancel", "cancel a queued or running run")
    p.add_argument("run", type=int, help="the run's id")

    p = command(
        "result",
        "print a run's result: a comparison, model or compatibility matrix, probe statistics, "
        "an alignment's scores, a projection",
    )
    p.add_argument("run", type=int, help="the run's id")

    p = command("export", "save a selection as CSV or Parquet")
    p.add_argument("selection", type=int, help="the selection's id")
    p.add_argument("output", help="file to write")
    p.add_argument("--file", choices=["csv", "parquet"], help="default: from the suffix")
    p.add_argument("--projection", type=int, help="whose x, y (default: the one drawn on)")

    p = command(
        "download-activations",
        "save an activation set as .npy (n × d float32, dataset order; its sha256 is the set's)",
    )
    p.add_argument("activation", type=int, help="the set's id (replens ls activations)")
    p.add_argument("output", help="file to write, e.g. block1.npy")
    return parser


# --------------------------------------------------------------------------- output

FORMATS = ("table", "json")

COLUMNS = {
    "workspaces": ["slug", "name", "archived_at", "created_at"],
    "datasets": ["id", "workspace", "name", "modality", "n_samples", "created_at"],
    "checkpoints": ["id", "workspace", "name", "format", "parameter_count", "seed_group", "step"],
    "runs": ["id", "workspace", "kind", "state", "progress", "created_at"],
    "activations": ["id", "checkpoint", "dataset", "layer", "pooling", "n", "d", "dtype"],
    "series": ["name", "checkpoints", "page"],
}


def _cell(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dict | list):
        text = json.dumps(value)
        return text if len(text) <= 80 else text[:79] + "…"
    return str(value)


def table(header: list[str], rows: list[list[Any]], upper: bool = True) -> str:
    """Columns aligned with two spaces; numbers to the right; the header in capitals unless
    it holds names (``upper`` False)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    numeric = [all(isinstance(row[i], int | float) for row in rows) for i in range(len(header))]

    def line(values: list[str]) -> str:
        padded = [
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(padded).rstrip()

    names = [h.upper() for h in header] if upper else header
    return "\n".join([line(names), *(line(r) for r in cells)]) + "\n"


def _fields(obj: dict) -> str:
    """An object as ``key  value`` lines."""
    width = max((len(k) for k in obj), default=0)
    return "".join(f"{k.ljust(width)}  {_cell(v)}\n" for k, v in obj.items())


def _matrix(result: dict) -> str:
    """A comparison's layer × layer values under a line naming the measure."""
    measure = result.get("measure", {}).get("id", "")
    n = f" (n = {result['n']})" if result.get("n") else ""
    title = f"{measure} on {result['dataset']['name']}{n}, {result['state']}"
    header = ["A \\ B", *result["layers_b"]]
    rows = [[a, *values] for a, values in zip(result["layers_a"], result["value"], strict=True)]
    return f"{title}\n{table(header, rows, upper=False)}"


def _probe(result: dict) -> str:
    blocks = []
    for family in result["families"]:
        rows = [[r["layer"], r["invariance"], r["learned"], r["identity"]] for r in family["rows"]]
        header = ["layer", "invariance", "learned R²", "identity R²"]
        title = f"{family['key']} at t = {family['magnitudes'][-1]}"
        if family.get("positions") is not None:  # token-level activations: how they were read
            title += f"\npositions read: {family['positions_note']}"
        blocks.append(f"{title}\n{table(header, rows)}")
    return "\n".join(blocks) or "no statistics yet\n"


def _nested(result: dict) -> str:
    """Per checkpoint, each statistic at each prefix dimension m, then the chance levels."""
    keys = ["mean_ap", "top1", "top5", "probe_accuracy", "cka"]
    header = ["m", "mAP", "top-1", "top-5", "probe", "CKA"]
    blocks = []
    for curve in result["curves"]:
        rows = [[m, *(curve[k][i] for k in keys)] for i, m in enumerate(curve["dims"])]
        title = f"{curve['checkpoint']['name']} at {result['layer']} (d = {curve['d']})"
        blocks.append(f"{title}\n{table(header, rows, upper=False)}")
    levels = [f"{h} {result['chance'][k]:.3f}" for h, k in zip(header[1:4], keys[:3], strict=True)]
    levels.append(f"probe {result['chance']['probe_accuracy']:.3f}")
    blocks.append(f"chance: {', '.join(levels)}\n")
    return "\n".join(blocks)


def render(args: argparse.Namespace, result: Any) -> str:
    """What a command prints on stdout."""
    if args.format == "json":
        return json.dumps(result, indent=2) + "\n"
    if args.command == "ls":
        columns = COLUMNS[args.what]
        return table(columns, [[item.get(c) for c in columns] for item in result])
    if args.command == "result" and isinstance(result, dict):
        if "layers_a" in result and "value" in result and result.get("value") is not None:
            return _matrix(result)
        if "families" in result:
            return _probe(result)
        if result.get("curves"):
            return _nested(result)
    return _fields(result)


def _made(err: TextIO, what: str, obj: dict) -> None:
    """Name on stderr what a command made, with its web address."""
    page = obj.get("page")
    err.write(f"replens: {what}" + (f": {page}" if page else "") + "\n")


# --------------------------------------------------------------------------- commands


def _wait(client: Client, run: dict, args: argparse.Namespace, bar: Bar) -> dict:
    try:
        return client.wait(run["id"], poll=args.poll, timeout=args.timeout, progress=RunBar(bar))
    finally:
        bar.end()


def _upload(client: Client, args: argparse.Namespace, bar: Bar, err: TextIO) -> dict:
    name = os.path.basename(args.path)
    progress = UploadBar(bar, name)
    try:
        if args.command == "upload-dataset":
            obj = client.upload_dataset(
                args.path,
                args.workspace,
                name=args.name,
                description=args.description,
                progress=progress,
                chunk_size=args.chunk_size,
            )
        else:
            obj = client.upload_checkpoint(
                args.path,
                args.workspace,
                name=args.name,
                architecture=args.architecture,
                seed_group=args.seed_group,
                step=args.step,
                progress=progress,
                description=args.description,
                chunk_size=args.chunk_size,
                dataset=args.dataset,
                metrics=dict(args.metric) or None,
            )
    finally:
        bar.end()
    kind = "dataset" if args.command == "upload-dataset" else "checkpoint"
    if obj.created:
        _made(err, f"created {kind} #{obj['id']} in {args.workspace}", obj)
    else:
        _made(err, f"{kind} #{obj['id']} was already in {args.workspace} (identical file)", obj)
    return obj


def _list(client: Client, args: argparse.Namespace) -> list[dict]:
    if args.what == "workspaces":
        return client.workspaces(args.archived)
    if args.what == "datasets":
        return client.datasets(args.workspace)
    if args.what == "checkpoints":
        return client.checkpoints(args.workspace)
    if args.what == "activations":
        return client.activations(args.checkpoint, args.dataset)
    if args.what == "series":
        return [
            {**s, "checkpoints": f"{len(s['checkpoints'])} (steps {_steps(s)})"}
            for s in client.series(args.workspace)
        ]
    return client.runs(args.workspace, args.kind, args.state, args.limit)


def _steps(series: dict) -> str:
    steps = [c["step"] for c in series["checkpoints"] if c["step"] is not None]
    return f"{min(steps)}–{max(steps)}" if steps else "none"


def _workspace(client: Client, args: argparse.Namespace, err: TextIO) -> dict:
    """``replens workspace ACTION``: the workspace as it is afterwards."""
    if args.action == "create":
        made = client.create_workspace(args.name)
        _made(err, f"created workspace {made['slug']}", made)
        return made
    if args.action == "rename":
        renamed = client.rename_workspace(args.workspace, args.name)
        _made(err, f"renamed workspace {renamed['slug']} to {renamed['name']!r}", renamed)
        return renamed
    changed = client.archive_workspace(args.workspace, archived=args.action == "archive")
    state = "archived" if changed["archived_at"] else "active"
    _made(err, f"workspace {changed['slug']} is {state}", changed)
    return changed


def _dispatch(client: Client, args: argparse.Namespace, bar: Bar, err: TextIO) -> Any:
    c = args.command
    if c in ("upload-dataset", "upload-checkpoint"):
        return _upload(client, args, bar, err)
    if c == "workspace":
        return _workspace(client, args, err)
    if c == "ls":
        return _list(client, args)
    if c == "extract":
        run = client.extract(args.checkpoint, args.dataset, args.layers, pooling=args.pooling)
    elif c == "compare":
        run = client.compare(
            args.checkpoint_a,
            args.checkpoint_b,
            args.dataset,
            layers_a=args.layers_a,
            layers_b=args.layers_b,
            measure=args.measure,
            pooling=args.pooling,
            positions=args.positions,
            n_permutations=args.n_permutations,
            n_bootstrap=args.n_bootstrap,
            seed=args.seed,
            measure_params=dict(args.param),
        )
    elif c == "dynamics":
        run = client.follow(
            args.workspace,
            args.series,
            args.dataset,
            layers=args.layers,
            measure=args.measure,
            pooling=args.pooling,
            positions=args.positions,
            measure_params=dict(args.param),
        )
    elif c == "match-units":
        run = client.match_units(
            args.checkpoint_a,
            args.checkpoint_b,
            args.dataset,
            args.layer_a,
            args.layer_b,
            pooling=args.pooling,
            positions=args.positions,
            n_pairs=args.n_pairs,
            top_m=args.top_m,
            n_alphas=args.n_alphas,
            test_fraction=args.test_fraction,
            seed=args.seed,
        )
    elif c == "weights":
        run = client.compare_weights(
            args.checkpoint_a, args.checkpoint_b, args.dataset, seed=args.seed
        )
    elif c == "stitch":
        run = client.stitch(
            args.checkpoint_a,
            args.checkpoint_b,
            args.dataset,
            layers_a=args.layers_a,
            layers_b=args.layers_b,
            test_fraction=args.test_fraction,
            seed=args.seed,
            map=args.map,
            ridge=args.ridge,
            n_anchors=args.n_anchors,
        )
    elif c == "probe":
        run = client.probe(
            args.checkpoint,
            args.dataset,
            layers=args.layers,
            families=families_arg(args.family),
            pooling=args.pooling,
            positions=args.positions,
            seed=args.seed,
        )
    elif c == "project":
        run = client.project(
            args.checkpoint,
            args.dataset,
            args.layer,
            args.method,
            pooling=args.pooling,
            positions=args.positions,
            n_neighbors=args.n_neighbors,
            min_dist=args.min_dist,
            metric=args.metric,
            perplexity=args.perplexity,
            seed=args.seed,
        )
    elif c == "nested":
        run = client.request_nested(
            args.checkpoints,
            args.dataset,
            args.layer,
            metric=args.metric,
            pooling=args.pooling,
            positions=args.positions,
        )
    elif c == "wait":
        run = _wait(client, {"id": args.run}, args, bar)
        _made(err, f"run #{run['id']} ({run['kind']}) {run['state']}", run)
        return run
    elif c == "run":
        return client.run(args.run)
    elif c == "cancel":
        return client.cancel(args.run)
    elif c == "result":
        return client.result(args.run)
    elif c == "export":
        path = client.export_selection(args.selection, args.output, args.file, args.projection)
        return {"selection": args.selection, "path": str(path), "bytes": path.stat().st_size}
    elif c == "download-activations":
        path = client.download_activations(args.activation, args.output)
        return {"activation": args.activation, "path": str(path), "bytes": path.stat().st_size}
    else:  # pragma: no cover - argparse only lets known commands through
        raise ReplensUsage(f"unknown command {c}")
    _made(err, f"run #{run['id']} ({run['kind']}) {run['state']}", run)
    if getattr(args, "wait", False):
        run = _wait(client, run, args, bar)
        _made(err, f"run #{run['id']} ({run['kind']}) {run['state']}", run)
    return run


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    out, err = sys.stdout, sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.token:
        parser.print_usage(err)
        err.write(
            f"replens: error: no API token: pass --token or set REPLENS_TOKEN ({TOKEN_PAGE})\n"
        )
        return EXIT_USAGE
    bar = Bar(err, enabled=not args.no_progress)
    try:
        with Client(args.url, args.token, timeout=args.request_timeout) as client:
            result = _dispatch(client, args, bar, err)
    except ReplensUsage as exc:
        parser.print_usage(err)
        err.write(f"replens: error: {exc}\n")
        return EXIT_USAGE
    except RunFailed as exc:
        out.write(render(args, exc.run))
        err.write(f"replens: error: {exc}\n")
        return EXIT_RUN_FAILED
    except WaitTimeout as exc:
        out.write(render(args, exc.run))
        err.write(f"replens: error: {exc}\n")
        return EXIT_TIMEOUT
    except ReplensError as exc:
        err.write(f"replens: error: {exc}\n")
        return EXIT_ERROR
    except OSError as exc:  # a file that cannot be read or written
        err.write(f"replens: error: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        bar.end()
        err.write("replens: interrupted\n")
        return EXIT_INTERRUPTED
    out.write(render(args, result))
    return 0
