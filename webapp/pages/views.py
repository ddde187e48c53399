"""Server-rendered pages. Views authorize, validate, query and render; they never compute."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import models
from django.forms import Form
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HTMX_STOP_POLLING

from analysis.errors import InputError
from analysis.measures.knn import knn_jaccard_chance
from analysis.measures.registry import MEASURES
from analysis.models.choices import TOKENS
from webapp.access import check_editable, editable, editable_workspace
from webapp.catalog import fits, images, lineage, listing, uploads, workspaces
from webapp.catalog.models import (
    Checkpoint,
    Dataset,
    Upload,
    Workspace,
    editable_workspaces_of,
    owned_workspaces_of,
    visible_to,
    workspaces_of,
)
from webapp.pages.forms import (
    CATALOG_PER_PAGE,
    RUNS_PER_PAGE,
    AlignedProjectionForm,
    CheckpointFilterForm,
    CheckpointUploadForm,
    ComparisonForm,
    CompatibilityForm,
    DatasetFilterForm,
    DatasetUploadForm,
    ExtractionForm,
    FilterForm,
    LineageForm,
    ModelMatrixForm,
    NameForm,
    NestedForm,
    ProbeForm,
    ProjectionForm,
    RunFilterForm,
)
from webapp.runs import drilldown, explorer, exports, lifecycle
from webapp.runs.kinds import parameter_rows, parameters_in
from webapp.runs.models import Run, Score, Selection
from webapp.runs.queue import standing
from webapp.runs.results import (
    comparison_matrix,
    compatibility_matrix,
    measures_of_pair,
    model_matrix,
    probe_summary,
    score_reading,
    scores_with_cells,
)
from webapp.runs.submit import (
    request_aligned_projections,
    request_alignment,
    request_comparison,
    request_compatibility,
    request_extraction,
    request_model_matrix,
    request_probe,
    request_projection,
    series_in,
    series_order,
)
from webapp.status import overview

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails

    from webapp.access import SignedInRequest

    class HtmxRequest(SignedInRequest):
        """A signed-in request to a page that htmx polls or swaps parts of (``request.htmx``,
        set by django-htmx's middleware)."""

        htmx: HtmxDetails


M = TypeVar("M", bound=models.Model)


def _workspace(request: SignedInRequest, slug: str) -> Workspace:
    return get_object_or_404(workspaces_of(request.user), slug=slug)


def _get(model: type[M], request: SignedInRequest, pk: int) -> M:
    return get_object_or_404(visible_to(model, request.user), pk=pk)


def asked_run(
    form: Form,
    ask: Callable[[dict[str, Any]], tuple[Run, bool]],
    page: str,
    refused: Callable[[], HttpResponse],
) -> HttpResponse:
    """A run asked for with a page's form: ``ask(cleaned_data)`` makes (or finds) it, and the
    answer is its page (URL name ``page``); a form that is not valid, or a request the service
    refuses (its reason becomes the form's error), gets ``refused()``, the form shown again."""
    if form.is_valid():
        try:
            run, _ = ask(form.cleaned_data)
        except InputError as err:
            form.add_error(None, str(err))
        else:
            return redirect(page, pk=run.pk)
    return refused()


def _poll(
    request: HtmxRequest, template: str, partial: str, context: dict, done: bool
) -> HttpResponse:
    """The whole page, or for an htmx poll only ``partial``; once ``done``, status 286 tells
    htmx to swap this last answer and stop polling."""
    if not request.htmx:
        return render(request, template, context)
    return render(
        request, f"{template}#{partial}", context, status=HTMX_STOP_POLLING if done else 200
    )


@login_required
def home(request: SignedInRequest, status: int = 200) -> HttpResponse:
    """The person's workspaces (straight to the only one they have), the archived ones apart,
    and the form that makes a new one."""
    mine = list(workspaces_of(request.user).order_by("name"))
    active = [w for w in mine if w.archived_at is None]
    if len(active) == 1 and len(mine) == 1 and status == 200 and "all" not in request.GET:
        return redirect("workspace", slug=active[0].slug)
    context = {
        "workspaces": active,
        "archived": [w for w in mine if w.archived_at is not None],
        "form": NameForm(),
    }
    return render(request, "pages/home.html", context, status=status)


@login_required
def workers(request: HtmxRequest) -> HttpResponse:
    """The workers, queues and runs of the whole server, for anyone signed in: counts, worker
    names and queue names only; an htmx poll gets the status part."""
    status = overview()
    counts = {(r["kind"], r["state"]): r["count"] for r in status["runs"]}
    context = {
        "status": status,
        "states": Run.State.values,
        "runs": [
            (label, [counts.get((kind, state), 0) for state in Run.State.values])
            for kind, label in Run.Kind.choices
        ],
    }
    if request.htmx:
        return render(request, "pages/workers.html#status", context)
    return render(request, "pages/workers.html", context)


def _runs_context(workspace: Workspace, filters: RunFilterForm | None = None) -> dict:
    """One page of the workspace's runs that pass ``filters`` (valid; none: every run)."""
    if filters is None:
        filters = RunFilterForm(workspace, {})
        filters.full_clean()
    page = Paginator(filters.runs(workspace), RUNS_PER_PAGE).get_page(filters.cleaned_data["page"])
    query = {k: v for k, v in filters.cleaned_data.items() if v and k != "page"}
    shown = urlencode({**query, "page": page.number}) if page.number > 1 else urlencode(query)
    return {
        "workspace": workspace,
        "runs": page.object_list,
        "runs_page": page,
        "runs_filters": filters,
        "runs_query": urlencode(query),
        "runs_url": reverse("workspace-runs", args=[workspace.slug])
        + (f"?{shown}" if shown else ""),
        "runs_active": any(not r.is_terminal for r in page.object_list),
    }


def _listed(name: str, filters: FilterForm, rows: models.QuerySet) -> dict:
    """One page of a workspace page's list ``name`` (its rows passing ``filters``, valid):
    the rows, the page, the filters and the query string that keeps them."""
    data = filters.cleaned_data
    page = Paginator(rows, CATALOG_PER_PAGE).get_page(data["page"])
    query = {filters.add_prefix(k): v for k, v in data.items() if v and k != "page"}
    return {
        name: page.object_list,
        f"{name}_page": page,
        f"{name}_filters": filters,
        f"{name}_query": urlencode(query),
        f"{name}_page_param": filters.add_prefix("page"),
    }


def _datasets_context(workspace: Workspace, filters: DatasetFilterForm) -> dict:
    data = filters.cleaned_data
    rows = listing.datasets(workspace, data["q"], data["modality"])
    return _listed("datasets", filters, rows)


def _checkpoints_context(workspace: Workspace, filters: CheckpointFilterForm) -> dict:
    data = filters.cleaned_data
    rows = listing.checkpoints(workspace, data["q"], data["format"], data["seed_group"])
    return _listed("checkpoints", filters, rows)


RESULTS_LISTED = 8
"""How many of each kind of result the workspace page lists; the runs table has them all."""


def _latest(workspace: Workspace, *kinds: str) -> dict:
    """The newest runs of ``kinds`` and how many there are in all."""
    runs = workspace.runs.filter(kind__in=kinds).select_related(
        "checkpoint", "checkpoint_b", "dataset"
    )
    return {"runs": list(runs[:RESULTS_LISTED]), "count": runs.count(), "kind": kinds[0]}


def _workspace_context(
    request: SignedInRequest,
    workspace: Workspace,
    filters: tuple[RunFilterForm, DatasetFilterForm, CheckpointFilterForm] | None = None,
    forms: dict[str, Form] | None = None,
) -> dict:
    """The workspace page, its lists filtered by ``filters`` (valid; none: every row);
    ``forms``: the form that was refused, shown open with its errors."""
    forms = forms or {}
    if filters is None:
        unfiltered = _filters_of(workspace, {})
        assert not isinstance(unfiltered, HttpResponse)  # no filter is always valid
        filters = unfiltered
    runs, datasets, checkpoints = filters
    return {
        **_runs_context(workspace, runs),
        **_datasets_context(workspace, datasets),
        **_checkpoints_context(workspace, checkpoints),
        **_uploads_context(workspace),
        "can_edit": _can_edit(request, workspace),
        "is_owner": owned_workspaces_of(request.user).filter(pk=workspace.pk).exists(),
        "open_form": next(iter(forms), ""),
        "checkpoints_in_all": workspace.checkpoints.all(),
        "series": series_in(workspace),
        "comparisons": _latest(workspace, Run.Kind.COMPARE),
        "matrices": _latest(workspace, Run.Kind.MODEL_MATRIX),
        "alignments": _latest(workspace, Run.Kind.ALIGN),
        "compatibilities": _latest(workspace, Run.Kind.COMPATIBILITY),
        "projections": _latest(workspace, Run.Kind.PROJECT, Run.Kind.PROJECT_ALIGNED),
        "probes": _latest(workspace, Run.Kind.PROBE),
        "dataset_form": forms.get("dataset_form") or DatasetUploadForm(),
        "checkpoint_form": forms.get("checkpoint_form") or CheckpointUploadForm(workspace),
        "comparison_form": forms.get("comparison_form") or ComparisonForm(workspace),
        "matrix_form": forms.get("matrix_form") or ModelMatrixForm(workspace),
        "compatibility_form": forms.get("compatibility_form") or CompatibilityForm(workspace),
        "nested": _latest(workspace, Run.Kind.NESTED),
        "nested_form": forms.get("nested_form") or NestedForm(workspace),
        "name_form": forms.get("name_form") or NameForm(initial={"name": workspace.name}),
    }


def _run_filters(request: SignedInRequest, workspace: Workspace) -> RunFilterForm | HttpResponse:
    """The runs table's filters from the query string, or a 400 that says which is wrong."""
    filters = RunFilterForm(workspace, request.GET)
    if not filters.is_valid():
        return HttpResponse(filters.first_error(), status=400, content_type="text/plain")
    return filters


def _filters_of(
    workspace: Workspace, query: QueryDict | dict
) -> tuple[RunFilterForm, DatasetFilterForm, CheckpointFilterForm] | HttpResponse:
    """The filters of the workspace page's lists from the query string, or a 400 that says
    which is wrong."""
    filters = (
        RunFilterForm(workspace, query),
        DatasetFilterForm(workspace, query),
        CheckpointFilterForm(workspace, query),
    )
    for form in filters:
        if not form.is_valid():
            return HttpResponse(form.first_error(), status=400, content_type="text/plain")
    return filters


@login_required
def workspace(request: SignedInRequest, slug: str) -> HttpResponse:
    space = _workspace(request, slug)
    filters = _filters_of(space, request.GET)
    if isinstance(filters, HttpResponse):
        return filters
    return render(request, "pages/workspace.html", _workspace_context(request, space, filters))


def _catalog_list(request: HtmxRequest, slug: str, part: str) -> HttpResponse:
    """The workspace page's list ``part`` (datasets or checkpoints; an htmx partial):
    filtered, one page of it; a plain GET goes to the page with the same filters."""
    space = _workspace(request, slug)
    filters = _filters_of(space, request.GET)
    if isinstance(filters, HttpResponse):
        return filters
    if not request.htmx:
        query = request.GET.urlencode()
        return redirect(
            reverse("workspace", args=[space.slug]) + (f"?{query}" if query else "") + f"#{part}"
        )
    _, datasets, checkpoints = filters
    context = {"workspace": space, "can_edit": _can_edit(request, space)}
    if part == "datasets":
        context.update(_datasets_context(space, datasets))
    else:
        context.update(_checkpoints_context(space, checkpoints))
    return render(request, f"pages/workspace.html#{part}", context)


@login_required
def workspace_datasets(request: HtmxRequest, slug: str) -> HttpResponse:
    return _catalog_list(request, slug, "datasets")


@login_required
def workspace_checkpoints(request: HtmxRequest, slug: str) -> HttpResponse:
    return _catalog_list(request, slug, "checkpoints")


@login_required
def workspace_runs(request: HtmxRequest, slug: str) -> HttpResponse:
    """The runs table (an htmx partial): filtered, one page of it, polled while a run on it
    is active; a plain GET goes to the page with the same filters."""
    space = _workspace(request, slug)
    filters = _run_filters(request, space)
    if isinstance(filters, HttpResponse):
        return filters
    if not request.htmx:
        query = request.GET.urlencode()
        return redirect(
            reverse("workspace", args=[space.slug]) + (f"?{query}" if query else "") + "#runs"
        )
    context = {**_runs_context(space, filters), "can_edit": _can_edit(request, space)}
    return _poll(request, "pages/workspace.html", "runs", context, not context["runs_active"])


def _can_edit(request: SignedInRequest, workspace: Workspace) -> bool:
    return editable_workspaces_of(request.user).filter(pk=workspace.pk).exists()


def _workspace_part(
    request: HtmxRequest, slug: str, part: str, context_of: Callable[[Workspace], dict]
) -> HttpResponse:
    """One part of the workspace page (its partial ``part``), for its htmx poll, which stops
    once nothing in it is active; a plain GET goes to the page."""
    workspace = _workspace(request, slug)
    if not request.htmx:
        return _workspace_at(workspace, part)
    context = context_of(workspace)
    return _poll(request, "pages/workspace.html", part, context, not context[f"{part}_active"])


def _workspace_at(workspace: Workspace, part: str) -> HttpResponse:
    return redirect(reverse("workspace", args=[workspace.slug]) + f"#{part}")


def _form_page(
    request: SignedInRequest, workspace: Workspace, status: int = 400, **forms: Form
) -> HttpResponse:
    return render(
        request,
        "pages/workspace.html",
        _workspace_context(request, workspace, forms=forms),
        status=status,
    )


@login_required
@require_POST
def upload_dataset(request: SignedInRequest, slug: str) -> HttpResponse:
    workspace = editable_workspace(request.user, slug)
    form = DatasetUploadForm(request.POST, request.FILES)
    if form.is_valid():
        f = form.cleaned_data["file"]
        try:
            received = uploads.receive(
                request.user,
                workspace,
                Upload.Kind.DATASET,
                f,
                f.name,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
            )
        except InputError as err:
            form.add_error("file", str(err))
        else:
            return _uploaded(request, workspace, *received)
    return _form_page(request, workspace, dataset_form=form)


@login_required
@require_POST
def upload_checkpoint(request: SignedInRequest, slug: str) -> HttpResponse:
    workspace = editable_workspace(request.user, slug)
    form = CheckpointUploadForm(workspace, request.POST, request.FILES)
    if form.is_valid():
        f, dataset = form.cleaned_data["file"], form.cleaned_data["dataset"]
        try:
            received = uploads.receive(
                request.user,
                workspace,
                Upload.Kind.CHECKPOINT,
                f,
                f.name,
                name=form.cleaned_data["name"],
                architecture=form.cleaned_data["architecture"],
                description=form.cleaned_data["description"],
                dataset=dataset.pk if dataset else None,
            )
        except InputError as err:
            form.add_error("file", str(err))
        else:
            return _uploaded(request, workspace, *received)
    return _form_page(request, workspace, checkpoint_form=form)


def _uploaded(
    request: SignedInRequest,
    workspace: Workspace,
    upload: Upload | None,
    found: Dataset | Checkpoint | Upload | None,
) -> HttpResponse:
    """After an upload: the dataset or checkpoint the same file already made, else the
    workspace's list of uploads, where this one is checked."""
    if isinstance(found, Dataset | Checkpoint):
        messages.info(request, f"This file is already here as “{found.name}”.")
        return redirect("dataset" if isinstance(found, Dataset) else "checkpoint", pk=found.pk)
    upload = found or upload
    assert upload is not None  # uploads.receive makes one where nothing was found
    messages.info(
        request,
        f"{upload.filename} is uploaded. A worker checks it now; it is listed under "
        "“Uploads” until it is ready or refused.",
    )
    return _workspace_at(workspace, "uploads")


@login_required
def workspace_uploads(request: HtmxRequest, slug: str) -> HttpResponse:
    return _workspace_part(request, slug, "uploads", _uploads_context)


@login_required
@require_POST
def dismiss_upload(request: SignedInRequest, slug: str, upload_id: int) -> HttpResponse:
    """Withdraw an upload (receiving or being checked) or dismiss a refused one."""
    workspace = editable_workspace(request.user, slug)
    uploads.abort(get_object_or_404(workspace.uploads, pk=upload_id))
    return _workspace_at(workspace, "uploads")


def _uploads_context(workspace: Workspace) -> dict:
    shown = uploads.shown(workspace)
    active = (Upload.State.OPEN, Upload.State.CHECKING)
    return {
        "workspace": workspace,
        "uploads": shown,
        "uploads_active": any(u.state in active for u in shown),
    }


@login_required
def new_comparison(request: HtmxRequest, slug: str) -> HttpResponse:
    """Asking for a comparison (POST). Else the form drawn again for the checkpoints and
    values in the query string, each side's layers offered from its checkpoint: for htmx
    (a checkpoint changed), only the form's fields; else the workspace page, the form open."""
    workspace = editable_workspace(request.user, slug)
    if request.method != "POST":
        initial = {name: v if len(v) > 1 else v[0] for name, v in request.GET.lists()}
        shown = ComparisonForm(workspace, initial=initial)
        if request.htmx:
            context = {"comparison_form": shown}
            return render(request, "pages/workspace.html#comparison_fields", context)
        return _form_page(request, workspace, status=200, comparison_form=shown)
    form = ComparisonForm(workspace, request.POST)
    return asked_run(
        form,
        lambda data: request_comparison(
            request.user,
            data["checkpoint_a"],
            data["checkpoint_b"],
            data["dataset"],
            data["layers_a"] or None,
            data["layers_b"] or None,
            pooling_b=data["pooling_b"] or None,
            **form.measure_options(),
        ),
        "comparison",
        lambda: _form_page(request, workspace, comparison_form=form),
    )


@login_required
def dataset_detail(request: SignedInRequest, pk: int, status: int = 200) -> HttpResponse:
    dataset = _get(Dataset, request, pk)
    return render(
        request,
        "pages/dataset.html",
        {
            "dataset": dataset,
            "workspace": dataset.workspace,
            "can_edit": _can_edit(request, dataset.workspace),
            "runs": dataset.runs.select_related("checkpoint", "checkpoint_b")[:20],
        },
        status=status,
    )


@login_required
def sample_thumbnail(request: SignedInRequest, pk: int, index: int) -> HttpResponse:
    dataset = _get(Dataset, request, pk)
    if dataset.thumbnails is None or not 0 <= index < dataset.n_samples:
        raise Http404("no such sample image")
    return _png(images.thumbnail(dataset, index))


def _png(data: bytes) -> HttpResponse:
    """A PNG from :mod:`webapp.catalog.images`; the same bytes for as long as the sample exists."""
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "private, max-age=86400, immutable"
    return response


@login_required
def sample_text(request: SignedInRequest, pk: int, index: int) -> HttpResponse:
    """The text of one sample of a text dataset (plain text, for hover tooltips)."""
    dataset = _get(Dataset, request, pk)
    if dataset.modality != "text" or not 0 <= index < dataset.n_samples:
        raise Http404("no such sample text")
    (sample,) = dataset.samples([index])
    response = HttpResponse(sample["text"], content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "private, max-age=86400, immutable"
    return response


def _chosen_dataset(checkpoint: Checkpoint, value: str | None) -> tuple[Dataset | None, str]:
    """The dataset a checkpoint's page acts on: ``value`` (an id of the workspace's), else the
    one its activations are of (precomputed: the only one), else the last one it was run on,
    else the newest its model reads (:func:`fits.default_dataset`); and why, in a sentence,
    where that is not plain ("")."""
    datasets = checkpoint.workspace.datasets.all()
    chosen = datasets.filter(pk=_id(value)).first()
    if chosen or checkpoint.dataset_id:
        return chosen or checkpoint.dataset, ""
    last = checkpoint.activations.order_by("-created_at").values_list("dataset", flat=True)
    ran = datasets.filter(pk__in=last[:1]).first()
    if ran is None:
        return fits.default_dataset(checkpoint, list(datasets))
    newest = datasets.first()
    return ran, "" if ran == newest else f"{ran.name}: the dataset of its latest extraction."


def _posted_dataset(
    request: SignedInRequest, checkpoint: Checkpoint, prefix: str = ""
) -> Dataset | None:
    """The dataset a checkpoint page's form was posted for (its hidden field)."""
    return _chosen_dataset(checkpoint, request.POST.get(f"{prefix}dataset"))[0]


@login_required
def checkpoint_detail(
    request: SignedInRequest, pk: int, status: int = 200, **forms: Form
) -> HttpResponse:
    """A checkpoint: its facts and lineage, what was computed of it, every result that uses
    it, and the actions on it, all for one dataset chosen at the top (``?dataset=``)."""
    checkpoint = _get(Checkpoint, request, pk)
    chosen = request.GET.get("dataset")
    for posted in forms.values():  # a form refused: the dataset it was posted for
        if "dataset" in posted.fields:
            chosen = str(posted["dataset"].value() or "")
    dataset, dataset_why = _chosen_dataset(checkpoint, chosen)
    activations = checkpoint.activations.select_related("dataset").order_by("dataset", "id")
    runs = checkpoint.runs.filter(kind__in=[Run.Kind.PROBE, Run.Kind.PROJECT])
    uses = (
        Run.objects.filter(
            models.Q(checkpoint=checkpoint)
            | models.Q(checkpoint_b=checkpoint)
            | models.Q(depends_on__checkpoint=checkpoint)
        )
        .exclude(kind=Run.Kind.EXTRACT)
        .distinct()
        .select_related("checkpoint", "checkpoint_b", "dataset")
    )
    made = {"dataset": dataset}
    return render(
        request,
        "pages/checkpoint.html",
        {
            "checkpoint": checkpoint,
            "workspace": checkpoint.workspace,
            "can_edit": _can_edit(request, checkpoint.workspace),
            "dataset": dataset,
            "dataset_why": dataset_why,
            "datasets": checkpoint.workspace.datasets.all(),
            "activations": activations,
            "form": forms.get("form") or ExtractionForm(checkpoint, **made),
            "token_storage": (
                fits.token_storage(checkpoint, dataset, list(checkpoint.default_layers))
                if dataset is not None and checkpoint.keeps_positions
                else None
            ),
            "estimates": fits.ESTIMATES,
            "projection_form": forms.get("projection_form") or ProjectionForm(checkpoint, **made),
            "aligned_form": forms.get("aligned_form") or AlignedProjectionForm(checkpoint, **made),
            "probe_form": forms.get("probe_form") or ProbeForm(checkpoint, **made),
            "lineage_form": forms.get("lineage_form") or LineageForm(checkpoint),
            "children": checkpoint.checkpoint_set.order_by("step", "created_at"),
            "probes": runs.filter(kind=Run.Kind.PROBE).select_related("dataset"),
            "projections": runs.filter(kind=Run.Kind.PROJECT).select_related("dataset"),
            "aligned_runs": checkpoint.runs.filter(kind=Run.Kind.PROJECT_ALIGNED).select_related(
                "dataset"
            ),
            "runs": uses[:100],
        },
        status=400 if forms else status,
    )


@login_required
@require_POST
def extract(request: SignedInRequest, pk: int) -> HttpResponse:
    checkpoint = _get(Checkpoint, request, pk)
    check_editable(request.user, checkpoint)
    form = ExtractionForm(checkpoint, request.POST, dataset=_posted_dataset(request, checkpoint))
    return asked_run(
        form,
        lambda data: request_extraction(
            request.user, checkpoint, data["dataset"], data["layers"], data["pooling"]
        ),
        "run",
        lambda: checkpoint_detail(request, pk, form=form),
    )


@login_required
def run_detail(request: HtmxRequest, pk: int) -> HttpResponse:
    run = _get(Run, request, pk)
    context = {
        "run": run,
        "workspace": run.workspace,
        "members": _aligned_members(run),
        "standing": standing(run),
        "parameters": parameter_rows(run.kind, run.params),
    }
    return _poll(request, "pages/run.html", "status", context, run.is_terminal)


def _aligned_members(run: Run) -> list[Run]:
    """The projections an aligned run made, in order, each knowing the one before it."""
    if run.kind != Run.Kind.PROJECT_ALIGNED or run.state != Run.State.SUCCEEDED:
        return []
    members = explorer.aligned_members(run)
    for previous, member in zip([None, *members], members, strict=False):
        member.previous = previous
    return members


@login_required
@require_POST
def cancel_run(request: SignedInRequest, pk: int) -> HttpResponse:
    run = _get(Run, request, pk)
    check_editable(request.user, run)
    run.cancel()
    return redirect("run", pk=run.pk)


@login_required
def comparison(request: HtmxRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(visible_to(Run, request.user), pk=pk, kind=Run.Kind.COMPARE)
    context = {
        "run": run,
        "workspace": run.workspace,
        "dependencies": run.depends_on.all(),
        "standing": standing(run),
        "matrix": comparison_matrix(run),
        "scores": scores_with_cells(run),
        "measures": measures_of_pair(run),
    }
    return _poll(request, "pages/comparison.html", "result", context, run.is_terminal)


def _pair(request: SignedInRequest, pk: int, row: int, col: int) -> tuple[Run, str, str]:
    """A comparison the user may see, and the layers of one of its cells."""
    run = get_object_or_404(visible_to(Run, request.user), pk=pk, kind=Run.Kind.COMPARE)
    layers_a, layers_b = run.params["layers_a"], run.params["layers_b"]
    if not (0 <= row < len(layers_a) and 0 <= col < len(layers_b)):
        raise Http404("no such layer pair")
    return run, layers_a[row], layers_b[col]


@login_required
def comparison_pair(request: HtmxRequest, pk: int, row: int, col: int) -> HttpResponse:
    """One cell of the matrix: its score with interval and baseline, the samples behind it
    (per-sample kNN agreement between the two layers), and maps fitted between them."""
    run, layer_a, layer_b = _pair(request, pk, row, col)
    score = get_object_or_404(
        run.scores.select_related("sample_agreement"), layer_a=layer_a, layer_b=layer_b
    )
    alignments = drilldown.alignments_of_pair(run, layer_a, layer_b)
    others = (
        Score.objects.filter(activation_a=score.activation_a, activation_b=score.activation_b)
        .exclude(pk=score.pk)
        .select_related("run")
        .order_by("measure")
    )
    reading = score_reading(score.parameters)
    other_scores = [
        {
            "score": other,
            "measure": MEASURES[other.measure],
            "reading": ""
            if score_reading(other.parameters) == reading
            else score_reading(other.parameters),
        }
        for other in others
    ]
    context = {
        "run": run,
        "workspace": run.workspace,
        "score": score,
        "measure": MEASURES[score.measure],
        "reading": reading,
        "other_scores": other_scores,
        "read_otherwise": any(o["reading"] for o in other_scores),
        "row": row,
        "col": col,
        "alignments": alignments,
        "alignments_active": any(a["run"] and not a["run"].is_terminal for a in alignments),
    }
    if request.htmx:
        done = not context["alignments_active"]
        return _poll(request, "pages/pair.html", "alignments", context, done)
    context.update(drilldown.agreement(score, run.dataset))
    return render(request, "pages/pair.html", context)


@login_required
@require_POST
def align_pair(request: SignedInRequest, pk: int, row: int, col: int) -> HttpResponse:
    """Fit a map between the two layers of a cell (method from the form)."""
    run, layer_a, layer_b = _pair(request, pk, row, col)
    check_editable(request.user, run)
    assert run.checkpoint_b is not None  # a comparison has two checkpoints
    try:
        request_alignment(
            request.user,
            run.checkpoint,
            run.checkpoint_b,
            run.dataset,
            layer_a,
            layer_b,
            pooling=run.params["pooling"],
            method=request.POST.get("method", ""),
        )
    except InputError as err:
        messages.error(request, str(err))
    return redirect("comparison-pair", pk=run.pk, row=row, col=col)


@login_required
def comparison_csv(request: SignedInRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(visible_to(Run, request.user), pk=pk, kind=Run.Kind.COMPARE)
    return _run_csv(run, exports.comparison_table, f"comparison-{run.pk}.csv")


def _run_csv(run: Run, table: Callable[[Run], exports.Table], name: str) -> HttpResponse:
    """The table ``table`` (of :mod:`webapp.runs.exports`) makes of ``run``, as a CSV file named
    ``name``; 404 while the run has no results."""
    try:
        return exports.run_table(run, table, name).response()
    except InputError as err:
        raise Http404(str(err)) from None


@login_required
@require_POST
def new_model_matrix(request: SignedInRequest, slug: str) -> HttpResponse:
    workspace = editable_workspace(request.user, slug)
    form = ModelMatrixForm(workspace, request.POST)
    return asked_run(
        form,
        lambda data: request_model_matrix(
            request.user,
            list(data["checkpoints"]),
            data["dataset"],
            data["layer"],
            **form.measure_options(),
        ),
        "model-matrix",
        lambda: _form_page(request, workspace, matrix_form=form),
    )


@login_required
def model_matrix_page(request: HtmxRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(visible_to(Run, request.user), pk=pk, kind=Run.Kind.MODEL_MATRIX)
    context = {
        "run": run,
        "workspace": run.workspace,
        "dependencies": run.depends_on.select_related("checkpoint"),
        "standing": standing(run),
        "matrix": model_matrix(run),
    }
    return _poll(request, "pages/matrix.html", "result", context, run.is_terminal)


@login_required
@require_POST
def new_compatibility(request: SignedInRequest, slug: str) -> HttpResponse:
    workspace = editable_workspace(request.user, slug)
    form = CompatibilityForm(workspace, request.POST)
    return asked_run(
        form,
        lambda data: request_compatibility(
            request.user,
            series_order(data["checkpoints"]),
            data["dataset"],
            data["layer"],
            **parameters_in(Run.Kind.COMPATIBILITY, data),
        ),
        "compatibility",
        lambda: _form_page(request, workspace, compatibility_form=form),
    )


@login_required
def compatibility_page(request: HtmxRequest, pk: int) -> HttpResponse:
    """C[i][j] for a series of checkpoints, the criteria of every (new, old) pair, AC and AM,
    and the queries each update breaks (negative flips)."""
    run = get_object_or_404(visible_to(Run, request.user), pk=pk, kind=Run.Kind.COMPATIBILITY)
    matrix = compatibility_matrix(run)
    context = {
        "run": run,
        "workspace": run.workspace,
        "dependencies": run.depends_on.select_related("checkpoint"),
        "standing": standing(run),
        "matrix": matrix,
        "pairs": drilldown.compatibility_pairs(run, matrix),
    }
    return _poll(request, "pages/compatibility.html", "result", context, run.is_terminal)


@login_required
def compatibility_csv(request: SignedInRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(visible_to(Run, request.user), pk=pk, kind=Run.Kind.COMPATIBILITY)
    return _run_csv(run, exports.compatibility_table, f"compatibility-{run.pk}.csv")


@login_required
def alignment_csv(request: SignedInRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(visible_to(Run, request.user), pk=pk, kind=Run.Kind.ALIGN)
    return _run_csv(run, exports.alignment_table, f"alignment-{run.pk}.csv")


@login_required
@require_POST
def new_projection(request: SignedInRequest, pk: int) -> HttpResponse:
    checkpoint = _get(Checkpoint, request, pk)
    check_editable(request.user, checkpoint)
    form = ProjectionForm(checkpoint, request.POST, dataset=_posted_dataset(request, checkpoint))
    return asked_run(
        form,
        lambda data: request_projection(
            request.user,
            checkpoint,
            data["dataset"],
            **{name: value for name, value in data.items() if name != "dataset"},
        ),
        "projection",
        lambda: checkpoint_detail(request, pk, projection_form=form),
    )


@login_required
@require_POST
def new_aligned_projection(request: SignedInRequest, pk: int) -> HttpResponse:
    checkpoint = _get(Checkpoint, request, pk)
    check_editable(request.user, checkpoint)
    dataset = _posted_dataset(request, checkpoint, "aligned-")
    form = AlignedProjectionForm(checkpoint, request.POST, dataset=dataset)
    return asked_run(
        form,
        lambda data: request_aligned_projections(
            request.user,
            [(checkpoint, layer) for layer in data["layers"]],
            data["dataset"],
            **{name: value for name, value in data.items() if name not in ("layers", "dataset")},
        ),
        "run",
        lambda: checkpoint_detail(request, pk, aligned_form=form),
    )


def _projection_run(request: SignedInRequest, pk: int) -> Run:
    return get_object_or_404(visible_to(Run, request.user), pk=pk, kind=Run.Kind.PROJECT)


@login_required
def projection_page(request: HtmxRequest, pk: int) -> HttpResponse:
    """The explorer: every sample of one layer in 2-D (WebGL, fed by binary endpoints), and the
    other projections of the same layer beside it."""
    run = _projection_run(request, pk)
    siblings = Run.objects.filter(
        kind=Run.Kind.PROJECT, checkpoint=run.checkpoint, dataset=run.dataset
    ).order_by("-created_at")
    context = {
        "run": run,
        "workspace": run.workspace,
        "dependencies": run.depends_on.select_related("checkpoint"),
        "standing": standing(run),
        "projection": getattr(run, "projection", None)
        if run.state == Run.State.SUCCEEDED
        else None,
        "siblings": [s for s in siblings if s.params["layer"] == run.params["layer"]],
        "mean_kept": explorer.mean_kept(run),
        "spectrum": explorer.spectrum_plot(run),
        "chance_accuracy": explorer.majority_share(run.dataset),
        "axes": explorer.axis_titles(run),
        "label_names": explorer.label_names(run.dataset),
        "colourings": _colourings(run) if run.state == Run.State.SUCCEEDED else [],
        "selections": _named_selections(run.dataset),
        "others": _other_projections(run),
    }
    return _poll(request, "pages/projection.html", "result", context, run.is_terminal)


def _binary(data: bytes) -> HttpResponse:
    response = HttpResponse(data, content_type="application/octet-stream")
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
def projection_coordinates(request: SignedInRequest, pk: int) -> HttpResponse:
    """float32 little-endian x, y of every sample, interleaved, in dataset order."""
    run = _projection_run(request, pk)
    if run.state != Run.State.SUCCEEDED:
        raise Http404("this projection has no coordinates yet")
    return _binary(explorer.encode(run.projection.coordinates.load_array(), "float32"))


@login_required
def projection_labels(request: SignedInRequest, pk: int) -> HttpResponse:
    """uint16 little-endian class index of every sample (65535: no label), dataset order."""
    run = _projection_run(request, pk)
    return _binary(explorer.encode(explorer.label_codes(run.dataset)))


@login_required
def projection_point(request: SignedInRequest, pk: int, index: int) -> HttpResponse:
    """One sample of a projection (an htmx partial): its k nearest neighbours in the original
    space, with distances, and how many of them the projection keeps among its k nearest."""
    run = _projection_run(request, pk)
    if run.state != Run.State.SUCCEEDED or not 0 <= index < run.dataset.n_samples:
        raise Http404("no such point")
    found = drilldown.neighbours(run, index)
    context = {
        "run": run,
        "projection": run.projection,
        "sample": found["sample"],
        "sample_list": [found["sample"]],
        "neighbours": found["neighbours"],
        "kept": found["kept"],
    }
    return render(request, "pages/projection.html#point", context)


def _named_selections(dataset: Dataset) -> list[Selection]:
    return list(dataset.selections.exclude(name="").select_related("projection")[:50])


def _other_projections(run: Run) -> list[Run]:
    """Finished projections of the same dataset to put beside this one."""
    return list(
        Run.objects.filter(kind=Run.Kind.PROJECT, dataset=run.dataset, state=Run.State.SUCCEEDED)
        .exclude(pk=run.pk)
        .select_related("checkpoint")
        .order_by("checkpoint__name", "-created_at")[:100]
    )


def _id(value: str | None) -> int:
    """A row id from a request parameter; 0 (no row) when it is not one."""
    return int(value) if isinstance(value, str) and value.isdigit() else 0


def _colourings(run: Run) -> list[dict]:
    """The colourings of a projection, each with the URL of its values."""
    base = reverse("projection-colour", args=[run.pk])
    return [
        {**c.describe(), "url": f"{base}?{urlencode({'key': c.key})}"}
        for c in explorer.colourings(run)
    ]


PAIR_COLOURINGS = {
    "agreement": explorer.Colouring(
        "agreement", "neighbourhood agreement", "continuous", bounds=explorer.SHARE
    ),
    "picture": explorer.Colouring(
        "picture",
        "agreement of the two pictures (2-D neighbours)",
        "continuous",
        bounds=explorer.SHARE,
    ),
    "displacement": explorer.Colouring(
        "displacement", "neighbour-aware displacement", "continuous"
    ),
}


def _pair_colourings(run_a: Run, run_b: Run, same: bool) -> list[dict]:
    """What a side-by-side page colours by, the default first: the agreement of the original
    spaces, or of the two pictures when both are of the same activations (the spaces' is then
    1 everywhere, so it is not offered)."""
    order = ("picture", "displacement") if same else ("agreement", "picture", "displacement")
    return [
        {
            **PAIR_COLOURINGS[what].describe(),
            "url": reverse("projection-pair-values", args=[run_a.pk, run_b.pk, what]),
            "per_k": True,
        }
        for what in order
    ]


def _finished_projection(request: SignedInRequest, pk: int) -> Run:
    run = _projection_run(request, pk)
    if run.state != Run.State.SUCCEEDED:
        raise Http404("this projection has not finished")
    return run


@login_required
def projection_colour(request: SignedInRequest, pk: int) -> HttpResponse:
    """One colouring of a projection's points (``?key=`` from the page's list): uint16 codes
    for a categorical one, float32 values for a continuous one, little-endian, dataset order."""
    run = _finished_projection(request, pk)
    try:
        colouring, values = explorer.colouring_values(run, request.GET.get("key", ""))
    except LookupError as err:
        raise Http404(str(err)) from None
    response = _binary(explorer.encode(values))
    response["X-Colouring-Kind"] = colouring.kind
    return response


@login_required
def projection_search(request: SignedInRequest, pk: int) -> HttpResponse:
    """uint32 little-endian indices, ascending, of the samples whose id, label, text or any
    metadata value contains ``?q=`` (case-insensitive)."""
    run = _finished_projection(request, pk)
    try:
        indices = explorer.search(run.dataset, request.GET.get("q", ""))
    except InputError as err:
        return HttpResponse(str(err), status=400)
    return _binary(explorer.encode(indices, "uint32"))


def _selection_panel(
    request: SignedInRequest,
    selection: Selection,
    run: Run,
    status: int = 200,
    filtered: bool = False,
) -> HttpResponse:
    context = {
        "run": run,
        "selection": selection,
        "filtered": filtered,
        "summary": explorer.selection_summary(selection),
    }
    return render(request, "pages/_selection_panel.html", context, status=status)


@login_required
@require_POST
def projection_select(request: SignedInRequest, pk: int) -> HttpResponse:
    """Resolve a lasso or box drawn on the projection (``polygon``: JSON list of [x, y] in the
    projection's coordinates, or in them aligned to projection ``?aligned_to=``) against the
    stored coordinates, among the points the legend's filter shows (``shown``: base64 bits,
    absent when no filter is on); answers the selection's panel."""
    run = _finished_projection(request, pk)
    check_editable(request.user, run)
    reference = None
    if "aligned_to" in request.GET:  # drawn on these coordinates aligned to another projection
        reference = _finished_projection(request, _id(request.GET["aligned_to"]))
        if reference.dataset_id != run.dataset_id:
            raise Http404("the two projections are of different datasets")
    try:
        polygon = json.loads(request.POST.get("polygon", ""))
        selection = explorer.select_in_polygon(
            request.user, run, polygon, aligned_to=reference, shown=request.POST.get("shown")
        )
    except (json.JSONDecodeError, RecursionError):
        return HttpResponse("polygon: a JSON list of [x, y] vertices is required", status=400)
    except InputError as err:
        return HttpResponse(str(err), status=400)
    return _selection_panel(request, selection, run, status=201, filtered="shown" in request.POST)


def _selection(request: SignedInRequest, pk: int) -> Selection:
    return _get(Selection, request, pk)


@login_required
def selection_panel(request: SignedInRequest, pk: int, selection: int) -> HttpResponse:
    """A selection's panel on a projection of its dataset (opening a shared URL)."""
    run = _finished_projection(request, pk)
    chosen = get_object_or_404(visible_to(Selection, request.user), pk=selection)
    if chosen.dataset_id != run.dataset_id:
        raise Http404("that selection is of another dataset")
    return _selection_panel(request, chosen, run)


@login_required
@require_POST
def save_selection(request: SignedInRequest, pk: int) -> HttpResponse:
    """Name and tag a selection (``name``, ``tags`` comma-separated); ``run`` is the projection
    the panel is shown on."""
    selection = _selection(request, pk)
    check_editable(request.user, selection)
    shown_on = _id(request.POST.get("run")) or selection.projection_id or 0  # 0: none, a 404
    run = _finished_projection(request, shown_on)
    name = request.POST.get("name", "").strip()
    if not name:
        return HttpResponse("a selection needs a name to be saved", status=400)
    try:
        selection.tags = explorer.clean_tags(request.POST.get("tags", ""))
    except InputError as err:
        return HttpResponse(str(err), status=400)
    selection.name = name[:200]
    selection.save(update_fields=["name", "tags"])
    return _selection_panel(request, selection, run)


@login_required
def selection_indices(request: SignedInRequest, pk: int) -> HttpResponse:
    """uint32 little-endian indices of the selected samples, ascending."""
    selection = _selection(request, pk)
    return _binary(explorer.encode(selection.indices.load_array(), "uint32"))


@login_required
def selection_export(request: SignedInRequest, pk: int, extension: str) -> HttpResponse:
    """The selected samples as CSV or Parquet: index, id, label, metadata, and their x, y in
    ``?projection=`` (default: the projection the selection was drawn on)."""
    if extension not in exports.SELECTION_TYPES:
        raise Http404("exports are .csv or .parquet")
    selection = _selection(request, pk)
    run: Run | None = None
    if request.GET.get("projection"):
        run = _finished_projection(request, _id(request.GET["projection"]))
        if run.dataset_id != selection.dataset_id:
            raise Http404("that projection is of another dataset")
    return exports.selection_file(selection, run, extension).response()


def _projection_pair(request: SignedInRequest, pk: int, other: int) -> tuple[Run, Run]:
    run_a, run_b = _finished_projection(request, pk), _finished_projection(request, other)
    if run_a.dataset_id != run_b.dataset_id:
        raise Http404("the two projections are of different datasets")
    return run_a, run_b


def _k(request: SignedInRequest, run_a: Run, run_b: Run) -> int:
    """``?k=`` clamped to what both spaces stored (default 10)."""
    limit = explorer.max_k(run_a, run_b)
    try:
        k = int(request.GET.get("k", 10))
    except ValueError:
        k = 10
    return max(1, min(k, limit))


@login_required
def projection_pair(request: SignedInRequest, pk: int, other: int) -> HttpResponse:
    """Two projections of the same samples side by side, hover and selection linked, coloured
    by how much each sample's neighbourhood in the original spaces agrees."""
    run_a, run_b = _projection_pair(request, pk, other)
    changed = _changed(request, run_a, run_b)
    same = changed["same_space"]  # agreement is 1 everywhere: not offered
    context = {
        "run": run_a,
        "run_b": run_b,
        "workspace": run_a.workspace,
        "max_k": explorer.max_k(run_a, run_b),
        "label_names": explorer.label_names(run_a.dataset),
        "colourings": [
            *_pair_colourings(run_a, run_b, same),
            *[c for c in _colourings(run_a) if c["kind"] == "categorical"],
        ],
        "selections": _named_selections(run_a.dataset),
        **changed,
    }
    return render(request, "pages/projection_pair.html", context)


def _changed(request: SignedInRequest, run_a: Run, run_b: Run) -> dict:
    """``k`` from the request, and the samples whose neighbourhoods changed most between the
    two original spaces with their mean agreement; none (``same_space``) when both pictures
    are of the same activations."""
    k = _k(request, run_a, run_b)
    if explorer.same_space(run_a, run_b):
        return {"k": k, "same_space": True, "changed": []}
    agreement = explorer.pair_agreement(run_a, run_b, k)
    return {
        "k": k,
        "same_space": False,
        "mean_agreement": float(agreement.mean()),
        "chance_agreement": knn_jaccard_chance(k, agreement.size),
        "changed": explorer.changed_most(run_a, run_b, k),
    }


@login_required
def projection_pair_changed(request: SignedInRequest, pk: int, other: int) -> HttpResponse:
    """The samples whose neighbourhoods changed most at ``?k=`` (an htmx partial)."""
    run_a, run_b = _projection_pair(request, pk, other)
    context = {"run": run_a, "run_b": run_b, **_changed(request, run_a, run_b)}
    return render(request, "pages/projection_pair.html#changed", context)


@login_required
def projection_pair_values(
    request: SignedInRequest, pk: int, other: int, what: str
) -> HttpResponse:
    """float32 per sample: ``agreement`` (Jaccard of the k nearest neighbours in the two
    original spaces), ``picture`` (the same in the two 2-D pictures) or ``displacement``
    (neighbour-aware, from A's picture to B's)."""
    if what not in PAIR_COLOURINGS:
        raise Http404(f"no per-sample {what!r} between projections")
    run_a, run_b = _projection_pair(request, pk, other)
    k = _k(request, run_a, run_b)
    if what == "agreement":
        values = explorer.pair_agreement(run_a, run_b, k)
    elif what == "picture":
        values = explorer.picture_agreement(run_a, run_b, k)
    else:
        values = explorer.pair_displacement(run_a, run_b, k)
    return _binary(explorer.encode(values, "float32"))


@login_required
def projection_pair_aligned(request: SignedInRequest, pk: int, other: int) -> HttpResponse:
    """Projection ``other``'s coordinates moved onto projection ``pk``'s by the best similarity
    transform (float32 x, y interleaved), so the same sample sits in the same place."""
    run_a, run_b = _projection_pair(request, pk, other)
    coordinates, _ = explorer.aligned_coordinates(run_b, run_a)
    return _binary(explorer.encode(coordinates, "float32"))


def _probe_run(request: SignedInRequest, pk: int) -> Run:
    return get_object_or_404(visible_to(Run, request.user), pk=pk, kind=Run.Kind.PROBE)


@login_required
@require_POST
def new_probe(request: SignedInRequest, pk: int) -> HttpResponse:
    checkpoint = _get(Checkpoint, request, pk)
    check_editable(request.user, checkpoint)
    dataset = _posted_dataset(request, checkpoint, "probe-")
    form = ProbeForm(checkpoint, request.POST, dataset=dataset)
    if form.is_valid():
        data = dict(form.cleaned_data)
        try:
            run, _ = request_probe(
                request.user,
                checkpoint,
                data["dataset"],
                data["layers"] or None,
                data["pooling"],
                data["families"] or None,
                data["seed"],
                data.get("positions") if data["pooling"] == TOKENS else None,
            )
        except InputError as err:
            form.add_error(None, str(err))
        else:
            return redirect("probe", pk=run.pk)
    return checkpoint_detail(request, pk, probe_form=form)


@login_required
def probe_page(request: HtmxRequest, pk: int) -> HttpResponse:
    """How every probed layer responds to each transformation family: layer × magnitude
    heatmaps, curves over depth (other checkpoints' runs overlaid with ``?with=<run>``), and
    the samples each transform moves most."""
    run = _probe_run(request, pk)
    done = run.state == Run.State.SUCCEEDED
    candidates = (
        Run.objects.filter(kind=Run.Kind.PROBE, dataset=run.dataset, state=Run.State.SUCCEEDED)
        .exclude(pk=run.pk)
        .select_related("checkpoint")
    )
    chosen = {_id(v) for v in request.GET.getlist("with")}
    overlays = [o for o in candidates if o.pk in chosen]
    context = {
        "run": run,
        "workspace": run.workspace,
        "summary": probe_summary(run, overlays) if done else None,
        "candidates": candidates,
        "overlays": overlays,
    }
    return _poll(request, "pages/probe.html", "result", context, run.is_terminal)


@login_required
def probe_moved(request: SignedInRequest, pk: int) -> HttpResponse:
    """The samples a family moves most at one layer and magnitude (an htmx partial): each
    sample before and after the transform, with its invariance."""
    run = _probe_run(request, pk)
    row = get_object_or_404(run.probe_results, family=request.GET.get("family", ""))
    layers, magnitudes = row.result["layers"], row.result["magnitudes"]
    layer = _id(request.GET.get("layer")) if request.GET.get("layer") else len(layers) - 1
    t = _id(request.GET.get("t")) if request.GET.get("t") else len(magnitudes) - 1
    if not (0 <= layer < len(layers) and 0 <= t < len(magnitudes)):
        raise Http404("no such layer or magnitude")
    samples = drilldown.moved(run, row, layer, t)
    context = {
        "run": run,
        "row": row,
        "layer": layers[layer],
        "t": magnitudes[t],
        "samples": samples,
        "images": run.dataset.thumbnails_id is not None,
    }
    return render(request, "pages/probe.html#moved", context)


@login_required
def probe_sample(request: SignedInRequest, pk: int, index: int) -> HttpResponse:
    """Sample ``index`` as the probe showed it to the model under ``?family=`` at ``?t=`` (the
    same seeded transform), as a PNG preview."""
    run = _probe_run(request, pk)
    row = get_object_or_404(run.probe_results, family=request.GET.get("family", ""))
    try:
        t = row.result["magnitudes"].index(float(request.GET.get("t", "")))
    except ValueError:
        raise Http404("t must be one of the probe's magnitudes") from None
    preview = drilldown.transformed_image(row, t, index)
    if preview is None:
        raise Http404("the probe kept no preview of this sample at this magnitude")
    return _png(images.png(preview))


# --------------------------------------------------------------------------- lifecycle
# Workspaces made, renamed and archived; datasets, checkpoints and runs renamed and deleted.
# Only editors and owners change a workspace's rows (owners: the workspace itself); anyone
# else gets the 404 of a row that does not exist.


@login_required
@require_POST
def new_workspace(request: SignedInRequest) -> HttpResponse:
    form = NameForm(request.POST)
    if form.is_valid():
        try:
            made = workspaces.create(request.user, form.cleaned_data["name"])
        except InputError as err:
            form.add_error("name", str(err))
        else:
            return redirect("workspace", slug=made.slug)
    messages.error(request, f"The workspace was not made: {form.errors['name'][0]}")
    return home(request, status=400)


def _owned_workspace(request: SignedInRequest, slug: str) -> Workspace:
    return get_object_or_404(owned_workspaces_of(request.user), slug=slug)


@login_required
@require_POST
def rename_workspace(request: SignedInRequest, slug: str) -> HttpResponse:
    space = _owned_workspace(request, slug)
    form = NameForm(request.POST)
    if form.is_valid():
        try:
            workspaces.rename(space, form.cleaned_data["name"])
        except InputError as err:
            form.add_error("name", str(err))
        else:
            return redirect("workspace", slug=space.slug)
    return _form_page(request, space, name_form=form)


@login_required
@require_POST
def archive_workspace(request: SignedInRequest, slug: str) -> HttpResponse:
    """Archive the workspace (``archived=1``) or bring it back (``archived=0``)."""
    space = _owned_workspace(request, slug)
    archived = request.POST.get("archived", "1") == "1"
    workspaces.archive(space, archived)
    if archived:
        messages.info(request, f"“{space.name}” is archived: read-only, listed apart.")
    return redirect("workspace", slug=space.slug)


def _renamed(request: SignedInRequest, target: Dataset | Checkpoint | Run) -> bool:
    """Rename ``target`` from the posted ``name``; False, with the reason in a message, when
    the name is refused."""
    form = NameForm(request.POST)
    if form.is_valid():
        try:
            lifecycle.rename(target, form.cleaned_data["name"])
        except InputError as err:
            form.add_error("name", str(err))
        else:
            messages.info(request, f"Renamed to “{target.name}”.")
            return True
    messages.error(request, f"Not renamed: {form.errors['name'][0]}")
    return False


def _deletion(request: SignedInRequest, target: Dataset | Checkpoint | Run) -> HttpResponse:
    """GET: what deleting ``target`` removes with it, and a button to confirm; POST: delete
    it all (or say why not, 400) and go back to the workspace."""
    workspace = target.workspace
    status = 200
    if request.method == "POST":
        try:
            removal = lifecycle.delete(target)
        except InputError as err:
            messages.error(request, f"Nothing was deleted: {err}.")
            status = 400
        else:
            others = len(removal.dependants)
            also = f" and {others} thing{'s' if others != 1 else ''} that used it" if others else ""
            messages.info(request, f"Deleted “{_title(target)}”{also}.")
            return redirect("workspace", slug=workspace.slug)
    removal = lifecycle.plan(target)
    context = {
        "workspace": workspace,
        "removal": removal,
        "runs": [run for run in removal.runs if run != target],
        "title": _title(target),
    }
    return render(request, "pages/delete.html", context, status=status)


def _title(target: Dataset | Checkpoint | Run) -> str:
    return target.name or str(target)


@login_required
@require_POST
def rename_dataset(request: SignedInRequest, pk: int) -> HttpResponse:
    dataset = editable(Dataset, request.user, pk)
    if _renamed(request, dataset):
        return redirect("dataset", pk=pk)
    return dataset_detail(request, pk, status=400)


@login_required
def delete_dataset(request: SignedInRequest, pk: int) -> HttpResponse:
    return _deletion(request, editable(Dataset, request.user, pk))


@login_required
@require_POST
def rename_checkpoint(request: SignedInRequest, pk: int) -> HttpResponse:
    checkpoint = editable(Checkpoint, request.user, pk)
    if _renamed(request, checkpoint):
        return redirect("checkpoint", pk=pk)
    return checkpoint_detail(request, pk, status=400)


@login_required
@require_POST
def checkpoint_lineage(request: SignedInRequest, pk: int) -> HttpResponse:
    """Set a checkpoint's seed group, training step and parent."""
    checkpoint = editable(Checkpoint, request.user, pk)
    form = LineageForm(checkpoint, request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            lineage.set_lineage(checkpoint, data["seed_group"], data["step"], data["parent"])
        except InputError as err:
            form.add_error(None, str(err))
        else:
            return redirect("checkpoint", pk=checkpoint.pk)
    return checkpoint_detail(request, pk, lineage_form=form)


@login_required
def delete_checkpoint(request: SignedInRequest, pk: int) -> HttpResponse:
    return _deletion(request, editable(Checkpoint, request.user, pk))


@login_required
@require_POST
def rename_run(request: SignedInRequest, pk: int) -> HttpResponse:
    """Name a run (shown in the workspace's lists instead of its title); back to the runs."""
    run = editable(Run, request.user, pk)
    if _renamed(request, run):
        return _workspace_at(run.workspace, "runs")
    return _form_page(request, run.workspace)


@login_required
def delete_run(request: SignedInRequest, pk: int) -> HttpResponse:
    return _deletion(request, editable(Run, request.user, pk))
