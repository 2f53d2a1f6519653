"""The reference wallet's envelope, status codes and header handling (ENV, HDR-005, ROB)."""

from __future__ import annotations

import json
import re
import socket
import urllib.parse

import pytest
from conftest_reference import (
    BALANCE_PATH,
    CANCEL_PATH,
    EXECUTE_PATH,
    PATHS,
    WalletClient,
    assert_accepted,
    assert_envelope,
    assert_rejected,
    balance_body,
    cancel_body,
    execute_body,
    fresh,
    headers,
    running,
)

from conformance.reference import WalletConfig


@pytest.fixture(scope="module")
def wallet():
    with running() as client:
        yield client


def test_balance_success_envelope(wallet: WalletClient):
    body = assert_accepted(wallet.balance())
    assert body["msg"] == "Success"
    assert body["data"] == {
        "userName": "86000001",
        "currency": "USD",
        "amount": "100000.00",
        "amountDigits": 2,
    }


def test_execute_and_cancel_success_envelope(wallet: WalletClient):
    number = fresh("E")
    body = assert_accepted(wallet.execute("1.00", number=number))
    assert body["data"] == {}
    body = assert_accepted(wallet.cancel(number, "1.00"))
    assert body["data"] == {}


ERROR_KINDS = {
    "missing header": (BALANCE_PATH, balance_body(), headers(trace=None), None, "INVALID_HEADER"),
    "bad header": (EXECUTE_PATH, execute_body(), headers(companyId="x"), None, "INVALID_HEADER"),
    "malformed json": (CANCEL_PATH, None, headers(), b'{"thirdServerCode": ', "INVALID_JSON"),
    "empty body": (BALANCE_PATH, None, headers(), b"", "INVALID_JSON"),
    "not utf-8": (BALANCE_PATH, None, headers(), b'{"a": "\xff"}', "INVALID_JSON"),
    "NaN": (EXECUTE_PATH, None, headers(), b'{"amountDigits": NaN}', "INVALID_JSON"),
    "deep nesting": (EXECUTE_PATH, None, headers(), b"[" * 100000 + b"]" * 100000, "INVALID_JSON"),
    "array body": (EXECUTE_PATH, [1, 2], headers(), None, "INVALID_PARAMETER"),
    "bad field": (EXECUTE_PATH, execute_body(bizType=99), headers(), None, "INVALID_PARAMETER"),
    "lone surrogate": (
        BALANCE_PATH,
        None,
        headers(),
        b'{"thirdServerCode": "\\ud800", "userName": "1", "currency": "USD"}',
        "INVALID_PARAMETER",
    ),
    "unknown account": (
        BALANCE_PATH,
        balance_body(("W-9", "1", "USD")),
        headers(),
        None,
        "ACCOUNT_NOT_FOUND",
    ),
    "insufficient funds": (EXECUTE_PATH, execute_body("100000000.00"), headers(), None, "INSUFFICIENT_FUNDS"),
    "never received": (CANCEL_PATH, cancel_body(fresh("E")), headers(), None, "US_0000002"),
}


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_error_envelope(wallet: WalletClient, kind: str):
    path, body, hdrs, raw, code = ERROR_KINDS[kind]
    reply = wallet.post(path, body, hdrs, raw=raw)
    assert_rejected(reply, code)


def test_received_not_applied_envelope(wallet: WalletClient):
    number = fresh("E")
    assert_rejected(wallet.execute("100000000.00", number=number), "INSUFFICIENT_FUNDS")
    assert_rejected(wallet.cancel(number, "100000000.00"), "US_0000001")


def test_missing_trace_echoes_empty_string(wallet: WalletClient):
    reply = wallet.balance(hdrs=headers(trace=None))
    assert reply.json["trace"] == ""


def test_unusual_trace_values_are_echoed(wallet: WalletClient):
    for trace in ("x-31z6g86n-kr01ct-4g1u-ci45-1678377046", "", "a" * 2000, "spaces inside"):
        reply = wallet.balance(hdrs=headers(trace=trace))
        assert assert_accepted(reply)["trace"] == trace


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
@pytest.mark.parametrize("operation", sorted(PATHS))
def test_undeclared_methods_answer_405(wallet: WalletClient, method: str, operation: str):
    reply = wallet.request(method, PATHS[operation])
    assert reply.status == 405
    assert reply.headers["allow"] == "POST"
    if method != "HEAD":
        body = assert_envelope(reply)
        assert body["code"] == "METHOD_NOT_ALLOWED"


def test_unknown_path_answers_404_envelope(wallet: WalletClient):
    reply = wallet.post("/no-such-operation", balance_body())
    assert reply.status == 404
    assert assert_envelope(reply)["code"] == "NOT_FOUND"
    reply = wallet.post(BALANCE_PATH + "/", balance_body())
    assert reply.status == 404


