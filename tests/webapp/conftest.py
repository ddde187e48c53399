from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Blobs of each test go to their own folder, so 'nothing left behind' can be counted;
    a fast password hasher keeps the persona fixtures cheap."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings.MEDIA_ROOT


@pytest.fixture
def digits(workspace, owner):
    """60 real 8×8 digits (an image dataset with thumbnails) in the owner's workspace."""
    import io

    from tests.conftest import digits_npz_bytes
    from webapp.catalog.ingest import ingest_dataset

    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(60)), "digits.npz", "Digits"
    )
    return dataset


def _checkpoint(workspace, owner, seed: int, name: str):
    import io

    from tests.conftest import torchscript_mlp_bytes
    from webapp.catalog.ingest import ingest_checkpoint

    checkpoint, _ = ingest_checkpoint(
        workspace, owner, io.BytesIO(torchscript_mlp_bytes(seed)), f"{name}.pt", name
    )
    return checkpoint


@pytest.fixture
def ckpt_a(workspace, owner):
    return _checkpoint(workspace, owner, 0, "mlp-seed0")


@pytest.fixture
def ckpt_b(workspace, owner):
    return _checkpoint(workspace, owner, 1, "mlp-seed1")


def run_with_dependencies(run):
    """Play the worker in-process: every dependency, then the run itself."""
    from workers.tasks import execute_run

    for dependency in run.depends_on.order_by("pk"):
        execute_run(dependency.pk)
    execute_run(run.pk)
    run.refresh_from_db()
    return run
