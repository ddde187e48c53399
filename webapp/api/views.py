"""REST API (v1): the same actions as the pages, with token authentication."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar, cast
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.files.storage import default_storage
from django.db.models import QuerySet
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
)
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotAuthenticated, NotFound, ValidationError
from rest_framework.generics import get_object_or_404  # a malformed id is a 404, not a 500
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from analysis.errors import InputError
from analysis.measures.registry import MEASURES
from analysis.measures.registry import describe as describe_measure
from analysis.probes.families import FAMILIES
from webapp.access import editable, editable_workspace
from webapp.api import responses as r
from webapp.api import serializers as s
from webapp.api.lifecycle import NameSerializer, RenameAndDelete
from webapp.api.parsers import BoundedJSONParser, ChunkParser
from webapp.catalog import fits, team, uploads, workspaces
from webapp.catalog.models import (
    ActivationSet,
    Blob,
    Checkpoint,
    Dataset,
    Upload,
    Workspace,
    editable_workspaces_of,
    owned_workspaces_of,
    visible_to,
    workspaces_of,
)
from webapp.runs.explorer import (
    aligned_members,
    clean_tags,
    encode,
    pair_agreement,
    pair_displacement,
    select_in_polygon,
    select_indices,
)
from webapp.runs.exports import SELECTION_TYPES, selection_file
from webapp.runs.kinds import parameters_in
from webapp.runs.models import Run, Selection
from webapp.runs.results import (
    alignment_summary,
    comparison_matrix,
    compatibility_matrix,
    dynamics_view,
    model_matrix,
    probe_summary,
)
from webapp.runs.submit import (
    extraction_layers,
    request_aligned_projections,
    request_alignment,
    request_comparison,
    request_compatibility,
    request_dynamics,
    request_extraction,
    request_model_matrix,
    request_probe,
    request_projection,
    series_in,
)
from webapp.status import overview

if TYPE_CHECKING:
    from django.contrib.auth.models import User

V = TypeVar("V", bound=Callable[..., Any])


def blob_download(blob: Blob, filename: str) -> HttpResponseBase:
    """The bytes of a stored blob as a file download: streamed from the storage's file object
    a block at a time, or with ``REPLENS_PRESIGNED_DOWNLOADS`` a redirect to a presigned URL
    of the object store, which then serves them itself."""
    if settings.REPLENS_PRESIGNED_DOWNLOADS:
        disposition = f'inline; filename="{filename}"'
        return HttpResponseRedirect(
            default_storage.url(  # type: ignore[call-arg]  # S3Storage.url: presigned URLs
                blob.key,
                parameters={
                    "ResponseContentDisposition": disposition,
                    "ResponseContentType": "application/octet-stream",
                },
                expire=settings.REPLENS_PRESIGNED_EXPIRY_S,
            )
        )
    return FileResponse(blob.open(), filename=filename, content_type="application/octet-stream")


class BadInput(APIException):
    status_code = 400
    default_code = "bad_input"


@csrf_exempt  # it changes nothing: a POST to it is the same 404
def no_such_route(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """The JSON 404 of a URL under the API that no route matches."""
    return JsonResponse({"detail": "Not found."}, status=404)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error body has a readable ``detail``; field errors are also kept in ``errors``.
    Errors in user input raised by the analysis library become 400 with their message."""
    if isinstance(exc, InputError):
        exc = BadInput(str(exc))
    response = drf_exception_handler(exc, context)
    if isinstance(exc, ValidationError) and response is not None:
        errors = response.data if isinstance(response.data, dict) else {"": response.data}
        response.data = {"detail": _summary(errors), "errors": errors}
    return response


def _summary(errors: Any) -> str:
    """``field: message; other: message`` from DRF's nested error structure."""
    if isinstance(errors, dict):
        parts = [
            f"{k}: {_summary(v)}" if k not in ("", "non_field_errors") else _summary(v)
            for k, v in errors.items()
        ]
        return "; ".join(parts)
    if isinstance(errors, list):
        return " ".join(_summary(e) for e in errors)
    return str(errors)


ERRORS = {400: s.ErrorSerializer, 404: s.ErrorSerializer}
WORKSPACE = OpenApiParameter("workspace", str, description="only this workspace's (its slug)")


def _documents_404(serializer: type[serializers.BaseSerializer]) -> Callable[[V], V]:
    """The schema of a viewset's ``retrieve``: its object, or 404 (not yours, or none); and
    of a rename (the object) and a delete, where the viewset has them: 400 with the reason,
    404 for anyone but the workspace's editors and owners."""

    def documented(view: V) -> V:
        methods = {"retrieve": extend_schema(responses={200: serializer, 404: s.ErrorSerializer})}
        if isinstance(view, type) and issubclass(view, RenameAndDelete):
            methods["partial_update"] = extend_schema(
                request=NameSerializer, responses={200: serializer, **ERRORS}
            )
            methods["destroy"] = extend_schema(request=None, responses={204: None, **ERRORS})
        return extend_schema_view(**methods)(view)

    return documented


def _signed_in(request: Request) -> User:
    """The user of an API request: signed in, as every API view requires (IsAuthenticated)."""
    user = request.user
    if isinstance(user, AnonymousUser):
        raise NotAuthenticated()
    return user


def _dataset_of(workspace: Workspace, pk: int | None) -> Dataset | None:
    """The workspace's dataset ``pk`` (None for None); any other id is a 400."""
    if pk is None:
        return None
    dataset = workspace.datasets.filter(pk=pk).first()
    if dataset is None:
        raise InputError(f"no dataset {pk} in workspace {workspace.slug}")
    return dataset


