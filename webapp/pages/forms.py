from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.db.models import Q, QuerySet

from analysis.errors import InputError
from analysis.measures.registry import MEASURES
from analysis.models.choices import ARCHITECTURES, POOLINGS, TOKENS
from analysis.models.hf_kinds import offered_poolings
from analysis.parameters import Parameter
from analysis.probes.families import FAMILIES, Family
from webapp.catalog import listing
from webapp.catalog.models import Checkpoint, Dataset, Workspace
from webapp.runs.kinds import KINDS
from webapp.runs.models import Run


class DatasetUploadForm(forms.Form):
    file = forms.FileField(
        help_text=".npz (x, y, ids, metadata), .zip of class folders, .csv, or text as .jsonl / "
        ".csv with a text column"
    )
    name = forms.CharField(max_length=200, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class CheckpointUploadForm(forms.Form):
    file = forms.FileField(
        help_text="TorchScript .pt, a .safetensors state dict, .onnx, a .zip / .tar of a "
        "Hugging Face model directory, or precomputed activations (.npy, .npz, .safetensors, "
        ".parquet) of a dataset"
    )
    architecture = forms.ChoiceField(
        choices=[("", "— none needed (TorchScript, ONNX, Hugging Face) —")]
        + [(name, f"{name}: {text}") for name, text in sorted(ARCHITECTURES.items())],
        required=False,
        help_text="for a .safetensors state dict",
    )
    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.none(),
        required=False,
        empty_label="— a model, not precomputed activations —",
        label="Precomputed activations of",
        help_text="the dataset whose samples the file's rows are",
    )
    name = forms.CharField(max_length=200, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, workspace: Workspace, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choose_from(self, "dataset", workspace.datasets.all())


def choose_from(form: forms.BaseForm, name: str, queryset: QuerySet) -> None:
    """Offer the objects of ``queryset`` in the model choice field ``name``."""
    cast(forms.ModelChoiceField, form.fields[name]).queryset = queryset


def set_choices(form: forms.BaseForm, name: str, choices: list[tuple[str, str]]) -> None:
    """Offer ``choices`` in the choice field ``name``."""
    cast(forms.ChoiceField, form.fields[name]).choices = choices


def choices_of(form: forms.BaseForm, name: str) -> list[tuple[str, str]]:
    """The choices the choice field ``name`` offers."""
    return cast(list[tuple[str, str]], cast(forms.ChoiceField, form.fields[name]).choices)


POOLING_CHOICES = [(name, f"{name}: {text}") for name, text in POOLINGS.items()]


def offer_tokens(form: forms.BaseForm, keeps_positions: bool) -> None:
    """Pooling ``tokens``, and the ``positions`` field that says how its rows are read, only
    where the checkpoint(s) the form asks about can keep positions
    (:attr:`Checkpoint.keeps_positions`, the API's rule); else neither is offered."""
    if keeps_positions or "pooling" not in form.fields:
        return
    set_choices(form, "pooling", [(k, v) for k, v in choices_of(form, "pooling") if k != TOKENS])
    form.fields.pop("positions", None)


def parameter_field(parameter: Parameter, label: str | None = None) -> forms.Field:
    """A form field for a declared parameter (blank: its default)."""
    common: dict[str, Any] = {"required": False, "label": label, "help_text": parameter.help}
    bounds: dict[str, Any] = {"min_value": parameter.minimum, "max_value": parameter.maximum}
    if parameter.kind == "choice":
        return forms.ChoiceField(
            choices=parameter.choice_labels(), initial=parameter.default, **common
        )
    if parameter.kind == "int":
        return forms.IntegerField(initial=parameter.default, **bounds, **common)
    if parameter.kind == "float":
        return forms.FloatField(initial=parameter.default, **bounds, **common)
    default = ", ".join(f"{v:g}" for v in parameter.default)
    return forms.CharField(initial=default, **common)


class ParametersForm(forms.Form):
    """A form whose parameter fields come from a run kind's spec: a blank one takes the
    declared default."""

    parameters: tuple[Parameter, ...] = ()

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        for parameter in self.parameters:
            if data.get(parameter.name) in (None, ""):
                data[parameter.name] = parameter.default
        return data


def with_parameters(kind: str) -> type[ParametersForm]:
    """A form base with a field for every parameter of ``kind``'s spec."""
    spec = KINDS[kind]
    fields = {p.name: parameter_field(p) for p in spec.parameters}
    name = "".join(word.title() for word in kind.split("_")) + "ParametersForm"
    attrs = {"parameters": spec.parameters, **fields}
    form = forms.forms.DeclarativeFieldsMetaclass(name, (ParametersForm,), attrs)
    return cast(type[ParametersForm], form)


# The parameter forms of the run kinds, built from their specs (mypy sees their base).
if TYPE_CHECKING:
    CompareParameters = ParametersForm
    CompatibilityParameters = ParametersForm
    DynamicsParameters = ParametersForm
    ExtractParameters = ParametersForm
    ModelMatrixParameters = ParametersForm
    ProjectParameters = ParametersForm
    ProjectAlignedParameters = ParametersForm
    ProbeParameters = ParametersForm
else:
    CompareParameters = with_parameters(Run.Kind.COMPARE)
    CompatibilityParameters = with_parameters(Run.Kind.COMPATIBILITY)
    DynamicsParameters = with_parameters(Run.Kind.DYNAMICS)
    ExtractParameters = with_parameters(Run.Kind.EXTRACT)
    ModelMatrixParameters = with_parameters(Run.Kind.MODEL_MATRIX)
    ProjectParameters = with_parameters(Run.Kind.PROJECT)
    ProjectAlignedParameters = with_parameters(Run.Kind.PROJECT_ALIGNED)
    ProbeParameters = with_parameters(Run.Kind.PROBE)


class MeasureChoice(ParametersForm):
    """The measure and its own declared parameters (a field per parameter of every measure,
    shown for the chosen one), beside the parameters of a kind that has a measure."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The objects first, then pooling, the measure and its own parameters, the rest.
        fields = dict(self.fields)
        own = {p.name for p in self.parameters}
        order = [name for name in fields if name not in own and name != "pooling_b"]
        order += ["pooling", *(name for name in ("pooling_b", "positions") if name in fields)]
        order += ["measure"]
        for measure in MEASURES.values():
            for parameter in measure.parameters:
                field = parameter_field(parameter, f"{parameter.name} ({measure.name})")
                field.widget.attrs["data-measure"] = measure.id
                key = self.parameter_key(measure.id, parameter.name)
                fields[key] = field
                order.append(key)
        order += [name for name in fields if name not in order]
        self.fields = {name: fields[name] for name in order}

    @staticmethod
    def parameter_key(measure: str, name: str) -> str:
        return f"{measure.replace('/', '__').replace('-', '_')}__{name}"

    def measure_params(self) -> dict:
        """The chosen measure's parameters that were filled in (the others take defaults)."""
        measure = MEASURES[self.cleaned_data["measure"]]
        values: dict[str, Any] = {}
        for parameter in measure.parameters:
            value = self.cleaned_data.get(self.parameter_key(measure.id, parameter.name))
            if value is None or value == "":
                continue
            if parameter.kind == "floats":
                try:
                    value = [float(v) for v in value.split(",")]
                except ValueError:
                    raise InputError(
                        f"{parameter.name}: a comma-separated list of numbers"
                    ) from None
            values[parameter.name] = value
        return values

    def measure_options(self) -> dict:
        """The keyword arguments of a measure request."""
        data = self.cleaned_data
        return {
            **{p.name: data[p.name] for p in self.parameters},
            "measure_params": self.measure_params(),
        }


class MeasureForm(MeasureChoice, CompareParameters):
    """The measure with the baseline and interval sizes of a comparison."""


class DynamicsForm(MeasureChoice, DynamicsParameters):
    """A series' dynamics: one dataset, the layers followed and the measure of its matrices."""

    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())
    layers = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="none ticked: every top-level block and the output of the last checkpoint",
    )

    def __init__(self, series: list[Checkpoint], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choose_from(self, "dataset", series[-1].workspace.datasets.all())
        shared = [name for name in series[-1].layers if all(name in c.layers for c in series)]
        set_choices(self, "layers", [(name, name) for name in shared])
        offer_tokens(self, all(c.keeps_positions for c in series))


LAYERS_HELP = "none ticked: every top-level block and the output"


class ComparisonForm(MeasureForm):
    """Two checkpoints, the layers of each compared (offered from the checkpoint chosen on
    each side, the form drawn again when one changes: ``new_comparison``'s GET), one dataset,
    the poolings and the measure."""

    checkpoint_a = forms.ModelChoiceField(queryset=Checkpoint.objects.none(), label="Checkpoint A")
    layers_a = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, required=False, label="Layers of A"
    )
    checkpoint_b = forms.ModelChoiceField(queryset=Checkpoint.objects.none(), label="Checkpoint B")
    layers_b = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, required=False, label="Layers of B"
    )
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())
    pooling_b = forms.ChoiceField(
        choices=[("", "— same as A —"), *POOLING_CHOICES],
        required=False,
        label="Pooling of B",
    )

    def __init__(self, workspace: Workspace, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        checkpoints = workspace.checkpoints.all()
        for side in ("a", "b"):
            choose_from(self, f"checkpoint_{side}", checkpoints)
            chosen = checkpoints.filter(pk=_pk(self[f"checkpoint_{side}"].value())).first()
            layers = chosen.layers if chosen is not None else []
            set_choices(self, f"layers_{side}", [(name, name) for name in layers])
            self.fields[f"layers_{side}"].help_text = (
                LAYERS_HELP
                if chosen is not None
                else f"choose checkpoint {side.upper()} to pick among its layers; {LAYERS_HELP}"
            )
        choose_from(self, "dataset", workspace.datasets.all())


def _pk(value: object) -> int:
    """The row id a model choice field holds (posted or initial); 0 (no row) if none."""
    if isinstance(value, Checkpoint):
        return value.pk
    text = str(value)
    return int(text) if text.isdigit() else 0


class _SeriesForm(forms.Form):
    checkpoints = forms.ModelMultipleChoiceField(
        queryset=Checkpoint.objects.none(), widget=forms.CheckboxSelectMultiple
    )
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())
    layer = forms.ChoiceField(help_text="compared across every chosen checkpoint")

    def __init__(self, workspace: Workspace, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        checkpoints = workspace.checkpoints.all()
        choose_from(self, "checkpoints", checkpoints)
        choose_from(self, "dataset", workspace.datasets.all())
        names = sorted({layer for c in checkpoints for layer in c.layers})
        set_choices(self, "layer", [(name, name) for name in names])
        offer_tokens(self, any(c.keeps_positions for c in checkpoints))


class ModelMatrixForm(_SeriesForm, MeasureChoice, ModelMatrixParameters):
    """One layer of many checkpoints, each against each, with one measure."""


class CompatibilityForm(_SeriesForm, CompatibilityParameters):
    """A series of checkpoints (oldest first by training step, else by upload time) at one
    layer: can a newer model's queries search an older model's gallery?"""

    def __init__(self, workspace: Workspace, *args: Any, **kwargs: Any) -> None:
        super().__init__(workspace, *args, **kwargs)
        self.fields[
            "dataset"
        ].help_text = (
            "a labelled dataset; a metadata column 'role' (query / gallery) marks the queries"
        )


class ExtractionForm(ExtractParameters):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())
    layers = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, required=False, help_text=LAYERS_HELP
    )
    field_order = ["dataset", "layers", "pooling"]

    def __init__(
        self, checkpoint: Checkpoint, *args: Any, dataset: Dataset | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        choose_from(self, "dataset", checkpoint.workspace.datasets.all())
        set_choices(self, "layers", [(name, name) for name in checkpoint.layers])
        offer_tokens(self, checkpoint.keeps_positions)
        on_dataset(self, dataset, checkpoint)


class _LayoutForm(forms.Form):
    """What every 2-D layout of a checkpoint's layers asks for."""

    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())

    def __init__(
        self, checkpoint: Checkpoint, *args: Any, dataset: Dataset | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        choose_from(self, "dataset", checkpoint.workspace.datasets.all())
        for name in ("layer", "layers"):
            if name in self.fields:
                set_choices(self, name, [(layer, layer) for layer in checkpoint.layers])
        offer_tokens(self, checkpoint.keeps_positions)
        on_dataset(self, dataset, checkpoint)


class ProjectionForm(_LayoutForm, ProjectParameters):
    """Every sample of one layer in 2-D; the parameters a method does not use are ignored."""

    layer = forms.ChoiceField()
    field_order = ["dataset", "layer", "pooling", "positions", "method"]


class AlignedProjectionForm(_LayoutForm, ProjectAlignedParameters):
    """Several layers of one checkpoint laid out together, each sample in comparable places."""

    prefix = "aligned"  # its fields sit on the page beside the ProjectionForm's

    layers = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple, help_text="two or more")
    field_order = ["dataset", "layers", "pooling", "positions", "method"]


