"""Weight-space pages: the form that asks for a run (its own page, reached from the workspace
page's results list and from a checkpoint's page) and the page that shows one
(webapp.runs.weight_space.weight_space_view)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render

from analysis.weights.formats import WEIGHT_FORMATS, declared_architecture
from webapp.access import editable_workspace
from webapp.catalog.models import Checkpoint, Dataset, Workspace, editable_workspaces_of, visible_to
from webapp.pages.forms import ParametersForm, choose_from, with_parameters
from webapp.pages.views import _poll, asked_run
from webapp.runs.kinds import parameters_in
from webapp.runs.models import Run
from webapp.runs.queue import standing
from webapp.runs.weight_space import (
    alignment_rows,
    permuted_units,
    request_weight_space,
    weight_space_charts,
    weight_space_view,
)

if TYPE_CHECKING:
    from webapp.access import SignedInRequest
    from webapp.pages.views import HtmxRequest

    WeightsParameters = ParametersForm
else:
    WeightsParameters = with_parameters(Run.Kind.WEIGHTS)


def readable_checkpoints(workspace: Workspace) -> list[int]:
    """The workspace's checkpoints whose weights a permutation spec reads (ids)."""
    return [
        c.pk
        for c in workspace.checkpoints.only("pk", "format", "architecture", "layer_tree")
        if declared_architecture(c.format, c.architecture, c.layer_tree) is not None
    ]


class WeightSpaceForm(WeightsParameters):
    """Two checkpoints of one architecture, a labelled dataset, and the kind's parameters."""

    checkpoint_a = forms.ModelChoiceField(
        queryset=Checkpoint.objects.none(),
        label="Checkpoint A",
        help_text=WEIGHT_FORMATS[0].upper() + WEIGHT_FORMATS[1:],
    )
    checkpoint_b = forms.ModelChoiceField(
        queryset=Checkpoint.objects.none(),
        label="Checkpoint B",
        help_text="of A's architecture: its hidden units are permuted to match A's",
    )
    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.none(),
        help_text="labelled samples for the loss and accuracy along the paths and for the "
        "function check; two BERT, RoBERTa or DistilBERT encoders take texts without labels (an "
        "encoder has no class scores, so no paths)",
    )

    field_order = ["checkpoint_a", "checkpoint_b", "dataset"]

    def __init__(self, workspace: Workspace, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        readable = workspace.checkpoints.filter(pk__in=readable_checkpoints(workspace))
        for field in ("checkpoint_a", "checkpoint_b"):
            choose_from(self, field, readable)
        choose_from(self, "dataset", workspace.datasets.all())  # the request checks the fit


def weight_spaces_of(workspace: Workspace) -> dict:
    """The workspace's newest weight-space runs and how many there are (its page's list)."""
    runs = workspace.runs.filter(kind=Run.Kind.WEIGHTS).select_related(
        "checkpoint", "checkpoint_b", "dataset"
    )
    return {"runs": list(runs[:10]), "count": runs.count(), "kind": Run.Kind.WEIGHTS}


@login_required
def new_weight_space(request: SignedInRequest, slug: str) -> HttpResponse:
    """The form (``?a=<checkpoint id>`` chooses A), and asking for the run."""
    workspace = editable_workspace(request.user, slug)
    if request.method != "POST":
        form = WeightSpaceForm(workspace, initial={"checkpoint_a": request.GET.get("a")})
        context = {"workspace": workspace, "form": form}
        return render(request, "pages/weight_space_new.html", context)
    form = WeightSpaceForm(workspace, request.POST)
    return asked_run(
        form,
        lambda data: request_weight_space(
            request.user,
            data["checkpoint_a"],
            data["checkpoint_b"],
            data["dataset"],
            **parameters_in(Run.Kind.WEIGHTS, data),
        ),
        "weight-space",
        lambda: render(
            request,
            "pages/weight_space_new.html",
            {"workspace": workspace, "form": form},
            status=400,
        ),
    )


@login_required
def weight_space_page(request: HtmxRequest, pk: int) -> HttpResponse:
    """The two linear paths (naive and matched) with their barriers, L2 before and after
    matching, the function check, and per layer the two spectra and their alignment."""
    run = get_object_or_404(visible_to(Run, request.user), pk=pk, kind=Run.Kind.WEIGHTS)
    view = weight_space_view(run)
    units = view["result"]["units"] if view["result"] else {}
    alignment = alignment_rows(view["result"]) if view["result"] else []
    context = {
        "run": run,
        "workspace": run.workspace,
        "view": view,
        "result": view["result"],
        "charts": weight_space_charts(view),
        "alignment": alignment,
        "alignment_unknown": any(row["chance"] is None for row in alignment),
        "matched_unknown": any(row["matched_chance"] is None for row in alignment),
        "units": permuted_units(units),
        "per_head": any(name.endswith(".heads") for name in units),
        "standing": standing(run),
        "dependencies": run.depends_on.select_related("checkpoint"),
        "can_edit": editable_workspaces_of(request.user).filter(pk=run.workspace_id).exists(),
    }
    return _poll(request, "pages/weight_space.html", "result", context, run.is_terminal)
