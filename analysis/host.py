"""The model host: the only place an uploaded model is ever loaded or run.

A host is a fresh Python process (``python -m analysis.host``) with a temporary directory of
its own, started for one task and gone after it. Before it imports anything that reads a
model it confines itself (:mod:`analysis.sandbox`): writes only in its directory, no network,
no capabilities, an address-space limit. It gets an environment without the worker's
secrets. The parent supervises it and kills its whole process group with SIGKILL when

- the caller's ``check`` raises (the run was cancelled): within ``CHECK_EVERY_S``;
- it runs longer than ``Limits.wall_s``;
- it reports no progress (a batch done) for ``Limits.stall_s``: a model that hangs in native
  code makes no progress, whatever threads it has;
- its resident memory exceeds ``Limits.memory_bytes`` (the address-space limit catches most
  allocations first, on the CPU).

The task, its parameters and its arrays travel as files in the host's directory; progress
comes back as lines on a pipe. Tasks are named ``module:function``; a task takes
``(params, inputs, progress)`` and returns ``(json result, {name: array})``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.errors import InputError

__all__ = ["HostFailure", "Limits", "run_in_host"]

CHECK_EVERY_S = 0.5
PROJECT_ROOT = Path(__file__).resolve().parents[1]
PASSED_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")
MEMORY_ERRORS = ("can't allocate memory", "out of memory", "cannot allocate memory")


@dataclass(frozen=True)
class Limits:
    """What one host may use: wall-clock seconds, seconds without progress, resident bytes;
    ``sandbox`` False runs it unconfined (platforms without Landlock: say so loudly)."""

    wall_s: float = 3600.0
    stall_s: float = 300.0
    memory_bytes: int = 8 * 1024**3
    sandbox: bool = True


class HostFailure(InputError):
    """The host was stopped, or the model failed in it: the message is for the user."""


def _gib(n: int) -> str:
    return f"{n / 1024**3:.3g} GiB"


def run_in_host(
    task: str,
    params: dict,
    inputs: dict[str, np.ndarray | Path],
    limits: Limits,
    *,
    progress: Callable[[float], None] | None = None,
    check: Callable[[], None] | None = None,
    cpu_only: bool = True,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Run ``task`` in a new host over ``inputs`` (arrays, or files copied in) and return its
    result. ``check`` is called every ``CHECK_EVERY_S`` and may raise to stop the host (the
    exception propagates); ``cpu_only`` False lifts the address-space limit, which CUDA cannot
    live with (the resident-memory watch stays)."""
    workdir = Path(tempfile.mkdtemp(prefix="replens-host-"))
    try:
        names = {}
        for name, value in inputs.items():
            if isinstance(value, np.ndarray):
                names[name] = f"in-{len(names)}.npy"
                np.save(workdir / names[name], value, allow_pickle=False)
            else:
                names[name] = f"in-{len(names)}{Path(value).suffix}"
                shutil.copyfile(value, workdir / names[name])
        request = {
            "task": task,
            "params": params,
            "inputs": names,
            "sandbox": limits.sandbox,
            "memory_bytes": limits.memory_bytes if cpu_only else None,
        }
        (workdir / "request.json").write_text(json.dumps(request))
        return _supervise(workdir, limits, progress, check)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _environment(workdir: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSED_ENVIRONMENT if k in os.environ}
    return {
        **env,
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "XDG_CACHE_HOME": str(workdir / "cache"),
        "HF_HOME": str(workdir / "cache"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": str(PROJECT_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "REPLENS_HOST_PARENT": str(os.getpid()),
    }


def _supervise(workdir, limits, progress, check) -> tuple[dict, dict[str, np.ndarray]]:
    read_fd, write_fd = os.pipe()
    command = [sys.executable, "-s", "-m", "analysis.host", str(workdir), str(write_fd)]
    with open(workdir / "host.log", "wb") as log:
        child = subprocess.Popen(
            command,
            cwd=workdir,
            env=_environment(workdir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(write_fd,),
            start_new_session=True,  # its own process group: SIGKILL reaches all of it
        )
    os.close(write_fd)
    started = last_progress = last_check = time.monotonic()
    buffer = b""
    try:
        while True:
            ready = _wait_readable(read_fd, CHECK_EVERY_S)
            now = time.monotonic()
            if ready:
                chunk = os.read(read_fd, 65536)
                if not chunk:  # the host closed its end: it exited
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                fractions = [float(line.split()[1]) for line in lines if line.startswith(b"p ")]
                if fractions:
                    last_progress = now
                    if progress:
                        progress(fractions[-1])
            if check and now - last_check >= CHECK_EVERY_S:
                last_check = now
                check()
            if now - started > limits.wall_s:
                raise HostFailure(
                    f"the model ran past the time limit of {limits.wall_s:g} s and was stopped"
                )
            if now - last_progress > limits.stall_s:
                raise HostFailure(
                    f"the model made no progress for {limits.stall_s:g} s (no batch finished) "
                    "and was stopped"
                )
            if _resident_bytes(child.pid) > limits.memory_bytes:
                raise HostFailure(
                    f"the model used more than its memory limit of {_gib(limits.memory_bytes)} "
                    "and was stopped"
                )
        code = child.wait()
    finally:
        os.close(read_fd)
        _kill(child)
    return _outcome(workdir, code, limits)


def _wait_readable(fd: int, timeout: float) -> bool:
    import select

    readable, _, _ = select.select([fd], [], [], timeout)
    return bool(readable)


def _resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _kill(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait()


def _outcome(workdir: Path, code: int, limits: Limits) -> tuple[dict, dict[str, np.ndarray]]:
    outcome_file = workdir / "outcome.json"
    if not outcome_file.exists():
        if code == -signal.SIGKILL or code == -signal.SIGSEGV:
            raise HostFailure(
                f"the model's process died (signal {-code}); it may have run out of memory"
            )
        raise HostFailure(f"the model's process exited unexpectedly (status {code})")
    outcome = json.loads(outcome_file.read_text())
    if "error" in outcome:
        message = outcome["error"]
        if any(sign in message.lower() for sign in MEMORY_ERRORS):
            message = (
                f"the model needed more memory than its limit of {_gib(limits.memory_bytes)} "
                f"({message})"
            )
        raise HostFailure(message)
    arrays = {
        name: np.load(workdir / file, allow_pickle=False)
        for name, file in outcome["arrays"].items()
    }
    return outcome["result"], arrays


# ---- the host process ---------------------------------------------------------------------


def _host_main(workdir: Path, progress_fd: int) -> None:
    from analysis import sandbox

    sandbox.die_with_parent(int(os.environ["REPLENS_HOST_PARENT"]))
    request = json.loads((workdir / "request.json").read_text())
    out = os.fdopen(progress_fd, "wb", buffering=0)

    def report(fraction: float) -> None:
        out.write(f"p {fraction:.6f}\n".encode())

    try:
        if request["sandbox"]:
            sandbox.confine(workdir, request["memory_bytes"])
        report(0.0)  # started (the stall clock counts from here)
        inputs = {
            name: (
                np.load(workdir / file, mmap_mode="r", allow_pickle=False)
                if file.endswith(".npy")
                else workdir / file
            )
            for name, file in request["inputs"].items()
        }
        module_name, _, function_name = request["task"].partition(":")
        module = __import__(module_name, fromlist=[function_name])
        result, arrays = getattr(module, function_name)(request["params"], inputs, report)
        files = {}
        for name, array in arrays.items():
            files[name] = f"out-{len(files)}.npy"
            np.save(workdir / files[name], np.asarray(array), allow_pickle=False)
        outcome = {"result": result, "arrays": files}
    except InputError as err:
        outcome = {"error": str(err)}
    except MemoryError:
        outcome = {"error": "out of memory"}
    except sandbox.SandboxUnavailable as err:
        outcome = {"error": f"the model host could not be isolated on this machine: {err}"}
    except Exception as err:  # the model's own failure: its last line is what helps the user
        last = (str(err).strip().splitlines() or [""])[-1]
        outcome = {"error": f"the model failed ({type(err).__name__}): {last}"}
    (workdir / "outcome.json").write_text(json.dumps(outcome))


if __name__ == "__main__":
    _host_main(Path(sys.argv[1]), int(sys.argv[2]))
