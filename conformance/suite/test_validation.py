"""Request body validation: required fields, limits, enums, amount format and sign (reference §3.1, §4.1, §5.1).

Every probe is a valid call for a real profile account with exactly one thing
broken, so a rejection can only be for that thing.
"""

from __future__ import annotations

import json

import pytest

from conformance import contract
from conformance.suite.plugin import expect
from conformance.suite.teller import OPERATIONS

MONEY_OPERATIONS = contract.load().rules.money_operations


def _required(operation):
    return contract.load().operations[operation].request_schema["required"]


REQUIRED_FIELDS = [(op, name) for op in OPERATIONS for name in sorted(_required(op))]


@pytest.fixture
def gate(operation, profile):
    if operation != "getUserAmount" and not profile.money_allowed:
        pytest.skip("money movement is not allowed for this target (use --allow-money-movement)")


def _probe(teller, operation, account, **changes):
    body = teller.body_for(operation, account)
    for name, value in changes.items():
        if value is _DROP:
            body.pop(name, None)
        else:
            body[name] = value
    return teller.call(operation, body, negative=True)


_DROP = object()


@pytest.mark.requirement("VAL-001")
@pytest.mark.parametrize(("operation", "field"), REQUIRED_FIELDS)
def test_missing_required_field_is_rejected(operation, field, gate, teller, journal, account):
    expect(journal, "VAL-001", _probe(teller, operation, account, **{field: _DROP}))


@pytest.mark.requirement("VAL-002")
@pytest.mark.parametrize("operation", MONEY_OPERATIONS)
def test_user_name_over_48_is_rejected(operation, gate, teller, journal, account):
    long_name = (account.user_name + "9" * 49)[:49]
    expect(journal, "VAL-002", _probe(teller, operation, account, userName=long_name))


@pytest.mark.requirement("VAL-003")
@pytest.mark.parametrize(
    ("operation", "field", "length"),
    [
        ("executeAdjustment", "currency", 17),
        ("cancelAdjustment", "currency", 17),
        ("executeAdjustment", "requestUniqueNo", 49),
        ("cancelAdjustment", "requestUniqueNo", 49),
        ("executeAdjustment", "metadata", 201),
        ("cancelAdjustment", "metadata", 201),
        ("cancelAdjustment", "cancelRemark", 201),
    ],
)
def test_over_long_field_is_rejected(operation, field, length, gate, teller, journal, account):
    value = json.dumps({"k": "v" * length})[:length] if field == "metadata" else ("X" * length)
    if field == "requestUniqueNo":
        value = ("cf-long-" + "9" * length)[:length]
    expect(journal, "VAL-003", _probe(teller, operation, account, **{field: value}))


@pytest.mark.requirement("VAL-004")
@pytest.mark.parametrize("operation", MONEY_OPERATIONS)
@pytest.mark.parametrize("biz_type", [0, 3, 99, -1])
def test_unknown_biz_type_is_rejected(operation, biz_type, gate, teller, journal, account):
    expect(journal, "VAL-004", _probe(teller, operation, account, bizType=biz_type))


@pytest.mark.requirement("VAL-005")
@pytest.mark.parametrize("operation", ["executeAdjustment"])
@pytest.mark.parametrize("operation_type", ["OPEN", "open_position", "REFUND", ""])
def test_unknown_operation_type_is_rejected(operation, operation_type, gate, teller, journal, account):
    expect(journal, "VAL-005", _probe(teller, operation, account, operationType=operation_type))


@pytest.mark.requirement("VAL-006")
@pytest.mark.parametrize("operation", ["executeAdjustment"])
@pytest.mark.parametrize(
    ("operation_type", "sign"),
    [("OPEN_POSITION", "-"), ("OPEN_POSITION", "0"), ("NORMAL_CLOSE", "-"), ("ABNORMAL_OVERTRADING", "+")],
)
def test_execute_amount_with_wrong_sign_is_rejected(operation, operation_type, sign, gate, teller, journal, account):
    amount = teller.amount(account)
    amount = {"-": "-" + amount, "+": amount, "0": teller.amount(account, "0")}[sign]
    expect(journal, "VAL-006", _probe(teller, operation, account, operationType=operation_type, amount=amount))


@pytest.mark.requirement("VAL-006")
@pytest.mark.parametrize("operation", ["cancelAdjustment"])
@pytest.mark.parametrize("sign", ["-", "0"])
def test_cancel_amount_not_positive_is_rejected(operation, sign, gate, teller, journal, account):
    amount = "-" + teller.amount(account) if sign == "-" else teller.amount(account, "0")
    expect(journal, "VAL-006", _probe(teller, operation, account, amount=amount))


@pytest.mark.requirement("VAL-007")
@pytest.mark.parametrize("operation", MONEY_OPERATIONS)
@pytest.mark.parametrize("shape", ["thousands", "exponent", "letters", "blank", "plus", "spaces"])
def test_non_decimal_amount_is_rejected(operation, shape, gate, teller, journal, account):
    digits = teller.digits(account)
    fraction = ("." + "0" * digits) if digits else ""
    amount = {
        "thousands": "1,000" + fraction,
        "exponent": "1e0",  # one unit: the probe stays under the run's money bound
        "letters": "ten",
        "blank": "",
        "plus": "+1" + fraction,
        "spaces": " 1" + fraction,
    }[shape]
    expect(journal, "VAL-007", _probe(teller, operation, account, amount=amount))


@pytest.mark.requirement("VAL-008")
@pytest.mark.parametrize("operation", MONEY_OPERATIONS)
def test_amount_decimals_differ_from_amount_digits(operation, gate, teller, journal, account):
    # amountDigits stays the account's own; only the amount carries one decimal more than it says.
    digits = teller.digits(account)
    amount = teller.amount(account) + ("0" if digits else ".0")
    expect(journal, "VAL-008", _probe(teller, operation, account, amount=amount, amountDigits=digits))


@pytest.mark.requirement("VAL-009")
@pytest.mark.parametrize("operation", MONEY_OPERATIONS)
@pytest.mark.parametrize("value", [1764064800, 17640648000000, 1764064800000.5])
def test_request_time_not_13_digits_is_rejected(operation, value, gate, teller, journal, account):
    expect(journal, "VAL-009", _probe(teller, operation, account, requestTime=value))


@pytest.mark.requirement("VAL-010")
@pytest.mark.parametrize(
    ("operation", "field", "value"),
    [
        # only values no reading of the docs accepts: a lossless coercion ("2" for 2) is open (D21)
        ("getUserAmount", "userName", True),
        ("getUserAmount", "currency", ["USD"]),
        ("executeAdjustment", "amountDigits", 2.5),
        ("executeAdjustment", "orderId", "order-1"),
        ("executeAdjustment", "bizType", 1.5),
        ("executeAdjustment", "ip", None),
        ("cancelAdjustment", "amountDigits", "two"),
        ("cancelAdjustment", "thirdServerCode", {"id": 1}),
    ],
)
def test_wrong_json_type_is_rejected(operation, field, value, gate, teller, journal, account):
    expect(journal, "VAL-010", _probe(teller, operation, account, **{field: value}))


@pytest.mark.requirement("VAL-011")
@pytest.mark.parametrize("operation", ["getUserAmount"])
@pytest.mark.parametrize("media_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_non_json_media_type_is_rejected(operation, media_type, gate, teller, client, journal, account):
    body = json.dumps(teller.body_for(operation, account)).encode()
    headers = [*client.documented_headers(operation), ("Content-Type", media_type)]
    expect(journal, "VAL-011", teller.call(operation, raw_body=body, headers=headers, negative=True))
