"""Request headers: trace, companyId, timestamp (reference §2.3)."""

from __future__ import annotations

from conformance import contract
from conformance.checks import NA, Context, check
from conformance.checks.answers import must_be_rejected
from conformance.checks.schema import business_valid, is_integer_text
from conformance.exchange import Exchange


def _missing_required(exchange: Exchange, name: str):
    """The rule of every required header: a request without it is rejected (required per the spec's operation)."""
    if exchange.request.has_header(name) or exchange.operation is None:
        return NA
    if name not in contract.load().operations[exchange.operation].required_headers:
        return NA  # optional on this operation (timestamp on cancel: HDR-004's)
    return must_be_rejected(exchange, f"the {name} header is missing")


@check("HDR-001")
def missing_trace_rejected(exchange: Exchange, ctx: Context):
    """A request without the trace header is rejected."""
    return _missing_required(exchange, "trace")


@check("HDR-002")
def missing_company_id_rejected(exchange: Exchange, ctx: Context):
    """A request without the companyId header is rejected."""
    return _missing_required(exchange, "companyId")


@check("HDR-003")
def missing_timestamp_rejected(exchange: Exchange, ctx: Context):
    """A balance or execute request without the timestamp header is rejected."""
    return _missing_required(exchange, "timestamp")


@check("HDR-005")
def header_names_case_insensitive(exchange: Exchange, ctx: Context):
    """A valid balance query whose header names use other letter cases still succeeds."""
    request = exchange.request
    documented = contract.load().rules.documented_headers
    sent_names = {name for name, _ in request.headers}
    recased = [
        name for name in sent_names if name.lower() in {d.lower() for d in documented}
        and name not in documented
    ]
    if (
        not recased
        or exchange.negative
        or exchange.operation != "getUserAmount"
        or request.method != "POST"
        or exchange.response is None
        or not business_valid(exchange)
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
    if company is None or is_integer_text(company):
        return NA
    return must_be_rejected(exchange, f"companyId {company!r} is not an integer")


@check("HDR-007")
def timestamp_not_13_digits_rejected(exchange: Exchange, ctx: Context):
    """A timestamp header that is not 13 digits of epoch milliseconds is rejected."""
    timestamp = exchange.request.header("timestamp")
    if timestamp is None or contract.load().rules.is_epoch_millis_text(timestamp):
        return NA
    return must_be_rejected(exchange, f"timestamp {timestamp!r} is not 13 digits of epoch milliseconds")