def upload_state(upload: Upload, request: Request) -> dict:
    """An upload as the API shows it: its bytes (``offset`` of ``size`` received), its
    ``state`` (``open``, ``checking``, ``done``, ``failed``), its ``position`` among uploads
    waiting for a check (1 = next; null once a worker checks it), the ``error`` that refused
    it, and the dataset or checkpoint it made as ``result``."""
    result = uploads.result_of(upload)
    return {
        "id": str(upload.id),
        "kind": upload.kind,
        "filename": upload.filename,
        "state": upload.state,
        "offset": upload.received,
        "size": upload.size,
        "chunk_size": uploads.CHUNK_SIZE,
        "max_chunk_size": uploads.MAX_CHUNK_SIZE,
        "position": uploads.position(upload),
        "error": upload.error,
        "result": _catalog_item(result, request) if result is not None else None,
    }


def _catalog_item(obj: Dataset | Checkpoint, request: Request) -> dict:
    serializer = s.DatasetSerializer if isinstance(obj, Dataset) else s.CheckpointSerializer
    return serializer(obj, context={"request": request}).data


def _upload_answer(
    request: Request, upload: Upload | None, found: Dataset | Checkpoint | Upload | None
) -> Response:
    """The answer to an upload: what the same bytes already made (200: ``state`` done, the
    dataset or checkpoint as ``result``, ``id`` null: nothing to send or check), the upload of
    the same bytes being checked (200), or this upload (201 while it waits for its bytes,
    202 while a worker checks it)."""
    if isinstance(found, Upload):
        return Response(upload_state(found, request), status=status.HTTP_200_OK)
    if found is not None:
        kind = Upload.Kind.DATASET if isinstance(found, Dataset) else Upload.Kind.CHECKPOINT
        result = _catalog_item(found, request)
        body = {"id": None, "state": "done", "kind": kind, "result": result}
        return Response(body, status=status.HTTP_200_OK)
    assert upload is not None  # uploads.start makes one where nothing was found
    waiting = upload.state == Upload.State.CHECKING
    code = status.HTTP_202_ACCEPTED if waiting else status.HTTP_201_CREATED
    return Response(upload_state(upload, request), status=code)


def _created(request: Request, run: Run, created: bool) -> Response:
    """A run asked for: 201 when the request made it, 200 when it was there already."""
    code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return Response(s.RunSerializer(run, context={"request": request}).data, status=code)


ARCHIVED = OpenApiParameter(
    "archived",
    bool,
    description="true: only archived workspaces; false: only active ones (the site's main "
    "list); absent: both",
)


@_documents_404(s.WorkspaceSerializer)
@extend_schema_view(
    list=extend_schema(
        parameters=[ARCHIVED],
        responses={200: s.WorkspaceSerializer(many=True), 400: s.ErrorSerializer},
    ),
    create=extend_schema(
        request=NameSerializer, responses={201: s.WorkspaceSerializer, 400: s.ErrorSerializer}
    ),
    partial_update=extend_schema(
        request=NameSerializer, responses={200: s.WorkspaceSerializer, **ERRORS}
    ),
)
class WorkspaceViewSet(viewsets.ReadOnlyModelViewSet):
    """The workspaces you are a member of. Anyone signed in makes one (and owns it); its
    owners rename it and archive it, through the same rules as the site
    (:mod:`webapp.catalog.workspaces`); anyone else gets 404, as for a workspace that does
    not exist."""

    serializer_class = s.WorkspaceSerializer
    lookup_field = "slug"

    def get_queryset(self) -> QuerySet:
        queryset = workspaces_of(self.request.user).order_by("name")
        archived = self.request.query_params.get("archived")
        if archived is None or self.action != "list":  # a filter of the list only
            return queryset
        if archived not in ("true", "false"):
            raise BadInput("archived must be true or false")
        return queryset.filter(archived_at__isnull=archived == "false")

    def _owned(self) -> Workspace:
        workspace = self.get_object()
        return get_object_or_404(owned_workspaces_of(self.request.user), pk=workspace.pk)

    def _answer(self, workspace: Workspace, code: int = status.HTTP_200_OK) -> Response:
        body = s.WorkspaceSerializer(workspace, context={"request": self.request}).data
        return Response(body, status=code)

    def create(self, request: Request) -> Response:
        """Make a workspace (``{"name"}``); you become its owner. Its slug, made from the
        name, is its id in every other route."""
        form = NameSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        made = workspaces.create(_signed_in(request), form.validated_data["name"])
        return self._answer(made, status.HTTP_201_CREATED)

    def partial_update(self, request: Request, slug: str | None = None) -> Response:
        """Owners rename it (``{"name"}``); its slug, and so every link to it, stays."""
        workspace = self._owned()
        form = NameSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        workspaces.rename(workspace, form.validated_data["name"])
        return self._answer(workspace)

    @extend_schema(request=None, responses={200: s.WorkspaceSerializer, 404: s.ErrorSerializer})
    @action(detail=True, methods=["post", "delete"])
    def archive(self, request: Request, slug: str | None = None) -> Response:
        """Owners archive it (POST): read-only for everyone, listed apart
        (``?archived=true``); DELETE brings it back. Asking again changes nothing."""
        workspace = self._owned()
        workspaces.archive(workspace, archived=request.method == "POST")
        return self._answer(workspace)

    @extend_schema(responses={200: s.MemberSerializer(many=True), 404: s.ErrorSerializer})
    @action(detail=True, methods=["get"], pagination_class=None)
    def members(self, request: Request, slug: str | None = None) -> Response:
        """The workspace's members and their roles."""
        memberships = self.get_object().memberships.select_related("user").order_by("user_id")
        return Response(s.MemberSerializer(memberships, many=True).data)

    @extend_schema(
        request=s.MemberSerializer,
        responses={200: s.MemberSerializer, 204: None, **ERRORS},
    )
    @action(detail=True, methods=["patch", "delete"], url_path=r"members/(?P<user_id>\d+)")
    def member(
        self, request: Request, slug: str | None = None, user_id: str | None = None
    ) -> Response:
        """Owners change a member's role (PATCH ``{"role"}``) or remove them (DELETE); a
        workspace always keeps an owner."""
        membership = get_object_or_404(self._owned().memberships, user_id=user_id)
        if request.method == "DELETE":
            team.remove(membership)
            return Response(status=status.HTTP_204_NO_CONTENT)
        form = s.MemberSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        team.set_role(membership, form.validated_data["role"])
        return Response(s.MemberSerializer(membership).data)

    @extend_schema(
        request=s.InvitationRequestSerializer, responses={201: r.InvitationSerializer, **ERRORS}
    )
    @action(detail=True, methods=["post"])
    def invitations(self, request: Request, slug: str | None = None) -> Response:
        """Owners create a one-use invitation link with a role (valid 7 days)."""
        form = s.InvitationRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        invitation = team.invite(self._owned(), form.validated_data["role"], _signed_in(request))
        link = request.build_absolute_uri(f"/invitations/{invitation.token}/")
        body = {"url": link, "role": invitation.role, "expires_at": invitation.expires_at}
        return Response(body, status=status.HTTP_201_CREATED)


