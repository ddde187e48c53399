"""The shapes of the JSON bodies that views build from a service's dict (a result matrix, an
upload's state, a probe's statistics…), declared for the OpenAPI schema only: the views answer
with the services' dicts as they are, and ``tests/webapp/test_schema.py`` checks real answers
against these shapes."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from webapp.api import serializers as s
from webapp.api.serializers import ValueField
from webapp.catalog.fits import ESTIMATES
from webapp.catalog.models import Upload
from webapp.runs.models import Run

# ---------------------------------------------------------------------------- building blocks


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def numbers(help_text: str = "", null: bool = True, **kwargs: Any) -> serializers.ListField:
    """A list of numbers, each possibly null (not computed, or not defined)."""
    child = serializers.FloatField(allow_null=null)
    return serializers.ListField(child=child, help_text=help_text, **kwargs)


def grid(help_text: str, **kwargs: Any) -> serializers.ListField:
    """A matrix of numbers (``[row][column]``), null in the cells without one."""
    return serializers.ListField(child=numbers(), help_text=help_text, **kwargs)


def texts(help_text: str = "", **kwargs: Any) -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(), help_text=help_text, **kwargs)


def pairs(child: serializers.Field, help_text: str) -> serializers.DictField:
    """Values by pair of series positions, keyed ``"i,j"`` (i > j: the newer model first)."""
    return serializers.DictField(child=child, help_text=f'{help_text}; keyed "i,j", i > j')


def interval(**kwargs: Any) -> serializers.ListField:
    return numbers(null=False, min_length=2, max_length=2, **kwargs)


class NamedSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="null where it names a role")
    name = serializers.CharField()


# ---------------------------------------------------------------------------- catalog, uploads


class ParameterSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["int", "float", "choice", "floats"])
    default = ValueField()
    help = serializers.CharField()
    minimum = serializers.FloatField(allow_null=True)
    maximum = serializers.FloatField(allow_null=True)
    exclusive_minimum = serializers.BooleanField()
    choices = texts("the values a choice takes")
    nullable = serializers.BooleanField(help_text="null is accepted, meaning what help says")
    labels = texts("a readable name for each choice, in order")


class MeasureSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="stable, e.g. cka/linear")
    name = serializers.CharField()
    reference = serializers.CharField()
    range = numbers("the values it can take: [low, high]", null=False)
    can_be_negative = serializers.BooleanField(
        help_text="it can go below 0 (pages colour it on a scale diverging around 0)"
    )
    larger_is_more_similar = serializers.BooleanField()
    definition = serializers.CharField(help_text="one line, as pages write it beside its values")
    symmetric = serializers.BooleanField()
    metric = serializers.BooleanField(help_text="a distance satisfying the triangle inequality")
    invariant_to = texts("transformations of either space that leave it unchanged")
    parameters = ParameterSerializer(many=True)
    exact_baseline = serializers.BooleanField(
        help_text="its chance level, the permutation baseline beside every value (what "
        "unrelated representations of the same n and d score), is exact over all row "
        "permutations; false: estimated from row shuffles"
    )
    baseline_warning_at = serializers.FloatField(
        help_text="a baseline at least this similar is flagged: the value says little"
    )
    compares_positions = serializers.BooleanField(
        help_text="a comparison of token-level sets (pooling tokens) may take each position as "
        "a sample where both sides hold the same rows; false: they are pooled on the fly"
    )


class TransformationSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="stable, e.g. image/rotation")
    title = serializers.CharField()
    modality = serializers.CharField()
    unit = serializers.CharField(help_text="the unit of the magnitude t")
    magnitudes = numbers("the default grid, ascending, from 0 (the identity)", null=False)
    continuous = serializers.BooleanField(help_text="a Lie derivative exists")
    induced = serializers.CharField(
        allow_null=True, help_text="the action on convolutional feature maps, if any"
    )
    keeps_positions = serializers.BooleanField(
        help_text="every position stays in place (a token-level probe compares position p of "
        "g x with position p of x); false: positions move or change, and a token-level probe "
        "pools each sample's positions"
    )


class UploadStateSerializer(serializers.Serializer):
    """An upload, or (``id`` null, ``state`` done) the dataset or checkpoint that the same
    bytes already made in the workspace: then only ``id``, ``state``, ``kind`` and
    ``result`` are given."""

    id = serializers.UUIDField(allow_null=True, help_text="null when nothing is to be sent")
    kind = serializers.ChoiceField(choices=Upload.Kind.choices)
    filename = serializers.CharField(required=False)
    state = serializers.ChoiceField(choices=Upload.State.choices)
    offset = serializers.IntegerField(required=False, help_text="bytes received: resume here")
    size = serializers.IntegerField(required=False, help_text="bytes of the whole file")
    chunk_size = serializers.IntegerField(required=False, help_text="suggested bytes per PUT")
    max_chunk_size = serializers.IntegerField(required=False, help_text="largest PUT taken")
    position = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="among uploads waiting for a check (1 = next); null once a worker checks it",
    )
    error = serializers.CharField(required=False, help_text="why it was refused (failed)")
    result = serializers.SerializerMethodField(help_text="what it made, once done")

    @extend_schema_field({"oneOf": [_ref("Dataset"), _ref("Checkpoint")], "nullable": True})
    def get_result(self, upload: Any) -> dict | None:  # pragma: no cover - for the schema
        return None


class UploadConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    offset = serializers.IntegerField(help_text="bytes received: send from here")


class InvitationSerializer(serializers.Serializer):
    url = serializers.URLField(help_text="the one-use link to give to the person invited")
    role = serializers.ChoiceField(choices=["owner", "editor", "viewer"])
    expires_at = serializers.DateTimeField()


class IndicesSerializer(serializers.Serializer):
    indices = serializers.ListField(
        child=serializers.IntegerField(min_value=0), help_text="sample indices, ascending"
    )


ESTIMATE_HELP = "; ".join(f"{k}: {v}" for k, v in ESTIMATES.items())


class LayerStorageSerializer(serializers.Serializer):
    layer = serializers.CharField()
    rows = serializers.IntegerField(allow_null=True, help_text="one per position stored")
    d = serializers.IntegerField(allow_null=True, help_text="values per row")
    bytes = serializers.IntegerField(
        allow_null=True,
        help_text="rows × (4 d + 17): float32 values, each row's int64 sample and position, "
        "and its bool special (left out of mean)",
    )
    estimate = serializers.ChoiceField(choices=list(ESTIMATES), help_text=ESTIMATE_HELP)


class TokenStorageSerializer(serializers.Serializer):
    """What an extraction at every position (pooling ``tokens``) would store."""

    layers = LayerStorageSerializer(many=True)
    bytes = serializers.IntegerField(allow_null=True, help_text="in total; null if one is unknown")
    estimate = serializers.ChoiceField(
        choices=list(ESTIMATES),
        help_text="of the total: exact if every layer's is, a bound if one is, else unknown",
    )
    samples = serializers.IntegerField(help_text="the dataset's")
    max_tokens = serializers.IntegerField(
        allow_null=True, help_text="the most tokens the model reads a text as; null: not text"
    )


# ---------------------------------------------------------------------------- results


POSITIONS_READ = (
    "how token-level sets (pooling tokens) were read: pooled on the fly (mean, first or "
    "last) or per position, and why; empty for sets of one vector per sample"
)


class MatrixProvenanceSerializer(serializers.Serializer):
    pooling = serializers.CharField()
    positions = serializers.CharField(
        help_text="how token-level sets (pooling tokens) were compared: per position or pooled "
        "on the fly, and why; where pairs of layers were read differently, each reading with "
        "how many pairs it holds for; empty for sets of one vector per sample"
    )
    n_permutations = serializers.IntegerField()
    baseline = serializers.CharField(help_text="what the baseline is")
    n_bootstrap = serializers.IntegerField()
    seed = serializers.IntegerField()
    code_version = serializers.CharField()


class ComparisonMatrixSerializer(serializers.Serializer):
    """A layer × layer matrix (rows: layers of A, columns: layers of B); every grid is
    ``[row][column]`` and null where the pair is not scored yet."""

    run = serializers.IntegerField()
    state = serializers.ChoiceField(choices=Run.State.choices)
    measure = MeasureSerializer()
    dataset = NamedSerializer()
    checkpoint_a = NamedSerializer()
    checkpoint_b = NamedSerializer()
    layers_a = texts("the rows")
    layers_b = texts("the columns")
    value = grid("the measure's value")
    baseline = grid("mean under permutations of the samples (chance level)")
    baseline_std = grid("its standard deviation")
    ci_low = grid("95 % bootstrap interval, low end (null without bootstrap)")
    ci_high = grid("95 % bootstrap interval, high end")
    estimator = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField(allow_null=True)),
        help_text="how each value was estimated",
    )
    d_a = serializers.ListField(child=serializers.IntegerField(allow_null=True))
    d_b = serializers.ListField(child=serializers.IntegerField(allow_null=True))
    n = serializers.IntegerField(help_text="samples")
    provenance = MatrixProvenanceSerializer()
    baseline_warning_threshold = serializers.FloatField()
    warnings = texts()


class ModelMatrixSerializer(ComparisonMatrixSerializer):
    """Model × model at one layer: rows and columns are checkpoints (``layers_a`` and
    ``layers_b`` hold their names), in hierarchical order once every cell is scored."""

    checkpoints = NamedSerializer(many=True, help_text="rows and columns, in order")
    layer = serializers.CharField()


class CompatibilityMeasureSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="retrieval/<criterion>")
    name = serializers.CharField()
    range = numbers(null=False)
    can_be_negative = serializers.BooleanField()
    larger_is_more_similar = serializers.BooleanField()
    reading = serializers.CharField(help_text="what a higher value means")
    definition = serializers.CharField()


class CompatibilityResultSerializer(serializers.Serializer):
    """Series positions i, j index ``checkpoints``; matrices are ``[queries][gallery]``,
    null where the two widths differ."""

    names = texts()
    criterion = serializers.ChoiceField(choices=["top1", "top5", "mean_ap"])
    top1 = grid("top-1 accuracy")
    top5 = grid("top-5 accuracy")
    mean_ap = grid("mean average precision")
    ecc = pairs(serializers.BooleanField(), "M(i, j) > M(j, j)")
    update_gain = pairs(
        serializers.FloatField(allow_null=True),
        "share of the new model's own improvement kept with the old gallery",
    )
    ac = serializers.FloatField(allow_null=True)
    am = serializers.FloatField(allow_null=True)
    flips = pairs(
        serializers.ListField(child=serializers.IntegerField()),
        "query positions that the old pair found and the new pair does not (negative flips)",
    )
    n_queries = serializers.IntegerField()
    n_gallery = serializers.IntegerField()
    warnings = texts()
    difference = pairs(serializers.FloatField(allow_null=True), "M(i, j) − M(j, j)")
    ci_low = grid("95 % bootstrap interval over queries, low end")
    ci_high = grid("high end")
    difference_ci = pairs(interval(allow_null=True), "95 % interval of the difference")
    update_gain_ci = pairs(interval(allow_null=True), "95 % interval of the update gain")
    ac_ci = interval(allow_null=True)
    am_ci = interval(allow_null=True)
    verdict = pairs(serializers.CharField(), "what the difference's interval says")
    chance = serializers.DictField(
        child=serializers.FloatField(), help_text="each criterion under a random ranking"
    )
    n_bootstrap = serializers.IntegerField()
    seed = serializers.IntegerField()


class CompatibilityProvenanceSerializer(serializers.Serializer):
    layer = serializers.CharField()
    pooling = serializers.CharField()
    metric = serializers.CharField()
    criterion = serializers.CharField()
    query_fraction = serializers.FloatField()
    positions = serializers.CharField(help_text=POSITIONS_READ)
    seed = serializers.IntegerField()
    n_bootstrap = serializers.IntegerField(
        allow_null=True, help_text="resamples of the queries behind the intervals"
    )
    code_version = serializers.CharField()


class CompatibilityMatrixSerializer(serializers.Serializer):
    """C[i][j] = the criterion with queries embedded by model i and the gallery by model j
    (i ≥ j; null above the diagonal and until the run finished)."""

    run = serializers.IntegerField()
    state = serializers.ChoiceField(choices=Run.State.choices)
    measure = CompatibilityMeasureSerializer()
    dataset = NamedSerializer()
    checkpoints = NamedSerializer(many=True, help_text="the series, oldest first")
    layers_a = texts("the rows: the checkpoints' names")
    layers_b = texts("the columns: the checkpoints' names")
    value = grid("C", allow_null=True)
    ci_low = grid("95 % bootstrap interval of C over queries, low end", allow_null=True)
    ci_high = grid("high end", allow_null=True)
    checkpoint_a = NamedSerializer()
    checkpoint_b = NamedSerializer()
    result = CompatibilityResultSerializer(allow_null=True, help_text="null until finished")
    query_indices = serializers.ListField(
        child=serializers.IntegerField(), allow_null=True, help_text="the samples used as queries"
    )
    provenance = CompatibilityProvenanceSerializer()


class AlignmentProvenanceSerializer(serializers.Serializer):
    method = serializers.CharField(required=False)
    code_version = serializers.CharField()


class AlignmentSummarySerializer(serializers.Serializer):
    run = serializers.IntegerField()
    method = serializers.CharField()
    estimator = serializers.CharField()
    checkpoint_a = NamedSerializer()
    checkpoint_b = NamedSerializer()
    dataset = NamedSerializer()
    layer_a = serializers.CharField()
    layer_b = serializers.CharField()
    n_train = serializers.IntegerField()
    n_test = serializers.IntegerField()
    d_a = serializers.IntegerField()
    d_b = serializers.IntegerField()
    r2 = serializers.FloatField(help_text="held-out R² of the map from A to B")
    r2_shuffled = serializers.FloatField(help_text="the same map fitted on shuffled pairs")
    retrieval_top1 = serializers.FloatField()
    retrieval_top5 = serializers.FloatField()
    retrieval_chance_top1 = serializers.FloatField()
    warnings = texts()
    provenance = serializers.DictField(
        child=ValueField(), help_text="the alignment's parameters and code_version"
    )


class ProbeMeasureSerializer(serializers.Serializer):
    name = serializers.CharField()
    range = numbers(null=False)
    can_be_negative = serializers.BooleanField()
    definition = serializers.CharField()


class ProbeScoreSerializer(serializers.Serializer):
    name = serializers.CharField()
    definition = serializers.CharField()


class ProbeRowSerializer(serializers.Serializer):
    layer = serializers.CharField()
    lie = serializers.FloatField(allow_null=True, help_text="Lie derivative (continuous only)")
    transform_r2 = serializers.FloatField(allow_null=True)
    invariance = serializers.FloatField(allow_null=True, help_text="at the largest magnitude")
    learned = serializers.FloatField(allow_null=True, help_text="learned-map R², largest t")
    identity = serializers.FloatField(allow_null=True, help_text="identity-map R², largest t")
    shuffled = serializers.FloatField(allow_null=True, help_text="shuffled-pairs R², largest t")


class ShareAtSerializer(serializers.Serializer):
    t = serializers.FloatField()
    share = serializers.FloatField()


class FamilyStatisticsSerializer(serializers.Serializer):
    """One family's statistics as the worker stored them: lists ``[layer][magnitude]``."""

    family = serializers.CharField()
    magnitudes = numbers(null=False)
    layers = texts()
    invariance = grid("see measures.invariance")
    equivariance_r2 = grid("see measures.equivariance_r2")
    identity_r2 = grid("see measures.identity_r2")
    shuffled_r2 = grid("see measures.shuffled_r2")
    structured_error = grid("see measures.structured_error")
    lie_derivative = numbers("[layer]; continuous families only", allow_null=True)
    transform_r2 = numbers("[layer]")
    consistency = numbers("[magnitude]: share of samples whose top class holds")
    warnings = texts()


