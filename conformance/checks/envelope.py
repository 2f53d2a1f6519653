"""The response envelope shared by the three operations (reference §2.4)."""

from __future__ import annotations

from typing import Any

from conformance import contract
from conformance.checks import NA, Context, Inapplicable, Vacuous, check
from conformance.checks.answers import is_int
from conformance.exchange import Exchange

#: ENV-013's slack: tm may exceed the round trip the suite measured by this much (clocks, scheduling).
TM_SLACK_MS = 1000.0


def envelope_fields() -> tuple[str, ...]:
    """The nine documented envelope fields, from the spec's Envelope schema (reference §2.4)."""
    return tuple(contract.load().spec["components"]["schemas"]["Envelope"]["properties"])


def answered(exchange: Exchange) -> bool:
    """A documented call (POST on one of the three paths) that got an HTTP answer below 500."""
    return (
        exchange.request.method == "POST"
        and exchange.response is not None
        and exchange.response.status < 500
    )


def envelope_of(exchange: Exchange) -> Any:
    """The envelope to judge, or NA when there is none to judge (ENV-001 reports a missing one)."""
    if not answered(exchange):
        return NA
    envelope = exchange.envelope
    return NA if envelope is None else envelope


@check("ENV-001")
def json_object_with_json_content_type(exchange: Exchange, ctx: Context):
    """Every response is a JSON object sent as application/json."""
    if exchange.request.method != "POST" or exchange.response is None:
        return NA
    response = exchange.response
    problems = []
    if response.content_type != "application/json":
        problems.append(f"content type is {response.content_type or 'missing'!r}, not 'application/json'")
    if not isinstance(response.json, dict):
        shown = response.body[:80].decode("utf-8", "replace")
        problems.append(f"body is not a JSON object: {shown!r}")
    return "; ".join(problems) or None


@check("ENV-002")
def ok_is_not_fail(exchange: Exchange, ctx: Context):
    """`ok` and `fail` are booleans and `fail` is the inverse of `ok`."""
    envelope = envelope_of(exchange)
    if envelope is NA:
        return NA
    ok, fail = envelope.get("ok", "<missing>"), envelope.get("fail", "<missing>")
    if not isinstance(ok, bool) or not isinstance(fail, bool):
        return f"ok={ok!r} and fail={fail!r} must both be booleans"
    if ok == fail:
        return f"ok={ok} and fail={fail}: fail must be the inverse of ok"
    return None


@check("ENV-003")
def ok_exactly_when_code_zero(exchange: Exchange, ctx: Context):
    """`ok` is true exactly when `code` is the string "0"."""
    envelope = envelope_of(exchange)
    if envelope is NA or not isinstance(envelope.get("ok"), bool):
        return NA
    code, ok = envelope.get("code"), envelope["ok"]
    if ok and code != "0":
        return f'ok=true but code={code!r}: success is code "0"'
    if not ok and code == "0":
        return 'ok=false but code="0": code "0" means success'
    return None


@check("ENV-004")
def code_is_a_string(exchange: Exchange, ctx: Context):
    """`code` is present and is a JSON string."""
    envelope = envelope_of(exchange)
    if envelope is NA:
        return NA
    if "code" not in envelope:
        return "the envelope has no code"
    if not isinstance(envelope["code"], str):
        return f"code is {type(envelope['code']).__name__} {envelope['code']!r}, not a string"
    return None


@check("ENV-005")
def trace_echoed(exchange: Exchange, ctx: Context):
    """`trace` in the response equals the request's trace header."""
    envelope = envelope_of(exchange)
    sent = exchange.request.header("trace")
    if envelope is NA or sent is None:
        return NA
    # HTTP drops a field value's leading and trailing whitespace on the wire (RFC 9110 §5.5): compare what arrived
    if envelope.get("trace") != sent.strip(" \t"):
        return f"sent trace {sent!r}, the response says {envelope.get('trace', '<missing>')!r}"
    return None


