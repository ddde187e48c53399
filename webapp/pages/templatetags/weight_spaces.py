"""Where weight-space runs are listed and asked for outside their own page: the workspace
page's results list, and a checkpoint's page."""

from __future__ import annotations

from typing import Any

from django import template
from django.db.models import Q

from analysis.weights.formats import refusal
from webapp.catalog.models import Checkpoint, Workspace
from webapp.pages.weight_spaces import readable_checkpoints, weight_spaces_of
from webapp.runs.models import Run

register = template.Library()


@register.inclusion_tag("pages/_weight_spaces.html")
def weight_spaces(workspace: Workspace, can_edit: bool) -> dict[str, Any]:
    """The workspace's weight-space runs and, for its editors, the link to ask for one."""
    return {"workspace": workspace, "listed": weight_spaces_of(workspace), "can_edit": can_edit}


@register.inclusion_tag("pages/_weight_spaces_of_checkpoint.html")
def weight_spaces_of_checkpoint(checkpoint: Checkpoint, can_edit: bool) -> dict[str, Any]:
    """The weight-space runs that involve ``checkpoint``, and the link that asks for one
    from it (or why its weights cannot be read)."""
    runs = Run.objects.filter(
        Q(checkpoint=checkpoint) | Q(checkpoint_b=checkpoint), kind=Run.Kind.WEIGHTS
    ).select_related("checkpoint", "checkpoint_b", "dataset")
    readable = checkpoint.pk in readable_checkpoints(checkpoint.workspace)
    return {
        "checkpoint": checkpoint,
        "runs": list(runs.order_by("-created_at")[:10]),
        "readable": readable,
        "why_not": ""
        if readable
        else refusal("This checkpoint", checkpoint.format, checkpoint.architecture),
        "can_edit": can_edit,
    }