class ProbeOverlaySerializer(FamilyStatisticsSerializer):
    run = serializers.IntegerField()
    checkpoint = serializers.CharField()


class ProbeFamilySerializer(FamilyStatisticsSerializer):
    key = serializers.CharField()
    title = serializers.CharField()
    unit = serializers.CharField()
    continuous = serializers.BooleanField()
    induced = serializers.CharField(allow_null=True)
    positions = serializers.CharField(
        allow_null=True,
        help_text="how token-level activations (pooling tokens) were read: per-position "
        "(position p of g x against position p of x, where the family keeps positions in "
        "place), or pooled on the fly by mean, first or last; null for one vector per sample",
    )
    positions_note = serializers.CharField(help_text="the same in words, with why")
    rows = ProbeRowSerializer(many=True, help_text="one per layer")
    consistency_by_t = ShareAtSerializer(many=True)
    overlays = ProbeOverlaySerializer(many=True, help_text="the same family of other runs")


class ProbeSummarySerializer(serializers.Serializer):
    run = serializers.IntegerField()
    checkpoint = serializers.CharField()
    dataset = serializers.CharField()
    measures = serializers.DictField(
        child=ProbeMeasureSerializer(), help_text="the statistics, by key: name and definition"
    )
    scores = serializers.DictField(
        child=ProbeScoreSerializer(),
        help_text="the per-layer and per-magnitude scores beside them, by key",
    )
    families = ProbeFamilySerializer(many=True, help_text="empty until the run finished")


