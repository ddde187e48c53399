"""requirements.lock pins every dependency, and every install path uses it."""

from __future__ import annotations

import re
import runpy
import tomllib

from tests.conftest import ROOT

requirements = runpy.run_path(str(ROOT / "docker" / "requirements.py"))["requirements"]
"""docker/requirements.py: the base dependencies and those of the named groups."""


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;@]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not an exact pin"
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_every_declared_dependency_is_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = list(project["optional-dependencies"])
    client = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["project"]
    declared = requirements(groups) + client["dependencies"]  # every group, base included
    missing = {_name(r) for r in declared} - set(_locked())
    assert not missing, f"not in requirements.lock (run make lock): {sorted(missing)}"
    assert _locked()["torch"] == "2.13.0"  # no local build tag: the CUDA image takes it too


def test_make_and_the_images_install_with_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert makefile.count("-c requirements.lock") == 3  # the project, its tests, the client
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    # web, worker and worker-cuda: each its dependency group (docker/requirements.py)
    assert dockerfile.count("| pip install -c requirements.lock -r /dev/stdin") == 3
