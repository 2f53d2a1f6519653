"""Robustness and timing: no server errors, malformed input, other methods, deadlines (reference §2.1, §2.6)."""

from __future__ import annotations

from conformance import contract
from conformance.checks import NA, Context, NoAnswer, check
from conformance.checks.answers import describe
from conformance.exchange import Exchange


@check("ROB-001")
def never_a_server_error(exchange: Exchange, ctx: Context):
    """The wallet never answers a documented call (POST on the three paths) with a 5xx.

    Other methods are ROB-003's: RFC 9110 §15.6.2 makes 501 a right answer to a method a server does not
    implement."""
    if exchange.response is None or exchange.request.method != "POST":
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
    """Undeclared HTTP methods are refused: 405 (or 501), or the error envelope (ok=false), never a success."""
    if exchange.request.method == "POST" or exchange.response is None:
        return NA
    status = exchange.response.status
    if status in (405, 501):
        return None
    envelope = exchange.envelope
    if status < 500 and envelope is not None and envelope.get("ok") is False:
        return None  # refused the platform's way (HTTP 200 or 4xx with ok=false, spec D5/D20)
    return f"{exchange.request.method} answered HTTP {status}; expected 405 Method Not Allowed or an error envelope"


def _within(exchange: Exchange, deadline_ms: float):
    """The whole answer (to the last byte) arrived within the deadline; no answer at all is UNANSWERED."""
    if exchange.request.method != "POST":
        return NA
    if exchange.response is None:
        if exchange.waited_ms is not None and exchange.waited_ms < deadline_ms:
            return NA  # the client gave up before the deadline (--timeout below it): proves nothing
        return NoAnswer(f"no answer ({exchange.error}); the deadline is {deadline_ms:.0f} ms")
    if exchange.response.elapsed_ms <= deadline_ms:
        return None
    return f"answered in {exchange.response.elapsed_ms:.0f} ms; the deadline is {deadline_ms:.0f} ms"


@check("EXE-001")
def execute_within_deadline(exchange: Exchange, ctx: Context):
    """Execute answers within 3 seconds."""
    return _within(exchange, ctx.execute_deadline_ms)


@check("ROB-004")
def balance_and_cancel_within_deadline(exchange: Exchange, ctx: Context):
    """Balance and cancel answer within 3 seconds (the execute deadline; their own is not documented)."""
    return _within(exchange, contract.load().rules.execute_deadline_ms)