class NeighbourSearchSerializer(serializers.Serializer):
    method = serializers.CharField(help_text="exact, or nn-descent (approximate)")
    estimator = serializers.CharField()
    k = serializers.IntegerField(help_text="neighbours kept per sample")
    metric = serializers.CharField()
    seconds = serializers.FloatField(help_text="the search's wall time")
    recall = serializers.FloatField(
        required=False, help_text="nn-descent: mean recall@k against exact search"
    )
    recall_interval = serializers.ListField(
        child=serializers.FloatField(), required=False, help_text="its 95% interval"
    )
    recall_sample = serializers.IntegerField(
        required=False, help_text="random samples the recall was measured on"
    )
    recall_seconds = serializers.FloatField(required=False)


class ProjectionSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    checkpoint = serializers.IntegerField()
    dataset = serializers.IntegerField()
    layer = serializers.CharField()
    pooling = serializers.CharField()
    method = serializers.CharField(help_text="pca, umap or tsne")
    parameters = serializers.DictField(child=ValueField())
    neighbours = NeighbourSearchSerializer(
        allow_null=True,
        help_text="how each sample's nearest neighbours in the original space were found "
        "(null for projections computed before this was recorded)",
    )
    estimator = serializers.CharField()
    explained_variance = numbers("PCA: share of variance of each axis", allow_null=True)
    n = serializers.IntegerField(help_text="points")
    coordinates = serializers.URLField(help_text="where to fetch them (binary)")
    format = serializers.CharField(help_text="how the coordinates are encoded")
    warnings = texts()
    code_version = serializers.CharField()


