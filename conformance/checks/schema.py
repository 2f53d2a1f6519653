"""The spec's schemas: JSON Schema validators (OpenAPI 3.0 `nullable` translated) and request conformance.

``schema_problems`` says how a request breaks the documented header and body schemas; the checks of the
header and validation families both read it (no check lives here).
"""

from __future__ import annotations

import functools
import re
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


def without_null_optionals(operation_id: str, body: Any) -> Any:
    """The body with ``null`` removed from optional fields (spec decision D12: null there reads as absent).

    The platform never sends null; most JSON stacks read null in an optional field as absent, others
    refuse it. Both are legal, so a request whose only flaw is such a null is never judged either way.
    """
    if not isinstance(body, dict):
        return body
    required = set(contract.load().operations[operation_id].request_schema.get("required", ()))
    return {key: value for key, value in body.items() if value is not None or key in required}


_INTEGER_TEXT = re.compile(r"-?[0-9]{1,19}")


def _lossless(value: Any, declared: dict) -> Any:
    """``value`` read as the declared scalar type when nothing is lost (D21), else ``value`` itself."""
    kind = declared.get("type")
    if isinstance(value, bool):
        return value
    if kind == "integer":
        if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    if kind == "string" and isinstance(value, int):
        return str(value)
    return value


def as_read(operation_id: str, body: Any) -> Any:
    """The body as a lenient wallet reads it: scalars of another type coerced when nothing is lost (spec
    decision D21). Rules judge this reading, so such values are never judged either way."""
    operation = contract.load().operations.get(operation_id)
    if operation is None or not isinstance(body, dict):
        return body
    properties = operation.request_schema.get("properties", {})
    return {name: _lossless(value, properties.get(name, {})) for name, value in body.items()}


def request_errors(operation_id: str, body: Any) -> list[str]:
    """How the body breaks the request schema; null in an optional field (D12) and lossless scalar
    coercions (D21) are not counted."""
    return _errors(operation_id, "request", as_read(operation_id, without_null_optionals(operation_id, body)))


def is_integer_text(text: str) -> bool:
    """A header value that is the decimal text of an integer (header values travel as text)."""
    return re.fullmatch(r"-?[0-9]+", text) is not None


def _header_value_problem(operation_id: str, name: str, value: str) -> str | None:
    """How one header value breaks the schema its parameter declares (integer; EpochMillis; string)."""
    declared = contract.load().operations[operation_id].header_schema(name) or {}
    rules = contract.load().rules
    if declared.get("type") != "integer":
        return None
    if not is_integer_text(value):
        return f"{name} {value!r} is not an integer"
    if "minimum" in declared and not rules.is_epoch_millis_text(value):
        return f"{name} {value!r} is not 13 digits of epoch milliseconds"
    return None


def header_problems(exchange) -> list[str]:
    """How the documented headers break their declared schemas: required ones present, values well typed."""
    if exchange.operation is None:
        return []
    operation = contract.load().operations[exchange.operation]
    problems = []
    for parameter in operation.header_parameters:
        name = parameter["name"]
        value = exchange.request.header(name)
        if value is None:
            if parameter.get("required"):
                problems.append(f"{name} header missing")
            continue
        problem = _header_value_problem(exchange.operation, name, value)
        if problem:
            problems.append(problem)
    return problems


def documented_spellings(exchange) -> bool:
    """The documented headers are sent with their documented spelling (other spellings are HDR-005's concern)."""
    documented = {name.lower(): name for name in contract.load().rules.documented_headers}
    return all(documented.get(name.lower(), name) == name for name, _ in exchange.request.headers)


def schema_problems(exchange) -> list[str]:
    """How the request breaks the documented header and body schemas (empty when it keeps them)."""
    problems = header_problems(exchange)
    problems += [f"body {p}" for p in request_errors(exchange.operation, exchange.request.json)]
    return problems


#: D19: a wallet may refuse an id longer than this where the docs give no limit (thirdServerCode,
#: reverseRequestUniqueNo), so the suite never expects such a request to succeed.
PLAUSIBLE_ID_LENGTH = 64


def implausible(exchange) -> list[str]:
    """Why a schema-valid request might still be refused by a correct wallet (spec decisions D12, D17, D19).

    A rule that says "this request must succeed" judges only requests with nothing here: only documented
    body fields, no null in them, an ip that is an IP address, metadata that is JSON text, ids within 64
    characters, and times within five minutes of now. (Rules that say "this must be refused" do not use this.)
    """
    import ipaddress
    import json
    import time

    body = exchange.request.json
    if exchange.operation is None or not isinstance(body, dict):
        return ["not a JSON object on a documented operation"]
    operation = contract.load().operations[exchange.operation]
    documented = set(operation.request_schema.get("properties", {}))
    reasons = [f"undocumented field {name!r}" for name in body if name not in documented]
    reasons += [f"null {name}" for name, value in body.items() if value is None]
    reasons += [f"empty {name}" for name, value in body.items() if value == ""]
    if "ip" in body:
        try:
            ipaddress.ip_address(str(body["ip"]))
        except ValueError:
            reasons.append(f"ip {body['ip']!r} is not an IP address")
    if isinstance(body.get("metadata"), str):
        try:
            json.loads(body["metadata"])
        except ValueError:
            reasons.append("metadata is not JSON text")
    for name in ("thirdServerCode", "reverseRequestUniqueNo"):
        if isinstance(body.get(name), str) and len(body[name]) > PLAUSIBLE_ID_LENGTH:
            reasons.append(f"{name} longer than {PLAUSIBLE_ID_LENGTH}")
    now = time.time() * 1000
    times = [body.get("requestTime")]
    header = exchange.request.header("timestamp")
    if header is not None and header.isdigit():
        times.append(int(header))
    if any(isinstance(t, int) and abs(t - now) > 5 * 60 * 1000 for t in times):
        reasons.append("a timestamp more than five minutes from now")
    return reasons


def business_valid(exchange) -> bool:
    """Valid by the schema and plausible in every reading of the docs: a correct wallet has no reason to refuse."""
    return not schema_problems(exchange) and not implausible(exchange)
