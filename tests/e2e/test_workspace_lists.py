"""A person narrows the workspace page's datasets and checkpoints in a real browser: words
typed, a modality, a format, a seed group; each list is swapped in place (htmx), the page stays."""

from __future__ import annotations

import io

import pytest
from playwright.sync_api import expect

from tests.conftest import checkpoint_from, torchscript_mlp_bytes
from tests.e2e.conftest import ARTIFACTS, sign_in
from tests.webapp.builders import labelled_npz, mlp_safetensors
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_datasets_and_checkpoints_are_found_and_filtered_in_place(
    transactional_db, live_server, owner, workspace, digits, ckpt_a, browser_page, tmp_path
):
    ingest_dataset(workspace, owner, io.BytesIO(labelled_npz()), "a.npz", "Animals", "cats, dogs")
    ckpt_b = checkpoint_from(workspace, owner, torchscript_mlp_bytes(1), "mlp-seed1")
    for checkpoint in (ckpt_a, ckpt_b):
        checkpoint.seed_group = "mlp recipe"
        checkpoint.save()
    ingest_checkpoint(
        workspace,
        owner,
        io.BytesIO(mlp_safetensors(2, tmp_path)),
        "w.safetensors",
        "weights",
        architecture="mlp",
        description="exported from the trainer",
    )
    page = browser_page
    sign_in(page, live_server)
    page.wait_for_load_state("load")  # htmx is listening
    page.evaluate("window.stayed = true")  # gone if the page reloads
    datasets = page.locator("#datasets-list tbody tr")
    checkpoints = page.locator("#checkpoints-list tbody tr")
    expect(datasets).to_have_count(2)
    expect(checkpoints).to_have_count(3)

    # Datasets: by a word of the description as it is typed, then by modality.
    page.fill("#datasets-list input[name='datasets-q']", "dogs")
    expect(datasets).to_have_count(1)
    expect(datasets.first.locator("td").first).to_have_text("Animals")
    page.fill("#datasets-list input[name='datasets-q']", "")
    expect(datasets).to_have_count(2)
    page.select_option("#datasets-list select[name='datasets-modality']", "image")
    expect(datasets).to_have_count(1)
    expect(datasets.first.locator("td").first).to_have_text("Digits")
    expect(page.locator("#datasets-list h2")).to_contain_text("1")

    # Checkpoints: by format, by seed group, and a word within the group.
    page.select_option("#checkpoints-list select[name='checkpoints-format']", "safetensors")
    expect(checkpoints).to_have_count(1)
    expect(checkpoints.first.locator("td").first).to_have_text("weights")
    page.select_option("#checkpoints-list select[name='checkpoints-format']", "")
    page.select_option("#checkpoints-list select[name='checkpoints-seed_group']", "mlp recipe")
    expect(checkpoints).to_have_count(2)
    assert sorted(checkpoints.locator("td:first-child").all_inner_texts()) == [
        "mlp-seed0",
        "mlp-seed1",
    ]
    page.fill("#checkpoints-list input[name='checkpoints-q']", "seed1")
    expect(checkpoints).to_have_count(1)
    expect(checkpoints.first.locator("td").first).to_have_text("mlp-seed1")
    page.fill("#checkpoints-list input[name='checkpoints-q']", "trainer")
    expect(checkpoints).to_have_count(1)
    expect(checkpoints.first).to_contain_text("No checkpoint matches.")
    # The datasets list kept its own filter; nothing reloaded the page.
    expect(datasets).to_have_count(1)
    assert page.evaluate("window.stayed") is True
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "workspace-lists.png"), full_page=True)
