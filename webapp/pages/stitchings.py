"""Model-stitching pages: the form that asks for a run (its own page, reached from the workspace
page's results list) and the page that shows one (webapp.runs.stitching.stitching_view)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render

from analysis.weights.formats import declared_architecture
from webapp.access import editable_workspace
from webapp.catalog.models import Checkpoint, Dataset, Workspace, editable_workspaces_of, visible_to
from webapp.pages.forms import ParametersForm, choose_from, with_parameters
from webapp.pages.views import _poll, asked_run
from webapp.runs.kinds import parameters_in
from webapp.runs.models import Run
from webapp.runs.queue import standing
from webapp.runs.stitching import (
    B_FORMATS,
    request_stitching,
    stitching_matrices,
    stitching_view,
    zero_shot_failures,
)

if TYPE_CHECKING:
    from webapp.access import SignedInRequest
    from webapp.pages.views import HtmxRequest

    StitchParameters = ParametersForm
else:
    StitchParameters = with_parameters(Run.Kind.STITCH)


def _layer_names(text: str) -> list[str] | None:
    return text.replace(",", " ").split() or None


class StitchingForm(StitchParameters):
    """A checkpoint to read from (A), one to stitch into (B), a labelled dataset, the layers
    of each (blank: the defaults) and the kind's parameters."""

    checkpoint_a = forms.ModelChoiceField(
        queryset=Checkpoint.objects.none(),
        label="Checkpoint A",
        help_text="A: run up to its layer i (any model that reads the dataset)",
    )
    checkpoint_b = forms.ModelChoiceField(
        queryset=Checkpoint.objects.none(),
        label="Checkpoint B",
        help_text=B_FORMATS[0].upper() + B_FORMATS[1:],
    )
    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.none(),
        help_text="labelled samples both models read: the maps are fitted on a training split "
        "and the stitched models scored on the rest",
    )
    layers_a = forms.CharField(
        required=False,
        label="Layers of A",
        help_text="names separated by spaces (blank: A's default layers whose outputs are "
        "vectors or feature maps)",
    )
    layers_b = forms.CharField(
        required=False,
        label="Layers of B",
        help_text="names separated by spaces (blank: B's default layers whose outputs are "
        "vectors or feature maps; a conv map is stitched by a 1×1 convolution from a map of A "
        "on the same grid, and by the fitted map only)",
    )

    field_order = ["checkpoint_a", "checkpoint_b", "dataset", "layers_a", "layers_b"]

    def __init__(self, workspace: Workspace, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        models = workspace.checkpoints.exclude(format=Checkpoint.Format.PRECOMPUTED)
        choose_from(self, "checkpoint_a", models)
        choose_from(self, "checkpoint_b", models.filter(pk__in=stitchable(workspace)))
        choose_from(self, "dataset", workspace.datasets.all())


def stitchable(workspace: Workspace) -> list[int]:
    """The workspace's checkpoints that can be model B (run as an eager module, or a Hugging
    Face text encoder stitched at its tokens), by id."""
    return [
        c.pk
        for c in workspace.checkpoints.only("pk", "format", "architecture", "layer_tree")
        if declared_architecture(c.format, c.architecture, c.layer_tree) is not None
    ]


def stitchings_of(workspace: Workspace) -> dict:
    """The workspace's newest stitching runs and how many there are (its page's list)."""
    runs = workspace.runs.filter(kind=Run.Kind.STITCH).select_related(
        "checkpoint", "checkpoint_b", "dataset"
    )
    return {"runs": list(runs[:10]), "count": runs.count(), "kind": Run.Kind.STITCH}


@login_required
def new_stitching(request: SignedInRequest, slug: str) -> HttpResponse:
    """The form (``?a=`` and ``?b=`` choose the checkpoints), and asking for the run."""
    workspace = editable_workspace(request.user, slug)
    if request.method != "POST":
        initial = {"checkpoint_a": request.GET.get("a"), "checkpoint_b": request.GET.get("b")}
        form = StitchingForm(workspace, initial=initial)
        return render(request, "pages/stitching_new.html", {"workspace": workspace, "form": form})
    form = StitchingForm(workspace, request.POST)
    return asked_run(
        form,
        lambda data: request_stitching(
            request.user,
            data["checkpoint_a"],
            data["checkpoint_b"],
            data["dataset"],
            _layer_names(data["layers_a"]),
            _layer_names(data["layers_b"]),
            **parameters_in(Run.Kind.STITCH, data),
        ),
        "stitching",
        lambda: render(
            request, "pages/stitching_new.html", {"workspace": workspace, "form": form}, status=400
        ),
    )


@login_required
def stitching_page(request: HtmxRequest, pk: int) -> HttpResponse:
    """The fitted and the zero-shot A-layer × B-layer accuracy matrices side by side, with B
    alone, A alone and chance beside them, the definitions and the provenance."""
    run = get_object_or_404(visible_to(Run, request.user), pk=pk, kind=Run.Kind.STITCH)
    view = stitching_view(run)
    result = view["result"]
    context = {
        "run": run,
        "workspace": run.workspace,
        "view": view,
        "result": result,
        "matrices": stitching_matrices(view),
        "zero_shot": zero_shot_failures(result) if result else "",
        "layers_a": _sized(result["layers_a"], result["shapes_a"]) if result else [],
        "layers_b": _sized(result["layers_b"], result["shapes_b"]) if result else [],
        "standing": standing(run),
        "dependencies": run.depends_on.select_related("checkpoint"),
        "can_edit": editable_workspaces_of(request.user).filter(pk=run.workspace_id).exists(),
    }
    return _poll(request, "pages/stitching.html", "result", context, run.is_terminal)


def _sized(layers: list[str], shapes: list[list[int]]) -> list[tuple[str, str]]:
    """Each layer with one sample's output in words: "32-d", or "4 × 8 × 8 map" (C × H × W)."""
    return [
        (name, f"{shape[0]}-d" if len(shape) == 1 else f"{' × '.join(map(str, shape))} map")
        for name, shape in zip(layers, shapes, strict=True)
    ]
