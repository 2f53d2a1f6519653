"""One order's conversation as the platform delivers it (reference §2.5, §2.6, §4, §5).

The platform sends an execute and waits for it until the deadline the contract gives
(``x-timeout-ms`` on ``executeAdjustment``, 3 s, to the last byte). An execute answered
``"0"`` within the deadline is placed. Anything else (late, no answer, an error, a
refusal, an answer it cannot read) and the platform cuts the order off and sends a cancel;
it retries the cancel, with the SAME ``requestUniqueNo`` and with backoff, until a
definitive answer (``"0"``, ``US_0000001``, ``US_0000002``) or until its retry budget is
spent, when the order is left unsettled.

This is modelled once, here, as a small explicit state machine with pure transitions:

    NEW --execute sent--> EXECUTING --"0" in time--> PLACED
                                    --otherwise----> CUT_OFF
    NEW | PLACED | CUT_OFF --cancel sent--> CANCELLING
    CANCELLING --definitive answer--> CANCELLED
    CANCELLING --unclear answer-----> CANCELLING (retried after a backoff)
    CANCELLING --budget spent-------> UNSETTLED

``NEW --cancel sent-->`` is a cancel sent for an execute whose fate the caller does not
know (the suite's compensation, a cancel before its execute); ``PLACED --cancel sent-->``
the reversal of a placed order.

Three entry points, all through an injected ``send`` and ``clock`` (so the simulator, the suite's
compensation and the unit tests share one model):

- :func:`deliver_order`: the whole conversation as the platform runs it (execute, deadline, cancel);
- :func:`settle_order`: settle an execute ALREADY SENT whose fate is unknown (the suite's compensation
  and ``conformance settle``): it never sends the execute, only its cancel, retried until definitive;
- :func:`reverse_order`: the cancel part alone, for an order the caller knows is placed or unknown.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from conformance import contract
from conformance.exchange import Exchange

EXECUTE = "executeAdjustment"
CANCEL = "cancelAdjustment"
REVERSED = "0"
RECEIVED_NOT_APPLIED = "US_0000001"
NEVER_RECEIVED = "US_0000002"
DEFINITIVE_CANCEL_CODES = frozenset({REVERSED, RECEIVED_NOT_APPLIED, NEVER_RECEIVED})
DEADLINE_KEY = "x-timeout-ms"


class State(StrEnum):
    NEW = "new"
    EXECUTING = "executing"  # the execute is out; the platform waits until the deadline
    PLACED = "placed"  # answered "0" within the deadline: the platform considers the money moved
    CUT_OFF = "cut_off"  # anything else: the platform cancels the order
    CANCELLING = "cancelling"  # a cancel is out, or is to be retried
    CANCELLED = "cancelled"  # the cancel got a definitive answer
    UNSETTLED = "unsettled"  # the retry budget is spent without a definitive answer


class Event(StrEnum):
    EXECUTE_SENT = "execute_sent"
    EXECUTE_PLACED = "execute_placed"
    EXECUTE_CUT_OFF = "execute_cut_off"
    CANCEL_SENT = "cancel_sent"
    CANCEL_DEFINITIVE = "cancel_definitive"
    CANCEL_UNCLEAR = "cancel_unclear"
    BUDGET_SPENT = "budget_spent"


TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.NEW, Event.EXECUTE_SENT): State.EXECUTING,
    (State.EXECUTING, Event.EXECUTE_PLACED): State.PLACED,
    (State.EXECUTING, Event.EXECUTE_CUT_OFF): State.CUT_OFF,
    (State.NEW, Event.CANCEL_SENT): State.CANCELLING,
    (State.PLACED, Event.CANCEL_SENT): State.CANCELLING,
    (State.CUT_OFF, Event.CANCEL_SENT): State.CANCELLING,
    (State.CANCELLING, Event.CANCEL_DEFINITIVE): State.CANCELLED,
    (State.CANCELLING, Event.CANCEL_UNCLEAR): State.CANCELLING,
    (State.CANCELLING, Event.BUDGET_SPENT): State.UNSETTLED,
}


class InvalidTransition(ValueError):
    """An event the state machine does not allow in that state: a defect of the caller."""


def step(state: State, event: Event) -> State:
    """The state after ``event`` (pure)."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(f"{event.value} is not allowed in state {state.value}") from None


