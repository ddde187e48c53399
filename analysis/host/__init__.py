"""The model host: the only place an uploaded model is ever loaded or run.

A host is a process with a temporary directory of its own, forked for one task and gone after
it, from a zygote (``python -m analysis.host``, started with a clean environment, that imported
torch and the task modules once). Before it reads anything uploaded it confines itself
(:mod:`analysis.host.sandbox`): writes only in its directory, no network, no capabilities, an
address-space limit. It gets an environment without the worker's secrets. The parent
supervises it and kills its whole process group with SIGKILL when

- the caller's ``check`` raises (the run was cancelled): within ``CHECK_EVERY_S``;
- it runs longer than ``Limits.wall_s``;
- it reports no progress (a batch done) for ``Limits.stall_s``: a model that hangs in native
  code makes no progress, whatever threads it has;
- its resident memory exceeds ``Limits.memory_bytes`` (the address-space limit catches most
  allocations first, on the CPU).

The task, its parameters and its arrays travel as files in the host's directory; progress
comes back as lines on a FIFO in that directory. Tasks are named ``module:function``; a task takes
``(params, inputs, progress)`` and returns ``(json result, {name: array})``.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import mmap
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from analysis.errors import InputError

__all__ = ["HostFailure", "Limits", "run_in_host"]

CHECK_EVERY_S = 0.5
PROJECT_ROOT = Path(__file__).resolve().parents[2]
PASSED_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")
PRELOADED = (
    ("analysis.models.hf", ()),
    ("analysis.models.onnx", ()),
    ("transformers", ("AutoConfig", "AutoImageProcessor", "AutoModel", "AutoTokenizer")),
    ("transformers.models.bert.modeling_bert", ()),  # BERT-family encoders (MiniLM, …)
    ("onnx", ()),
    ("onnxruntime", ()),
)
"""Libraries of the optional formats, imported once by the zygote rather than by each host."""
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
        names: dict[str, str] = {}
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


def _environment(home: Path) -> dict[str, str]:
    """The whole environment a host gets: none of the worker's secrets."""
    env = {k: os.environ[k] for k in PASSED_ENVIRONMENT if k in os.environ}
    return {
        **env,
        "HOME": str(home),
        "TMPDIR": str(home),
        "XDG_CACHE_HOME": str(home / "cache"),
        "HF_HOME": str(home / "cache"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": str(PROJECT_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }


class _Zygote:
    """A process that imported torch and the task modules once, started with a clean
    environment, and forks a fresh host for each task (a host costs milliseconds, not the
    second and a half of importing torch). It dies with the process that started it."""

    def __init__(self) -> None:
        home = Path(tempfile.mkdtemp(prefix="replens-zygote-"))
        self.home = home
        self.process = subprocess.Popen(
            [sys.executable, "-s", "-m", "analysis.host", str(os.getpid())],
            cwd=home,
            env=_environment(home),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            bufsize=0,  # unbuffered: ``select`` on its output sees every answer
        )
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None  # both are pipes
        self.stdin, self.stdout = stdin, stdout

    def fork(self, workdir: Path) -> int:
        """Start a host for ``workdir``; its process id."""
        self._send(f"run {workdir}")
        return int(self._receive())

    def exit_status(self) -> int:
        """Wait for the host started last to end; its exit code (negative: a signal)."""
        return int(self._receive())

    def _send(self, line: str) -> None:
        self.stdin.write(f"{line}\n".encode())
        self.stdin.flush()

    def _receive(self) -> str:
        line = self.stdout.readline()
        if not line:
            raise HostFailure("the model host's launcher stopped; please try again")
        return line.decode().strip()

    def stop(self) -> None:
        _kill_group(self.process.pid)
        self.process.wait()
        shutil.rmtree(self.home, ignore_errors=True)


_idle: list[_Zygote] = []
_idle_lock = threading.Lock()


@contextmanager
def _zygote() -> Iterator[_Zygote]:
    """A zygote of this process for one task at a time (a second thread gets its own)."""
    with _idle_lock:
        zygote = _idle.pop() if _idle else None
    if zygote is None or zygote.process.poll() is not None:
        zygote = _Zygote()
    healthy = False
    try:
        yield zygote
        healthy = True
    finally:
        if healthy:
            with _idle_lock:
                _idle.append(zygote)
        else:
            zygote.stop()


def _supervise(
    workdir: Path,
    limits: Limits,
    progress: Callable[[float], None] | None,
    check: Callable[[], None] | None,
) -> tuple[dict, dict[str, np.ndarray]]:
    fifo = workdir / "progress"
    os.mkfifo(fifo, 0o600)
    # Read and write ends held here, so the channel never reports an end of file: the host's
    # end is known from its launcher.
    channel = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    with _zygote() as zygote:
        pid = zygote.fork(workdir)
        done = zygote.stdout
        started = last_progress = last_check = time.monotonic()
        buffer = b""
        code: int | None = None
        try:
            while code is None:
                readable = _wait_readable([channel, done], CHECK_EVERY_S)
                now = time.monotonic()
                if channel in readable:
                    buffer += os.read(channel, 65536)
                    *lines, buffer = buffer.split(b"\n")
                    fractions = [float(x.split()[1]) for x in lines if x.startswith(b"p ")]
                    if fractions:
                        last_progress = now
                        if progress:
                            progress(fractions[-1])
                if done in readable:
                    code = zygote.exit_status()
                    break
                if check and now - last_check >= CHECK_EVERY_S:
                    last_check = now
                    check()
                if now - started > limits.wall_s:
                    raise HostFailure(
                        f"the model ran past the time limit of {limits.wall_s:g} s and was stopped"
                    )
                if now - last_progress > limits.stall_s:
                    raise HostFailure(
                        f"the model made no progress for {limits.stall_s:g} s (no batch "
                        "finished) and was stopped"
                    )
                if _resident_bytes(pid) > limits.memory_bytes:
                    raise HostFailure(
                        "the model used more than its memory limit of "
                        f"{_gib(limits.memory_bytes)} and was stopped"
                    )
        finally:
            os.close(channel)
            if code is None:  # stopped: kill the host and everything it started
                _kill_group(pid)
                zygote.exit_status()
    return _outcome(workdir, code, limits)


def _wait_readable(sources: list[int | IO[bytes]], timeout: float) -> list[Any]:
    readable, _, _ = select.select(sources, [], [], timeout)
    return readable


def _resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


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
        raise HostFailure(message, details=outcome.get("details", ""))
    arrays = {
        name: np.load(workdir / file, allow_pickle=False)
        for name, file in outcome["arrays"].items()
    }
    return outcome["result"], arrays


# ---- the host process ---------------------------------------------------------------------


def zygote_main(parent: int) -> None:
    """Import what hosts need, then fork one host per ``run <workdir>`` line read, answering
    with its process id and, once it ended, its exit code. It ends when ``parent`` does: its
    commands reach their end, or, while a host runs, it sees itself orphaned and kills the
    host. (Not by a parent-death signal: that fires when the *thread* that started it ends,
    and web servers start zygotes from short-lived request threads.)"""
    from analysis.host import sandbox, tasks  # noqa: F401 (imported once, shared by every host)

    if os.getppid() != parent:
        return
    for module, names in PRELOADED:
        try:
            imported = importlib.import_module(module)
            for name in names:  # transformers resolves its names lazily, on first access
                getattr(imported, name)
        except ImportError:  # an optional format's library is not installed
            pass
    commands, answers = sys.stdin.buffer, sys.stdout.buffer
    for line in commands:
        workdir = Path(line.decode().split(" ", 1)[1].strip())
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()  # its own process group: SIGKILL to the group reaches all of it
                _host_main(workdir, zygote=os.getppid())
            finally:
                os._exit(0)
        answers.write(f"{pid}\n".encode())
        answers.flush()
        answers.write(f"{_wait_for_host(pid, parent, workdir)}\n".encode())
        answers.flush()


def _wait_for_host(pid: int, parent: int, workdir: Path) -> int:
    """The host's exit code. A host whose supervisor died is killed and its directory
    removed here: nobody else would."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if os.getppid() != parent:
            _kill_group(pid)
            os.waitpid(pid, 0)
            shutil.rmtree(workdir, ignore_errors=True)
            sys.exit(0)
        time.sleep(0.01)


def _host_main(workdir: Path, zygote: int) -> None:
    """One task, in a process forked by the zygote: confine, run, write the outcome."""
    from analysis.host import sandbox

    sandbox.die_with_parent(zygote)
    log = os.open(workdir / "host.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(0)  # the zygote's channels are not the host's to use
    environment = _environment(workdir)
    os.environ.clear()
    os.environ.update(environment)
    tempfile.tempdir = None
    os.chdir(workdir)
    request = json.loads((workdir / "request.json").read_text())
    out = open(workdir / "progress", "wb", buffering=0)  # noqa: SIM115 (open for the task)

    def report(fraction: float) -> None:
        out.write(f"p {fraction:.6f}\n".encode())

    _reuse_freed_memory()
    try:
        if request["sandbox"]:
            sandbox.confine(workdir, request["memory_bytes"])
        report(0.0)  # started (the stall clock counts from here)
        inputs = {
            name: _mapped(workdir / file) if file.endswith(".npy") else workdir / file
            for name, file in request["inputs"].items()
        }
        module_name, _, function_name = request["task"].partition(":")
        module = importlib.import_module(module_name)
        result, arrays = getattr(module, function_name)(request["params"], inputs, report)
        files: dict[str, str] = {}
        for name, array in arrays.items():
            files[name] = f"out-{len(files)}.npy"
            np.save(workdir / files[name], np.asarray(array), allow_pickle=False)
        outcome = {"result": result, "arrays": files}
    except InputError as err:
        outcome = {"error": str(err), "details": err.details}
    except MemoryError:
        outcome = {"error": "out of memory"}
    except sandbox.SandboxUnavailable as err:
        outcome = {"error": f"the model host could not be isolated on this machine: {err}"}
    except Exception as err:  # the model's own failure: its meaningful line helps the user
        failed = InputError.caused_by(f"the model failed ({type(err).__name__})", err)
        outcome = {"error": str(failed), "details": failed.details}
    (workdir / "outcome.json").write_text(json.dumps(outcome))


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD_MAX = 32 * 1024**2  # glibc's upper limit on 64-bit machines


def _reuse_freed_memory() -> None:
    """Make glibc's malloc keep freed memory for reuse: blocks up to 32 MiB come from the heap,
    which is never trimmed (the host is short-lived). A fresh process would otherwise map,
    fault in and zero every batch's activations anew: 60% more time for a CNN over 40,000
    images than the same extraction in a long-lived process, whose malloc has adapted.
    Nothing happens with another C library."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    except (OSError, AttributeError):
        pass


def _mapped(path: Path) -> np.ndarray:
    """The array in ``path``, memory-mapped, read ahead: a model reads its inputs in order,
    and page faults one page at a time cost a tenth of a CNN's extraction."""
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    array._mmap.madvise(mmap.MADV_WILLNEED)
    array._mmap.madvise(mmap.MADV_SEQUENTIAL)
    return array
