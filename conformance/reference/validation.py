"""Request rules of the three operations: headers, body fields, amounts.

Pure functions: they read the request and the active fault and answer either a
:class:`Rejection` (code and message of the failure envelope) or the validated
request. Nothing here touches the ledger.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conformance.reference.accounts import DECIMAL, MAX_MINOR, decimals_of, to_minor
from conformance.reference.variants import FRESHNESS_MS, MAX_ID_LENGTH, PINNED_COMPANY

NO_VARIANTS: frozenset[str] = frozenset()

BALANCE = "getUserAmount"
EXECUTE = "executeAdjustment"
CANCEL = "cancelAdjustment"

BIZ_TYPES = (1, 2, 10, 11, 12)
OPERATION_TYPES = ("OPEN_POSITION", "NORMAL_CLOSE", "ABNORMAL_OVERTRADING")
INT64 = (-(2**63), 2**63 - 1)
EPOCH_MILLIS = re.compile(r"[0-9]{13}")
EPOCH_LOOSE = re.compile(r"[0-9]{10,14}")  # fault ten-digit-*-accepted
INTEGER = re.compile(r"-?[0-9]+")

INVALID_HEADER = "INVALID_HEADER"
INVALID_JSON = "INVALID_JSON"
INVALID_PARAMETER = "INVALID_PARAMETER"
UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"


@dataclass(frozen=True)
class Rejection:
    code: str
    msg: str


@dataclass(frozen=True)
class Field:
    name: str
    kind: type  # str or int
    required: bool = True
    max_length: int | None = None


_COMMON = (
    Field("thirdServerCode", str),
    Field("userName", str, max_length=48),
    Field("currency", str, max_length=16),
    Field("bizType", int),
    Field("amount", str),
    Field("amountDigits", int),
    Field("requestUniqueNo", str, max_length=48),
    Field("requestTime", int),
    Field("ip", str),
    Field("metadata", str, required=False, max_length=200),
)
FIELDS: dict[str, tuple[Field, ...]] = {
    BALANCE: (Field("thirdServerCode", str), Field("userName", str), Field("currency", str)),
    EXECUTE: (*_COMMON, Field("operationType", str), Field("orderId", int)),
    CANCEL: (
        *_COMMON,
        Field("orderId", int, required=False),
        Field("reverseRequestUniqueNo", str),
        Field("cancelRemark", str, max_length=200),
    ),
}


@dataclass(frozen=True)
class Valid:
    """A request that passed every rule. ``minor`` is |amount| in minor units (execute, cancel)."""

    operation: str
    body: dict[str, Any]
    minor: int = 0

    @property
    def account_key(self) -> tuple[str, str, str]:
        return (self.body["thirdServerCode"], self.body["userName"], self.body["currency"])


# ---------------------------------------------------------------- headers


def check_headers(
    operation: str, headers: Mapping[str, str], fault: str | None, variants: frozenset[str] = NO_VARIANTS
) -> Rejection | None:
    """``headers`` maps the documented spellings (trace, companyId, timestamp) to the values received."""
    if "trace" not in headers and fault != "missing-trace-accepted":
        return Rejection(INVALID_HEADER, "missing header trace")
    company = headers.get("companyId")
    if company is None:
        if fault != "missing-companyid-accepted":
            return Rejection(INVALID_HEADER, "missing header companyId")
    elif not INTEGER.fullmatch(company) and fault != "non-integer-companyid-accepted":
        return Rejection(INVALID_HEADER, "header companyId must be an integer")
    elif "company-pinned" in variants and company.lstrip("0") != PINNED_COMPANY:
        return Rejection(INVALID_HEADER, f"this wallet serves companyId {PINNED_COMPANY} only")
    timestamp = headers.get("timestamp")
    if timestamp is None:
        required = operation != CANCEL or fault == "cancel-requires-timestamp"
        if required and not (operation != CANCEL and fault == "missing-timestamp-accepted"):
            return Rejection(INVALID_HEADER, "missing header timestamp")
    else:
        pattern = EPOCH_LOOSE if fault == "ten-digit-timestamp-accepted" else EPOCH_MILLIS
        if not pattern.fullmatch(timestamp):
            return Rejection(INVALID_HEADER, "header timestamp must be 13 digits of epoch milliseconds")
        if "fresh-timestamps-only" in variants and not _fresh(int(timestamp)):
            return Rejection(INVALID_HEADER, "header timestamp is more than 5 minutes from now")
    return None


def _fresh(epoch_ms: int) -> bool:
    """Variant fresh-timestamps-only: within 5 minutes of the wallet's clock."""
    return abs(time.time_ns() // 1_000_000 - epoch_ms) <= FRESHNESS_MS


def check_media_type(content_type: str | None, fault: str | None) -> Rejection | None:
    """The body must be declared application/json (parameters such as charset are fine)."""
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    if declared == "application/json" or fault == "non-json-media-type-accepted":
        return None
    return Rejection(UNSUPPORTED_MEDIA_TYPE, "the body must be sent as Content-Type: application/json")


# ---------------------------------------------------------------- body


def parse_body(raw: bytes) -> tuple[Any, Rejection | None]:
    """The JSON body, or a rejection when it is not UTF-8 JSON (NaN and Infinity are not JSON)."""
    try:
        return _DECODER.decode(raw.decode("utf-8")), None
    except (ValueError, RecursionError):
        return None, Rejection(INVALID_JSON, "the body is not valid JSON")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)  # built once: json.loads(..., hook) builds one per call


