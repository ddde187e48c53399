"""Walk every URL as every persona.

One workspace holds one of everything (an image dataset with thumbnails, two checkpoints,
finished extractions, a comparison, a model matrix, an alignment, a compatibility series, two
projections, an aligned projection run, a probe run, a named selection, an open upload and
one a worker refused, an invitation) and a second workspace belongs to the outsider. Every URL
pattern of the site and every route of the API is enumerated from the resolver; :data:`PAGES`
and :data:`API` say for each URL name which objects fill its path and what each persona may do
there. A URL name that the tables do not cover fails
:func:`test_every_url_name_is_in_the_tables`: add it.

What is asserted, for each URL × persona:

- anonymous: pages redirect to the login page (302), the API answers 401; the health checks
  (``open``) answer anyone alike;
- outsider (signed in, owner of another workspace): 404 for every method on everything of
  the lab, never 403 or 200 (405 where the method does not exist at that URL, whatever the
  id), the same answer, byte for byte, as for an id that does not exist; lists show nothing
  of the lab;
- viewer: every GET 200 (302 or htmx's 286 where that is the page's normal answer), every
  write 404 with nothing changed (the API too: 404, never 403; uploads are the editors'
  business, so a viewer's GET of an upload is 404 as well); member management is the owner's;
- editor: reads and writes succeed, member management 404;
- owner: every GET 200, binary endpoints too; writes succeed; ids one past the largest 404;
- anyone signed in, the outsider included, makes a new workspace (``SIGNED_IN`` writers), and
  owns it.

Then CSRF (every POST of the site and, with session authentication, of the API: 403 without
the token, not 403 with it) and escaping: the lab's names, labels, metadata and selection carry
script payloads, and every HTML page and partial must show them escaped, with ``json_script``
blocks escaping ``<``, ``>`` and ``&``.

The world is built once per module inside a transaction that is rolled back at the end; each
test runs in a savepoint of it.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client, override_settings
from django.urls import URLResolver, get_resolver, reverse
from django.utils.html import escape
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from sklearn.datasets import load_digits

from tests.conftest import digits_npz_bytes, run_with_dependencies, torchscript_mlp_bytes
from tests.webapp.builders import npz_bytes
from webapp.catalog import uploads
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset
from webapp.catalog.models import (
    ActivationSet,
    Checkpoint,
    Dataset,
    Invitation,
    Membership,
    Upload,
    Workspace,
)
from webapp.runs.explorer import select_indices
from webapp.runs.models import Run, Selection
from webapp.runs.stitching import request_stitching
from webapp.runs.submit import (
    request_aligned_projections,
    request_alignment,
    request_comparison,
    request_compatibility,
    request_dynamics,
    request_extraction,
    request_model_matrix,
    request_nested,
    request_probe,
    request_projection,
)
from webapp.runs.units import request_unit_matching
from webapp.runs.weight_space import request_weight_space

pytestmark = pytest.mark.django_db

User = get_user_model()

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
QUOTE = "' onmouseover='alert(1)"
SERIES = f"run {SCRIPT}"  # a seed group: the series of ckpt_a (step 0) and ckpt_b (step 1)
COLUMN = f"group{IMG}"  # a metadata column's name
VALUE = f"value {SCRIPT}"  # and one of its values
RAW_MARKERS = ("<script>alert(", "<img src=x", "onmouseover='alert")
"""What any of the payloads leaves in HTML when it is not escaped."""

PERSONAS = ("anonymous", "outsider", "viewer", "editor", "owner")
MEMBERS = frozenset({"viewer", "editor", "owner"})
EDITORS = frozenset({"editor", "owner"})
OWNERS = frozenset({"owner"})
SIGNED_IN = frozenset({"outsider", *MEMBERS})  # writers of what is nobody's yet (a workspace)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PROBE_FAMILIES = {"image/rotation": [0.0, 90.0], "image/noise": [0.0, 0.1]}


# --------------------------------------------------------------------------- the URLs


@dataclass(frozen=True)
class Route:
    """One URL pattern: a page of the site or a route of the API (the router also adds a
    ``.<format>`` twin of each route, walked like the route itself where it works)."""

    api: bool
    name: str
    params: tuple[str, ...]
    pattern: str
    allowed: frozenset[str] | None  # the API's methods; None for pages (the table says)
    no_format: tuple[str, ...] = ()  # handlers of a ``.json`` twin that cannot take ``format``
    urlconf: Any = field(default=None, compare=False, hash=False, repr=False)

    def reverse(self, kwargs: dict) -> str:
        """This pattern's URL (not another's of the same name: a page and an API route share
        ``selection-indices`` and ``selection-export``)."""
        return reverse(self.name, urlconf=self.urlconf, kwargs=kwargs)

    @property
    def key(self) -> str:
        return f"{'api' if self.api else 'page'}:{self.name}"

    @property
    def label(self) -> str:
        return self.key + (".json" if "format" in self.params else "")


SKIPPED_NAMES = {"login", "logout", "schema", "api-docs", "no-such-route"}  # test_api.py


def _walk(patterns, parents=()):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, (*parents, pattern))
        else:
            yield parents, pattern


def _alone(parents, pattern):
    """A URLconf holding only ``pattern`` under its includes: to reverse exactly it."""
    patterns = [pattern]
    for parent in reversed(parents):
        patterns = [URLResolver(parent.pattern, patterns)]
    return type(f"URLconf_{pattern.name}", (), {"urlpatterns": patterns})


def _takes_format(handler) -> bool:
    parameters = inspect.signature(handler).parameters.values()
    return any(p.name == "format" or p.kind is p.VAR_KEYWORD for p in parameters)


def enumerate_routes() -> list[Route]:
    routes = {}
    for parents, pattern in _walk(get_resolver().url_patterns):
        text = "".join(str(p.pattern) for p in (*parents, pattern))
        admin = any(p.namespace == "admin" for p in parents)
        if admin or pattern.name in SKIPPED_NAMES or text.startswith("static"):
            continue
        callback = pattern.callback
        api = text.startswith("api/")
        allowed, no_format = None, ()
        params = tuple(sorted(pattern.pattern.regex.groupindex))
        if api:
            view = getattr(callback, "cls", None)
            names = getattr(view, "http_method_names", [])
            actions = getattr(callback, "actions", None) or {"get": "get"}  # the API root
            allowed = frozenset(m.upper() for m in actions if m in names)
            if "format" in params:
                no_format = tuple(
                    f"{view.__name__}.{action}"
                    for method, action in sorted(actions.items())
                    if method in names and not _takes_format(getattr(view, action))
                )
        route = Route(api, pattern.name, params, text, allowed, no_format, _alone(parents, pattern))
        routes.setdefault((route.key, params), route)
    return sorted(routes.values(), key=lambda r: r.label)


ROUTES = enumerate_routes()


# --------------------------------------------------------------------------- the world


def payload_digits(n: int = 60) -> bytes:
    """Real 8×8 digits whose label names, ids and metadata (values and a column name) are
    script payloads."""
    digits = load_digits()
    payloads = (SCRIPT, IMG, QUOTE)
    return npz_bytes(
        x=(digits.images[:n] / 16).astype(np.float32)[:, None],
        y=digits.target[:n],
        ids=np.array([f"d{i:03d}{payloads[i % 3]}" for i in range(n)]),
        label_names=np.array([f"{k} {payloads[k % 3]}" for k in range(10)]),
        ink=digits.images[:n].sum(axis=(1, 2)).astype(np.float64),
        **{COLUMN: np.array([VALUE if i % 2 else "plain" for i in range(n)])},
    )


def _finished(run: Run) -> Run:
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, f"{run}: {run.error}"
    return run


def _ingest_checkpoint(workspace, user, seed: int, name: str, description: str = ""):
    content = io.BytesIO(torchscript_mlp_bytes(seed))
    return ingest_checkpoint(workspace, user, content, f"mlp-{seed}.pt", name, "", description)[0]


def build_world() -> SimpleNamespace:
    w = SimpleNamespace()
    w.owner = User.objects.create_user("owner")
    w.editor = User.objects.create_user("editor")
    w.viewer = User.objects.create_user("viewer")
    w.outsider = User.objects.create_user("outsider")
    w.users = {p: getattr(w, p) for p in PERSONAS if p != "anonymous"}
    w.tokens = {p: Token.objects.create(user=u).key for p, u in w.users.items()}

    w.ws = Workspace.objects.create(name=f"Lab {SCRIPT}", slug="lab")
    for persona in ("owner", "editor", "viewer"):
        Membership.objects.create(workspace=w.ws, user=w.users[persona], role=persona)
    w.other_ws = Workspace.objects.create(name="Elsewhere", slug="elsewhere")
    Membership.objects.create(workspace=w.other_ws, user=w.outsider, role="owner")

    w.dataset, _ = ingest_dataset(
        w.ws, w.owner, io.BytesIO(payload_digits()), f"digits{IMG}.npz", f"Digits {SCRIPT}", QUOTE
    )
    assert w.dataset.thumbnails_id is not None
    texts = json.dumps({"id": "t0", "text": f"a text {SCRIPT}", "label": f"L {SCRIPT}"})
    w.texts, _ = ingest_dataset(w.ws, w.owner, io.BytesIO(texts.encode()), "texts.jsonl", "Texts")
    w.ckpt_a = _ingest_checkpoint(w.ws, w.owner, 0, f"mlp-seed0 {IMG}", SCRIPT)
    w.ckpt_b = _ingest_checkpoint(w.ws, w.owner, 1, f"mlp-seed1 {SCRIPT}", QUOTE)
    a, b, d, owner = w.ckpt_a, w.ckpt_b, w.dataset, w.owner

    for step, checkpoint in enumerate((a, b)):  # a training run of two steps
        checkpoint.seed_group, checkpoint.step = SERIES, step
        checkpoint.save()
    w.dynamics = _finished(request_dynamics(owner, w.ws, SERIES, d, ["block1"])[0])
    w.comparison = _finished(request_comparison(owner, a, b, d, n_permutations=2, n_bootstrap=2)[0])
    w.extraction = w.comparison.depends_on.order_by("pk").first()
    w.matrix = _finished(
        request_model_matrix(owner, [a, b], d, "block1", n_permutations=2, n_bootstrap=0)[0]
    )
    w.alignment = _finished(request_alignment(owner, a, b, d, "block1", "block1")[0])
    w.weight_space = _finished(request_weight_space(owner, a, b, d)[0])
    w.stitching = _finished(request_stitching(owner, a, b, d, ["block1"], ["head"])[0])
    w.units = _finished(request_unit_matching(owner, a, b, d, "block1", "block1", n_alphas=5)[0])
    w.compatibility = _finished(request_compatibility(owner, [a, b], d, "block2")[0])
    w.nested = _finished(request_nested(owner, [a, b], d, "block2")[0])
    w.proj_a = _finished(request_projection(owner, a, d, "block1")[0])
    w.proj_b = _finished(request_projection(owner, a, d, "block2")[0])
    w.aligned = _finished(
        request_aligned_projections(owner, [(a, "block1"), (b, "block1")], d, method="pca")[0]
    )
    w.probe = _finished(request_probe(owner, a, d, ["block1", "head"], families=PROBE_FAMILIES)[0])
    # A sample the probe page shows at 90°, so the run kept its preview.
    kept = w.probe.probe_results.get(family="image/rotation").previews.load_arrays()
    w.previewed = int(kept["index"][kept["magnitude"] == 1][0])
    # One run left queued (never run here): what cancelling can change.
    w.queued, _ = request_extraction(owner, b, d, ["head"], "flatten")
    w.selection = select_indices(owner, d, range(0, 20, 2), f"odd ones {SCRIPT}", [IMG, QUOTE])
    w.activation = ActivationSet.objects.filter(checkpoint=a, dataset=d).order_by("pk").first()
    w.invitation = Invitation.objects.create(workspace=w.ws, role="viewer", created_by=owner)

    # An upload of the lab with every byte received: completing it queues it for a check.
    w.upload_bytes = digits_npz_bytes(12)
    w.upload, _ = uploads.start(
        owner,
        w.ws,
        "dataset",
        f"tiny{IMG}.npz",
        len(w.upload_bytes),
        hashlib.sha256(w.upload_bytes).hexdigest(),
        name="tiny",
    )
    w.upload = uploads.append(w.upload, 0, io.BytesIO(w.upload_bytes), len(w.upload_bytes))
    # And one a worker refused: listed with the reason until someone dismisses it.
    w.refused = Upload.objects.create(
        workspace=w.ws,
        kind="dataset",
        filename=f"refused{QUOTE}.csv",
        size=3,
        sha256="0" * 64,
        received=3,
        state=Upload.State.FAILED,
        error=f"line 2 of the file: {SCRIPT}",
        created_by=owner,
    )

    # Files a write may send (distinct bytes: new objects).
    w.extra_npz = digits_npz_bytes(30)
    w.extra_pt = torchscript_mlp_bytes(7)

    # The outsider's own workspace: objects to mix into the lab's URLs.
    w.o_dataset, _ = ingest_dataset(
        w.other_ws, w.outsider, io.BytesIO(digits_npz_bytes(40)), "theirs.npz", "Theirs"
    )
    w.o_ckpt = _ingest_checkpoint(w.other_ws, w.outsider, 2, "their-mlp")
    w.o_proj = _finished(request_projection(w.outsider, w.o_ckpt, w.o_dataset, "block1")[0])
    w.o_selection = select_indices(w.outsider, w.o_dataset, [1, 2, 3], "theirs")
    w.o_invitation = Invitation.objects.create(
        workspace=w.other_ws, role="viewer", created_by=w.outsider
    )
    coordinates = w.proj_a.projection.coordinates.load_array()
    (x0, y0), (x1, y1) = coordinates.min(axis=0) - 1, coordinates.max(axis=0) + 1
    w.polygon = json.dumps([[float(x0), float(y0)], [float(x1), float(y0)], [float(x1), float(y1)]])
    w.lab_runs = set(Run.objects.filter(workspace=w.ws).values_list("pk", flat=True))
    assert len(w.lab_runs) >= 12
    return w


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    root = tmp_path_factory.mktemp("personas")
    fast = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with (
        django_db_blocker.unblock(),
        override_settings(MEDIA_ROOT=root / "media", VAR_DIR=root, PASSWORD_HASHERS=fast),
        transaction.atomic(),
    ):
        yield build_world()
        transaction.set_rollback(True)


@pytest.fixture(autouse=True)
def _media(world):
    """Instead of tests/webapp's folder per test: the world's blobs stay where they are, and
    the upload's chunk is stored again (a test may have completed or aborted it)."""
    uploads.store_chunk(world.upload, 0, io.BytesIO(world.upload_bytes))


