"""Request headers: trace, companyId, timestamp (reference §2.3)."""

from __future__ import annotations

import re

from conformance.checks import NA, Context, check
from conformance.checks.validation import must_be_rejected
from conformance.exchange import Exchange

DOCUMENTED_NAMES = ("trace", "companyId", "timestamp")
INTEGER = re.compile(r"^-?[0-9]+$")
EPOCH_MILLIS = re.compile(r"^[0-9]{13}$")


def header_problems(exchange: Exchange) -> list[str]:
    """How the documented headers break their schema: trace present, companyId an integer, timestamp 13 digits."""
    request = exchange.request
    problems = []
    if request.header("trace") is None:
        problems.append("trace header missing")
    company = request.header("companyId")
    if company is None:
        problems.append("companyId header missing")
    elif not INTEGER.match(company):
        problems.append(f"companyId {company!r} is not an integer")
    timestamp = request.header("timestamp")
    if timestamp is None:
        if exchange.operation != "cancelAdjustment":
            problems.append("timestamp header missing")
    elif not EPOCH_MILLIS.match(timestamp):
        problems.append(f"timestamp {timestamp!r} is not 13 digits")
    return problems


def headers_valid(exchange: Exchange) -> bool:
    return not header_problems(exchange)


def documented_spellings(exchange: Exchange) -> bool:
    """The documented headers are sent with their documented spelling (other spellings are HDR-005's concern)."""
    documented = {name.lower(): name for name in DOCUMENTED_NAMES}
    return all(documented.get(name.lower(), name) == name for name, _ in exchange.request.headers)


@check("HDR-001")
def missing_trace_rejected(exchange: Exchange, ctx: Context):
    """A request without the trace header is rejected."""
    if exchange.request.has_header("trace"):
        return NA
    return must_be_rejected(exchange, "the trace header is missing")


@check("HDR-002")
def missing_company_id_rejected(exchange: Exchange, ctx: Context):
    """A request without the companyId header is rejected."""
    if exchange.request.has_header("companyId"):
        return NA
    return must_be_rejected(exchange, "the companyId header is missing")


@check("HDR-003")
def missing_timestamp_rejected(exchange: Exchange, ctx: Context):
    """A balance or execute request without the timestamp header is rejected."""
    if exchange.request.has_header("timestamp"):
        return NA
    return must_be_rejected(exchange, "the timestamp header is missing")


@check("HDR-005")
def header_names_case_insensitive(exchange: Exchange, ctx: Context):
    """A valid balance query whose header names use other letter cases still succeeds."""
    request = exchange.request
    sent_names = {name for name, _ in request.headers}
    recased = [
        name for name in sent_names if name.lower() in {d.lower() for d in DOCUMENTED_NAMES}
        and name not in DOCUMENTED_NAMES
    ]
    if (
        not recased
        or exchange.negative
        or exchange.operation != "getUserAmount"
        or request.method != "POST"
        or exchange.response is None
        or not headers_valid(exchange)
        or not ctx.is_profile_account(request.json)
    ):
        return NA
    if exchange.succeeded:
        return None
    return (
        f"a valid balance query sent with header names {sorted(recased)} was not answered with success "
        f"(HTTP {exchange.response.status}, code {exchange.code!r}); header names are case-insensitive"
    )


@check("HDR-006")
def non_integer_company_id_rejected(exchange: Exchange, ctx: Context):
    """A companyId that is not an integer is rejected."""
    company = exchange.request.header("companyId")
    if company is None or INTEGER.match(company):
        return NA
    return must_be_rejected(exchange, f"companyId {company!r} is not an integer")


@check("HDR-007")
def timestamp_not_13_digits_rejected(exchange: Exchange, ctx: Context):
    """A timestamp header that is not 13 digits of epoch milliseconds is rejected."""
    timestamp = exchange.request.header("timestamp")
    if timestamp is None or EPOCH_MILLIS.match(timestamp):
        return NA
    return must_be_rejected(exchange, f"timestamp {timestamp!r} is not 13 digits of epoch milliseconds")