def is_text(value: Any) -> bool:
    """A JSON string that is valid Unicode (no lone surrogates from \\ud800 escapes)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def readable_request_unique_no(body: Any, fault: str | None) -> str | None:
    """The requestUniqueNo of an execute body when it can be remembered, even if the request is invalid."""
    if not isinstance(body, dict):
        return None
    value = body.get("requestUniqueNo")
    if not is_text(value):
        return None
    if len(value) > 48 and fault != "long-requestuniqueno-accepted":
        return None
    return value


def validate_body(
    operation: str, body: Any, fault: str | None, variants: frozenset[str] = NO_VARIANTS
) -> Valid | Rejection:
    if not isinstance(body, dict):
        return Rejection(INVALID_PARAMETER, "the body must be a JSON object")
    if fault == "wrong-json-types-accepted":
        body = _truncate_fractions(body)
    if "lenient-scalar-coercion" in variants:
        body = _coerce_losslessly(operation, body)
    if "null-optional-accepted" in variants:
        optional = {field.name for field in FIELDS[operation] if not field.required}
        body = {name: value for name, value in body.items() if not (value is None and name in optional)}
    for field in FIELDS[operation]:
        problem = _field_problem(field, body, fault)
        if problem:
            return Rejection(INVALID_PARAMETER, problem)
    problem = _variant_problem(operation, body, variants) if variants else None
    if problem:
        return Rejection(INVALID_PARAMETER, problem)
    if operation == BALANCE:
        return Valid(operation, body)
    return _adjustment(operation, body, fault)


def _variant_problem(operation: str, body: dict[str, Any], variants: frozenset[str]) -> str | None:
    """The stricter readings of D17 and D19 (variants); the fields' types are already checked."""
    if "strict-unknown-fields" in variants:
        documented = {field.name for field in FIELDS[operation]}
        extra = sorted(name for name in body if name not in documented)
        if extra:
            return f"unknown field {extra[0]}"
    if "strict-ip" in variants and "ip" in body:
        try:
            ipaddress.ip_address(body["ip"])
        except ValueError:
            return "ip must be an IPv4 or IPv6 address"
    if "metadata-must-be-json" in variants and "metadata" in body:
        try:
            json.loads(body["metadata"])
        except ValueError:
            return "metadata must be JSON text"
    if "bounded-ids" in variants:
        for name in ("thirdServerCode", "reverseRequestUniqueNo"):
            if name in body and len(body[name]) > MAX_ID_LENGTH:
                return f"field {name} is longer than {MAX_ID_LENGTH} characters"
    if "fresh-timestamps-only" in variants and operation != BALANCE:
        request_time = body.get("requestTime")
        well_formed = isinstance(request_time, int) and EPOCH_MILLIS.fullmatch(str(request_time))
        if well_formed and not _fresh(request_time):
            return "requestTime is more than 5 minutes from now"
    return None


def _truncate_fractions(body: dict[str, Any]) -> dict[str, Any]:
    """Fault wrong-json-types-accepted: amountDigits, bizType and orderId as fractions are truncated (lossy)."""
    coerced = dict(body)
    for name in ("amountDigits", "bizType", "orderId"):
        value = coerced.get(name)
        if isinstance(value, float) and not value.is_integer():
            coerced[name] = int(value)
    return coerced


