"""Where unit matchings are listed and asked for outside their own page: the workspace page's
results list with its form, and the button on a comparison's pair page."""

from __future__ import annotations

from typing import Any

from django import template

from webapp.catalog.models import Workspace, editable_workspaces_of
from webapp.pages.units import UnitMatchingForm, unit_matchings_of
from webapp.runs.models import Run

register = template.Library()


@register.inclusion_tag("pages/_unit_matchings.html")
def unit_matchings(workspace: Workspace, can_edit: bool) -> dict[str, Any]:
    """The workspace's unit matchings and, for its editors, the form that asks for one."""
    return {
        "workspace": workspace,
        "listed": unit_matchings_of(workspace),
        "form": UnitMatchingForm(workspace) if can_edit else None,
    }


@register.inclusion_tag("pages/_unit_matching_pair.html", takes_context=True)
def unit_matching_of_pair(context: template.Context, run: Run, row: int, col: int) -> dict:
    """The unit matchings of a comparison cell's two layers (same checkpoints, dataset and
    pooling), and the button that asks for one."""
    layer_a, layer_b = run.params["layers_a"][row], run.params["layers_b"][col]
    found = Run.objects.filter(
        kind=Run.Kind.UNITS,
        checkpoint=run.checkpoint_id,
        checkpoint_b=run.checkpoint_b_id,
        dataset=run.dataset_id,
        params__layer_a=layer_a,
        params__layer_b=layer_b,
        params__pooling=run.params["pooling"],
    ).order_by("-created_at")
    can_edit = editable_workspaces_of(context["request"].user).filter(pk=run.workspace_id)
    return {
        "run": run,
        "row": row,
        "col": col,
        "layer_a": layer_a,
        "layer_b": layer_b,
        "found": list(found[:5]),
        "can_edit": can_edit.exists(),
    }
