"""The write-ahead money journal: every execute and cancel, written to disk before it is sent.

``money-journal.jsonl`` in the report directory is the one durable record of
the money a run may have moved. Every execute and cancel (handwritten,
generated, compensation, settle) appends an *intent* record (operation, body,
requestUniqueNo, account, origin) and fsyncs it **before** the request leaves
the suite; the *outcome* (what the answer means for the money) is appended when
it is known. A run killed at any instant therefore leaves a journal from which
every adjustment that may have been applied can be found: an intent without an
outcome is an unknown outcome. ``conformance settle`` (:mod:`conformance.settle`)
reads it, cancels what is owed, and appends its own intents and outcomes.

No secret is ever written: header values are not stored at all (settle takes
the same headers from the environment, config or flags), and the target URL is
stored without credentials. A torn last line (a kill mid-write) is ignored on
read.

Record kinds (one JSON object per line, ``"kind"`` says which):

- ``run``: the run's id, target (base URL without userinfo), companyId, accounts
- ``intent``: ``seq``, ``op`` (execute|cancel), ``number``, ``reverse`` (cancels), ``account``, ``origin``, ``body``
- ``outcome``: ``intent`` (its seq), ``op``, ``number``, ``status`` (execute: applied|rejected|unknown;
  cancel: settled|unsettled), ``code``, ``http``, ``exchange``
- ``balance``: ``when`` (preflight|end|settle), ``account``, ``amount`` (the wallet's string), ``digits``
- ``refused``: an execute the exposure bounds did not let out (``reason``)
- ``settle``: a settle pass's result (``settled``, ``outstanding``); with ``void``, why nothing is owed
  any more (the run's embedded, in-memory wallet ended with it)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from conformance.delivery import definitive_cancel_code

JOURNAL_FILE = "money-journal.jsonl"
EXECUTE, CANCEL = "executeAdjustment", "cancelAdjustment"
MONEY_OPERATIONS = (EXECUTE, CANCEL)
OPS = {EXECUTE: "execute", CANCEL: "cancel"}
SETTLED_CODES = {"0": "reversed", "US_0000001": "not applied", "US_0000002": "never received"}


class RunStopped(KeyboardInterrupt):
    """New traffic is refused: the run is stopping (a signal, --max-duration, the execute budget).

    A KeyboardInterrupt so that Schemathesis' engine ends the slice at once (it stops on one) and
    pytest ends the session; compensation and settle traffic is never stopped by it.
    """


class ExposureRefused(Exception):
    """One execute exceeds a money bound (--max-execute-amount); it is not sent."""


class JournalBusy(Exception):
    """Another process (a run or a settle) holds the journal."""


def public_url(url: str | None) -> str | None:
    """The URL without user:password@ (credentials never reach the journal)."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def account_of(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    return f"{body.get('thirdServerCode')}:{body.get('userName')}:{body.get('currency')}"


def execute_status(exchange: Any) -> str:
    """applied, rejected (an unambiguous no: ok=false with a non-zero code), or unknown (cancel it)."""
    if exchange.succeeded:
        return "applied"
    envelope = exchange.envelope
    if exchange.rejected and envelope is not None and envelope.get("ok") is False and envelope.get("code") not in (
        "0", 0, None
    ):
        return "rejected"
    return "unknown"  # no answer, a bare 4xx/5xx, a cut or contradictory answer: money may have moved


PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def amount_of(body: Any) -> Decimal | None:
    """|amount| of an execute in the documented plain-decimal form, else None (not bounded).

    Forms a conforming wallet must refuse ("1e3", " 5", 5 as a number) are the validation probes'
    business: bounding them would refuse the probe itself; if a wallet wrongly applies one, the
    journal has it and settle reverses it like any other.
    """
    amount = body.get("amount") if isinstance(body, dict) else None
    if not isinstance(amount, str) or not PLAIN_DECIMAL.fullmatch(amount):
        return None
    try:
        return abs(Decimal(amount))
    except (InvalidOperation, ValueError):
        return None