class _WithRequest(Protocol):
    request: Request


class WorkspaceFilterMixin:
    """``?workspace=<slug>`` narrows a list to one workspace."""

    def filter_workspace(self: _WithRequest, queryset: QuerySet) -> QuerySet:
        slug = self.request.query_params.get("workspace")
        return queryset.filter(workspace__slug=slug) if slug else queryset


@_documents_404(s.DatasetSerializer)
@extend_schema_view(list=extend_schema(parameters=[WORKSPACE]))
class DatasetViewSet(
    WorkspaceFilterMixin, mixins.CreateModelMixin, RenameAndDelete, viewsets.ReadOnlyModelViewSet
):
    serializer_class = s.DatasetSerializer
    lifecycle_model = Dataset

    def get_queryset(self) -> QuerySet:
        return self.filter_workspace(
            visible_to(Dataset, self.request.user).select_related("workspace", "source")
        )

    @extend_schema(
        request=s.DatasetUploadSerializer,
        responses={200: r.UploadStateSerializer, 202: r.UploadStateSerializer, **ERRORS},
    )
    def create(self, request: Request) -> Response:
        """Upload a dataset in one request: 202 with the upload, which a worker checks
        (``GET /uploads/<id>/`` until its state is ``done``, with the dataset as ``result``,
        or ``failed``, with the reason as ``error``); 200 and the dataset at once when the same
        file is already in the workspace."""
        form = s.DatasetUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        return _upload_answer(
            request,
            *uploads.receive(
                _signed_in(request),
                editable_workspace(request.user, data["workspace"]),
                Upload.Kind.DATASET,
                data["file"],
                data["file"].name,
                name=data.get("name", ""),
                description=data.get("description", ""),
            ),
        )


@_documents_404(s.CheckpointSerializer)
@extend_schema_view(list=extend_schema(parameters=[WORKSPACE]))
class CheckpointViewSet(
    WorkspaceFilterMixin, mixins.CreateModelMixin, RenameAndDelete, viewsets.ReadOnlyModelViewSet
):
    serializer_class = s.CheckpointSerializer
    lifecycle_model = Checkpoint

    def get_queryset(self) -> QuerySet:
        return self.filter_workspace(
            visible_to(Checkpoint, self.request.user).select_related("workspace", "blob")
        )

    @extend_schema(
        request=s.CheckpointUploadSerializer,
        responses={200: r.UploadStateSerializer, 202: r.UploadStateSerializer, **ERRORS},
    )
    def create(self, request: Request) -> Response:
        """Upload a checkpoint in one request: TorchScript, safetensors with an architecture
        name, ONNX, a Hugging Face model directory archive, or precomputed activations of a
        dataset. Answered like a dataset upload: 202 while a worker checks it (in a model
        host), 200 at once when the same file is already in the workspace."""
        form = s.CheckpointUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        workspace = editable_workspace(request.user, data["workspace"])
        dataset = _dataset_of(workspace, data.get("dataset"))
        return _upload_answer(
            request,
            *uploads.receive(
                _signed_in(request),
                workspace,
                Upload.Kind.CHECKPOINT,
                data["file"],
                data["file"].name,
                name=data.get("name", ""),
                architecture=data.get("architecture", ""),
                description=data.get("description", ""),
                seed_group=data.get("seed_group", ""),
                step=data.get("step"),
                metrics=data.get("metrics"),
                dataset=dataset.pk if dataset else None,
            ),
        )


