"""Unit matching pages: the form that asks for one (on the workspace page, and a button on a
comparison's pair page for its two layers) and the page that shows one
(webapp.runs.units.unit_matching_view)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from analysis.errors import InputError
from webapp.access import check_editable, editable_workspace
from webapp.catalog.models import Checkpoint, Dataset, Workspace, editable_workspaces_of, visible_to
from webapp.pages.forms import (
    ParametersForm,
    choose_from,
    offer_tokens,
    set_choices,
    with_parameters,
)
from webapp.pages.views import _pair, _poll, asked_run
from webapp.runs.kinds import parameters_in
from webapp.runs.models import Run
from webapp.runs.queue import standing
from webapp.runs.units import request_unit_matching, unit_matching_charts, unit_matching_view

if TYPE_CHECKING:
    from webapp.access import SignedInRequest
    from webapp.pages.views import HtmxRequest

    UnitsParameters = ParametersForm
else:
    UnitsParameters = with_parameters(Run.Kind.UNITS)


class UnitMatchingForm(UnitsParameters):
    """Two checkpoints, one layer of each, one dataset, and the kind's parameters."""

    checkpoint_a = forms.ModelChoiceField(queryset=Checkpoint.objects.none(), label="Checkpoint A")
    layer_a = forms.ChoiceField(help_text="a layer of checkpoint A")
    checkpoint_b = forms.ModelChoiceField(queryset=Checkpoint.objects.none(), label="Checkpoint B")
    layer_b = forms.ChoiceField(help_text="a layer of checkpoint B")
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())

    field_order = [
        "checkpoint_a",
        "layer_a",
        "checkpoint_b",
        "layer_b",
        "dataset",
        "pooling",
        "positions",
    ]

    def __init__(self, workspace: Workspace, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        checkpoints = workspace.checkpoints.all()
        for field in ("checkpoint_a", "checkpoint_b"):
            choose_from(self, field, checkpoints)
        choose_from(self, "dataset", workspace.datasets.all())
        names = sorted({layer for c in checkpoints for layer in c.layers})
        for field in ("layer_a", "layer_b"):
            set_choices(self, field, [(name, name) for name in names])
        offer_tokens(self, any(c.keeps_positions for c in checkpoints))


def unit_matchings_of(workspace: Workspace) -> dict:
    """The workspace's newest unit matchings and how many there are (its page's list)."""
    runs = workspace.runs.filter(kind=Run.Kind.UNITS).select_related(
        "checkpoint", "checkpoint_b", "dataset"
    )
    return {"runs": list(runs[:10]), "count": runs.count(), "kind": Run.Kind.UNITS}


@login_required
@require_POST
def new_unit_matching(request: SignedInRequest, slug: str) -> HttpResponse:
    workspace = editable_workspace(request.user, slug)
    form = UnitMatchingForm(workspace, request.POST)
    return asked_run(
        form,
        lambda data: request_unit_matching(
            request.user,
            data["checkpoint_a"],
            data["checkpoint_b"],
            data["dataset"],
            data["layer_a"],
            data["layer_b"],
            **parameters_in(Run.Kind.UNITS, data),
        ),
        "unit-matching",
        lambda: render(
            request,
            "pages/unit_matching_new.html",
            {"workspace": workspace, "form": form},
            status=400,
        ),
    )


@login_required
@require_POST
def unit_matching_pair(request: SignedInRequest, pk: int, row: int, col: int) -> HttpResponse:
    """Unit matching of the two layers of a comparison's cell, at the comparison's pooling
    (the existing run when it was asked for before)."""
    run, layer_a, layer_b = _pair(request, pk, row, col)
    check_editable(request.user, run)
    assert run.checkpoint_b is not None  # a comparison has two checkpoints
    try:
        units, _ = request_unit_matching(
            request.user,
            run.checkpoint,
            run.checkpoint_b,
            run.dataset,
            layer_a,
            layer_b,
            pooling=run.params["pooling"],
        )
    except InputError as err:
        messages.error(request, str(err))
        return redirect("comparison-pair", pk=run.pk, row=row, col=col)
    return redirect("unit-matching", pk=units.pk)


@login_required
def unit_matching_page(request: HtmxRequest, pk: int) -> HttpResponse:
    """Share of units matched above t (Hungarian and best partner both ways), the sparse
    prediction's error against its number of weights, and the best- and worst-matched unit
    pairs with the samples that activate them most."""
    run = get_object_or_404(visible_to(Run, request.user), pk=pk, kind=Run.Kind.UNITS)
    view = unit_matching_view(run)
    context = {
        "run": run,
        "workspace": run.workspace,
        "view": view,
        "charts": unit_matching_charts(view) if view["report"] else None,
        "standing": standing(run),
        "dependencies": run.depends_on.select_related("checkpoint"),
        "can_edit": editable_workspaces_of(request.user).filter(pk=run.workspace_id).exists(),
    }
    return _poll(request, "pages/unit_matching.html", "result", context, run.is_terminal)