def _coerce_losslessly(operation: str, body: dict[str, Any]) -> dict[str, Any]:
    """Variant lenient-scalar-coercion (D21, Jackson's default): a numeric string or an integral float for an
    integer field reads as the integer, an integer for a string field as its text; nothing lossy."""
    coerced = dict(body)
    for field in FIELDS[operation]:
        value = coerced.get(field.name)
        if isinstance(value, bool):
            continue
        if field.kind is int:
            numeric_text = isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,19}", value)
            if numeric_text or (isinstance(value, float) and value.is_integer()):
                coerced[field.name] = int(value)
        elif isinstance(value, int) and field.name in coerced:
            coerced[field.name] = str(value)
    return coerced


def _field_problem(field: Field, body: dict[str, Any], fault: str | None) -> str | None:
    if field.name not in body:
        if not field.required or (field.name == "ip" and fault == "missing-ip-accepted"):
            return None
        return f"missing field {field.name}"
    value = body[field.name]
    if field.kind is int:
        if type(value) is not int:
            return f"field {field.name} must be an integer"
        return None
    if not is_text(value):
        return f"field {field.name} must be a string"
    limit = field.max_length
    if limit is not None and len(value) > limit and not _limit_lifted(field.name, fault):
        return f"field {field.name} is longer than {limit} characters"
    return None


def _limit_lifted(name: str, fault: str | None) -> bool:
    return (name, fault) in {
        ("userName", "long-username-accepted"),
        ("requestUniqueNo", "long-requestuniqueno-accepted"),
    }


def _adjustment(operation: str, body: dict[str, Any], fault: str | None) -> Valid | Rejection:
    if body["bizType"] not in BIZ_TYPES and fault != "unknown-biztype-accepted":
        return Rejection(INVALID_PARAMETER, "bizType must be one of 1, 2, 10, 11, 12")
    operation_type = body.get("operationType")
    unknown_operation_type = operation == EXECUTE and operation_type not in OPERATION_TYPES
    if unknown_operation_type and fault != "unknown-operationtype-accepted":
        return Rejection(
            INVALID_PARAMETER, "operationType must be OPEN_POSITION, NORMAL_CLOSE or ABNORMAL_OVERTRADING"
        )
    for name in ("orderId", "requestTime"):
        if name in body and not INT64[0] <= body[name] <= INT64[1]:
            return Rejection(INVALID_PARAMETER, f"{name} is out of the int64 range")
    time_pattern = EPOCH_LOOSE if fault == "ten-digit-requesttime-accepted" else EPOCH_MILLIS
    if not time_pattern.fullmatch(str(body["requestTime"])):
        return Rejection(INVALID_PARAMETER, "requestTime must be 13 digits of epoch milliseconds")
    digits = body["amountDigits"]
    if digits < 0:
        return Rejection(INVALID_PARAMETER, "amountDigits must not be negative")
    amount = body["amount"]
    if fault == "amount-with-separators-accepted":
        amount = amount.replace(",", "")
    if not DECIMAL.fullmatch(amount):
        return Rejection(INVALID_PARAMETER, "amount must be a plain decimal string such as 25.50")
    if decimals_of(amount) != digits and fault != "amount-digits-mismatch-accepted":
        return Rejection(INVALID_PARAMETER, "amount must have exactly amountDigits decimals")
    minor = to_minor(amount, digits)
    if minor is None:
        return Rejection(INVALID_PARAMETER, "amount must have exactly amountDigits decimals")
    if abs(minor) > MAX_MINOR:
        return Rejection(INVALID_PARAMETER, "amount is out of range")
    sign_problem = _sign_problem(operation, operation_type, minor)
    if sign_problem and fault != "wrong-sign-accepted":
        return Rejection(INVALID_PARAMETER, sign_problem)
    if minor == 0:
        return Rejection(INVALID_PARAMETER, "amount must not be zero")
    return Valid(operation, body, abs(minor))


def _sign_problem(operation: str, operation_type: Any, minor: int) -> str | None:
    if operation == CANCEL:
        return None if minor > 0 else "a cancel amount must be positive"
    if operation_type == "ABNORMAL_OVERTRADING":
        return None if minor < 0 else "an ABNORMAL_OVERTRADING amount must be negative"
    return None if minor > 0 else f"an {operation_type} amount must be positive"
