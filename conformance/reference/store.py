"""The wallet's ledger: accounts, executes and cancels in SQLite (stdlib ``sqlite3``).

One connection guarded by a lock; every money operation runs in one
``BEGIN IMMEDIATE`` transaction, so concurrent requests neither lose nor double
an update, and a second process on the same file waits for the write lock.
Balances are integers in minor units.

Rules (the catalogue's EXE and CAN families, plus decisions the docs leave open):

* Every execute that arrived with a readable requestUniqueNo is remembered with
  its answer (code, msg) and the money it moved, applied or not; a replay answers
  the first code and moves nothing.
* OPEN_POSITION and ABNORMAL_OVERTRADING debit |amount|, NORMAL_CLOSE credits it.
  A debit beyond the balance is rejected INSUFFICIENT_FUNDS, so ABNORMAL_OVERTRADING
  never takes a balance negative either.
* A cancel gives back exactly what its execute moved (to the execute's account,
  whatever account the cancel names), once. Never received -> US_0000002; received
  but not applied -> US_0000001; already reversed by another cancel -> "0" and
  nothing moves (reference §9: "if already processed correctly, just answer
  success"). A refund is applied even if it takes the balance negative: the
  platform has already cancelled the order, refusing would leave both sides apart.
* Every valid cancel is remembered by its own requestUniqueNo; a replay answers
  the first code and moves nothing.
* An execute that arrives after a cancel named it (the platform gave up on it and
  was told US_0000002) is rejected ALREADY_CANCELLED and remembered, so the money
  never moves for an order the platform has cancelled.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from conformance.reference.accounts import MAX_MINOR, Account
from conformance.reference.variants import openable_currency

SUCCESS = "0"
MESSAGES = {
    SUCCESS: "Success",
    "ACCOUNT_NOT_FOUND": "no account for this thirdServerCode, userName and currency",
    "INSUFFICIENT_FUNDS": "insufficient balance",
    "LIMIT_EXCEEDED": "the balance would leave the supported range",
    "ALREADY_CANCELLED": "a cancel for this requestUniqueNo was received before the adjustment",
    "US_0000001": "the adjustment was received but not processed",
    "US_0000002": "the adjustment was never received",
    "EXECUTE_REJECTED": "adjustments are disabled",
    "DUPLICATE_REQUEST": "duplicate requestUniqueNo",
    "ALREADY_REVERSED": "the adjustment was already reversed",
    "CANCEL_MISMATCH": "the cancel does not match its adjustment (account, currency or amount)",
    "OPERATION_NOT_SUPPORTED": "this operationType is not supported",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    third_server_code TEXT NOT NULL,
    user_name TEXT NOT NULL,
    currency TEXT NOT NULL,
    digits INTEGER NOT NULL,
    balance_minor INTEGER NOT NULL,
    PRIMARY KEY (third_server_code, user_name, currency)
);
CREATE TABLE IF NOT EXISTS executes (
    request_unique_no TEXT PRIMARY KEY,
    code TEXT NOT NULL,
    msg TEXT NOT NULL,
    applied INTEGER NOT NULL,
    third_server_code TEXT,
    user_name TEXT,
    currency TEXT,
    delta_minor INTEGER NOT NULL DEFAULT 0,
    reversed_by TEXT,
    received_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cancels (
    request_unique_no TEXT PRIMARY KEY,
    reverse_request_unique_no TEXT NOT NULL,
    code TEXT NOT NULL,
    msg TEXT NOT NULL,
    refund_minor INTEGER NOT NULL DEFAULT 0,
    received_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS cancels_by_reverse ON cancels (reverse_request_unique_no);
"""


@dataclass(frozen=True)
class Outcome:
    code: str
    msg: str
    moved: int = 0  # minor units this call moved (signed: + credit, - debit); 0 = no money moved
    # fault lost-cancel-answer-refunds-again: the bookkeeping the wallet writes after answering
    settle: Callable[[], None] | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        return self.code == SUCCESS


@dataclass(frozen=True)
class Balance:
    third_server_code: str
    user_name: str
    currency: str
    digits: int
    minor: int


Key = tuple[str, str, str]


def _outcome(code: str, moved: int = 0) -> Outcome:
    return Outcome(code, MESSAGES[code], moved)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