@_documents_404(s.RunSerializer)
@extend_schema_view(
    list=extend_schema(
        parameters=[
            WORKSPACE,
            OpenApiParameter("state", str, enum=Run.State.values, description="only runs in it"),
            OpenApiParameter("kind", str, enum=Run.Kind.values, description="only runs of it"),
        ],
        responses={200: s.RunSerializer(many=True), 400: s.ErrorSerializer},
    )
)
class RunViewSet(WorkspaceFilterMixin, RenameAndDelete, viewsets.ReadOnlyModelViewSet):
    """Runs, newest first."""

    serializer_class = s.RunSerializer
    lifecycle_model = Run

    def get_queryset(self) -> QuerySet:
        queryset = visible_to(Run, self.request.user).select_related("workspace")
        queryset = queryset.prefetch_related("depends_on")
        for field, choices in (("state", Run.State.values), ("kind", Run.Kind.values)):
            if value := self.request.query_params.get(field):
                if value not in choices:
                    raise BadInput(f"{field} must be one of {', '.join(choices)}")
                queryset = queryset.filter(**{field: value})
        return self.filter_workspace(queryset)

    @extend_schema(request=None, responses={200: s.RunSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        run = editable(Run, request.user, pk)
        run.cancel()
        return Response(s.RunSerializer(run, context={"request": request}).data)


ACTIVATION_FILE = (
    "The activations as a NumPy .npy file (format 1.0; no pickled objects: "
    "``numpy.load(f, allow_pickle=False)``): a C-order little-endian float32 array of shape "
    "(n, d), the set's ``n`` and ``d``, one row per sample in the dataset's order. These are "
    "the bytes stored, exactly: their sha256, header included, is the set's ``sha256``."
)

POSITIONS_FILE = (
    "A set of pooling ``tokens`` (every position a row): a NumPy .npz file with two int64 "
    "arrays of the set's ``n`` entries, one per row of ``values``: ``sample``, the row's sample "
    "(its index in the dataset), and ``position``: a text's token index counted over its real "
    "tokens (padding is never stored), a vision transformer's token index (the class token is "
    "0, the patches follow), a convolutional map's h · W + w; and the bool array ``special``: "
    "the rows the ``mean`` pooling leaves out (a vision transformer's class token and DeiT's "
    "distillation token; absent from sets stored before it: none). Rows are sorted by sample, "
    "then position."
)


@_documents_404(s.ActivationSetSerializer)
@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("checkpoint", int, description="only this checkpoint's sets"),
            OpenApiParameter("dataset", int, description="only sets over this dataset"),
        ],
        responses={200: s.ActivationSetSerializer(many=True), 400: s.ErrorSerializer},
    )
)
class ActivationSetViewSet(viewsets.ReadOnlyModelViewSet):
    """Stored activations: one layer of a checkpoint over a dataset, with one pooling."""

    serializer_class = s.ActivationSetSerializer

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):  # the schema generator's look
            return ActivationSet.objects.none()
        user = self.request.user
        queryset = ActivationSet.objects.filter(
            checkpoint__workspace__memberships__user=user.pk
        ).select_related("blob")
        for field in ("checkpoint", "dataset"):
            if value := self.request.query_params.get(field):
                queryset = queryset.filter(**{f"{field}_id": _int_or_400(field, value)})
        return queryset.order_by("id")

    @extend_schema(
        description=ACTIVATION_FILE,
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 404: s.ErrorSerializer},
    )
    @action(detail=True, methods=["get"])
    def values(self, request: Request, pk: str | None = None) -> HttpResponseBase:
        """The activations as a .npy file (n × d float32, dataset order)."""
        activation = self.get_object()
        return blob_download(activation.blob, f"activations-{activation.pk}.npy")

    @extend_schema(
        description=POSITIONS_FILE,
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 404: s.ErrorSerializer},
    )
    @action(detail=True, methods=["get"])
    def positions(self, request: Request, pk: str | None = None) -> HttpResponseBase:
        """Each row's sample, position and special, for a set of pooling ``tokens`` (.npz)."""
        activation = self.get_object()
        if activation.positions is None:
            raise NotFound(
                f"activation set {activation.pk} holds one row per sample: it has no positions"
            )
        return blob_download(activation.positions, f"positions-{activation.pk}.npz")