class ProbeForm(ProbeParameters):
    """How a checkpoint's layers respond to transformations of a dataset's samples."""

    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())
    layers = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, required=False, help_text=LAYERS_HELP
    )
    families = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="none ticked: rotation, translation and noise (images), or noise, dropout "
        "and permutation (vectors); each with its default magnitudes",
    )
    prefix = "probe"
    field_order = ["dataset", "layers", "pooling", "positions", "families"]

    def __init__(
        self, checkpoint: Checkpoint, *args: Any, dataset: Dataset | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        choose_from(self, "dataset", checkpoint.workspace.datasets.all())
        set_choices(self, "layers", [(name, name) for name in checkpoint.layers])
        families = [f for f in FAMILIES.values() if f.modality in ("image", "vector", "text")]
        if dataset is not None:  # only the families that transform what the model reads
            families = [f for f in families if f.modality == probe_modality(dataset)]
            self.fields["families"].help_text = (
                f"none ticked: the defaults for {dataset.modality} data, "
                "each with its default magnitudes"
            )
        set_choices(self, "families", [(f.key, _family_label(f)) for f in families])
        offer_tokens(self, checkpoint.keeps_positions)
        on_dataset(self, dataset, checkpoint)


def _family_label(family: Family) -> str:
    grid = ", ".join(f"{t:g}" for t in family.magnitudes)
    return f"{family.modality} {family.title} ({grid} {family.unit})"


# ------------------------------------------------------------ one dataset for a checkpoint's page

SEQUENCE_POOLINGS = ("cls", "last")  # token sequences: models that read text


def probe_modality(dataset: Dataset) -> str:
    """The probe families' modality of a dataset's samples (tabular rows are vectors)."""
    return "vector" if dataset.modality == "tabular" else dataset.modality


def on_dataset(form: forms.BaseForm, dataset: Dataset | None, checkpoint: Checkpoint) -> None:
    """A checkpoint page's form when the page has chosen ``dataset`` for all its actions: the
    dataset field hidden and set to it, and only the poolings that fit what the model reads
    (those its layer tree declares for that data — a Hugging Face directory's —, else a
    token's pooling only for text); ``tokens`` stays wherever the form offers it
    (:attr:`Checkpoint.keeps_positions`), a tree described before it existed not naming it."""
    if dataset is None:
        return
    field = form.fields["dataset"]
    field.widget = forms.HiddenInput()
    field.initial = dataset.pk
    if "pooling" not in form.fields:
        return
    offered = choices_of(form, "pooling")
    declared = offered_poolings(checkpoint.layer_tree, dataset.modality)
    if declared is not None:
        kept = [(k, v) for k, v in offered if k in declared or k == TOKENS]
        set_choices(form, "pooling", kept)
    elif dataset.modality != "text":
        set_choices(form, "pooling", [(k, v) for k, v in offered if k not in SEQUENCE_POOLINGS])


# ------------------------------------------------------------ lifecycle: names, lineage, filters


class NameForm(forms.Form):
    """A new name for a workspace, dataset, checkpoint or run."""

    name = forms.CharField(max_length=200)


class LineageForm(forms.Form):
    """Where a checkpoint sits in a series: seed group, training step, parent."""

    seed_group = forms.CharField(max_length=200, required=False)
    step = forms.IntegerField(min_value=0, required=False)
    parent = forms.ModelChoiceField(
        queryset=Checkpoint.objects.none(), required=False, empty_label="— none —"
    )

    def __init__(self, checkpoint: Checkpoint, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "seed_group": checkpoint.seed_group,
                "step": checkpoint.step,
                "parent": checkpoint.parent_id,
            },
        )
        super().__init__(*args, **kwargs)
        others = checkpoint.workspace.checkpoints.exclude(pk=checkpoint.pk)
        choose_from(self, "parent", others)