# ------------------------------------------------------------------ state
@dataclass
class Adjustment:
    """One execute (by requestUniqueNo) and what the journal knows of it."""

    number: str | None  # None: the execute carried no requestUniqueNo a cancel could name
    key: str
    body: Any
    origin: str
    account: str | None
    statuses: list[str] = field(default_factory=list)  # one per execute intent: applied|rejected|unknown|pending
    cancels: list[dict] = field(default_factory=list)  # {number, code, origin, seq}
    settlement: str | None = None
    settled_by: str | None = None  # origin of the cancel that settled it
    exchanges: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        if "applied" in self.statuses:
            return "applied"
        if self.statuses and all(s == "rejected" for s in self.statuses):
            return "rejected"
        return "unknown"  # an intent without an outcome (pending) is an unknown outcome

    @property
    def cancellable(self) -> bool:
        return bool(self.number) and isinstance(self.body, dict)

    @property
    def outstanding(self) -> bool:
        if not isinstance(self.body, dict):
            # a body that is not a JSON object names no account: no money of any account can have moved
            # (the wallet did not say it applied it, or it did and the envelope rules judge that answer)
            return False
        return self.outcome in ("applied", "unknown") and self.settlement is None

    def record(self) -> dict[str, Any]:
        body = self.body if isinstance(self.body, dict) else {}
        return {
            "requestUniqueNo": self.number,
            "account": self.account,
            "operationType": body.get("operationType"),
            "amount": body.get("amount"),
            "origin": self.origin,
            "outcome": self.outcome,
            "settlement": self.settlement,
            "settled_by": self.settled_by,
            "compensated_by_suite": bool(self.settled_by and self.settled_by.startswith(("compensation", "settle"))),
            "cancellable": self.cancellable,
            "cancels": [c["number"] for c in self.cancels],
            "execute_exchanges": list(self.exchanges),
        }


class State:
    """The money story folded from journal records (the same fold at write time and when settle reads)."""

    def __init__(self) -> None:
        self.run: dict[str, Any] = {}
        self.adjustments: dict[str, Adjustment] = {}
        self.intents: dict[int, dict] = {}
        self.balances: dict[str, dict[str, dict]] = {}  # when -> account -> record (last wins)
        self.refused: list[dict] = []
        self.settles: list[dict] = []
        self.void: str | None = None  # why nothing can be owed any more (the embedded wallet died with its run)
        self.torn = 0

    def apply(self, record: dict) -> None:
        kind = record.get("kind")
        if kind == "run":
            self.run = self.run or record  # the first run record names the target
        elif kind == "intent":
            self._intent(record)
        elif kind == "outcome":
            self._outcome(record)
        elif kind == "balance":
            self.balances.setdefault(record["when"], {})[record["account"]] = record
        elif kind == "refused":
            self.refused.append(record)
        elif kind == "settle":
            self.settles.append(record)
            if record.get("void"):
                self.void = record["void"]

    def _intent(self, record: dict) -> None:
        self.intents[record["seq"]] = record
        if record["op"] == "execute":
            number = record.get("number")
            key = number if number else f"#{record['seq']}"
            entry = self.adjustments.get(key)
            if entry is None:
                entry = self.adjustments[key] = Adjustment(
                    number or None, key, record.get("body"), record.get("origin", ""), record.get("account"))
            entry.statuses.append("pending")
            record["_entry"] = key
            record["_index"] = len(entry.statuses) - 1
        else:
            entry = self.adjustments.get(record.get("reverse") or "")
            if entry is not None:
                entry.cancels.append({"number": record.get("number"), "code": None, "origin": record.get("origin"),
                                      "seq": record["seq"], "body": record.get("body")})

    def _outcome(self, record: dict) -> None:
        intent = self.intents.get(record.get("intent"))
        if intent is None:
            return
        if intent["op"] == "execute":
            entry = self.adjustments[intent["_entry"]]
            entry.statuses[intent["_index"]] = record["status"]
            if record.get("exchange"):
                entry.exchanges.append(record["exchange"])
            return
        entry = self.adjustments.get(intent.get("reverse") or "")
        if entry is None:
            return
        code = record.get("definitive")  # "0" with ok true, US_0000001, US_0000002 (conformance.delivery)
        for cancel in entry.cancels:
            if cancel["seq"] == intent["seq"]:
                cancel["code"] = record.get("code")
        # only a success settles money that moved; "not applied"/"never received" settle the others
        if code in SETTLED_CODES and entry.settlement != "reversed" and (code == "0" or entry.outcome != "applied"):
            entry.settlement = SETTLED_CODES[code]
            entry.settled_by = intent.get("origin")

    def outstanding(self) -> list[Adjustment]:
        return [] if self.void else [a for a in self.adjustments.values() if a.outstanding]

    def open_count(self) -> int:
        return 0 if self.void else sum(1 for a in self.adjustments.values() if a.outstanding)


def read(path: Path) -> State:
    """Fold a journal file; a torn line (a kill mid-write) is counted and skipped."""
    state = State()
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                state.torn += 1
                continue
            if isinstance(record, dict):
                state.apply(record)
    return state


