"""Replays of failing probes: a MUST failure is final only when it reproduces.

After a test whose attempt 0 recorded a MUST violation (or a MUST probe that got no answer), the
:class:`ReplayPlugin` replays it ``k`` times (attempt 1..k), each inside the journal's judging context for
that attempt, so every outcome of a replay carries its attempt number and lands in ``outcomes.jsonl`` (the
evidence) like any other. :func:`conformance.verdicts.aggregate` then reports a requirement ``flaky`` when
every failing origin passed in some replay, and ``failed`` otherwise.

- A handwritten test is replayed by calling the test function again (pytest's call phase, with the same
  fixtures). The suite's tests build a fresh ``requestUniqueNo`` for every execute and cancel, and every
  call goes through the recording client, so a replayed money probe never re-sends an id and every
  adjustment it makes is in the money journal and settled at the end of the run.
- A generated slice (Schemathesis) is not re-run whole: its failing examples are. Each exchange that an
  outcome against a MUST requirement names is sent again as recorded (same method, URL, headers, body),
  and judged by the same exchange checks. A replayed execute gets a fresh ``requestUniqueNo`` (so it is a
  new adjustment the ledger settles, never a second application of the first). A failing cancel is not
  replayed: re-sent with a fresh id it would be a second cancel of the same execute, another probe. A
  failure reported by a Schemathesis built-in check without a recorded exchange is not replayed either:
  both stay ``failed``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest

from conformance import contract
from conformance.exchange import Exchange, Request
from conformance.suite.plugin import RunState
from conformance.transport import Client

#: Failing generated examples replayed per slice and attempt at most (bounded load on the target).
MAX_GENERATED_REPLAYS = 10
REPLAYABLE_OPERATIONS = ("getUserAmount", "executeAdjustment")


class ReplayPlugin:
    def __init__(self, state: RunState, replays: int, progress: Callable[[str], None] | None = None):
        self._state = state
        self._replays = max(0, replays)
        self._progress = progress
        self._client: Client | None = None
        self.replayed: list[dict] = []  # {nodeid, attempt, kind, failing: [requirement ids]}

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item):
        if not self._replays or getattr(item, "conformance_attempt", 0):
            return (yield)  # turned off, or this call is itself a replay
        try:
            return (yield)
        finally:
            failing = self._failing_musts(item.nodeid, 0)
            if failing:
                self._replay(item, failing)

    def pytest_sessionfinish(self, session) -> None:
        if self._client is not None:
            self._client.close()

    # -------------------------------------------------------------------------------------- internals
    def _failing_musts(self, nodeid: str, attempt: int) -> list[str]:
        requirements = contract.load().requirements
        return sorted({o.requirement for o in self._state.journal.outcomes_of(nodeid, attempt)
                       if o.status.against_target and o.requirement in requirements
                       and requirements[o.requirement].is_must})

    def _replay(self, item, failing: list[str]) -> None:
        generated = "scenario" in getattr(item, "fixturenames", ())
        for attempt in range(1, self._replays + 1):
            if generated:
                sent = self._replay_examples(item.nodeid, attempt)
                if not sent:
                    return  # nothing replayable: the failure stands
            else:
                self._replay_test(item, attempt)
            still = self._failing_musts(item.nodeid, attempt)
            self.replayed.append({"nodeid": item.nodeid, "attempt": attempt,
                                  "kind": "generated examples" if generated else "test", "failing": still})
            if self._progress is not None:
                verdict = "reproduced " + ", ".join(still) if still else "did not reproduce"
                self._progress(f"[replay {attempt}/{self._replays}] {verdict}: {item.nodeid}")

    def _replay_test(self, item, attempt: int) -> None:
        item.conformance_attempt = attempt
        try:
            item.ihook.pytest_runtest_call(item=item)
        except (Exception, pytest.fail.Exception, pytest.skip.Exception):
            pass  # the suite plugin has typed and recorded how the replay ended
        finally:
            item.conformance_attempt = 0

    def _replay_examples(self, nodeid: str, attempt: int) -> int:
        """Send the slice's failing MUST exchanges again; the number sent."""
        journal = self._state.journal
        requirements = contract.load().requirements
        wanted: dict[str, Exchange] = {}
        for outcome in journal.outcomes_of(nodeid, 0):
            if not (outcome.status.against_target and outcome.requirement in requirements
                    and requirements[outcome.requirement].is_must):
                continue
            for exchange_id in outcome.exchanges:
                exchange = journal.exchange(exchange_id)
                if exchange is not None and exchange.operation in REPLAYABLE_OPERATIONS:
                    wanted.setdefault(exchange_id, exchange)
        chosen = list(wanted.values())[:MAX_GENERATED_REPLAYS]
        if not chosen:
            return 0
        if self._client is None:
            self._client = Client(self._state.profile, journal)
        with journal.context(nodeid, attempt):
            for exchange in chosen:
                request = _fresh(exchange.request) if exchange.operation == "executeAdjustment" else exchange.request
                again = self._client.send(request, operation=exchange.operation,
                                          origin=f"{exchange.origin}/replay-{attempt}", negative=exchange.negative)
                journal.record(again)
        return len(chosen)


def _fresh(request: Request) -> Request:
    """The same execute with a fresh requestUniqueNo of the same length (an over-long one stays over-long)."""
    body = request.json
    if not isinstance(body, dict) or not isinstance(body.get("requestUniqueNo"), str) or not body["requestUniqueNo"]:
        return request
    length = len(body["requestUniqueNo"])
    number = ("cfr" + "".join(uuid.uuid4().hex for _ in range(length // 32 + 1)))[:length]
    changed = {**body, "requestUniqueNo": number}
    return Request(method=request.method, url=request.url, headers=request.headers,
                   body=json.dumps(changed).encode())