class AgreementSerializer(serializers.Serializer):
    projection = serializers.IntegerField()
    other = serializers.IntegerField()
    k = serializers.IntegerField()
    mean_agreement = serializers.FloatField()
    agreement = numbers("per sample, dataset order: Jaccard of the k nearest neighbours")
    displacement = numbers("per sample, dataset order: movement between the two pictures")


class AlignedMemberSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="a projection: /api/v1/projections/<id>/")
    checkpoint = serializers.IntegerField()
    layer = serializers.CharField()


class AlignedProjectionsSerializer(serializers.Serializer):
    run = s.RunSerializer()
    projections = AlignedMemberSerializer(many=True, help_text="in order; empty until finished")


# ---------------------------------------------------------------------------- series dynamics


class DynamicsCheckpointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    step = serializers.IntegerField(allow_null=True)
    metrics = serializers.DictField(child=serializers.FloatField(), help_text="as logged")


class StatisticSerializer(serializers.Serializer):
    name = serializers.CharField()
    definition = serializers.CharField()


class DynamicsMatrixSerializer(serializers.Serializer):
    """One layer's step × step matrix, in the shape of a comparison's matrix."""

    measure = MeasureSerializer()
    layers_a = texts("the steps (rows)")
    layers_b = texts("the steps (columns)")
    value = grid("the measure between the two steps; null where it refused the pair")
    n = serializers.IntegerField(help_text="samples")
    checkpoint_a = NamedSerializer()
    checkpoint_b = NamedSerializer()


