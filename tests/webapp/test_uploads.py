"""Uploads through HTTP: the REST API and the browser forms store the bytes, and a worker
checks them (``webapp.catalog.uploads``, parsing with ``webapp.catalog.ingest``;
``check_uploads`` plays the worker here).

Good files become datasets/checkpoints with the right metadata and are stored once; identical
bytes are answered at once with what they already made. What the declaration alone shows to be
wrong (an empty file, one over the size limit, an unsupported checkpoint extension, a
safetensors file without an architecture) is a 400 at once; a bad file is refused by the check,
with a message for the person, and leaves no rows, no blobs and no chunks behind.
"""

from __future__ import annotations

import html

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import check_uploads, checked, digits_npz_bytes, torchscript_mlp_bytes
from tests.webapp import builders as b
from webapp.catalog.models import Blob, Checkpoint, Dataset, Upload, Workspace

pytestmark = pytest.mark.django_db

KIND_URL = {"datasets": "datasets", "checkpoints": "checkpoints"}


def api_upload(api, kind: str, filename: str, content: bytes, workspace="lab", **fields):
    data = {"workspace": workspace, "file": SimpleUploadedFile(filename, content), **fields}
    return api.post(f"/api/v1/{kind}/", data, format="multipart")


def page_upload(client, kind: str, filename: str, content: bytes, workspace="lab", **fields):
    data = {"file": SimpleUploadedFile(filename, content), **fields}
    return client.post(f"/w/{workspace}/{kind}/upload/", data)


@pytest.fixture
def browser(client, owner, workspace):
    client.force_login(owner)
    return client


@pytest.fixture
def api_ws(api, workspace):
    return api


def api_error(response) -> str:
    """The API's message for a 400 (documented as ``{"detail": ...}``)."""
    body = response.json()
    assert "detail" in body, f"no 'detail' in the error body: {body}"
    return str(body["detail"])


def page_error(response) -> str:
    return html.unescape(response.content.decode())


def api_made(api, response) -> dict:
    """What an API upload made (its dataset or checkpoint), once a worker checked it: the
    request itself only stored the bytes (202, state checking, nothing made yet)."""
    assert response.status_code == 202, response.content
    waiting = response.json()
    assert waiting["state"] == "checking" and waiting["result"] is None, waiting
    state = checked(api, response)
    assert state["state"] == "done" and state["error"] == "", state
    return state["result"]


def api_refusal(api, response) -> str:
    """Why the worker's check refused an API upload (accepted for a check: 202)."""
    state = checked(api, response)
    assert state["state"] == "failed" and state["result"] is None, state
    assert "internal error" not in state["error"], state
    return state["error"]


def page_checked(client, response, workspace="lab") -> str:
    """After a browser upload: back to the workspace's list of uploads, where the file is
    being checked; then a worker checks it. Returns the workspace page after the check."""
    assert response.status_code == 302, response.content
    assert response["Location"] == f"/w/{workspace}/#uploads"
    page = client.get(response["Location"]).content.decode()
    assert "is uploaded. A worker checks it now" in page and "checking" in page
    check_uploads()
    return html.unescape(client.get(f"/w/{workspace}/").content.decode())


def page_refusal(client, response) -> str:
    """The workspace page after the check refused a browser upload: the reason is listed,
    with a button to dismiss it."""
    text = page_checked(client, response)
    refused = Upload.objects.get()
    assert refused.state == Upload.State.FAILED, refused.state
    assert "refused" in text and "Dismiss" in text
    assert refused.error in text
    return text


class Snapshot:
    """Rows and files that exist now; a rejected upload must not change them."""

    def __init__(self, isolated_media):
        self.isolated_media = isolated_media
        self.before = self.take()

    def take(self):
        return {
            "datasets": Dataset.objects.count(),
            "checkpoints": Checkpoint.objects.count(),
            "blobs": Blob.objects.count(),
            "files": b.media_files(self.isolated_media),
        }

    def assert_unchanged(self):
        assert self.take() == self.before


# --------------------------------------------------------------------------- happy paths


