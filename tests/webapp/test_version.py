"""Provenance names the code: the package version and the commit, from the image's
REPLENS_COMMIT or the checkout; a run records the code of the worker that computes it."""

from __future__ import annotations

import subprocess

import pytest

import analysis
from webapp import version
from webapp.runs.models import Run


@pytest.fixture(autouse=True)
def _fresh():
    version.code_version.cache_clear()
    yield
    version.code_version.cache_clear()


def test_a_checkout_names_its_commit(settings):
    settings.REPLENS_COMMIT = ""
    head = subprocess.run(
        ["git", "-C", str(version.ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    if not head:
        pytest.skip("not a git checkout")
    assert version.code_version().startswith(f"{analysis.__version__}+g{head[:12]}")


def test_an_image_names_the_commit_it_was_built_from(settings):
    settings.REPLENS_COMMIT = "0123456789abcdef0123456789abcdef01234567"
    assert version.code_version() == f"{analysis.__version__}+g0123456789ab"


def test_the_worker_that_computes_a_run_names_its_code(db, settings, digits, ckpt_a):
    from webapp.runs.submit import request_extraction

    settings.REPLENS_COMMIT = "a" * 40
    owner = ckpt_a.created_by
    run, _ = request_extraction(owner, ckpt_a, digits)
    assert run.code_version == f"{analysis.__version__}+gaaaaaaaaaaaa"
    version.code_version.cache_clear()
    settings.REPLENS_COMMIT = "b" * 40  # the worker runs newer code than the web node
    assert run.claim("task", "worker@host")
    assert Run.objects.get(pk=run.pk).code_version == f"{analysis.__version__}+gbbbbbbbbbbbb"
    assert len(run.code_version) <= Run._meta.get_field("code_version").max_length