class DynamicsLayerSerializer(serializers.Serializer):
    layer = serializers.CharField()
    d = serializers.IntegerField()
    json_id = serializers.CharField(help_text="the page's id of its matrix")
    matrix = DynamicsMatrixSerializer()
    to_final = numbers("the measure between each step and the final one (the last column)")
    refusals = serializers.DictField(
        child=serializers.CharField(), help_text='why a cell has no value, keyed "row,column"'
    )
    refusal_reasons = texts()
    statistics = serializers.DictField(
        child=numbers(), help_text="each statistic of `statistics` at each step"
    )
    probes = serializers.DictField(
        child=numbers(), help_text="linear-probe accuracy of each probed column at each step"
    )


class CellCountSerializer(serializers.Serializer):
    computed = serializers.IntegerField(help_text="cells this run computed")
    reused = serializers.IntegerField(help_text="cells taken from earlier runs")


class DynamicsSerializer(serializers.Serializer):
    """A series' dynamics on one dataset, per layer; ``layers`` is empty until the run has
    finished."""

    run = serializers.IntegerField()
    state = serializers.ChoiceField(choices=Run.State.choices)
    series = serializers.CharField(help_text="the seed group")
    measure = MeasureSerializer()
    pooling = serializers.CharField()
    positions = serializers.CharField(
        help_text=f"{POSITIONS_READ}; a series' statistics read each sample's mean"
    )
    dataset = NamedSerializer()
    checkpoints = DynamicsCheckpointSerializer(many=True, help_text="oldest first")
    steps = serializers.ListField(child=serializers.IntegerField(allow_null=True))
    step_labels = texts()
    metrics = serializers.DictField(
        child=numbers(), help_text="each logged metric at each step (null where not logged)"
    )
    statistics = serializers.DictField(
        child=StatisticSerializer(), help_text="the statistics drawn over steps"
    )
    accuracies = texts("the statistics that are accuracies on the label")
    layers = DynamicsLayerSerializer(many=True)
    label_chance = serializers.FloatField(
        required=False, allow_null=True, help_text="share of the most frequent label"
    )
    probe_columns = serializers.DictField(
        child=serializers.FloatField(),
        help_text="probed metadata columns, each with its chance level",
    )
    cells = CellCountSerializer(required=False)
    code_version = serializers.CharField(required=False)


# ---------------------------------------------------------------------------- nested embeddings


class NestedStatisticSerializer(serializers.Serializer):
    name = serializers.CharField()
    definition = serializers.CharField(help_text="one line, as the page writes it")


class NestedCurveSerializer(serializers.Serializer):
    """One checkpoint's statistics, aligned with ``dims``: each of the prefix X[:, :m]."""

    checkpoint = NamedSerializer()
    d = serializers.IntegerField(help_text="the layer's full width")
    dims = serializers.ListField(
        child=serializers.IntegerField(), help_text="prefix dimensions m: 8, 16, 32, …, d"
    )
    mean_ap = numbers("retrieval mAP", null=False)
    top1 = numbers("retrieval top-1 accuracy", null=False)
    top5 = numbers("retrieval top-5 accuracy", null=False)
    probe_accuracy = numbers("leave-one-out ridge-classifier accuracy", null=False)
    cka = numbers("linear CKA of the prefix to the full embedding (1 at d)", null=False)
    warnings = texts()


class NestedChanceSerializer(serializers.Serializer):
    mean_ap = serializers.FloatField(allow_null=True)
    top1 = serializers.FloatField(allow_null=True)
    top5 = serializers.FloatField(allow_null=True)
    probe_accuracy = serializers.FloatField(
        allow_null=True, help_text="the most frequent label's share"
    )
    cka = serializers.FloatField(allow_null=True, help_text="none: null")


