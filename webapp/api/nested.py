"""API of nested (Matryoshka) embedding runs: ask for one (POST /nested/) and read its curves
(GET /nested/{id}/, webapp.runs.results.nested_view)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from webapp.access import editable
from webapp.api import responses as r
from webapp.api import serializers as s
from webapp.api.views import ERRORS, _created
from webapp.catalog.models import Checkpoint, Dataset, visible_to
from webapp.runs.kinds import parameters_in
from webapp.runs.models import Run
from webapp.runs.results import nested_view
from webapp.runs.submit import request_nested

if TYPE_CHECKING:
    NestedParameters = s.RequestSerializer
else:
    NestedParameters = s.with_parameters(Run.Kind.NESTED)


class NestedRequestSerializer(NestedParameters):
    checkpoints = serializers.ListField(
        child=serializers.IntegerField(),
        min_length=1,
        help_text="one or more checkpoints, drawn overlaid in this order",
    )
    dataset = serializers.IntegerField(help_text="a labelled dataset (class or identity labels)")
    layer = serializers.CharField(help_text="the embedding layer; every checkpoint has it")


class NestedViewSet(viewsets.GenericViewSet):
    serializer_class = NestedRequestSerializer

    def get_queryset(self) -> QuerySet:
        return visible_to(Run, self.request.user).filter(kind=Run.Kind.NESTED)

    @extend_schema(responses={200: s.RunSerializer, 201: s.RunSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        """Quality of every prefix (8, 16, 32, … d dimensions) of one layer's embedding of
        each checkpoint: retrieval mAP, top-1, top-5, leave-one-out probe accuracy and CKA to
        the full embedding (the extractions are requested too)."""
        form = NestedRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = request.user
        run, created = request_nested(
            user,
            [editable(Checkpoint, user, pk) for pk in data["checkpoints"]],
            editable(Dataset, user, data["dataset"]),
            data["layer"],
            **parameters_in(Run.Kind.NESTED, data),
        )
        return _created(request, run, created)

    @extend_schema(responses={200: r.NestedSerializer, 404: s.ErrorSerializer})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        """The curves per checkpoint against the prefix dimension, with chance levels,
        definitions and provenance (no curves until the run finished)."""
        return Response(nested_view(self.get_object()))
