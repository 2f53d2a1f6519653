"""The wallet's HTTP surface: three POST routes under the prefix (an ASGI app on Starlette's Request/Response).

Every POST on the three paths answers HTTP 200 with the JSON envelope, whatever
happens (spec decision D5), unless a fault says otherwise; other methods answer
405 with ``Allow: POST``; unknown paths 404. The order of the rules: headers,
media type, JSON, body fields, then the ledger (account, digits, funds,
idempotence). The ledger work runs in Starlette's thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from conformance.reference.accounts import format_minor
from conformance.reference.config import WalletConfig
from conformance.reference.envelope import Answer, failure, render, success
from conformance.reference.store import Balance, Ledger, LedgerBusy
from conformance.reference.validation import (
    BALANCE,
    CANCEL,
    EXECUTE,
    Rejection,
    check_headers,
    check_media_type,
    parse_body,
    readable_request_unique_no,
    validate_body,
)
from conformance.reference.variants import ON_DEMAND_DIGITS, SLOW_EXECUTES, SLOW_RANGE, openable_currency

PATHS = {
    BALANCE: "/get-user-amount",
    EXECUTE: "/external-system-credit-limit-adjustment",
    CANCEL: "/cancel-external-system-credit-limit-adjustment",
}
DOCUMENTED_HEADERS = ("trace", "companyId", "timestamp")
_BY_LOWER_NAME = {name.lower().encode(): name for name in DOCUMENTED_HEADERS}
SLOW_SECONDS = 3.2  # faults slow-execute and slow-cancel: beyond the 3 s deadline
LOST_ANSWER_SECONDS = 0.3  # fault lost-cancel-answer-refunds-again: between the refund and the bookkeeping
LATE_SECONDS = 3.3  # fault late-execute-applies-after-cancel: the slow downstream call before the commit
SERIAL_SECONDS = 0.5  # fault serialised-slow-executes: the synchronous downstream call under one lock
SLOW_SEED = 20261201  # variant slow-but-in-time: the jitter is the same in every run

log = logging.getLogger(__name__)


_READ_HEADERS = frozenset((b"trace", b"companyid", b"timestamp", b"content-type", b"accept-encoding"))


def request_headers(scope: dict[str, Any]) -> dict[bytes, str]:
    """The first value of each header the wallet reads, by its lower-case name (one pass over the scope)."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in _READ_HEADERS and name not in found:
            found[name] = value.decode("latin-1")
    return found


async def read_body(request: Request) -> bytes:
    """The request body (Starlette's ``Request.body`` without its stream wrapper)."""
    chunks = []
    while True:
        message = await request.receive()
        if message["type"] != "http.request":  # the client went away: the whole request if the protocol kept it
            return request.scope.get("extensions", {}).get("wallet.received_body", b"".join(chunks))
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def documented_headers(scope: dict[str, Any], exact_names: bool) -> dict[str, str]:
    """The documented request headers by their documented spelling.

    Names match case-insensitively (RFC 9110 §5.1). With ``exact_names`` (fault
    header-names-case-sensitive) only the exact spellings count; the raw names come
    from the ``raw_header_names`` scope extension set by the wallet's HTTP protocol.
    """
    if not exact_names:  # ASGI servers hand the names in lower case
        read = request_headers(scope)
        return {documented: read[name] for name, documented in _BY_LOWER_NAME.items() if name in read}
    raw_names = scope.get("extensions", {}).get("raw_header_names")
    found: dict[str, str] = {}
    for index, (name, value) in enumerate(scope["headers"]):
        spelled = (raw_names[index] if raw_names else name).decode("latin-1")
        for documented in DOCUMENTED_HEADERS:
            same = spelled == documented if exact_names else spelled.lower() == documented.lower()
            if same:
                found.setdefault(documented, value.decode("latin-1"))
    return found


HTML_500 = (
    "<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1></body></html>"
)


def _json_but_not_object(raw: bytes) -> bool:
    """Fault non-object-body-html-500: a well-formed JSON body that is an array, a string, a number, ..."""
    try:
        return not isinstance(json.loads(raw), dict)
    except ValueError:
        return False


