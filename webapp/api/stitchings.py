"""POST /api/v1/stitchings/ asks for model stitching of one checkpoint into another; GET
/api/v1/stitchings/{id}/ reads it (webapp.runs.stitching)."""

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
from webapp.runs.stitching import request_stitching, stitching_view

if TYPE_CHECKING:
    StitchParameters = s.RequestSerializer
else:
    StitchParameters = s.with_parameters(Run.Kind.STITCH)


class StitchingRequestSerializer(StitchParameters):
    checkpoint_a = serializers.IntegerField(help_text="A: run up to each of its layers")
    checkpoint_b = serializers.IntegerField(
        help_text="B: run on from each of its layers (an eager torch module: a .safetensors "
        "state dict of a built-in architecture, or TorchScript named after one); may be A"
    )
    dataset = serializers.IntegerField(help_text="a labelled dataset both models read")
    layers_a = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="A's layers, the matrix's rows (default: its default layers whose outputs "
        "are vectors)",
    )
    layers_b = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="B's layers, the matrix's columns (default: likewise)",
    )


class StitchingViewSet(viewsets.GenericViewSet):
    serializer_class = StitchingRequestSerializer

    def get_queryset(self) -> QuerySet:
        return visible_to(Run, self.request.user).filter(kind=Run.Kind.STITCH)

    @extend_schema(responses={200: s.RunSerializer, 201: s.RunSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        """Stitch each layer of A into each layer of B: a map from A's layer i to B's layer j
        (fitted by least squares on a training split, and zero-shot through relative
        representations over anchors), then the rest of B; each stitched model's accuracy on
        the held-out samples, beside B alone, A alone and chance. B must be a .safetensors
        state dict of a built-in architecture or a TorchScript model named after one (400
        otherwise)."""
        form = StitchingRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = request.user
        run, created = request_stitching(
            user,
            editable(Checkpoint, user, data["checkpoint_a"]),
            editable(Checkpoint, user, data["checkpoint_b"]),
            editable(Dataset, user, data["dataset"]),
            data.get("layers_a"),
            data.get("layers_b"),
            **parameters_in(Run.Kind.STITCH, data),
        )
        return _created(request, run, created)

    @extend_schema(responses={200: r.StitchingSerializer, 404: s.ErrorSerializer})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        """Both A-layer × B-layer accuracy matrices (fitted and zero-shot) with each cell's
        held-out R², B alone, A alone and chance (``result`` is null until the run
        finished)."""
        return Response(stitching_view(self.get_object()))
