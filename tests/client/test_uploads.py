"""Chunked, resumable uploads through the client against the real server: several chunks,
deduplication without sending a byte, resuming after dropped connections, 409s and 5xx, and
clear errors for corrupted or mismatched files."""

from __future__ import annotations

import pytest
import replens_client.client
import requests
from replens_client import Client, ReplensError, UploadFailed

from tests.client.conftest import CHUNK, install_faults, sha256_of, stored_sha256
from webapp.catalog.models import Checkpoint, Dataset


def test_dataset_goes_up_in_several_chunks(replens, digits_file):
    faults = install_faults(replens)  # no faults: just counts the requests
    seen = []
    dataset = replens.upload_dataset(
        digits_file, "lab", name="digits", description="all of them", progress=_record(seen)
    )

    size = digits_file.stat().st_size
    chunks = -(-size // CHUNK)
    assert chunks >= 5
    assert faults.count("PUT") == faults.count("PUT", 200) == chunks
    assert dataset.created and dataset.bytes_sent == size and dataset.upload_id
    assert dataset["name"] == "digits" and dataset["description"] == "all of them"
    assert dataset["n_samples"] == 1797 and dataset["workspace"] == "lab"
    assert dataset["sha256"] == sha256_of(digits_file) == stored_sha256(dataset["sha256"])
    assert Dataset.objects.get(pk=dataset["id"]).filename == "digits.npz"

    hashed = [done for phase, done, _ in seen if phase == "hash"]
    sent = [done for phase, done, _ in seen if phase == "send"]
    assert hashed[-1] == size and sent == sorted(sent) and sent[-1] == size
    assert len(set(sent)) == chunks + 1  # 0, then once per acknowledged chunk
    assert all(total == size for _, _, total in seen)


def test_checkpoint_goes_up_in_chunks_with_its_step(replens, mlp_file):
    faults = install_faults(replens)
    checkpoint = replens.upload_checkpoint(
        mlp_file, "lab", name="mlp wide", seed_group="wide", step=1200
    )
    assert faults.count("PUT", 200) == -(-mlp_file.stat().st_size // CHUNK) > 5
    assert checkpoint.created
    assert checkpoint["step"] == 1200 and checkpoint["seed_group"] == "wide"
    assert checkpoint["name"] == "mlp wide" and checkpoint["format"] == "torchscript"
    assert "block1" in checkpoint["layers"]
    assert checkpoint["sha256"] == sha256_of(mlp_file) == stored_sha256(checkpoint["sha256"])


def test_server_suggested_chunk_size_is_used_without_an_override(server, token, mlp_file):
    client = Client(server, token)
    faults = install_faults(client)
    checkpoint = client.upload_checkpoint(mlp_file, "lab")
    assert checkpoint.created
    assert faults.count("PUT") == 1  # under the server's 8 MiB suggestion: one chunk


def test_log_checkpoint_names_the_step_and_skips_off_steps(replens, small_mlp_file):
    assert replens.log_checkpoint(small_mlp_file, "lab", step=150, every=100) is None
    logged = replens.log_checkpoint(small_mlp_file, "lab", step=200, seed_group="run-7", every=100)
    assert logged["name"] == "small-mlp-step200"
    assert logged["step"] == 200 and logged["seed_group"] == "run-7"
    assert Checkpoint.objects.count() == 1


def test_second_upload_sends_nothing(replens, digits_file, mlp_file):
    first = replens.upload_dataset(digits_file, "lab")
    first_ckpt = replens.upload_checkpoint(mlp_file, "lab")
    faults = install_faults(replens)
    puts = []
    replens.session.hooks["response"].append(
        lambda response, **_: puts.append(response) if response.request.method == "PUT" else None
    )

    again = replens.upload_dataset(digits_file, "lab", name="another name")
    again_ckpt = replens.upload_checkpoint(mlp_file, "lab")

    assert not again.created and not again_ckpt.created
    assert again["id"] == first["id"] and again_ckpt["id"] == first_ckpt["id"]
    assert again.bytes_sent == again_ckpt.bytes_sent == 0 and again.upload_id is None
    assert puts == [] and faults.count("PUT") == 0
    assert faults.count("POST") == 2  # the declarations, answered at once
    assert Dataset.objects.count() == Checkpoint.objects.count() == 1


def test_one_shot_upload_then_chunked_is_deduplicated(replens, server, token, small_digits_file):
    with requests.Session() as http:
        http.headers["Authorization"] = f"Token {token}"
        response = http.post(
            f"{server}/api/v1/datasets/",
            data={"workspace": "lab"},
            files={"file": ("d.npz", small_digits_file.read_bytes())},
        )
    assert response.status_code == 201, response.text
    again = replens.upload_dataset(small_digits_file, "lab")
    assert not again.created and again["id"] == response.json()["id"]


@pytest.mark.parametrize("fault", ["drop-before", "drop-after", "503", "429"])
def test_upload_resumes_from_the_servers_offset(replens, mlp_file, fault):
    faults = install_faults(replens, {3: fault})
    checkpoint = replens.upload_checkpoint(mlp_file, "lab", step=3)

    chunks = -(-mlp_file.stat().st_size // CHUNK)
    assert checkpoint.created
    assert checkpoint["sha256"] == sha256_of(mlp_file) == stored_sha256(checkpoint["sha256"])
    # After the failure the client asked where the server stood, then went on from there.
    gets = [i for i, (m, path, _) in enumerate(faults.log) if m == "GET" and "/uploads/" in path]
    assert len(gets) == 1
    assert faults.log[gets[0] - 1][2] in (None, 503, 429)  # right after the failed PUT
    if fault == "drop-after":  # the 3rd chunk arrived (its answer was lost): not sent again
        assert faults.count("PUT") == chunks and faults.count("PUT", 200) == chunks - 1
    else:  # the 3rd chunk never arrived: sent again
        assert faults.count("PUT") == chunks + 1 and faults.count("PUT", 200) == chunks


def test_upload_resumes_from_the_offset_a_409_names(replens, mlp_file):
    faults = install_faults(replens, {2: "duplicate"})
    checkpoint = replens.upload_checkpoint(mlp_file, "lab")
    assert checkpoint.created
    assert faults.count("PUT", 409) == 1
    assert faults.count("PUT", 200) == -(-mlp_file.stat().st_size // CHUNK)
    assert checkpoint["sha256"] == sha256_of(mlp_file) == stored_sha256(checkpoint["sha256"])


def test_retries_are_bounded_and_the_upload_is_aborted(replens, mlp_file, server, token):
    faults = install_faults(replens, always="drop-before")
    with pytest.raises(UploadFailed) as caught:
        replens.upload_checkpoint(mlp_file, "lab")
    assert "gave up" in str(caught.value) and "connection reset" in str(caught.value)
    assert faults.count("PUT") == replens.retries + 1
    # The client discarded what it had started: the upload is gone from the server.
    with requests.Session() as http:
        http.headers["Authorization"] = f"Token {token}"
        gone = http.get(f"{server}/api/v1/uploads/{caught.value.upload_id}/")
    assert gone.status_code == 404
    assert Checkpoint.objects.count() == 0


def test_chunk_corrupted_on_the_way_is_a_clear_error(replens, mlp_file):
    install_faults(replens, {2: "corrupt"})
    with pytest.raises(UploadFailed) as caught:
        replens.upload_checkpoint(mlp_file, "lab")
    error = caught.value
    assert error.status == 400 and error.discarded
    assert "sha256" in str(error) and "corrupted" in str(error)
    assert Checkpoint.objects.count() == 0

    # Nothing is left in the way of a clean upload of the same file.
    install_faults(replens)
    assert replens.upload_checkpoint(mlp_file, "lab").created


def test_declared_sha256_that_does_not_match_is_refused(replens, digits_file, monkeypatch):
    real = replens_client.client._digest
    monkeypatch.setattr(
        replens_client.client, "_digest", lambda f, progress: (real(f, progress)[0], "0" * 64)
    )
    with pytest.raises(UploadFailed) as caught:
        replens.upload_dataset(digits_file, "lab")
    assert caught.value.status == 400
    assert "0" * 64 in str(caught.value) and sha256_of(digits_file) in str(caught.value)
    assert Dataset.objects.count() == 0


def test_invalid_file_is_refused_with_the_servers_message(replens, tmp_path):
    bogus = tmp_path / "notes.npz"
    bogus.write_bytes(b"these are not arrays\n" * 5000)
    with pytest.raises(UploadFailed) as caught:
        replens.upload_dataset(bogus, "lab")
    assert caught.value.status == 400 and caught.value.discarded
    assert "not an .npz archive" in str(caught.value)
    assert Dataset.objects.count() == 0


def test_declaration_errors_carry_the_servers_detail(replens, small_digits_file, tmp_path):
    with pytest.raises(ReplensError) as unknown:
        replens.upload_dataset(small_digits_file, "no-such-workspace")
    assert unknown.value.status == 404 and "Workspace" in str(unknown.value)

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"\0" * 100)
    with pytest.raises(ReplensError) as bare:
        replens.upload_checkpoint(weights, "lab")
    assert bare.value.status == 400 and "architecture" in str(bare.value)

    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(UploadFailed, match="empty"):
        replens.upload_dataset(empty, "lab")


def test_bad_token_is_a_clear_error(server, small_digits_file):
    with pytest.raises(ReplensError) as caught:
        Client(server, "not-a-token").upload_dataset(small_digits_file, "lab")
    assert caught.value.status == 401 and "token" in str(caught.value).lower()


def test_file_object_upload(replens, small_digits_file):
    with open(small_digits_file, "rb") as f:
        dataset = replens.upload_dataset(f, "lab")
    assert dataset.created and dataset["filename"] == "digits-300.npz"


def _record(seen: list):
    return lambda phase, done, total: seen.append((phase, done, total))


def test_precomputed_activations_and_a_model_directory_go_up_in_chunks(
    replens, small_digits_file, tmp_path
):
    """The formats of issue 7 through the client: precomputed activations attached to a
    dataset (rows shuffled, matched by id) and a zipped Hugging Face directory."""
    import io

    import numpy as np

    from tests.formats import tiny_bert_dir, zip_dir

    dataset = replens.upload_dataset(small_digits_file, "lab")
    ids = np.array([f"digit-{i:04d}" for i in range(300)])
    rng = np.random.default_rng(0)
    order = rng.permutation(300)
    acts = rng.standard_normal((300, 32)).astype(np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, penultimate=acts[order], ids=ids[order])
    path = tmp_path / "acts.npz"
    path.write_bytes(buffer.getvalue())
    checkpoint = replens.upload_checkpoint(path, "lab", name="elsewhere", dataset=dataset["id"])
    assert checkpoint["format"] == "precomputed" and checkpoint["dataset"] == dataset["id"]
    assert checkpoint["layers"] == ["penultimate"]

    model = tmp_path / "bert.zip"
    model.write_bytes(zip_dir(tiny_bert_dir(tmp_path / "bert")))
    checkpoint = replens.upload_checkpoint(model, "lab", name="bert")
    assert checkpoint["format"] == "huggingface"
    assert checkpoint["layers"] == ["hidden.0", "hidden.1", "hidden.2"]
    assert Checkpoint.objects.get(pk=checkpoint["id"]).filename == "bert.zip"
