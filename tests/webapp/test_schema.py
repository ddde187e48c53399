"""The OpenAPI schema: every response has a typed shape, the list filters are declared, and
real answers of the API match what the schema says of them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.conftest import digits_npz_bytes, run_with_dependencies
from webapp.catalog.models import ActivationSet
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(api) -> dict:
    response = api.get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    return json.loads(
        b"".join(response.streaming_content) if response.streaming else response.content
    )


def untyped(schema: dict) -> list[str]:
    """Where a response's schema, followed through its references, admits any value: an
    object without properties (or with untyped extra properties), or an empty schema."""
    components = schema["components"]["schemas"]
    found: list[str] = []

    def walk(node: Any, where: str, seen: frozenset[str]) -> None:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                walk(components[name], name, seen | {name})
            return
        shape = {k: v for k, v in node.items() if k not in ("description", "readOnly", "nullable")}
        extra = node.get("additionalProperties")
        if not shape or (
            node.get("type") == "object"
            and "properties" not in node
            and (extra is None or extra is True or extra == {})
        ):
            found.append(where)
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key], f"{where}.{key}", seen)
        for key in ("oneOf", "anyOf", "allOf"):
            for i, sub in enumerate(node.get(key, [])):
                walk(sub, f"{where}.{key}[{i}]", seen)
        for name, sub in node.get("properties", {}).items():
            walk(sub, f"{where}.{name}", seen)

    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for code, response in operation.get("responses", {}).items():
                for media, content in response.get("content", {}).items():
                    if media == "application/json":
                        walk(content["schema"], f"{method.upper()} {path} {code}", frozenset())
    return sorted(set(found))


def test_no_response_is_an_untyped_object(schema):
    assert untyped(schema) == []
    # The walk does see untyped shapes: a free-form object and an empty schema.
    schema["paths"]["/x/"] = {
        "get": {
            "responses": {
                "200": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "201": {"content": {"application/json": {"schema": {}}}},
            }
        }
    }
    assert untyped(schema) == ["GET /x/ 200", "GET /x/ 201"]


def test_the_list_filters_are_declared(schema):
    def query(path: str) -> set[str]:
        parameters = schema["paths"][path]["get"]["parameters"]
        return {p["name"] for p in parameters if p["in"] == "query"}

    assert {"workspace", "state", "kind", "limit", "offset"} <= query("/api/v1/runs/")
    assert {"checkpoint", "dataset"} <= query("/api/v1/activations/")
    assert "workspace" in query("/api/v1/datasets/")
    assert "workspace" in query("/api/v1/checkpoints/")
    assert {"workspace", "dataset", "tag", "named"} <= query("/api/v1/selections/")
    state = next(
        p for p in schema["paths"]["/api/v1/runs/"]["get"]["parameters"] if p["name"] == "state"
    )
    assert state["schema"]["enum"] == sorted(Run.State.values)


def test_activation_values_are_documented(schema):
    values = schema["paths"]["/api/v1/activations/{id}/values/"]["get"]
    assert set(values["responses"]["200"]["content"]) == {"application/octet-stream"}
    assert {"200", "404"} <= set(values["responses"])
    for words in (".npy", "float32", "(n, d)", "sha256", "allow_pickle=False", "header"):
        assert words in values["description"], words


def test_an_unknown_filter_value_is_a_400_that_names_the_choices(api):
    response = api.get("/api/v1/runs/?state=done")
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "state must be one of queued, running, succeeded, failed, cancelled"
    )


# --------------------------------------------------------------------------- real answers


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0's dialect as JSON Schema: ``nullable`` becomes a null alternative."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _json_schema(v) for k, v in node.items() if k != "nullable"}
    return {"anyOf": [converted, {"type": "null"}]} if node.get("nullable") else converted


def check(schema: dict, response, method: str, path: str, code: int = 200) -> Any:
    """The response's JSON, after checking it against the schema of ``method path code``."""
    assert response.status_code == code, response.content
    operation = schema["paths"][path][method]
    shape = operation["responses"][str(code)]["content"]["application/json"]["schema"]
    document = {**_json_schema(shape), "components": _json_schema(schema["components"])}
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft202012Validator(document).iter_errors(response.json())
    ]
    assert errors == [], f"{method.upper()} {path}: {errors[:5]}"
    return response.json()