class NestedProvenanceSerializer(serializers.Serializer):
    n = serializers.IntegerField()
    protocol = serializers.ChoiceField(choices=["leave-one-out", "query/gallery"])
    metric = serializers.CharField()
    n_queries = serializers.IntegerField()
    n_gallery = serializers.IntegerField()
    positions = serializers.CharField(help_text=POSITIONS_READ)
    code_version = serializers.CharField()


class NestedSerializer(serializers.Serializer):
    """Quality of every prefix of one layer's embedding, per checkpoint (``curves`` in the
    order asked; empty, and ``chance`` and ``provenance`` null, until the run finished)."""

    run = serializers.IntegerField()
    state = serializers.ChoiceField(choices=Run.State.choices)
    dataset = NamedSerializer()
    layer = serializers.CharField()
    pooling = serializers.CharField()
    metric = serializers.CharField()
    checkpoints = NamedSerializer(many=True)
    statistics = serializers.DictField(
        child=NestedStatisticSerializer(), help_text="by key: mean_ap, top1, top5, …"
    )
    curves = NestedCurveSerializer(many=True)
    chance = NestedChanceSerializer(
        allow_null=True, help_text="each statistic's chance level; null until finished"
    )
    provenance = NestedProvenanceSerializer(allow_null=True)


# ---------------------------------------------------------------------------- unit matching


class UnitPairSerializer(serializers.Serializer):
    a = serializers.IntegerField(help_text="unit of A")
    b = serializers.IntegerField(help_text="its one-to-one partner in B")
    correlation = serializers.FloatField(help_text="Pearson correlation over the samples")
    top_samples = serializers.ListField(
        child=serializers.IntegerField(), help_text="samples activating A's unit most, first"
    )
    top_samples_b = serializers.ListField(
        child=serializers.IntegerField(), help_text="samples activating B's unit most, first"
    )
    constant_a = serializers.BooleanField(help_text="A's unit is constant: its samples arbitrary")
    constant_b = serializers.BooleanField(help_text="B's unit is constant")


class UnitSparseSerializer(serializers.Serializer):
    nonzeros = serializers.ListField(child=serializers.IntegerField(), help_text="k = 0, 1, …")
    error_at_nonzeros = numbers(
        "mean over B's units of the smallest unexplained variance with at most k weights",
        null=False,
    )
    mean_nonzeros = numbers("per penalty, the mean number of non-zero weights", null=False)
    mean_error = numbers("per penalty, the mean unexplained variance", null=False)
    alphas = numbers("the lasso penalties, largest first", null=False)
    converged = serializers.BooleanField()
    reference = serializers.FloatField(help_text="the error of predicting the mean (1)")


class UnitHeldOutSerializer(serializers.Serializer):
    n_train = serializers.IntegerField(help_text="samples the path was fitted on")
    n_test = serializers.IntegerField(help_text="samples held out to score it")
    n_units = serializers.IntegerField(help_text="units of B predicted (varying on both sides)")
    nonzeros = serializers.ListField(child=serializers.IntegerField(), help_text="k = 0, 1, …")
    error_at_nonzeros = numbers(
        "mean over B's units of the held-out unexplained variance of the least-penalised fit "
        "with at most k weights (1: predicting the training mean)",
        null=False,
    )
    lowest_error = serializers.FloatField(help_text="the lowest point of error_at_nonzeros")
    lowest_at = serializers.IntegerField(help_text="its k (the fewest weights on ties)")
    mean_error = numbers("per penalty, the mean held-out unexplained variance", null=False)
    mean_train_error = numbers(
        "per penalty, the same fits' error on the training split", null=False
    )
    mean_nonzeros = numbers("per penalty, the mean number of non-zero weights", null=False)
    alphas = numbers("the penalties, from the training split's largest down", null=False)
    converged = serializers.BooleanField()


class UnitReportSerializer(serializers.Serializer):
    n = serializers.IntegerField()
    p = serializers.IntegerField(help_text="units of A")
    q = serializers.IntegerField(help_text="units of B")
    mean_hungarian = serializers.FloatField(help_text="mean correlation of the one-to-one pairs")
    thresholds = numbers("correlation thresholds t", null=False)
    share_hungarian = numbers("share of the one-to-one pairs above each t", null=False)
    share_semi_a = numbers("share of A's units whose best partner is above each t", null=False)
    share_semi_b = numbers("share of B's units whose best partner is above each t", null=False)
    sparse = UnitSparseSerializer()
    heldout = UnitHeldOutSerializer(
        allow_null=True, help_text="null for runs kept before it existed or too few samples"
    )
    constant_a = serializers.IntegerField(help_text="constant units of A (correlation 0)")
    constant_b = serializers.IntegerField()
    warnings = texts()
    best_pairs = UnitPairSerializer(many=True, help_text="highest correlation first")
    worst_pairs = UnitPairSerializer(many=True, help_text="lowest correlation first")


