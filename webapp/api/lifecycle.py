"""Renaming (PATCH ``{"name": …}``) and deleting (DELETE) datasets, checkpoints and runs
through the API, as the pages do (:mod:`webapp.runs.lifecycle`): only their workspace's
editors and owners, anyone else gets 404; a delete takes what depends on it along, and is a
400 with the reason while one of those runs is queued or running."""

from __future__ import annotations

from typing import Any, ClassVar

from rest_framework import serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from webapp.access import editable
from webapp.catalog.models import Checkpoint, Dataset
from webapp.catalog.workspaces import NAME_MAX
from webapp.runs import lifecycle
from webapp.runs.models import Run


class NameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=NAME_MAX, help_text="the new name")


class RenameAndDelete(viewsets.GenericViewSet):
    """``partial_update`` renames a row of ``lifecycle_model``; ``destroy`` deletes it. (Their
    schema is declared with each viewset's: ``webapp.api.views._documents_404``.)"""

    lifecycle_model: ClassVar[type[Dataset] | type[Checkpoint] | type[Run]]

    def partial_update(self, request: Request, pk: str | None = None, **_: Any) -> Response:
        """Rename it."""
        target = editable(self.lifecycle_model, request.user, pk)
        form = NameSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        lifecycle.rename(target, form.validated_data["name"])
        return Response(self.get_serializer(target).data)

    def destroy(self, request: Request, pk: str | None = None, **_: Any) -> Response:
        """Delete it with everything that depends on it (runs, their results, stored
        activations, selections) and the stored files nothing else uses."""
        lifecycle.delete(editable(self.lifecycle_model, request.user, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