def test_real_answers_match_the_schema(schema, api, workspace, ckpt_a, ckpt_b, digits):
    data = digits_npz_bytes(40)
    declared = {
        "workspace": workspace.slug,
        "kind": "dataset",
        "filename": "more.npz",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    upload = check(
        schema,
        api.post("/api/v1/uploads/", declared, format="json"),
        "post",
        "/api/v1/uploads/",
        201,
    )
    assert upload["state"] == "open" and upload["position"] is None
    check(schema, api.get(f"/api/v1/uploads/{upload['id']}/"), "get", "/api/v1/uploads/{id}/")
    same = dict(declared, sha256=digits.source.sha256, size=digits.source.size)
    known = check(
        schema, api.post("/api/v1/uploads/", same, format="json"), "post", "/api/v1/uploads/"
    )
    assert known["id"] is None and known["result"]["id"] == digits.pk

    comparison = api.post(
        "/api/v1/comparisons/",
        {
            "checkpoint_a": ckpt_a.pk,
            "checkpoint_b": ckpt_b.pk,
            "dataset": digits.pk,
            "n_permutations": 2,
            "n_bootstrap": 2,
            "measure": "knn/jaccard",
            "measure_params": {"k": 5},
        },
        format="json",
    ).json()
    queued = check(
        schema, api.get(f"/api/v1/runs/{comparison['id']}/"), "get", "/api/v1/runs/{id}/"
    )
    assert [d["state"] for d in queued["dependencies"]] == ["queued", "queued"]
    assert queued["queue"]["waiting_for"] == 2
    run_with_dependencies(Run.objects.get(pk=comparison["id"]))
    matrix = check(
        schema,
        api.get(f"/api/v1/comparisons/{comparison['id']}/"),
        "get",
        "/api/v1/comparisons/{id}/",
    )
    assert matrix["state"] == "succeeded" and all(v is not None for v in matrix["value"][0])
    runs = check(schema, api.get("/api/v1/runs/?kind=extract"), "get", "/api/v1/runs/")
    assert {r["kind"] for r in runs["results"]} == {"extract"} and runs["count"] == 2
    assert all(r["timings"]["compute_s"] >= 0 for r in runs["results"])
    done = check(schema, api.get(f"/api/v1/runs/{comparison['id']}/"), "get", "/api/v1/runs/{id}/")
    assert [d["state"] for d in done["dependencies"]] == ["succeeded", "succeeded"]
    assert done["params"]["measure_params"]["k"] == 5

    matrix_run = api.post(
        "/api/v1/model-matrices/",
        {
            "checkpoints": [ckpt_a.pk, ckpt_b.pk],
            "dataset": digits.pk,
            "layer": "block1",
            "n_permutations": 2,
        },
        format="json",
    ).json()
    run_with_dependencies(Run.objects.get(pk=matrix_run["id"]))
    check(
        schema,
        api.get(f"/api/v1/model-matrices/{matrix_run['id']}/"),
        "get",
        "/api/v1/model-matrices/{id}/",
    )
    projection = api.post(
        "/api/v1/projections/",
        {"checkpoint": ckpt_a.pk, "dataset": digits.pk, "layer": "block1"},
        format="json",
    ).json()
    run_with_dependencies(Run.objects.get(pk=projection["id"]))
    check(
        schema,
        api.get(f"/api/v1/projections/{projection['id']}/"),
        "get",
        "/api/v1/projections/{id}/",
    )

    checkpoint = check(
        schema, api.get(f"/api/v1/checkpoints/{ckpt_a.pk}/"), "get", "/api/v1/checkpoints/{id}/"
    )
    assert checkpoint["page"].endswith(f"/checkpoints/{ckpt_a.pk}/")
    assert checkpoint["layer_tree"][0]["children"] is not None
    dataset = check(
        schema, api.get(f"/api/v1/datasets/{digits.pk}/"), "get", "/api/v1/datasets/{id}/"
    )
    assert dataset["page"].endswith(f"/datasets/{digits.pk}/")
    activations = check(
        schema,
        api.get(f"/api/v1/activations/?checkpoint={ckpt_a.pk}"),
        "get",
        "/api/v1/activations/",
    )
    assert activations["count"] == ActivationSet.objects.filter(checkpoint=ckpt_a).count() > 0
    for path in ("/api/v1/measures/", "/api/v1/transformations/"):
        check(schema, api.get(path), "get", path)
    selection = api.post(
        "/api/v1/selections/", {"dataset": digits.pk, "indices": [3, 1]}, format="json"
    ).json()
    check(
        schema,
        api.get(f"/api/v1/selections/{selection['id']}/"),
        "get",
        "/api/v1/selections/{id}/",
    )
    indices = check(
        schema,
        api.get(f"/api/v1/selections/{selection['id']}/indices/"),
        "get",
        "/api/v1/selections/{id}/indices/",
    )
    assert indices == {"indices": [1, 3]}
