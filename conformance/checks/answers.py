"""How the wallet answered a request: the helpers every check family shares (no rule of its own).

Accepted or rejected (spec decision D5: HTTP 4xx, or an envelope with ok=false), a one-line description
of an answer, the request body of a documented call, and the value shapes the spec defines.
"""

from __future__ import annotations

from typing import Any

from conformance import contract
from conformance.checks import NA
from conformance.exchange import Exchange


def is_decimal_string(value: Any) -> bool:
    """A plain decimal string by the spec's DecimalString pattern, matched against the whole string."""
    return contract.load().rules.is_decimal(value)


def decimals(value: str) -> int:
    return len(value.split(".", 1)[1]) if "." in value else 0


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def describe(exchange: Exchange) -> str:
    response = exchange.response
    if response is None:
        return f"no answer ({exchange.error})"
    envelope = exchange.envelope
    if envelope is None:
        return f"HTTP {response.status}, body not a JSON object"
    return f"HTTP {response.status}, code {envelope.get('code')!r}, ok={envelope.get('ok')!r}"


def must_be_rejected(exchange: Exchange, why: str):
    """The shared verdict of every "invalid input is rejected" rule (4xx or ok=false, spec D5)."""
    if exchange.request.method != "POST" or exchange.response is None:
        return NA
    if exchange.rejected:
        return None
    return f"{why}, yet it was not rejected: {describe(exchange)}"


def body_of(exchange: Exchange) -> dict | Any:
    """The request body when it is a JSON object on a documented call, else NA; scalars of another type
    read as the documented one where nothing is lost (spec decision D21: never judged either way)."""
    from conformance.checks.schema import as_read

    body = exchange.request.json
    if exchange.request.method != "POST" or not isinstance(body, dict):
        return NA
    return as_read(exchange.operation, body) if exchange.operation else body
