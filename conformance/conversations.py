"""Every cancel judged against the execute it names, whoever sent them (handwritten, generated, compensation).

A :class:`CancelPairs` observes each exchange the journal records. It keeps the first execute seen per
requestUniqueNo and, for each cancel naming one, runs the pair checks of the conversation family:

- CAN-003 and CAN-002 on the *first* cancel of an execute (not the suite's own compensation);
- CAN-008 on every cancel the wallet answered after it had answered the execute, replays of a cancel
  first sent before that excepted (a replay is judged by the idempotence rules alone).

The money ledger only keeps the money story; it judges nothing.
"""

from __future__ import annotations

import threading

from conformance.checks import Status, conversation, judge_conversation
from conformance.exchange import Exchange


class CancelPairs:
    def __init__(self, journal) -> None:
        self.journal = journal
        self._executes: dict[str, Exchange] = {}  # first answered execute per requestUniqueNo
        self._cancel_numbers: dict[str, float] = {}  # cancel requestUniqueNo -> when it was first sent
        self._cancelled: set[str] = set()  # executes that have had a (non-compensation) first cancel
        self._lock = threading.Lock()

    def observe(self, exchange: Exchange) -> None:
        body = exchange.request.json
        if exchange.request.method != "POST" or not isinstance(body, dict):
            return
        if exchange.operation == "executeAdjustment":
            number = body.get("requestUniqueNo")
            if isinstance(number, str) and number and exchange.response is not None:
                with self._lock:
                    self._executes.setdefault(number, exchange)
            return
        if exchange.operation != "cancelAdjustment" or not isinstance(body.get("reverseRequestUniqueNo"), str):
            return
        reverse = body["reverseRequestUniqueNo"]
        own = body.get("requestUniqueNo")
        with self._lock:
            execute = self._executes.get(reverse)
            first_sent = self._cancel_numbers.setdefault(own, exchange.started_at) if isinstance(own, str) else None
            first_cancel = reverse not in self._cancelled and not exchange.origin.startswith("compensation")
            if first_cancel:
                self._cancelled.add(reverse)
        if execute is None:
            return
        checks = []
        if first_cancel:
            checks += [conversation.first_cancel_of_applied_execute_succeeds,
                       conversation.cancel_of_refused_execute_answers_us0000001]
        if first_sent is None or first_sent >= execute.started_at:
            checks.append(conversation.received_execute_never_answered_never_received)
        for check in checks:
            outcome = judge_conversation(check, self.journal.ctx, execute=execute, cancel=exchange)
            if outcome.status is not Status.NOT_APPLICABLE:  # pairs a rule does not speak of are not recorded
                self.journal.add(outcome.with_origin(exchange.origin))  # a test's context overrides it
