"""Helpers for the reference wallet tests: a small HTTP client and valid request builders.

Imported as a plain module by tests/test_reference_*.py (not a pytest plugin).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests

from conformance.reference import WalletConfig, serve

BALANCE_PATH = "/get-user-amount"
EXECUTE_PATH = "/external-system-credit-limit-adjustment"
CANCEL_PATH = "/cancel-external-system-credit-limit-adjustment"
PATHS = {"balance": BALANCE_PATH, "execute": EXECUTE_PATH, "cancel": CANCEL_PATH}

USD = ("W-1001", "86000001", "USD")
HKD = ("W-1002", "86000002", "HKD")
USDT = ("W-1003", "86000003", "USDT")
JPY = ("W-1004", "86000004", "JPY")
EUR = ("W-1005", "86000001", "EUR")
DIGITS = {USD: 2, HKD: 4, USDT: 6, JPY: 0, EUR: 2}
REQUEST_TIME = 1764064800000

_traces = itertools.count(1)


def fresh(prefix: str = "R") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def headers(**overrides: str | None) -> dict[str, str]:
    """Valid headers; ``name=None`` drops one."""
    base: dict[str, str | None] = {
        "trace": f"t-{next(_traces):06d}-{uuid.uuid4().hex[:8]}",
        "companyId": "439",
        "timestamp": "1764064800000",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def balance_body(account: tuple[str, str, str] = USD, **overrides: Any) -> dict[str, Any]:
    third, user, currency = account
    return _apply({"thirdServerCode": third, "userName": user, "currency": currency}, overrides)


def execute_body(
    amount: str = "10.00",
    /,
    operation_type: str = "OPEN_POSITION",
    account: tuple[str, str, str] = USD,
    number: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    third, user, currency = account
    body = {
        "thirdServerCode": third,
        "userName": user,
        "currency": currency,
        "bizType": 1,
        "operationType": operation_type,
        "amount": amount,
        "amountDigits": len(amount.partition(".")[2]),
        "orderId": 7200000000000001,
        "requestUniqueNo": number or fresh("E"),
        "requestTime": REQUEST_TIME,
        "ip": "203.0.113.7",
        "metadata": '{"symbol":"EURUSD"}',
    }
    return _apply(body, overrides)


def cancel_body(
    reverse: str,
    amount: str = "10.00",
    /,
    account: tuple[str, str, str] = USD,
    number: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    body = execute_body(amount, account=account, number=number or fresh("C"))
    del body["operationType"], body["metadata"]
    body.update(reverseRequestUniqueNo=reverse, cancelRemark="platform timeout")
    return _apply(body, overrides)


_DROP = object()


def drop() -> Any:
    """A marker for ``**overrides``: remove the field."""
    return _DROP


def _apply(body: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        if value is _DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


@dataclass
class Reply:
    status: int
    headers: requests.structures.CaseInsensitiveDict
    text: str
    sent_trace: str | None
    elapsed: float

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None

    @property
    def code(self) -> Any:
        body = self.json
        return body.get("code") if isinstance(body, dict) else None

    @property
    def ok(self) -> Any:
        body = self.json
        return body.get("ok") if isinstance(body, dict) else None


class WalletClient:
    def __init__(self, base_url: str):
        self.base_url = base_url
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def post(
        self,
        path: str,
        body: Any = None,
        hdrs: dict[str, str] | None = None,
        raw: bytes | None = None,
        timeout: float = 10,
        content_type: str | None = "application/json",
    ) -> Reply:
        hdrs = headers() if hdrs is None else hdrs
        data = raw if raw is not None else json.dumps(body).encode()
        sent = {**hdrs, "Content-Type": content_type} if content_type is not None else dict(hdrs)
        response = self.session.post(self.base_url + path, data=data, headers=sent, timeout=timeout)
        trace = next((v for k, v in hdrs.items() if k.lower() == "trace"), None)
        return Reply(
            response.status_code, response.headers, response.text, trace, response.elapsed.total_seconds()
        )

    def request(self, method: str, path: str, hdrs: dict[str, str] | None = None) -> Reply:
        hdrs = headers() if hdrs is None else hdrs
        response = self.session.request(method, self.base_url + path, headers=hdrs, timeout=10)
        return Reply(
            response.status_code,
            response.headers,
            response.text,
            hdrs.get("trace"),
            response.elapsed.total_seconds(),
        )

    def balance(
        self, account: tuple[str, str, str] = USD, hdrs: dict[str, str] | None = None, **overrides: Any
    ) -> Reply:
        return self.post(BALANCE_PATH, balance_body(account, **overrides), hdrs)

    def execute(self, *args: Any, hdrs: dict[str, str] | None = None, **kwargs: Any) -> Reply:
        return self.post(EXECUTE_PATH, execute_body(*args, **kwargs), hdrs)

    def cancel(self, *args: Any, hdrs: dict[str, str] | None = None, **kwargs: Any) -> Reply:
        return self.post(CANCEL_PATH, cancel_body(*args, **kwargs), hdrs)

    def amount(self, account: tuple[str, str, str] = USD) -> Decimal:
        """The account's balance as a Decimal (via get-user-amount)."""
        reply = self.balance(account)
        assert reply.code == "0", reply.text
        data = reply.json["data"]
        return Decimal(data["amount"])


_background_stops: list[threading.Thread] = []


@contextlib.contextmanager
def running(config: WalletConfig | None = None, background_stop: bool = False) -> Iterator[WalletClient]:
    """A wallet in-process and a client for it.

    uvicorn needs ~0.2 s to stop; with ``background_stop`` the stop happens in a thread
    (joined by :func:`join_background_stops`), so many short-lived wallets stop in parallel.
    """
    context = serve(config or WalletConfig())
    client = WalletClient(context.__enter__())
    try:
        yield client
    finally:
        client.close()
        if background_stop:
            stopper = threading.Thread(target=context.__exit__, args=(None, None, None), daemon=True)
            stopper.start()
            _background_stops.append(stopper)
        else:
            context.__exit__(None, None, None)


def join_background_stops() -> None:
    while _background_stops:
        _background_stops.pop().join(timeout=30)


def assert_envelope(reply: Reply) -> dict[str, Any]:
    """The envelope rules every answer of the reference wallet keeps."""
    assert reply.headers["content-type"] == "application/json", reply.headers
    body = reply.json
    assert isinstance(body, dict), reply.text
    assert set(body) == {"code", "msg", "bizCode", "tm", "trace", "msgParams", "data", "ok", "fail"}
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["msg"], str)
    assert body["bizCode"] == ""
    assert type(body["tm"]) is int and body["tm"] >= 0
    assert body["trace"] == (reply.sent_trace if reply.sent_trace is not None else "")
    assert body["msgParams"] is None
    assert type(body["ok"]) is bool and type(body["fail"]) is bool
    assert body["ok"] is (not body["fail"])
    assert body["ok"] is (body["code"] == "0")
    if body["ok"]:
        assert isinstance(body["data"], dict)
    else:
        assert body["data"] is None
    return body


def assert_rejected(reply: Reply, code: str | None = None) -> dict[str, Any]:
    assert reply.status == 200, (reply.status, reply.text)
    body = assert_envelope(reply)
    assert body["ok"] is False, reply.text
    if code is not None:
        assert body["code"] == code, reply.text
    return body


def assert_accepted(reply: Reply) -> dict[str, Any]:
    assert reply.status == 200, (reply.status, reply.text)
    body = assert_envelope(reply)
    assert body["code"] == "0", reply.text
    return body
