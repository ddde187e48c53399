"""The RepLens REST API from Python: uploads (chunked and resumable), runs, results.

Everything goes through one :class:`requests.Session` carrying ``Authorization: Token <key>``.
Errors are :class:`ReplensError` with the server's ``detail``; transient failures (a dropped
connection, a timeout, a 5xx) are retried with exponential backoff, a bounded number of times.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import IO, Any

import requests

from replens_client import __version__

DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
"""Bytes per PUT when neither the client nor the server names a size."""
TERMINAL_STATES = ("succeeded", "failed", "cancelled")
RETRY_STATUSES = frozenset({500, 502, 503, 504})
TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
HASH_BLOCK = 1 << 20
SLUG = re.compile(r"[-a-zA-Z0-9_]+")
RESULTS = {
    "compare": "comparisons",
    "model_matrix": "model-matrices",
    "compatibility": "compatibility",
    "align": "alignments",
    "probe": "probes",
    "project": "projections",
    "project_aligned": "aligned-projections",
    "nested": "nested",
    "dynamics": "dynamics",
    "units": "unit-matchings",
    "weights": "weight-spaces",
    "stitch": "stitchings",
}
"""Where the result of each run kind is (``GET <route>/<run id>/``)."""
TOKEN_PAGE = "sign in to the site and open 'API token' in its top bar (/account/token/)"

UploadProgress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: phase ``"hash"`` (reading the file for its sha256),
``"send"`` (bytes the server has acknowledged, which jumps when a resume skips ahead), then
``"check"`` (a worker checks the file: ``done`` is 1 once it is ready)."""
RunProgress = Callable[[dict], None]
"""``progress(run)``: the run as last polled (``state``, ``progress`` in 0..1, …)."""
Ref = int | str | dict
"""An object by its id, or as the API returned it (``{"id": …}``)."""
Source = str | os.PathLike[str] | IO[bytes]
"""A file to upload: a path, or a seekable binary file object (then give ``filename``)."""


