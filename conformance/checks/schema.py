"""The spec's schemas as JSON Schema validators (OpenAPI 3.0 `nullable` translated)."""

from __future__ import annotations

import functools
from typing import Any

import jsonschema

from conformance import contract


def to_json_schema(node: Any) -> Any:
    """Translate an OpenAPI 3.0 schema object (refs already inlined) to JSON Schema."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: to_json_schema(value)
        for key, value in node.items()
        if not key.startswith("x-") and key not in ("nullable", "example", "examples", "description")
    }
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
            if "anyOf" in out["anyOf"][0] and not out["anyOf"][0]:
                out = {}
    return out


@functools.cache
def _validator(operation_id: str, which: str) -> jsonschema.protocols.Validator:
    operation = contract.load().operations[operation_id]
    raw = operation.response_schema if which == "response" else operation.request_schema
    schema = to_json_schema(raw)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


def _errors(operation_id: str, which: str, instance: Any) -> list[str]:
    validator = _validator(operation_id, which)
    found = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in found]


def response_errors(operation_id: str, body: Any) -> list[str]:
    return _errors(operation_id, "response", body)


def request_errors(operation_id: str, body: Any) -> list[str]:
    return _errors(operation_id, "request", body)
