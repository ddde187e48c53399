from __future__ import annotations

from django import forms

from analysis.architectures import ARCHITECTURES
from analysis.extraction import POOLINGS
from analysis.registry import MEASURES
from analysis.transforms import FAMILIES
from webapp.catalog.models import Checkpoint, Dataset


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
        + [(name, f"{name}: {a.description}") for name, a in sorted(ARCHITECTURES.items())],
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

    def __init__(self, workspace, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = workspace.datasets.all()


POOLING_CHOICES = [(name, f"{name}: {text}") for name, text in POOLINGS.items()]


class ComparisonForm(forms.Form):
    checkpoint_a = forms.ModelChoiceField(queryset=Checkpoint.objects.none())
    checkpoint_b = forms.ModelChoiceField(queryset=Checkpoint.objects.none())
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())
    pooling = forms.ChoiceField(choices=POOLING_CHOICES, initial="mean")
    pooling_b = forms.ChoiceField(
        choices=[("", "— same as A —"), *POOLING_CHOICES],
        required=False,
        label="Pooling of B",
    )
    measure = forms.ChoiceField(
        choices=[(m.id, f"{m.name} ({m.id})") for m in MEASURES.values()], initial="cka/linear"
    )

    def __init__(self, workspace, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in ("checkpoint_a", "checkpoint_b"):
            self.fields[field].queryset = workspace.checkpoints.all()
        self.fields["dataset"].queryset = workspace.datasets.all()


class ModelMatrixForm(forms.Form):
    checkpoints = forms.ModelMultipleChoiceField(
        queryset=Checkpoint.objects.none(), widget=forms.CheckboxSelectMultiple
    )
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())
    layer = forms.ChoiceField(help_text="compared across every chosen checkpoint")
    pooling = forms.ChoiceField(choices=POOLING_CHOICES, initial="mean")
    measure = forms.ChoiceField(
        choices=[(m.id, f"{m.name} ({m.id})") for m in MEASURES.values()], initial="cka/linear"
    )

    def __init__(self, workspace, *args, **kwargs):
        super().__init__(*args, **kwargs)
        checkpoints = workspace.checkpoints.all()
        self.fields["checkpoints"].queryset = checkpoints
        self.fields["dataset"].queryset = workspace.datasets.all()
        names = sorted({layer for c in checkpoints for layer in c.layers})
        self.fields["layer"].choices = [(name, name) for name in names]


class CompatibilityForm(ModelMatrixForm):
    """A series of checkpoints (oldest first by training step, else by upload time) at one
    layer: can a newer model's queries search an older model's gallery?"""

    measure = None
    metric = forms.ChoiceField(choices=[("cosine", "cosine"), ("euclidean", "Euclidean")])
    criterion = forms.ChoiceField(
        choices=[("top1", "top-1 accuracy"), ("top5", "top-5 accuracy"), ("mean_ap", "mAP")]
    )

    def __init__(self, workspace, *args, **kwargs):
        super().__init__(workspace, *args, **kwargs)
        self.fields[
            "dataset"
        ].help_text = (
            "a labelled dataset; a metadata column 'role' (query / gallery) marks the queries"
        )


class ExtractionForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())
    layers = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="none ticked: every top-level block and the output",
    )
    pooling = forms.ChoiceField(choices=POOLING_CHOICES, initial="mean")

    def __init__(self, checkpoint: Checkpoint, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = checkpoint.workspace.datasets.all()
        self.fields["layers"].choices = [(name, name) for name in checkpoint.layers]


class _LayoutForm(forms.Form):
    """What every 2-D layout of a checkpoint's layers asks for."""

    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())
    pooling = forms.ChoiceField(choices=POOLING_CHOICES, initial="mean")
    n_neighbors = forms.IntegerField(initial=15, min_value=2, help_text="UMAP")
    min_dist = forms.FloatField(initial=0.1, min_value=0.0, max_value=1.0, help_text="UMAP")
    metric = forms.ChoiceField(
        choices=[("euclidean", "Euclidean"), ("cosine", "cosine")], help_text="UMAP, t-SNE"
    )
    seed = forms.IntegerField(initial=0)

    def __init__(self, checkpoint: Checkpoint, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = checkpoint.workspace.datasets.all()
        for name in ("layer", "layers"):
            if name in self.fields:
                self.fields[name].choices = [(layer, layer) for layer in checkpoint.layers]


class ProjectionForm(_LayoutForm):
    """Every sample of one layer in 2-D; the parameters a method does not use are ignored."""

    layer = forms.ChoiceField()
    method = forms.ChoiceField(choices=[("pca", "PCA"), ("umap", "UMAP"), ("tsne", "t-SNE")])
    perplexity = forms.FloatField(initial=30.0, min_value=1.0, help_text="t-SNE")
    field_order = ["dataset", "layer", "pooling", "method"]


class AlignedProjectionForm(_LayoutForm):
    """Several layers of one checkpoint laid out together, each sample in comparable places."""

    prefix = "aligned"  # its fields sit on the page beside the ProjectionForm's

    layers = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple, help_text="two or more")
    method = forms.ChoiceField(
        choices=[("umap", "aligned UMAP"), ("pca", "Procrustes-aligned PCA")]
    )
    field_order = ["dataset", "layers", "pooling", "method"]


class ProbeForm(forms.Form):
    """How a checkpoint's layers respond to transformations of a dataset's samples."""

    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())
    layers = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="none ticked: every top-level block and the output",
    )
    pooling = forms.ChoiceField(choices=POOLING_CHOICES, initial="mean")
    families = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="none ticked: rotation, translation and noise (images), or noise, dropout "
        "and permutation (vectors); each with its default magnitudes",
    )
    seed = forms.IntegerField(initial=0)
    prefix = "probe"

    def __init__(self, checkpoint: Checkpoint, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = checkpoint.workspace.datasets.all()
        self.fields["layers"].choices = [(name, name) for name in checkpoint.layers]
        self.fields["families"].choices = [
            (
                f.key,
                f"{f.modality} {f.title} ({', '.join(f'{t:g}' for t in f.magnitudes)} {f.unit})",
            )
            for f in FAMILIES.values()
            if f.modality in ("image", "vector", "text")
        ]