DATASET_CASES = {
    "npz-string-labels": (
        "animals.npz",
        b.labelled_npz,
        {
            "n_samples": 12,
            "modality": "vector",
            "label_names": ["cat", "dog", "emu"],
            "metadata_columns": ["group"],
            "sample_shape": [5],
        },
    ),
    "npz-digits-images": (
        "digits.npz",
        lambda: digits_npz_bytes(50),
        {
            "n_samples": 50,
            "modality": "image",
            "label_names": [],
            "metadata_columns": [],
            "sample_shape": [1, 8, 8],
        },
    ),
    "zip-class-folders": (
        "shapes.zip",
        b.image_zip,
        {
            "n_samples": 6,
            "modality": "image",
            "label_names": ["circle", "square"],
            "metadata_columns": [],
            "sample_shape": [1, 6, 6],
        },
    ),
    "csv": (
        "people.csv",
        b.tabular_csv,
        {
            "n_samples": 8,
            "modality": "tabular",
            "label_names": ["short", "tall"],
            "metadata_columns": ["colour"],
            "sample_shape": [2],
        },
    ),
}


@pytest.mark.parametrize("case", list(DATASET_CASES))
def test_api_dataset_upload_then_dedup(api_ws, case):
    filename, make, expected = DATASET_CASES[case]
    content = make()
    response = api_upload(api_ws, "datasets", filename, content, name=f"my {case}")
    assert not Dataset.objects.exists()  # the request only stored the bytes
    body = api_made(api_ws, response)
    for field, value in expected.items():
        assert body[field] == value, field
    assert body["name"] == f"my {case}"
    assert body["workspace"] == "lab"
    assert body["filename"] == filename
    dataset = Dataset.objects.get(pk=body["id"])
    assert dataset.load_arrays().n == expected["n_samples"]
    blobs = Blob.objects.count()

    # The same bytes again: answered at once with the dataset, nothing to check.
    again = api_upload(api_ws, "datasets", filename, content, name="another name")
    assert again.status_code == 200, again.content
    assert again.json()["id"] is None and again.json()["state"] == "done"
    assert again.json()["result"]["id"] == body["id"]
    assert Dataset.objects.count() == 1 and Upload.objects.count() == 1
    assert Blob.objects.count() == blobs


def test_api_dataset_labels_follow_the_samples(api_ws):
    response = api_upload(api_ws, "datasets", "animals.npz", b.labelled_npz())
    dataset = Dataset.objects.get(pk=api_made(api_ws, response)["id"])
    arrays = dataset.load_arrays()
    assert [arrays.label_of(i) for i in range(4)] == ["cat", "dog", "emu", "cat"]
    assert list(arrays.metadata["group"][:2]) == ["test", "train"]
    assert [p["id"] for p in dataset.preview[:2]] == ["s0", "s1"]
    assert dataset.preview[1]["label"] == "dog"


def test_same_file_in_another_workspace_is_a_new_dataset(api_ws, owner):
    other = Workspace.objects.create(name="Other", slug="other")
    other.memberships.create(user=owner, role="owner")
    first = api_upload(api_ws, "datasets", "animals.npz", b.labelled_npz())
    second = api_upload(api_ws, "datasets", "animals.npz", b.labelled_npz(), workspace="other")
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] != second.json()["id"]  # two uploads, not one being checked
    made = api_made(api_ws, first), api_made(api_ws, second)
    assert made[0]["id"] != made[1]["id"]
    assert [m["workspace"] for m in made] == ["lab", "other"]


def test_api_torchscript_checkpoint_then_dedup(api_ws, mlp_pt):
    response = api_upload(api_ws, "checkpoints", "mlp.pt", mlp_pt, name="seed 0")
    assert not Checkpoint.objects.exists()  # parsed by the worker, in a model host
    body = api_made(api_ws, response)
    assert body["format"] == "torchscript"
    assert body["architecture"] == ""
    assert body["name"] == "seed 0"
    assert body["parameter_count"] == b.MLP_PARAMETERS
    assert body["layers"] == ["flatten", "block1", "block2", "head", "output"]
    assert body["default_layers"] == b.MLP_DEFAULT_LAYERS
    assert [node["name"] for node in body["layer_tree"]] == ["flatten", "block1", "block2", "head"]
    again = api_upload(api_ws, "checkpoints", "mlp.pt", mlp_pt)
    assert again.status_code == 200
    assert again.json()["id"] is None and again.json()["result"]["id"] == body["id"]
    assert Checkpoint.objects.count() == 1


