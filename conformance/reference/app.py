"""The wallet's HTTP surface: three POST routes under the prefix (Starlette).

Every POST on the three paths answers HTTP 200 with the JSON envelope, whatever
happens (spec decision D5), unless a fault says otherwise; other methods answer
405 with ``Allow: POST``; unknown paths 404. The order of the rules: headers,
media type, JSON, body fields, then the ledger (account, digits, funds,
idempotence). The ledger work runs in Starlette's thread pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
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

PATHS = {
    BALANCE: "/get-user-amount",
    EXECUTE: "/external-system-credit-limit-adjustment",
    CANCEL: "/cancel-external-system-credit-limit-adjustment",
}
DOCUMENTED_HEADERS = ("trace", "companyId", "timestamp")
SLOW_SECONDS = 3.2  # faults slow-execute and slow-cancel: beyond the 3 s deadline

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
        return render(answer, request.headers.get("trace", ""), time.perf_counter(), self.fault)

    async def handle(self, request: Request, operation: str) -> Response:
        started = time.perf_counter()
        trace = request.headers.get("trace", "")
        try:
            if request.method != "POST":
                if self.fault == "get-answers-200":
                    answer = failure("METHOD_NOT_ALLOWED", "use POST")
                else:
                    answer = failure("METHOD_NOT_ALLOWED", "use POST", 405, (("Allow", "POST"),))
                slow = False
            else:
                headers = documented_headers(request.scope, self.fault == "header-names-case-sensitive")
                content_type = request.headers.get("content-type")
                raw = await request.body()
                if self.fault == "non-object-body-html-500" and _json_but_not_object(raw):
                    return Response(HTML_500, status_code=500, media_type="text/html")
                answer, slow = await run_in_threadpool(self.process, operation, headers, content_type, raw)
            if slow:
                await asyncio.sleep(SLOW_SECONDS)
        except Exception:
            log.exception("%s failed", operation)
            answer = failure("INTERNAL_ERROR", "internal error")
        return render(answer, trace, started, self.fault)

    # ------------------------------------------------------------ operations

    def process(
        self, operation: str, headers: dict[str, str], content_type: str | None, raw: bytes
    ) -> tuple[Answer, bool]:
        """The answer to one POST, and whether a slow fault should delay it."""
        body, json_rejection = parse_body(raw)
        checked = (
            check_headers(operation, headers, self.fault)
            or check_media_type(content_type, self.fault)
            or json_rejection
        )
        malformed = json_rejection is not None and checked is json_rejection
        if malformed and operation != BALANCE and self.fault == "malformed-json-answered-success":
            return success({}), False
        if checked is None:
            checked = validate_body(operation, body, self.fault)
        if isinstance(checked, Rejection):
            if operation == EXECUTE:
                number = readable_request_unique_no(body, self.fault)
                if number is not None:
                    self.ledger.remember_rejected_execute(number, checked.code, checked.msg)
            return failure(checked.code, checked.msg), False
        if operation == BALANCE:
            return self._balance(checked.account_key), False
        if operation == EXECUTE:
            delta = -checked.minor
            if checked.body["operationType"] == "NORMAL_CLOSE" and self.fault != "close-debits":
                delta = checked.minor
            outcome = self.ledger.execute(
                checked.body["requestUniqueNo"], checked.account_key, checked.body["amountDigits"], delta
            )
            # slow-execute: the settlement path (a credit, NORMAL_CLOSE) is slow; other executes stay fast
            return Answer(outcome.code, outcome.msg, {}), outcome.moved > 0 and self.fault == "slow-execute"
        outcome = self.ledger.cancel(checked.body["requestUniqueNo"], checked.body["reverseRequestUniqueNo"])
        # slow-cancel: clawing back a credit (the cancel of a NORMAL_CLOSE) is slow; other cancels stay fast
        return Answer(outcome.code, outcome.msg, {}), outcome.moved < 0 and self.fault == "slow-cancel"

    def _balance(self, key: tuple[str, str, str]) -> Answer:
        found = self.ledger.balance(key)
        currency = key[2]
        if found is None:
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
