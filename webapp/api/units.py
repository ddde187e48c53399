"""POST /api/v1/unit-matchings/ asks for a unit matching of one layer of two checkpoints;
GET /api/v1/unit-matchings/{id}/ reads it (webapp.runs.units.unit_matching_view)."""

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
from webapp.runs.units import request_unit_matching, unit_matching_view

if TYPE_CHECKING:
    UnitsParameters = s.RequestSerializer
else:
    UnitsParameters = s.with_parameters(Run.Kind.UNITS)


class UnitMatchingRequestSerializer(UnitsParameters):
    checkpoint_a = serializers.IntegerField()
    checkpoint_b = serializers.IntegerField()
    dataset = serializers.IntegerField()
    layer_a = serializers.CharField(help_text="a layer of checkpoint A")
    layer_b = serializers.CharField(help_text="a layer of checkpoint B")


class UnitMatchingViewSet(viewsets.GenericViewSet):
    serializer_class = UnitMatchingRequestSerializer

    def get_queryset(self) -> QuerySet:
        return visible_to(Run, self.request.user).filter(kind=Run.Kind.UNITS)

    @extend_schema(responses={200: s.RunSerializer, 201: s.RunSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        """Match the units of a layer of A with those of a layer of B: Hungarian and best
        partner both ways, share above t, sparse prediction, best and worst pairs (the
        extractions are requested too; layers wider than 256 units are refused)."""
        form = UnitMatchingRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = request.user
        run, created = request_unit_matching(
            user,
            editable(Checkpoint, user, data["checkpoint_a"]),
            editable(Checkpoint, user, data["checkpoint_b"]),
            editable(Dataset, user, data["dataset"]),
            data["layer_a"],
            data["layer_b"],
            **parameters_in(Run.Kind.UNITS, data),
        )
        return _created(request, run, created)

    @extend_schema(responses={200: r.UnitMatchingSerializer, 404: s.ErrorSerializer})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        """The share-above-t curves, the sparse-prediction curve, the best and worst pairs
        (sample indices) with definitions and provenance; ``report`` null until it finished."""
        return Response(unit_matching_view(self.get_object(), samples=False))
