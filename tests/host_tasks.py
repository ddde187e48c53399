"""Tasks that behave as a hostile or broken model would, run in the model host by the tests
(``tests.host_tasks:<name>``): each tries one thing the host must contain."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path


def write_outside(params, inputs, progress):
    Path(params["path"]).write_text("escaped")
    return {"wrote": True}, {}


def write_inside(params, inputs, progress):
    here = Path(os.environ["TMPDIR"]) / "scratch.txt"
    here.write_text("fine")
    return {"read_back": here.read_text()}, {}


def connect(params, inputs, progress):
    socket.create_connection((params["host"], params["port"]), timeout=2).close()
    return {"connected": True}, {}


def unix_socket(params, inputs, progress):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(params["path"])
    return {"connected": True}, {}


def signal_process(params, inputs, progress):
    os.kill(params["pid"], 15)
    return {"signalled": True}, {}


def read_environment(params, inputs, progress):
    return {"environment": dict(os.environ)}, {}


def allocate(params, inputs, progress):
    import numpy as np

    block = np.ones(params["bytes"] // 8)  # touched: resident, not just reserved
    return {"allocated": int(block.nbytes)}, {}


def hang(params, inputs, progress):
    while True:
        time.sleep(0.1)


def steady(params, inputs, progress):
    """Reports progress every 0.1 s for ``seconds``: slow but alive."""
    started = time.monotonic()
    while time.monotonic() - started < params["seconds"]:
        progress((time.monotonic() - started) / params["seconds"])
        time.sleep(0.1)
    return {"done": True}, {}


def die(params, inputs, progress):
    os.kill(os.getpid(), 9)