def test_api_safetensors_checkpoint_then_dedup(api_ws, tmp_path):
    content = b.mlp_safetensors(0, tmp_path)
    response = api_upload(api_ws, "checkpoints", "mlp.safetensors", content, architecture="mlp")
    body = api_made(api_ws, response)
    assert body["format"] == "safetensors"
    assert body["architecture"] == "mlp"
    assert body["name"] == "mlp"  # defaults to the file name's stem
    assert body["parameter_count"] == b.MLP_PARAMETERS
    assert body["default_layers"] == b.MLP_DEFAULT_LAYERS
    assert {"block1", "block1.0", "block1.1", "head", "output"} <= set(body["layers"])
    again = api_upload(api_ws, "checkpoints", "mlp.safetensors", content, architecture="mlp")
    assert again.status_code == 200
    assert again.json()["id"] is None and again.json()["result"]["id"] == body["id"]
    assert Checkpoint.objects.count() == 1


def test_page_dataset_upload_redirects_then_dedups(browser):
    content = b.labelled_npz()
    response = page_upload(browser, "datasets", "animals.npz", content, name="Animals")
    assert not Dataset.objects.exists()
    page = page_checked(browser, response)
    dataset = Dataset.objects.get()
    assert "ready" in page and f'href="/datasets/{dataset.pk}/"' in page
    assert (dataset.name, dataset.n_samples, dataset.modality) == ("Animals", 12, "vector")
    assert dataset.label_names == ["cat", "dog", "emu"]

    again = page_upload(browser, "datasets", "animals.npz", content, name="Again")
    assert again.status_code == 302
    assert again["Location"] == f"/datasets/{dataset.pk}/"
    assert Dataset.objects.count() == 1
    page = browser.get(again["Location"])
    assert "already here" in page.content.decode()


@pytest.mark.parametrize("case", ["zip-class-folders", "csv"])
def test_page_dataset_upload_other_formats(browser, case):
    filename, make, expected = DATASET_CASES[case]
    response = page_upload(browser, "datasets", filename, make())
    page_checked(browser, response)
    dataset = Dataset.objects.get()
    for field, value in expected.items():
        assert getattr(dataset, field) == value, field


def test_page_checkpoint_uploads(browser, mlp_pt, tmp_path):
    response = page_upload(browser, "checkpoints", "mlp.pt", mlp_pt, name="scripted")
    assert not Checkpoint.objects.exists()
    page = page_checked(browser, response)
    scripted = Checkpoint.objects.get(name="scripted")
    assert f'href="/checkpoints/{scripted.pk}/"' in page
    assert scripted.format == "torchscript"
    assert scripted.parameter_count == b.MLP_PARAMETERS

    content = b.mlp_safetensors(1, tmp_path)
    response = page_upload(browser, "checkpoints", "w.safetensors", content, architecture="mlp")
    page_checked(browser, response)
    weights = Checkpoint.objects.get(format="safetensors")
    assert (weights.architecture, weights.default_layers) == ("mlp", b.MLP_DEFAULT_LAYERS)

    again = page_upload(browser, "checkpoints", "mlp.pt", mlp_pt, name="renamed")
    assert again["Location"] == f"/checkpoints/{scripted.pk}/"
    assert "already here" in browser.get(again["Location"]).content.decode()
    assert Checkpoint.objects.count() == 2 and Upload.objects.count() == 2


# --------------------------------------------------------------------------- bad input


def _object_npz() -> bytes:
    objects = np.empty(4, dtype=object)
    objects[:] = [{"a": i} for i in range(4)]
    return b.npz_bytes(x=np.zeros((4, 3), np.float32), extra=objects)


def _ragged_csv() -> bytes:
    return b"id,label,a,b\nr0,x,1,2\nr1,y,3\nr2,x,5,6\n"


