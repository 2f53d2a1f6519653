"""The wallet's HTTP surface: three POST routes under the prefix (Starlette).

Every POST on the three paths answers HTTP 200 with the JSON envelope, whatever
happens (spec decision D5), unless a fault says otherwise; other methods answer
405 with ``Allow: POST``; unknown paths 404. The order of the rules: headers,
media type, JSON, body fields, then the ledger (account, digits, funds,
idempotence). The ledger work runs in Starlette's thread pool.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conformance.reference.accounts import format_minor
from conformance.reference.config import WalletConfig
from conformance.reference.envelope import Answer, failure, render, success
from conformance.reference.store import Balance, Ledger
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
SLOW_SECONDS = 3.2  # faults slow-execute and slow-cancel: beyond the 3 s deadline
LOST_ANSWER_SECONDS = 0.3  # fault lost-cancel-answer-refunds-again: between the refund and the bookkeeping
LATE_SECONDS = 3.3  # fault late-execute-applies-after-cancel: the slow downstream call before the commit
SERIAL_SECONDS = 0.5  # fault serialised-slow-executes: the synchronous downstream call under one lock
SLOW_SEED = 20261201  # variant slow-but-in-time: the jitter is the same in every run

log = logging.getLogger(__name__)


def documented_headers(scope: dict[str, Any], exact_names: bool) -> dict[str, str]:
    """The documented request headers by their documented spelling.

    Names match case-insensitively (RFC 9110 §5.1). With ``exact_names`` (fault
    header-names-case-sensitive) only the exact spellings count; the raw names come
    from the ``raw_header_names`` scope extension set by the wallet's HTTP protocol.
    """
    raw_names = scope.get("extensions", {}).get("raw_header_names") if exact_names else None
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
        self.variants = config.variants
        self._executes = itertools.count(1)  # variant slow-but-in-time: which execute this is
        self._jitter = random.Random(SLOW_SEED)
        self._jitter_lock = threading.Lock()
        self._answers = itertools.count(1)  # fault flaky-trace-echo: every third answer
        self._downstream = threading.Lock()  # fault serialised-slow-executes: one lock for every execute

    @property
    def fault(self) -> str | None:
        return self.config.fault

    # ------------------------------------------------------------ HTTP

    def routes(self) -> list[Route]:
        prefix = self.config.prefix
        routes = [Route(prefix + path, _Endpoint(self.handle, op)) for op, path in PATHS.items()]
        routes.append(Route("/{path:path}", _Endpoint(self.not_found)))
        return routes

    async def not_found(self, request: Request, *_: Any) -> Response:
        answer = failure("NOT_FOUND", f"no operation at {request.url.path}", status=404)
        return self._render(request, answer, request.headers.get("trace", ""), time.perf_counter())

    def _render(self, request: Request, answer: Answer, trace: str, started: float) -> Response:
        if self.fault == "flaky-trace-echo" and next(self._answers) % 3 == 0:
            trace = f"{trace}-{next(self._answers)}"  # a pooled buffer still holds another request's trace
        if not self.variants:
            return render(answer, trace, started, self.fault)
        encoding = request.headers.get("accept-encoding", "")
        return render(answer, trace, started, self.fault, self.variants, encoding)

    async def handle(self, request: Request, operation: str) -> Response:
        started = time.perf_counter()
        trace = request.headers.get("trace", "")
        try:
            if request.method != "POST":
                if self.fault == "get-answers-200":
                    answer = failure("METHOD_NOT_ALLOWED", "use POST")
                else:
                    answer = failure("METHOD_NOT_ALLOWED", "use POST", 405, (("Allow", "POST"),))
                delay = 0.0
            else:
                headers = documented_headers(request.scope, self.fault == "header-names-case-sensitive")
                content_type = request.headers.get("content-type")
                raw = await request.body()
                if self.fault == "non-object-body-html-500" and _json_but_not_object(raw):
                    return Response(HTML_500, status_code=500, media_type="text/html")
                answer, delay = await run_in_threadpool(self.process, operation, headers, content_type, raw)
                if operation == EXECUTE and "slow-but-in-time" in self.variants:
                    delay = max(delay, self._in_time_delay())
            if delay:
                await asyncio.sleep(delay)
            if answer.settle is not None:
                # fault lost-cancel-answer-refunds-again: a notification call, then the bookkeeping, which
                # is skipped when the request's context is cancelled (the client went away meanwhile)
                await asyncio.sleep(LOST_ANSWER_SECONDS)
                if await request.is_disconnected():
                    return Response(b"", status_code=499)
                await run_in_threadpool(answer.settle)
        except Exception:
            log.exception("%s failed", operation)
            answer = failure("INTERNAL_ERROR", "internal error")
        return self._render(request, answer, trace, started)

    def _in_time_delay(self) -> float:
        """Variant slow-but-in-time: 1.5-2.5 s for the first executes, then none."""
        with self._jitter_lock:
            if next(self._executes) > SLOW_EXECUTES:
                return 0.0
            return self._jitter.uniform(*SLOW_RANGE)

    # ------------------------------------------------------------ operations

    def process(
        self, operation: str, headers: dict[str, str], content_type: str | None, raw: bytes
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
            return self._balance(checked.account_key), 0.0
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

    def _balance(self, key: tuple[str, str, str]) -> Answer:
        found = self.ledger.balance(key)
        currency = key[2]
        if found is None:
            if "auto-open-accounts" in self.variants and openable_currency(currency) and self.ledger.known_user(key):
                digits = ON_DEMAND_DIGITS.get(currency, 2)
                return success(self.balance_data(Balance(*key, digits=digits, minor=0)))
            if self.fault == "balance-other-currency":
                # falls back to the user's first account, and builds the answer from the request
                first = self.ledger.first_account_of(key)
                if first is not None:
                    return success(self.balance_data(Balance(*key, digits=first.digits, minor=first.minor)))
            held = {a.currency: a.digits for a in self.config.accounts}
            if self.fault == "unknown-account-balance-zero" and currency in held:
                return success(self.balance_data(Balance(*key, digits=held[currency], minor=0)))
            if self.fault == "unknown-account-server-error":
                return failure("INTERNAL_ERROR", "account lookup failed", status=500)
            return failure("ACCOUNT_NOT_FOUND", "no account for this thirdServerCode, userName and currency")
        if self.fault == "balance-refused" and len(found.currency) != 3:
            return failure("BALANCE_UNAVAILABLE", "the balance is not available")
        return success(self.balance_data(found))

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


def create_app(config: WalletConfig, ledger: Ledger) -> Starlette:
    return Starlette(routes=Wallet(config, ledger).routes())
