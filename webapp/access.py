"""Who may change what, for the pages and the API alike: the owners and editors of a workspace
change its rows; viewers and outsiders get a 404, as if the row did not exist (never a 403,
which would confirm it does). What members may see is
:func:`webapp.catalog.models.visible_to`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import models
from django.http import Http404, HttpRequest

from webapp.catalog.models import Workspace, editable_workspaces_of

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from webapp.catalog.models import AnyUser

    class SignedInRequest(HttpRequest):
        """A request to a view behind ``login_required``: its user is signed in."""

        user: User


M = TypeVar("M", bound=models.Model)


class InWorkspace(Protocol):
    """A row that belongs to a workspace."""

    workspace_id: int


def editable_workspace(user: AnyUser, slug: str) -> Workspace:
    """The workspace ``slug`` if ``user`` may change it."""
    return _one(editable_workspaces_of(user), slug=slug)


def editable(model: type[M], user: AnyUser, pk: object) -> M:
    """Row ``pk`` of ``model`` (anything with a ``workspace``) if ``user`` may change it; a
    malformed id is a 404 too."""
    return _one(model._default_manager.filter(workspace__in=editable_workspaces_of(user)), pk=pk)


def check_editable(user: AnyUser, obj: InWorkspace) -> None:
    """Raise :class:`Http404` unless ``user`` may change ``obj`` (already known to be
    visible to them)."""
    _one(editable_workspaces_of(user), pk=obj.workspace_id)


def _one(queryset: models.QuerySet[M], **lookup: object) -> M:
    try:
        return queryset.get(**lookup)
    except (ObjectDoesNotExist, ValueError, TypeError, ValidationError):
        name = queryset.model._meta.object_name
        raise Http404(f"No {name} matches the given query.") from None
