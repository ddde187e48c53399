from pathlib import Path

import pytest
from django.core.management import call_command


@pytest.fixture(autouse=True)
def _media(isolated_media):
    return isolated_media


@pytest.fixture
def collected(settings, tmp_path) -> Path:
    """The static files as collectstatic writes them for a server (hashed, compressed), in a
    folder of the test's own, which WhiteNoise serves to clients made after this fixture."""
    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", interactive=False, verbosity=0)
    return settings.STATIC_ROOT
