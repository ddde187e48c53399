"""Which code computed a number: the package version and, where known, the commit.

``code_version()`` is ``<version>+g<12 hex digits of the commit>`` (PEP 440's local label),
with ``.dirty`` when a checkout had uncommitted changes to tracked files, or the bare version
where the commit is unknown. The commit comes from ``REPLENS_COMMIT`` (set when an image is
built: ``docker/Dockerfile``), else from the git checkout the code runs from.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from django.conf import settings

import analysis

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def code_version() -> str:
    commit, dirty = settings.REPLENS_COMMIT, False
    if not commit:
        commit, dirty = _checkout()
    if not commit:
        return analysis.__version__
    return f"{analysis.__version__}+g{commit[:12]}" + (".dirty" if dirty else "")


def _git(*args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10, check=True
    )
    return result.stdout.strip()


def _checkout() -> tuple[str, bool]:
    """The commit of the git checkout holding this code and whether tracked files differ
    from it; ``("", False)`` outside a checkout (or without git)."""
    try:
        return _git("rev-parse", "HEAD"), bool(
            _git("status", "--porcelain", "--untracked-files=no")
        )
    except (OSError, subprocess.SubprocessError):
        return "", False