class ReplensError(Exception):
    """A request the server refused (``status``, its ``detail`` as the message, the whole
    JSON body in ``data``), or a failure to talk to it at all (``status`` is None)."""

    def __init__(self, message: str, *, status: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.data = data if data is not None else {}

    def __str__(self) -> str:
        return self.message if self.status is None else f"{self.message} (HTTP {self.status})"


class ConnectionFailed(ReplensError):
    """The server could not be reached (or kept failing with 5xx) after every retry."""


class UploadFailed(ReplensError):
    """An upload that could not be finished; ``upload_id`` names it on the server, and
    ``discarded`` says the server refused the file itself (a sha256 or size mismatch, an
    invalid file) and dropped it."""

    def __init__(
        self,
        message: str,
        *,
        upload_id: str | None = None,
        discarded: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.upload_id = upload_id
        self.discarded = discarded


class RunFailed(ReplensError):
    """A run that ended ``failed`` or ``cancelled``; ``run`` is its last state."""

    def __init__(self, run: dict) -> None:
        what = f"run #{run.get('id')} ({run.get('kind', 'run')}) {run.get('state')}"
        error = (run.get("error") or "").strip()
        super().__init__(f"{what}: {error}" if error else what, data=run)
        self.run = run


class WaitTimeout(ReplensError, TimeoutError):
    """A run (or an upload's check) still unfinished when ``wait``'s timeout passed; ``run``
    is its last state."""

    def __init__(self, run: dict, timeout: float) -> None:
        what = f"upload {run.get('filename')}" if "filename" in run else f"run #{run.get('id')}"
        started = "filename" not in run and run.get("state") != "queued"
        progress = f" (progress {float(run.get('progress') or 0):.0%})" if started else ""
        super().__init__(
            f"{what} is still {run.get('state')} after {timeout:g} s{progress}", data=run
        )
        self.run = run


class Uploaded(dict):
    """The dataset or checkpoint as the server describes it, plus how the upload went:
    ``created`` (False when an identical file was already in the workspace), ``bytes_sent``
    (every byte put on the wire, retransmissions included; 0 for a duplicate) and
    ``upload_id`` (None when nothing had to be sent). With ``wait=False`` it is the upload
    itself, still being checked (``state`` ``"checking"``): :meth:`Client.wait_upload`."""

    def __init__(
        self, obj: dict, created: bool, bytes_sent: int = 0, upload_id: str | None = None
    ) -> None:
        super().__init__(obj)
        self.created = created
        self.bytes_sent = bytes_sent
        self.upload_id = upload_id


def workspace_slug(text: str) -> str:
    """``text`` if it can be a workspace's slug (ASCII letters, digits, ``-`` and ``_``, as
    the server makes them); else a ValueError. Checked before a request: the server decodes
    ``%2F`` in a path, so ``lab/archive`` would reach another route rather than a 404."""
    if not SLUG.fullmatch(text):
        raise ValueError(f"{text!r} is not a workspace slug (replens ls workspaces lists them)")
    return text


def _workspace(slug: str) -> str:
    return f"workspaces/{workspace_slug(slug)}/"


def _id(obj: Ref) -> int:
    """An id from an id, or from an object the API returned (``{"id": …}``)."""
    if isinstance(obj, dict):
        return obj["id"]
    return int(obj)


def _error_from(response: requests.Response) -> ReplensError:
    """The server's ``detail`` (every API error has one), else the start of the body."""
    data: Any = None
    try:
        data = response.json()
    except ValueError:
        pass
    if isinstance(data, dict) and data.get("detail"):
        message = str(data["detail"])
    elif data is not None:
        message = str(data)[:500]
    else:
        text = " ".join(response.text.split())[:300]
        message = f"{response.reason or 'error'}" + (f": {text}" if text else "")
    return ReplensError(message, status=response.status_code, data=data)


@contextmanager
def _opened(source: Source, filename: str | None) -> Iterator[tuple[IO[bytes], str]]:
    """A binary file and its name, from a path or a seekable file object."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        with open(path, "rb") as f:
            yield f, filename or path.name
        return
    name = filename or os.path.basename(getattr(source, "name", "") or "")
    if not name:
        raise ValueError("give filename= with a file object (the suffix names its format)")
    with nullcontext(source) as opened:
        yield opened, name


class Client:
    """A RepLens server: ``Client("http://host:8000", token)``.

    ``timeout`` is per request (seconds); uploads then wait while a worker checks the file
    (``wait_upload``, without a limit unless given one). Transient failures are retried
    ``retries`` times, sleeping ``backoff``, 2 × ``backoff``, 4 × … (at most ``max_backoff``)
    in between. ``chunk_size`` overrides the chunk size the server suggests for uploads.
    """

    def __init__(
        self,
        url: str,
        token: str,
        timeout: float = 30.0,
        *,
        retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        chunk_size: int | None = None,
        session: requests.Session | None = None,
    ) -> None:
        if not url:
            raise ValueError("the server's URL is required, e.g. http://127.0.0.1:8000")
        if not token:
            raise ValueError(f"an API token is required: {TOKEN_PAGE}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError("chunk_size must be a positive number of bytes")
        base = url.rstrip("/")
        if base.endswith("/api/v1"):
            base = base[: -len("/api/v1")]
        self.url = base
        self.api = f"{base}/api/v1/"
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.chunk_size = chunk_size
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.session.headers.setdefault("Accept", "application/json")
        self.session.headers["User-Agent"] = f"replens-client/{__version__}"

    @classmethod
    def from_env(cls, **kwargs: Any) -> Client:
        """A client for ``$REPLENS_URL`` (default http://127.0.0.1:8000) and
        ``$REPLENS_TOKEN``."""
        url = os.environ.get("REPLENS_URL") or "http://127.0.0.1:8000"
        return cls(url, os.environ.get("REPLENS_TOKEN", ""), **kwargs)

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.api + path

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff * 2 ** (attempt - 1), self.max_backoff)

    def _retry_delay(self, response: requests.Response, attempt: int) -> float | None:
        """Seconds to wait before trying again after this answer, or None not to: 5xx back
        off exponentially; 429 (rate limit) waits what ``Retry-After`` says, when that is
        no longer than ``max_backoff``."""
        if attempt > self.retries:
            return None
        if response.status_code in RETRY_STATUSES:
            return self._backoff(attempt)
        if response.status_code == 429:
            try:
                delay = float(response.headers.get("Retry-After", ""))
            except ValueError:
                delay = self._backoff(attempt)
            return delay if delay <= self.max_backoff else None
        return None

    def _request(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (200, 201),
        retry: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """One API call; connection errors, 5xx and short rate limits are retried (when
        ``retry``) with backoff. A status outside ``ok`` raises :class:`ReplensError` with
        the server's detail."""
        url = self._url(path)
        kwargs.setdefault("timeout", self.timeout)
        attempt = 0
        while True:
            attempt += 1
            delay: float | None
            try:
                response = self.session.request(method, url, **kwargs)
            except TRANSIENT as err:
                if not retry or attempt > self.retries:
                    raise ConnectionFailed(
                        f"{method} {url} failed after {attempt} attempt(s): {err}"
                    ) from err
                delay = self._backoff(attempt)
            else:
                if response.status_code in ok:
                    return response
                error = _error_from(response)
                delay = self._retry_delay(response, attempt) if retry else None
                if delay is None:
                    if retry and response.status_code in RETRY_STATUSES:
                        raise ConnectionFailed(
                            f"{method} {url} failed after {attempt} attempt(s): {error.message}",
                            status=error.status,
                            data=error.data,
                        )
                    raise error
            time.sleep(delay)

    def _get(self, path: str, **kwargs: Any) -> Any:
        return self._request("GET", path, **kwargs).json()

    def _post(self, path: str, body: dict, *, retry: bool = True) -> Any:
        return self._request("POST", path, json=body, retry=retry).json()

    def _list(self, path: str, params: dict, limit: int | None = None) -> list[dict]:
        """Every item of a paginated list (the first ``limit`` only, if given), following
        ``next``."""
        items: list[dict] = []
        query = {k: v for k, v in params.items() if v is not None}
        if limit is not None:
            query["limit"] = min(limit, 1000)  # the server's largest page
        page = self._get(path, params=query)
        while True:
            if isinstance(page, list):
                return (items + page)[:limit]
            items.extend(page.get("results", []))
            if not page.get("next") or (limit is not None and len(items) >= limit):
                return items[:limit]
            page = self._get(page["next"])

    def _download(self, path: str, target: str | os.PathLike[str], params: dict) -> Path:
        """Stream a file of the API to ``target`` (through ``<target>.part``, renamed once
        complete). Returns the path."""
        target = Path(target)
        response = self._request("GET", path, params=params, stream=True)
        part = target.with_name(target.name + ".part")
        try:
            with response, open(part, "wb") as out:
                for block in response.iter_content(HASH_BLOCK):
                    out.write(block)
            part.replace(target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return target

    # ------------------------------------------------------------------ uploads

    def upload_dataset(
        self,
        path: Source,
        workspace: str,
        name: str = "",
        description: str = "",
        progress: UploadProgress | None = None,
        *,
        filename: str | None = None,
        chunk_size: int | None = None,
        wait: bool = True,
    ) -> Uploaded:
        """Upload a dataset (.npz, .zip of images in class folders, or .csv) in chunks,
        resuming after dropped connections, and wait while a worker checks it. ``path`` may
        also be a seekable binary file object (then give ``filename``). Returns the dataset;
        ``.created`` is False when an identical file was already in the workspace (nothing is
        sent then). Raises :class:`UploadFailed` with the reason when the file is refused."""
        fields = {"name": name, "description": description}
        return self._upload(
            "dataset", path, workspace, fields, progress, filename, chunk_size, wait
        )

    def upload_checkpoint(
        self,
        path: Source,
        workspace: str,
        name: str = "",
        architecture: str = "",
        seed_group: str = "",
        step: int | None = None,
        progress: UploadProgress | None = None,
        *,
        description: str = "",
        filename: str | None = None,
        chunk_size: int | None = None,
        dataset: int | None = None,
        wait: bool = True,
        metrics: dict[str, float] | None = None,
    ) -> Uploaded:
        """Upload a checkpoint (TorchScript .pt, .safetensors with ``architecture``, .onnx, a
        .zip / .tar of a Hugging Face model directory, or precomputed activations of the
        samples of ``dataset``) in chunks, resuming after dropped connections; ``seed_group``
        and ``step`` place it in a series, ``metrics`` (``{"loss": 0.3, "epoch": 2}``) are
        drawn over the series' steps. Waits while a worker checks it (in a model host);
        returns the checkpoint (``.created`` is False for a duplicate), or raises
        :class:`UploadFailed` with the reason it was refused."""
        fields = {
            "name": name,
            "description": description,
            "architecture": architecture,
            "seed_group": seed_group,
            "step": step,
            "metrics": metrics,
            "dataset": dataset,
        }
        return self._upload(
            "checkpoint", path, workspace, fields, progress, filename, chunk_size, wait
        )

    def log_checkpoint(
        self,
        path: Source,
        workspace: str,
        step: int,
        name: str | None = None,
        seed_group: str = "",
        *,
        every: int | None = None,
        architecture: str = "",
        description: str = "",
        progress: UploadProgress | None = None,
        wait: bool = True,
        metrics: dict[str, float] | None = None,
    ) -> Uploaded | None:
        """Upload the checkpoint a training loop just saved, as step ``step`` of
        ``seed_group`` (named ``<file stem>-step<step>`` unless ``name`` is given). With
        ``every=N`` only steps that are multiples of N are uploaded (None is returned for
        the others), so it can be called on every step. ``metrics`` (loss, accuracy, epoch …:
        numbers by name) are drawn beside the series' dynamics. With ``wait=False`` the
        training loop goes on while the server checks the file (see :meth:`wait_upload`)."""
        if every is not None and step % every:
            return None
        if name is None:
            stem = Path(getattr(path, "name", None) or str(path)).stem or "checkpoint"
            name = f"{stem}-step{step}"
        return self.upload_checkpoint(
            path,
            workspace,
            name=name,
            architecture=architecture,
            seed_group=seed_group,
            step=step,
            progress=progress,
            description=description,
            wait=wait,
            metrics=metrics,
        )

    def _upload(
        self,
        kind: str,
        source: Source,
        workspace: str,
        fields: dict,
        progress: UploadProgress | None,
        filename: str | None,
        chunk_size: int | None,
        wait: bool = True,
    ) -> Uploaded:
        with _opened(source, filename) as (f, name):
            size, sha256 = _digest(f, progress)
            if size == 0:
                raise UploadFailed(f"{name} is empty")
            body = {
                "workspace": workspace,
                "kind": kind,
                "filename": name,
                "size": size,
                "sha256": sha256,
                **fields,
            }
            response = self._request("POST", "uploads/", json=body)
            started = response.json()
            if started.get("state") == "done" or started.get("id") is None:
                if progress:
                    progress("send", size, size)
                return Uploaded(started["result"], created=False)
            upload_id = str(started["id"])
            if started.get("state") == "checking":  # the same bytes, uploaded a moment ago
                if progress:
                    progress("send", size, size)
                if not wait:
                    return Uploaded(started, created=False, upload_id=upload_id)
                return Uploaded(self.wait_upload(upload_id, progress=progress), False, 0, upload_id)
            step = chunk_size or self.chunk_size or int(started.get("chunk_size") or 0)
            step = step or DEFAULT_CHUNK_SIZE
            try:
                offset = int(started.get("offset") or 0)
                sent = self._send_chunks(upload_id, f, offset, size, step, progress)
                checking = self._complete(upload_id).json()
            except BaseException as err:
                if not getattr(err, "discarded", False):
                    self._abort_quietly(upload_id)
                raise
        if not wait:
            return Uploaded(checking, True, sent, upload_id)
        return Uploaded(self.wait_upload(upload_id, progress=progress), True, sent, upload_id)

    def wait_upload(
        self,
        upload_id: str,
        poll: float = 1.0,
        timeout: float | None = None,
        progress: UploadProgress | None = None,
    ) -> dict:
        """Wait while a worker checks an upload; return the dataset or checkpoint it made.
        Polls quickly at first, then every ``poll`` seconds. Raises :class:`UploadFailed`
        (``discarded``: nothing was kept) with the reason when the file was refused, and
        :class:`WaitTimeout` after ``timeout`` seconds."""
        started = time.monotonic()
        pause = min(0.1, poll)
        while True:
            upload = self.upload_status(upload_id)
            state = upload.get("state")
            if progress:
                progress("check", int(state == "done"), 1)
            if state == "done":
                return upload["result"]
            if state == "failed":
                raise UploadFailed(
                    f"{upload.get('filename')} was refused: {upload.get('error')}",
                    upload_id=upload_id,
                    discarded=True,
                    data=upload,
                )
            if state != "checking":
                raise UploadFailed(
                    f"upload {upload_id} is {state}, not being checked: complete it first",
                    upload_id=upload_id,
                    data=upload,
                )
            if timeout is not None and time.monotonic() >= started + timeout:
                raise WaitTimeout(upload, timeout)
            time.sleep(
                pause if timeout is None else min(pause, started + timeout - time.monotonic())
            )
            pause = min(poll, pause * 1.5)

    def _send_chunks(
        self,
        upload_id: str,
        f: IO[bytes],
        offset: int,
        size: int,
        chunk: int,
        progress: UploadProgress | None,
    ) -> int:
        """PUT the file from ``offset`` in chunks of ``chunk`` bytes; after a dropped
        connection or a 5xx, ask the server where it stands and resume from there, after a
        409 from the offset it names. Returns the bytes put on the wire."""
        url = self._url(f"uploads/{upload_id}/")
        sent = failures = 0
        if progress:
            progress("send", offset, size)
        while offset < size:
            delay: float | None
            f.seek(offset)
            data = f.read(min(chunk, size - offset))
            if not data:
                raise UploadFailed(
                    f"the file ended at byte {offset} of {size}: it changed while uploading",
                    upload_id=upload_id,
                )
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"bytes {offset}-{offset + len(data) - 1}/{size}",
            }
            sent += len(data)
            try:
                response = self.session.put(url, data=data, headers=headers, timeout=self.timeout)
            except TRANSIENT as err:
                problem, delay = f"{type(err).__name__}: {err}", None
            else:
                if response.status_code == 200:
                    offset = self._checked_offset(response.json().get("offset"), size, upload_id)
                    failures = 0
                    if progress:
                        progress("send", offset, size)
                    continue
                error = _error_from(response)
                if response.status_code == 409 and isinstance(error.data, dict):
                    # The server has a different number of bytes than we thought (a chunk
                    # that arrived although its answer was lost): carry on from its offset.
                    failures += 1
                    if failures > self.retries:
                        raise UploadFailed(error.message, status=409, upload_id=upload_id)
                    offset = self._checked_offset(error.data.get("offset"), size, upload_id)
                    if progress:
                        progress("send", offset, size)
                    continue
                delay = self._retry_delay(response, failures + 1)
                if delay is None and response.status_code not in RETRY_STATUSES:
                    raise UploadFailed(
                        error.message, status=error.status, data=error.data, upload_id=upload_id
                    )
                problem = str(error)
            failures += 1
            if failures > self.retries:
                raise UploadFailed(
                    f"gave up sending upload {upload_id} at byte {offset} of {size} after "
                    f"{failures} failed attempts; last: {problem}",
                    upload_id=upload_id,
                )
            time.sleep(self._backoff(failures) if delay is None else delay)
            offset = self.upload_status(upload_id)["offset"]
            offset = self._checked_offset(offset, size, upload_id)
            if progress:
                progress("send", offset, size)
        return sent

    @staticmethod
    def _checked_offset(offset: object, size: int, upload_id: str) -> int:
        if not isinstance(offset, int) or not 0 <= offset <= size:
            raise UploadFailed(
                f"the server answered offset {offset!r} for a {size}-byte file",
                upload_id=upload_id,
            )
        return offset

    def _complete(self, upload_id: str) -> requests.Response:
        """Tell the server every byte is sent, so that a worker checks the upload
        (idempotent: retried safely)."""
        try:
            return self._request(
                "POST",
                f"uploads/{upload_id}/complete/",
                ok=(200, 202),
                json={},
            )
        except ConnectionFailed:
            raise
        except ReplensError as err:
            raise UploadFailed(
                err.message,
                status=err.status,
                data=err.data,
                upload_id=upload_id,
                # refused earlier: the server keeps nothing (missing bytes keep it open)
                discarded=err.message.startswith("this upload was refused"),
            ) from err

    def _abort_quietly(self, upload_id: str) -> None:
        try:
            self.session.delete(self._url(f"uploads/{upload_id}/"), timeout=5)
        except Exception:  # best effort: the server expires abandoned uploads anyway
            pass

    def upload_status(self, upload_id: str) -> dict:
        """An upload: ``{"id", "offset", "size", "state", "position", "error", "result"}``
        (where to resume; then ``checking``, ``done`` with the dataset or checkpoint as
        ``result``, or ``failed`` with the reason as ``error``)."""
        return self._get(f"uploads/{upload_id}/")

    def abort_upload(self, upload_id: str) -> None:
        """Discard an unfinished upload and the bytes received so far."""
        self._request("DELETE", f"uploads/{upload_id}/", ok=(200, 204))

    # ------------------------------------------------------------------ workspaces

    def workspaces(self, archived: bool | None = None) -> list[dict]:
        """The workspaces you are a member of (``slug``, ``name``, ``archived_at``, ``page``):
        only the archived ones (``archived=True``), only the active ones (False), or all."""
        flag = None if archived is None else ("true" if archived else "false")
        return self._list("workspaces/", {"archived": flag})

    def create_workspace(self, name: str) -> dict:
        """Make a workspace; you become its owner. Its ``slug`` (made from the name) is what
        every other call takes as ``workspace``. Returns it."""
        # Not retried: were the answer lost, a second POST would make a second workspace.
        return self._post("workspaces/", {"name": name}, retry=False)

    def rename_workspace(self, workspace: str, name: str) -> dict:
        """Rename a workspace you own (by its slug, which stays). Returns it. A ``workspace``
        that cannot be a slug is a ValueError, before any request."""
        return self._request("PATCH", _workspace(workspace), json={"name": name}).json()

    def archive_workspace(self, workspace: str, archived: bool = True) -> dict:
        """Archive a workspace you own (read-only for everyone, listed apart), or with
        ``archived=False`` bring it back. Returns it, with ``archived_at``."""
        method = "POST" if archived else "DELETE"
        return self._request(method, _workspace(workspace) + "archive/").json()

    # ------------------------------------------------------------------ catalog

    def datasets(self, workspace: str | None = None) -> list[dict]:
        return self._list("datasets/", {"workspace": workspace})

    def checkpoints(self, workspace: str | None = None) -> list[dict]:
        return self._list("checkpoints/", {"workspace": workspace})

    def dataset(self, dataset: Ref) -> dict:
        return self._get(f"datasets/{_id(dataset)}/")

    def checkpoint(self, checkpoint: Ref) -> dict:
        return self._get(f"checkpoints/{_id(checkpoint)}/")

    def activations(self, checkpoint: Ref | None = None, dataset: Ref | None = None) -> list[dict]:
        """The stored activation sets (``layer``, ``pooling``, ``n``, ``d``, ``dtype``,
        ``sha256``), of one checkpoint and/or dataset if given."""
        params = {
            "checkpoint": None if checkpoint is None else _id(checkpoint),
            "dataset": None if dataset is None else _id(dataset),
        }
        return self._list("activations/", params)

    def download_activations(self, activation: Ref, path: str | os.PathLike[str]) -> Path:
        """Save an activation set as a .npy file: n × d float32 in the dataset's order
        (``numpy.load(path, allow_pickle=False)``); the file's sha256 is the set's ``sha256``.
        Returns the path."""
        return self._download(f"activations/{_id(activation)}/values/", path, {})

    def download_positions(self, activation: Ref, path: str | os.PathLike[str]) -> Path:
        """Save the rows' sample and position of an activation set of pooling ``tokens`` (every
        position a row) as a .npz file of two int64 arrays, ``sample`` and ``position``, and
        the bool array ``special`` (the rows the ``mean`` pooling leaves out: a vision
        transformer's class token; absent from sets stored before it), one entry per row of
        its values. Returns the path."""
        return self._download(f"activations/{_id(activation)}/positions/", path, {})

    # ------------------------------------------------------------------ runs

    def extract(
        self, checkpoint: Ref, dataset: Ref, layers: list[str] | None = None, **parameters: Any
    ) -> dict:
        """Ask for the activations of ``layers`` (default: every top-level block and the
        output); ``parameters`` are the extraction's (``pooling``). The same request again
        returns the same run. Returns the run."""
        body = {"checkpoint": _id(checkpoint), "dataset": _id(dataset)}
        return self._post("extractions/", _with(body, layers=_list(layers), **parameters))

    def extraction_storage(
        self, checkpoint: Ref, dataset: Ref, layers: list[str] | None = None
    ) -> dict:
        """What an extraction of ``layers`` at every position (pooling ``tokens``) would
        store, before it runs: ``layers`` (each ``rows``, ``d``, ``bytes`` and ``estimate``:
        exact, bound or unknown) and the total ``bytes``. Nothing is run."""
        body = {"checkpoint": _id(checkpoint), "dataset": _id(dataset)}
        return self._post("extractions/storage/", _with(body, layers=_list(layers)))

    def compare(
        self,
        checkpoint_a: Ref,
        checkpoint_b: Ref,
        dataset: Ref,
        layers_a: list[str] | None = None,
        layers_b: list[str] | None = None,
        measure_params: dict | None = None,
        **parameters: Any,
    ) -> dict:
        """Compare every layer of A with every layer of B on ``dataset``. ``parameters`` are
        the comparison's (``measure``, default ``cka/linear``; ``pooling``, ``positions``
        (how sets of pooling ``tokens`` are read: per-position, mean, first, last),
        ``n_permutations``, ``n_bootstrap``, ``agreement_k``, ``seed``: the server's schema
        gives each with its default and range and refuses an unknown one by name);
        ``measure_params`` the measure's own (``GET /api/v1/measures/`` lists them, e.g.
        ``{"k": 20}`` for kNN). Returns the run; :meth:`comparison` has the matrix."""
        body = {
            "checkpoint_a": _id(checkpoint_a),
            "checkpoint_b": _id(checkpoint_b),
            "dataset": _id(dataset),
        }
        return self._post(
            "comparisons/",
            _with(
                body,
                layers_a=_list(layers_a),
                layers_b=_list(layers_b),
                measure_params=measure_params or None,
                **parameters,
            ),
        )

    def series(self, workspace: str) -> list[dict]:
        """The workspace's series (seed groups): ``name``, its ``checkpoints`` oldest first
        with ``step`` and ``metrics``, and its web ``page``."""
        return self._get("series/", params={"workspace": workspace})

    def follow(
        self,
        workspace: str,
        series: str,
        dataset: Ref,
        layers: list[str] | None = None,
        measure_params: dict | None = None,
        **parameters: Any,
    ) -> dict:
        """Follow ``layers`` over the checkpoints of ``series`` (a seed group) as it stands:
        step × step matrices of the measure (``measure``, ``pooling``), similarity to the
        final step and statistics per step (with pooling ``tokens``, ``positions``:
        per-position, mean, first or last). Asked again once the series has grown, only the
        new cells are computed. Returns the run; :meth:`dynamics` has the result."""
        body = {"workspace": workspace, "series": series, "dataset": _id(dataset)}
        return self._post(
            "dynamics/",
            _with(body, layers=_list(layers), measure_params=measure_params or None, **parameters),
        )

    def dynamics(self, run: Ref) -> dict:
        """Per layer: the step × step matrix, ``to_final`` and each statistic over steps,
        with the series' checkpoints and logged metrics."""
        return self._get(f"dynamics/{_id(run)}/")

    def probe(
        self,
        checkpoint: Ref,
        dataset: Ref,
        layers: list[str] | None = None,
        families: dict[str, list[float]] | list[str] | None = None,
        **parameters: Any,
    ) -> dict:
        """Probe how layers respond to transformation families: ``{"image/rotation": [0,
        45, 90]}``, or a list of keys with their default grids (``GET
        /api/v1/transformations/``); ``parameters`` are the probe's (``pooling``, ``seed``;
        with pooling ``tokens``, ``positions``).
        Returns the run; :meth:`probe_result` has the numbers."""
        body: dict[str, Any] = {"checkpoint": _id(checkpoint), "dataset": _id(dataset)}
        if families is not None:
            body["families"] = families if isinstance(families, dict) else list(families)
        return self._post("probes/", _with(body, layers=_list(layers), **parameters))

    def project(
        self, checkpoint: Ref, dataset: Ref, layer: str, method: str = "pca", **parameters: Any
    ) -> dict:
        """Project every sample of ``layer`` to 2-D (``pca``, ``umap``, ``tsne``; parameters
        such as ``n_neighbors``, ``min_dist``, ``metric``, ``perplexity``, ``pooling``,
        ``seed``; with pooling ``tokens``, ``positions``: mean, first or last). Returns the
        run; :meth:`coordinates` has the points."""
        body = {"checkpoint": _id(checkpoint), "dataset": _id(dataset), "layer": layer}
        return self._post("projections/", _with(body, method=method, **parameters))

    def match_units(
        self,
        checkpoint_a: Ref,
        checkpoint_b: Ref,
        dataset: Ref,
        layer_a: str,
        layer_b: str,
        **parameters: Any,
    ) -> dict:
        """Match the units of ``layer_a`` of A with those of ``layer_b`` of B on ``dataset``:
        Hungarian and best partner both ways, the share of units above a correlation t, the
        sparse (lasso) prediction of B's units from A's, the best and worst pairs.
        ``parameters`` are the kind's (``pooling``, with ``tokens`` ``positions``: mean, first
        or last; ``n_pairs``, ``top_m``, ``n_alphas``, ``test_fraction`` and ``seed`` of the
        held-out split).
        Layers wider than 256 units are refused. Returns the run; :meth:`unit_matching` has
        the result."""
        body = {
            "checkpoint_a": _id(checkpoint_a),
            "checkpoint_b": _id(checkpoint_b),
            "dataset": _id(dataset),
            "layer_a": layer_a,
            "layer_b": layer_b,
        }
        return self._post("unit-matchings/", _with(body, **parameters))

    def unit_matching(self, run: Ref) -> dict:
        """A unit matching: ``report`` (null until it finished) with the share-above-t curves
        (``thresholds``, ``share_hungarian``, ``share_semi_a``, ``share_semi_b``), the
        ``sparse`` curve (``error_at_nonzeros`` by number of weights, in-sample), the
        ``heldout`` one (the path fitted on a training split, scored on the rest) and the
        ``best_pairs``/``worst_pairs`` with their most activating samples' indices."""
        return self._get(f"unit-matchings/{_id(run)}/")

    def compare_weights(
        self, checkpoint_a: Ref, checkpoint_b: Ref, dataset: Ref, **parameters: Any
    ) -> dict:
        """The weight space between two checkpoints of one architecture on a labelled
        ``dataset``: B's hidden units matched to A's (weight matching; ``seed`` orders it),
        checked to compute B's function, then L2 before and after, loss and accuracy along
        both linear paths with their barriers, and each layer's spectra and alignment. Only
        .safetensors state dicts of a built-in architecture (``mlp``, ``small-cnn``,
        ``transformer``), TorchScript models named after ``mlp`` or ``small-cnn`` and Hugging
        Face BERT, RoBERTa or DistilBERT encoders (no paths: they have no class scores, so
        any dataset they read, labels not needed) are accepted. Returns the run;
        :meth:`weight_space` has the result."""
        body = {
            "checkpoint_a": _id(checkpoint_a),
            "checkpoint_b": _id(checkpoint_b),
            "dataset": _id(dataset),
        }
        return self._post("weight-spaces/", _with(body, **parameters))

    def weight_space(self, run: Ref) -> dict:
        """A weight-space run: ``result`` (null until it finished) with ``function_check``,
        ``l2`` (``before``, ``after``), ``lambdas``, the ``naive`` and ``matched`` paths
        (``loss``, ``accuracy``, their barriers) and ``layers`` (``shape``, spectra, cosines,
        alignment before and after, ``alignment_chance``, what unrelated weights of that shape
        score before matching, and ``alignment_matched_chance``, what they score after the same
        matching: ``mean``, ``low`` and ``high`` of its 95 % interval, ``sd``, over the
        ``unrelated.draws`` pairs; the last three absent from reports made before they were
        kept); ``definitions`` has one line per number."""
        return self._get(f"weight-spaces/{_id(run)}/")

    def stitch(
        self,
        checkpoint_a: Ref,
        checkpoint_b: Ref,
        dataset: Ref,
        layers_a: Iterable[str] | None = None,
        layers_b: Iterable[str] | None = None,
        **parameters: Any,
    ) -> dict:
        """Stitch each of ``layers_a`` of A into each of ``layers_b`` of B (default: each
        model's default layers with vector or feature-map outputs) on a labelled ``dataset``:
        A up to its layer, a map into B's layer (fitted by least squares, a 1×1 convolution
        between feature maps on one grid, and zero-shot through relative representations
        between vectors), then the rest of B, scored on held-out samples. ``parameters`` are
        the kind's (``test_fraction``, ``seed``, ``map`` ("affine" or "linear"), ``ridge``,
        ``n_anchors``). B must be a .safetensors state dict of a built-in architecture,
        TorchScript named after one, or a Hugging Face text encoder (then A too, reading the
        same tokens, on labelled texts; stitched per token); it may be A. Returns the run;
        :meth:`stitching` has the result."""
        body = {
            "checkpoint_a": _id(checkpoint_a),
            "checkpoint_b": _id(checkpoint_b),
            "dataset": _id(dataset),
        }
        layers = {"layers_a": _list(layers_a), "layers_b": _list(layers_b)}
        return self._post("stitchings/", _with(body, **layers, **parameters))

    def stitching(self, run: Ref) -> dict:
        """A stitching run: ``result`` (null until it finished) with ``layers_a`` (rows),
        ``layers_b`` (columns), ``accuracy_b``, ``accuracy_a``, ``chance`` and ``matrices``
        by method (``fitted``, ``relative``), each with its ``accuracy`` and ``r2`` grids
        (null in a cell not stitched) and ``refused`` (why, per cell); ``definitions`` has one
        line per number."""
        return self._get(f"stitchings/{_id(run)}/")

    def run(self, run: Ref) -> dict:
        """A run: ``id``, ``kind``, ``state``, ``progress`` (0..1), ``error``, timings…"""
        return self._get(f"runs/{_id(run)}/")

    def runs(
        self,
        workspace: str | None = None,
        kind: str | None = None,
        state: str | None = None,
        limit: int | None = None,
    ) -> list[dict]:
        """Runs, newest first: of one workspace, kind (``compare``, ``extract``, …) and state
        (``queued``, ``running``, ``succeeded``, ``failed``, ``cancelled``) if given; the
        first ``limit`` only if given."""
        return self._list("runs/", {"workspace": workspace, "kind": kind, "state": state}, limit)

    def cancel(self, run: Ref) -> dict:
        """Cancel a queued or running run; returns it."""
        return self._request("POST", f"runs/{_id(run)}/cancel/").json()

    def wait(
        self,
        run_id: Ref,
        poll: float = 1.0,
        timeout: float | None = None,
        progress: RunProgress | None = None,
    ) -> dict:
        """Poll a run every ``poll`` seconds until it ends; return it when it succeeded.
        Raises :class:`RunFailed` (with the server's error) when it failed or was cancelled,
        :class:`WaitTimeout` after ``timeout`` seconds. ``progress(run)`` sees every poll."""
        started = time.monotonic()
        while True:
            run = self.run(run_id)
            if progress:
                progress(run)
            if run["state"] == "succeeded":
                return run
            if run["state"] in TERMINAL_STATES:
                raise RunFailed(run)
            if timeout is not None and time.monotonic() >= started + timeout:
                raise WaitTimeout(run, timeout)
            pause = (
                poll if timeout is None else min(poll, max(started + timeout - time.monotonic(), 0))
            )
            time.sleep(pause)

    # ------------------------------------------------------------------ results

    def result(self, run: Ref) -> dict:
        """The result of a run of any kind: a comparison's, model matrix's or compatibility
        series' matrix, a probe's statistics (each drawn from what is stored so far), a
        finished alignment's scores, projection or aligned projections; otherwise (an
        extraction, or an alignment or projection that has not finished) the run itself."""
        found = run if isinstance(run, dict) and "kind" in run else self.run(run)
        route = RESULTS.get(found["kind"])
        finished_only = found["kind"] in ("align", "project")
        if route is None or (finished_only and found["state"] != "succeeded"):
            return found
        return self._get(f"{route}/{found['id']}/")

    def comparison(self, run: Ref) -> dict:
        """The layer × layer matrix with baselines and provenance (cells are null until
        the run has scored them)."""
        return self._get(f"comparisons/{_id(run)}/")

    def probe_result(self, run: Ref) -> dict:
        """Every statistic of every probed family by layer and magnitude."""
        return self._get(f"probes/{_id(run)}/")

    def projection(self, run: Ref) -> dict:
        """A finished projection: method, parameters, estimator, explained variance…"""
        return self._get(f"projections/{_id(run)}/")

    def coordinates(self, run: Ref) -> bytes:
        """A finished projection's n × 2 coordinates: float32 little-endian, x and y
        interleaved, dataset order (``numpy.frombuffer(b, "<f4").reshape(-1, 2)``)."""
        return self._request("GET", f"projections/{_id(run)}/coordinates/").content

    def select(
        self,
        dataset: Ref | None = None,
        indices: list[int] | None = None,
        *,
        projection: Ref | None = None,
        polygon: list[list[float]] | None = None,
        name: str = "",
        tags: list[str] | None = None,
    ) -> dict:
        """A selection of samples: ``dataset`` and ``indices``, or ``projection`` and a
        ``polygon`` drawn in its coordinates (resolved on the server)."""
        body: dict[str, Any] = {"name": name, "tags": list(tags or [])}
        if projection is not None:
            body.update(projection=_id(projection), polygon=polygon)
        elif dataset is not None:
            body.update(dataset=_id(dataset), indices=list(indices or []))
        else:
            raise ValueError("give dataset= and indices=, or projection= and polygon=")
        return self._post("selections/", body, retry=False)

    def export_selection(
        self,
        selection: Ref,
        path: str | os.PathLike[str],
        file: str | None = None,
        projection: Ref | None = None,
    ) -> Path:
        """Save a selection (index, id, label, metadata, x, y) as ``file`` = ``"csv"`` or
        ``"parquet"`` (default: from ``path``'s suffix, else csv). Returns the path."""
        path = Path(path)
        kind = file or ("parquet" if path.suffix.lower() == ".parquet" else "csv")
        params: dict[str, Any] = {"file": kind}
        if projection is not None:
            params["projection"] = _id(projection)
        return self._download(f"selections/{_id(selection)}/export/", path, params)

    # ------------------------------------------------------------------ nested embeddings

    def request_nested(
        self, checkpoints: list[Ref], dataset: Ref, layer: str, **parameters: Any
    ) -> dict:
        """Measure the quality of every prefix (8, 16, 32, … d dimensions) of ``layer``'s
        embedding for one or more checkpoints (drawn overlaid, in this order) on a labelled
        ``dataset``: retrieval mAP, top-1 and top-5, leave-one-out probe accuracy and CKA to
        the full embedding. ``parameters`` are the run's (``pooling``; ``metric``: cosine or
        euclidean). The same request again returns the same run. Returns the run;
        :meth:`nested` has the curves."""
        body = {"checkpoints": [_id(c) for c in checkpoints], "dataset": _id(dataset)}
        return self._post("nested/", _with(body, layer=layer, **parameters))

    def nested(self, run: Ref) -> dict:
        """A nested-embedding run's curves: per checkpoint ``dims`` and each statistic at
        them (``mean_ap``, ``top1``, ``top5``, ``probe_accuracy``, ``cka``), with ``chance``
        levels, one-line ``statistics`` definitions and ``provenance`` (no curves, null
        chance and provenance until it finished)."""
        return self._get(f"nested/{_id(run)}/")


def _digest(f: IO[bytes], progress: UploadProgress | None) -> tuple[int, str]:
    """Size and sha256 of a seekable file, read in 1 MiB blocks from its start."""
    f.seek(0, os.SEEK_END)
    total = f.tell()
    f.seek(0)
    digest = hashlib.sha256()
    done = 0
    if progress:
        progress("hash", 0, total)
    for block in iter(lambda: f.read(HASH_BLOCK), b""):
        digest.update(block)
        done += len(block)
        if progress:
            progress("hash", done, total)
    return done, digest.hexdigest()


def _list(values: Iterable[Any] | None) -> list | None:
    return list(values) if values else None


def _with(body: dict, **optional: Any) -> dict:
    """``body`` with the ``optional`` fields that were given (None: leave it to the server's
    default)."""
    return {**body, **{k: v for k, v in optional.items() if v is not None}}
