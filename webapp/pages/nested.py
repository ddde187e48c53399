"""Nested (Matryoshka) embedding pages: the form on the workspace page that asks for a run,
and the page that draws its curves (webapp.runs.results.nested_view)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_POST

from webapp.access import editable_workspace
from webapp.catalog.models import visible_to
from webapp.pages.forms import NestedForm
from webapp.pages.views import _form_page, _poll, asked_run
from webapp.runs.kinds import parameters_in
from webapp.runs.models import Run
from webapp.runs.queue import standing
from webapp.runs.results import nested_charts, nested_view
from webapp.runs.submit import request_nested, series_order

if TYPE_CHECKING:
    from webapp.access import SignedInRequest
    from webapp.pages.views import HtmxRequest


@login_required
@require_POST
def new_nested(request: SignedInRequest, slug: str) -> HttpResponse:
    workspace = editable_workspace(request.user, slug)
    form = NestedForm(workspace, request.POST)
    return asked_run(
        form,
        lambda data: request_nested(
            request.user,
            series_order(data["checkpoints"]),
            data["dataset"],
            data["layer"],
            **parameters_in(Run.Kind.NESTED, data),
        ),
        "nested",
        lambda: _form_page(request, workspace, nested_form=form),
    )


@login_required
def nested(request: HtmxRequest, pk: int) -> HttpResponse:
    """mAP, top-1, top-5, probe accuracy and CKA to the full embedding against the prefix
    dimension, one line per checkpoint, chance dashed."""
    run = get_object_or_404(visible_to(Run, request.user), pk=pk, kind=Run.Kind.NESTED)
    view = nested_view(run)
    context = {
        "run": run,
        "workspace": run.workspace,
        "view": view,
        "charts": nested_charts(view),
        "standing": standing(run),
        "dependencies": run.depends_on.select_related("checkpoint"),
    }
    return _poll(request, "pages/nested.html", "result", context, run.is_terminal)
