"""Request body validation: required fields, limits, enums, amount format and sign (reference §3.1, §4.1, §5.1)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from conformance import contract
from conformance.checks import NA, Context, check
from conformance.exchange import Exchange

DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
EPOCH_MILLIS_MIN, EPOCH_MILLIS_MAX = 10**12, 10**13 - 1
BIZ_TYPES = (1, 2, 10, 11, 12)
OPERATION_TYPES = ("OPEN_POSITION", "NORMAL_CLOSE", "ABNORMAL_OVERTRADING")
LIMITS = {"currency": 16, "requestUniqueNo": 48, "metadata": 200, "cancelRemark": 200}


def is_decimal_string(value: Any) -> bool:
    return isinstance(value, str) and bool(DECIMAL.match(value))


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
    """The request body when it is a JSON object on a documented call, else NA."""
    body = exchange.request.json
    if exchange.request.method != "POST" or not isinstance(body, dict):
        return NA
    return body


@check("VAL-001")
def missing_required_field_rejected(exchange: Exchange, ctx: Context):
    """A request missing a required body field is rejected."""
    body = body_of(exchange)
    if body is NA or exchange.operation is None:
        return NA
    required = contract.load().operations[exchange.operation].request_schema.get("required", [])
    missing = [name for name in required if name not in body]
    if not missing:
        return NA
    return must_be_rejected(exchange, f"required field(s) {', '.join(missing)} missing")


@check("VAL-002")
def long_user_name_rejected(exchange: Exchange, ctx: Context):
    """A userName longer than 48 characters is rejected."""
    body = body_of(exchange)
    if body is NA or not isinstance(body.get("userName"), str) or len(body["userName"]) <= 48:
        return NA
    return must_be_rejected(exchange, f"userName has {len(body['userName'])} characters (max 48)")


@check("VAL-003")
def over_long_fields_rejected(exchange: Exchange, ctx: Context):
    """Over-long currency, requestUniqueNo, metadata and cancelRemark are rejected."""
    body = body_of(exchange)
    if body is NA:
        return NA
    long_fields = [
        f"{name} ({len(body[name])} > {limit})"
        for name, limit in LIMITS.items()
        if isinstance(body.get(name), str) and len(body[name]) > limit
    ]
    if not long_fields:
        return NA
    return must_be_rejected(exchange, "over-long " + ", ".join(long_fields))


@check("VAL-004")
def unknown_biz_type_rejected(exchange: Exchange, ctx: Context):
    """A bizType other than 1, 2, 10, 11, 12 is rejected."""
    body = body_of(exchange)
    if body is NA or "bizType" not in body:
        return NA
    value = body["bizType"]
    if is_int(value) and value in BIZ_TYPES:
        return NA
    return must_be_rejected(exchange, f"bizType {value!r} is not one of {BIZ_TYPES}")


@check("VAL-005")
def unknown_operation_type_rejected(exchange: Exchange, ctx: Context):
    """An operationType outside the documented three is rejected."""
    body = body_of(exchange)
    if body is NA or "operationType" not in body or body["operationType"] in OPERATION_TYPES:
        return NA
    return must_be_rejected(exchange, f"operationType {body['operationType']!r} is not documented")


def sign_problem(operation: str | None, body: dict) -> str | None:
    """Why the amount's sign is wrong for the operation, or None."""
    amount = body.get("amount")
    if not is_decimal_string(amount):
        return None
    value = Decimal(amount)
    if operation == "cancelAdjustment":
        return None if value > 0 else f"cancel amount {amount} is not positive"
    kind = body.get("operationType")
    if kind in ("OPEN_POSITION", "NORMAL_CLOSE") and value <= 0:
        return f"{kind} amount {amount} is not positive"
    if kind == "ABNORMAL_OVERTRADING" and value >= 0:
        return f"ABNORMAL_OVERTRADING amount {amount} is not negative"
    return None


@check("VAL-006")
def wrong_sign_rejected(exchange: Exchange, ctx: Context):
    """An amount with the wrong sign for its operation is rejected."""
    body = body_of(exchange)
    if body is NA:
        return NA
    problem = sign_problem(exchange.operation, body)
    return NA if problem is None else must_be_rejected(exchange, problem)


@check("VAL-007")
def non_decimal_amount_rejected(exchange: Exchange, ctx: Context):
    """An amount that is not a plain decimal string is rejected."""
    body = body_of(exchange)
    if body is NA or "amount" not in body or is_decimal_string(body["amount"]):
        return NA
    return must_be_rejected(exchange, f"amount {body['amount']!r} is not a plain decimal string")


@check("VAL-008")
def amount_digits_mismatch_rejected(exchange: Exchange, ctx: Context):
    """An amount whose decimals differ from amountDigits is rejected."""
    body = body_of(exchange)
    if body is NA:
        return NA
    amount, digits = body.get("amount"), body.get("amountDigits")
    if not is_decimal_string(amount) or not is_int(digits) or decimals(amount) == digits:
        return NA
    return must_be_rejected(exchange, f"amount {amount!r} has {decimals(amount)} decimals, amountDigits={digits}")


@check("VAL-009")
def request_time_not_13_digits_rejected(exchange: Exchange, ctx: Context):
    """A requestTime that is not 13 digits of epoch milliseconds is rejected."""
    body = body_of(exchange)
    if body is NA or "requestTime" not in body:
        return NA
    value = body["requestTime"]
    if is_int(value) and EPOCH_MILLIS_MIN <= value <= EPOCH_MILLIS_MAX:
        return NA
    return must_be_rejected(exchange, f"requestTime {value!r} is not 13 digits of epoch milliseconds")


def schema_problems(exchange: Exchange) -> list[str]:
    """How the request breaks the documented header and body schemas (empty when it keeps them)."""
    from conformance.checks import schema
    from conformance.checks.headers import header_problems

    problems = header_problems(exchange)
    problems += [f"body {p}" for p in schema.request_errors(exchange.operation, exchange.request.json)]
    return problems


@check("VAL-010")
def schema_invalid_request_rejected(exchange: Exchange, ctx: Context):
    """A request whose headers or JSON body violate the documented schema is rejected.

    Any well-formed JSON body counts, an array or a string too (the schema asks for an object);
    a body that is not JSON at all is ROB-002's.
    """
    if exchange.request.method != "POST" or not exchange.request.body_is_json or exchange.operation is None:
        return NA
    problems = schema_problems(exchange)
    if not problems:
        return NA
    return must_be_rejected(exchange, "the request breaks the documented schema (" + "; ".join(problems[:3]) + ")")


@check("VAL-011")
def non_json_media_type_rejected(exchange: Exchange, ctx: Context):
    """A request whose Content-Type is not application/json is rejected."""
    if exchange.request.method != "POST":
        return NA
    declared = (exchange.request.header("content-type") or "").split(";", 1)[0].strip().lower()
    if declared == "application/json":
        return NA
    return must_be_rejected(exchange, f"the request was sent as {declared or 'no content type'!r}")
