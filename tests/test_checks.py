"""Every check, shown to hold on a good exchange and to fail on a bad one (pure functions, no HTTP)."""

from __future__ import annotations

import json
import time

import pytest

from conformance import checks
from conformance.checks import NA, NEVER_SENT_PREFIX, UNKNOWN_ACCOUNT_PREFIX, Context, judge_conversation
from conformance.exchange import Exchange, Request, Response

#: Now, in epoch milliseconds: a correct wallet may refuse stale times (D17), so good cases carry current ones.
NOW = int(time.time() * 1000)
ACCOUNT = {"thirdServerCode": "W-1", "userName": "86000001", "currency": "USD"}
CTX = Context(accounts=(("W-1", "86000001", "USD"),), account_digits=((("W-1", "86000001", "USD"), 2),))
PATHS = {
    "getUserAmount": "/get-user-amount",
    "executeAdjustment": "/external-system-credit-limit-adjustment",
    "cancelAdjustment": "/cancel-external-system-credit-limit-adjustment",
}
HEADERS = (("trace", "t-1"), ("companyId", "439"), ("timestamp", str(NOW)), ("Content-Type", "application/json"))
EXECUTE = {
    **ACCOUNT,
    "bizType": 1,
    "operationType": "OPEN_POSITION",
    "amount": "5.00",
    "amountDigits": 2,
    "orderId": 1,
    "requestUniqueNo": "E-1",
    "requestTime": NOW,
    "ip": "203.0.113.7",
}
CANCEL = {
    **ACCOUNT,
    "bizType": 1,
    "amount": "5.00",
    "amountDigits": 2,
    "requestUniqueNo": "C-1",
    "reverseRequestUniqueNo": "E-1",
    "requestTime": NOW,
    "ip": "203.0.113.7",
    "cancelRemark": "x",
}
BODIES = {"getUserAmount": ACCOUNT, "executeAdjustment": EXECUTE, "cancelAdjustment": CANCEL}


def envelope(code="0", ok=None, data=None, **extra):
    ok = (code == "0") if ok is None else ok
    return {
        "code": code,
        "msg": "m",
        "bizCode": "",
        "tm": 1,
        "trace": "t-1",
        "msgParams": None,
        "data": ({} if ok else None) if data is None else data,
        "ok": ok,
        "fail": not ok,
        **extra,
    }


BALANCE = envelope(data={"userName": "86000001", "currency": "USD", "amount": "100.00", "amountDigits": 2})


def ex(
    operation="getUserAmount",
    *,
    body=None,
    headers=HEADERS,
    drop=(),
    set_headers=(),
    method="POST",
    raw_body=None,
    status=200,
    reply=None,
    content_type="application/json",
    raw_reply=None,
    elapsed=5.0,
    negative=False,
    error=None,
    waited_ms=None,
    **changes,
):
    body = dict(BODIES[operation] if body is None else body)
    now = int(time.time() * 1000)  # the module's NOW ages during a long session; a good case stays current
    if body.get("requestTime") == NOW:
        body["requestTime"] = now
    headers = tuple((k, str(now) if k == "timestamp" and v == str(NOW) else v) for k, v in headers)
    for name, value in changes.items():
        if value is DROP:
            body.pop(name, None)
        else:
            body[name] = value
    sent = [(k, v) for k, v in headers if k not in drop]
    for name, value in set_headers:
        sent = [(k, v) for k, v in sent if k.lower() != name.lower()] + [(name, value)]
    request = Request(
        method,
        "http://w/api" + PATHS[operation],
        tuple(sent),
        raw_body if raw_body is not None else json.dumps(body).encode(),
    )
    if error:
        return Exchange(request, None, operation, "test", negative=negative, error=error, waited_ms=waited_ms)
    reply = envelope() if reply is None else reply
    payload = raw_reply if raw_reply is not None else json.dumps(reply).encode()
    response = Response(status, (("Content-Type", content_type),), payload, elapsed)
    return Exchange(request, response, operation, "test", negative=negative)


