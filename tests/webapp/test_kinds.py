"""The run-kind specs say what the code does: each entry point is the analysis function its
runner calls (in a model host for hosted kinds), and each page exists."""

from __future__ import annotations

from importlib import import_module

import pytest
from django.urls import reverse

from analysis.host import tasks as hosted
from webapp.runs.kinds import KINDS
from webapp.runs.models import Run
from workers.tasks import RUNNERS


def called_by(function) -> list:
    """The objects ``function`` names, and those named by the functions of its own module it
    calls, transitively (what it may call)."""
    seen, todo, found = set(), [function], []
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        for name in f.__code__.co_names:
            obj = f.__globals__.get(name)
            found.append(obj)
            if getattr(obj, "__module__", None) == function.__module__ and hasattr(obj, "__code__"):
                todo.append(obj)
    return found


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kinds_entry_point_is_what_its_runner_calls(kind):
    spec = KINDS[kind]
    module, name = spec.entry.split(":")
    function = getattr(import_module(module), name)
    runner = RUNNERS[kind]
    if spec.hosted:  # the runner hands the entry point to a model host by name
        assert module == hosted.__name__ and callable(function)
        assert any(getattr(f, "__name__", "") == "_in_host" for f in called_by(runner))
    else:
        assert any(f is function for f in called_by(runner)), f"{runner} does not call {function}"


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kinds_page_exists(kind):
    assert reverse(KINDS[kind].page, args=[1]).endswith("/1/")


def test_every_kind_has_a_runner():
    assert set(RUNNERS) == set(Run.Kind.values) == set(KINDS)