@check("ENV-006")
def tm_is_non_negative_integer(exchange: Exchange, ctx: Context):
    """`tm`, when present, is a non-negative integer (milliseconds)."""
    envelope = envelope_of(exchange)
    if envelope is NA:
        return NA
    if "tm" not in envelope:
        return Vacuous("the answer carries no tm (optional, spec decision D6)")
    tm = envelope["tm"]
    if not is_int(tm) or tm < 0:
        return f"tm={tm!r} is not a non-negative integer"
    return None


@check("ENV-007")
def text_fields_are_strings(exchange: Exchange, ctx: Context):
    """`msg`, `bizCode`, `msgParams` are strings or null when present."""
    envelope = envelope_of(exchange)
    if envelope is NA:
        return NA
    if not any(name in envelope for name in ("msg", "bizCode", "msgParams")):
        return Vacuous("the answer carries none of msg, bizCode, msgParams (optional, spec decision D6)")
    wrong = [
        f"{name}={envelope[name]!r}"
        for name in ("msg", "bizCode", "msgParams")
        if name in envelope and envelope[name] is not None and not isinstance(envelope[name], str)
    ]
    return f"not strings: {', '.join(wrong)}" if wrong else None


@check("ENV-008")
def data_is_object_on_success(exchange: Exchange, ctx: Context):
    """On success `data` is a JSON object."""
    envelope = envelope_of(exchange)
    if envelope is NA or envelope.get("ok") is not True:
        return NA
    data = envelope.get("data", "<missing>")
    if not isinstance(data, dict):
        return f"ok=true but data is {data!r}, not an object"
    return None


@check("ENV-009")
def body_matches_response_schema(exchange: Exchange, ctx: Context):
    """Every response body matches the documented response schema."""
    envelope = envelope_of(exchange)
    if envelope is NA or exchange.operation is None:
        return NA
    from conformance.checks import schema

    errors = schema.response_errors(exchange.operation, envelope)
    return "; ".join(errors[:3]) if errors else None


@check("ENV-010")
def status_is_documented(exchange: Exchange, ctx: Context):
    """The status is 200, or a 4xx carrying the envelope (spec decision D5)."""
    if exchange.request.method != "POST" or exchange.response is None:
        return NA
    status = exchange.response.status
    if status == 200:
        return None
    if 400 <= status < 500:
        return None if exchange.envelope is not None else f"HTTP {status} without the envelope"
    if status >= 500:
        return NA  # ROB-001 judges server errors
    return f"HTTP {status} is not a documented status (200, or 4xx with the envelope)"


@check("ENV-011")
def all_envelope_fields_present(exchange: Exchange, ctx: Context):
    """Every envelope carries all nine documented fields."""
    envelope = envelope_of(exchange)
    if envelope is NA:
        return NA
    missing = [name for name in envelope_fields() if name not in envelope]
    return f"missing envelope fields: {', '.join(missing)}" if missing else None


@check("ENV-012")
def errors_use_http_200(exchange: Exchange, ctx: Context):
    """Errors are reported as HTTP 200 with ok=false, not an HTTP error status."""
    if exchange.request.method != "POST" or exchange.response is None:
        return NA
    status = exchange.response.status
    if 400 <= status < 500:
        return f"answered HTTP {status}; the platform convention is HTTP 200 with ok=false"
    envelope = exchange.envelope
    # judged on errors only: a success says nothing about how errors are reported
    return None if status == 200 and envelope is not None and envelope.get("ok") is False else NA


@check("ENV-013")
def tm_within_round_trip(exchange: Exchange, ctx: Context):
    """`tm` does not exceed the measured round-trip time (plus slack)."""
    envelope = envelope_of(exchange)
    if envelope is NA:
        return NA
    if "tm" not in envelope:
        return Vacuous("the answer carries no tm (optional, spec decision D6)")
    if not is_int(envelope.get("tm")) or envelope["tm"] < 0:
        return Inapplicable(f"tm={envelope.get('tm')!r} is not a non-negative integer (ENV-006 judges that)")
    elapsed = exchange.response.elapsed_ms  # type: ignore[union-attr]
    if envelope["tm"] > elapsed + TM_SLACK_MS:
        return f"tm={envelope['tm']} ms but the whole round trip took {elapsed:.0f} ms"
    return None