RUNS_PER_PAGE = 25


class FilterForm(forms.Form):
    """Filters of a list, from a query string."""

    def first_error(self) -> str:
        """One sentence for a filter that is not one of the choices."""
        field, errors = next(iter(self.errors.items()))
        return f"{field}: {errors[0]}"


class RunFilterForm(FilterForm):
    """The workspace's runs table: words to find, which kind, state and person, which page."""

    q = forms.CharField(
        required=False,
        max_length=200,
        label="Find",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "name, checkpoint, dataset"}
        ),
    )
    kind = forms.ChoiceField(choices=[("", "every kind"), *Run.Kind.choices], required=False)
    state = forms.ChoiceField(choices=[("", "every state"), *Run.State.choices], required=False)
    person = forms.ChoiceField(required=False)
    page = forms.IntegerField(min_value=1, required=False)

    def __init__(self, workspace: Workspace, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        members = workspace.memberships.select_related("user").order_by("user__username")
        people = [(str(m.user_id), m.user.get_username()) for m in members]
        set_choices(self, "person", [("", "everyone"), *people])

    def runs(self, workspace: Workspace) -> QuerySet[Run]:
        """The workspace's runs that pass the filters, newest first."""
        data = self.cleaned_data
        runs = workspace.runs.select_related("checkpoint", "checkpoint_b", "dataset", "created_by")
        if data["kind"]:
            runs = runs.filter(kind=data["kind"])
        if data["state"]:
            runs = runs.filter(state=data["state"])
        if data["person"]:
            runs = runs.filter(created_by=int(data["person"]))
        for word in data["q"].split():
            runs = runs.filter(
                Q(name__icontains=word)
                | Q(checkpoint__name__icontains=word)
                | Q(checkpoint_b__name__icontains=word)
                | Q(dataset__name__icontains=word)
            )
        return runs


CATALOG_PER_PAGE = 20


class DatasetFilterForm(FilterForm):
    """The workspace's datasets: words of a name or description, a modality, which page (in
    the query string as ``datasets-q`` …, beside the runs table's filters)."""

    prefix = "datasets"
    q = forms.CharField(
        required=False,
        max_length=200,
        label="Find",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "name, description"}),
    )
    modality = forms.ChoiceField(required=False)
    page = forms.IntegerField(min_value=1, required=False)

    def __init__(self, workspace: Workspace, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kinds = [(m, m) for m in listing.modalities(workspace)]
        set_choices(self, "modality", [("", "every modality"), *kinds])


class CheckpointFilterForm(FilterForm):
    """The workspace's checkpoints: words of a name or description, a format, a seed group,
    which page (``checkpoints-q`` … in the query string)."""

    prefix = "checkpoints"
    q = forms.CharField(
        required=False,
        max_length=200,
        label="Find",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "name, description"}),
    )
    format = forms.ChoiceField(
        choices=[("", "every format"), *Checkpoint.Format.choices], required=False
    )
    seed_group = forms.ChoiceField(required=False)
    page = forms.IntegerField(min_value=1, required=False)

    def __init__(self, workspace: Workspace, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        groups = [(g, g) for g in listing.seed_groups(workspace)]
        set_choices(self, "seed_group", [("", "every seed group"), *groups])


if TYPE_CHECKING:
    NestedParameters = ParametersForm
else:
    NestedParameters = with_parameters(Run.Kind.NESTED)


class NestedForm(_SeriesForm, NestedParameters):
    """One layer of one or more checkpoints on a labelled dataset: the quality of each prefix
    of the layer's embedding (a Matryoshka-trained model against one trained without)."""

    def __init__(self, workspace: Workspace, *args: Any, **kwargs: Any) -> None:
        super().__init__(workspace, *args, **kwargs)
        self.fields["checkpoints"].help_text = "one or more, drawn overlaid"
        self.fields["layer"].help_text = "the embedding layer; every chosen checkpoint has it"
        self.fields["dataset"].help_text = "a labelled dataset (class or identity labels)"