@dataclass(frozen=True)
class CancelPolicy:
    """How the platform retries a cancel: ``retries`` re-sends after the first, spaced by
    ``backoff_initial_s * backoff_factor**n`` capped at ``backoff_max_s``, all within ``budget_s``
    counted from the first cancel sent."""

    retries: int = 5
    backoff_initial_s: float = 0.2
    backoff_factor: float = 2.0
    backoff_max_s: float = 5.0
    budget_s: float = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        if self.backoff_initial_s < 0 or self.backoff_max_s < 0 or self.budget_s < 0:
            raise ValueError("backoff and budget must be >= 0 s")
        if self.backoff_factor < 1:
            raise ValueError("backoff_factor must be >= 1")

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1-based)."""
        if retry < 1:
            raise ValueError("retries are numbered from 1")
        return min(self.backoff_initial_s * self.backoff_factor ** (retry - 1), self.backoff_max_s)

    def delays(self) -> Iterator[float]:
        """The waits before each retry, in order (ignoring the budget)."""
        return (self.backoff(n) for n in range(1, self.retries + 1))

    @property
    def longest_wait_s(self) -> float:
        """The time spent waiting between cancels when every retry is needed (bounded by the budget)."""
        return min(sum(self.delays()), self.budget_s)


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()

Send = Callable[[str, Any], Exchange]


def execute_deadline_s(source: contract.Contract | None = None) -> float:
    """The execute deadline the contract gives (``x-timeout-ms`` on executeAdjustment), in seconds."""
    operation = (source or contract.load()).operations.get(EXECUTE)
    if operation is None:
        raise ValueError(f"the contract has no {EXECUTE} operation")
    value = operation.timeout_ms
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"the contract gives no positive {DEADLINE_KEY} on {EXECUTE}")
    return value / 1000


def classify_execute(exchange: Exchange, deadline_s: float) -> tuple[Event, str]:
    """What the platform makes of an execute's exchange: placed, or cut off (and why)."""
    response = exchange.response
    if response is None:
        return Event.EXECUTE_CUT_OFF, f"no answer ({exchange.error or 'the connection failed'})"
    if response.elapsed_ms > deadline_s * 1000:
        return Event.EXECUTE_CUT_OFF, f"answered after {response.elapsed_ms:.0f} ms (deadline {deadline_s * 1000:g} ms)"
    if not 200 <= response.status < 300:
        return Event.EXECUTE_CUT_OFF, f"HTTP {response.status}"
    envelope = exchange.envelope
    if envelope is None:
        return Event.EXECUTE_CUT_OFF, "an answer that is not a JSON object"
    if exchange.succeeded:
        return Event.EXECUTE_PLACED, "answered \"0\" within the deadline"
    if envelope.get("ok") is False:
        return Event.EXECUTE_CUT_OFF, f"refused (code {envelope.get('code')!r})"
    return Event.EXECUTE_CUT_OFF, f"an unclear answer (ok {envelope.get('ok')!r}, code {envelope.get('code')!r})"


def definitive_cancel_code(exchange: Exchange) -> str | None:
    """The cancel's definitive code ("0", US_0000001, US_0000002), or None when it must be retried.

    Definitive: an answer below HTTP 500 with the envelope and one of the three codes; "0" only
    with ok true (an ok false "0" contradicts itself). No answer, a 5xx, an answer that is not
    the envelope, any other code: not a correct response, so the platform retries (§2.6).
    """
    response = exchange.response
    envelope = exchange.envelope
    if response is None or response.status >= 500 or envelope is None:
        return None
    code = envelope.get("code")
    if code not in DEFINITIVE_CANCEL_CODES:
        return None
    if code == REVERSED and envelope.get("ok") is not True:
        return None
    return code


def classify_cancel(exchange: Exchange) -> Event:
    return Event.CANCEL_UNCLEAR if definitive_cancel_code(exchange) is None else Event.CANCEL_DEFINITIVE


