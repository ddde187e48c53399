"""The workspace page's list of stitching runs, with the link that asks for one."""

from __future__ import annotations

from typing import Any

from django import template

from webapp.catalog.models import Workspace
from webapp.pages.stitchings import stitchings_of

register = template.Library()


@register.inclusion_tag("pages/_stitchings.html")
def stitchings(workspace: Workspace, can_edit: bool) -> dict[str, Any]:
    """The workspace's stitching runs and, for its editors, the link to ask for one."""
    return {"workspace": workspace, "listed": stitchings_of(workspace), "can_edit": can_edit}