BAD_DATASETS = {
    "npz-without-x": ("nox.npz", lambda: b.npz_bytes(y=np.arange(3)), "no 'x' array"),
    "npz-object-array": ("objects.npz", _object_npz, "Python objects"),
    "npz-corrupt": (
        "broken.npz",
        lambda: b"PK\x03\x04" + b"\x00garbage" * 20,
        "not a readable .npz",
    ),
    "zip-corrupt": (
        "broken.zip",
        lambda: b"PK\x03\x04" + b"\x13garbage" * 20,
        "not a readable .zip",
    ),
    "zip-slip": (
        "slip.zip",
        lambda: b.zip_bytes({"cat/a.png": b.png_bytes(1), "../evil.png": b.png_bytes(2)}),
        "unsafe path",
    ),
    "zip-absolute-path": (
        "abs.zip",
        lambda: b.zip_bytes({"/etc/cat/a.png": b.png_bytes(1)}),
        "unsafe path",
    ),
    "zip-outside-class-folder": (
        "flat.zip",
        lambda: b.zip_bytes({"cat/a.png": b.png_bytes(1), "b.png": b.png_bytes(2)}),
        "not in a class folder",
    ),
    "zip-not-an-image": (
        "text.zip",
        lambda: b.zip_bytes({"cat/a.png": b"not a png"}),
        "is not an image this site can read",
    ),
    "csv-ragged": ("ragged.csv", _ragged_csv, "line 3 has 3 fields; the header has 4"),
    "csv-no-numbers": (
        "words.csv",
        lambda: b"id,label,word\na,x,hello\nb,y,bye\n",
        "no numeric feature columns",
    ),
    "unsupported-extension": ("data.txt", lambda: b"1,2,3\n", "unsupported dataset file"),
    "npz-empty": ("empty.npz", lambda: b"", "empty"),
    "zip-empty": ("empty.zip", lambda: b"", "empty"),
    "csv-empty": ("empty.csv", lambda: b"", "empty"),
}

# What the request alone tells (an empty file, an extension no dataset has) is refused at
# once, before anything is stored; every other bad dataset by the worker's check.
DATASETS_REFUSED_AT_ONCE = {"npz-empty", "zip-empty", "csv-empty", "unsupported-extension"}


@pytest.mark.parametrize("case", sorted(set(BAD_DATASETS) - DATASETS_REFUSED_AT_ONCE))
def test_api_bad_dataset_is_refused_without_trace(api_ws, isolated_media, case):
    filename, make, message = BAD_DATASETS[case]
    snapshot = Snapshot(isolated_media)
    response = api_upload(api_ws, "datasets", filename, make())
    assert response.status_code == 202, response.content
    assert message in api_refusal(api_ws, response)
    snapshot.assert_unchanged()


@pytest.mark.parametrize("case", sorted(BAD_DATASETS))
def test_page_bad_dataset_is_refused_without_trace(browser, isolated_media, case):
    filename, make, message = BAD_DATASETS[case]
    snapshot = Snapshot(isolated_media)
    response = page_upload(browser, "datasets", filename, make())
    if case in DATASETS_REFUSED_AT_ONCE:
        assert response.status_code == 400
        text = page_error(response)
        assert 'class="errorlist' in text
        assert not Upload.objects.exists()
    else:
        text = page_refusal(browser, response)
    assert message in text
    snapshot.assert_unchanged()


@pytest.mark.parametrize("case", sorted(DATASETS_REFUSED_AT_ONCE))
def test_api_dataset_refused_at_once_without_trace(api_ws, isolated_media, case):
    filename, make, message = BAD_DATASETS[case]
    snapshot = Snapshot(isolated_media)
    response = api_upload(api_ws, "datasets", filename, make())
    assert response.status_code == 400
    assert message in str(response.json())
    assert not Upload.objects.exists()
    snapshot.assert_unchanged()


def test_api_error_body_for_an_empty_file_has_detail(api_ws):
    response = api_upload(api_ws, "datasets", "empty.npz", b"")
    assert response.status_code == 400
    assert "empty" in api_error(response)


