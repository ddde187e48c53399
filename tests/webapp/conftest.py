import pytest


@pytest.fixture(autouse=True)
def _media(isolated_media):
    return isolated_media
