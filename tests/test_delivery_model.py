"""The delivery state machine (conformance.delivery): every transition, instantly (fake clock, fake send)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest

from conformance import contract, delivery
from conformance.delivery import (
    CANCEL,
    EXECUTE,
    CancelPolicy,
    Event,
    InvalidTransition,
    State,
    classify_cancel,
    classify_execute,
    definitive_cancel_code,
    deliver_order,
    reverse_order,
    settle_order,
    step,
)
from conformance.exchange import Exchange, Request, Response

DEADLINE = 3.0
EXECUTE_BODY = {"requestUniqueNo": "E-1", "amount": "10.00", "operationType": "OPEN_POSITION"}
CANCEL_BODY = {"requestUniqueNo": "C-1", "reverseRequestUniqueNo": "E-1", "amount": "10.00"}


def exchange(operation, body=None, *, status=200, envelope=None, raw=None, elapsed_ms=5.0, no_answer=False):
    request = Request("POST", f"http://127.0.0.1/{operation}", (), json.dumps(body or {}).encode())
    if no_answer:
        return Exchange(request=request, response=None, operation=operation, origin="test", error="timed out")
    payload = raw if raw is not None else json.dumps(envelope).encode()
    response = Response(status=status, headers=(("Content-Type", "application/json"),), body=payload,
                        elapsed_ms=elapsed_ms)
    return Exchange(request=request, response=response, operation=operation, origin="test")


def ok(code="0"):
    return {"ok": True, "code": code, "data": {}}


def refused(code):
    return {"ok": False, "code": code, "data": None}


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedSend:
    """Answers each operation from its own script, in order; records every body sent."""

    def __init__(self, clock=None, *, execute=(), cancel=(), cancel_cost_s=0.0):
        self.scripts = {EXECUTE: list(execute), CANCEL: list(cancel)}
        self.sent: list[tuple[str, dict]] = []
        self.clock = clock
        self.cancel_cost_s = cancel_cost_s

    def __call__(self, operation, body):
        self.sent.append((operation, copy.deepcopy(body)))
        if operation == CANCEL and self.clock is not None:
            self.clock.now += self.cancel_cost_s
        answer = self.scripts[operation].pop(0)
        return exchange(operation, body, **answer)


# ------------------------------------------------------------------ the transition table


@pytest.mark.parametrize(
    ("state", "event", "after"),
    [
        (State.NEW, Event.EXECUTE_SENT, State.EXECUTING),
        (State.EXECUTING, Event.EXECUTE_PLACED, State.PLACED),
        (State.EXECUTING, Event.EXECUTE_CUT_OFF, State.CUT_OFF),
        (State.NEW, Event.CANCEL_SENT, State.CANCELLING),
        (State.PLACED, Event.CANCEL_SENT, State.CANCELLING),
        (State.CUT_OFF, Event.CANCEL_SENT, State.CANCELLING),
        (State.CANCELLING, Event.CANCEL_DEFINITIVE, State.CANCELLED),
        (State.CANCELLING, Event.CANCEL_UNCLEAR, State.CANCELLING),
        (State.CANCELLING, Event.BUDGET_SPENT, State.UNSETTLED),
    ],
)
def test_allowed_transition(state, event, after):
    assert step(state, event) is after


def test_every_other_transition_is_refused():
    allowed = set(delivery.TRANSITIONS)
    assert len(allowed) == 9
    for state in State:
        for event in Event:
            if (state, event) in allowed:
                continue
            with pytest.raises(InvalidTransition):
                step(state, event)


@pytest.mark.parametrize("final", [State.PLACED, State.CANCELLED, State.UNSETTLED])
def test_final_states_accept_no_execute(final):
    with pytest.raises(InvalidTransition):
        step(final, Event.EXECUTE_SENT)


# ------------------------------------------------------------------ classifying an execute


def test_execute_answered_zero_within_deadline_is_placed():
    event, _ = classify_execute(exchange(EXECUTE, envelope=ok(), elapsed_ms=2999.0), DEADLINE)
    assert event is Event.EXECUTE_PLACED


def test_execute_answered_exactly_at_deadline_is_placed():
    assert classify_execute(exchange(EXECUTE, envelope=ok(), elapsed_ms=3000.0), DEADLINE)[0] is Event.EXECUTE_PLACED


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ({"envelope": ok(), "elapsed_ms": 3000.5}, "after"),
        ({"no_answer": True}, "no answer"),
        ({"status": 500, "envelope": ok()}, "HTTP 500"),
        ({"status": 400, "envelope": refused("E1")}, "HTTP 400"),
        ({"envelope": refused("E1")}, "refused"),
        ({"raw": b"<html>ok</html>"}, "not a JSON object"),
        ({"raw": b"[1]"}, "not a JSON object"),
        ({"envelope": {"ok": True, "code": "1"}}, "unclear"),
        ({"envelope": {"ok": True}}, "unclear"),
        ({"envelope": {"ok": "true", "code": "0"}}, "unclear"),
        ({"envelope": {"ok": True, "code": 0}}, "unclear"),
    ],
)
def test_execute_otherwise_is_cut_off(answer, why):
    event, reason = classify_execute(exchange(EXECUTE, **answer), DEADLINE)
    assert event is Event.EXECUTE_CUT_OFF
    assert why in reason


# ------------------------------------------------------------------ classifying a cancel


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ({"envelope": ok()}, "0"),
        ({"envelope": refused("US_0000001")}, "US_0000001"),
        ({"envelope": refused("US_0000002")}, "US_0000002"),
        ({"status": 404, "envelope": refused("US_0000002")}, "US_0000002"),
        ({"envelope": {"ok": True, "code": "US_0000001"}}, "US_0000001"),
    ],
)
def test_definitive_cancel_answers(answer, code):
    result = exchange(CANCEL, **answer)
    assert definitive_cancel_code(result) == code
    assert classify_cancel(result) is Event.CANCEL_DEFINITIVE


@pytest.mark.parametrize(
    "answer",
    [
        {"no_answer": True},
        {"status": 500, "envelope": refused("US_0000002")},
        {"status": 503, "envelope": ok()},
        {"raw": b"not json"},
        {"envelope": refused("E_TIMEOUT")},
        {"envelope": {"ok": False, "code": "0"}},
        {"envelope": {"ok": True}},
    ],
)
def test_unclear_cancel_answers_are_retried(answer):
    result = exchange(CANCEL, **answer)
    assert definitive_cancel_code(result) is None
    assert classify_cancel(result) is Event.CANCEL_UNCLEAR


# ------------------------------------------------------------------ the whole conversation


def test_placed_execute_sends_no_cancel():
    clock = FakeClock()
    send = ScriptedSend(execute=[{"envelope": ok()}])
    result = deliver_order(EXECUTE_BODY, CANCEL_BODY, send, CancelPolicy(), clock, deadline_s=DEADLINE)
    assert result.status is State.PLACED and result.placed and result.settled
    assert [op for op, _ in send.sent] == [EXECUTE]
    assert result.states == (State.NEW, State.EXECUTING, State.PLACED)
    assert result.cancels == () and result.execute is result.exchanges[0]
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "execute_answer",
    [{"envelope": ok(), "elapsed_ms": 3500.0}, {"no_answer": True}, {"envelope": refused("E1")}, {"raw": b""}],
)
def test_cut_off_execute_is_cancelled(execute_answer):
    clock = FakeClock()
    send = ScriptedSend(execute=[execute_answer], cancel=[{"envelope": ok()}])
    result = deliver_order(EXECUTE_BODY, CANCEL_BODY, send, CancelPolicy(), clock, deadline_s=DEADLINE)
    assert result.status is State.CANCELLED and not result.placed and result.settled
    assert result.cancel_code == "0" and result.cut_off
    assert [op for op, _ in send.sent] == [EXECUTE, CANCEL]
    assert result.states == (State.NEW, State.EXECUTING, State.CUT_OFF, State.CANCELLING, State.CANCELLED)


def test_lost_cancel_answer_is_retried_with_the_same_request_unique_no():
    clock = FakeClock()
    send = ScriptedSend(
        execute=[{"no_answer": True}],
        cancel=[{"no_answer": True}, {"status": 502, "raw": b"bad gateway"}, {"envelope": refused("US_0000001")}],
    )
    result = deliver_order(EXECUTE_BODY, CANCEL_BODY, send, CancelPolicy(), clock, deadline_s=DEADLINE)
    assert result.status is State.CANCELLED and result.cancel_code == "US_0000001"
    cancels = [body for op, body in send.sent if op == CANCEL]
    assert len(cancels) == 3 and all(body == CANCEL_BODY for body in cancels)
    assert {body["requestUniqueNo"] for body in cancels} == {"C-1"}
    assert clock.sleeps == [0.2, 0.4]
    assert len(result.cancels) == 3
    assert result.states[-4:] == (State.CANCELLING, State.CANCELLING, State.CANCELLING, State.CANCELLED)


def test_retries_spent_leave_the_order_unsettled():
    clock = FakeClock()
    policy = CancelPolicy(retries=5, backoff_initial_s=0.2, backoff_factor=2.0, backoff_max_s=1.0, budget_s=100.0)
    send = ScriptedSend(execute=[{"no_answer": True}], cancel=[{"no_answer": True}] * 6)
    result = deliver_order(EXECUTE_BODY, CANCEL_BODY, send, policy, clock, deadline_s=DEADLINE)
    assert result.status is State.UNSETTLED and not result.settled and result.cancel_code is None
    assert len(result.cancels) == 6  # the first and five retries
    assert clock.sleeps == [0.2, 0.4, 0.8, 1.0, 1.0]  # capped at backoff_max_s
    assert result.states[-1] is State.UNSETTLED


def test_budget_spent_before_the_retries_leaves_the_order_unsettled():
    clock = FakeClock()
    policy = CancelPolicy(retries=10, backoff_initial_s=1.0, backoff_factor=1.0, backoff_max_s=1.0, budget_s=2.5)
    send = ScriptedSend(clock, execute=[{"no_answer": True}], cancel=[{"no_answer": True}] * 11, cancel_cost_s=0.2)
    result = deliver_order(EXECUTE_BODY, CANCEL_BODY, send, policy, clock, deadline_s=DEADLINE)
    assert result.status is State.UNSETTLED
    # cancel (0.2) wait 1 -> 1.2, cancel -> 1.4, wait 1 -> 2.4, cancel -> 2.6: next wait would pass 2.5
    assert clock.sleeps == [1.0, 1.0]
    assert len(result.cancels) == 3


def test_no_retries_means_one_cancel():
    send = ScriptedSend(execute=[{"no_answer": True}], cancel=[{"no_answer": True}])
    result = deliver_order(EXECUTE_BODY, CANCEL_BODY, send, CancelPolicy(retries=0), FakeClock(), deadline_s=DEADLINE)
    assert result.status is State.UNSETTLED and len(result.cancels) == 1


def test_deadline_defaults_to_the_contract():
    late = {"envelope": ok(), "elapsed_ms": delivery.execute_deadline_s() * 1000 + 1}
    send = ScriptedSend(execute=[late], cancel=[{"envelope": refused("US_0000001")}])
    assert deliver_order(EXECUTE_BODY, CANCEL_BODY, send, CancelPolicy(), FakeClock()).status is State.CANCELLED
    in_time = {"envelope": ok(), "elapsed_ms": delivery.execute_deadline_s() * 1000}
    send = ScriptedSend(execute=[in_time])
    assert deliver_order(EXECUTE_BODY, CANCEL_BODY, send, CancelPolicy(), FakeClock()).status is State.PLACED


def test_reverse_order_of_an_unknown_execute():
    clock = FakeClock()
    send = ScriptedSend(cancel=[{"no_answer": True}, {"envelope": refused("US_0000002")}])
    result = reverse_order(CANCEL_BODY, send, CancelPolicy(), clock)
    assert result.status is State.CANCELLED and result.cancel_code == "US_0000002"
    assert result.states == (State.NEW, State.CANCELLING, State.CANCELLING, State.CANCELLED)
    assert result.execute is None and clock.sleeps == [0.2]


def test_reverse_order_of_a_placed_execute():
    send = ScriptedSend(cancel=[{"envelope": ok()}])
    result = reverse_order(CANCEL_BODY, send, CancelPolicy(), FakeClock(), placed=True)
    assert result.states == (State.PLACED, State.CANCELLING, State.CANCELLED)
    assert not result.placed  # reversed: the platform no longer considers the money moved


# ------------------------------------------------------------------ the policy and the contract


def test_policy_backoff_schedule():
    policy = CancelPolicy()
    assert list(policy.delays()) == [0.2, 0.4, 0.8, 1.6, 3.2]
    assert policy.longest_wait_s == pytest.approx(6.2)
    assert CancelPolicy(budget_s=1.0).longest_wait_s == 1.0
    with pytest.raises(ValueError):
        policy.backoff(0)


@pytest.mark.parametrize(
    "kwargs", [{"retries": -1}, {"backoff_initial_s": -0.1}, {"backoff_factor": 0.5}, {"budget_s": -1}]
)
def test_policy_refuses_nonsense(kwargs):
    with pytest.raises(ValueError):
        CancelPolicy(**kwargs)


def _contract_with_deadline(value):
    loaded = contract.load()
    operations = dict(loaded.operations)
    operations[EXECUTE] = replace(operations[EXECUTE], timeout_ms=value)
    return replace(loaded, operations=operations)


def test_execute_deadline_is_read_from_the_contract():
    assert delivery.execute_deadline_s() == 3.0
    assert delivery.execute_deadline_s(_contract_with_deadline(1500)) == 1.5


@pytest.mark.parametrize("value", [None, 0, -5, "3000", True])
def test_execute_deadline_missing_or_nonsense_is_an_error(value):
    with pytest.raises(ValueError):
        delivery.execute_deadline_s(_contract_with_deadline(value))


def test_settle_order_never_sends_the_execute():
    clock = FakeClock()
    send = ScriptedSend(cancel=[{"no_answer": True}, {"envelope": ok()}])
    result = settle_order(EXECUTE_BODY, CANCEL_BODY, send, CancelPolicy(), clock)
    assert [op for op, _ in send.sent] == [CANCEL, CANCEL]
    assert result.status is State.CANCELLED and result.cancel_code == "0" and result.execute is None
    assert clock.sleeps == [0.2]


def test_settle_order_leaves_unsettled_when_the_budget_is_spent():
    send = ScriptedSend(cancel=[{"status": 503, "raw": b"busy"}] * 3)
    result = settle_order(EXECUTE_BODY, CANCEL_BODY, send, CancelPolicy(retries=2), FakeClock())
    assert result.status is State.UNSETTLED and len(result.cancels) == 3
    assert all(op == CANCEL for op, _ in send.sent)