def ghost(model) -> Any:
    """An id no row has: one past the largest (a fresh token or UUID where ids are those)."""
    if model is Workspace:
        return "no-such-workspace"
    if model is Invitation:
        return "no-such-invitation-" + uuid.uuid4().hex
    if model is Upload:
        return str(uuid.uuid4())
    return (model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1


def fingerprint() -> tuple:
    """Everything a refused write could have changed."""
    return (
        list(Run.objects.order_by("pk").values_list("pk", "state", "name")),
        list(Workspace.objects.order_by("pk").values_list("pk", "name", "archived_at")),
        list(Dataset.objects.order_by("pk").values_list("pk", "name")),
        list(Checkpoint.objects.order_by("pk").values_list("pk", "name", "step", "parent")),
        list(Selection.objects.order_by("pk").values_list("pk", "name", "tags")),
        list(Membership.objects.order_by("pk").values_list("workspace", "user", "role")),
        list(Invitation.objects.order_by("pk").values_list("pk", "accepted_at")),
        list(Upload.objects.order_by("pk").values_list("pk", "state", "received")),
    )


# --------------------------------------------------------------------------- the tables


@dataclass
class Target:
    """Where one request goes: path parameters and query string."""

    kwargs: dict
    query: dict = field(default_factory=dict)


@dataclass
class Body:
    data: Any = None
    format: str = "json"  # API: json, multipart or octet; pages always post a form
    headers: dict = field(default_factory=dict)


W = SimpleNamespace  # the world, for the lambdas below


@dataclass
class Spec:
    """What a URL name is, in the world: the targets to request (path parameters and query),
    which path parameters are row ids (of which model, to guess ids that do not exist), the
    body of each write method, and what each persona gets."""

    targets: Callable[[W], list[Target]]
    ids: dict[str, type] = field(default_factory=dict)
    writes: dict[str, Callable[[W], Body]] = field(default_factory=dict)
    write_ok: dict[str, tuple[int, ...]] = field(default_factory=dict)
    get: bool = True  # pages: answers GET (else POST only: GET is 405)
    get_ok: tuple[int, ...] = (200,)
    htmx_ok: tuple[int, ...] | None = None  # answer to an htmx poll
    readers: frozenset[str] = MEMBERS
    writers: frozenset[str] = EDITORS
    public: bool = False  # not about one workspace: every signed-in persona alike
    open: bool = False  # public and without login (health checks): anonymous alike
    lists: Callable[[W], set] | None = None  # API lists: the lab's ids it must show members
    check: Callable[[W, str, str, Any], None] | None = None


def ref(w, value):
    """``"@name"`` is the world's object ``name`` (its slug for a workspace, else its id);
    anything else is itself. Lists are resolved item by item."""
    if isinstance(value, list):
        return [ref(w, v) for v in value]
    if not (isinstance(value, str) and value.startswith("@")):
        return value
    obj = getattr(w, value[1:])
    if isinstance(obj, int):  # a sample index
        return obj
    return obj.slug if isinstance(obj, Workspace) else obj.pk


def at(**kwargs) -> Callable[[W], list[Target]]:
    """One target: path parameters (``pk="@comparison"``, ``index=0``) and ``_query``."""
    query = kwargs.pop("_query", {})
    return lambda w: [
        Target({k: ref(w, v) for k, v in kwargs.items()}, {k: ref(w, v) for k, v in query.items()})
    ]


def form(**data) -> Callable[[W], Body]:
    return lambda w: Body({k: ref(w, v) for k, v in data.items()})


def json_body(**data) -> Callable[[W], Body]:
    make = form(**data)
    return lambda w: Body(make(w).data, "json")


def _upload(name: str, attribute: str, fmt: str, **extra) -> Callable[[W], Body]:
    return lambda w: Body(
        {"file": SimpleUploadedFile(name, getattr(w, attribute)), "name": "extra", **extra}, fmt
    )


def _home_check(w, persona, method, response):
    expected = "/w/elsewhere/" if persona == "outsider" else "/w/lab/"
    assert response["Location"] == expected


def _token_check(w, persona, method, response):
    others = {p: u for p, u in w.users.items() if p != persona}
    assert all(Token.objects.filter(user=u).exists() for u in others.values())


def _invitation_check(w, persona, method, response):
    if method == "POST":  # used once: then it is gone, for everyone
        assert Membership.objects.filter(workspace=w.ws, user=w.users[persona]).exists()
        w.invitation.refresh_from_db()
        assert w.invitation.accepted_at is not None


def _new_workspace_check(w, persona, method, response):
    """The workspace made is its maker's: they own it, and nobody else is in it."""
    made = Workspace.objects.get(slug=response.json()["slug"])
    assert made.name == "Another lab" and made.archived_at is None
    members = list(made.memberships.values_list("user", "role"))
    assert members == [(w.users[persona].pk, "owner")]


def _archive_check(w, persona, method, response):
    """POST archives the lab, DELETE brings it back; the answer says which."""
    archived_at = Workspace.objects.get(pk=w.ws.pk).archived_at
    assert (archived_at is not None) == (method == "POST")
    assert (response.json()["archived_at"] is not None) == (method == "POST")


def _dismiss_check(w, persona, method, response):
    """One of the two uploads (the target's) is gone, with its chunks; back to the list."""
    assert response["Location"] == f"/w/{w.ws.slug}/#uploads"
    assert Upload.objects.filter(pk__in=[w.upload.pk, w.refused.pk]).count() == 1


RUN_SLUG = dict(ids={"slug": Workspace})
RUN_PK = dict(ids={"pk": Run})
PAIR = dict(ids={"pk": Run, "other": Run})
CREATED = {"POST": (302,)}


def _runs(w) -> list[Target]:
    kinds = ("extraction", "queued", "comparison", "matrix", "alignment", "compatibility")
    kinds += ("proj_a", "aligned", "probe")
    return [Target({"pk": getattr(w, k).pk}) for k in kinds]


PAGES: dict[str, Spec] = {
    "home": Spec(at(), public=True, get_ok=(302,), check=_home_check),
    # Probed by load balancers: the answer says whether the services are up (see
    # tests/webapp/test_operations.py), whoever asks.
    "healthz": Spec(at(), public=True, open=True, get_ok=(200, 503)),
    "healthz-workers": Spec(at(), public=True, open=True, get_ok=(200, 503)),
    # Asked for by browsers whatever the page says: the site's icon, for everyone.
    "favicon": Spec(at(), public=True, open=True, get_ok=(301,)),
    "workers": Spec(at(), public=True, htmx_ok=(200,)),
    "workspace": Spec(at(slug="@ws"), **RUN_SLUG),
    # Parts of the workspace page for its htmx polls; a plain GET goes to the page.
    "workspace-runs": Spec(at(slug="@ws"), get_ok=(302,), htmx_ok=(200,), **RUN_SLUG),
    "workspace-datasets": Spec(at(slug="@ws"), get_ok=(302,), htmx_ok=(200,), **RUN_SLUG),
    "workspace-checkpoints": Spec(at(slug="@ws"), get_ok=(302,), htmx_ok=(200,), **RUN_SLUG),
    "series": Spec(at(slug="@ws", _query={"group": SERIES}), **RUN_SLUG),
    "new-dynamics": Spec(
        at(slug="@ws", _query={"group": SERIES}),
        get=False,
        writes={
            "POST": form(
                dataset="@dataset", layers=["block1"], pooling="mean", measure="cka/linear"
            )
        },
        write_ok=CREATED,
        **RUN_SLUG,
    ),
    "dynamics": Spec(at(pk="@dynamics"), htmx_ok=(286,), **RUN_PK),
    "members": Spec(at(slug="@ws"), **RUN_SLUG),
    "member-invite": Spec(
        at(slug="@ws"),
        get=False,
        writes={"POST": form(role="viewer")},
        write_ok=CREATED,
        writers=OWNERS,
        **RUN_SLUG,
    ),
    "member-role": Spec(
        at(slug="@ws", user_id="@viewer"),
        ids={"slug": Workspace, "user_id": User},
        get=False,
        writes={"POST": form(role="editor")},
        write_ok=CREATED,
        writers=OWNERS,
    ),
    "member-remove": Spec(
        at(slug="@ws", user_id="@viewer"),
        ids={"slug": Workspace, "user_id": User},
        get=False,
        writes={"POST": form()},
        write_ok=CREATED,
        writers=OWNERS,
    ),
    # The token is the capability: whoever holds it may open it and join (once).
    "invitation": Spec(
        lambda w: [Target({"token": w.invitation.token})],
        ids={"token": Invitation},
        public=True,
        writes={"POST": form()},
        write_ok=CREATED,
        check=_invitation_check,
    ),
    "api-token": Spec(
        at(),
        public=True,
        writes={"POST": form(action="create")},
        write_ok={"POST": (200,)},
        check=_token_check,
    ),
    "upload-dataset": Spec(
        at(slug="@ws"),
        get=False,
        writes={"POST": _upload("extra.npz", "extra_npz", "multipart")},
        write_ok=CREATED,
        **RUN_SLUG,
    ),
    "upload-checkpoint": Spec(
        at(slug="@ws"),
        get=False,
        writes={"POST": _upload("extra.pt", "extra_pt", "multipart")},
        write_ok=CREATED,
        **RUN_SLUG,
    ),
    # The workspace's uploads (an htmx partial, polled while one is open or being checked).
    "workspace-uploads": Spec(at(slug="@ws"), get_ok=(302,), htmx_ok=(200,), **RUN_SLUG),
    # Withdraw an open upload, dismiss a refused one: the editors' business.
    "upload-dismiss": Spec(
        lambda w: [
            Target({"slug": w.ws.slug, "upload_id": str(upload.pk)})
            for upload in (w.upload, w.refused)
        ],
        ids={"slug": Workspace, "upload_id": Upload},
        get=False,
        writes={"POST": form()},
        write_ok=CREATED,
        check=_dismiss_check,
    ),
    "new-comparison": Spec(
        at(slug="@ws", _query={"checkpoint_a": "@ckpt_a", "checkpoint_b": "@ckpt_b"}),
        readers=EDITORS,
        writes={
            "POST": form(
                checkpoint_a="@ckpt_a",
                checkpoint_b="@ckpt_b",
                dataset="@dataset",
                pooling="mean",
                measure="cka/linear",
            )
        },
        write_ok=CREATED,
        **RUN_SLUG,
    ),
    "new-model-matrix": Spec(
        at(slug="@ws"),
        get=False,
        writes={
            "POST": form(
                checkpoints=["@ckpt_a", "@ckpt_b"],
                dataset="@dataset",
                layer="block1",
                pooling="mean",
                measure="cka/linear",
            )
        },
        write_ok=CREATED,
        **RUN_SLUG,
    ),
    "model-matrix": Spec(at(pk="@matrix"), htmx_ok=(286,), **RUN_PK),
    "new-compatibility": Spec(
        at(slug="@ws"),
        get=False,
        writes={
            "POST": form(
                checkpoints=["@ckpt_a", "@ckpt_b"],
                dataset="@dataset",
                layer="block2",
                pooling="mean",
                metric="cosine",
                criterion="top1",
            )
        },
        write_ok=CREATED,
        **RUN_SLUG,
    ),
    "compatibility": Spec(at(pk="@compatibility"), htmx_ok=(286,), **RUN_PK),
    "compatibility-csv": Spec(at(pk="@compatibility"), **RUN_PK),
    "new-nested": Spec(
        at(slug="@ws"),
        get=False,
        writes={
            "POST": form(
                checkpoints=["@ckpt_a", "@ckpt_b"],
                dataset="@dataset",
                layer="block2",
                pooling="mean",
                metric="cosine",
            )
        },
        write_ok=CREATED,
        **RUN_SLUG,
    ),
    "nested": Spec(at(pk="@nested"), htmx_ok=(286,), **RUN_PK),
    "alignment-csv": Spec(at(pk="@alignment"), **RUN_PK),
    "dataset": Spec(at(pk="@dataset"), ids={"pk": Dataset}),
    "sample": Spec(at(pk="@dataset", index=0), ids={"pk": Dataset}),
    "sample-text": Spec(at(pk="@texts", index=0), ids={"pk": Dataset}),
    "checkpoint": Spec(at(pk="@ckpt_a"), ids={"pk": Checkpoint}),
    "extract": Spec(
        at(pk="@ckpt_a"),
        ids={"pk": Checkpoint},
        get=False,
        writes={"POST": form(dataset="@dataset", layers=["block1"], pooling="mean")},
        write_ok=CREATED,
    ),
    "new-projection": Spec(
        at(pk="@ckpt_a"),
        ids={"pk": Checkpoint},
        get=False,
        writes={
            "POST": form(
                dataset="@dataset",
                layer="block1",
                pooling="mean",
                method="pca",
                n_neighbors=15,
                min_dist=0.1,
                metric="euclidean",
                perplexity=30.0,
                seed=0,
            )
        },
        write_ok=CREATED,
    ),
    "new-aligned-projection": Spec(
        at(pk="@ckpt_a"),
        ids={"pk": Checkpoint},
        get=False,
        writes={
            "POST": form(
                **{
                    "aligned-dataset": "@dataset",
                    "aligned-layers": ["block1", "block2"],
                    "aligned-pooling": "mean",
                    "aligned-method": "pca",
                    "aligned-n_neighbors": 15,
                    "aligned-min_dist": 0.1,
                    "aligned-metric": "euclidean",
                    "aligned-seed": 0,
                }
            )
        },
        write_ok=CREATED,
    ),
    "projection": Spec(at(pk="@proj_a"), htmx_ok=(286,), **RUN_PK),
    "projection-coords": Spec(at(pk="@proj_a"), **RUN_PK),
    "projection-labels": Spec(at(pk="@proj_a"), **RUN_PK),
    "projection-point": Spec(at(pk="@proj_a", index=3), **RUN_PK),
    "projection-colour": Spec(
        lambda w: [
            Target({"pk": w.proj_a.pk}, {"key": key})
            for key in ("label", f"meta:{COLUMN}", "meta:ink", "kept")
        ],
        **RUN_PK,
    ),
    "projection-search": Spec(at(pk="@proj_a", _query={"q": "1"}), **RUN_PK),
    "projection-select": Spec(
        at(pk="@proj_a"),
        get=False,
        writes={"POST": lambda w: Body({"polygon": w.polygon})},
        write_ok={"POST": (201,)},
        **RUN_PK,
    ),
    "selection-panel": Spec(
        at(pk="@proj_a", selection="@selection"), ids={"pk": Run, "selection": Selection}
    ),
    "projection-pair": Spec(at(pk="@proj_a", other="@proj_b", _query={"k": 5}), **PAIR),
    "projection-pair-changed": Spec(at(pk="@proj_a", other="@proj_b", _query={"k": 5}), **PAIR),
    "projection-pair-aligned": Spec(at(pk="@proj_a", other="@proj_b"), **PAIR),
    "projection-pair-values": Spec(
        lambda w: [
            Target({"pk": w.proj_a.pk, "other": w.proj_b.pk, "what": what}, {"k": 5})
            for what in ("agreement", "picture", "displacement")
        ],
        **PAIR,
    ),
    "save-selection": Spec(
        at(pk="@selection"),
        ids={"pk": Selection},
        get=False,
        writes={"POST": form(name="renamed", tags="a, b", run="@proj_a")},
        write_ok={"POST": (200,)},
    ),
    "selection-indices": Spec(at(pk="@selection"), ids={"pk": Selection}),
    "selection-export": Spec(
        lambda w: [
            Target({"pk": w.selection.pk, "extension": extension}, {"projection": w.proj_b.pk})
            for extension in ("csv", "parquet")
        ],
        ids={"pk": Selection},
    ),
    "new-probe": Spec(
        at(pk="@ckpt_a"),
        ids={"pk": Checkpoint},
        get=False,
        writes={
            "POST": form(
                **{
                    "probe-dataset": "@dataset",
                    "probe-layers": ["block1"],
                    "probe-pooling": "mean",
                    "probe-families": ["image/rotation"],
                    "probe-seed": 0,
                }
            )
        },
        write_ok=CREATED,
    ),
    "probe": Spec(at(pk="@probe"), htmx_ok=(286,), **RUN_PK),
    "probe-moved": Spec(
        at(pk="@probe", _query={"family": "image/rotation", "layer": 0, "t": 1}), **RUN_PK
    ),
    "probe-sample": Spec(
        at(pk="@probe", index="@previewed", _query={"family": "image/rotation", "t": 90.0}),
        **RUN_PK,
    ),
    "run": Spec(_runs, htmx_ok=(200, 286), **RUN_PK),
    "cancel-run": Spec(
        at(pk="@queued"), get=False, writes={"POST": form()}, write_ok=CREATED, **RUN_PK
    ),
    "comparison": Spec(at(pk="@comparison"), htmx_ok=(286,), **RUN_PK),
    "comparison-csv": Spec(at(pk="@comparison"), **RUN_PK),
    "comparison-pair": Spec(at(pk="@comparison", row=1, col=1), htmx_ok=(286,), **RUN_PK),
    "weight-space": Spec(at(pk="@weight_space"), htmx_ok=(286,), **RUN_PK),
    "stitching": Spec(at(pk="@stitching"), htmx_ok=(286,), **RUN_PK),
    "new-stitching": Spec(
        at(slug="@ws"),
        readers=EDITORS,
        writes={"POST": form(checkpoint_a="@ckpt_a", checkpoint_b="@ckpt_b", dataset="@dataset")},
        write_ok=CREATED,
        **RUN_SLUG,
    ),
    "new-weight-space": Spec(
        at(slug="@ws"),
        readers=EDITORS,
        writes={"POST": form(checkpoint_a="@ckpt_a", checkpoint_b="@ckpt_b", dataset="@dataset")},
        write_ok=CREATED,
        **RUN_SLUG,
    ),
    "unit-matching": Spec(at(pk="@units"), htmx_ok=(286,), **RUN_PK),
    "unit-matching-pair": Spec(
        at(pk="@comparison", row=1, col=1),
        get=False,
        writes={"POST": form()},
        write_ok=CREATED,
        **RUN_PK,
    ),
    "new-unit-matching": Spec(
        at(slug="@ws"),
        get=False,
        writes={
            "POST": form(
                checkpoint_a="@ckpt_a",
                layer_a="block1",
                checkpoint_b="@ckpt_b",
                layer_b="block1",
                dataset="@dataset",
                n_alphas=5,
            )
        },
        write_ok=CREATED,
        **RUN_SLUG,
    ),
    "align-pair": Spec(
        at(pk="@comparison", row=1, col=1),
        get=False,
        writes={"POST": form(method="procrustes")},
        write_ok=CREATED,
        **RUN_PK,
    ),
    # Lifecycle: anyone signed in makes a workspace (and owns it); its owners rename and
    # archive it; editors rename and delete its rows. A delete's GET is the page that says
    # what goes with it: the editors' too.
    "new-workspace": Spec(
        at(), public=True, get=False, writes={"POST": form(name="Another lab")}, write_ok=CREATED
    ),
    "rename-workspace": Spec(
        at(slug="@ws"),
        get=False,
        writes={"POST": form(name="Renamed")},
        write_ok=CREATED,
        writers=OWNERS,
        **RUN_SLUG,
    ),
    "archive-workspace": Spec(
        at(slug="@ws"),
        get=False,
        writes={"POST": form(archived="1")},
        write_ok=CREATED,
        writers=OWNERS,
        **RUN_SLUG,
    ),
    "rename-dataset": Spec(
        at(pk="@dataset"),
        ids={"pk": Dataset},
        get=False,
        writes={"POST": form(name="Renamed")},
        write_ok=CREATED,
    ),
    "delete-dataset": Spec(
        at(pk="@texts"),
        ids={"pk": Dataset},
        readers=EDITORS,
        writes={"POST": form()},
        write_ok=CREATED,
    ),
    "rename-checkpoint": Spec(
        at(pk="@ckpt_a"),
        ids={"pk": Checkpoint},
        get=False,
        writes={"POST": form(name="Renamed")},
        write_ok=CREATED,
    ),
    "checkpoint-lineage": Spec(
        at(pk="@ckpt_b"),
        ids={"pk": Checkpoint},
        get=False,
        writes={"POST": form(seed_group="mlp", step=100, parent="@ckpt_a")},
        write_ok=CREATED,
    ),
    "delete-checkpoint": Spec(
        at(pk="@ckpt_a"),
        ids={"pk": Checkpoint},
        readers=EDITORS,
        writes={"POST": form()},
        write_ok=CREATED,
    ),
    "rename-run": Spec(
        at(pk="@comparison"),
        get=False,
        writes={"POST": form(name="Renamed")},
        write_ok=CREATED,
        **RUN_PK,
    ),
    "delete-run": Spec(
        at(pk="@proj_b"), readers=EDITORS, writes={"POST": form()}, write_ok=CREATED, **RUN_PK
    ),
}


def _lab(model, **filters) -> Callable[[W], set]:
    return lambda w: set(
        model.objects.filter(**(filters or {"workspace": w.ws})).values_list("pk", flat=True)
    )


OK_200 = {"POST": (200,)}  # the same request as the world's: its run, found again
OK_201 = {"POST": (201,)}
OK_202 = {"POST": (202,)}  # an upload stored, for a worker to check
API_PK = {"pk": Run}

API: dict[str, Spec] = {
    "api-root": Spec(at(), public=True),
    "measure-list": Spec(at(), public=True),
    "transformation-list": Spec(at(), public=True),
    "workers-overview": Spec(at(), public=True),
    # Anyone signed in makes a workspace (POST) and owns it; its owners rename it (PATCH)
    # and archive it (POST …/archive/) or bring it back (DELETE …/archive/).
    "workspace-list": Spec(
        at(),
        lists=lambda w: {w.ws.pk},
        writes={"POST": json_body(name="Another lab")},
        write_ok=OK_201,
        writers=SIGNED_IN,
        check=_new_workspace_check,
    ),
    "workspace-detail": Spec(
        at(slug="@ws"),
        ids={"slug": Workspace},
        writes={"PATCH": json_body(name="Renamed")},
        write_ok={"PATCH": (200,)},
        writers=OWNERS,
    ),
    "workspace-archive": Spec(
        at(slug="@ws"),
        ids={"slug": Workspace},
        writes={"POST": json_body(), "DELETE": lambda w: Body()},
        write_ok={"POST": (200,), "DELETE": (200,)},
        writers=OWNERS,
        check=_archive_check,
    ),
    "workspace-members": Spec(at(slug="@ws"), ids={"slug": Workspace}),
    "workspace-member": Spec(
        at(slug="@ws", user_id="@viewer"),
        ids={"slug": Workspace, "user_id": User},
        writes={"PATCH": json_body(role="editor"), "DELETE": lambda w: Body()},
        write_ok={"PATCH": (200,), "DELETE": (204,)},
        writers=OWNERS,
    ),
    "workspace-invitations": Spec(
        at(slug="@ws"),
        ids={"slug": Workspace},
        writes={"POST": json_body(role="viewer")},
        write_ok=OK_201,
        writers=OWNERS,
    ),
    "dataset-list": Spec(
        at(),
        lists=_lab(Dataset),
        writes={"POST": _upload("extra.npz", "extra_npz", "multipart", workspace="lab")},
        write_ok=OK_202,
    ),
    # Renamed (PATCH) and deleted with what depends on it (DELETE) by editors.
    "dataset-detail": Spec(
        at(pk="@texts"),
        ids={"pk": Dataset},
        writes={"PATCH": json_body(name="Renamed"), "DELETE": lambda w: Body()},
        write_ok={"PATCH": (200,), "DELETE": (204,)},
    ),
    "checkpoint-list": Spec(
        at(),
        lists=_lab(Checkpoint),
        writes={"POST": _upload("extra.pt", "extra_pt", "multipart", workspace="lab")},
        write_ok=OK_202,
    ),
    "checkpoint-detail": Spec(
        at(pk="@ckpt_a"),
        ids={"pk": Checkpoint},
        writes={"PATCH": json_body(name="Renamed"), "DELETE": lambda w: Body()},
        write_ok={"PATCH": (200,), "DELETE": (204,)},
    ),
    "run-list": Spec(at(), lists=lambda w: w.lab_runs),
    "run-detail": Spec(
        at(pk="@comparison"),
        ids=API_PK,
        writes={"PATCH": json_body(name="Renamed"), "DELETE": lambda w: Body()},
        write_ok={"PATCH": (200,), "DELETE": (204,)},
    ),
    "run-cancel": Spec(at(pk="@queued"), ids=API_PK, writes={"POST": json_body()}, write_ok=OK_200),
    "activationset-list": Spec(at(), lists=lambda w: _lab(ActivationSet, dataset=w.dataset)(w)),
    "activationset-detail": Spec(at(pk="@activation"), ids={"pk": ActivationSet}),
    "activationset-values": Spec(at(pk="@activation"), ids={"pk": ActivationSet}),
    # The world's set is one vector per sample: its members are told it has no positions
    # (tests/workers/test_token_extraction.py downloads those of a set of pooling tokens).
    "activationset-positions": Spec(at(pk="@activation"), ids={"pk": ActivationSet}, get_ok=(404,)),
    "extraction-list": Spec(
        at(),
        writes={"POST": json_body(checkpoint="@ckpt_a", dataset="@dataset", layers=["block1"])},
        write_ok=OK_200,
    ),
    "extraction-storage": Spec(
        at(),
        writes={"POST": json_body(checkpoint="@ckpt_a", dataset="@dataset", layers=["block1"])},
        write_ok=OK_200,
    ),
    "comparison-list": Spec(
        at(),
        writes={
            "POST": json_body(
                checkpoint_a="@ckpt_a",
                checkpoint_b="@ckpt_b",
                dataset="@dataset",
                n_permutations=2,
                n_bootstrap=2,
            )
        },
        write_ok=OK_200,
    ),
    "comparison-detail": Spec(at(pk="@comparison"), ids=API_PK),
    "model-matrix-list": Spec(
        at(),
        writes={
            "POST": json_body(
                checkpoints=["@ckpt_a", "@ckpt_b"],
                dataset="@dataset",
                layer="block1",
                n_permutations=2,
                n_bootstrap=0,
            )
        },
        write_ok=OK_200,
    ),
    "model-matrix-detail": Spec(at(pk="@matrix"), ids=API_PK),
    "dynamics-list": Spec(
        at(),
        writes={
            "POST": json_body(workspace="@ws", series=SERIES, dataset="@dataset", layers=["block1"])
        },
        write_ok=OK_200,
    ),
    "dynamics-detail": Spec(at(pk="@dynamics"), ids=API_PK),
    "series-list": Spec(at(_query={"workspace": "@ws"})),
    "alignment-list": Spec(
        at(),
        writes={
            "POST": json_body(
                checkpoint_a="@ckpt_a",
                checkpoint_b="@ckpt_b",
                dataset="@dataset",
                layer_a="block1",
                layer_b="block1",
            )
        },
        write_ok=OK_200,
    ),
    "alignment-detail": Spec(at(pk="@alignment"), ids=API_PK),
    "alignment-residuals": Spec(at(pk="@alignment"), ids=API_PK),
    "unit-matching-list": Spec(
        at(),
        writes={
            "POST": json_body(
                checkpoint_a="@ckpt_a",
                checkpoint_b="@ckpt_b",
                dataset="@dataset",
                layer_a="block1",
                layer_b="block1",
                n_alphas=5,
            )
        },
        write_ok=OK_200,
    ),
    "unit-matching-detail": Spec(at(pk="@units"), ids=API_PK),
    "weight-space-list": Spec(
        at(),
        writes={
            "POST": json_body(checkpoint_a="@ckpt_a", checkpoint_b="@ckpt_b", dataset="@dataset")
        },
        write_ok=OK_200,
    ),
    "weight-space-detail": Spec(at(pk="@weight_space"), ids=API_PK),
    "stitching-list": Spec(
        at(),
        writes={
            "POST": json_body(
                checkpoint_a="@ckpt_a",
                checkpoint_b="@ckpt_b",
                dataset="@dataset",
                layers_a=["block1"],
                layers_b=["head"],
            )
        },
        write_ok=OK_200,
    ),
    "stitching-detail": Spec(at(pk="@stitching"), ids=API_PK),
    "compatibility-list": Spec(
        at(),
        writes={
            "POST": json_body(
                checkpoints=["@ckpt_a", "@ckpt_b"], dataset="@dataset", layer="block2"
            )
        },
        write_ok=OK_200,
    ),
    "compatibility-detail": Spec(at(pk="@compatibility"), ids=API_PK),
    "projection-list": Spec(
        at(),
        writes={"POST": json_body(checkpoint="@ckpt_a", dataset="@dataset", layer="block1")},
        write_ok=OK_200,
    ),
    "projection-detail": Spec(at(pk="@proj_a"), ids=API_PK),
    "projection-coordinates": Spec(at(pk="@proj_a"), ids=API_PK),
    "projection-agreement": Spec(at(pk="@proj_a", _query={"other": "@proj_b"}), ids=API_PK),
    "aligned-projection-list": Spec(
        at(),
        writes={
            "POST": lambda w: Body(
                {
                    "dataset": w.dataset.pk,
                    "method": "pca",
                    "spaces": [
                        {"checkpoint": w.ckpt_a.pk, "layer": "block1"},
                        {"checkpoint": w.ckpt_b.pk, "layer": "block1"},
                    ],
                }
            )
        },
        write_ok=OK_200,
    ),
    "aligned-projection-detail": Spec(at(pk="@aligned"), ids=API_PK),
    "probe-list": Spec(
        at(),
        writes={
            "POST": json_body(
                checkpoint="@ckpt_a",
                dataset="@dataset",
                layers=["block1", "head"],
                families=PROBE_FAMILIES,
            )
        },
        write_ok=OK_200,
    ),
    "probe-detail": Spec(at(pk="@probe"), ids=API_PK),
    "nested-list": Spec(
        at(),
        writes={
            "POST": json_body(
                checkpoints=["@ckpt_a", "@ckpt_b"], dataset="@dataset", layer="block2"
            )
        },
        write_ok=OK_200,
    ),
    "nested-detail": Spec(at(pk="@nested"), ids=API_PK),
    "probe-per-sample": Spec(at(pk="@probe", _query={"family": "image/rotation"}), ids=API_PK),
    # Uploads are the editors' business: a viewer does not see them either.
    "upload-list": Spec(
        at(),
        writes={
            "POST": lambda w: Body(
                {
                    "workspace": "lab",
                    "kind": "dataset",
                    "filename": "more.npz",
                    "size": len(w.extra_npz),
                    "sha256": hashlib.sha256(w.extra_npz).hexdigest(),
                }
            )
        },
        write_ok=OK_201,
    ),
    "upload-detail": Spec(
        lambda w: [Target({"pk": str(w.upload.pk)})],
        ids={"pk": Upload},
        readers=EDITORS,
        writes={
            "PUT": lambda w: Body(
                w.upload_bytes[:10],
                "octet",
                {"HTTP_CONTENT_RANGE": f"bytes 0-9/{len(w.upload_bytes)}"},
            ),
            "DELETE": lambda w: Body(),
        },
        # Every byte has come: a chunk from 0 is refused with where to resume (409).
        write_ok={"PUT": (409,), "DELETE": (204,)},
    ),
    "upload-complete": Spec(
        lambda w: [Target({"pk": str(w.upload.pk)})],
        ids={"pk": Upload},
        readers=EDITORS,
        writes={"POST": json_body()},
        write_ok=OK_202,  # every byte is in: a worker checks it
    ),
    "selection-list": Spec(
        at(),
        lists=_lab(Selection),
        writes={"POST": json_body(dataset="@dataset", indices=[1, 2, 3], name="api")},
        write_ok=OK_201,
    ),
    "selection-detail": Spec(
        at(pk="@selection"),
        ids={"pk": Selection},
        writes={"PATCH": json_body(name="renamed", tags=["x"]), "DELETE": lambda w: Body()},
        write_ok={"PATCH": (200,), "DELETE": (204,)},
    ),
    "selection-indices": Spec(at(pk="@selection"), ids={"pk": Selection}),
    "selection-export": Spec(
        at(pk="@selection", _query={"file": "parquet", "projection": "@proj_b"}),
        ids={"pk": Selection},
    ),
}

TABLES = {"page": PAGES, "api": API}


def spec_of(route: Route) -> Spec:
    spec = TABLES["api" if route.api else "page"].get(route.name)
    assert spec is not None, (
        f"{route.key} ({route.pattern}) is not in the persona tables of {__name__}: "
        "add it to PAGES or API with the objects that fill it and who may do what"
    )
    return spec


# --------------------------------------------------------------------------- requests


def client_for(world, persona: str, api: bool):
    if api:
        client = APIClient()
        if persona != "anonymous":
            client.credentials(HTTP_AUTHORIZATION=f"Token {world.tokens[persona]}")
        return client
    client = Client()
    if persona != "anonymous":
        client.force_login(world.users[persona])
    return client


def url_of(route: Route, target: Target) -> str:
    kwargs = dict(target.kwargs)
    if "format" in route.params:
        kwargs["format"] = "json"
    url = route.reverse(kwargs)
    return f"{url}?{urlencode(target.query, doseq=True)}" if target.query else url


def send(client, method: str, url: str, body: Body | None = None, api: bool = False, **extra):
    call = getattr(client, method.lower())
    if body is None or body.data is None:
        return call(url, **extra, **(body.headers if body else {}))
    if not api:
        return call(url, body.data, **extra)
    if body.format == "octet":
        return call(url, body.data, content_type="application/octet-stream", **body.headers)
    return call(url, body.data, format=body.format, **extra, **body.headers)


def allowed_methods(route: Route, spec: Spec) -> frozenset[str]:
    if route.api:
        return route.allowed
    if not spec.get:
        return frozenset({"POST"})
    return frozenset(METHODS)  # a page view answers any method (its lookups come first)


def write_methods(route: Route, spec: Spec) -> list[str]:
    methods = [m for m in METHODS if m != "GET" and m in allowed_methods(route, spec)]
    if not route.api:
        methods = [m for m in methods if m in spec.writes]
    missing = [m for m in methods if m not in spec.writes or m not in spec.write_ok]
    assert not missing, f"{route.key}: the table has no body or answer for {missing}"
    return methods


def status_of(response) -> str:
    where = response.get("Location", "")
    return f"{response.status_code}{' → ' + where if where else ''}"


def expect(response, codes, what: str) -> None:
    codes = (codes,) if isinstance(codes, int) else tuple(codes)
    assert response.status_code in codes, f"{what}: {status_of(response)}, expected {codes}"


# --------------------------------------------------------------------------- the walk


def _anonymous(world, route, spec):
    client = client_for(world, "anonymous", route.api)
    for target in spec.targets(world):
        url = url_of(route, target)
        for method in METHODS:
            body = spec.writes.get(method, lambda w: None)(world)
            response = send(client, method, url, body, route.api)
            if route.api:
                expect(response, 401, f"anonymous {method} {url}")
                assert "WWW-Authenticate" in response, url
            else:
                expect(response, 302, f"anonymous {method} {url}")
                assert response["Location"].startswith("/accounts/login/?next="), url


def _outsider(world, route, spec):
    """404 for everything of the lab, for every method, the same as for ids that do not exist
    (405 where the method is not there at all, for any id)."""
    client = client_for(world, "outsider", route.api)
    allowed = allowed_methods(route, spec)
    for target in spec.targets(world):
        url = url_of(route, target)
        ghosts = [
            url_of(route, Target({**target.kwargs, name: ghost(model)}, target.query))
            for name, model in spec.ids.items()
        ]
        for method in METHODS:
            body = spec.writes.get(method, lambda w: None)(world)
            before = fingerprint()
            lets_in = "outsider" in spec.writers and method in spec.writes
            sid = transaction.savepoint() if lets_in else None
            response = send(client, method, url, body, route.api)
            if method not in allowed:
                expect(response, 405, f"outsider {method} {url}")
            elif lets_in:  # what anyone signed in may do (make a workspace of their own)
                expect(response, spec.write_ok[method], f"outsider {method} {url}")
                if spec.check:
                    spec.check(world, "outsider", method, response)
                transaction.savepoint_rollback(sid)
                continue
            elif spec.lists and method == "GET":
                expect(response, 200, f"outsider {method} {url}")
                shown = {row["id"] for row in response.json()["results"]}
                assert not shown & spec.lists(world), f"{url} lists the lab's rows"
                continue
            else:
                expect(response, 404, f"outsider {method} {url}")
            assert fingerprint() == before, f"outsider {method} {url} changed something"
            for other in ghosts:
                body = spec.writes.get(method, lambda w: None)(world)
                guessed = send(client, method, other, body, route.api)
                assert guessed.status_code == response.status_code, (method, other)
                if response.status_code == 404:
                    assert guessed.content == response.content, f"{url} vs {other}"


def _member(world, route, spec, persona):
    client = client_for(world, persona, route.api)
    allowed = allowed_methods(route, spec)
    for target in spec.targets(world):
        url = url_of(route, target)
        if "GET" in allowed and (route.api or spec.get):
            if spec.public or spec.lists or persona in spec.readers:
                codes = spec.get_ok
            else:
                codes = (404,)
            response = client.get(url)
            expect(response, codes, f"{persona} GET {url}")
            if spec.check and not spec.lists:
                spec.check(world, persona, "GET", response)
            if spec.lists:
                shown = {row["id"] for row in response.json()["results"]}
                assert spec.lists(world) <= shown, f"{url} does not list the lab's rows"
            if spec.htmx_ok and persona in spec.readers:
                polled = client.get(url, HTTP_HX_REQUEST="true")
                expect(polled, spec.htmx_ok, f"{persona} htmx GET {url}")
        else:  # a POST-only page, an API route without GET
            expect(client.get(url), 405, f"{persona} GET {url}")
        for method in write_methods(route, spec):
            before = fingerprint()
            sid = transaction.savepoint()
            response = send(client, method, url, spec.writes[method](world), route.api)
            if spec.public or persona in spec.writers:
                expect(response, spec.write_ok[method], f"{persona} {method} {url}")
                if spec.check:
                    spec.check(world, persona, method, response)
            else:
                expect(response, 404, f"{persona} {method} {url}")
                assert fingerprint() == before, f"{persona} {method} {url} changed something"
            transaction.savepoint_rollback(sid)
        if persona == "owner":  # ids that do not exist: 404, like someone else's
            for name, model in spec.ids.items():
                other = url_of(route, Target({**target.kwargs, name: ghost(model)}, target.query))
                for method in [m for m in ("GET", *write_methods(route, spec)) if m in allowed]:
                    if method == "GET" and not route.api and not spec.get:
                        continue
                    body = spec.writes.get(method, lambda w: None)(world)
                    expect(send(client, method, other, body, route.api), 404, f"{method} {other}")


WALK = [
    pytest.param(route, persona, id=f"{route.label}-{persona}")
    for route in ROUTES
    for persona in PERSONAS
]


@pytest.mark.parametrize("route, persona", WALK)
def test_every_url_as_every_persona(world, route, persona):
    spec = spec_of(route)
    if persona == "anonymous" and not spec.open:
        _anonymous(world, route, spec)
    elif persona == "outsider" and not spec.public:
        _outsider(world, route, spec)
    else:
        _member(world, route, spec, persona)


def test_every_url_name_is_in_the_tables():
    """A new URL must be added to the tables (and a removed one taken out)."""
    found = {route.key for route in ROUTES}
    listed = {f"page:{name}" for name in PAGES} | {f"api:{name}" for name in API}
    assert sorted(found - listed) == [], "URL names the persona tables do not cover"
    assert sorted(listed - found) == [], "names in the persona tables that no URL has any more"


# --------------------------------------------------------------------------- mixing workspaces


def _cross_requests(w) -> list[tuple[str, str, str, Any, bool]]:
    """(persona, method, url, body, api): one workspace's object in the other's URL or body;
    each is 404 because one of the objects is not the persona's to see."""
    a, pa, pb, sel = w.ckpt_a.pk, w.proj_a.pk, w.proj_b.pk, w.selection.pk
    op, osel, oc, od, d = w.o_proj.pk, w.o_selection.pk, w.o_ckpt.pk, w.o_dataset.pk, w.dataset.pk
    mine = [  # the owner reaching into the outsider's workspace through the lab's objects
        ("GET", f"/projections/{pa}/vs/{op}/", None, False),
        ("GET", f"/projections/{pa}/vs/{op}/agreement.f32", None, False),
        ("GET", f"/projections/{pa}/selections/{osel}/", None, False),
        ("GET", f"/selections/{sel}/export.csv?projection={op}", None, False),
        ("POST", f"/projections/{pa}/select/?aligned_to={op}", {"polygon": w.polygon}, False),
        ("POST", f"/selections/{sel}/", {"name": "x", "run": op}, False),
        ("POST", f"/w/lab/members/{w.outsider.pk}/role/", {"role": "viewer"}, False),
        ("POST", f"/w/lab/members/{w.outsider.pk}/remove/", {}, False),
        ("POST", "/w/elsewhere/members/invite/", {"role": "owner"}, False),
        ("GET", f"/api/v1/projections/{pa}/agreement/?other={op}", None, True),
        ("GET", f"/api/v1/selections/{sel}/export/?projection={op}", None, True),
        (
            "POST",
            "/api/v1/selections/",
            {"projection": op, "polygon": [[0, 0], [1, 0], [0, 1]]},
            True,
        ),
        (
            "POST",
            "/api/v1/comparisons/",
            {"checkpoint_a": a, "checkpoint_b": oc, "dataset": d},
            True,
        ),
        ("POST", "/api/v1/projections/", {"checkpoint": a, "dataset": od, "layer": "block1"}, True),
    ]
    theirs = [  # the outsider using their own objects with the lab's
        ("GET", f"/projections/{op}/vs/{pa}/", None, False),
        ("GET", f"/projections/{op}/vs/{pa}/aligned.f32", None, False),
        ("GET", f"/projections/{op}/selections/{sel}/", None, False),
        ("GET", f"/selections/{osel}/export.parquet?projection={pb}", None, False),
        ("POST", f"/projections/{op}/select/?aligned_to={pa}", {"polygon": w.polygon}, False),
        ("POST", f"/selections/{osel}/", {"name": "x", "run": pa}, False),
        ("GET", f"/api/v1/projections/{op}/agreement/?other={pa}", None, True),
        ("GET", f"/api/v1/selections/{osel}/export/?projection={pa}", None, True),
        (
            "POST",
            "/api/v1/comparisons/",
            {"checkpoint_a": oc, "checkpoint_b": a, "dataset": od},
            True,
        ),
        ("POST", "/api/v1/extractions/", {"checkpoint": oc, "dataset": d}, True),
        ("POST", "/api/v1/selections/", {"dataset": d, "indices": [0]}, True),
        (
            "POST",
            "/api/v1/aligned-projections/",
            {
                "dataset": od,
                "method": "pca",
                "spaces": [
                    {"checkpoint": oc, "layer": "block1"},
                    {"checkpoint": a, "layer": "block1"},
                ],
            },
            True,
        ),
        (
            "POST",
            "/api/v1/model-matrices/",
            {"checkpoints": [oc, a], "dataset": od, "layer": "block1"},
            True,
        ),
        (
            "POST",
            "/api/v1/compatibility/",
            {"checkpoints": [oc, a], "dataset": od, "layer": "block1"},
            True,
        ),
        (
            "POST",
            "/api/v1/datasets/",
            _upload("x.npz", "extra_npz", "multipart", workspace="lab")(w),
            True,
        ),
    ]
    return [("owner", *r) for r in mine] + [("outsider", *r) for r in theirs]


def test_objects_of_another_workspace_in_a_url_or_body_are_404(world):
    for persona, method, url, body, api in _cross_requests(world):
        client = client_for(world, persona, api)
        before = fingerprint()
        if body is None:
            response = send(client, method, url, api=api)
        else:
            response = send(
                client, method, url, body if isinstance(body, Body) else Body(body), api
            )
        expect(response, 404, f"{persona} {method} {url} {body}")
        assert fingerprint() == before, f"{persona} {method} {url} changed something"


def test_an_outsider_lists_nothing_of_the_lab_even_when_asking_for_it(world):
    api = client_for(world, "outsider", True)
    for url in (
        "/api/v1/runs/?workspace=lab",
        "/api/v1/datasets/?workspace=lab",
        f"/api/v1/activations/?dataset={world.dataset.pk}",
        f"/api/v1/activations/?checkpoint={world.ckpt_a.pk}",
        f"/api/v1/selections/?dataset={world.dataset.pk}",
        "/api/v1/selections/?workspace=lab&named=true",
    ):
        response = api.get(url)
        assert response.status_code == 200 and response.json()["results"] == [], url
    page = client_for(world, "outsider", False).get("/w/elsewhere/").content.decode()
    assert "Digits" not in page and "mlp-seed" not in page


# --------------------------------------------------------------------------- CSRF


POSTS = [
    pytest.param(route, id=route.label)
    for route in ROUTES
    if "format" not in route.params
    and route.name in TABLES["api" if route.api else "page"]
    and any(m != "GET" for m in TABLES["api" if route.api else "page"][route.name].writes)
]


def _csrf_token(client, world) -> str:
    page = client.get(f"/checkpoints/{world.ckpt_a.pk}/").content.decode()
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert found, "the checkpoint page has no form with a CSRF token"
    assert client.cookies["csrftoken"].value
    return found.group(1)


@pytest.mark.parametrize("route", POSTS)
def test_csrf_on_every_write(world, route):
    """Signed in by session (a browser): a write without the CSRF token is 403; with it, it
    goes through (the API's token authentication needs none: no cookie is involved)."""
    spec = spec_of(route)
    client = (APIClient if route.api else Client)(enforce_csrf_checks=True)
    client.force_login(world.owner)
    token = _csrf_token(client, world)
    for target in spec.targets(world):
        url = url_of(route, target)
        for method in write_methods(route, spec):
            sid = transaction.savepoint()
            refused = send(client, method, url, spec.writes[method](world), route.api)
            expect(refused, 403, f"{method} {url} without the CSRF token")
            assert "CSRF" in refused.content.decode(errors="replace"), url
            body = spec.writes[method](world)
            if route.api:
                body.headers = {**body.headers, "HTTP_X_CSRFTOKEN": token}
            elif isinstance(body.data, dict):
                body.data = {**body.data, "csrfmiddlewaretoken": token}
            else:
                body.data = {"csrfmiddlewaretoken": token}
            accepted = send(client, method, url, body, route.api)
            expect(accepted, spec.write_ok[method], f"{method} {url} with the CSRF token")
            transaction.savepoint_rollback(sid)


def test_csrf_on_login_and_logout(world):
    client = Client(enforce_csrf_checks=True)
    assert client.post("/accounts/login/", {"username": "owner"}).status_code == 403
    client.force_login(world.owner)
    assert client.post("/accounts/logout/").status_code == 403
    assert client.get("/w/lab/").status_code == 200  # still signed in


# --------------------------------------------------------------------------- escaping

JSON_SCRIPT = re.compile(r'<script id="[^"]*" type="application/json">(.*?)</script>', re.S)


def assert_escaped(html: str, where: str) -> list:
    """No payload raw outside json_script blocks; in them no raw ``<``, ``>`` or ``&``.
    Returns the decoded blocks."""
    blocks = JSON_SCRIPT.findall(html)
    for block in blocks:
        assert not set(block) & set("<>&"), f"{where}: json_script block not escaped"
    outside = JSON_SCRIPT.sub("", html)
    for marker in RAW_MARKERS:
        assert marker not in outside, f"{where}: {marker!r} is in the HTML unescaped"
    return [json.loads(block) for block in blocks]


HTML_PAGES = [
    pytest.param(route, id=route.name)
    for route in ROUTES
    if not route.api and route.name in PAGES and PAGES[route.name].get
]

NAMES = {
    "workspace": f"Lab {SCRIPT}",
    "dataset": f"Digits {SCRIPT}",
    "ckpt_a": f"mlp-seed0 {IMG}",
    "ckpt_b": f"mlp-seed1 {SCRIPT}",
    "selection": f"odd ones {SCRIPT}",
    "label0": f"0 {SCRIPT}",
    "label1": f"1 {IMG}",
    "label2": f"2 {QUOTE}",
    "id0": f"d000{SCRIPT}",
    "filename": f"digits{IMG}.npz",
    "upload": f"tiny{IMG}.npz",
    "refused": f"refused{QUOTE}.csv",
    "reason": f"line 2 of the file: {SCRIPT}",
}
N = NAMES
SHOWN = {
    # page: what it must show (escaped), proof that the check above looked at the payloads
    "workspace": [
        *(N["workspace"], N["dataset"], N["ckpt_a"], N["ckpt_b"], N["label0"], N["id0"]),
        *(N["upload"], N["refused"], N["reason"]),
    ],
    "workspace-uploads": [N["upload"], N["refused"], N["reason"]],
    "workspace-runs": [N["dataset"], N["ckpt_a"], N["ckpt_b"]],
    "members": [N["workspace"]],
    "invitation": [N["workspace"]],
    "dataset": [N["dataset"], N["label1"], N["label2"], N["id0"], N["filename"], QUOTE, COLUMN],
    "checkpoint": [N["ckpt_a"], N["dataset"], SCRIPT],
    "run": [N["dataset"], N["ckpt_a"]],
    "comparison": [N["ckpt_a"], N["ckpt_b"]],
    "comparison-pair": [N["ckpt_a"], N["ckpt_b"], N["label0"], N["label1"]],
    "model-matrix": [N["ckpt_a"], N["ckpt_b"]],
    "weight-space": [N["ckpt_a"], N["ckpt_b"], N["dataset"]],
    "stitching": [N["ckpt_a"], N["ckpt_b"], N["dataset"]],
    "series": [SERIES, N["ckpt_a"], N["ckpt_b"], N["dataset"]],
    "dynamics": [SERIES, N["dataset"], N["ckpt_a"]],
    "compatibility": [N["ckpt_a"], N["ckpt_b"], N["label0"]],
    "nested": [N["ckpt_a"], N["ckpt_b"], N["dataset"]],
    "probe": [N["ckpt_a"], N["dataset"]],
    "probe-moved": [N["label2"]],
    "projection": [N["selection"], N["ckpt_a"], N["dataset"]],
    "projection-pair": [N["label0"], N["id0"]],
    "projection-pair-changed": [N["label0"], N["id0"]],
    "selection-panel": [N["selection"], IMG, QUOTE, N["label0"], N["id0"]],
}
IN_JSON = {
    # page: what its json_script blocks must hold (decoded)
    "comparison": [N["dataset"], N["ckpt_a"], N["ckpt_b"]],
    "model-matrix": [N["dataset"], N["ckpt_a"], N["ckpt_b"]],
    "compatibility": [N["dataset"], N["ckpt_a"], N["ckpt_b"]],
    "nested": [N["ckpt_a"], N["ckpt_b"]],
    "stitching": [N["ckpt_a"], N["ckpt_b"]],
    "probe": [N["dataset"], N["ckpt_a"]],
    "projection": [N["label0"], N["label1"], N["label2"], f"meta:{COLUMN}", VALUE],
    "projection-pair": [N["label0"], N["label1"]],
}


@pytest.mark.parametrize("route", HTML_PAGES)
def test_every_page_escapes_what_users_named(world, route):
    client = client_for(world, "owner", False)
    spec = PAGES[route.name]
    for position, target in enumerate(spec.targets(world)):
        url = url_of(route, target)
        shown_checked = False
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = client.get(url, **headers)
            assert response["X-Content-Type-Options"] == "nosniff", url
            if response.status_code == 302:  # an htmx poll's part of a page, asked plainly
                continue
            if not response["Content-Type"].startswith("text/html"):
                assert response.status_code != 200 or b"<html" not in response.content[:200]
                continue
            html = response.content.decode()
            blocks = assert_escaped(html, url)
            if shown_checked or position:  # what must show is said of the first target
                continue
            shown_checked = True
            for text in SHOWN.get(route.name, []):
                assert escape(text) in html, f"{url} does not show {text!r}"
            decoded = json.dumps(blocks)
            for text in IN_JSON.get(route.name, []):
                assert json.dumps(text)[1:-1] in decoded, f"{url}: {text!r} not in its JSON"


def test_the_selection_panel_links_the_pages_binary_indices_not_the_apis(world):
    """``selection-indices`` and ``selection-export`` name a page and an API route alike;
    ``{% url %}`` in _selection_panel.html gets the page's only because the pages come after
    the API in webapp/urls.py. The explorer reads uint32 from ``data-indices-url``."""
    client = client_for(world, "owner", False)
    pk, run = world.selection.pk, world.proj_a.pk
    html = client.get(f"/projections/{run}/selections/{pk}/").content.decode()
    assert f'data-indices-url="/selections/{pk}/indices.u32"' in html
    assert f'href="/selections/{pk}/export.csv?projection={run}"' in html


def test_reflected_input_is_escaped(world):
    client = client_for(world, "owner", False)
    comparison = world.comparison.pk
    response = client.post(
        f"/comparisons/{comparison}/pairs/1/1/align/", {"method": SCRIPT}, follow=True
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert escape(SCRIPT) in html  # the message names the method it refused
    assert_escaped(html, "align-pair message")
    response = client.post("/w/lab/comparisons/new/", {"checkpoint_a": IMG, "measure": SCRIPT})
    assert response.status_code == 400
    assert_escaped(response.content.decode(), "comparison form errors")
