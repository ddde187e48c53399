"""Additions to the OpenAPI schema that drf-spectacular cannot infer per view."""

from __future__ import annotations

from typing import Any

ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
UNAUTHORIZED = {"description": "no token, or a token that is not valid", "content": ERROR}
THROTTLED = {
    "description": "too many requests for this token: wait the Retry-After header's seconds",
    "content": ERROR,
}


def document_auth_and_throttling(
    result: dict[str, Any], generator: object, request: object, public: bool
) -> dict[str, Any]:
    """Every operation may answer 429 (the per-token rate limit), and every operation that
    needs a signed-in user 401: the rules apply to all views, so they are added here once."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            operation["responses"].setdefault("429", THROTTLED)
            if {} not in operation.get("security", [{}]):  # {}: anonymous requests allowed
                operation["responses"].setdefault("401", UNAUTHORIZED)
    return result


MESSAGES = {
    "description": "a field's messages: sentences, or those of its items or nested fields",
    "oneOf": [
        {
            "type": "array",
            "items": {"oneOf": [{"type": "string"}, {"$ref": "#/components/schemas/Messages"}]},
        },
        {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Messages"}},
    ],
}
"""The ``errors`` of a 400: a list of sentences per field, nested like the request (a list's
items by position, an object's fields by name). Recursive, so declared here, not inferred."""


def add_messages(
    result: dict[str, Any], generator: object, request: object, public: bool
) -> dict[str, Any]:
    """The ``Messages`` component that ``Error.errors`` refers to."""
    result.setdefault("components", {}).setdefault("schemas", {})["Messages"] = MESSAGES
    return result