def _bad_checkpoints(tmp_path):
    weights = b.mlp_safetensors(0, tmp_path)
    return {
        "pickle-as-pt": (
            "evil.pt",
            b.malicious_pickle(tmp_path / "pwned"),
            {},
            "not a TorchScript archive",
        ),
        "pickle-in-torchscript-layout": (
            "evil2.pt",
            b.malicious_torchscript_lookalike(tmp_path / "pwned"),
            {},
            "TorchScript",
        ),
        "torch-save-state-dict": ("state.pt", b.torch_save_state_dict(), {}, "pickle"),
        "safetensors-without-architecture": ("w.safetensors", weights, {}, "architecture"),
        "safetensors-wrong-architecture": (
            "w.safetensors",
            weights,
            {"architecture": "small-cnn"},
            "small-cnn",
        ),
        "safetensors-random-bytes": (
            "noise.safetensors",
            np.random.default_rng(0).bytes(4096),
            {"architecture": "mlp"},
            "not a valid .safetensors",
        ),
        "unsupported-extension": ("model.h5", b"hdf5?", {}, "unsupported checkpoint file"),
        "onnx-garbage": ("model.onnx", b"onnx?", {}, "not a valid ONNX model"),
        "hf-archive-without-config": (
            "model.zip",
            b.zip_bytes({"model/weights.bin": b"0"}),
            {},
            "no config.json",
        ),
        "precomputed-without-dataset": ("acts.npy", b"\x93NUMPY", {}, "choose the dataset"),
        "pt-empty": ("empty.pt", b"", {}, "empty"),
    }


# What the declaration shows (the file's extension, the architecture named or not) is refused
# at once, before anything is stored; the rest by the check, in a model host.
CHECKPOINTS_REFUSED_AT_ONCE = {
    "safetensors-without-architecture",
    "unsupported-extension",
    "precomputed-without-dataset",
    "pt-empty",
}

CHECKPOINT_CASES = [
    "pickle-as-pt",
    "pickle-in-torchscript-layout",
    "torch-save-state-dict",
    "safetensors-without-architecture",
    "safetensors-wrong-architecture",
    "safetensors-random-bytes",
    "unsupported-extension",
    "onnx-garbage",
    "hf-archive-without-config",
    "precomputed-without-dataset",
]


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_api_bad_checkpoint_is_refused_without_trace(api_ws, isolated_media, tmp_path, case):
    filename, content, fields, message = _bad_checkpoints(tmp_path)[case]
    snapshot = Snapshot(isolated_media)
    response = api_upload(api_ws, "checkpoints", filename, content, **fields)
    if case in CHECKPOINTS_REFUSED_AT_ONCE:
        assert response.status_code == 400, response.content
        assert message in api_error(response)
        assert not Upload.objects.exists()
    else:
        assert response.status_code == 202, response.content
        assert message in api_refusal(api_ws, response)
    assert not (tmp_path / "pwned").exists()
    snapshot.assert_unchanged()


@pytest.mark.parametrize("case", [*CHECKPOINT_CASES, "pt-empty"])
def test_page_bad_checkpoint_is_refused_without_trace(browser, isolated_media, tmp_path, case):
    filename, content, fields, message = _bad_checkpoints(tmp_path)[case]
    snapshot = Snapshot(isolated_media)
    response = page_upload(browser, "checkpoints", filename, content, **fields)
    if case in CHECKPOINTS_REFUSED_AT_ONCE:
        assert response.status_code == 400
        assert message in page_error(response)
        assert not Upload.objects.exists()
    else:
        assert message in page_refusal(browser, response)
    assert not (tmp_path / "pwned").exists()
    snapshot.assert_unchanged()


def test_torch_save_message_explains_torchscript_and_pickle(api_ws):
    response = api_upload(api_ws, "checkpoints", "state.pth", b.torch_save_state_dict())
    assert response.status_code == 202
    detail = api_refusal(api_ws, response)
    assert "TorchScript" in detail and "pickle" in detail


def test_api_empty_checkpoint_is_refused(api_ws, isolated_media):
    snapshot = Snapshot(isolated_media)
    response = api_upload(api_ws, "checkpoints", "empty.pt", b"")
    assert response.status_code == 400
    assert "empty" in str(response.json())
    snapshot.assert_unchanged()