DROP = object()
REJECTED = envelope("INVALID", ok=False)
UNKNOWN = {**ACCOUNT, "thirdServerCode": UNKNOWN_ACCOUNT_PREFIX + "1"}

UNHELD = {**ACCOUNT, "currency": "CHF"}
# check name -> (an exchange where the rule holds, an exchange that breaks it)
EXCHANGE_CASES = {
    "money.answers_for_the_account_it_names": (ex(body=UNHELD, reply=REJECTED), ex(body=UNHELD, reply=BALANCE)),
    "envelope.json_object_with_json_content_type": (ex(), ex(content_type="text/plain")),
    "envelope.ok_is_not_fail": (ex(), ex(reply={**envelope(), "fail": True})),
    "envelope.ok_exactly_when_code_zero": (ex(), ex(reply=envelope("1", ok=True))),
    "envelope.code_is_a_string": (ex(), ex(reply={**envelope(), "code": 0})),
    "envelope.trace_echoed": (ex(), ex(reply={**envelope(), "trace": "other"})),
    "envelope.tm_is_non_negative_integer": (ex(), ex(reply={**envelope(), "tm": -1})),
    "envelope.text_fields_are_strings": (ex(), ex(reply={**envelope(), "msg": 5})),
    "envelope.data_is_object_on_success": (ex(), ex(reply={**envelope(), "data": "x"})),
    "envelope.body_matches_response_schema": (ex(reply=BALANCE), ex(reply={**BALANCE, "data": {"amount": 5}})),
    "envelope.status_is_documented": (ex(), ex(status=201)),
    "envelope.all_envelope_fields_present": (ex(), ex(reply={k: v for k, v in envelope().items() if k != "bizCode"})),
    "envelope.errors_use_http_200": (ex(reply=REJECTED), ex(status=400, reply=REJECTED)),
    "envelope.tm_within_round_trip": (ex(), ex(reply={**envelope(), "tm": 5000}, elapsed=10)),
    "headers.missing_trace_rejected": (ex(drop=("trace",), reply=REJECTED), ex(drop=("trace",))),
    "headers.missing_company_id_rejected": (ex(drop=("companyId",), reply=REJECTED), ex(drop=("companyId",))),
    "headers.missing_timestamp_rejected": (ex(drop=("timestamp",), reply=REJECTED), ex(drop=("timestamp",))),
    "headers.header_names_case_insensitive": (
        ex(set_headers=(("Trace", "t-1"),), reply=BALANCE),
        ex(set_headers=(("Trace", "t-1"),), reply=REJECTED),
    ),
    "headers.non_integer_company_id_rejected": (
        ex(set_headers=(("companyId", "x"),), reply=REJECTED),
        ex(set_headers=(("companyId", "x"),)),
    ),
    "headers.timestamp_not_13_digits_rejected": (
        ex(set_headers=(("timestamp", "1764064800"),), reply=REJECTED),
        ex(set_headers=(("timestamp", "1764064800"),)),
    ),
    "validation.missing_required_field_rejected": (ex(currency=DROP, reply=REJECTED), ex(currency=DROP)),
    "validation.long_user_name_rejected": (
        ex("executeAdjustment", userName="9" * 49, reply=REJECTED),
        ex("executeAdjustment", userName="9" * 49),
    ),
    "validation.over_long_fields_rejected": (
        ex("executeAdjustment", requestUniqueNo="9" * 49, reply=REJECTED),
        ex("executeAdjustment", requestUniqueNo="9" * 49),
    ),
    "validation.unknown_biz_type_rejected": (
        ex("executeAdjustment", bizType=3, reply=REJECTED),
        ex("executeAdjustment", bizType=3),
    ),
    "validation.unknown_operation_type_rejected": (
        ex("executeAdjustment", operationType="X", reply=REJECTED),
        ex("executeAdjustment", operationType="X"),
    ),
    "validation.wrong_sign_rejected": (
        ex("executeAdjustment", amount="-5.00", reply=REJECTED),
        ex("executeAdjustment", amount="-5.00"),
    ),
    "validation.non_decimal_amount_rejected": (
        ex("executeAdjustment", amount="1,000.00", reply=REJECTED),
        ex("executeAdjustment", amount="1e3"),
    ),
    "validation.amount_digits_mismatch_rejected": (
        ex("executeAdjustment", amountDigits=3, reply=REJECTED),
        ex("executeAdjustment", amountDigits=3),
    ),
    "validation.request_time_not_13_digits_rejected": (
        ex("cancelAdjustment", requestTime=1764064800, reply=REJECTED),
        ex("cancelAdjustment", requestTime=1764064800),
    ),
    "validation.schema_invalid_request_rejected": (
        ex("executeAdjustment", orderId="x", reply=REJECTED),
        ex("executeAdjustment", orderId="x"),
    ),
    "validation.non_json_media_type_rejected": (
        ex(set_headers=(("Content-Type", "text/plain"),), reply=REJECTED),
        ex(set_headers=(("Content-Type", "text/plain"),)),
    ),
    "money.four_fields_in_one_style": (
        ex(reply=BALANCE),
        ex(reply=envelope(data={"user_name": "8", "currency": "USD", "amount": "1.00", "amountDigits": 2})),
    ),
    "money.amount_is_plain_decimal": (
        ex(reply=BALANCE),
        ex(reply=envelope(data={**BALANCE["data"], "amount": "1,000.00"})),
    ),
    "money.amount_digits_is_integer": (
        ex(reply=BALANCE),
        ex(reply=envelope(data={**BALANCE["data"], "amountDigits": "2"})),
    ),
    "money.amount_has_amount_digits_decimals": (
        ex(reply=BALANCE),
        ex(reply=envelope(data={**BALANCE["data"], "amount": "100.0"})),
    ),
    "money.user_name_echoed": (ex(reply=BALANCE), ex(reply=envelope(data={**BALANCE["data"], "userName": "other"}))),
    "money.unknown_account_refused": (ex(body=UNKNOWN, reply=REJECTED), ex(body=UNKNOWN, reply=BALANCE)),
    "money.profile_account_balance_succeeds": (ex(reply=BALANCE), ex(reply=REJECTED)),
    "money.currency_is_requested_currency": (
        ex(reply=BALANCE),
        ex(reply=envelope(data={**BALANCE["data"], "currency": "usd"})),
    ),
    "money.currency_is_iso_or_allowed": (
        ex(reply=BALANCE),
        ex(body={**ACCOUNT, "currency": "DOLLAR"}, reply=envelope(data={**BALANCE["data"], "currency": "DOLLAR"})),
    ),
    "money.lower_case_currency_not_matched": (ex(currency="usd", reply=REJECTED), ex(currency="usd", reply=BALANCE)),
    "robustness.never_a_server_error": (ex(), ex(status=500, raw_reply=b"<html>boom</html>", content_type="text/html")),
    "robustness.malformed_json_rejected_with_envelope": (
        ex(raw_body=b"{oops", reply=REJECTED),
        ex(raw_body=b"{oops", status=400, raw_reply=b"bad", content_type="text/plain"),
    ),
    "robustness.undeclared_method_not_allowed": (ex(method="GET", status=405), ex(method="GET", status=200)),
    "robustness.execute_within_deadline": (
        ex("executeAdjustment", elapsed=2900),
        ex("executeAdjustment", elapsed=3100),
    ),
    "robustness.balance_and_cancel_within_deadline": (ex(elapsed=10), ex(elapsed=3500)),
    "conversation.unknown_account_execute_rejected": (
        ex("executeAdjustment", body={**EXECUTE, **UNKNOWN}, reply=REJECTED),
        ex("executeAdjustment", body={**EXECUTE, **UNKNOWN}),
    ),
    "conversation.never_received_answers_us0000002": (
        ex("cancelAdjustment", reverseRequestUniqueNo=NEVER_SENT_PREFIX + "1", reply=envelope("US_0000002")),
        ex("cancelAdjustment", reverseRequestUniqueNo=NEVER_SENT_PREFIX + "1", reply=envelope("0")),
    ),
}