class UnitParametersSerializer(serializers.Serializer):
    pooling = serializers.CharField()
    n_pairs = serializers.IntegerField()
    top_m = serializers.IntegerField()
    n_alphas = serializers.IntegerField()
    test_fraction = serializers.FloatField()
    seed = serializers.IntegerField()


class UnitMatchingSerializer(serializers.Serializer):
    """Unit matching of one layer of A and one of B (``report`` null until it finished)."""

    run = serializers.IntegerField()
    state = serializers.ChoiceField(choices=Run.State.choices)
    checkpoint_a = NamedSerializer()
    checkpoint_b = NamedSerializer()
    dataset = NamedSerializer()
    layer_a = serializers.CharField()
    layer_b = serializers.CharField()
    parameters = UnitParametersSerializer()
    positions = serializers.CharField(help_text=POSITIONS_READ)
    max_units = serializers.IntegerField(help_text="the widest layer taken")
    limit = serializers.CharField()
    definitions = serializers.DictField(
        child=serializers.CharField(), help_text="one line per statistic, by key"
    )
    report = UnitReportSerializer(allow_null=True)
    estimator = serializers.CharField(required=False)
    code_version = serializers.CharField(required=False)


# ---------------------------------------------------------------------------- weight space


class WeightPathSerializer(serializers.Serializer):
    loss = numbers("mean cross-entropy (nats) at each λ", null=False)
    accuracy = numbers("accuracy at each λ", null=False)
    loss_barrier = serializers.FloatField(help_text="largest rise of the loss above its chord")
    accuracy_barrier = serializers.FloatField(
        help_text="largest dip of the accuracy below its chord"
    )


class FunctionCheckSerializer(serializers.Serializer):
    max_difference = serializers.FloatField(
        allow_null=True, help_text="largest |B(x) − π(B)(x)| over the samples"
    )
    scale = serializers.FloatField(allow_null=True, help_text="max(1, largest |B(x)|)")
    tolerance = serializers.FloatField(allow_null=True, help_text="1e-5 × scale")
    passed = serializers.BooleanField()


class MatchedChanceSerializer(serializers.Serializer):
    mean = serializers.FloatField(help_text="mean alignment after matching over the draws")
    low = serializers.FloatField(help_text="95 % interval of the mean (Student's t), low end")
    high = serializers.FloatField(help_text="95 % interval of the mean (Student's t), high end")
    sd = serializers.FloatField(help_text="standard deviation of one draw's alignment")


class UnrelatedDrawsSerializer(serializers.Serializer):
    draws = serializers.IntegerField(help_text="pairs of unrelated networks matched")
    seed = serializers.IntegerField(help_text="seed that drew them (the matching's seed)")


class WeightLayerSerializer(serializers.Serializer):
    layer = serializers.CharField()
    singular_a = numbers("A's singular values, largest first", null=False)
    singular_b = numbers("B's (and π(B)'s) singular values, largest first", null=False)
    cosines_before = numbers("c_i between A and B", null=False)
    cosines_after = numbers("c_i between A and π(B)", null=False)
    alignment_before = serializers.FloatField()
    alignment_after = serializers.FloatField()
    shape = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        help_text="[out, in]: the layer's weight matrix (a conv kernel as out × in·kh·kw); absent "
        "from reports made before it was kept",
    )
    alignment_chance = serializers.FloatField(
        required=False,
        help_text="what unrelated weights of this shape score before matching: the expected "
        "alignment of two independent random out × in matrices with uniformly random "
        "orientation, m(out) m(in) / 2 with m(p) = Γ(p/2) / (√π Γ((p+1)/2)) (matching raises "
        "even unrelated weights' alignment above it); absent from reports made before it was "
        "kept",
    )
    alignment_matched_chance = MatchedChanceSerializer(
        required=False,
        help_text="what unrelated weights score after the same matching: the alignment after "
        "weight matching (same algorithm and seed) of K pairs of networks with A's and B's "
        "parameter shapes and singular values and uniformly random orientation, its mean over "
        "the K draws with a 95 % interval; absent from reports made before it was kept",
    )


class LossAccuracySerializer(serializers.Serializer):
    loss = serializers.FloatField()
    accuracy = serializers.FloatField()


