from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analysis.errors import InputError
from analysis.measures.registry import MEASURES
from analysis.models.choices import ARCHITECTURES, POOLINGS
from analysis.parameters import Parameter
from webapp.catalog.models import ActivationSet, Checkpoint, Dataset, Workspace
from webapp.runs.kinds import KINDS
from webapp.runs.models import Run, Selection
from webapp.runs.queue import standings


class RequestSerializer(serializers.Serializer):
    """A request body: a field it does not declare is a 400 that names it, never ignored."""

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - set(self.fields))
            if unknown:
                takes = ", ".join(self.fields)
                raise serializers.ValidationError(
                    {name: [f"unknown field; this request takes: {takes}"] for name in unknown}
                )
        return super().to_internal_value(data)


JSON_VALUE = {
    "oneOf": [
        {"type": "number"},
        {"type": "string"},
        {"type": "boolean"},
        {"type": "array", "items": {"type": "number"}},
    ],
    "nullable": True,
}
"""A parameter's value: a number, a string, a boolean, a list of numbers (``floats``) or null."""


@extend_schema_field(JSON_VALUE)
class ValueField(serializers.JSONField):
    """A parameter's value (:data:`JSON_VALUE`)."""


class LayerNodeSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="the layer's path, as layers name it")
    type = serializers.CharField()
    parameters = serializers.IntegerField(help_text="weights in it and its children")
    children = serializers.SerializerMethodField()

    @extend_schema_field({"type": "array", "items": {"$ref": "#/components/schemas/LayerNode"}})
    def get_children(self, node: dict) -> list:  # pragma: no cover - for the schema only
        return node["children"]


@extend_schema_field(LayerNodeSerializer(many=True))
class LayerTreeField(serializers.JSONField):
    """A model's parts as a tree of ``{name, type, parameters, children}``."""


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class TextsField(serializers.JSONField):
    """A JSON column holding a list of strings."""


@extend_schema_field({"type": "array", "items": {"type": "integer"}})
class IntegersField(serializers.JSONField):
    """A JSON column holding a list of whole numbers."""


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        "nullable": True,
    }
)
class PolygonField(serializers.JSONField):
    """A polygon as ``[[x, y], …]``."""


class WorkspaceSerializer(serializers.ModelSerializer):
    archived_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="when its owners archived it (read-only, listed apart); null while active",
    )
    page = serializers.SerializerMethodField(help_text="the web page that shows it")

    def get_page(self, workspace: Workspace) -> str:
        return _page(self, "workspace", workspace.slug)

    class Meta:
        model = Workspace
        fields = ["id", "name", "slug", "created_at", "archived_at", "page"]


class DatasetSerializer(serializers.ModelSerializer):
    workspace: serializers.SlugRelatedField[Workspace] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    sha256 = serializers.CharField(source="source.sha256", read_only=True)
    sample_shape = IntegersField(read_only=True, help_text="the shape of one sample")
    label_names = TextsField(read_only=True, help_text="the name of each label, by its number")
    metadata_columns = TextsField(read_only=True)
    page = serializers.SerializerMethodField(help_text="the web page that shows it")

    def get_page(self, dataset: Dataset) -> str:
        return _page(self, "dataset", dataset.pk)

    class Meta:
        model = Dataset
        fields = [
            "id",
            "workspace",
            "name",
            "description",
            "filename",
            "modality",
            "n_samples",
            "sample_shape",
            "label_names",
            "metadata_columns",
            "sha256",
            "page",
            "created_at",
        ]


class DatasetUploadSerializer(RequestSerializer):
    workspace = serializers.SlugField(help_text="slug of a workspace you can edit")
    file = serializers.FileField(help_text=".npz, .zip of images in class folders, or .csv")
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)


