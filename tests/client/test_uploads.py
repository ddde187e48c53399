"""Chunked, resumable uploads through the client against the real server: several chunks,
deduplication without sending a byte, resuming after dropped connections, 409s and 5xx, the
wait while a worker checks the file (played by the ``checker`` thread), and clear errors for
corrupted, mismatched or invalid files, of which nothing is kept but the reason."""

from __future__ import annotations

import pytest
import replens_client.client
import requests
from replens_client import Client, ReplensError, UploadFailed, WaitTimeout

from tests.client.conftest import (
    CHUNK,
    install_faults,
    sha256_of,
    stored_chunks,
    stored_sha256,
)
from webapp.catalog.models import Blob, Checkpoint, Dataset, Upload

PHASES = ("hash", "send", "check")


def complete_at(faults) -> int:
    """Where in the adapter's log the upload was completed (answered 202: being checked)."""
    (at,) = [i for i, (m, path, _) in enumerate(faults.log) if path.endswith("/complete/")]
    assert faults.log[at][0] == "POST" and faults.log[at][2] == 202
    return at


def assert_refused_and_nothing_kept(error: UploadFailed) -> Upload:
    """A file the worker's check refused: the client's error carries the upload's state
    (``failed``, the reason), and nothing but that reason is left on the server."""
    assert error.status is None and error.discarded and error.upload_id
    state = error.data
    assert state["id"] == error.upload_id and state["state"] == "failed"
    assert state["result"] is None and state["position"] is None and state["error"]
    assert str(error) == f"{state['filename']} was refused: {state['error']}"
    upload = Upload.objects.get(pk=error.upload_id)
    assert upload.state == Upload.State.FAILED and upload.error == state["error"]
    assert upload.result_id is None and stored_chunks(upload.pk) == []
    assert Dataset.objects.count() == Checkpoint.objects.count() == Blob.objects.count() == 0
    return upload


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
    checks = [(done, total) for phase, done, total in seen if phase == "check"]
    assert hashed[-1] == size and sent == sorted(sent) and sent[-1] == size
    assert len(set(sent)) == chunks + 1  # 0, then once per acknowledged chunk
    assert all(total == size for phase, _, total in seen if phase != "check")
    # Then the wait for the worker's check: (0, 1) while it is checked, (1, 1) once done.
    assert checks[-1] == (1, 1) and set(checks) <= {(0, 1), (1, 1)}
    order = [PHASES.index(phase) for phase, _, _ in seen]
    assert order == sorted(order) and set(order) == {0, 1, 2}
    # The complete was answered at once (202, being checked); the client polled after it.
    assert faults.count("GET") >= 1 and complete_at(faults) < len(faults.log) - 1
    upload = Upload.objects.get(pk=dataset.upload_id)
    assert upload.state == Upload.State.DONE and upload.result_id == dataset["id"]
    assert stored_chunks(upload.pk) == []  # assembled into the dataset's blob, then deleted


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


def test_one_shot_upload_then_chunked_is_deduplicated(
    replens, server, token, small_digits_file, held_checks
):
    def one_shot(http: requests.Session) -> requests.Response:
        return http.post(
            f"{server}/api/v1/datasets/",
            data={"workspace": "lab"},
            files={"file": ("d.npz", small_digits_file.read_bytes())},
        )

    with requests.Session() as http:
        http.headers["Authorization"] = f"Token {token}"
        response = one_shot(http)
        assert response.status_code == 202, response.text  # stored, not parsed: to be checked
        accepted = response.json()
        assert accepted["state"] == "checking" and accepted["kind"] == "dataset"
        assert accepted["filename"] == "d.npz" and accepted["result"] is None
        assert accepted["offset"] == accepted["size"] == small_digits_file.stat().st_size
        assert accepted["position"] == 1 and Dataset.objects.count() == 0

        # While it waits for its check, the client's upload of the same bytes sends nothing
        # and names that upload.
        faults = install_faults(replens)
        pending = replens.upload_dataset(small_digits_file, "lab", wait=False)
        assert not pending.created and pending.bytes_sent == 0
        assert pending.upload_id == pending["id"] == accepted["id"]
        assert pending["state"] == "checking" and faults.count("PUT") == 0

        held_checks.release()
        dataset = replens.wait_upload(accepted["id"], poll=0.1, timeout=60)
        assert dataset["filename"] == "d.npz" and dataset["n_samples"] == 300

        again = replens.upload_dataset(small_digits_file, "lab")
        assert not again.created and again["id"] == dataset["id"]
        assert again.upload_id is None and again.bytes_sent == 0 and faults.count("PUT") == 0

        # The one-shot form again: answered at once with the dataset, nothing to check.
        response = one_shot(http)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["id"] is None and answer["state"] == "done"
        assert answer["kind"] == "dataset" and answer["result"]["id"] == dataset["id"]
    assert Dataset.objects.count() == 1 and Upload.objects.count() == 1