IDEMPOTENCY_TTL_MS = 2000  # fault idempotency-cache-ttl: records expire from the cache after ~2 s
RACE_WINDOW_SECONDS = 0.02  # faults check-then-insert-race, lost-update-under-concurrency: read ... write


class LedgerBusy(Exception):
    """The ledger's lock is held (a money operation is in flight)."""


class Ledger:
    def __init__(
        self,
        accounts: Iterable[Account],
        db: str | Path | None = None,
        fault: str | None = None,
        variants: frozenset[str] = frozenset(),
    ):
        self.fault = fault
        self.variants = variants
        self._overtrading: set[str] = set()  # fault overtrading-cancel-wrong-direction: applied ones
        self._lock = threading.Lock()
        target = str(db) if db is not None else ":memory:"
        self._conn = sqlite3.connect(target, timeout=30, isolation_level=None, check_same_thread=False)
        if db is not None:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
        with self._lock:
            self._conn.executescript(_SCHEMA)  # idempotent DDL, before any transaction
        with self._transaction() as conn:
            self._provision(conn, accounts)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @staticmethod
    def _provision(conn: sqlite3.Connection, accounts: Iterable[Account]) -> None:
        """Create configured accounts that the ledger does not hold yet; existing balances are kept."""
        for account in accounts:
            conn.execute(
                "INSERT OR IGNORE INTO accounts VALUES (?, ?, ?, ?, ?)",
                (*account.key, account.digits, account.opening_minor),
            )
            (digits,) = conn.execute(
                "SELECT digits FROM accounts WHERE third_server_code=? AND user_name=? AND currency=?",
                account.key,
            ).fetchone()
            if digits != account.digits:
                raise ValueError(
                    f"the ledger holds account {':'.join(account.key)} with {digits} decimals, "
                    f"the configuration says {account.digits}"
                )

    # ------------------------------------------------------------ accounts

    def _find(self, conn: sqlite3.Connection, key: Key, *, money: bool = False) -> Balance | None:
        third, user, currency = key
        where = "third_server_code=? AND user_name=? AND currency=?"
        params: tuple[str, ...] = key
        if self.fault == "currency-case-insensitive" and money:
            # the money path normalises the code; the balance path stays exact (its answer would break CUR-001)
            where = "third_server_code=? AND user_name=? AND lower(currency)=lower(?)"
        elif self.fault == "long-username-accepted" and len(user) > 48:
            where, params = "third_server_code=? AND currency=?", (third, currency)
        rows = conn.execute(
            "SELECT third_server_code, user_name, currency, digits, balance_minor FROM accounts "
            f"WHERE {where}",
            params,
        ).fetchall()
        return Balance(*rows[0]) if len(rows) == 1 else None

    @staticmethod
    def _move(conn: sqlite3.Connection, key: Key | tuple[None, None, None], delta: int) -> None:
        if delta and key[0] is not None:
            conn.execute(
                "UPDATE accounts SET balance_minor = balance_minor + ? "
                "WHERE third_server_code=? AND user_name=? AND currency=?",
                (delta, *key),
            )

    def balance(self, key: Key, wait: bool = True) -> Balance | None:
        """The account's balance: one SELECT, atomic on its own (autocommit), under the connection's lock.

        With ``wait=False`` raises :class:`LedgerBusy` instead of waiting for the lock (the event loop
        reads inline when no money operation holds it, and hands the read to a thread otherwise).
        """
        if not self._lock.acquire(blocking=wait):
            raise LedgerBusy
        try:
            return self._find(self._conn, key)
        finally:
            self._lock.release()

    def balances(self) -> dict[Key, int]:
        """Every account's balance in minor units (for tests and tools)."""
        with self._transaction() as conn:
            rows = conn.execute("SELECT third_server_code, user_name, currency, balance_minor FROM accounts")
            return {(t, u, c): minor for t, u, c, minor in rows}

    # ------------------------------------------------------------ execute

    def remember_rejected_execute(self, request_unique_no: str, code: str, msg: str) -> None:
        """Remember an execute rejected before it reached the ledger (headers, parameters)."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO executes (request_unique_no, code, msg, applied, received_ms) "
                "VALUES (?, ?, ?, 0, ?)",
                (request_unique_no, code, msg, _now_ms()),
            )

    def execute(
        self,
        request_unique_no: str,
        key: Key,
        digits: int,
        delta: int,
        *,
        overdraft: bool = False,
        refuse: str | None = None,
        overtrading: bool = False,
    ) -> Outcome:
        """Apply ``delta`` minor units to the account once per requestUniqueNo.

        ``overdraft`` lets a debit take the balance below zero; ``refuse`` is a code the
        execute is refused with (remembered, nothing moved) once the account is found.
        """
        number = request_unique_no
        if self.fault in ("check-then-insert-race", "lost-update-under-concurrency"):
            # read in one transaction, write in another, with the request's work in between
            with self._transaction() as conn:
                replay = self._replay(conn, number, delta)
                account = self._find(conn, key, money=True)
            if replay is not None:
                return replay
            time.sleep(RACE_WINDOW_SECONDS)
            with self._transaction() as conn:
                if self.fault == "check-then-insert-race":  # no unique constraint: nothing stops the twin
                    return self._execute(conn, number, key, digits, delta, overdraft, refuse, duplicates=True)
                stale = account.minor if account is not None else None  # the unique constraint holds
                return self._execute(conn, number, key, digits, delta, overdraft, refuse, stale_minor=stale)
        with self._transaction() as conn:
            outcome = self._execute(conn, number, key, digits, delta, overdraft, refuse)
        if overtrading and outcome.moved and self.fault == "overtrading-cancel-wrong-direction":
            self._overtrading.add(number)
        return outcome

    def cancelled(self, request_unique_no: str) -> bool:
        """A cancel named this requestUniqueNo (fault late-execute-applies-after-cancel checks on arrival)."""
        with self._transaction() as conn:
            return conn.execute(
                "SELECT 1 FROM cancels WHERE reverse_request_unique_no=?", (request_unique_no,)
            ).fetchone() is not None

    def late_execute(self, request_unique_no: str, key: Key, digits: int, delta: int) -> Outcome:
        """Fault late-execute-applies-after-cancel: commit without looking for a cancel again."""
        with self._transaction() as conn:
            return self._execute(conn, request_unique_no, key, digits, delta, check_cancel=False)

    def _replay(self, conn: sqlite3.Connection, number: str, delta: int) -> Outcome | None:
        """The answer to a replayed execute, or None when the requestUniqueNo is new."""
        first = conn.execute(
            "SELECT code, msg, applied, third_server_code, user_name, currency, delta_minor, received_ms "
            "FROM executes WHERE request_unique_no=?",
            (number,),
        ).fetchone()
        if first is None:
            return None
        code, msg, applied, third, user, currency, _, received_ms = first
        account_key = (third, user, currency)
        if self.fault == "replay-answers-different-code":
            return _outcome("DUPLICATE_REQUEST")
        expired = self.fault == "idempotency-cache-ttl" and _now_ms() - received_ms > IDEMPOTENCY_TTL_MS
        if applied and (self.fault == "replay-moves-money-again" or expired):
            # applied again; the ledger books it on the first record, so a cancel gives back everything
            self._move(conn, account_key, delta)
            conn.execute(
                "UPDATE executes SET delta_minor = delta_minor + ?, received_ms = ? WHERE request_unique_no=?",
                (delta, _now_ms(), number),
            )
            return Outcome(code, msg, delta)
        return Outcome(code, msg)

    def _execute(
        self,
        conn: sqlite3.Connection,
        number: str,
        key: Key,
        digits: int,
        delta: int,
        overdraft: bool = False,
        refuse: str | None = None,
        *,
        duplicates: bool = False,
        stale_minor: int | None = None,
        check_cancel: bool = True,
    ) -> Outcome:
        """The execute in one transaction. The keywords are the faults' ways of getting it wrong:
        ``duplicates`` skips the duplicate check, ``stale_minor`` writes back a balance read earlier,
        ``check_cancel=False`` forgets to look for a cancel that came first."""
        if not duplicates:
            replay = self._replay(conn, number, delta)
            if replay is not None:
                return replay

        def remember(
            code: str, account: Key | None = None, moved: int = 0, msg: str | None = None
        ) -> Outcome:
            applied = code == SUCCESS
            if not applied and self.fault == "received-execute-answers-never-received":
                # only transactions are persisted; a refusal leaves no trace
                return Outcome(code, msg or MESSAGES[code])
            conn.execute(
                ("INSERT OR REPLACE" if duplicates else "INSERT")
                + " INTO executes (request_unique_no, code, msg, applied, third_server_code, user_name, "
                "currency, delta_minor, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    number,
                    code,
                    msg or MESSAGES[code],
                    int(applied),
                    *(account or (None,) * 3),
                    moved,
                    _now_ms(),
                ),
            )
            return Outcome(code, msg or MESSAGES[code], moved if applied else 0)

        cancelled = conn.execute("SELECT 1 FROM cancels WHERE reverse_request_unique_no=?", (number,))
        if check_cancel and cancelled.fetchone():
            return remember("ALREADY_CANCELLED")
        account = self._find(conn, key, money=True)
        if account is None:
            if self.fault == "unknown-account-execute-accepted":
                return remember(SUCCESS)
            if "auto-open-accounts" in self.variants and openable_currency(key[2]) and self._known_user(conn, key):
                return remember("INSUFFICIENT_FUNDS")  # the on-demand account holds nothing yet
            return remember("ACCOUNT_NOT_FOUND")
        found = (account.third_server_code, account.user_name, account.currency)
        if digits != account.digits:
            return remember(
                "INVALID_PARAMETER", found, msg=f"amountDigits must be {account.digits} for this account"
            )
        if self.fault == "execute-always-rejected":
            return remember("EXECUTE_REJECTED", found)
        if refuse is not None:
            return remember(refuse, found)
        before = account.minor if stale_minor is None else stale_minor
        after = before + delta
        if delta < 0 and after < 0 and not overdraft and self.fault != "insufficient-funds-overdraws":
            if self.fault == "refused-execute-still-debits" and before > 0:
                self._move(conn, found, -before)  # takes what there is, then reports the shortfall
            return remember("INSUFFICIENT_FUNDS", found)
        if abs(after) > MAX_MINOR:
            return remember("LIMIT_EXCEEDED", found)
        if stale_minor is not None:  # lost-update-under-concurrency: writes back what it computed
            conn.execute(
                "UPDATE accounts SET balance_minor = ? WHERE third_server_code=? AND user_name=? AND currency=?",
                (after, *found),
            )
        else:
            self._move(conn, found, delta)
        return remember(SUCCESS, found, delta)

    @staticmethod
    def _known_user(conn: sqlite3.Connection, key: Key) -> bool:
        """Variant auto-open-accounts: the wallet holds an account of this thirdServerCode and userName."""
        return conn.execute(
            "SELECT 1 FROM accounts WHERE third_server_code=? AND user_name=?", key[:2]
        ).fetchone() is not None

    def first_account_of(self, key: Key) -> Balance | None:
        """Fault balance-other-currency: the user's first account, whatever its currency."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT third_server_code, user_name, currency, digits, balance_minor FROM accounts "
                "WHERE third_server_code=? AND user_name=? ORDER BY rowid LIMIT 1",
                key[:2],
            ).fetchone()
            return Balance(*row) if row else None

    def known_user(self, key: Key) -> bool:
        with self._transaction() as conn:
            return self._known_user(conn, key)

    # ------------------------------------------------------------ cancel

    def cancel(
        self, request_unique_no: str, reverse_request_unique_no: str, claim: tuple[Key, int] | None = None
    ) -> Outcome:
        """Reverse the execute named ``reverse_request_unique_no``, once per cancel requestUniqueNo.

        ``claim`` is the account and |amount| (minor units) the cancel names; with the variant
        mismatched-cancel-refused a claim that differs from the applied execute is refused.
        With the fault lost-cancel-answer-refunds-again the refund commits here and the
        bookkeeping waits in ``Outcome.settle``, for after the answer.
        """
        if self.fault == "lost-cancel-answer-refunds-again":
            pending: list[Callable[[sqlite3.Connection], None]] = []
            with self._transaction() as conn:
                outcome = self._cancel(conn, request_unique_no, reverse_request_unique_no, claim, pending)

            def settle() -> None:
                with self._transaction() as later:
                    for write in pending:
                        write(later)

            return Outcome(outcome.code, outcome.msg, outcome.moved, settle)
        with self._transaction() as conn:
            return self._cancel(conn, request_unique_no, reverse_request_unique_no, claim)

    def _cancel(
        self,
        conn: sqlite3.Connection,
        number: str,
        reverse: str,
        claim: tuple[Key, int] | None = None,
        pending: list[Callable[[sqlite3.Connection], None]] | None = None,
    ) -> Outcome:
        def write(sql: str, params: tuple) -> None:
            if pending is None:
                conn.execute(sql, params)
            else:  # fault lost-cancel-answer-refunds-again: written in a second transaction, later
                pending.append(lambda later: later.execute(sql, params))

        first = conn.execute(
            "SELECT c.code, c.msg, c.refund_minor, e.third_server_code, e.user_name, e.currency, c.received_ms "
            "FROM cancels c LEFT JOIN executes e ON e.request_unique_no = c.reverse_request_unique_no "
            "WHERE c.request_unique_no=?",
            (number,),
        ).fetchone()
        if first is not None:
            code, msg, refunded, third, user, currency, received_ms = first
            if self.fault == "cancel-replay-answers-different-code":
                return _outcome("DUPLICATE_REQUEST")
            expired = self.fault == "idempotency-cache-ttl" and _now_ms() - received_ms > IDEMPOTENCY_TTL_MS
            if self.fault == "cancel-replay-refunds-twice" or (expired and refunded):
                self._move(conn, (third, user, currency), refunded)
                conn.execute("UPDATE cancels SET received_ms=? WHERE request_unique_no=?", (_now_ms(), number))
                return Outcome(code, msg, refunded)
            return Outcome(code, msg)

        executed = conn.execute(
            "SELECT applied, third_server_code, user_name, currency, delta_minor, reversed_by "
            "FROM executes WHERE request_unique_no=?",
            (reverse,),
        ).fetchone()
        refund = 0
        if executed is None:
            code = SUCCESS if self.fault == "cancel-unknown-answers-success" else "US_0000002"
            if self.fault == "cancel-before-execute-forgotten":
                return _outcome(code)  # nothing kept: the late execute will find no trace of this cancel
        elif not executed[0]:
            code = "US_0000002" if self.fault == "cancel-rejected-answers-us0000002" else "US_0000001"
        else:
            _, third, user, currency, moved, reversed_by = executed
            code = SUCCESS
            if claim is not None and "mismatched-cancel-refused" in self.variants and not _matches(
                claim, (third, user, currency), moved
            ):
                code = "CANCEL_MISMATCH"
            elif reversed_by is None:
                refund = 0 if self.fault == "cancel-does-not-refund" else -moved
                if self.fault == "overtrading-cancel-wrong-direction" and reverse in self._overtrading:
                    refund = moved  # reads the negative amount as "the direction to apply again"
                if self.fault == "mismatched-cancel-refunds-cancel-amount" and claim is not None:
                    (third, user, currency), claimed = claim  # the cancel's account and amount, not the execute's
                    refund = claimed if moved < 0 else -claimed
                write("UPDATE executes SET reversed_by=? WHERE request_unique_no=?", (number, reverse))
            elif self.fault == "second-cancel-refunds-again":
                refund = -moved
            elif self.fault == "second-cancel-refused" or "second-cancel-refused" in self.variants:
                code = "ALREADY_REVERSED"
            self._move(conn, (third, user, currency), refund)
        write(
            "INSERT INTO cancels VALUES (?, ?, ?, ?, ?, ?)",
            (number, reverse, code, MESSAGES[code], refund, _now_ms()),
        )
        return _outcome(code, moved=refund)


def _matches(claim: tuple[Key, int], key: Key, moved: int) -> bool:
    """Variant mismatched-cancel-refused: the cancel names the execute's account and amount.

    An execute that moved nothing (an ignored ABNORMAL_OVERTRADING) has no amount to compare.
    """
    claimed_key, claimed_minor = claim
    return tuple(claimed_key) == tuple(key) and (moved == 0 or claimed_minor == abs(moved))
