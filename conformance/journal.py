"""The run's journal: every exchange the suite made, every judgement passed on it.

The single place where an exchange is judged: :meth:`Journal.record` runs every
exchange check that applies and keeps the outcomes. Conversation checks add
their outcomes with :meth:`Journal.add`. The journal streams both to JSON Lines
files in the report directory as the run goes, so a run that dies midway still
leaves its evidence. Secrets are redacted when written.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from conformance.checks import Context, Outcome, judge_exchange
from conformance.exchange import Exchange
from conformance.reporting import redaction

#: Who is judging right now (a test's origin, and which attempt of it): stamped on every outcome recorded.
_JUDGING: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar("judging", default=None)

EXCHANGES_FILE = "exchanges.jsonl"
OUTCOMES_FILE = "outcomes.jsonl"


class Journal:
    def __init__(
        self,
        directory: Path,
        ctx: Context,
        *,
        secret_headers: frozenset[str] = frozenset(),
        secret_values: tuple[str, ...] = (),
        secrets: redaction.Secrets | None = None,
        observers: tuple[Any, ...] = (),
    ):
        self.directory = directory
        self.ctx = ctx
        self.secret_headers = secret_headers
        self.secret_values = tuple(v for v in secret_values if v)
        self.secrets = secrets or redaction.Secrets(header_names=frozenset(secret_headers), values=self.secret_values)
        self.observers = list(observers)
        self.exchanges: dict[str, Exchange] = {}
        self.outcomes: list[Outcome] = []
        self.counts: Counter[str] = Counter()  # exchanges per origin kind
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        self._exchange_file = open(directory / EXCHANGES_FILE, "a", encoding="utf-8")  # noqa: SIM115
        self._outcome_file = open(directory / OUTCOMES_FILE, "a", encoding="utf-8")  # noqa: SIM115

    # ------------------------------------------------------------------ write
    @contextlib.contextmanager
    def context(self, origin: str, attempt: int = 0) -> Iterator[None]:
        """Every outcome recorded inside the block is stamped with ``origin`` and ``attempt``."""
        token = _JUDGING.set((origin, attempt))
        try:
            yield
        finally:
            _JUDGING.reset(token)

    @staticmethod
    def _stamp(outcome: Outcome, default_origin: str = "") -> Outcome:
        current = _JUDGING.get()
        if current is None:
            return outcome.with_origin(default_origin) if default_origin else outcome
        return replace(outcome, origin=current[0], attempt=current[1])

    def record(self, exchange: Exchange, *, judge: bool = True) -> list[Outcome]:
        """Keep an exchange, judge it by every exchange check that applies, and return the outcomes."""
        outcomes = [self._stamp(o, exchange.origin) for o in judge_exchange(exchange, self.ctx)] if judge else []
        with self._lock:
            self.exchanges[exchange.id] = exchange
            self.counts[exchange.origin.split("/", 1)[0]] += 1
            self._write(self._exchange_file, exchange.to_record(self.secret_headers))
            for outcome in outcomes:
                self._add_locked(outcome)
        for observer in self.observers:
            observer.observe(exchange)
        return outcomes

    def add(self, outcome: Outcome | None) -> Outcome | None:
        if outcome is not None:
            outcome = self._stamp(outcome)
            with self._lock:
                self._add_locked(outcome)
        return outcome

    def _add_locked(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self._write(self._outcome_file, outcome.to_record())

    def _write(self, handle, record: dict) -> None:
        # the one redaction of every writer: by header name, URL userinfo, then values (never a blind
        # substring replace, which turned "elapsed_ms": 1.0 into invalid JSON for a secret "1")
        line = json.dumps(redaction.scrub(record, self.secrets), ensure_ascii=False, sort_keys=True)
        handle.write(line + "\n")

    def close(self) -> None:
        with self._lock:
            self._exchange_file.close()
            self._outcome_file.close()

    # ------------------------------------------------------------------- read
    def exchange(self, exchange_id: str) -> Exchange | None:
        return self.exchanges.get(exchange_id)

    def outcomes_for(self, requirement: str) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.requirement == requirement]

    def outcomes_of(self, origin: str, attempt: int | None = None) -> list[Outcome]:
        """The outcomes one test (or slice) recorded, optionally of one attempt."""
        with self._lock:
            return [o for o in self.outcomes if o.origin == origin and (attempt is None or o.attempt == attempt)]
