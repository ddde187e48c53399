"""``replens``: upload checkpoints and datasets, start runs, wait for them, export selections.

JSON results go to stdout; progress bars and messages go to stderr. Exit status: 0 done,
1 the server refused the request or could not be reached, 2 wrong usage, 3 the run failed or
was cancelled, 4 ``--timeout`` passed while waiting, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, TextIO

from replens_client import __version__
from replens_client.client import Client, ReplensError, RunFailed, WaitTimeout

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

    def draw(self, label: str, fraction: float, detail: str = "", force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and self.active and now - self.last < self.interval:
            return
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


class RunBar:
    """``progress(run)`` for ``wait``: the run's progress and state."""

    def __init__(self, bar: Bar) -> None:
        self.bar = bar
        self.state: str | None = None

    def __call__(self, run: dict) -> None:
        label = f"run #{run.get('id')} {run.get('kind', '')}".rstrip()
        status = str(run.get("state"))
        standing = run.get("queue") or {}
        if standing.get("waiting_for"):
            status += f", waiting for {standing['waiting_for']} run(s)"
        elif standing.get("position"):
            status += f", number {standing['position']} in line"
            if standing.get("estimated_start"):
                status += f", estimated start {standing['estimated_start'][11:19]}"
        changed = status != self.state
        self.state = status
        self.bar.draw(label, float(run.get("progress") or 0.0), status, force=changed)


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
    # The connection options are accepted before and after the subcommand: the subcommands'
    # copies default to SUPPRESS so they only override what was given at the top.
    common = argparse.ArgumentParser(add_help=False)
    connection = common.add_argument_group("server")
    connection.add_argument("--url", default=argparse.SUPPRESS, help="see replens --help")
    connection.add_argument("--token", default=argparse.SUPPRESS, help="see replens --help")
    connection.add_argument(
        "--request-timeout", type=float, default=argparse.SUPPRESS, help="see replens --help"
    )
    connection.add_argument(
        "--no-progress", action="store_true", default=argparse.SUPPRESS, help="no progress bars"
    )

    parser = argparse.ArgumentParser(
        prog="replens",
        description="Upload checkpoints and datasets to RepLens, start runs, wait for them and "
        "export selections. Results are printed as JSON on stdout; progress goes to stderr.",
        epilog="Exit status: 0 done, 1 refused by the server or unreachable, 2 wrong usage, "
        "3 the run failed or was cancelled, 4 --timeout passed while waiting.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--url",
        default=os.environ.get("REPLENS_URL") or DEFAULT_URL,
        help=f"the server (env REPLENS_URL; default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("REPLENS_TOKEN", ""),
        help="API token (env REPLENS_TOKEN; manage.py drf_create_token <user> makes one)",
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
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, parents=[common])

    def waiting(p: argparse.ArgumentParser, optional: bool = True) -> None:
        if optional:
            p.add_argument("--wait", action="store_true", help="wait for the run to finish")
        p.add_argument("--poll", type=float, default=1.0, metavar="SECONDS", help="default 1")
        p.add_argument(
            "--timeout", type=float, default=None, metavar="SECONDS", help="stop waiting after"
        )

    p = command("upload-dataset", "upload a dataset (.npz, .zip of images, .csv) in chunks")
    p.add_argument("path")
    p.add_argument("-w", "--workspace", required=True, help="workspace slug")
    p.add_argument("--name", default="", help="default: the file name")
    p.add_argument("--description", default="")
    p.add_argument("--chunk-size", type=byte_count, help="e.g. 8M (default: server's)")

    p = command(
        "upload-checkpoint",
        "upload a checkpoint (.pt TorchScript, .safetensors, .onnx, .zip of a Hugging Face "
        "directory) or precomputed activations (--dataset)",
    )
    p.add_argument("path")
    p.add_argument("-w", "--workspace", required=True, help="workspace slug")
    p.add_argument("--name", default="", help="default: the file name")
    p.add_argument("--architecture", default="", help="for .safetensors: mlp, small-cnn, …")
    p.add_argument(
        "--dataset", type=int, default=None, help="precomputed activations: the dataset's id"
    )
    p.add_argument("--seed-group", default="", help="the series it belongs to")
    p.add_argument("--step", type=int, default=None, help="its training step")
    p.add_argument("--description", default="")
    p.add_argument("--chunk-size", type=byte_count, help="e.g. 8M (default: server's)")

    p = command("extract", "store activations of a checkpoint's layers on a dataset")
    p.add_argument("-c", "--checkpoint", type=int, required=True)
    p.add_argument("-d", "--dataset", type=int, required=True)
    p.add_argument("--layers", nargs="+", help="default: top-level blocks and the output")
    p.add_argument("--pooling", default="mean", help="mean, flatten, cls, last")
    waiting(p)

    p = command("compare", "compare every layer of checkpoint A with every layer of B")
    p.add_argument("-a", "--checkpoint-a", type=int, required=True)
    p.add_argument("-b", "--checkpoint-b", type=int, required=True)
    p.add_argument("-d", "--dataset", type=int, required=True)
    p.add_argument("--layers-a", nargs="+")
    p.add_argument("--layers-b", nargs="+")
    p.add_argument("--measure", help="default cka/linear (GET /api/v1/measures/)")
    p.add_argument(
        "--param",
        action="append",
        type=measure_param,
        default=[],
        metavar="NAME=VALUE",
        help="a parameter of the measure, e.g. k=20 or alphas=[0.1,1] (repeatable)",
    )
    p.add_argument("--pooling")
    p.add_argument("--permutations", type=int, dest="n_permutations")
    p.add_argument("--bootstrap", type=int, dest="n_bootstrap")
    p.add_argument("--seed", type=int)
    waiting(p)

    p = command("probe", "probe layers' invariance and equivariance to transformations")
    p.add_argument("-c", "--checkpoint", type=int, required=True)
    p.add_argument("-d", "--dataset", type=int, required=True)
    p.add_argument("--layers", nargs="+")
    p.add_argument(
        "--family",
        action="append",
        metavar="KEY[=T,…]",
        help="e.g. image/rotation=0,45,90 (repeatable; default: three for the modality)",
    )
    p.add_argument("--pooling")
    p.add_argument("--seed", type=int)
    waiting(p)

    p = command("project", "project every sample of a layer to 2-D (pca, umap, tsne)")
    p.add_argument("-c", "--checkpoint", type=int, required=True)
    p.add_argument("-d", "--dataset", type=int, required=True)
    p.add_argument("--layer", required=True)
    p.add_argument("--method", default="pca")
    p.add_argument("--pooling")
    p.add_argument("--n-neighbors", type=int)
    p.add_argument("--min-dist", type=float)
    p.add_argument("--metric")
    p.add_argument("--perplexity", type=float)
    p.add_argument("--seed", type=int)
    waiting(p)

    p = command("wait", "wait for a run to finish; print it (exit 3 if it failed)")
    p.add_argument("run", type=int)
    waiting(p, optional=False)

    p = command("run", "print a run (state, progress, error)")
    p.add_argument("run", type=int)

    p = command("cancel", "cancel a queued or running run")
    p.add_argument("run", type=int)

    p = command("result", "print a run's result: comparison matrix, probe statistics, …")
    p.add_argument("run", type=int)

    p = command("export", "save a selection as CSV or Parquet")
    p.add_argument("selection", type=int)
    p.add_argument("output", help="file to write")
    p.add_argument("--format", choices=["csv", "parquet"], help="default: from the suffix")
    p.add_argument("--projection", type=int, help="whose x, y (default: the one drawn on)")
    return parser