class CheckpointSerializer(serializers.ModelSerializer):
    workspace: serializers.SlugRelatedField[Workspace] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    sha256 = serializers.CharField(source="blob.sha256", read_only=True)
    layers = TextsField(read_only=True, help_text="every layer whose activations can be stored")
    default_layers = TextsField(read_only=True, help_text="taken when a request names none")
    layer_tree = LayerTreeField(read_only=True)
    metrics = serializers.DictField(
        child=serializers.FloatField(), read_only=True, help_text="training metrics logged with it"
    )
    page = serializers.SerializerMethodField(help_text="the web page that shows it")

    def get_page(self, checkpoint: Checkpoint) -> str:
        return _page(self, "checkpoint", checkpoint.pk)

    class Meta:
        model = Checkpoint
        fields = [
            "id",
            "workspace",
            "name",
            "description",
            "filename",
            "format",
            "architecture",
            "dataset",
            "parameter_count",
            "layers",
            "default_layers",
            "layer_tree",
            "seed_group",
            "step",
            "metrics",
            "sha256",
            "page",
            "created_at",
        ]


METRICS_HELP = (
    'training metrics logged with it, {"name": number} (loss, accuracy, epoch …): drawn over '
    "the steps of its series"
)


class CheckpointUploadSerializer(RequestSerializer):
    workspace = serializers.SlugField(help_text="slug of a workspace you can edit")
    file = serializers.FileField(
        help_text="TorchScript .pt, .safetensors state dict, .onnx, .zip / .tar of a Hugging "
        "Face model directory, or precomputed activations (.npy, .npz, .safetensors, .parquet) "
        "with `dataset`"
    )
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    architecture = serializers.ChoiceField(
        choices=sorted(ARCHITECTURES),
        required=False,
        allow_blank=True,
        help_text="required for .safetensors",
    )
    dataset = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="id of the dataset whose samples a file of precomputed activations holds",
    )
    description = serializers.CharField(required=False, allow_blank=True)
    seed_group = serializers.CharField(required=False, allow_blank=True, max_length=200)
    step = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, help_text="training step, for series"
    )
    metrics = serializers.JSONField(required=False, allow_null=True, help_text=METRICS_HELP)


MEASURE_PARAMS_HELP = (
    'the measure\'s own parameters, e.g. {"k": 10, "metric": "euclidean"} for kNN '
    "measures; GET /api/v1/measures/ lists each measure's parameters with type, default and "
    "range; omitted ones take their default. Part of the run's identity."
)


class QueueStandingSerializer(serializers.Serializer):
    position = serializers.IntegerField(
        allow_null=True, help_text="1 = the next run its queue's workers take; null while waiting"
    )
    waiting_for = serializers.IntegerField(help_text="unfinished runs it depends on")
    estimated_start = serializers.DateTimeField(
        allow_null=True, help_text="estimate from the median duration of recent runs"
    )


def _page(serializer: serializers.Serializer, name: str, pk: int | str) -> str:
    """The address of the page ``name`` of object ``pk`` (a workspace's: its slug): absolute
    when the serializer has the request."""
    path = reverse(name, args=[pk])
    request = serializer.context.get("request")
    return request.build_absolute_uri(path) if request else path


class DependencySerializer(serializers.ModelSerializer):
    class Meta:
        model = Run
        fields = ["id", "kind", "state", "progress"]


class RunParamsSerializer(serializers.Serializer):
    """A run's request as its kind's spec normalised it (part of the run's identity): the
    fields of its kind only."""

    layers = serializers.ListField(child=serializers.CharField(), required=False)
    layers_a = serializers.ListField(child=serializers.CharField(), required=False)
    layers_b = serializers.ListField(child=serializers.CharField(), required=False)
    layer = serializers.CharField(required=False)
    layer_a = serializers.CharField(required=False)
    layer_b = serializers.CharField(required=False)
    pooling_b = serializers.CharField(required=False)
    checkpoints = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="ids, in order"
    )
    spaces = serializers.ListField(
        child=serializers.ListField(child=ValueField()),
        required=False,
        help_text="[checkpoint id, layer] of each space, in order",
    )
    families = serializers.ListField(
        child=serializers.ListField(child=ValueField()),
        required=False,
        help_text="[family key, [magnitudes]] of each family probed",
    )
    measure_params = serializers.DictField(
        child=ValueField(), required=False, help_text="the measure's own parameters"
    )