class Wallet:
    """The three operations over one ledger, with the configured key style and fault."""

    def __init__(self, config: WalletConfig, ledger: Ledger):
        self.config = config
        self.ledger = ledger
        self.fault = config.fault
        self.variants = config.variants
        self._executes = itertools.count(1)  # variant slow-but-in-time: which execute this is
        self._jitter = random.Random(SLOW_SEED)
        self._jitter_lock = threading.Lock()
        self._answers = itertools.count(1)  # fault flaky-trace-echo: every third answer
        self._downstream = threading.Lock()  # fault serialised-slow-executes: one lock for every execute
        self._in_flight: dict[str, asyncio.Lock] = {}  # fault lost-cancel-answer-refunds-again: per number

    # ------------------------------------------------------------ HTTP

    def endpoints(self) -> dict[str, _Endpoint]:
        """The three operations by their full path."""
        prefix = self.config.prefix
        return {prefix + path: _Endpoint(self.handle, op) for op, path in PATHS.items()}

    async def not_found(self, request: Request, *_: Any) -> Response:
        answer = failure("NOT_FOUND", f"no operation at {request.url.path}", status=404)
        return self._render(request, answer, request.headers.get("trace", ""), time.perf_counter())

    def _render(self, request: Request, answer: Answer, trace: str, started: float) -> Response:
        if self.fault == "flaky-trace-echo":
            count = next(self._answers)
            if count % 3 == 0:
                trace = f"{trace}-{count}"  # a pooled buffer still holds another request's trace
        if not self.variants:
            return render(answer, trace, started, self.fault)
        encoding = request_headers(request.scope).get(b"accept-encoding", "")
        return render(answer, trace, started, self.fault, self.variants, encoding)

    async def handle(self, request: Request, operation: str) -> Response:
        started = time.perf_counter()
        read = request_headers(request.scope)
        trace = read.get(b"trace", "")
        try:
            if request.method != "POST":
                if self.fault == "get-answers-200":
                    answer = success({})  # every method is routed to the handler, which finds nothing to refuse
                else:
                    answer = failure("METHOD_NOT_ALLOWED", "use POST", 405, (("Allow", "POST"),))
                delay = 0.0
            else:
                if self.fault == "header-names-case-sensitive":
                    headers = documented_headers(request.scope, True)
                else:
                    headers = {documented: read[name] for name, documented in _BY_LOWER_NAME.items() if name in read}
                content_type = read.get(b"content-type")
                raw = await read_body(request)
                if self.fault == "non-object-body-html-500" and _json_but_not_object(raw):
                    return Response(HTML_500, status_code=500, media_type="text/html")
                answer = None
                if operation == BALANCE:  # a read: inline on the event loop unless the ledger is busy
                    with contextlib.suppress(LedgerBusy):
                        answer, delay = self.process(operation, headers, content_type, raw, wait=False)
                if answer is None and self.fault == "lost-cancel-answer-refunds-again" and operation == CANCEL:
                    return await self._cancel_then_bookkeeping(request, headers, content_type, raw, trace, started)
                if answer is None:
                    answer, delay = await run_in_threadpool(self.process, operation, headers, content_type, raw)
                if operation == EXECUTE and "slow-but-in-time" in self.variants:
                    delay = max(delay, self._in_time_delay())
            if delay:
                await asyncio.sleep(delay)
        except Exception:
            log.exception("%s failed", operation)
            answer = failure("INTERNAL_ERROR", "internal error")
        return self._render(request, answer, trace, started)

    async def _cancel_then_bookkeeping(
        self, request: Request, headers: dict[str, str], content_type: str | None, raw: bytes, trace: str,
        started: float,
    ) -> Response:
        """Fault lost-cancel-answer-refunds-again: per-requestUniqueNo lock (a Redis lock, say), the refund,
        a notification call, then the bookkeeping, skipped when the request's context is cancelled because the
        client went away meanwhile. Concurrent duplicates wait on the lock and find the record; a retry after a
        dropped connection finds none and refunds again."""
        try:
            number = str(json.loads(raw).get("requestUniqueNo"))
        except (ValueError, AttributeError):
            number = ""
        lock = self._in_flight.setdefault(number, asyncio.Lock())
        async with lock:
            answer, _ = await run_in_threadpool(self.process, CANCEL, headers, content_type, raw)
            if answer.settle is not None:
                await asyncio.sleep(LOST_ANSWER_SECONDS)
                if await request.is_disconnected():
                    return Response(b"", status_code=499)
                await run_in_threadpool(answer.settle)
        return self._render(request, answer, trace, started)

    def _in_time_delay(self) -> float:
        """Variant slow-but-in-time: 1.5-2.5 s for the first executes, then none."""
        with self._jitter_lock:
            if next(self._executes) > SLOW_EXECUTES:
                return 0.0
            return self._jitter.uniform(*SLOW_RANGE)

    # ------------------------------------------------------------ operations

    def process(
        self, operation: str, headers: dict[str, str], content_type: str | None, raw: bytes, wait: bool = True
    ) -> tuple[Answer, float]:
        """The answer to one POST, and how long a slow fault delays it (seconds)."""
        variants = self.variants
        body, json_rejection = parse_body(raw)
        checked = (
            check_headers(operation, headers, self.fault, variants)
            or check_media_type(content_type, self.fault)
            or json_rejection
        )
        malformed = json_rejection is not None and checked is json_rejection
        if malformed and operation != BALANCE and self.fault == "malformed-json-answered-success":
            return success({}), 0.0
        if checked is None:
            checked = validate_body(operation, body, self.fault, variants)
        if isinstance(checked, Rejection):
            if operation == EXECUTE and "invalid-execute-not-remembered" not in variants:
                number = readable_request_unique_no(body, self.fault)
                if number is not None:
                    self.ledger.remember_rejected_execute(number, checked.code, checked.msg)
            return failure(checked.code, checked.msg), 0.0
        if operation == BALANCE:
            return self._balance(checked.account_key, wait), 0.0
        if operation == EXECUTE:
            operation_type = checked.body["operationType"]
            delta = -checked.minor
            if operation_type == "NORMAL_CLOSE" and self.fault != "close-debits":
                delta = checked.minor
            overtrading = operation_type == "ABNORMAL_OVERTRADING"
            if overtrading and "overtrading-ignored-success" in variants:
                delta = 0  # answered "0", nothing moves
            number = checked.body["requestUniqueNo"]
            late = self.fault == "late-execute-applies-after-cancel" and operation_type == "NORMAL_CLOSE"
            if late and not self.ledger.cancelled(number):  # checked on arrival, not again at the commit
                time.sleep(LATE_SECONDS)  # the slow downstream call (a settlement service)
                digits = checked.body["amountDigits"]
                outcome = self.ledger.late_execute(number, checked.account_key, digits, delta)
                return Answer(outcome.code, outcome.msg, self._adjusted_data(outcome.ok, checked)), 0.0
            if self.fault == "serialised-slow-executes":
                with self._downstream:  # a synchronous downstream call, one at a time
                    time.sleep(SERIAL_SECONDS)
                    return self._execute(checked, number, delta, overtrading)
            return self._execute(checked, number, delta, overtrading)
        claim = (checked.account_key, checked.minor)
        outcome = self.ledger.cancel(
            checked.body["requestUniqueNo"], checked.body["reverseRequestUniqueNo"], claim
        )
        # slow-cancel: clawing back a credit (the cancel of a NORMAL_CLOSE) is slow; other cancels stay fast
        slow = outcome.moved < 0 and self.fault == "slow-cancel"
        answer = Answer(outcome.code, outcome.msg, self._adjusted_data(outcome.ok, checked), settle=outcome.settle)
        return answer, (SLOW_SECONDS if slow else 0.0)

    def _execute(self, checked: Any, number: str, delta: int, overtrading: bool) -> tuple[Answer, float]:
        variants = self.variants
        outcome = self.ledger.execute(
            number,
            checked.account_key,
            checked.body["amountDigits"],
            delta,
            overdraft=overtrading and "overtrading-overdraws" in variants,
            refuse="OPERATION_NOT_SUPPORTED" if overtrading and "overtrading-ignored-refused" in variants else None,
            overtrading=overtrading,
        )
        # slow-execute: the settlement path (a credit, NORMAL_CLOSE) is slow; other executes stay fast
        slow = outcome.moved > 0 and self.fault == "slow-execute"
        return Answer(outcome.code, outcome.msg, self._adjusted_data(outcome.ok, checked)), (
            SLOW_SECONDS if slow else 0.0
        )

    def _adjusted_data(self, ok: bool, checked: Any) -> dict[str, Any]:
        """Success data of execute and cancel: {}, or the named account's balance (execute-data-balance)."""
        if not ok or "execute-data-balance" not in self.variants:
            return {}
        found = self.ledger.balance(checked.account_key)
        if found is None:
            return {}
        return {"balance": format_minor(found.minor, found.digits), "currency": found.currency}

    def _balance(self, key: tuple[str, str, str], wait: bool = True) -> Answer:
        found = self.ledger.balance(key, wait)
        currency = key[2]
        if found is None:
            if "auto-open-accounts" in self.variants and openable_currency(currency) and self.ledger.known_user(key):
                digits = ON_DEMAND_DIGITS.get(currency, 2)
                return success(self.balance_data(Balance(*key, digits=digits, minor=0)))
            if self.fault == "balance-other-currency" and openable_currency(currency):
                # a valid code the user holds no account in: falls back to the user's first (default) account
                first = self.ledger.first_account_of(key)
                if first is not None:
                    return success(self.balance_data(first))
            held = {a.currency: a.digits for a in self.config.accounts}
            if self.fault == "unknown-account-balance-zero" and currency in held:
                return success(self.balance_data(Balance(*key, digits=held[currency], minor=0)))
            if self.fault == "unknown-account-server-error":
                return failure("INTERNAL_ERROR", "account lookup failed", status=500)
            return failure("ACCOUNT_NOT_FOUND", "no account for this thirdServerCode, userName and currency")
        if self.fault == "balance-refused" and found.minor != self._opening_minor(key):
            # a balance cache that every adjustment invalidates and whose refill query fails
            return failure("BALANCE_UNAVAILABLE", "the balance is not available")
        return success(self.balance_data(found))

    def _opening_minor(self, key: tuple[str, str, str]) -> int | None:
        return next((a.opening_minor for a in self.config.accounts if a.key == key), None)

    def balance_data(self, balance: Balance) -> dict[str, Any]:
        amount: Any = format_minor(balance.minor, balance.digits)
        digits: Any = balance.digits
        currency = balance.currency
        user_name = balance.user_name
        fault = self.fault
        if fault == "amount-thousands-separators" and abs(balance.minor) >= 10 ** (6 + balance.digits):
            whole, dot, fraction = amount.partition(".")
            amount = f"{int(whole):,}{dot}{fraction}"
        elif fault == "amount-decimals-mismatch":
            drop = {0: 0, 1: 2}.get(balance.digits, 1)  # one decimal fewer than amountDigits, or one more
            amount = amount[: len(amount) - drop] if drop else amount + ".0"
        elif fault == "amountdigits-as-string" and balance.digits == 0:
            digits = str(digits)
        elif fault == "lowercase-currency-in-balance":
            currency = currency.lower()
        elif fault == "non-iso-currency-in-balance":
            currency = "X" + currency
        elif fault == "balance-username-not-echoed":
            user_name = balance.third_server_code
        snake = self.config.keys == "snake"
        if fault == "balance-mixed-key-styles":
            return {
                "user_name" if snake else "userName": user_name,
                "currency": currency,
                "amount": amount,
                "amountDigits" if snake else "amount_digits": digits,
            }
        if snake:
            return {"user_name": user_name, "currency": currency, "amount": amount, "amount_digits": digits}
        return {"userName": user_name, "currency": currency, "amount": amount, "amountDigits": digits}


class _Endpoint:
    """A plain ASGI endpoint, so that the route matches every method and the handler answers 405 itself."""

    def __init__(self, handler: Callable[..., Awaitable[Response]], *args: Any):
        self.handler = handler
        self.args = args

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        response = await self.handler(Request(scope, receive), *self.args)
        await response(scope, receive, send)


class WalletApp:
    """The ASGI application: the three paths by exact match (a dict, no router), anything else 404."""

    def __init__(self, wallet: Wallet):
        self.endpoints = wallet.endpoints()
        self.not_found = _Endpoint(wallet.not_found)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan is off; websockets are not served
            return
        await self.endpoints.get(scope["path"], self.not_found)(scope, receive, send)


def create_app(config: WalletConfig, ledger: Ledger) -> WalletApp:
    return WalletApp(Wallet(config, ledger))
