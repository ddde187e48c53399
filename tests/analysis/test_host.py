"""The model host contains what an uploaded model might do: hang, allocate without bound,
write outside its directory, open connections, signal other processes; and it is stopped at
once when its caller says so. The tasks in ``tests.host_tasks`` play the hostile model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from analysis.host import HostFailure, Limits, run_in_host
from analysis.models.architectures import mlp
from analysis.models.extraction import extract_activations
from tests.conftest import ROOT
from tests.formats import Hang, scripted

LIMITS = Limits(wall_s=60, stall_s=60, memory_bytes=3 * 1024**3)


def hostile(name: str, limits: Limits = LIMITS, **params):
    return run_in_host(f"tests.host_tasks:{name}", params, {}, limits)


def test_a_host_writes_in_its_own_directory_which_is_removed_afterwards():
    result, _ = hostile("write_inside")
    assert result == {"read_back": "fine"}
    environment, _ = hostile("read_environment")
    home = Path(environment["environment"]["TMPDIR"])
    assert home.name.startswith("replens-host-") and not home.exists()


def test_writing_outside_its_directory_is_refused(tmp_path):
    target = tmp_path / "escaped.txt"
    with pytest.raises(HostFailure, match="Permission denied"):
        hostile("write_outside", path=str(target))
    assert not target.exists()


def test_network_connections_are_refused():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with pytest.raises(HostFailure, match="Permission denied"):
            hostile("connect", host="127.0.0.1", port=port)
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.accept()  # nothing ever arrived


def test_unix_sockets_are_refused(tmp_path):
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen()
        with pytest.raises(HostFailure, match="Permission denied"):
            hostile("unix_socket", path=path)


def test_signalling_the_worker_is_refused():
    with pytest.raises(HostFailure, match="not permitted"):
        hostile("signal_process", pid=os.getpid())


def test_the_host_sees_none_of_the_workers_secrets(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://secret@db/replens")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret")
    result, _ = hostile("read_environment")
    names = set(result["environment"])
    assert not names & {"DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "SECRET_KEY"}
    assert "very-secret" not in str(result)


def test_allocating_past_the_limit_fails_with_a_message_and_the_next_task_runs():
    with pytest.raises(HostFailure, match="more memory than its limit of 3 GiB"):
        hostile("allocate", bytes=20 * 1024**3)
    assert hostile("write_inside")[0] == {"read_back": "fine"}


def test_resident_memory_past_the_limit_is_killed_where_no_address_space_limit_applies():
    # As on a GPU worker (cpu_only=False): the supervisor's watch of resident memory.
    limits = Limits(wall_s=60, stall_s=60, memory_bytes=400 * 1024**2)
    with pytest.raises(HostFailure, match="used more than its memory limit"):
        run_in_host("tests.host_tasks:allocate", {"bytes": 2 * 1024**3}, {}, limits, cpu_only=False)


def test_a_host_without_progress_is_stopped_at_the_stall_limit():
    with pytest.raises(HostFailure, match="no progress for 2 s"):
        hostile("hang", Limits(wall_s=60, stall_s=2))


def test_a_host_making_progress_is_stopped_at_the_time_limit():
    with pytest.raises(HostFailure, match="time limit of 2 s"):
        hostile("steady", Limits(wall_s=2, stall_s=60), seconds=30)


def test_a_caller_check_stops_the_host_at_once_and_its_exception_propagates():
    calls = []

    class Stop(Exception):
        pass

    def check():
        calls.append(True)
        if len(calls) > 1:
            raise Stop

    with pytest.raises(Stop):
        run_in_host("tests.host_tasks:hang", {}, {}, LIMITS, check=check)
    assert _children_of_zygotes() == []  # every host this process started is gone


def _children_of_zygotes() -> list[int]:
    """Hosts still alive under this process's zygotes (forked children)."""
    from analysis import host

    found = []
    for zygote in host._idle:
        children = Path(f"/proc/{zygote.process.pid}/task/{zygote.process.pid}/children")
        found += [int(p) for p in children.read_text().split()]
    return found


def test_a_model_process_that_dies_is_reported():
    with pytest.raises(HostFailure, match="died"):
        hostile("die")


def torchscript_file(tmp_path: Path, module: nn.Module) -> Path:
    path = tmp_path / "model.pt"
    path.write_bytes(scripted(module))
    return path


def extraction(path: Path, x: np.ndarray, layers: list[str], limits: Limits = LIMITS):
    params = {
        "format": "torchscript",
        "architecture": "",
        "filename": "model.pt",
        "archive_limits": [100, 10**9],
        "layers": layers,
        "pooling": "mean",
        "device": "cpu",
    }
    return run_in_host("analysis.host.tasks:extract", params, {"model": path, "x": x}, limits)


def test_a_torchscript_model_that_never_returns_is_stopped(tmp_path):
    path = torchscript_file(tmp_path, Hang())
    x = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(HostFailure, match="no progress for 3 s"):
        extraction(path, x, ["output"], Limits(wall_s=60, stall_s=3))


def test_extraction_in_the_host_equals_extraction_in_process(tmp_path):
    torch.manual_seed(0)
    model = mlp(64, [32, 16], 10)
    path = torchscript_file(tmp_path, model)
    x = np.random.default_rng(0).random((300, 1, 8, 8), dtype=np.float32)
    layers = ["block1", "block2", "output"]
    _, hosted = extraction(path, x, layers)
    local = extract_activations(torch.jit.load(str(path)), x, layers, device="cpu")
    assert set(hosted) == set(layers)
    for layer in layers:
        np.testing.assert_array_equal(hosted[layer], local[layer])


def test_two_threads_get_two_hosts_at_once():
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(hostile("steady", seconds=1)[0]))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [{"done": True}, {"done": True}]


def test_a_zygote_outlives_the_thread_that_started_it():
    """Web servers run requests in short-lived threads: the zygote (and its preloaded
    libraries) must serve the next request, not die with the first request's thread."""
    from analysis import host

    for zygote in host._idle:
        zygote.stop()
    host._idle.clear()
    first = threading.Thread(target=lambda: hostile("write_inside"))
    first.start()
    first.join()
    (zygote,) = host._idle
    assert hostile("write_inside")[0] == {"read_back": "fine"}
    assert host._idle == [zygote] and zygote.process.poll() is None


def test_a_supervisor_killed_mid_run_takes_its_zygote_and_host_with_it():
    script = "from analysis.host import run_in_host, Limits\n" + (
        "run_in_host('tests.host_tasks:hang', {}, {}, Limits())"
    )
    supervisor = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while len(descendants(supervisor.pid)) < 2:  # the zygote and its host
            assert time.monotonic() < deadline, "the host never started"
            time.sleep(0.05)
        zygote, host_pid = descendants(supervisor.pid)[:2]
        # A host just forked still stands in its zygote's directory until it enters its own.
        workdir = Path(os.readlink(f"/proc/{host_pid}/cwd"))
        while not workdir.name.startswith("replens-host-"):
            assert time.monotonic() < deadline, f"the host never entered its directory: {workdir}"
            time.sleep(0.05)
            workdir = Path(os.readlink(f"/proc/{host_pid}/cwd"))
        assert workdir.exists()
    finally:
        supervisor.kill()
        supervisor.wait()
    deadline = time.monotonic() + 5
    while _alive(zygote) or _alive(host_pid) or workdir.exists():
        assert time.monotonic() < deadline, "the zygote, its host or its directory outlived it"
        time.sleep(0.05)


def descendants(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    found = []
    for child in children:
        found += [int(child), *descendants(int(child))]
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status