def _declared_parameters() -> dict[str, serializers.Field]:
    """A field for every parameter a run kind declares (the same name has the same type in
    every kind that has it)."""
    found: dict[str, serializers.Field] = {}
    for spec in KINDS.values():
        for p in spec.parameters:
            options: dict[str, Any] = {
                "required": False,
                "allow_null": p.nullable,
                "help_text": p.help,
            }
            field: serializers.Field
            if p.kind == "floats":
                field = serializers.ListField(child=serializers.FloatField(), **options)
            elif p.kind in ("int", "float"):
                number = serializers.IntegerField if p.kind == "int" else serializers.FloatField
                field = number(**options)
            else:
                field = serializers.CharField(**options)
            found.setdefault(p.name, field)
    return found


RunParams = cast(
    type[serializers.Serializer],
    serializers.SerializerMetaclass("RunParams", (RunParamsSerializer,), _declared_parameters()),
)


@extend_schema_field(RunParams)
class RunParamsField(serializers.JSONField):
    """A run's parameters (:data:`RunParams`)."""


class RunSerializer(serializers.ModelSerializer):
    workspace: serializers.SlugRelatedField[Workspace] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    queue = serializers.SerializerMethodField(
        help_text="where a queued run stands (null once it started)"
    )

    page = serializers.SerializerMethodField(help_text="the web page that shows the run")
    params = RunParamsField(read_only=True)
    timings = serializers.DictField(
        child=serializers.FloatField(),
        read_only=True,
        help_text="what the worker measured once it succeeded: seconds (…_s) and counts",
    )
    dependencies = serializers.SerializerMethodField(help_text="the runs it needs, by id")

    def get_page(self, run: Run) -> str:
        return _page(self, KINDS[run.kind].page, run.pk)

    @extend_schema_field(DependencySerializer(many=True))
    def get_dependencies(self, run: Run) -> Any:
        needed = sorted(run.depends_on.all(), key=lambda d: d.pk)  # prefetched by lists
        return DependencySerializer(needed, many=True).data

    @extend_schema_field(QueueStandingSerializer(allow_null=True))
    def get_queue(self, run: Run) -> dict | None:
        if getattr(self, "_standings", None) is None:  # once for a whole page of a list
            parent = self.parent
            runs = (
                list(parent.instance or [])
                if isinstance(parent, serializers.ListSerializer)
                else [run]
            )
            self._standings = standings(runs)
        found = self._standings.get(run.pk)
        return found.to_json() if found else None

    class Meta:
        model = Run
        fields = [
            "id",
            "workspace",
            "kind",
            "name",
            "state",
            "progress",
            "queue",
            "page",
            "params",
            "dataset",
            "checkpoint",
            "checkpoint_b",
            "depends_on",
            "dependencies",
            "error",
            "heartbeat_at",
            "code_version",
            "timings",
            "created_at",
            "started_at",
            "finished_at",
        ]


def parameter_field(parameter: Parameter) -> serializers.Field:
    """The request field of a declared parameter (a run kind's, see ``webapp.runs.kinds``)."""
    options: dict[str, Any] = {"default": parameter.default, "help_text": parameter.help}
    if parameter.kind == "choice":
        offered = ", ".join(parameter.choices)  # e.g. positions here without per-position
        invalid = f'"{{input}}" is not one of its choices here: {offered}'
        return serializers.ChoiceField(
            choices=list(parameter.choices), error_messages={"invalid_choice": invalid}, **options
        )
    field = serializers.IntegerField if parameter.kind == "int" else serializers.FloatField
    bounds: dict[str, Any] = {"min_value": parameter.minimum, "max_value": parameter.maximum}
    return field(**bounds, **options)


