"""POST /api/v1/weight-spaces/ asks for the weight space between two checkpoints; GET
/api/v1/weight-spaces/{id}/ reads it (webapp.runs.weight_space)."""

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
from webapp.runs.weight_space import request_weight_space, weight_space_view

if TYPE_CHECKING:
    WeightsParameters = s.RequestSerializer
else:
    WeightsParameters = s.with_parameters(Run.Kind.WEIGHTS)


class WeightSpaceRequestSerializer(WeightsParameters):
    checkpoint_a = serializers.IntegerField(help_text="A: the reference")
    checkpoint_b = serializers.IntegerField(help_text="B: its units are permuted to match A's")
    dataset = serializers.IntegerField(help_text="a labelled dataset both models read")


class WeightSpaceViewSet(viewsets.GenericViewSet):
    serializer_class = WeightSpaceRequestSerializer

    def get_queryset(self) -> QuerySet:
        return visible_to(Run, self.request.user).filter(kind=Run.Kind.WEIGHTS)

    @extend_schema(responses={200: s.RunSerializer, 201: s.RunSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        """Match B's hidden units to A's (weight matching), check that the permuted B computes
        B's function, and measure L2 before and after, loss and accuracy along both linear
        paths with their barriers, and each layer's spectra and alignment. Only .safetensors
        state dicts of a built-in architecture and TorchScript models named after one are
        accepted (400 otherwise)."""
        form = WeightSpaceRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = request.user
        run, created = request_weight_space(
            user,
            editable(Checkpoint, user, data["checkpoint_a"]),
            editable(Checkpoint, user, data["checkpoint_b"]),
            editable(Dataset, user, data["dataset"]),
            **parameters_in(Run.Kind.WEIGHTS, data),
        )
        return _created(request, run, created)

    @extend_schema(responses={200: r.WeightSpaceSerializer, 404: s.ErrorSerializer})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        """The function check, L2 before and after matching, both paths with their barriers
        and each layer's spectra (``result`` is null until the run finished)."""
        return Response(weight_space_view(self.get_object()))
