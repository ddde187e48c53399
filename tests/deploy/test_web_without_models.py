"""The web process runs no model and needs no model runtime: every module it loads imports with
torch, transformers, ONNX, UMAP and scikit-learn unavailable, and its API schema (every view
and serializer) and probe-family lists build without them. This is what lets the web image
install only the ``web`` dependency group (docker/Dockerfile, tests/deploy/test_docker.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BLOCKED = (
    "torch",
    "transformers",
    "onnx",
    "onnxruntime",
    "umap",
    "pynndescent",
    "numba",
    "sklearn",
)

# Commands a web server never runs: they build the demo's models, which needs the worker group.
WORKER_ONLY = ("webapp.runs.management.commands.build_demo", "webapp.runs.management.commands.demo")

SCRIPT = f"""
import importlib, pkgutil, sys

class Unavailable:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the web image)")

sys.meta_path.insert(0, Unavailable())

import django
django.setup()
from django.urls import get_resolver
get_resolver().resolve("/")
for module in pkgutil.walk_packages(["webapp"], "webapp."):
    if ".migrations." not in module.name and module.name not in {WORKER_ONLY!r}:
        importlib.import_module(module.name)

from drf_spectacular.generators import SchemaGenerator
schema = SchemaGenerator().get_schema(request=None, public=True)
print(len(schema["paths"]), "paths;", sorted(m for m in {BLOCKED!r} if m in sys.modules))
"""


def test_the_web_process_imports_and_describes_its_api_without_model_runtimes():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    paths, loaded = done.stdout.strip().split(" paths; ")
    assert int(paths) > 20 and loaded == "[]"


def test_the_check_notices_a_model_runtime_in_the_web_process(tmp_path):
    """The blocker works: a module that imports torch fails under it."""
    (tmp_path / "uses_torch.py").write_text("import torch\n")
    script = SCRIPT.split("import django", 1)[0] + "import uses_torch\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "not in the web image" in done.stderr