# --------------------------------------------------------------------------- commands


def _print_json(obj: Any, out: TextIO) -> None:
    json.dump(obj, out, indent=2)
    out.write("\n")


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
            )
    finally:
        bar.end()
    kind = "dataset" if args.command == "upload-dataset" else "checkpoint"
    if obj.created:
        err.write(f"replens: created {kind} #{obj['id']} in {args.workspace}\n")
    else:
        err.write(
            f"replens: {kind} #{obj['id']} was already in {args.workspace} (identical file)\n"
        )
    return obj


def _result(client: Client, run_id: int) -> Any:
    run = client.run(run_id)
    kind = run.get("kind")
    if kind == "compare":
        return client.comparison(run_id)
    if kind == "probe":
        return client.probe_result(run_id)
    if kind == "project" and run.get("state") == "succeeded":
        return client.projection(run_id)
    return run


def _dispatch(client: Client, args: argparse.Namespace, bar: Bar, err: TextIO) -> Any:
    c = args.command
    if c in ("upload-dataset", "upload-checkpoint"):
        return _upload(client, args, bar, err)
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
            n_permutations=args.n_permutations,
            n_bootstrap=args.n_bootstrap,
            seed=args.seed,
            measure_params=dict(args.param),
        )
    elif c == "probe":
        run = client.probe(
            args.checkpoint,
            args.dataset,
            layers=args.layers,
            families=families_arg(args.family),
            pooling=args.pooling,
            seed=args.seed,
        )
    elif c == "project":
        run = client.project(
            args.checkpoint,
            args.dataset,
            args.layer,
            args.method,
            pooling=args.pooling,
            n_neighbors=args.n_neighbors,
            min_dist=args.min_dist,
            metric=args.metric,
            perplexity=args.perplexity,
            seed=args.seed,
        )
    elif c == "wait":
        return _wait(client, {"id": args.run}, args, bar)
    elif c == "run":
        return client.run(args.run)
    elif c == "cancel":
        return client.cancel(args.run)
    elif c == "result":
        return _result(client, args.run)
    elif c == "export":
        path = client.export_selection(args.selection, args.output, args.format, args.projection)
        return {"selection": args.selection, "path": str(path), "bytes": path.stat().st_size}
    else:  # pragma: no cover - argparse only lets known commands through
        raise ReplensUsage(f"unknown command {c}")
    if getattr(args, "wait", False):
        return _wait(client, run, args, bar)
    return run


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    out, err = sys.stdout, sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.token:
        parser.print_usage(err)
        err.write("replens: error: no API token: pass --token or set REPLENS_TOKEN\n")
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
        _print_json(exc.run, out)
        err.write(f"replens: error: {exc}\n")
        return EXIT_RUN_FAILED
    except WaitTimeout as exc:
        _print_json(exc.run, out)
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
    _print_json(result, out)
    return 0
