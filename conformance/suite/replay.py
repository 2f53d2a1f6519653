"""Replays of failing probes: a MUST failure is final only when it reproduces.

After a test whose attempt 0 recorded a MUST violation (or a MUST probe that got no answer), the
:class:`ReplayPlugin` replays it ``k`` times (attempt 1..k), each inside the journal's judging context for
that attempt, so every outcome of a replay carries its attempt number and lands in ``outcomes.jsonl`` (the
evidence) like any other. :func:`conformance.verdicts.aggregate` then reports a requirement ``flaky`` when
every failing origin passed in some replay, and ``failed`` otherwise.

- A handwritten test is replayed whole (pytest's setup, call and teardown again, with fresh function
  fixtures). The suite's tests build a fresh ``requestUniqueNo`` for every execute and cancel, and every
  call goes through the recording client, so a replayed money probe never re-sends an id and every
  adjustment it makes is in the money journal and settled at the end of the run. A test that makes many
  calls fails a replay when any of them breaks the rule: a fault that strikes a fixed share of all
  answers is reported ``failed`` (it reproduces), not ``flaky``.
- Generated slices (Schemathesis) are not re-run whole: their failing examples are, once every slice has
  run (at session end, before the money is settled). Generated outcomes carry their exchange's origin
  (``generated/<phase>/<mode>``), so the examples of one origin are replayed only when every failure
  recorded under it can be: each failing exchange is sent again as recorded (same method, URL, headers,
  body) and judged by the same exchange checks. A replayed execute gets a fresh ``requestUniqueNo`` of the
  same length (a new adjustment the ledger settles, never a second application of the first). A failing
  cancel is not replayed (re-sent with a fresh id it is a second cancel of the same execute: another
  probe), nor a failure of a Schemathesis built-in check that names no recorded exchange, nor an origin with
  more than :data:`MAX_GENERATED_REPLAYS` failing examples: those failures stay ``failed``. The
  preflight's balance queries (sent before the suite starts) are replayed the same way.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from _pytest.runner import call_and_report

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

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        """Run a handwritten test, and replay it when it recorded a MUST failure.

        A replay is the test's protocol again (setup with fresh function fixtures, call, teardown),
        unreported to JUnit and the run's test results; its outcomes carry its attempt number. Module and
        class fixtures (a delivery simulation, its scenario log) are kept across the attempts: the teardown
        before a replay stops at the test's parent, the last one goes on to the next test as usual. Allure
        gets one more result per replay with the same history id, which it shows as a retry.
        """
        if not self._replays or "scenario" in item.fixturenames:
            return None  # turned off, or a generated slice (its failing examples are replayed at session end)
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        again = _run_once(item, nextitem, log=True, replay_next=lambda: self._wants_replay(item))
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        attempt = 0
        while again:
            attempt += 1
            last = attempt == self._replays
            item.conformance_attempt = attempt
            try:
                ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
                again = _run_once(item, nextitem, log=False,
                                  replay_next=lambda last=last: not last and not self._stopping())
                ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
            finally:
                item.conformance_attempt = 0
            self._tell(item.nodeid, attempt, "test", 1)
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session) -> None:
        if self._replays:
            self._replay_generated()

    # -------------------------------------------------------------------------------------- internals
    def _wants_replay(self, item) -> bool:
        return not self._stopping() and bool(_failing_musts(self._state.journal.outcomes_of(item.nodeid, 0)))

    def _stopping(self) -> bool:
        money = getattr(self._state.ledger, "money", None)
        stopping = getattr(money, "stopping", None)
        return bool(stopping is not None and stopping.is_set())

    def _tell(self, origin: str, attempt: int, kind: str, sent: int) -> None:
        still = _failing_musts(self._state.journal.outcomes_of(origin, attempt))
        self._state.replays.append({"origin": origin, "attempt": attempt, "kind": kind, "sent": sent,
                                    "reproduced": still})
        if self._progress is not None:
            verdict = "reproduced " + ", ".join(still) if still else "did not reproduce"
            self._progress(f"[replay {attempt}/{self._replays}] {verdict}: {origin}")

    def _replay_generated(self) -> None:
        """Replay the failing examples of each generated origin (and the preflight's balance queries) whose every
        failure can be replayed.

        Generated outcomes carry the origin of their exchange (``generated/<phase>/<mode>``, shared by the
        phase's slices), so an origin is replayed only when every outcome against the target recorded under it
        names a replayable exchange: a replay that passed can then never stand for a failure it did not resend.
        """
        journal = self._state.journal
        by_origin: dict[str, list] = {}
        for outcome in list(journal.outcomes):
            if _replayed_at_end(outcome.origin) and outcome.attempt == 0 and outcome.status.against_target:
                by_origin.setdefault(outcome.origin, []).append(outcome)
        client: Client | None = None
        try:
            for origin, against in sorted(by_origin.items()):
                if not _failing_musts(against):
                    continue
                chosen = _replayable(journal, against)
                if chosen is None:
                    self._state.replays.append({"origin": origin, "attempt": None, "kind": "generated examples",
                                                "sent": 0, "reproduced": _failing_musts(against),
                                                "note": "not replayed: a failure without a replayable example, or "
                                                        f"more than {MAX_GENERATED_REPLAYS}"})
                    if self._progress is not None:
                        self._progress(f"[replay] not replayed (a failure without a replayable example, or more "
                                       f"than {MAX_GENERATED_REPLAYS}): {origin}")
                    continue
                client = client or Client(self._state.profile, journal)
                for attempt in range(1, self._replays + 1):
                    if self._stopping():
                        break
                    sent, refused = _send_all(client, chosen, attempt)
                    if refused is not None:  # a partial attempt must never pass for a recovery: keep, do not judge
                        for again in sent:
                            journal.record(again, judge=False)
                        self._state.replays.append({"origin": origin, "attempt": attempt, "kind": "generated examples",
                                                    "sent": len(sent), "reproduced": None,
                                                    "note": f"stopped, not judged: {refused}"})
                        if self._progress is not None:
                            self._progress(f"[replay {attempt}/{self._replays}] stopped ({refused}): {origin}")
                        break
                    with journal.context(origin, attempt):
                        for again in sent:
                            journal.record(again)
                    self._tell(origin, attempt, "generated examples", len(chosen))
        finally:
            if client is not None:
                client.close()


def _run_once(item, nextitem, *, log: bool, replay_next: Callable[[], bool]) -> bool:
    """pytest's runtestprotocol, with the teardown stopping at the test's parent when a replay follows."""
    if hasattr(item, "_request") and not item._request:
        item._initrequest()  # a second run of the same item (as pytest-rerunfailures does)
    try:
        setup = call_and_report(item, "setup", log)
        if setup.passed:
            call_and_report(item, "call", log)
        session = item.session
        again = not (session.shouldfail or session.shouldstop) and replay_next()
        call_and_report(item, "teardown", log, nextitem=item.parent if again else
                        (None if session.shouldfail or session.shouldstop else nextitem))
    finally:
        if hasattr(item, "_request"):
            item._request = False
            item.funcargs = None
    return again


def _send_all(client: Client, chosen: list[Exchange], attempt: int) -> tuple[list[Exchange], str | None]:
    """Send every chosen exchange again; stop at the first the run refuses (stopping, a money bound)."""
    sent = []
    for exchange in chosen:
        request = _fresh(exchange.request) if exchange.operation == "executeAdjustment" else exchange.request
        try:
            sent.append(client.send(request, operation=exchange.operation,
                                    origin=f"{exchange.origin}/replay-{attempt}", negative=exchange.negative))
        except Exception as error:  # RunStopped, ExposureRefused: the money journal's gate said no
            return sent, f"{type(error).__name__}: {error}"
    return sent, None


def _replayed_at_end(origin: str) -> bool:
    """Origins whose failing exchanges are re-sent at session end: generated slices and the preflight."""
    return origin.startswith("generated/") or origin == "preflight"


def _failing_musts(outcomes) -> list[str]:
    requirements = contract.load().requirements
    return sorted({o.requirement for o in outcomes if o.status.against_target and o.requirement in requirements
                   and requirements[o.requirement].is_must})


def _replayable(journal, against) -> list[Exchange] | None:
    """The exchanges to resend for these failures, or None when one of them cannot be replayed."""
    chosen: dict[str, Exchange] = {}
    for outcome in against:
        found = [journal.exchange(i) for i in outcome.exchanges]
        found = [e for e in found if e is not None and e.operation in REPLAYABLE_OPERATIONS]
        if not found:
            return None
        for exchange in found:
            chosen.setdefault(exchange.id, exchange)
    if len(chosen) > MAX_GENERATED_REPLAYS:
        return None
    return list(chosen.values())


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