def test_api_unknown_architecture_is_refused(api_ws, isolated_media, tmp_path):
    snapshot = Snapshot(isolated_media)
    response = api_upload(
        api_ws,
        "checkpoints",
        "w.safetensors",
        b.mlp_safetensors(0, tmp_path),
        architecture="resnet-9000",
    )
    assert response.status_code == 400
    assert "resnet-9000" in str(response.json())
    snapshot.assert_unchanged()


# --------------------------------------------------------------------------- size limit


@pytest.mark.parametrize("via", ["api", "page"])
def test_dataset_over_the_size_limit(api_ws, browser, settings, isolated_media, via):
    settings.REPLENS_MAX_UPLOAD_BYTES = 1000
    content = digits_npz_bytes(50)
    assert len(content) > 1000
    snapshot = Snapshot(isolated_media)
    if via == "api":
        response = api_upload(api_ws, "datasets", "digits.npz", content)
        text = api_error(response)
    else:
        response = page_upload(browser, "datasets", "digits.npz", content)
        text = page_error(response)
    assert response.status_code == 400
    assert "the limit is 1000" in text
    snapshot.assert_unchanged()


@pytest.mark.parametrize("via", ["api", "page"])
def test_checkpoint_over_the_size_limit(api_ws, browser, settings, isolated_media, via):
    settings.REPLENS_MAX_UPLOAD_BYTES = 1000
    content = torchscript_mlp_bytes(seed=3)
    snapshot = Snapshot(isolated_media)
    if via == "api":
        response = api_upload(api_ws, "checkpoints", "mlp.pt", content)
        text = api_error(response)
    else:
        response = page_upload(browser, "checkpoints", "mlp.pt", content)
        text = page_error(response)
    assert response.status_code == 400
    assert "the limit is 1000" in text
    snapshot.assert_unchanged()


def test_file_at_the_size_limit_is_accepted(api_ws, settings):
    content = b.tabular_csv()
    settings.REPLENS_MAX_UPLOAD_BYTES = len(content)
    response = api_upload(api_ws, "datasets", "people.csv", content)
    assert api_made(api_ws, response)["n_samples"] == 8


# --------------------------------------------------------------------------- who may upload


def test_viewer_cannot_upload(django_user_model, workspace, isolated_media):
    from tests.conftest import api_client_for

    viewer = django_user_model.objects.create_user("viewer", password="viewer-pass")
    workspace.memberships.create(user=viewer, role="viewer")
    snapshot = Snapshot(isolated_media)
    response = api_upload(api_client_for(viewer), "datasets", "animals.npz", b.labelled_npz())
    assert response.status_code == 404
    assert not Upload.objects.exists()
    snapshot.assert_unchanged()


# ------------------------------------------------------------- text PostgreSQL refuses


@pytest.mark.parametrize("filename", ["nul-label.csv", "nul-id.npz"])
def test_nul_character_in_labels_is_a_clear_refusal(api_ws, isolated_media, filename):
    """Refused by the parser with the reason, not by PostgreSQL (a DataError would be an
    internal error of the check)."""
    from django.db import DataError, transaction

    if filename.endswith(".csv"):
        content = b"id,label,a\nr0,x\x00y,1\nr1,z,2\n"
    else:
        content = b.npz_bytes(x=np.zeros((3, 2), np.float32), ids=np.array(["a\x00b", "c", "d"]))
    snapshot = Snapshot(isolated_media)
    try:
        with transaction.atomic():
            response = api_upload(api_ws, "datasets", filename, content)
            reason = api_refusal(api_ws, response)
    except DataError:
        reason = None
    assert reason is not None and "NUL character" in reason
    snapshot.assert_unchanged()


def test_the_crafted_pickle_really_runs_code_when_unpickled(tmp_path):
    """Makes the 'marker file does not exist' checks above meaningful."""
    import pickle

    marker = tmp_path / "pwned"
    pickle.loads(b.malicious_pickle(marker)).close()
    assert marker.exists()
