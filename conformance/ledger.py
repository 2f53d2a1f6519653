"""The money ledger: every adjustment the suite caused, and its compensation.

The ledger observes every exchange the journal records (handwritten and
generated alike). An execute that the wallet applied, or whose outcome is
unknown (no answer, a server error, a body that is not the envelope), is money
the suite may have moved. It stays *outstanding* until a cancel for its
requestUniqueNo answers code "0" (reversed), US_0000001 or US_0000002 (nothing
was applied). The ledger judges each first cancel against its execute.

With a write-ahead :class:`~conformance.money_journal.MoneyJournal` attached
(``conformance run`` always attaches one), the journal is the record of money:
:meth:`Ledger.summary` (ledger.json, summary.json's money section) is derived
from it, and compensation (the cancels still owed, sent as the platform sends
them, reference §2.6) is :func:`conformance.settle.settle_outstanding`, the
same code ``conformance settle`` runs after a crash.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from conformance.exchange import Exchange
from conformance.money_journal import execute_status

SETTLED_CODES = {"0": "reversed", "US_0000001": "not applied", "US_0000002": "never received"}


@dataclass
class Entry:
    request_unique_no: str
    body: dict
    outcome: str  # applied | rejected | unknown
    execute_exchanges: list[str] = field(default_factory=list)
    settlement: str | None = None  # reversed | not applied | never received
    cancel_exchanges: list[str] = field(default_factory=list)
    compensated_by_suite: bool = False
    cancellable: bool = True  # False: the execute carried no requestUniqueNo a cancel could name

    @property
    def outstanding(self) -> bool:
        return self.outcome in ("applied", "unknown") and self.settlement is None

    def to_record(self) -> dict[str, Any]:
        body = self.body
        return {
            "requestUniqueNo": self.request_unique_no,
            "account": f"{body.get('thirdServerCode')}:{body.get('userName')}:{body.get('currency')}",
            "operationType": body.get("operationType"),
            "amount": body.get("amount"),
            "outcome": self.outcome,
            "settlement": self.settlement,
            "compensated_by_suite": self.compensated_by_suite,
            "execute_exchanges": self.execute_exchanges,
            "cancel_exchanges": self.cancel_exchanges,
        }


class Ledger:
    """Keeps the money story of the run (it judges nothing: see :mod:`conformance.conversations`)."""

    def __init__(self, money: Any | None = None) -> None:
        self.money = money  # conformance.money_journal.MoneyJournal: the durable record; summary() derives from it
        self.entries: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def observe(self, exchange: Exchange) -> None:
        body = exchange.request.json
        if exchange.request.method != "POST" or not isinstance(body, dict):
            return
        number = body.get("requestUniqueNo")
        if exchange.operation == "executeAdjustment" and isinstance(number, str) and number:
            self._observe_execute(number, body, exchange)
        elif exchange.operation == "executeAdjustment" and execute_status(exchange) != "rejected":
            # applied (or perhaps applied) without a number a cancel could name: it cannot be compensated,
            # so it stays outstanding and the run says so
            self._observe_execute(f"<no requestUniqueNo: {exchange.id}>", body, exchange, cancellable=False)
        elif exchange.operation == "cancelAdjustment" and isinstance(body.get("reverseRequestUniqueNo"), str):
            self._observe_cancel(body["reverseRequestUniqueNo"], exchange)

    def _observe_execute(self, number: str, body: dict, exchange: Exchange, cancellable: bool = True) -> None:
        outcome = execute_status(exchange)
        with self._lock:
            entry = self.entries.get(number)
            if entry is None:
                entry = self.entries[number] = Entry(number, body, outcome, cancellable=cancellable)
            elif outcome == "applied" or (outcome == "unknown" and entry.outcome == "rejected"):
                entry.outcome = outcome  # a replay can reveal money that moved
            entry.execute_exchanges.append(exchange.id)

    def _observe_cancel(self, reverse: str, exchange: Exchange) -> None:
        code = exchange.code
        with self._lock:
            entry = self.entries.get(reverse)
            if entry is None:
                return
            entry.cancel_exchanges.append(exchange.id)
            # only a success settles money that moved; "not applied"/"never received" settle the others
            if code in SETTLED_CODES and entry.settlement != "reversed" and (code == "0" or entry.outcome != "applied"):
                entry.settlement = SETTLED_CODES[code]

    def outstanding(self) -> list[Entry]:
        with self._lock:
            return [e for e in self.entries.values() if e.outstanding]

    def summary(self) -> dict[str, Any]:
        if self.money is not None:  # the write-ahead journal knows what memory may not (a call cut mid-flight)
            return self.money.summary()
        with self._lock:
            entries = list(self.entries.values())
        applied = [e for e in entries if e.outcome == "applied"]
        return {
            "executes_sent": len(entries),
            "applied": len(applied),
            "unknown_outcome": sum(e.outcome == "unknown" for e in entries),
            "rejected": sum(e.outcome == "rejected" for e in entries),
            "reversed": sum(e.settlement == "reversed" for e in entries),
            "compensated_by_suite": sum(e.compensated_by_suite for e in entries),
            "outstanding": [e.to_record() for e in entries if e.outstanding],
            "entries": [e.to_record() for e in entries if e.outcome != "rejected"],
        }