# ------------------------------------------------------------------ writer
@dataclass(frozen=True)
class Bounds:
    """Exposure bounds: what the run may have open and send (None: unbounded)."""

    max_outstanding: int | None = 20
    max_executes: int | None = None
    max_execute_amount: Decimal | None = None


class MoneyJournal:
    """Appends, fsyncs and folds; also the run's gate for new traffic (stop) and its exposure bounds."""

    def __init__(self, directory: Path, *, bounds: Bounds = Bounds(), fsync: bool = True) -> None:
        self.path = Path(directory) / JOURNAL_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.state = read(self.path) if self.path.exists() else State()
        self.bounds = bounds
        self.stopping = threading.Event()
        self.stop_reason: str | None = None
        self.on_limit: Any = None  # callable(): settle now, called when max_outstanding is reached
        self._fsync = fsync
        self._lock = threading.RLock()
        self._seq = max(self.state.intents, default=0)
        self._executes = sum(1 for i in self.state.intents.values() if i["op"] == "execute")
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.close()
            raise JournalBusy(f"{self.path} is in use by another run or settle") from None

    # ------------------------------------------------------------- writing
    def _append(self, record: dict, *, sync: bool = True) -> None:
        """Append one record; ``sync``: fsync before returning (an intent must be on disk before its request
        leaves; an outcome lost in a crash only turns into an unknown outcome, which settle cancels anyway,
        so outcomes are flushed to the OS but ride on the next fsync)."""
        record.setdefault("at", dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"))
        line = json.dumps(record, ensure_ascii=False, sort_keys=True, default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            if self._fsync and sync:
                os.fsync(self._file.fileno())
            self.state.apply(json.loads(line))

    def start_run(self, run_id: str, base_url: str | None, company_id: int, accounts: list[str],
                  embedded: bool = False) -> None:
        self._append({"kind": "run", "run_id": run_id, "target": public_url(base_url), "company_id": company_id,
                      "accounts": accounts, "embedded": embedded})

    def stop(self, reason: str) -> None:
        if not self.stopping.is_set():
            self.stop_reason = reason
            self.stopping.set()

    def admit(self, operation: str | None, body: Any, origin: str) -> int | None:
        """The gate every request passes before it leaves: refuse when stopping, journal money, bound it.

        Returns the intent's seq for an execute/cancel (pass it to :meth:`outcome`), None otherwise.
        Raises :class:`RunStopped` (new traffic after a stop; compensation/settle pass) or
        :class:`ExposureRefused` (one execute above the amount bound).
        """
        settling = origin.startswith(("compensation", "settle"))
        if self.stopping.is_set() and not settling:
            raise RunStopped(f"the run is stopping ({self.stop_reason}); no new traffic")
        if operation not in MONEY_OPERATIONS:
            return None
        op = OPS[operation]
        if op == "execute" and not settling:
            self._bound_execute(body, origin)
        with self._lock:
            self._seq += 1
            seq = self._seq
            number = body.get("requestUniqueNo") if isinstance(body, dict) else None
            reverse = body.get("reverseRequestUniqueNo") if isinstance(body, dict) else None
            self._append({
                "kind": "intent", "seq": seq, "op": op, "origin": origin, "account": account_of(body),
                "number": number if isinstance(number, str) else None,
                "reverse": reverse if isinstance(reverse, str) else None,
                "body": body,
            })
            if op == "execute":
                self._executes += 1
        return seq

    def _bound_execute(self, body: Any, origin: str) -> None:
        bounds = self.bounds
        amount = amount_of(body)
        if bounds.max_execute_amount is not None and amount is not None and amount > bounds.max_execute_amount:
            self._append({"kind": "refused", "origin": origin, "account": account_of(body), "amount": str(amount),
                          "reason": f"amount {amount} above --max-execute-amount {bounds.max_execute_amount}"})
            raise ExposureRefused(f"execute of {amount} refused: above --max-execute-amount "
                                  f"{bounds.max_execute_amount}")
        if bounds.max_executes is not None and self._executes >= bounds.max_executes:
            self.stop(f"--max-executes {bounds.max_executes} reached")
            raise RunStopped(f"the run is stopping ({self.stop_reason}); no new traffic")
        if bounds.max_outstanding is not None and self.state.open_count() >= bounds.max_outstanding:
            if self.on_limit is not None:
                self.on_limit()  # settle what is open before more money moves
            if self.state.open_count() >= bounds.max_outstanding:
                self.stop(f"{self.state.open_count()} adjustments open and they could not be settled "
                          f"(--max-outstanding {bounds.max_outstanding})")
                raise RunStopped(f"the run is stopping ({self.stop_reason}); no new traffic")

    def outcome(self, seq: int | None, exchange: Any) -> None:
        """What the answer to intent ``seq`` means for the money (execute status, or the cancel's code)."""
        if seq is None:
            return
        intent = self.state.intents.get(seq)
        if intent is None:
            return
        code = exchange.code if isinstance(exchange.code, str | int | None) else repr(exchange.code)
        definitive = None if intent["op"] == "execute" else definitive_cancel_code(exchange)
        status = execute_status(exchange) if intent["op"] == "execute" else (
            "settled" if definitive is not None else "unsettled")
        response = exchange.response
        self._append({
            "kind": "outcome", "intent": seq, "op": intent["op"], "number": intent.get("number"), "status": status,
            "code": code, "definitive": definitive, "http": None if response is None else response.status,
            "exchange": exchange.id, "error": exchange.error,
        }, sync=False)

    def balance(self, when: str, account: str, amount: Any, digits: Any) -> None:
        self._append({"kind": "balance", "when": when, "account": account, "amount": amount, "digits": digits})

    def note_settle(self, record: dict) -> None:
        self._append({"kind": "settle", **record})

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                if self._fsync:
                    os.fsync(self._file.fileno())
                self._file.close()  # closing releases the lock

    # ------------------------------------------------------------- reading
    def outstanding(self) -> list[Adjustment]:
        with self._lock:
            return self.state.outstanding()

    def summary(self) -> dict[str, Any]:
        """The money section of summary.json and ledger.json, derived from the journal."""
        with self._lock:
            return summarise(self.state)


def summarise(state: State) -> dict[str, Any]:
    entries = list(state.adjustments.values())
    outstanding = [e for e in entries if e.outstanding]
    return {
        "journal": JOURNAL_FILE,
        "executes_sent": sum(len(e.statuses) for e in entries),
        "adjustments": len(entries),
        "applied": sum(e.outcome == "applied" for e in entries),
        "unknown_outcome": sum(e.outcome == "unknown" for e in entries),
        "rejected": sum(e.outcome == "rejected" for e in entries),
        "reversed": sum(e.settlement == "reversed" for e in entries),
        "compensated_by_suite": sum(e.record()["compensated_by_suite"] for e in entries),
        "refused_by_bounds": len(state.refused),
        "outstanding": [e.record() for e in outstanding],
        "uncancellable": [e.record() for e in outstanding if not e.cancellable],
        "balances": balance_report(state, outstanding),
        "torn_records": state.torn,
        "entries": [e.record() for e in entries if e.outcome != "rejected"],
    }


def balance_report(state: State, outstanding: list[Adjustment]) -> dict[str, Any]:
    """Each account's balance at preflight and at the last reading, and what the difference means."""
    before = state.balances.get("preflight", {})
    after_when = next((w for w in ("settle", "end") if w in state.balances), None)
    after = state.balances.get(after_when, {}) if after_when else {}
    accounts = []
    for account in sorted(set(before) | set(after)):
        b, a = before.get(account), after.get(account)
        difference = _difference(b, a)
        open_here = [o.number for o in outstanding if o.account == account]
        if difference is None:
            meaning = "not read at both ends"
        elif difference == 0:
            meaning = "unchanged"
        elif open_here:
            meaning = f"moved: {len(open_here)} adjustment(s) of this account are still outstanding"
        else:
            meaning = ("moved with nothing outstanding: the wallet kept or returned money it should not have, "
                       "or someone else used the account meanwhile (the journal cannot tell which)")
        accounts.append({"account": account, "before": b and b["amount"], "after": a and a["amount"],
                         "difference": None if difference is None else str(difference), "meaning": meaning})
    return {"after_read_at": after_when, "accounts": accounts,
            "all_unchanged": bool(accounts) and all(x["meaning"] == "unchanged" for x in accounts)}


def _difference(before: dict | None, after: dict | None) -> Decimal | None:
    try:
        return Decimal(str(after["amount"])) - Decimal(str(before["amount"]))  # type: ignore[index]
    except (TypeError, InvalidOperation, KeyError):
        return None


@contextlib.contextmanager
def opened(directory: Path, **kwargs: Any) -> Iterator[MoneyJournal]:
    journal = MoneyJournal(directory, **kwargs)
    try:
        yield journal
    finally:
        journal.close()


def now_millis() -> int:
    return int(time.time() * 1000)
