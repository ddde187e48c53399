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
    """60 real 8×8 digits in the owner's workspace."""
    import io

    from tests.conftest import digits_npz_bytes
    from webapp.catalog.ingest import ingest_dataset

    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(60)), "digits.npz", "Digits"
    )
    return dataset


def checkpoint_from(workspace, owner, content: bytes, name: str):
    import io

    from webapp.catalog.ingest import ingest_checkpoint

    checkpoint, _ = ingest_checkpoint(workspace, owner, io.BytesIO(content), f"{name}.pt", name)
    return checkpoint


@pytest.fixture
def ckpt_a(workspace, owner):
    from tests.conftest import torchscript_mlp_bytes

    return checkpoint_from(workspace, owner, torchscript_mlp_bytes(0), "mlp-seed0")


@pytest.fixture
def ckpt_b(workspace, owner):
    from tests.conftest import torchscript_mlp_bytes

    return checkpoint_from(workspace, owner, torchscript_mlp_bytes(1), "mlp-seed1")