class WeightSpaceResultSerializer(serializers.Serializer):
    architecture = serializers.CharField()
    seed = serializers.IntegerField()
    n = serializers.IntegerField(help_text="samples")
    units = serializers.DictField(
        child=serializers.IntegerField(), help_text="each permutation's number of units"
    )
    function_check = FunctionCheckSerializer()
    l2 = serializers.DictField(
        child=serializers.FloatField(), help_text="‖θ_A − θ_B‖ before and ‖θ_A − π(θ_B)‖ after"
    )
    models = serializers.DictField(
        child=LossAccuracySerializer(),
        allow_null=True,
        help_text='"a" and "b": each model on its own; null for encoders (no class scores)',
    )
    lambdas = numbers("the λ of both paths (empty for encoders)", null=False)
    chance = LossAccuracySerializer(
        required=False,
        allow_null=True,
        help_text="what a classifier that ignores its input scores: the loss of predicting the "
        "class shares (their entropy) and the largest class's share; null for encoders, absent "
        "from reports made before it was kept",
    )
    naive = WeightPathSerializer(allow_null=True, help_text="(1−λ)θ_A + λθ_B; null for encoders")
    matched = WeightPathSerializer(
        allow_null=True, help_text="(1−λ)θ_A + λπ(θ_B); null for encoders"
    )
    layers = WeightLayerSerializer(many=True)
    unrelated = UnrelatedDrawsSerializer(
        required=False,
        help_text="how alignment_matched_chance was drawn; absent from reports made before it "
        "was kept",
    )


class WeightSpaceSerializer(serializers.Serializer):
    """Two checkpoints' weight space on a labelled dataset; ``result`` is null until the run
    has finished."""

    run = serializers.IntegerField()
    state = serializers.ChoiceField(choices=Run.State.choices)
    checkpoint_a = NamedSerializer()
    checkpoint_b = NamedSerializer()
    dataset = NamedSerializer()
    architecture = serializers.CharField(help_text="the built-in architecture's spec used")
    seed = serializers.IntegerField()
    definitions = serializers.DictField(
        child=serializers.CharField(), help_text="one line per number"
    )
    result = WeightSpaceResultSerializer(allow_null=True)
    code_version = serializers.CharField(allow_null=True)


# ---------------------------------------------------------------------------- model stitching


class StitchingMatrixSerializer(serializers.Serializer):
    method = serializers.ChoiceField(choices=["fitted", "relative"])
    estimator = serializers.CharField()
    accuracy = grid(
        "[A's layer][B's layer]: the stitched model's held-out accuracy; null where the pair "
        "was not stitched"
    )
    r2 = grid("[A's layer][B's layer]: held-out R² of the mapped activations against B's layer")
    refused = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField(allow_null=True)),
        help_text="[A's layer][B's layer]: why the pair was not stitched, in one sentence; null "
        "where it was",
    )


class StitchingParametersSerializer(serializers.Serializer):
    test_fraction = serializers.FloatField()
    seed = serializers.IntegerField()
    map = serializers.ChoiceField(choices=["affine", "linear"])
    ridge = serializers.FloatField()
    n_anchors = serializers.IntegerField(help_text="0: min(300, half the training samples)")


class StitchingResultSerializer(serializers.Serializer):
    layers_a = texts("A's layers, the rows")
    layers_b = texts("B's layers, the columns")
    dims_a = serializers.ListField(child=serializers.IntegerField(), help_text="their widths")
    dims_b = serializers.ListField(child=serializers.IntegerField(), help_text="their widths")
    shapes_a = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="one sample's output of each: [width], or [C, H, W] for a feature map",
    )
    shapes_b = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="one sample's output of each: [width], or [C, H, W] for a feature map",
    )
    accuracy_a = serializers.FloatField(
        allow_null=True, help_text="A alone; null where A does not output B's class scores"
    )
    accuracy_b = serializers.FloatField(help_text="B alone")
    chance = serializers.FloatField(help_text="the largest class share among the held-out labels")
    n_classes = serializers.IntegerField()
    n_train = serializers.IntegerField()
    n_test = serializers.IntegerField()
    seed = serializers.IntegerField()
    matrices = serializers.DictField(
        child=StitchingMatrixSerializer(), help_text='by method: "fitted", "relative"'
    )
    test_rows = serializers.ListField(
        child=serializers.IntegerField(), help_text="the held-out samples' indices"
    )
    warnings = texts()


class StitchingSerializer(serializers.Serializer):
    """One checkpoint's layers stitched into another's on a labelled dataset; ``result`` is
    null until the run has finished."""

    run = serializers.IntegerField()
    state = serializers.ChoiceField(choices=Run.State.choices)
    checkpoint_a = NamedSerializer()
    checkpoint_b = NamedSerializer()
    dataset = NamedSerializer()
    layers_a = texts("as asked; empty: A's default layers with vector outputs")
    layers_b = texts("as asked; empty: B's default layers with vector outputs")
    architecture_b = serializers.CharField(
        help_text="the built-in architecture B runs as; empty for a Hugging Face text encoder, "
        "stitched at its tokens"
    )
    parameters = StitchingParametersSerializer()
    definitions = serializers.DictField(
        child=serializers.CharField(), help_text="one line per number"
    )
    result = StitchingResultSerializer(allow_null=True)
    code_version = serializers.CharField(allow_null=True)