@dataclass(frozen=True)
class SettleResult:
    """How one order's conversation ended, with every exchange of it in the order sent."""

    status: State  # PLACED, CANCELLED or UNSETTLED
    exchanges: tuple[Exchange, ...]
    states: tuple[State, ...]  # the state after every event, NEW first (one CANCELLING per unclear cancel)
    cut_off: str | None = None  # why the platform cut the execute off, when it did
    cancel_code: str | None = None  # the definitive cancel answer, when there was one

    @property
    def placed(self) -> bool:
        """The platform considers the execute's money moved."""
        return self.status is State.PLACED

    @property
    def settled(self) -> bool:
        return self.status in (State.PLACED, State.CANCELLED)

    @property
    def execute(self) -> Exchange | None:
        return next((e for e in self.exchanges if e.operation == EXECUTE), None)

    @property
    def cancels(self) -> tuple[Exchange, ...]:
        return tuple(e for e in self.exchanges if e.operation == CANCEL)


def deliver_order(
    execute_body: Any,
    cancel_body: Any,
    send: Send,
    policy: CancelPolicy | None = None,
    clock: Clock = SYSTEM_CLOCK,
    *,
    deadline_s: float | None = None,
) -> SettleResult:
    """Run one order as the platform does: the execute, then, unless it was placed, the cancel.

    ``send(operation_id, body)`` sends one call and returns its Exchange (``response is None``:
    no answer); for the execute it should stop waiting at the deadline. ``cancel_body`` is sent
    unchanged on every retry (the same requestUniqueNo).
    """
    deadline = execute_deadline_s() if deadline_s is None else deadline_s
    state = step(State.NEW, Event.EXECUTE_SENT)
    states = [State.NEW, state]
    execute = send(EXECUTE, execute_body)
    event, reason = classify_execute(execute, deadline)
    state = step(state, event)
    states.append(state)
    if state is State.PLACED:
        return SettleResult(State.PLACED, (execute,), tuple(states))
    return _cancel(state, states, [execute], cancel_body, send, policy or CancelPolicy(), clock, cut_off=reason)


def settle_order(
    execute_body: Any,
    cancel_body: Any,
    send: Send,
    policy: CancelPolicy | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> SettleResult:
    """Settle an execute already sent (its fate unknown): its cancel, retried until definitive or budget spent.

    Never sends the execute. ``execute_body`` is the execute being settled (the caller's record of what
    was sent; ``cancel_body`` names it by ``reverseRequestUniqueNo``). CANCELLED: the wallet gave a
    definitive answer ("0" reversed it, US_0000001/US_0000002 nothing was applied); UNSETTLED: it did not.
    """
    del execute_body  # what is settled is named by the cancel; kept in the signature the callers share
    return reverse_order(cancel_body, send, policy, clock)


def reverse_order(
    cancel_body: Any,
    send: Send,
    policy: CancelPolicy | None = None,
    clock: Clock = SYSTEM_CLOCK,
    *,
    placed: bool = False,
) -> SettleResult:
    """Only the cancel part: cancel until a definitive answer or the budget is spent.

    For an execute already sent whose fate is unknown (``placed=False``: the suite's compensation,
    a cancel before its execute) or a placed one being reversed (``placed=True``).
    """
    start = State.PLACED if placed else State.NEW
    return _cancel(start, [start], [], cancel_body, send, policy or CancelPolicy(), clock, cut_off=None)


def _cancel(
    state: State,
    states: list[State],
    exchanges: list[Exchange],
    cancel_body: Any,
    send: Send,
    policy: CancelPolicy,
    clock: Clock,
    *,
    cut_off: str | None,
) -> SettleResult:
    started = clock.monotonic()
    retry = 0
    state = step(state, Event.CANCEL_SENT)
    states.append(state)
    while True:
        exchange = send(CANCEL, cancel_body)
        exchanges.append(exchange)
        code = definitive_cancel_code(exchange)
        if code is not None:
            state = step(state, Event.CANCEL_DEFINITIVE)
            states.append(state)
            return SettleResult(state, tuple(exchanges), tuple(states), cut_off=cut_off, cancel_code=code)
        state = step(state, Event.CANCEL_UNCLEAR)
        states.append(state)
        retry += 1
        wait = policy.backoff(retry) if retry <= policy.retries else None
        if wait is None or clock.monotonic() - started + wait > policy.budget_s:
            state = step(state, Event.BUDGET_SPENT)
            states.append(state)
            return SettleResult(state, tuple(exchanges), tuple(states), cut_off=cut_off)
        clock.sleep(wait)