class ExtractionViewSet(viewsets.GenericViewSet):
    serializer_class = s.ExtractionRequestSerializer

    @extend_schema(responses={200: r.TokenStorageSerializer, **ERRORS})
    @action(detail=False, methods=["post"])
    def storage(self, request: Request) -> Response:
        """What the same request would store at every position (pooling ``tokens``), before
        it runs: bytes per layer and in total, each exact, an upper bound (texts' tokens) or
        unknown. Nothing is run or created."""
        form = s.ExtractionRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        checkpoint = editable(Checkpoint, request.user, data["checkpoint"])
        dataset = editable(Dataset, request.user, data["dataset"])
        layers = extraction_layers(checkpoint, dataset, data.get("layers"))
        return Response(fits.token_storage(checkpoint, dataset, layers))

    @extend_schema(responses={200: s.RunSerializer, 201: s.RunSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        """Ask for stored activations; the same request again returns the same run (200)."""
        form = s.ExtractionRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        run, created = request_extraction(
            request.user,
            editable(Checkpoint, request.user, data["checkpoint"]),
            editable(Dataset, request.user, data["dataset"]),
            data.get("layers"),
            data["pooling"],
        )
        return _created(request, run, created)


class ComparisonViewSet(viewsets.GenericViewSet):
    serializer_class = s.ComparisonRequestSerializer

    def get_queryset(self) -> QuerySet:
        return visible_to(Run, self.request.user).filter(kind=Run.Kind.COMPARE)

    @extend_schema(responses={200: s.RunSerializer, 201: s.RunSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        """Compare two checkpoints layer × layer on a dataset (extractions are requested too)."""
        form = s.ComparisonRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = request.user
        run, created = request_comparison(
            user,
            editable(Checkpoint, user, data["checkpoint_a"]),
            editable(Checkpoint, user, data["checkpoint_b"]),
            editable(Dataset, user, data["dataset"]),
            data.get("layers_a"),
            data.get("layers_b"),
            pooling_b=data.get("pooling_b"),
            measure_params=data.get("measure_params"),
            **parameters_in(Run.Kind.COMPARE, data),
        )
        return _created(request, run, created)

    @extend_schema(responses={200: r.ComparisonMatrixSerializer, 404: s.ErrorSerializer})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        """The layer × layer matrix with baselines and provenance (cells are null until the
        run has scored them)."""
        return Response(comparison_matrix(self.get_object()))


class ModelMatrixViewSet(viewsets.GenericViewSet):
    serializer_class = s.ModelMatrixRequestSerializer

    def get_queryset(self) -> QuerySet:
        return visible_to(Run, self.request.user).filter(kind=Run.Kind.MODEL_MATRIX)

    @extend_schema(responses={200: s.RunSerializer, 201: s.RunSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        """Compare one layer of many checkpoints with each other (model × model)."""
        form = s.ModelMatrixRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = request.user
        run, created = request_model_matrix(
            user,
            [editable(Checkpoint, user, pk) for pk in data["checkpoints"]],
            editable(Dataset, user, data["dataset"]),
            data["layer"],
            measure_params=data.get("measure_params"),
            **parameters_in(Run.Kind.MODEL_MATRIX, data),
        )
        return _created(request, run, created)

    @extend_schema(responses={200: r.ModelMatrixSerializer, 404: s.ErrorSerializer})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        """The model × model matrix in hierarchical order, with baselines and provenance."""
        return Response(model_matrix(self.get_object()))


class DynamicsViewSet(viewsets.GenericViewSet):
    serializer_class = s.DynamicsRequestSerializer

    def get_queryset(self) -> QuerySet:
        return visible_to(Run, self.request.user).filter(kind=Run.Kind.DYNAMICS)

    @extend_schema(responses={200: s.RunSerializer, 201: s.RunSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        """Follow layers over the checkpoints of a series (a seed group, by step) as it stands:
        step × step matrices of the measure, similarity to the final step, statistics per
        step. Asked again after the series grew, a new run computes only the new cells."""
        form = s.DynamicsRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = request.user
        run, created = request_dynamics(
            user,
            editable_workspace(user, data["workspace"]),
            data["series"],
            editable(Dataset, user, data["dataset"]),
            data.get("layers"),
            measure_params=data.get("measure_params"),
            **parameters_in(Run.Kind.DYNAMICS, data),
        )
        return _created(request, run, created)

    @extend_schema(responses={200: r.DynamicsSerializer, 404: s.ErrorSerializer})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        """Per layer: the step × step matrix, similarity to the final step and each statistic
        over steps, with the series' logged metrics (``layers`` is empty until it finished)."""
        return Response(dynamics_view(self.get_object()))


class SeriesViewSet(viewsets.ViewSet):
    @extend_schema(
        parameters=[OpenApiParameter("workspace", str, required=True, description="its slug")],
        responses={
            200: s.SeriesSerializer(many=True),
            400: s.ErrorSerializer,
            404: s.ErrorSerializer,
        },
    )
    def list(self, request: Request) -> Response:
        """The workspace's series: its seed groups, each with its checkpoints oldest first
        (by step) and their logged metrics."""
        slug = request.query_params.get("workspace")
        if not slug:
            raise BadInput("name the workspace: ?workspace=<slug>")
        workspace = get_object_or_404(workspaces_of(request.user), slug=slug)
        page = request.build_absolute_uri(reverse("series", args=[workspace.slug]))
        return Response(
            [
                {
                    "name": name,
                    "checkpoints": [
                        {"id": c.pk, "name": c.name, "step": c.step, "metrics": c.metrics}
                        for c in checkpoints
                    ],
                    "page": f"{page}?{urlencode({'group': name})}",
                }
                for name, checkpoints in series_in(workspace).items()
            ]
        )


class AlignmentViewSet(viewsets.GenericViewSet):
    serializer_class = s.AlignmentRequestSerializer

    def get_queryset(self) -> QuerySet:
        return visible_to(Run, self.request.user).filter(kind=Run.Kind.ALIGN)

    @extend_schema(responses={200: s.RunSerializer, 201: s.RunSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        """Fit a map from a layer of A to a layer of B on a training split and score it on the
        held-out samples (extractions are requested too)."""
        form = s.AlignmentRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = request.user
        run, created = request_alignment(
            user,
            editable(Checkpoint, user, data["checkpoint_a"]),
            editable(Checkpoint, user, data["checkpoint_b"]),
            editable(Dataset, user, data["dataset"]),
            data["layer_a"],
            data["layer_b"],
            **parameters_in(Run.Kind.ALIGN, data),
        )
        return _created(request, run, created)

    @extend_schema(responses={200: r.AlignmentSummarySerializer, 404: s.ErrorSerializer})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        """Held-out R², shuffled-pairs R², retrieval and provenance (404 until it finished)."""
        run = self.get_object()
        if run.state != Run.State.SUCCEEDED:
            raise NotFound(f"run {run.pk} is {run.state}: no alignment yet")
        return Response(alignment_summary(run.alignment))

    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 404: s.ErrorSerializer}
    )
    @action(detail=True, methods=["get"])
    def residuals(self, request: Request, pk: str | None = None) -> HttpResponseBase:
        """Per-sample residuals as a .npy file (n float32, dataset order)."""
        run = self.get_object()
        if run.state != Run.State.SUCCEEDED:
            raise NotFound(f"run {run.pk} is {run.state}: no alignment yet")
        return blob_download(run.alignment.residuals, f"residuals-{run.pk}.npy")


class CompatibilityViewSet(viewsets.GenericViewSet):
    serializer_class = s.CompatibilityRequestSerializer

    def get_queryset(self) -> QuerySet:
        return visible_to(Run, self.request.user).filter(kind=Run.Kind.COMPATIBILITY)

    @extend_schema(responses={200: s.RunSerializer, 201: s.RunSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        """Cross-model retrieval between a series of checkpoints (oldest first) at one layer."""
        form = s.CompatibilityRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = request.user
        run, created = request_compatibility(
            user,
            [editable(Checkpoint, user, pk) for pk in data["checkpoints"]],
            editable(Dataset, user, data["dataset"]),
            data["layer"],
            **parameters_in(Run.Kind.COMPATIBILITY, data),
        )
        return _created(request, run, created)

    @extend_schema(responses={200: r.CompatibilityMatrixSerializer, 404: s.ErrorSerializer})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        """The matrix C[i][j] (null above the diagonal and until the run finished), the
        criteria of every pair, AC, AM, negative flips and provenance."""
        return Response(compatibility_matrix(self.get_object()))


class ProjectionViewSet(viewsets.GenericViewSet):
    serializer_class = s.ProjectionRequestSerializer

    def get_queryset(self) -> QuerySet:
        return visible_to(Run, self.request.user).filter(kind=Run.Kind.PROJECT)

    @extend_schema(responses={200: s.RunSerializer, 201: s.RunSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        """Project every sample of one layer to 2-D (the extraction is requested too)."""
        form = s.ProjectionRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        user = request.user
        checkpoint = editable(Checkpoint, user, data.pop("checkpoint"))
        dataset = editable(Dataset, user, data.pop("dataset"))
        run, created = request_projection(user, checkpoint, dataset, **data)
        return _created(request, run, created)

    def _finished(self) -> Run:
        run = self.get_object()
        if run.state != Run.State.SUCCEEDED:
            raise NotFound(f"run {run.pk} is {run.state}: no coordinates yet")
        return run

    @extend_schema(responses={200: r.ProjectionSerializer, 404: s.ErrorSerializer})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        """Method, parameters, estimator and where to fetch the coordinates (binary)."""
        run = self._finished()
        projection = run.projection
        return Response(
            {
                "run": run.pk,
                "checkpoint": run.checkpoint_id,
                "dataset": run.dataset_id,
                "layer": run.params["layer"],
                "pooling": run.params["pooling"],
                "method": projection.method,
                "parameters": {k: v for k, v in projection.parameters.items() if k != "neighbours"},
                "neighbours": projection.parameters.get("neighbours"),
                "estimator": projection.estimator,
                "explained_variance": projection.explained_variance,
                "n": run.dataset.n_samples,
                "coordinates": request.build_absolute_uri("coordinates/"),
                "format": "float32 little-endian, x and y interleaved, dataset order",
                "warnings": projection.warnings,
                "code_version": projection.code_version,
            }
        )

    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 404: s.ErrorSerializer}
    )
    @action(detail=True, methods=["get"])
    def coordinates(self, request: Request, pk: str | None = None) -> HttpResponseBase:
        """n × 2 float32 little-endian coordinates, interleaved, in dataset order."""
        coordinates = self._finished().projection.coordinates.load_array()
        return HttpResponse(encode(coordinates, "float32"), content_type="application/octet-stream")

    @extend_schema(
        parameters=[
            OpenApiParameter("other", int, required=True, description="projection, same dataset"),
            OpenApiParameter("k", int, description="neighbourhood size (default 10)"),
        ],
        responses={200: r.AgreementSerializer, **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def agreement(self, request: Request, pk: str | None = None) -> Response:
        """Per-sample Jaccard agreement of the k nearest neighbours in this projection's
        original space and in ``other``'s, and neighbour-aware displacement between the two
        pictures (Procrustes-aligned), in dataset order."""
        run = self._finished()
        other = get_object_or_404(
            self.get_queryset().filter(state=Run.State.SUCCEEDED, dataset=run.dataset),
            pk=_int_or_400("other", request.query_params.get("other", "")),
        )
        k = _int_or_400("k", request.query_params.get("k", "10"))
        agreement = pair_agreement(run, other, k)
        return Response(
            {
                "projection": run.pk,
                "other": other.pk,
                "k": k,
                "mean_agreement": float(agreement.mean()),
                "agreement": agreement.tolist(),
                "displacement": pair_displacement(run, other, k).tolist(),
            }
        )


class AlignedProjectionViewSet(viewsets.GenericViewSet):
    serializer_class = s.AlignedProjectionRequestSerializer

    def get_queryset(self) -> QuerySet:
        return visible_to(Run, self.request.user).filter(kind=Run.Kind.PROJECT_ALIGNED)

    @extend_schema(responses={200: s.RunSerializer, 201: s.RunSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        """Project several spaces of the same samples together, aligned (aligned UMAP or
        Procrustes-aligned PCA); each space becomes a projection of its own."""
        form = s.AlignedProjectionRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        user = request.user
        spaces = [
            (editable(Checkpoint, user, space["checkpoint"]), space["layer"])
            for space in data.pop("spaces")
        ]
        dataset = editable(Dataset, user, data.pop("dataset"))
        run, created = request_aligned_projections(user, spaces, dataset, **data)
        return _created(request, run, created)

    @extend_schema(responses={200: r.AlignedProjectionsSerializer, 404: s.ErrorSerializer})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        """The run and, once it has finished, the projection of each space, in order (each
        is a projection: ``/api/v1/projections/<id>/``)."""
        run = self.get_object()
        return Response(
            {
                "run": s.RunSerializer(run, context={"request": request}).data,
                "projections": [
                    {"id": m.pk, "checkpoint": m.checkpoint_id, "layer": m.params["layer"]}
                    for m in aligned_members(run)
                ],
            }
        )


class ProbeViewSet(viewsets.GenericViewSet):
    serializer_class = s.ProbeRequestSerializer

    def get_queryset(self) -> QuerySet:
        return visible_to(Run, self.request.user).filter(kind=Run.Kind.PROBE)

    @extend_schema(responses={200: s.RunSerializer, 201: s.RunSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        """Probe how layers respond to transformation families (``{key: magnitudes}``, or
        keys with their default grids; see ``/api/v1/transformations/``)."""
        form = s.ProbeRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = request.user
        run, created = request_probe(
            user,
            editable(Checkpoint, user, data["checkpoint"]),
            editable(Dataset, user, data["dataset"]),
            data.get("layers"),
            data["pooling"],
            data.get("families"),
            data["seed"],
            data.get("positions"),
        )
        return _created(request, run, created)

    @extend_schema(responses={200: r.ProbeSummarySerializer, 404: s.ErrorSerializer})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        """Every statistic of every family by layer and magnitude (empty until finished)."""
        return Response(probe_summary(self.get_object()))

    @extend_schema(
        parameters=[OpenApiParameter("family", str, required=True)],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 404: s.ErrorSerializer},
    )
    @action(detail=True, methods=["get"], url_path="per-sample")
    def per_sample(self, request: Request, pk: str | None = None) -> HttpResponseBase:
        """Per-sample invariance of one family as a .npy file: float32 (layers, magnitudes, n)."""
        row = get_object_or_404(
            self.get_object().probe_results, family=request.query_params.get("family", "")
        )
        return blob_download(row.per_sample, f"invariance-{pk}.npy")


class TransformationViewSet(viewsets.ViewSet):
    """The registered transformation families: modality, unit, default magnitudes, whether
    continuous (a Lie derivative exists), the induced action on feature maps, whether every
    position stays in place (keys stable)."""

    @extend_schema(responses={200: r.TransformationSerializer(many=True)})
    def list(self, request: Request) -> Response:
        return Response(
            [
                {
                    "key": f.key,
                    "title": f.title,
                    "modality": f.modality,
                    "unit": f.unit,
                    "magnitudes": list(f.magnitudes),
                    "continuous": f.continuous,
                    "induced": f.induced,
                    "keeps_positions": f.keeps_positions,
                }
                for f in FAMILIES.values()
            ]
        )


class WorkersView(APIView):
    """The workers of the whole server, the queues they consume and their load, and the
    number of runs by kind and state: counts, worker names and queue names only."""

    @extend_schema(responses={200: s.WorkersSerializer})
    def get(self, request: Request) -> Response:
        return Response(overview())


class MeasureViewSet(viewsets.ViewSet):
    """The registered measures with their declared properties (ids are stable) and the
    one-line definition pages write beside their values (the registry's, as in matrices)."""

    @extend_schema(responses={200: r.MeasureSerializer(many=True)})
    def list(self, request: Request) -> Response:
        return Response([describe_measure(measure_id) for measure_id in MEASURES])


@extend_schema_view(
    list=extend_schema(
        parameters=[
            WORKSPACE,
            OpenApiParameter("dataset", int, description="only selections of this dataset"),
            OpenApiParameter("tag", str, description="only selections with this tag"),
            OpenApiParameter("named", bool, description="true: only selections with a name"),
        ],
        responses={200: s.SelectionSerializer(many=True), 400: s.ErrorSerializer},
    ),
    retrieve=extend_schema(responses={200: s.SelectionSerializer, 404: s.ErrorSerializer}),
    partial_update=extend_schema(responses={200: s.SelectionSerializer, **ERRORS}),
    destroy=extend_schema(responses={204: None, 404: s.ErrorSerializer}),
)
class SelectionViewSet(
    WorkspaceFilterMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.ReadOnlyModelViewSet,
):
    """Sets of samples: drawn on a projection (``projection`` + ``polygon``, resolved on the
    server against the stored coordinates) or listed (``dataset`` + ``indices``); named and
    tagged; exported with coordinates and metadata. ``?dataset=``, ``?tag=``, ``?named=true``
    filter the list."""

    serializer_class = s.SelectionSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet:
        queryset = self.filter_workspace(visible_to(Selection, self.request.user))
        params = self.request.query_params
        if dataset := params.get("dataset"):
            queryset = queryset.filter(dataset_id=_int_or_400("dataset", dataset))
        if tag := params.get("tag"):
            queryset = queryset.filter(tags__contains=[tag])
        if params.get("named") == "true":
            queryset = queryset.exclude(name="")
        return queryset.order_by("-created_at", "-id")

    def get_object(self) -> Selection:
        selection = super().get_object()
        if self.request.method not in ("GET", "HEAD", "OPTIONS"):
            editable(Selection, self.request.user, selection.pk)
        return selection

    @extend_schema(
        request=s.SelectionRequestSerializer,
        responses={201: s.SelectionSerializer, **ERRORS},
    )
    def create(self, request: Request) -> Response:
        """Select the samples inside a polygon drawn on a projection, or given indices."""
        form = s.SelectionRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = request.user
        if "projection" in data and "polygon" in data:
            run = get_object_or_404(
                Run.objects.filter(
                    workspace__in=editable_workspaces_of(user), kind=Run.Kind.PROJECT
                ),
                pk=data["projection"],
            )
            if run.state != Run.State.SUCCEEDED:
                raise BadInput(f"projection {run.pk} is {run.state}: it has no coordinates yet")
            selection = select_in_polygon(user, run, data["polygon"], data["name"], data["tags"])
        else:
            dataset = editable(Dataset, user, data["dataset"])
            selection = select_indices(user, dataset, data["indices"], data["name"], data["tags"])
        return Response(s.SelectionSerializer(selection).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        serializer.save(tags=clean_tags(serializer.validated_data.get("tags", [])))

    @extend_schema(responses={200: r.IndicesSerializer, 404: s.ErrorSerializer})
    @action(detail=True, methods=["get"])
    def indices(self, request: Request, pk: str | None = None) -> Response:
        """The selected sample indices, ascending."""
        selection = self.get_object()
        return Response({"indices": selection.indices.load_array().tolist()})

    @extend_schema(
        parameters=[
            OpenApiParameter("file", str, enum=["csv", "parquet"], description="default csv"),
            OpenApiParameter("projection", int, description="whose x, y (default: drawn on)"),
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY,
            **ERRORS,
        },
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str | None = None) -> HttpResponseBase:
        """index, id, label, metadata columns, and x, y in a projection, as CSV or Parquet."""
        selection = self.get_object()
        kind = request.query_params.get("file", "csv")
        if kind not in SELECTION_TYPES:
            raise BadInput("file must be csv or parquet")
        run = None
        if projection := request.query_params.get("projection"):
            run = get_object_or_404(
                visible_to(Run, request.user).filter(
                    kind=Run.Kind.PROJECT, state=Run.State.SUCCEEDED, dataset=selection.dataset
                ),
                pk=_int_or_400("projection", projection),
            )
        return selection_file(selection, run, kind).response()


def _int_or_400(name: str, value: str) -> int:
    if not value.isdigit():
        raise BadInput(f"{name} must be an id (a whole number)")
    return int(value)


class UploadViewSet(viewsets.GenericViewSet):
    """Chunked, resumable uploads of large checkpoints and datasets: declare the file, PUT
    its bytes in order with ``Content-Range``, GET the offset to resume after a dropped
    connection, then complete; a worker then checks the size, the sha256 and the file (GET the
    upload until it is done or failed)."""

    serializer_class = s.UploadRequestSerializer
    parser_classes = [BoundedJSONParser, ChunkParser]  # declarations; chunks
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self) -> QuerySet:
        return Upload.objects.filter(workspace__in=editable_workspaces_of(self.request.user))

    @extend_schema(responses={200: r.UploadStateSerializer, 201: r.UploadStateSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        """Declare a file (201: send its bytes); 200 with the existing dataset or checkpoint
        when the same bytes are already in the workspace, or with the upload of them being
        checked (nothing to send)."""
        form = s.UploadRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        workspace = editable_workspace(request.user, data.pop("workspace"))
        kind, filename = data.pop("kind"), data.pop("filename")
        size, sha256 = data.pop("size"), data.pop("sha256")
        return _upload_answer(
            request,
            *uploads.start(_signed_in(request), workspace, kind, filename, size, sha256, **data),
        )

    @extend_schema(responses={200: r.UploadStateSerializer, 404: s.ErrorSerializer})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        """Where to resume (``offset`` bytes have been received), and then how the check
        goes: ``state`` checking (with ``position``), done (with ``result``) or failed (with
        ``error``)."""
        return Response(upload_state(self.get_object(), request))

    @extend_schema(
        request={"application/octet-stream": OpenApiTypes.BINARY},
        parameters=[
            OpenApiParameter(
                "Content-Range", str, OpenApiParameter.HEADER, description="bytes a-b/size"
            )
        ],
        responses={200: r.UploadStateSerializer, 409: r.UploadConflictSerializer, **ERRORS},
    )
    def update(self, request: Request, pk: str | None = None) -> Response:
        """Append the bytes ``a``…``b`` (``a`` must equal the offset; 409 says where to
        resume otherwise)."""
        upload = self.get_object()
        data = request.data  # the chunk, spooled to a file (ChunkParser)
        if not hasattr(data, "read"):
            raise BadInput("a chunk is sent as application/octet-stream")
        length = int(request.META["CONTENT_LENGTH"])
        first = uploads.parse_range(request.headers.get("Content-Range"), length, upload.size)
        chunk = cast(IO[bytes], data)  # the file ChunkParser spooled
        try:
            upload = uploads.append(upload, first, chunk, length)
        except uploads.OffsetMismatch as err:
            return Response(
                {"detail": str(err), "offset": err.offset}, status=status.HTTP_409_CONFLICT
            )
        return Response(upload_state(upload, request))

    @extend_schema(
        request=None,
        responses={200: r.UploadStateSerializer, 202: r.UploadStateSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, pk: str | None = None) -> Response:
        """Every byte is sent: 202 while a worker checks the size, the sha256 and the file
        (then ``GET`` the upload until it is done or failed); 200 once checked. Idempotent."""
        upload = uploads.complete(self.get_object())
        waiting = upload.state == Upload.State.CHECKING
        code = status.HTTP_202_ACCEPTED if waiting else status.HTTP_200_OK
        return Response(upload_state(upload, request), status=code)

    @extend_schema(responses={204: None, 404: s.ErrorSerializer})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        """Abort, or withdraw while it is being checked: the received bytes are deleted."""
        uploads.abort(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
