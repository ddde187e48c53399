"""The client against the real server: pytest-django's ``live_server`` (a real HTTP server on
the test database), a DRF token for the owner persona, and a transport adapter that breaks
chosen requests the way networks do."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import torch
from django.core.files.storage import default_storage
from django.db import connection
from replens_client import Client
from requests.adapters import HTTPAdapter
from rest_framework.authtoken.models import Token
from torch import nn

from tests.conftest import check_uploads, digits_npz_bytes, torchscript_mlp_bytes
from webapp.catalog.models import Blob

CHUNK = 64 * 1024


@pytest.fixture
def token(transactional_db, owner, workspace) -> str:
    return Token.objects.create(user=owner).key


@pytest.fixture
def server(live_server, token, checker) -> str:
    return live_server.url


@pytest.fixture
def checker(transactional_db):
    """Plays the worker for uploads: a thread of the test process that checks every upload
    waiting, as a worker would (runs are played by the tests themselves)."""
    stop = threading.Event()
    failures: list[BaseException] = []

    def check_forever() -> None:
        try:
            while not stop.wait(0.05):
                check_uploads()
        except BaseException as err:  # reported by the test, not lost in the thread
            failures.append(err)
        finally:
            connection.close()

    thread = threading.Thread(target=check_forever, name="upload-checker", daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=60)
    assert not failures, failures


@pytest.fixture
def held_checks(checker, monkeypatch):
    """Holds the upload checker: complete uploads stay waiting for their check (``checking``,
    ``position`` 1, 2, …) until ``held_checks.release()``."""
    real, released, holding = check_uploads, threading.Event(), threading.Event()

    def gated() -> list:
        if released.is_set():
            return real()
        holding.set()
        return []

    monkeypatch.setattr(sys.modules[__name__], "check_uploads", gated)
    # Once the thread calls the gate, no check that started before the hold is still going.
    assert holding.wait(10), "the upload checker did not pause"
    return SimpleNamespace(release=released.set)


@pytest.fixture
def replens(server, token):
    """A client with 64 KiB chunks and near-instant backoff (retries stay bounded)."""
    with Client(server, token, timeout=60, backoff=0.01, retries=4, chunk_size=CHUNK) as c:
        yield c


class Faults(HTTPAdapter):
    """Passes every request through, except the PUTs (numbered from 1, every attempt
    counts) given a fault, each once:

    - ``drop-before``: the connection drops before the chunk leaves (the server has nothing);
    - ``drop-after``: the chunk arrives but the answer is lost (the server is ahead);
    - ``503``: a proxy in front of the server answers 503;
    - ``429``: the rate limit answers "try again in 0 s";
    - ``duplicate``: the chunk is delivered twice and the second answer (409) is returned;
    - ``corrupt``: one byte of the chunk is flipped on the way.
    """

    def __init__(self, faults: dict[int, str] | None = None, always: str | None = None):
        super().__init__()
        self.faults = dict(faults or {})
        self.always = always
        self.puts = 0
        self.log: list[tuple[str, str, int | None]] = []  # method, path, status (None: none)

    def send(self, request, **kwargs):
        if request.method != "PUT":
            return self._pass(request, **kwargs)
        self.puts += 1
        fault = self.faults.pop(self.puts, None) or self.always
        if fault == "drop-before":
            self.log.append((request.method, request.path_url, None))
            raise requests.ConnectionError("simulated: connection reset before the chunk")
        if fault == "drop-after":
            self._pass(request, **kwargs)
            self.log[-1] = (request.method, request.path_url, None)
            raise requests.ConnectionError("simulated: connection reset before the answer")
        if fault == "503":
            self.log.append((request.method, request.path_url, 503))
            return _response(request, 503, {"detail": "simulated: upstream unavailable"})
        if fault == "429":
            self.log.append((request.method, request.path_url, 429))
            return _response(request, 429, {"detail": "simulated: throttled"}, retry_after="0")
        if fault == "duplicate":
            self._pass(request, **kwargs)
        if fault == "corrupt":
            body = bytearray(request.body)
            body[len(body) // 2] ^= 0xFF
            request.body = bytes(body)
        return self._pass(request, **kwargs)

    def _pass(self, request, **kwargs):
        response = super().send(request, **kwargs)
        self.log.append((request.method, request.path_url, response.status_code))
        return response

    def count(self, method: str, status: int | None | str = "any") -> int:
        return sum(1 for m, _, s in self.log if m == method and (status == "any" or s == status))


def _response(request, status: int, body: dict, retry_after=None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = "simulated"
    response.headers["Content-Type"] = "application/json"
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    response._content = json.dumps(body).encode()
    response.request = request
    response.url = request.url
    return response


def install_faults(client: Client, faults=None, always=None) -> Faults:
    adapter = Faults(faults, always)
    client.session.mount("http://", adapter)
    return adapter


@pytest.fixture
def digits_file(tmp_path) -> Path:
    """All 1,797 real 8×8 digits as an .npz (about 480 KB: 8 chunks of 64 KiB)."""
    path = tmp_path / "digits.npz"
    path.write_bytes(digits_npz_bytes(1797))
    return path


@pytest.fixture
def mlp_file(tmp_path) -> Path:
    """A TorchScript MLP for 8×8 inputs, wide enough to take about 11 chunks of 64 KiB."""
    path = tmp_path / "mlp.pt"
    path.write_bytes(torchscript_mlp_bytes(0, hidden=(512, 256)))
    return path


@pytest.fixture
def small_digits_file(tmp_path) -> Path:
    path = tmp_path / "digits-300.npz"
    path.write_bytes(digits_npz_bytes(300))
    return path


@pytest.fixture
def small_mlp_file(tmp_path) -> Path:
    path = tmp_path / "small-mlp.pt"
    path.write_bytes(torchscript_mlp_bytes(1))
    return path


class NaNNet(nn.Module):
    """Finite first block, NaN output: its extraction fails on the worker, every time."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.block1 = nn.Linear(64, 8)

    def forward(self, x):
        return self.block1(self.flatten(x)) * float("nan")


@pytest.fixture
def nan_file(tmp_path) -> Path:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(NaNNet()), buffer)
    path = tmp_path / "nan-net.pt"
    path.write_bytes(buffer.getvalue())
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored_chunks(upload_id) -> list[str]:
    """The chunk objects an upload still has in the default storage."""
    try:
        return sorted(default_storage.listdir(f"uploads/{upload_id}")[1])
    except FileNotFoundError:
        return []


def stored_sha256(sha256: str) -> str:
    """The sha256 of the bytes the server stored under this address, read back."""
    with Blob.objects.get(sha256=sha256).open() as f:
        return hashlib.sha256(f.read()).hexdigest()
