"""Request body validation: required fields, limits, enums, amount format and sign (reference §3.1, §4.1, §5.1)."""

from __future__ import annotations

from decimal import Decimal

from conformance import contract
from conformance.checks import NA, Context, check
from conformance.checks.answers import body_of, decimals, is_decimal_string, is_int, must_be_rejected
from conformance.checks.schema import schema_problems
from conformance.exchange import Exchange


def _limits(exchange: Exchange) -> dict[str, int]:
    """The body fields' maxLength for the exchange's operation, from the spec."""
    if exchange.operation is None:
        return {}
    return contract.load().operations[exchange.operation].max_lengths


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
    """A userName longer than its documented maxLength (48) is rejected."""
    body = body_of(exchange)
    limit = _limits(exchange).get("userName")
    if body is NA or limit is None or not isinstance(body.get("userName"), str) or len(body["userName"]) <= limit:
        return NA
    return must_be_rejected(exchange, f"userName has {len(body['userName'])} characters (max {limit})")


@check("VAL-003")
def over_long_fields_rejected(exchange: Exchange, ctx: Context):
    """Over-long currency, requestUniqueNo, metadata and cancelRemark are rejected."""
    body = body_of(exchange)
    if body is NA:
        return NA
    long_fields = [
        f"{name} ({len(body[name])} > {limit})"
        for name, limit in _limits(exchange).items()
        if name != "userName"  # VAL-002's
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
    allowed = contract.load().rules.biz_types
    if is_int(value) and value in allowed:
        return NA
    return must_be_rejected(exchange, f"bizType {value!r} is not one of {allowed}")


@check("VAL-005")
def unknown_operation_type_rejected(exchange: Exchange, ctx: Context):
    """An operationType outside the documented three is rejected."""
    body = body_of(exchange)
    if body is NA or "operationType" not in body or body["operationType"] in contract.load().rules.operation_types:
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
    if contract.load().rules.is_epoch_millis(value):
        return NA
    return must_be_rejected(exchange, f"requestTime {value!r} is not 13 digits of epoch milliseconds")


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
