"""Money in responses: the balance data and its currency (reference §3.2, §7, §8.1, §8.12)."""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

from conformance.checks import NA, Context, check
from conformance.checks.answers import describe, is_decimal_string, is_int, must_be_rejected
from conformance.checks.schema import business_valid, documented_spellings
from conformance.exchange import Exchange

CAMEL = ("userName", "currency", "amount", "amountDigits")
SNAKE = ("user_name", "currency", "amount", "amount_digits")
STYLES = {"camel": (CAMEL,), "snake": (SNAKE,), "either": (CAMEL, SNAKE)}


@functools.cache
def iso_4217_codes() -> frozenset[str]:
    import pycountry

    return frozenset(currency.alpha_3 for currency in pycountry.currencies)


def balance_data(exchange: Exchange) -> Any:
    """The data object of a successful balance answer, else NA."""
    if exchange.operation != "getUserAmount" or exchange.request.method != "POST" or not exchange.succeeded:
        return NA
    data = exchange.envelope.get("data")  # type: ignore[union-attr]
    return data if isinstance(data, dict) else NA


def digits_of(data: dict) -> Any:
    return data.get("amountDigits", data.get("amount_digits"))


def user_name_of(data: dict) -> Any:
    return data.get("userName", data.get("user_name"))


def balance_amount(exchange: Exchange | None) -> Decimal | None:
    """The balance a successful answer reports, as an exact Decimal; None when there is none."""
    if exchange is None:
        return None
    data = balance_data(exchange)
    if data is NA or not is_decimal_string(data.get("amount")):
        return None
    return Decimal(data["amount"])


@check("BAL-001")
def four_fields_in_one_style(exchange: Exchange, ctx: Context):
    """A successful balance carries all four fields in one key style the profile accepts."""
    data = balance_data(exchange)
    if data is NA:
        return NA
    styles = STYLES[ctx.keys]
    if any(all(key in data for key in style) for style in styles):
        return None
    wanted = " or ".join("{" + ", ".join(style) + "}" for style in styles)
    return f"balance data keys {sorted(data)} are not all of {wanted} (keys={ctx.keys})"


@check("BAL-002")
def amount_is_plain_decimal(exchange: Exchange, ctx: Context):
    """amount is a plain decimal string."""
    data = balance_data(exchange)
    if data is NA or "amount" not in data:
        return NA
    if is_decimal_string(data["amount"]):
        return None
    return f"amount {data['amount']!r} is not a plain decimal string"


@check("BAL-003")
def amount_digits_is_integer(exchange: Exchange, ctx: Context):
    """amountDigits is a non-negative JSON integer."""
    data = balance_data(exchange)
    if data is NA or ("amountDigits" not in data and "amount_digits" not in data):
        return NA
    digits = digits_of(data)
    if is_int(digits) and digits >= 0:
        return None
    return f"amountDigits {digits!r} is not a non-negative integer"


@check("BAL-004")
def amount_has_amount_digits_decimals(exchange: Exchange, ctx: Context):
    """amount has exactly amountDigits decimal places."""
    data = balance_data(exchange)
    if data is NA:
        return NA
    amount, digits = data.get("amount"), digits_of(data)
    if not is_decimal_string(amount) or not is_int(digits):
        return NA
    actual = len(amount.split(".", 1)[1]) if "." in amount else 0
    if actual == digits:
        return None
    return f"amount {amount!r} has {actual} decimals but amountDigits is {digits}"


@check("BAL-005")
def user_name_echoed(exchange: Exchange, ctx: Context):
    """The balance's userName is the requested userName."""
    data = balance_data(exchange)
    if data is NA or user_name_of(data) is None:
        return NA
    asked = exchange.request.json.get("userName")
    if user_name_of(data) == asked:
        return None
    return f"asked for userName {asked!r}, the balance says {user_name_of(data)!r}"


@check("BAL-006")
def unknown_account_refused(exchange: Exchange, ctx: Context):
    """A balance query for an account the wallet does not hold is refused."""
    if not ctx.is_reserved_unknown_account(exchange.request.json):
        return NA
    return must_be_rejected(exchange, "the account does not exist")


@check("BAL-007")
def profile_account_balance_succeeds(exchange: Exchange, ctx: Context):
    """A valid balance query for a profile account succeeds."""
    if (
        exchange.request.method != "POST"
        or exchange.response is None
        or exchange.negative
        or not business_valid(exchange)
        or not documented_spellings(exchange)
        or not ctx.is_profile_account(exchange.request.json)
    ):
        return NA
    return None if exchange.succeeded else f"a valid balance query was refused: {describe(exchange)}"


@check("CUR-001")
def currency_is_requested_currency(exchange: Exchange, ctx: Context):
    """The balance's currency is the requested currency, exactly."""
    data = balance_data(exchange)
    if data is NA:
        return NA
    asked = exchange.request.json.get("currency")
    if data.get("currency") == asked:
        return None
    return f"asked for currency {asked!r}, the balance is in {data.get('currency', '<missing>')!r}"


@check("CUR-002")
def currency_is_iso_or_allowed(exchange: Exchange, ctx: Context):
    """Currency codes in responses are ISO 4217 or on the allow-list."""
    data = balance_data(exchange)
    if data is NA or "currency" not in data:
        return NA
    code = data["currency"]
    if isinstance(code, str) and (code in iso_4217_codes() or code in ctx.currency_allowlist):
        return None
    allowed = ", ".join(sorted(ctx.currency_allowlist)) or "none"
    return f"currency {code!r} is neither ISO 4217 nor on the allow-list ({allowed})"


@check("CUR-003")
def lower_case_currency_not_matched(exchange: Exchange, ctx: Context):
    """A lower-case currency code does not address the upper-case account."""
    body = exchange.request.json
    if not isinstance(body, dict) or not isinstance(body.get("currency"), str):
        return NA
    currency = body["currency"]
    if currency == currency.upper() or not ctx.is_profile_account({**body, "currency": currency.upper()}):
        return NA
    return must_be_rejected(exchange, f"currency {currency!r} is not the account's code {currency.upper()!r}")


@check("BAL-008")
def answers_for_the_account_it_names(exchange: Exchange, ctx: Context):
    """A balance query for a known user in an unheld currency is refused, or answered for exactly that
    user and currency (an account opened on demand, D18); never with another account's balance."""
    body = exchange.request.json
    if (
        exchange.operation != "getUserAmount"
        or exchange.request.method != "POST"
        or exchange.response is None
        or exchange.negative
        or not business_valid(exchange)
        or not ctx.is_unheld_currency(body)
    ):
        return NA
    if exchange.rejected:
        return None
    data = balance_data(exchange)
    if data is NA:
        return NA  # neither a refusal nor a success: the envelope rules judge that answer
    said = (user_name_of(data), data.get("currency"))
    asked = (body.get("userName"), body.get("currency"))
    if said == asked:
        return None
    return (
        f"asked for user {asked[0]!r} in {asked[1]!r}, which the profile does not hold; the answer is the "
        f"balance of user {said[0]!r} in {said[1]!r}"
    )