@pytest.mark.parametrize("fault", ["drop-before", "drop-after", "503", "429"])
def test_upload_resumes_from_the_servers_offset(replens, mlp_file, fault):
    faults = install_faults(replens, {3: fault})
    checkpoint = replens.upload_checkpoint(mlp_file, "lab", step=3)

    chunks = -(-mlp_file.stat().st_size // CHUNK)
    assert checkpoint.created
    assert checkpoint["sha256"] == sha256_of(mlp_file) == stored_sha256(checkpoint["sha256"])
    # After the failure the client asked where the server stood, then went on from there;
    # once every byte was in, it polled the upload while a worker checked it.
    complete = complete_at(faults)
    log = faults.log[:complete]
    gets = [i for i, (m, path, _) in enumerate(log) if m == "GET" and "/uploads/" in path]
    assert len(gets) == 1
    polls = faults.log[complete + 1 :]
    assert polls and all(m == "GET" and "/uploads/" in path for m, path, _ in polls)
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
    # Every chunk was accepted; the worker's sha256 check refused the whole file.
    refused = assert_refused_and_nothing_kept(error)
    assert str(error).startswith("mlp.pt was refused: the received bytes have sha256 ")
    assert f"not the declared {sha256_of(mlp_file)}" in str(error) and "corrupted" in str(error)
    assert refused.received == refused.size == mlp_file.stat().st_size

    # Nothing is left in the way of a clean upload of the same file.
    install_faults(replens)
    again = replens.upload_checkpoint(mlp_file, "lab")
    assert again.created and again.upload_id != error.upload_id
    assert again["sha256"] == sha256_of(mlp_file) == stored_sha256(again["sha256"])
    assert Upload.objects.get(pk=error.upload_id).state == Upload.State.FAILED


def test_declared_sha256_that_does_not_match_is_refused(replens, digits_file, monkeypatch):
    real = replens_client.client._digest
    monkeypatch.setattr(
        replens_client.client, "_digest", lambda f, progress: (real(f, progress)[0], "0" * 64)
    )
    with pytest.raises(UploadFailed) as caught:
        replens.upload_dataset(digits_file, "lab")
    assert_refused_and_nothing_kept(caught.value)
    assert str(caught.value) == (
        f"digits.npz was refused: the received bytes have sha256 {sha256_of(digits_file)}, "
        f"not the declared {'0' * 64}: the file was corrupted on the way; upload it again"
    )


def test_invalid_file_is_refused_with_the_servers_message(replens, tmp_path):
    bogus = tmp_path / "notes.npz"
    bogus.write_bytes(b"these are not arrays\n" * 5000)
    with pytest.raises(UploadFailed) as caught:
        replens.upload_dataset(bogus, "lab")
    refused = assert_refused_and_nothing_kept(caught.value)
    assert str(caught.value).startswith("notes.npz was refused: not an .npz archive")
    assert replens.upload_status(refused.pk)["state"] == "failed"

    # Completing it again names the reason it was refused.
    response = replens.session.post(f"{replens.api}uploads/{refused.pk}/complete/", json={})
    assert response.status_code == 400
    assert response.json()["detail"] == f"this upload was refused: {refused.error}"

    # A refused file is no duplicate: sent again, it is checked (and refused) again, and
    # wait_upload raises the same reason.
    pending = replens.upload_dataset(bogus, "lab", wait=False)
    assert pending.created and pending.upload_id != str(refused.pk)
    with pytest.raises(UploadFailed) as again:
        replens.wait_upload(pending.upload_id, poll=0.1, timeout=60)
    assert assert_refused_and_nothing_kept(again.value).error == refused.error


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


def test_wait_false_returns_the_upload_being_checked_then_wait_upload_gets_it(
    replens, mlp_file, held_checks
):
    faults = install_faults(replens)
    size = mlp_file.stat().st_size
    pending = replens.log_checkpoint(mlp_file, "lab", step=500, every=100, wait=False)

    # Every byte is sent and the upload is complete: the training loop goes on at once.
    assert pending.created and pending.bytes_sent == size
    assert pending.upload_id == pending["id"] and pending["kind"] == "checkpoint"
    assert pending["state"] == "checking" and pending["filename"] == "mlp.pt"
    assert pending["offset"] == pending["size"] == size and pending["position"] == 1
    assert pending["result"] is None and not pending["error"]
    assert faults.count("PUT", 200) == -(-size // CHUNK) and faults.count("GET") == 0
    assert Checkpoint.objects.count() == 0

    status = replens.upload_status(pending.upload_id)
    assert status["state"] == "checking" and status["position"] == 1
    with pytest.raises(WaitTimeout) as late:
        replens.wait_upload(pending.upload_id, poll=0.05, timeout=0.3)
    assert late.value.run["state"] == "checking" and isinstance(late.value, TimeoutError)
    assert "upload mlp.pt is still checking" in str(late.value)

    # The same bytes while they are checked: nothing sent, the same upload named.
    same = replens.upload_checkpoint(mlp_file, "lab", wait=False)
    assert not same.created and same.bytes_sent == 0 and same.upload_id == pending.upload_id
    assert same["state"] == "checking" and faults.count("PUT") == -(-size // CHUNK)

    held_checks.release()
    seen = []
    checkpoint = replens.wait_upload(
        pending.upload_id, poll=0.1, timeout=60, progress=_record(seen)
    )
    assert checkpoint["name"] == "mlp-step500" and checkpoint["step"] == 500
    assert checkpoint["sha256"] == sha256_of(mlp_file) == stored_sha256(checkpoint["sha256"])
    assert Checkpoint.objects.get().pk == checkpoint["id"]
    assert seen[-1] == ("check", 1, 1) and set(seen) <= {("check", 0, 1), ("check", 1, 1)}

    done = replens.upload_status(pending.upload_id)
    assert done["state"] == "done" and done["position"] is None
    assert done["result"]["id"] == checkpoint["id"] and stored_chunks(pending.upload_id) == []
    # Waiting for a finished upload answers at once, with the same checkpoint.
    assert replens.wait_upload(pending.upload_id, timeout=0) == checkpoint


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
