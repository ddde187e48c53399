"""Series pages: the checkpoints of one training run (one seed group) with their logged
metrics, and the dynamics of a series on a dataset (webapp.runs.results.dynamics_view)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from webapp.access import editable_workspace
from webapp.catalog.models import Workspace, editable_workspaces_of, visible_to, workspaces_of
from webapp.pages.forms import DynamicsForm
from webapp.pages.views import _poll, asked_run
from webapp.runs.models import Run
from webapp.runs.queue import standing
from webapp.runs.results import dynamics_charts, dynamics_view
from webapp.runs.submit import request_dynamics, series_of

if TYPE_CHECKING:
    from webapp.access import SignedInRequest
    from webapp.pages.views import HtmxRequest


def _series_page(
    request: SignedInRequest,
    workspace: Workspace,
    group: str,
    form: DynamicsForm | None = None,
    status: int = 200,
) -> HttpResponse:
    checkpoints = series_of(workspace, group)
    if not checkpoints:
        raise Http404
    metrics = sorted({name for c in checkpoints for name in c.metrics})
    runs = Run.objects.filter(
        workspace=workspace, kind=Run.Kind.DYNAMICS, params__series=group
    ).select_related("dataset")
    charts = {
        "steps": [c.step for c in checkpoints],
        "labels": [f"step {c.step}" if c.step is not None else c.name for c in checkpoints],
        "charts": {
            f"metric:{name}": {
                "lines": [{"name": name, "y": [c.metrics.get(name) for c in checkpoints]}],
                "yTitle": name,
            }
            for name in metrics
        },
    }
    can_edit = editable_workspaces_of(request.user).filter(pk=workspace.pk).exists()
    return render(
        request,
        "pages/series.html",
        {
            "workspace": workspace,
            "group": group,
            "checkpoints": checkpoints,
            "rows": [(c, [c.metrics.get(name) for name in metrics]) for c in checkpoints],
            "metrics": metrics,
            "charts": charts,
            "runs": runs.order_by("-created_at")[:50],
            "n": len(checkpoints),
            "can_edit": can_edit,
            "form": form or (DynamicsForm(checkpoints) if len(checkpoints) >= 2 else None),
        },
        status=status,
    )


@login_required
def series(request: SignedInRequest, slug: str) -> HttpResponse:
    """The series ``?group=`` of a workspace: its checkpoints by step, their logged metrics
    drawn over steps, its dynamics runs and the form that asks for one."""
    workspace = get_object_or_404(workspaces_of(request.user), slug=slug)
    return _series_page(request, workspace, request.GET.get("group", ""))


@login_required
@require_POST
def new_dynamics(request: SignedInRequest, slug: str) -> HttpResponse:
    workspace = editable_workspace(request.user, slug)
    group = request.GET.get("group", "")
    checkpoints = series_of(workspace, group)
    if not checkpoints:
        raise Http404
    form = DynamicsForm(checkpoints, request.POST)
    return asked_run(
        form,
        lambda data: request_dynamics(
            request.user,
            workspace,
            group,
            data["dataset"],
            data["layers"] or None,
            **form.measure_options(),
        ),
        "dynamics",
        lambda: _series_page(request, workspace, group, form, status=400),
    )


@login_required
def dynamics(request: HtmxRequest, pk: int) -> HttpResponse:
    """Per layer: the step × step matrix, similarity to the final step, and the statistics
    over steps beside the logged training curves."""
    run = get_object_or_404(visible_to(Run, request.user), pk=pk, kind=Run.Kind.DYNAMICS)
    view = dynamics_view(run)
    current = len(series_of(run.workspace, run.params["series"]))
    context = {
        "run": run,
        "workspace": run.workspace,
        "view": view,
        "charts": dynamics_charts(view),
        "standing": standing(run),
        "dependencies": run.depends_on.select_related("checkpoint"),
        "grown": current - len(run.params["checkpoints"]),
        "can_edit": editable_workspaces_of(request.user).filter(pk=run.workspace_id).exists(),
    }
    return _poll(request, "pages/dynamics.html", "result", context, run.is_terminal)
