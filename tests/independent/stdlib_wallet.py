"""An independent wallet for the MultiMarkets (TradeBoss) Webhook API.

Written by a second vendor team from the public docs only (webhook-api.md), with the Python
standard library: ``http.server.ThreadingHTTPServer`` and one ``threading.Lock`` around an
in-memory ledger (optionally mirrored to a JSON file with ``--ledger FILE``).

Choices this team made where the docs leave things open:
  - failures carry the documented envelope (ok=false, fail=true) with HTTP 400 (bad request) or
    409 (business refusal, including US_0000001 / US_0000002); success is HTTP 200
  - balance keys follow the docs' schema: camelCase (userName, amountDigits)
  - ABNORMAL_OVERTRADING is applied, even when it takes the balance below zero
  - a cancel whose user, currency or amount differ from the execute it reverses is refused
  - ``ip`` must be an IPv4 or IPv6 address; unknown body fields are refused; null is not a string
  - a ``timestamp`` header more than 5 minutes away from our clock is refused (replay guard)
  - ``amount`` must carry exactly ``amountDigits`` decimals, and ``amountDigits`` must be the
    account's own number of decimals; ``metadata`` must be JSON text (the docs say it is)
  - one requestUniqueNo namespace for executes and cancels; the same number with a different
    body is refused (409); an execute whose number was already cancelled is refused
  - a second cancel (new requestUniqueNo) of an adjustment already reversed is refused (ALREADY_REVERSED)
  - every response says ``Connection: close``

CLI: python stdlib_wallet.py --port N --account THIRD:USER:CUR:BALANCE [--account ...]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/api/cats-gateway"
DIGITS = {"JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3, "TND": 3, "BTC": 8, "USDT": 4}
BIZ_TYPES = {1, 2, 10, 11, 12}
OPERATIONS = {"OPEN_POSITION", "NORMAL_CLOSE", "ABNORMAL_OVERTRADING"}
MAX_SKEW_MS = 5 * 60 * 1000
DECIMAL_RE = re.compile(r"-?\d+(\.\d+)?")

BALANCE_FIELDS = {"thirdServerCode", "userName", "currency"}
EXECUTE_FIELDS = BALANCE_FIELDS | {
    "bizType", "operationType", "amount", "amountDigits", "orderId", "requestUniqueNo",
    "requestTime", "ip", "metadata",
}
CANCEL_FIELDS = (EXECUTE_FIELDS - {"operationType"}) | {"reverseRequestUniqueNo", "cancelRemark"}


class Refused(Exception):
    def __init__(self, status: int, code: str, msg: str):
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def invalid(msg: str) -> Refused:
    return Refused(400, "PARAM_INVALID", msg)


@dataclass
class Account:
    third: str
    user: str
    currency: str
    digits: int
    balance: Decimal


@dataclass
class Adjustment:
    body: dict
    status: int
    code: str
    msg: str
    applied: bool = False
    delta: Decimal = Decimal(0)
    account: tuple | None = None
    cancelled_by: str | None = None


@dataclass
class Ledger:
    accounts: dict = field(default_factory=dict)
    requests: dict = field(default_factory=dict)  # requestUniqueNo -> ("execute"|"cancel", Adjustment)
    refused_reversals: set = field(default_factory=set)  # numbers we answered US_0000002 for
    lock: threading.Lock = field(default_factory=threading.Lock)
    path: str | None = None

    def save(self) -> None:
        if not self.path:
            return
        state = {
            "balances": {"|".join(k): str(a.balance) for k, a in self.accounts.items()},
            "requests": {
                no: [kind, adj.code, str(adj.delta), adj.cancelled_by] for no, (kind, adj) in self.requests.items()
            },
        }
        tmp = self.path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


def digits_of(currency: str) -> int:
    return DIGITS.get(currency, 2)


def fmt(amount: Decimal, digits: int) -> str:
    return f"{amount:.{digits}f}"


# ---- validation -------------------------------------------------------------------------------

def check_headers(headers, *, timestamp_required: bool) -> None:
    trace = headers.get("trace")
    if not trace:
        raise invalid("header trace is required")
    company = headers.get("companyId")
    if not company:
        raise invalid("header companyId is required")
    if not re.fullmatch(r"\d{1,18}", company):
        raise invalid("header companyId must be an integer")
    ts = headers.get("timestamp")
    if ts is None or ts == "":
        if timestamp_required:
            raise invalid("header timestamp is required")
        return
    if not re.fullmatch(r"\d{13}", ts):
        raise invalid("header timestamp must be 13-digit epoch milliseconds")
    if abs(int(ts) - int(time.time() * 1000)) > MAX_SKEW_MS:
        raise Refused(400, "TIMESTAMP_EXPIRED", "header timestamp is more than 5 minutes off")


def text(body: dict, name: str, *, required: bool = True, max_len: int | None = None) -> str | None:
    if name not in body:
        if required:
            raise invalid(f"{name} is required")
        return None
    value = body[name]
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string")
    if required and value == "":
        raise invalid(f"{name} must not be empty")
    if max_len is not None and len(value) > max_len:
        raise invalid(f"{name} must be at most {max_len} characters")
    return value


def integer(body: dict, name: str, *, required: bool = True) -> int | None:
    if name not in body:
        if required:
            raise invalid(f"{name} is required")
        return None
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{name} must be an integer")
    if not -(2**63) <= value < 2**63:
        raise invalid(f"{name} is out of the int64 range")
    return value


def check_fields(body, allowed: set) -> dict:
    if not isinstance(body, dict):
        raise invalid("body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise invalid(f"unknown field(s): {', '.join(unknown)}")
    return body


def account_key(body: dict) -> tuple:
    return (
        text(body, "thirdServerCode"),
        text(body, "userName", max_len=48),
        text(body, "currency", max_len=16),
    )


def request_time(body: dict, *, fresh: bool) -> int:
    value = integer(body, "requestTime")
    if not 10**12 <= value < 10**13:
        raise invalid("requestTime must be 13-digit epoch milliseconds")
    if fresh and abs(value - int(time.time() * 1000)) > MAX_SKEW_MS:
        raise Refused(400, "TIMESTAMP_EXPIRED", "requestTime is more than 5 minutes off")
    return value


def adjustment_amount(body: dict) -> tuple[Decimal, int]:
    raw = text(body, "amount")
    digits = integer(body, "amountDigits")
    if not DECIMAL_RE.fullmatch(raw):
        raise invalid("amount must be a decimal number")
    if not 0 <= digits <= 18:
        raise invalid("amountDigits must be between 0 and 18")
    places = len(raw.split(".")[1]) if "." in raw else 0
    if places != digits:
        raise invalid(f"amount must carry exactly amountDigits={digits} decimals")
    try:
        return Decimal(raw), digits
    except InvalidOperation:
        raise invalid("amount must be a decimal number") from None


def common_adjustment(body: dict) -> None:
    biz = integer(body, "bizType")
    if biz not in BIZ_TYPES:
        raise invalid("bizType must be one of 1, 2, 10, 11, 12")
    number = text(body, "requestUniqueNo", max_len=48)
    del number
    ip = text(body, "ip")
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise invalid("ip must be an IPv4 or IPv6 address") from None
    metadata = text(body, "metadata", required=False, max_len=200)
    if metadata is not None:
        try:
            json.loads(metadata)
        except ValueError:
            raise invalid("metadata must be JSON text") from None


def fingerprint(body: dict) -> dict:
    # a retried request may be re-stamped; everything else must be the same request
    return {k: v for k, v in body.items() if k != "requestTime"}


# ---- the three operations ---------------------------------------------------------------------

def balance(ledger: Ledger, headers, body) -> tuple[int, str, str, dict]:
    check_headers(headers, timestamp_required=True)
    key = account_key(check_fields(body, BALANCE_FIELDS))
    acc = ledger.accounts.get(key)
    if acc is None:
        raise Refused(409, "ACCOUNT_NOT_FOUND", "no such account")
    return 200, "0", "success", {
        "userName": acc.user, "currency": acc.currency,
        "amount": fmt(acc.balance, acc.digits), "amountDigits": acc.digits,
    }


def replay(ledger: Ledger, kind: str, body: dict):
    number = body.get("requestUniqueNo")
    seen = ledger.requests.get(number) if isinstance(number, str) else None
    if seen is None:
        return None
    seen_kind, adj = seen
    if seen_kind != kind or fingerprint(adj.body) != fingerprint(body):
        raise Refused(409, "DUPLICATE_REQUEST", "requestUniqueNo already used by a different request")
    return adj.status, adj.code, adj.msg, {}


def execute(ledger: Ledger, headers, body) -> tuple[int, str, str, dict]:
    check_headers(headers, timestamp_required=True)
    if not isinstance(body, dict):
        raise invalid("body must be a JSON object")
    again = replay(ledger, "execute", body)
    if again:
        return again
    try:
        return apply_execute(ledger, body)
    except Refused as refusal:
        # a body we refused is still a request we received: remember it under its number, so that its
        # cancel is answered US_0000001 (received, not processed) and a replay gets the same refusal
        number = body.get("requestUniqueNo")
        if isinstance(number, str) and 0 < len(number) <= 48 and number not in ledger.requests:
            ledger.requests[number] = ("execute", Adjustment(
                body=body, status=refusal.status, code=refusal.code, msg=refusal.msg))
            ledger.save()
        raise


def apply_execute(ledger: Ledger, body: dict) -> tuple[int, str, str, dict]:
    check_fields(body, EXECUTE_FIELDS)
    key = account_key(body)
    common_adjustment(body)
    amount, digits = adjustment_amount(body)
    operation = text(body, "operationType")
    if operation not in OPERATIONS:
        raise invalid("operationType must be OPEN_POSITION, NORMAL_CLOSE or ABNORMAL_OVERTRADING")
    integer(body, "orderId")
    request_time(body, fresh=True)
    if operation == "ABNORMAL_OVERTRADING":
        if amount >= 0:
            raise invalid("amount must be negative for ABNORMAL_OVERTRADING")
    elif amount <= 0:
        raise invalid(f"amount must be positive for {operation}")
    number = body["requestUniqueNo"]

    def remember(status, code, msg, *, delta=Decimal(0)):
        ledger.requests[number] = ("execute", Adjustment(
            body=body, status=status, code=code, msg=msg, applied=code == "0", delta=delta, account=key))
        ledger.save()
        return status, code, msg, {}

    if number in ledger.refused_reversals:
        return remember(409, "ALREADY_CANCELLED", "this requestUniqueNo was already cancelled")
    acc = ledger.accounts.get(key)
    if acc is None:
        return remember(409, "ACCOUNT_NOT_FOUND", "no such account")
    if digits != acc.digits:
        return remember(409, "DIGITS_MISMATCH", f"the account keeps {acc.digits} decimals")
    if operation == "OPEN_POSITION":
        if acc.balance < amount:
            return remember(409, "INSUFFICIENT_BALANCE", "insufficient balance")
        delta = -amount
    elif operation == "NORMAL_CLOSE":
        delta = amount
    else:
        delta = amount  # negative: the shortfall is charged even below zero
    acc.balance += delta
    return remember(200, "0", "success", delta=delta)


def cancel(ledger: Ledger, headers, body) -> tuple[int, str, str, dict]:
    check_headers(headers, timestamp_required=False)
    check_fields(body, CANCEL_FIELDS)
    again = replay(ledger, "cancel", body)
    if again:
        return again
    key = account_key(body)
    common_adjustment(body)
    amount, _ = adjustment_amount(body)
    if amount <= 0:
        raise invalid("amount must be positive")
    integer(body, "orderId", required=False)
    request_time(body, fresh=False)  # retried cancels may carry the first attempt's time
    reverse = text(body, "reverseRequestUniqueNo")
    text(body, "cancelRemark", max_len=200)
    number = body["requestUniqueNo"]

    def remember(status, code, msg):
        ledger.requests[number] = ("cancel", Adjustment(body=body, status=status, code=code, msg=msg))
        ledger.save()
        return status, code, msg, {}

    target = ledger.requests.get(reverse)
    if target is None or target[0] != "execute":
        ledger.refused_reversals.add(reverse)
        return remember(409, "US_0000002", "no adjustment with this requestUniqueNo was received")
    original = target[1]
    if not original.applied:
        return remember(409, "US_0000001", "the adjustment was received but not processed")
    if original.account != key or Decimal(original.body["amount"]).copy_abs() != amount:
        return remember(409, "CANCEL_MISMATCH", "the cancel does not match the adjustment it reverses")
    if original.cancelled_by is not None:
        # a second cancel (its own requestUniqueNo) of an adjustment already reversed: refused, nothing moves
        return remember(409, "ALREADY_REVERSED", f"already reversed by {original.cancelled_by}")
    ledger.accounts[key].balance -= original.delta
    original.cancelled_by = number
    return remember(200, "0", "success")


# ---- HTTP -------------------------------------------------------------------------------------

ROUTES = {
    f"{PREFIX}/get-user-amount": balance,
    f"{PREFIX}/external-system-credit-limit-adjustment": execute,
    f"{PREFIX}/cancel-external-system-credit-limit-adjustment": cancel,
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stdlib-wallet/1.0"
    ledger: Ledger  # set on the subclass built in main()

    def log_message(self, format, *args):  # quiet by default
        pass

    def reply(self, status: int, code: str, msg: str, data: dict, started: float, allow: str = "") -> None:
        ok = code == "0"
        payload = json.dumps({
            "code": code, "msg": msg, "bizCode": "wallet", "tm": int((time.monotonic() - started) * 1000),
            "trace": self.headers.get("trace") or "", "msgParams": "", "data": data, "ok": ok, "fail": not ok,
        }).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True

    def do_POST(self):
        started = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        operation = ROUTES.get(self.path.split("?", 1)[0])
        if operation is None:
            return self.reply(404, "NOT_FOUND", "no such endpoint", {}, started)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return self.reply(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json", {}, started)
        try:
            body = json.loads(raw)
        except ValueError:
            return self.reply(400, "PARAM_INVALID", "body is not valid JSON", {}, started)
        try:
            with self.ledger.lock:
                status, code, msg, data = operation(self.ledger, self.headers, body)
        except Refused as refusal:
            status, code, msg, data = refusal.status, refusal.code, refusal.msg, {}
        except Exception as exc:  # a bug of ours: still answer with the envelope
            print(f"stdlib_wallet: internal error: {exc!r}", file=sys.stderr)
            status, code, msg, data = 500, "INTERNAL_ERROR", "internal error", {}
        self.reply(status, code, msg, data, started)

    def not_allowed(self):
        started = time.monotonic()
        self.reply(405, "METHOD_NOT_ALLOWED", "use POST", {}, started, allow="POST")

    do_GET = do_PUT = do_DELETE = do_PATCH = not_allowed


def parse_account(spec: str) -> Account:
    parts = spec.split(":")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError("--account wants THIRD:USER:CUR:BALANCE")
    third, user, currency, amount = parts
    digits = digits_of(currency)
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"bad balance {amount!r}") from None
    return Account(third, user, currency, digits, value.quantize(Decimal(1).scaleb(-digits)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--account", type=parse_account, action="append", default=[])
    parser.add_argument("--ledger", help="mirror the ledger to this JSON file")
    args = parser.parse_args(argv)
    ledger = Ledger(path=args.ledger)
    for acc in args.account:
        ledger.accounts[(acc.third, acc.user, acc.currency)] = acc
    handler = type("WalletHandler", (Handler,), {"ledger": ledger})
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    print(f"http://127.0.0.1:{server.server_address[1]}{PREFIX}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
