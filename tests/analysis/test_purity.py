"""analysis/ is a pure library at runtime too: importing every module loads no Django, Celery
or web-app module. (Its imports are checked statically by import-linter in ``make lint``:
pyproject.toml's contracts.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANALYSIS = REPO / "analysis"
FORBIDDEN = {"django", "celery", "rest_framework", "kombu", "webapp", "workers"}
REQUIRED_MODULES = [
    "analysis.measures.cka",
    "analysis.models.extraction",
    "analysis.models.checkpoints",
    "analysis.data.datasets",
]


def analysis_files() -> list[Path]:
    return sorted(ANALYSIS.rglob("*.py"))


def _import_in_subprocess(modules: list[str]) -> dict:
    code = (
        "import importlib, json, sys\n"
        "errors = {}\n"
        f"for name in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as err:\n"
        "        errors[name] = repr(err)\n"
        f"forbidden = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(FORBIDDEN)!r})\n"
        "print(json.dumps({'errors': errors, 'forbidden': forbidden}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runtime_import() -> dict:
    every_module = [
        "analysis." + ".".join(p.relative_to(ANALYSIS).with_suffix("").parts)
        for p in analysis_files()
        if p.name not in ("__init__.py", "__main__.py")  # __main__ runs a program
    ]
    return _import_in_subprocess(sorted(set(REQUIRED_MODULES) | set(every_module)))


def test_analysis_modules_import(runtime_import):
    assert runtime_import["errors"] == {}


def test_runtime_check_detects_framework_imports():
    result = _import_in_subprocess(["json", "django.conf"])
    assert result["errors"] == {}
    assert "django" in result["forbidden"]


def test_importing_analysis_loads_no_framework(runtime_import):
    assert runtime_import["forbidden"] == []
    assert "django" not in runtime_import["forbidden"]
    assert "celery" not in runtime_import["forbidden"]