@pytest.mark.parametrize("name", sorted(EXCHANGE_CASES))
def test_exchange_check_holds_and_fails(name):
    item = checks.registry()[name]
    good, bad = EXCHANGE_CASES[name]
    assert item.func(good, CTX) is None, f"{name} should hold"
    message = item.func(bad, CTX)
    assert isinstance(message, str) and message, f"{name} should fail with a message"


def balance(amount: str) -> Exchange:
    return ex(reply=envelope(data={"userName": "86000001", "currency": "USD", "amount": amount, "amountDigits": 2}))


APPLIED = ex("executeAdjustment")
APPLIED_CANCEL = ex("cancelAdjustment")
CONVERSATION_CASES = {
    "conversation.never_received_moves_no_money": (
        dict(before=balance("100.00"), cancel=APPLIED_CANCEL, after=balance("100.00")),
        dict(before=balance("100.00"), cancel=APPLIED_CANCEL, after=balance("105.00")),
    ),
    "conversation.funded_execute_applied": (
        dict(before=balance("100.00"), execute=APPLIED),
        dict(before=balance("100.00"), execute=ex("executeAdjustment", reply=REJECTED)),
    ),
    "conversation.execute_moves_exact_amount": (
        dict(before=balance("100.00"), execute=APPLIED, after=balance("95.00")),
        dict(before=balance("100.00"), execute=APPLIED, after=balance("90.00")),
    ),
    "conversation.replay_moves_no_money": (
        dict(after_first=balance("95.00"), replay=APPLIED, after_replay=balance("95.00")),
        dict(after_first=balance("95.00"), replay=APPLIED, after_replay=balance("90.00")),
    ),
    "conversation.replay_answers_same_code": (
        dict(first=APPLIED, replay=APPLIED),
        dict(first=APPLIED, replay=ex("executeAdjustment", reply=REJECTED)),
    ),
    "conversation.overdraft_rejected": (
        dict(before=balance("1.00"), execute=ex("executeAdjustment", reply=REJECTED), after=balance("1.00")),
        dict(before=balance("1.00"), execute=APPLIED, after=balance("-4.00")),
    ),
    "conversation.rejected_execute_cancel_us0000001": (
        dict(
            before=balance("1.00"),
            execute=ex("executeAdjustment", reply=REJECTED),
            cancel=ex("cancelAdjustment", reply=envelope("US_0000001")),
            after=balance("1.00"),
        ),
        dict(
            before=balance("1.00"),
            execute=ex("executeAdjustment", reply=REJECTED),
            cancel=ex("cancelAdjustment", reply=envelope("US_0000002")),
            after=balance("1.00"),
        ),
    ),
    "conversation.cancel_restores_balance": (
        dict(before_execute=balance("100.00"), execute=APPLIED, cancel=APPLIED_CANCEL, after_cancel=balance("100.00")),
        dict(before_execute=balance("100.00"), execute=APPLIED, cancel=APPLIED_CANCEL, after_cancel=balance("95.00")),
    ),
    "conversation.cancel_replay_no_second_refund": (
        dict(after_cancel=balance("100.00"), replay=APPLIED_CANCEL, after_replay=balance("100.00")),
        dict(after_cancel=balance("100.00"), replay=APPLIED_CANCEL, after_replay=balance("105.00")),
    ),
    "conversation.second_cancel_no_refund": (
        dict(before=balance("100.00"), cancel=APPLIED_CANCEL, after=balance("100.00")),
        dict(before=balance("100.00"), cancel=APPLIED_CANCEL, after=balance("105.00")),
    ),
    "conversation.cancel_replay_same_code": (
        dict(first=APPLIED_CANCEL, replay=APPLIED_CANCEL),
        dict(first=APPLIED_CANCEL, replay=ex("cancelAdjustment", reply=REJECTED)),
    ),
    "conversation.second_cancel_answers_success": (
        dict(first=APPLIED_CANCEL, second=APPLIED_CANCEL),
        dict(first=APPLIED_CANCEL, second=ex("cancelAdjustment", reply=REJECTED)),
    ),
    "conversation.cancel_without_timestamp_processed": (
        dict(
            before=balance("100.00"),
            execute=APPLIED,
            cancel=ex("cancelAdjustment", drop=("timestamp",)),
            after=balance("100.00"),
        ),
        dict(
            before=balance("100.00"),
            execute=APPLIED,
            cancel=ex("cancelAdjustment", drop=("timestamp",)),
            after=balance("95.00"),
        ),
    ),
    "conversation.first_cancel_of_applied_execute_succeeds": (
        dict(execute=APPLIED, cancel=APPLIED_CANCEL),
        dict(execute=APPLIED, cancel=ex("cancelAdjustment", reply=envelope("US_0000002"))),
    ),
    "conversation.cancel_of_refused_execute_answers_us0000001": (
        dict(
            execute=ex("executeAdjustment", reply=REJECTED), cancel=ex("cancelAdjustment", reply=envelope("US_0000001"))
        ),
        dict(
            execute=ex("executeAdjustment", reply=REJECTED), cancel=ex("cancelAdjustment", reply=envelope("US_0000002"))
        ),
    ),
    "conversation.cancel_of_invalid_execute_settles_nothing": (
        dict(
            before=balance("100.00"),
            execute=ex("executeAdjustment", amount="-5.00", reply=REJECTED),
            cancel=ex("cancelAdjustment", reply=envelope("US_0000002")),
            after=balance("100.00"),
        ),
        dict(
            before=balance("100.00"),
            execute=ex("executeAdjustment", amount="-5.00", reply=REJECTED),
            cancel=ex("cancelAdjustment", reply=envelope("0")),
            after=balance("105.00"),
        ),
    ),
    "conversation.received_execute_never_answered_never_received": (
        dict(
            execute=ex("executeAdjustment", reply=REJECTED), cancel=ex("cancelAdjustment", reply=envelope("US_0000001"))
        ),
        dict(
            execute=ex("executeAdjustment", reply=REJECTED), cancel=ex("cancelAdjustment", reply=envelope("US_0000002"))
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(CONVERSATION_CASES))
def test_conversation_check_holds_and_fails(name):
    item = checks.registry()[name]
    good, bad = CONVERSATION_CASES[name]
    assert judge_conversation(item.func, CTX, **good).passed, f"{name} should hold"
    outcome = judge_conversation(item.func, CTX, **bad)
    assert outcome is not None and not outcome.passed and outcome.message


def test_every_check_is_proven_both_ways():
    """Every check is shown to hold and to fail: here, or (the delivery family) in tests/test_simulator.py."""
    from pathlib import Path

    delivery = {name for name in checks.registry() if name.startswith("delivery.")}
    assert set(checks.registry()) == set(EXCHANGE_CASES) | set(CONVERSATION_CASES) | delivery
    simulator_tests = (Path(__file__).parent / "test_simulator.py").read_text()
    for name in delivery:
        function = name.split(".", 1)[1]
        chunks = simulator_tests.split(f"checks.{function},")[1:]
        statuses = {status for chunk in chunks for status in ("PASSED", "VIOLATED", "UNANSWERED")
                    if f"Status.{status}" in chunk.split("\n\n")[0]}
        assert "PASSED" in statuses and statuses & {"VIOLATED", "UNANSWERED"}, f"{name} is not proven both ways"


def test_checks_do_not_apply_outside_their_scope():
    assert checks.registry()["headers.missing_trace_rejected"].func(ex(), CTX) is NA
    assert checks.registry()["money.four_fields_in_one_style"].func(ex(reply=REJECTED), CTX) is NA
    assert checks.registry()["robustness.undeclared_method_not_allowed"].func(ex(), CTX) is NA
    # An over-long currency on a balance query is not a documented limit (the limit is on execute/cancel only).
    outcomes = checks.judge_exchange(ex(currency="X" * 20), CTX)
    assert "VAL-003" not in {o.requirement for o in outcomes}


def test_key_style_setting():
    snake = ex(reply=envelope(data={"user_name": "8", "currency": "USD", "amount": "1.00", "amount_digits": 2}))
    check = checks.registry()["money.four_fields_in_one_style"].func
    assert check(snake, Context(keys="either")) is None
    assert check(snake, Context(keys="snake")) is None
    assert "keys=camel" in check(snake, Context(keys="camel"))
    assert check(ex(reply=BALANCE), Context(keys="snake")) is not None


def test_currency_allow_list_setting():
    usdt = ex(body={**ACCOUNT, "currency": "USDT"}, reply=envelope(data={**BALANCE["data"], "currency": "USDT"}))
    check = checks.registry()["money.currency_is_iso_or_allowed"].func
    assert check(usdt, Context()) is None
    assert check(usdt, Context(currency_allowlist=frozenset())) is not None


def test_timeout_counts_against_the_execute_deadline():
    timed_out = ex("executeAdjustment", error="timed out: no answer within 10 s", waited_ms=10_000)
    assert "deadline" in checks.registry()["robustness.execute_within_deadline"].func(timed_out, CTX)
    impatient = ex("executeAdjustment", error="timed out: no answer within 1.5 s", waited_ms=1500)  # --timeout < 3 s
    assert checks.registry()["robustness.execute_within_deadline"].func(impatient, CTX) is NA


def test_history_checks_leave_mismatched_or_broken_cancels_alone():
    first_cancel = checks.registry()["conversation.first_cancel_of_applied_execute_succeeds"].func
    other_account = ex("cancelAdjustment", thirdServerCode="W-2", reply=REJECTED)
    assert first_cancel(execute=APPLIED, cancel=other_account, ctx=CTX) is NA  # open question §12.12
    no_timestamp = ex("cancelAdjustment", drop=("timestamp",), reply=REJECTED)
    assert first_cancel(execute=APPLIED, cancel=no_timestamp, ctx=CTX) is NA  # HDR-004 judges that one
    other_digits = ex("cancelAdjustment", amountDigits=3, reply=REJECTED)
    assert first_cancel(execute=APPLIED, cancel=other_digits, ctx=CTX) is NA  # a wild amountDigits is refused


def test_no_pass_without_evidence():
    """A check judges only what its rule speaks about: a success says nothing about how errors are reported."""
    assert checks.registry()["envelope.errors_use_http_200"].func(ex(), CTX) is NA
    second = checks.registry()["conversation.second_cancel_no_refund"].func
    failed_first = ex("cancelAdjustment", reply=REJECTED)
    # the first cancel did not reverse it, so this one may give the money back
    assert (
        second(first=failed_first, before=balance("95.00"), cancel=APPLIED_CANCEL, after=balance("100.00"), ctx=CTX)
        is NA
    )


def test_trace_compared_as_http_delivers_it():
    check = checks.registry()["envelope.trace_echoed"].func
    assert check(ex(set_headers=(("trace", "t-1 "),)), CTX) is None  # HTTP drops trailing whitespace
    assert check(ex(set_headers=(("trace", "t-2"),)), CTX) is not None


def test_schema_violation_judged_on_any_json_body():
    check = checks.registry()["validation.schema_invalid_request_rejected"].func
    assert check(ex("executeAdjustment", raw_body=b"[1, 2]"), CTX) is not None  # an array accepted
    assert check(ex("executeAdjustment", raw_body=b"[1, 2]", reply=REJECTED), CTX) is None
    assert check(ex("executeAdjustment", raw_body=b"not json"), CTX) is NA  # ROB-002's