def with_parameters(kind: str) -> type[RequestSerializer]:
    """A request serializer with a field for every parameter of ``kind``'s spec."""
    fields = {p.name: parameter_field(p) for p in KINDS[kind].parameters}
    name = "".join(word.title() for word in kind.split("_")) + "Parameters"
    made = serializers.SerializerMetaclass(name, (RequestSerializer,), fields)
    return cast(type[RequestSerializer], made)


# The parameters of the run kinds, built from their specs (mypy sees their base).
if TYPE_CHECKING:
    ExtractParameters = RequestSerializer
    CompareParameters = RequestSerializer
    ModelMatrixParameters = RequestSerializer
    DynamicsParameters = RequestSerializer
    AlignParameters = RequestSerializer
    CompatibilityParameters = RequestSerializer
    ProjectParameters = RequestSerializer
    ProbeParameters = RequestSerializer
    ProjectAlignedParameters = RequestSerializer
else:
    ExtractParameters = with_parameters(Run.Kind.EXTRACT)
    CompareParameters = with_parameters(Run.Kind.COMPARE)
    ModelMatrixParameters = with_parameters(Run.Kind.MODEL_MATRIX)
    DynamicsParameters = with_parameters(Run.Kind.DYNAMICS)
    AlignParameters = with_parameters(Run.Kind.ALIGN)
    CompatibilityParameters = with_parameters(Run.Kind.COMPATIBILITY)
    ProjectParameters = with_parameters(Run.Kind.PROJECT)
    ProbeParameters = with_parameters(Run.Kind.PROBE)
    ProjectAlignedParameters = with_parameters(Run.Kind.PROJECT_ALIGNED)


class MeasureParametersMixin(serializers.Serializer):
    """The measure's own parameters, checked against its declaration."""

    measure_params = serializers.DictField(required=False, help_text=MEASURE_PARAMS_HELP)

    def validate(self, data: Any) -> Any:
        try:
            MEASURES[data["measure"]].configured(data.get("measure_params"))
        except InputError as err:
            raise serializers.ValidationError({"measure_params": [str(err)]}) from None
        return data


class ExtractionRequestSerializer(ExtractParameters):
    checkpoint = serializers.IntegerField()
    dataset = serializers.IntegerField()
    layers = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="default: every top-level block and the output",
    )


class ComparisonRequestSerializer(MeasureParametersMixin, CompareParameters):
    checkpoint_a = serializers.IntegerField()
    checkpoint_b = serializers.IntegerField()
    dataset = serializers.IntegerField()
    layers_a = serializers.ListField(child=serializers.CharField(), required=False)
    layers_b = serializers.ListField(child=serializers.CharField(), required=False)
    pooling_b = serializers.ChoiceField(
        choices=list(POOLINGS),
        required=False,
        help_text="pooling of checkpoint B's layers, when it differs from A's",
    )


class ModelMatrixRequestSerializer(MeasureParametersMixin, ModelMatrixParameters):
    checkpoints = serializers.ListField(child=serializers.IntegerField(), min_length=2)
    dataset = serializers.IntegerField()
    layer = serializers.CharField(help_text="a layer every checkpoint has")


class DynamicsRequestSerializer(MeasureParametersMixin, DynamicsParameters):
    workspace = serializers.SlugField(help_text="slug of a workspace you can edit")
    series = serializers.CharField(
        max_length=200, help_text="the seed group whose checkpoints (by step) are followed"
    )
    dataset = serializers.IntegerField()
    layers = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="default: the last checkpoint's top-level blocks and output",
    )


class SeriesCheckpointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    step = serializers.IntegerField(allow_null=True)
    metrics = serializers.DictField(child=serializers.FloatField())


class SeriesSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="the seed group")
    checkpoints = SeriesCheckpointSerializer(many=True, help_text="oldest first")
    page = serializers.CharField(help_text="the web page that shows it")


class AlignmentRequestSerializer(AlignParameters):
    checkpoint_a = serializers.IntegerField()
    checkpoint_b = serializers.IntegerField()
    dataset = serializers.IntegerField()
    layer_a = serializers.CharField()
    layer_b = serializers.CharField()


class CompatibilityRequestSerializer(CompatibilityParameters):
    checkpoints = serializers.ListField(
        child=serializers.IntegerField(), min_length=2, help_text="the series, oldest first"
    )
    dataset = serializers.IntegerField(help_text="a labelled dataset")
    layer = serializers.CharField(help_text="a layer every checkpoint has")


class ProjectionRequestSerializer(ProjectParameters):
    checkpoint = serializers.IntegerField()
    dataset = serializers.IntegerField()
    layer = serializers.CharField()


class ProbeRequestSerializer(ExtractionRequestSerializer, ProbeParameters):
    """The layers of a checkpoint to probe (as for an extraction), and the families."""

    # A probe's pooling, with its own help (the extraction's field comes first otherwise).
    pooling = parameter_field(KINDS[Run.Kind.PROBE].parameter("pooling"))
    # Absent unless given: given with a pooling other than tokens, it is refused.
    positions = serializers.ChoiceField(
        choices=list(KINDS[Run.Kind.PROBE].parameter("positions").choices),
        required=False,
        help_text=KINDS[Run.Kind.PROBE].parameter("positions").help
        + "; default per-position with pooling tokens, refused with any other pooling",
    )

    families = serializers.JSONField(
        required=False,
        help_text='{"image/rotation": [0, 15, 45], …} or a list of keys (default grids); '
        "default: three families for the dataset's modality",
    )

    def validate_families(self, value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(k, str) for k in value):
            return value
        if isinstance(value, dict) and all(
            isinstance(m, list) and all(isinstance(t, int | float) for t in m)
            for m in value.values()
        ):
            return value
        raise serializers.ValidationError(
            "a list of family keys, or an object mapping each key to a list of magnitudes"
        )


class SpaceSerializer(serializers.Serializer):
    checkpoint = serializers.IntegerField()
    layer = serializers.CharField()


class AlignedProjectionRequestSerializer(ProjectAlignedParameters):
    dataset = serializers.IntegerField()
    spaces = serializers.ListField(
        child=SpaceSerializer(),
        min_length=2,
        help_text="layers of one checkpoint, or one layer of several checkpoints, in order",
    )


class ActivationSetSerializer(serializers.ModelSerializer):
    sha256 = serializers.CharField(source="blob.sha256", read_only=True)

    class Meta:
        model = ActivationSet
        fields = [
            "id",
            "checkpoint",
            "dataset",
            "layer",
            "pooling",
            "n",
            "d",
            "dtype",
            "sha256",
            "run",
            "created_at",
        ]


class WorkerSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Celery node name, e.g. gpu@host")
    queues = serializers.ListField(child=serializers.CharField())
    active = serializers.IntegerField(help_text="runs it is computing now")
    concurrency = serializers.IntegerField(allow_null=True, help_text="pool processes")
    processed = serializers.IntegerField(help_text="runs it finished since it started")
    started_at = serializers.DateTimeField()


class SilentWorkerSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Celery node name, e.g. gpu@host")
    seen_at = serializers.DateTimeField(help_text="when it last said it was alive")


class QueueSerializer(serializers.Serializer):
    name = serializers.CharField()
    waiting = serializers.IntegerField(help_text="runs queued for its workers (every team's)")
    workers = serializers.IntegerField(help_text="live workers consuming it")


class RunCountSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Run.Kind.choices)
    state = serializers.ChoiceField(choices=Run.State.choices)
    count = serializers.IntegerField()


