"""Every request rule of the reference wallet rejects (HDR, VAL, CUR-003) and valid variants pass."""

from __future__ import annotations

from typing import Any

import pytest
from conftest_reference import (
    BALANCE_PATH,
    CANCEL_PATH,
    EXECUTE_PATH,
    JPY,
    USD,
    USDT,
    WalletClient,
    assert_accepted,
    assert_rejected,
    balance_body,
    cancel_body,
    drop,
    execute_body,
    fresh,
    headers,
    running,
)

from conformance.reference.validation import FIELDS


@pytest.fixture(scope="module")
def wallet():
    with running() as client:
        yield client


def body_for(operation: str, **overrides: Any) -> tuple[str, dict[str, Any]]:
    if operation == "balance":
        return BALANCE_PATH, balance_body(**overrides)
    if operation == "execute":
        return EXECUTE_PATH, execute_body("1.00", **overrides)
    return CANCEL_PATH, cancel_body(fresh("E"), "1.00", **overrides)


OPERATIONS = ["balance", "execute", "cancel"]


def wire(value: str) -> Any:
    """A header value as requests can send it: non-Latin-1 text goes out as UTF-8 bytes."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")
    return value


# ---------------------------------------------------------------- headers


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("name", ["trace", "companyId"])
def test_missing_required_header_rejected(wallet: WalletClient, operation: str, name: str):
    path, body = body_for(operation)
    assert_rejected(wallet.post(path, body, headers(**{name: None})), "INVALID_HEADER")


@pytest.mark.parametrize("operation", ["balance", "execute"])
def test_missing_timestamp_rejected_on_balance_and_execute(wallet: WalletClient, operation: str):
    path, body = body_for(operation)
    assert_rejected(wallet.post(path, body, headers(timestamp=None)), "INVALID_HEADER")


def test_cancel_without_timestamp_is_processed(wallet: WalletClient):
    number = fresh("E")
    before = wallet.amount()
    assert_accepted(wallet.execute("3.00", number=number))
    assert wallet.amount() == before - 3
    assert_accepted(wallet.cancel(number, "3.00", hdrs=headers(timestamp=None)))
    assert wallet.amount() == before
    assert_rejected(wallet.cancel(fresh("E"), hdrs=headers(timestamp=None)), "US_0000002")


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("value", ["abc", "12.5", "", "1e3", "+1", "0x1f", "1 2", "١٢"])
def test_non_integer_companyid_rejected(wallet: WalletClient, operation: str, value: str):
    path, body = body_for(operation)
    assert_rejected(wallet.post(path, body, headers(companyId=wire(value))), "INVALID_HEADER")


@pytest.mark.parametrize("value", ["-5", "0", "439", "123456789012345678901234567890"])
def test_integer_companyid_accepted(wallet: WalletClient, value: str):
    assert_accepted(wallet.balance(hdrs=headers(companyId=value)))


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(
    "value",
    [
        "1764064800",
        "17640648000000",
        "abc",
        "",
        "1764064800000.0",
        "-176406480000",
        "１７６４０６４８０００００",
    ],
)
def test_bad_timestamp_rejected(wallet: WalletClient, operation: str, value: str):
    path, body = body_for(operation)
    assert_rejected(wallet.post(path, body, headers(timestamp=wire(value))), "INVALID_HEADER")


# ---------------------------------------------------------------- media type


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "multipart/form-data", "application/x-www-form-urlencoded", "", None]
)
def test_non_json_media_type_rejected(wallet: WalletClient, operation: str, content_type: str | None):
    path, body = body_for(operation)
    reply = wallet.post(path, body, content_type=content_type)
    assert_rejected(reply, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/json "]
)
def test_json_media_type_variants_accepted(wallet: WalletClient, content_type: str):
    assert_accepted(wallet.post(BALANCE_PATH, balance_body(), content_type=content_type))


def test_execute_rejected_for_its_media_type_is_remembered(wallet: WalletClient):
    number = fresh("E")
    assert_rejected(wallet.post(EXECUTE_PATH, execute_body("1.00", number=number), content_type="text/plain"))
    assert_rejected(wallet.cancel(number, "1.00"), "US_0000001")


# ---------------------------------------------------------------- body shape and types


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"1", b"null", b"true"])
def test_body_must_be_an_object(wallet: WalletClient, operation: str, raw: bytes):
    path, _ = body_for(operation)
    assert_rejected(wallet.post(path, raw=raw), "INVALID_PARAMETER")


REQUIRED = [
    (op, field.name)
    for op, key in (
        ("balance", "getUserAmount"),
        ("execute", "executeAdjustment"),
        ("cancel", "cancelAdjustment"),
    )
    for field in FIELDS[key]
    if field.required
]


@pytest.mark.parametrize(("operation", "name"), REQUIRED)
def test_missing_required_field_rejected(wallet: WalletClient, operation: str, name: str):
    path, body = body_for(operation, **{name: drop()})
    assert_rejected(wallet.post(path, body), "INVALID_PARAMETER")


def test_required_lists_match_the_spec():
    from conformance.contract import load

    operations = load().operations
    for op in ("getUserAmount", "executeAdjustment", "cancelAdjustment"):
        ours = {field.name for field in FIELDS[op] if field.required}
        assert ours == set(operations[op].request_schema["required"]), op
        assert {field.name for field in FIELDS[op]} == set(operations[op].request_schema["properties"]), op


def test_optional_fields_may_be_absent(wallet: WalletClient):
    assert_accepted(wallet.execute("1.00", metadata=drop()))
    number = fresh("E")
    assert_accepted(wallet.execute("1.00", number=number))
    assert_accepted(wallet.cancel(number, "1.00", orderId=drop(), metadata=drop()))


def test_extra_fields_are_ignored(wallet: WalletClient):
    assert_accepted(wallet.balance(extra="x"))
    assert_accepted(wallet.execute("1.00", extra={"nested": [1]}))


TYPE_CASES = [
    (op, field.name, value)
    for op, key in (
        ("balance", "getUserAmount"),
        ("execute", "executeAdjustment"),
        ("cancel", "cancelAdjustment"),
    )
    for field in FIELDS[key]
    for value in ((1, None, True, ["x"]) if field.kind is str else ("1", 1.0, True, None, [1]))
]


@pytest.mark.parametrize(("operation", "name", "value"), TYPE_CASES)
def test_wrong_json_type_rejected(wallet: WalletClient, operation: str, name: str, value: Any):
    path, body = body_for(operation, **{name: value})
    assert_rejected(wallet.post(path, body), "INVALID_PARAMETER")


# ---------------------------------------------------------------- limits and enums


LIMITS = [("userName", 48), ("currency", 16), ("requestUniqueNo", 48), ("metadata", 200)]


@pytest.mark.parametrize(
    ("operation", "name", "limit"),
    [(op, name, limit) for op in ("execute", "cancel") for name, limit in LIMITS]
    + [("cancel", "cancelRemark", 200)],
)
def test_over_long_field_rejected(wallet: WalletClient, operation: str, name: str, limit: int):
    path, body = body_for(operation, **{name: "9" * (limit + 1)})
    assert_rejected(wallet.post(path, body), "INVALID_PARAMETER")


def test_fields_at_their_limit_are_accepted(wallet: WalletClient):
    number = "N" * 47 + fresh("")[-1]
    assert_accepted(wallet.execute("1.00", number=number, metadata="m" * 200))
    assert_accepted(
        wallet.cancel(number, "1.00", number="C" * 48, cancelRemark="r" * 200, metadata="m" * 200)
    )
    # userName 48 and currency 16 pass validation; no such account exists
    assert_rejected(wallet.execute("1.00", userName="8" * 48, currency="C" * 16), "ACCOUNT_NOT_FOUND")


def test_balance_has_no_length_limits(wallet: WalletClient):
    assert_rejected(wallet.balance(userName="8" * 100, currency="C" * 100), "ACCOUNT_NOT_FOUND")


@pytest.mark.parametrize("operation", ["execute", "cancel"])
@pytest.mark.parametrize("biz_type", [0, 3, 9, 13, -1, 100])
def test_unknown_biztype_rejected(wallet: WalletClient, operation: str, biz_type: int):
    path, body = body_for(operation, bizType=biz_type)
    assert_rejected(wallet.post(path, body), "INVALID_PARAMETER")


@pytest.mark.parametrize("biz_type", [1, 2, 10, 11, 12])
def test_documented_biztypes_accepted(wallet: WalletClient, biz_type: int):
    assert_accepted(wallet.execute("1.00", bizType=biz_type))


@pytest.mark.parametrize("operation_type", ["open_position", "TRANSFER", "", "OPEN POSITION"])
def test_unknown_operationtype_rejected(wallet: WalletClient, operation_type: str):
    assert_rejected(wallet.execute("1.00", operationType=operation_type), "INVALID_PARAMETER")


# ---------------------------------------------------------------- amounts


@pytest.mark.parametrize("operation", ["execute", "cancel"])
@pytest.mark.parametrize(
    "amount",
    ["1,000.00", "1e3", "abc", " 10.00", "10.00 ", "+10.00", "10.", ".50", "", "١٠.٠٠", "10.00\n", "0x10"],
)
def test_amount_not_plain_decimal_rejected(wallet: WalletClient, operation: str, amount: str):
    path, body = body_for(operation, amount=amount, amountDigits=2)
    assert_rejected(wallet.post(path, body), "INVALID_PARAMETER")


@pytest.mark.parametrize("operation", ["execute", "cancel"])
@pytest.mark.parametrize(("amount", "digits"), [("10.5", 2), ("10.500", 2), ("10", 2), ("10.00", 0)])
def test_amount_decimals_must_equal_amountdigits(
    wallet: WalletClient, operation: str, amount: str, digits: int
):
    path, body = body_for(operation, amount=amount, amountDigits=digits)
    assert_rejected(wallet.post(path, body), "INVALID_PARAMETER")


def test_amountdigits_must_be_the_accounts(wallet: WalletClient):
    number = fresh("E")
    before = wallet.amount()
    reply = wallet.execute("1.000", number=number)  # USD has 2 digits
    body = assert_rejected(reply, "INVALID_PARAMETER")
    assert "amountDigits" in body["msg"]
    assert wallet.amount() == before
    assert_rejected(wallet.cancel(number, "1.000"), "US_0000001")


@pytest.mark.parametrize("account", [USD, JPY, USDT])
def test_amounts_in_each_accounts_digits_accepted(wallet: WalletClient, account):
    amount = {USD: "0.01", JPY: "7", USDT: "0.000001"}[account]
    assert_accepted(wallet.execute(amount, account=account))


@pytest.mark.parametrize(
    ("operation_type", "amount"),
    [
        ("OPEN_POSITION", "-1.00"),
        ("OPEN_POSITION", "0.00"),
        ("NORMAL_CLOSE", "-1.00"),
        ("NORMAL_CLOSE", "0.00"),
        ("ABNORMAL_OVERTRADING", "1.00"),
        ("ABNORMAL_OVERTRADING", "0.00"),
        ("ABNORMAL_OVERTRADING", "-0.00"),
    ],
)
def test_wrong_sign_rejected_on_execute(wallet: WalletClient, operation_type: str, amount: str):
    before = wallet.amount()
    assert_rejected(wallet.execute(amount, operation_type), "INVALID_PARAMETER")
    assert wallet.amount() == before


@pytest.mark.parametrize("amount", ["-1.00", "0.00", "-0.00"])
def test_wrong_sign_rejected_on_cancel(wallet: WalletClient, amount: str):
    number = fresh("E")
    assert_accepted(wallet.execute("1.00", number=number))
    before = wallet.amount()
    assert_rejected(wallet.cancel(number, amount), "INVALID_PARAMETER")
    assert wallet.amount() == before


@pytest.mark.parametrize("amount", ["1" + "0" * 19 + ".00", "9" * 40 + ".00", "1" * 5000 + ".00"])
def test_out_of_range_amount_rejected(wallet: WalletClient, amount: str):
    assert_rejected(wallet.execute(amount, "NORMAL_CLOSE"), "INVALID_PARAMETER")


# ---------------------------------------------------------------- other fields


@pytest.mark.parametrize("operation", ["execute", "cancel"])
@pytest.mark.parametrize("value", [1764064800, 17640648000000, -1764064800000, 0, 999999999999])
def test_bad_requesttime_rejected(wallet: WalletClient, operation: str, value: int):
    path, body = body_for(operation, requestTime=value)
    assert_rejected(wallet.post(path, body), "INVALID_PARAMETER")


@pytest.mark.parametrize("operation", ["execute", "cancel"])
def test_orderid_beyond_int64_rejected(wallet: WalletClient, operation: str):
    path, body = body_for(operation, orderId=2**63)
    assert_rejected(wallet.post(path, body), "INVALID_PARAMETER")


@pytest.mark.parametrize("currency", ["usd", "Usd", "USD "])
def test_currency_is_matched_exactly(wallet: WalletClient, currency: str):
    assert_rejected(wallet.balance(currency=currency), "ACCOUNT_NOT_FOUND")
    assert_rejected(wallet.execute("1.00", currency=currency), "ACCOUNT_NOT_FOUND")


def test_unknown_account_rejected(wallet: WalletClient):
    assert_rejected(wallet.balance(("W-1001", "86000002", "USD")), "ACCOUNT_NOT_FOUND")
    assert_rejected(wallet.execute("1.00", account=("W-1001", "86000001", "HKD")), "ACCOUNT_NOT_FOUND")


def test_same_user_two_currencies_are_two_accounts(wallet: WalletClient):
    eur = ("W-1005", "86000001", "EUR")
    usd_before, eur_before = wallet.amount(USD), wallet.amount(eur)
    assert_accepted(wallet.execute("5.00", account=eur))
    assert wallet.amount(eur) == eur_before - 5
    assert wallet.amount(USD) == usd_before