@pytest.mark.parametrize(
    "spelling",
    [
        {"Trace": "t-1", "COMPANYID": "439", "TimeStamp": "1764064800000"},
        {"TRACE": "t-2", "CompanyId": "439", "TIMESTAMP": "1764064800000"},
        {"trace": "t-3", "companyid": "439", "timestamp": "1764064800000"},
    ],
)
def test_header_names_are_case_insensitive(wallet: WalletClient, spelling: dict[str, str]):
    body = assert_accepted(wallet.balance(hdrs=spelling))
    assert body["trace"] == next(v for k, v in spelling.items() if k.lower() == "trace")
    number = fresh("E")
    assert_accepted(wallet.execute("1.00", number=number, hdrs=spelling))
    assert_accepted(wallet.cancel(number, "1.00", hdrs=spelling))


def test_raw_header_names_reach_the_app():
    """The wallet's protocol hands the app the names as sent (used by header-names-case-sensitive)."""
    with running(WalletConfig(fault="header-names-case-sensitive")) as wallet:
        exact = {"trace": "t", "companyId": "1", "timestamp": "1764064800000"}
        assert_accepted(wallet.balance(hdrs=exact))
        assert_rejected(
            wallet.balance(hdrs={"Trace": "t", "companyId": "1", "timestamp": "1764064800000"}),
            "INVALID_HEADER",
        )
        assert_rejected(
            wallet.balance(hdrs={"trace": "t", "companyid": "1", "timestamp": "1764064800000"}),
            "INVALID_HEADER",
        )


def test_tm_is_measured(wallet: WalletClient):
    tms = [wallet.balance().json["tm"] for _ in range(5)]
    assert all(type(tm) is int and 0 <= tm < 1000 for tm in tms)


def test_keep_alive_connection_serves_many_requests(wallet: WalletClient):
    for _ in range(50):
        assert_accepted(wallet.balance())


# ---------------------------------------------------------------- the wire: one send per answer, HEAD, 100-continue


def _raw_exchange(
    wallet: WalletClient, request: bytes, then: bytes = b"", expect: bytes = b"", head_only: bool = False
) -> bytes:
    """Send ``request`` on a fresh socket (after ``expect`` arrived, send ``then``); read the whole answer."""
    url = urllib.parse.urlsplit(wallet.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        if expect:
            while expect not in received:
                received += sock.recv(65536)
            sock.sendall(then)
        while True:
            answer = received.split(expect, 1)[-1] if expect else received
            head, found, body = answer.partition(b"\r\n\r\n")
            if found:
                length = re.search(rb"content-length: *([0-9]+)", head, re.IGNORECASE)
                if head_only or (length and len(body) >= int(length.group(1))):
                    return received
            chunk = sock.recv(65536)  # a held head that never leaves ends in a timeout here
            if not chunk:
                return received
            received += chunk


def test_head_request_is_answered(wallet: WalletClient):
    """The head is held for the body; a HEAD answer has none, so the end of the answer must flush it."""
    url = urllib.parse.urlsplit(wallet.base_url)
    request = f"HEAD {url.path}/get-user-amount HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    received = _raw_exchange(wallet, request, head_only=True)
    assert received.startswith(b"HTTP/1.1 405"), received


def test_expect_100_continue_is_answered_before_the_body(wallet: WalletClient):
    url = urllib.parse.urlsplit(wallet.base_url)
    body = json.dumps({"thirdServerCode": "W-1001", "userName": "86000001", "currency": "USD"}).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers().items())
    request = (
        f"POST {url.path}/get-user-amount HTTP/1.1\r\nHost: x\r\n{head}Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    received = _raw_exchange(wallet, request, then=body, expect=b"100 Continue\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200"), received
    assert b'"code":"0"' in received


def test_head_and_body_leave_in_one_write():
    from conformance.reference.server import OneSendTransport

    class Recorder:
        def __init__(self):
            self.writes: list[bytes] = []
            self.closed = False

        def write(self, data: bytes) -> None:
            self.writes.append(data)

        def close(self) -> None:
            self.closed = True

        def is_closing(self) -> bool:
            return self.closed

    class Cycle:
        response_started = False

    real, cycle = Recorder(), Cycle()
    transport = OneSendTransport(real, cycle)
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # before the response starts: passes through
    cycle.response_started = True
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert real.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    transport.write(b"{}")
    assert real.writes[-1] == b"HTTP/1.1 200 OK\r\n\r\n{}" and len(real.writes) == 2
    transport.write(b"more")
    assert real.writes[-1] == b"more"
    assert transport.is_closing() is False  # everything else reaches the real transport

    held = OneSendTransport(real, cycle)
    held.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
    held.close()  # closing flushes the held head first
    assert real.writes[-1].startswith(b"HTTP/1.1 405") and real.closed


def test_protocol_choice():
    from conformance.reference.server import protocol_for

    plain, raw = protocol_for(WalletConfig()), protocol_for(WalletConfig(fault="header-names-case-sensitive"))
    assert (plain is not raw and issubclass(raw, plain)) or raw.__name__.startswith("RawHeaderNamesH11")
