"""analysis/ is a pure library: no Django, Celery or web-app imports, statically or at runtime."""

from __future__ import annotations

import ast
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
    "analysis.cka",
    "analysis.extraction",
    "analysis.checkpoints",
    "analysis.datasets",
]


def imported_modules(source: str, filename: str = "<string>") -> set[str]:
    """Every absolute module name a source file imports, including ``importlib.import_module``
    and ``__import__`` calls with a literal name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if called in ("import_module", "__import__") and isinstance(first, ast.Constant):
                if isinstance(first.value, str):
                    names.add(first.value)
    return names


def forbidden_in(names: set[str]) -> set[str]:
    return {name for name in names if name.split(".")[0] in FORBIDDEN}


def analysis_files() -> list[Path]:
    return sorted(ANALYSIS.rglob("*.py"))


def test_checker_detects_forbidden_imports():
    source = (
        "import os\n"
        "import django.db\n"
        "from celery import shared_task\n"
        "from . import cka\n"
        "def f():\n"
        "    from webapp.catalog import models\n"
        "    importlib.import_module('rest_framework')\n"
        "    __import__('kombu')\n"
        "import djangoish\n"
    )
    assert forbidden_in(imported_modules(source)) == {
        "django.db",
        "celery",
        "webapp.catalog",
        "rest_framework",
        "kombu",
    }


def test_analysis_files_found():
    names = {p.name for p in analysis_files()}
    assert {"__init__.py", "cka.py", "checkpoints.py", "extraction.py", "datasets.py"} <= names


@pytest.mark.parametrize("path", analysis_files(), ids=lambda p: str(p.relative_to(ANALYSIS)))
def test_no_framework_imports(path):
    bad = forbidden_in(imported_modules(path.read_text(encoding="utf-8"), str(path)))
    assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


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
        if p.name != "__init__.py"
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
