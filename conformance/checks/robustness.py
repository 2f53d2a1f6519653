"""Robustness and timing: no server errors, malformed input, other methods, deadlines (reference §2.1, §2.6)."""

from __future__ import annotations

import re

from conformance.checks import NA, Context, check
from conformance.checks.validation import describe
from conformance.exchange import Exchange

EXECUTE_DEADLINE_MS = 3000.0


@check("ROB-001")
def never_a_server_error(exchange: Exchange, ctx: Context):
    """The wallet never answers with a 5xx."""
    if exchange.response is None:
        return NA
    status = exchange.response.status
    if status < 500:
        return None
    shown = exchange.response.body[:80].decode("utf-8", "replace")
    return f"HTTP {status} server error: {shown!r}"


@check("ROB-002")
def malformed_json_rejected_with_envelope(exchange: Exchange, ctx: Context):
    """Malformed JSON is rejected with the envelope, not a 5xx or a non-JSON page."""
    if exchange.request.method != "POST" or exchange.request.body_is_json or exchange.response is None:
        return NA
    if exchange.rejected and exchange.envelope is not None:
        return None
    return f"a body that is not JSON was answered with {describe(exchange)}"


@check("ROB-003")
def undeclared_method_not_allowed(exchange: Exchange, ctx: Context):
    """Undeclared HTTP methods are answered 405 (or 501)."""
    if exchange.request.method == "POST" or exchange.response is None:
        return NA
    status = exchange.response.status
    if status in (405, 501):
        return None
    return f"{exchange.request.method} answered HTTP {status}, expected 405 Method Not Allowed"


def _within(exchange: Exchange, deadline_ms: float):
    if exchange.request.method != "POST":
        return NA
    if exchange.response is None:
        if exchange.error and "timed out" in exchange.error:
            waited = re.search(r"within ([0-9.]+) s", exchange.error)
            if waited and float(waited.group(1)) * 1000 < deadline_ms:
                return NA  # the client gave up before the deadline (--timeout below it): proves nothing
            return f"no answer before the client gave up ({exchange.error}); the deadline is {deadline_ms:.0f} ms"
        return NA
    if exchange.response.elapsed_ms <= deadline_ms:
        return None
    return f"answered in {exchange.response.elapsed_ms:.0f} ms; the deadline is {deadline_ms:.0f} ms"


@check("EXE-001")
def execute_within_deadline(exchange: Exchange, ctx: Context):
    """Execute answers within 3 seconds."""
    return _within(exchange, ctx.execute_deadline_ms)


@check("ROB-004")
def balance_and_cancel_within_deadline(exchange: Exchange, ctx: Context):
    """Balance and cancel answer within 3 seconds."""
    return _within(exchange, EXECUTE_DEADLINE_MS)