class WorkersSerializer(serializers.Serializer):
    broker = serializers.ChoiceField(choices=["ok", "unreachable"])
    silent_after_s = serializers.FloatField(
        help_text="a worker that has not said it is alive for this long is not counted"
    )
    workers = WorkerSerializer(many=True, help_text="every live worker, busy or not")
    silent = SilentWorkerSerializer(
        many=True, help_text="workers that stopped without saying so, within the last hour"
    )
    queues = QueueSerializer(many=True)
    runs = RunCountSerializer(many=True, help_text="runs of every workspace, by kind and state")


@extend_schema_field(
    {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Messages"}}
)
class ErrorsField(serializers.DictField):
    """A 400's messages by field (``webapp.api.schema.MESSAGES``)."""


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    # The metaclass takes the field off the class, so Serializer.errors stays as it is.
    errors = ErrorsField(  # type: ignore[assignment]
        required=False, help_text="messages by field, for 400s"
    )


class SelectionSerializer(serializers.ModelSerializer):
    workspace: serializers.SlugRelatedField[Workspace] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    tags = TextsField(required=False)
    polygon = PolygonField(
        read_only=True, help_text="the lasso it was drawn with, in its projection's coordinates"
    )

    class Meta:
        model = Selection
        fields = [
            "id",
            "workspace",
            "dataset",
            "projection",
            "name",
            "tags",
            "count",
            "polygon",
            "created_at",
        ]
        read_only_fields = ["dataset", "projection", "count", "polygon"]


class SelectionRequestSerializer(RequestSerializer):
    """Either ``projection`` and ``polygon`` (a lasso in its coordinates, resolved on the
    server), or ``dataset`` and ``indices``."""

    projection = serializers.IntegerField(required=False)
    polygon = serializers.JSONField(required=False, help_text="[[x, y], …], at least 3 vertices")
    dataset = serializers.IntegerField(required=False)
    indices = serializers.ListField(child=serializers.IntegerField(min_value=0), required=False)
    name = serializers.CharField(default="", allow_blank=True, max_length=200)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), default=list)

    def validate(self, data: Any) -> Any:
        by_polygon = "projection" in data and "polygon" in data
        by_indices = "dataset" in data and "indices" in data
        if by_polygon == by_indices:
            raise serializers.ValidationError(
                "give either projection and polygon, or dataset and indices"
            )
        return data


class UploadRequestSerializer(RequestSerializer):
    workspace = serializers.SlugField(help_text="slug of a workspace you can edit")
    kind = serializers.ChoiceField(choices=["dataset", "checkpoint"])
    filename = serializers.CharField(max_length=255)
    size = serializers.IntegerField(min_value=1, help_text="bytes")
    sha256 = serializers.RegexField(r"^[0-9a-fA-F]{64}$", help_text="of the whole file")
    name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    architecture = serializers.ChoiceField(
        choices=sorted(ARCHITECTURES), required=False, allow_blank=True, default=""
    )
    seed_group = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    step = serializers.IntegerField(required=False, allow_null=True, min_value=0, default=None)
    metrics = serializers.JSONField(
        required=False, default=None, allow_null=True, help_text=METRICS_HELP
    )
    dataset = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        default=None,
        help_text="for precomputed activations: id of the dataset whose samples they are",
    )


class UploadSerializer(serializers.Serializer):
    id = serializers.UUIDField(allow_null=True)
    state = serializers.CharField()
    offset = serializers.IntegerField(source="received", required=False)
    size = serializers.IntegerField(required=False)
    chunk_size = serializers.IntegerField(required=False)
    error = serializers.CharField(required=False)


class MemberSerializer(serializers.Serializer):
    user = serializers.IntegerField(source="user_id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    role = serializers.ChoiceField(choices=["owner", "editor", "viewer"])


class InvitationRequestSerializer(RequestSerializer):
    role = serializers.ChoiceField(choices=["owner", "editor", "viewer"], default="editor")
