"""The fault catalogue of the reference wallet.

* every fault names a requirement of the catalogue, and every MUST requirement a
  wallet can break has at least one fault;
* every fault is implemented as a branch of the normal code path;
* for every fault, a targeted probe of the rule it names passes on the conforming
  wallet and fails on the wallet running that fault (and the faulty wallet keeps
  answering).
"""

from __future__ import annotations

import collections
import json
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pycountry
import pytest
import requests
from conftest_reference import (
    BALANCE_PATH,
    CANCEL_PATH,
    EUR,
    EXECUTE_PATH,
    HKD,
    JPY,
    USD,
    USDT,
    WalletClient,
    cancel_body,
    drop,
    execute_body,
    fresh,
    headers,
    join_background_stops,
    running,
)
from openapi_schema_validator import OAS30Validator

from conformance.contract import load
from conformance.reference import FAULTS, Fault, WalletConfig
from conformance.reference.accounts import DECIMAL, decimals_of

ACCOUNTS = (USD, HKD, USDT, JPY, EUR)

# MUST requirements that no fault of the wallet can break, with the reason. None today.
NOT_BREAKABLE_BY_A_WALLET: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def _stop_wallets():
    yield
    join_background_stops()


# ---------------------------------------------------------------- the catalogue


def test_catalogue_size_and_shape():
    assert len(FAULTS) >= 28
    for name, fault in FAULTS.items():
        assert isinstance(fault, Fault) and fault.name == name
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name), name
        assert len(fault.description) > 20, name


def test_every_fault_names_an_existing_requirement():
    requirements = load().requirements
    for fault in FAULTS.values():
        assert fault.requirement in requirements, (fault.name, fault.requirement)
        assert fault.level == requirements[fault.requirement].level


def test_every_breakable_must_requirement_has_a_fault():
    requirements = load().requirements
    covered = {fault.requirement for fault in FAULTS.values()}
    musts = {rid for rid, requirement in requirements.items() if requirement.is_must}
    assert set(NOT_BREAKABLE_BY_A_WALLET) <= musts
    missing = musts - covered - set(NOT_BREAKABLE_BY_A_WALLET)
    assert not missing, f"MUST requirements without a fault: {sorted(missing)}"


def test_every_fault_is_implemented_in_the_code_path():
    package = Path(__file__).resolve().parent.parent / "conformance" / "reference"
    source = "\n".join(
        path.read_text() for path in package.glob("*.py") if path.name not in ("faults.py", "__init__.py")
    )
    for name in FAULTS:
        assert f'"{name}"' in source, f"fault {name} is not used by the wallet"


def test_unknown_fault_is_refused():
    with pytest.raises(ValueError, match="unknown fault"):
        WalletConfig(fault="no-such-fault")


# ---------------------------------------------------------------- probes

Probe = Callable[[WalletClient], bool]  # True when the named rule holds
PROBES: dict[str, Probe] = {}


def probe(*names: str):
    def register(function: Probe) -> Probe:
        for name in names:
            PROBES[name] = function
        return function

    return register


def _balance_json(wallet: WalletClient) -> dict:
    return wallet.balance().json


def _success_shapes(wallet: WalletClient) -> list[dict]:
    number = fresh("E")
    return [
        wallet.balance().json,
        wallet.execute("1.00", number=number).json,
        wallet.cancel(number, "1.00").json,
    ]


def _all_shapes(wallet: WalletClient) -> list[dict]:
    """Successes of the three operations, and the kinds of failure."""
    return [
        *_success_shapes(wallet),
        wallet.balance(("W-0", "0", "USD")).json,
        wallet.execute("1.00", bizType=99).json,
        wallet.cancel(fresh("E")).json,
    ]


def _rejected(reply) -> bool:
    return reply.status == 200 and reply.json is not None and reply.json.get("ok") is False


def _accepted(reply) -> bool:
    return reply.status == 200 and reply.code == "0"


@probe("content-type-text-plain")
def _content_type(wallet):
    return wallet.balance().headers["content-type"] == "application/json"


@probe("ok-fail-both-true")
def _ok_fail(wallet):
    return all(body["fail"] is (not body["ok"]) for body in _success_shapes(wallet))


@probe("ok-with-nonzero-code")
def _ok_code(wallet):
    return all(body["ok"] is (body["code"] == "0") for body in _all_shapes(wallet))


@probe("code-as-number")
def _code_string(wallet):
    return all(isinstance(body["code"], str) for body in _all_shapes(wallet))


@probe("trace-not-echoed")
def _trace(wallet):
    return wallet.balance(hdrs=headers(trace="t-probe-1")).json["trace"] == "t-probe-1"


@probe("negative-tm")
def _tm(wallet):
    tm = _balance_json(wallet)["tm"]
    return type(tm) is int and tm >= 0


@probe("msg-as-number")
def _msg(wallet):
    return isinstance(_balance_json(wallet)["msg"], str)


@probe("data-not-object-on-success")
def _data(wallet):
    return all(isinstance(body["data"], dict) for body in _success_shapes(wallet))


@probe("failure-data-as-string")
def _schema(wallet):
    operations = load().operations
    replies = {
        "getUserAmount": [wallet.balance(), wallet.balance(("W-0", "0", "USD"))],
        "executeAdjustment": [wallet.execute("1.00"), wallet.execute("1.00", bizType=99)],
        "cancelAdjustment": [wallet.cancel(fresh("E"))],
    }
    return all(
        OAS30Validator(operations[op].response_schema).is_valid(reply.json)
        for op, group in replies.items()
        for reply in group
    )


@probe("status-201")
def _status(wallet):
    return wallet.balance().status == 200


@probe("envelope-missing-bizcode")
def _bizcode(wallet):
    return "bizCode" in _balance_json(wallet)


@probe("errors-as-http-400")
def _error_status(wallet):
    return wallet.balance(("W-0", "0", "USD")).status == 200


@probe("tm-implausible")
def _tm_plausible(wallet):
    reply = wallet.balance()
    return reply.json["tm"] <= reply.elapsed * 1000 + 1000


@probe("missing-trace-accepted")
def _no_trace(wallet):
    return _rejected(wallet.balance(hdrs=headers(trace=None)))


@probe("missing-companyid-accepted")
def _no_company(wallet):
    return _rejected(wallet.balance(hdrs=headers(companyId=None)))


@probe("missing-timestamp-accepted")
def _no_timestamp(wallet):
    return _rejected(wallet.balance(hdrs=headers(timestamp=None)))


@probe("cancel-requires-timestamp")
def _cancel_no_timestamp(wallet):
    number = fresh("E")
    wallet.execute("1.00", number=number)
    return _accepted(wallet.cancel(number, "1.00", hdrs=headers(timestamp=None)))


@probe("header-names-case-sensitive")
def _header_case(wallet):
    return _accepted(wallet.balance(hdrs={"Trace": "t", "COMPANYID": "439", "TimeStamp": "1764064800000"}))


@probe("non-integer-companyid-accepted")
def _company_integer(wallet):
    return _rejected(wallet.balance(hdrs=headers(companyId="abc")))


@probe("ten-digit-timestamp-accepted")
def _timestamp_digits(wallet):
    return _rejected(wallet.balance(hdrs=headers(timestamp="1764064800")))


@probe("missing-ip-accepted")
def _ip(wallet):
    return _rejected(wallet.execute("1.00", ip=drop()))


@probe("long-username-accepted")
def _long_user(wallet):
    return _rejected(wallet.execute("1.00", userName="86000001".ljust(49, "0")))


@probe("long-requestuniqueno-accepted")
def _long_number(wallet):
    return _rejected(wallet.execute("1.00", number="E" * 49))


@probe("unknown-biztype-accepted")
def _biz_type(wallet):
    return _rejected(wallet.execute("1.00", bizType=99))


@probe("unknown-operationtype-accepted")
def _operation_type(wallet):
    return _rejected(wallet.execute("1.00", "TRANSFER"))


@probe("wrong-sign-accepted")
def _sign(wallet):
    return _rejected(wallet.execute("-1.00", "OPEN_POSITION"))


@probe("amount-with-separators-accepted")
def _separators(wallet):
    return _rejected(wallet.execute("1,000.00", "NORMAL_CLOSE"))


@probe("amount-digits-mismatch-accepted")
def _digits(wallet):
    return _rejected(wallet.execute("1.5", amountDigits=2))


@probe("ten-digit-requesttime-accepted")
def _request_time(wallet):
    return _rejected(wallet.execute("1.00", requestTime=1764064800))


@probe("wrong-json-types-accepted")
def _types(wallet):
    return _rejected(wallet.execute("1.00", amountDigits=2.5))


@probe("non-json-media-type-accepted")
def _media_type(wallet):
    return _rejected(
        wallet.post(
            BALANCE_PATH,
            {"thirdServerCode": "W-1001", "userName": "86000001", "currency": "USD"},
            content_type="text/plain",
        )
    )


@probe("lowercase-currency-in-balance")
def _currency_exact(wallet):
    return _balance_json(wallet)["data"]["currency"] == "USD"


@probe("non-iso-currency-in-balance")
def _currency_iso(wallet):
    currency = _balance_json(wallet)["data"]["currency"]
    return pycountry.currencies.get(alpha_3=currency) is not None or currency == "USDT"


@probe("currency-case-insensitive")
def _currency_case(wallet):
    return _rejected(wallet.balance(currency="usd")) and _rejected(wallet.execute("1.00", currency="usd"))


@probe("balance-mixed-key-styles")
def _four_keys(wallet):
    return set(_balance_json(wallet)["data"]) == {"userName", "currency", "amount", "amountDigits"}


@probe("amount-thousands-separators")
def _plain_amount(wallet):
    return all(
        DECIMAL.fullmatch(wallet.balance(account).json["data"]["amount"]) is not None for account in ACCOUNTS
    )


@probe("amountdigits-as-string")
def _digits_integer(wallet):
    return all(type(wallet.balance(account).json["data"]["amountDigits"]) is int for account in ACCOUNTS)


@probe("amount-decimals-mismatch")
def _decimals(wallet):
    data = _balance_json(wallet)["data"]
    return decimals_of(data["amount"]) == data["amountDigits"]


@probe("balance-username-not-echoed")
def _user_echo(wallet):
    return _balance_json(wallet)["data"]["userName"] == USD[1]


@probe("unknown-account-balance-zero")
def _unknown_balance(wallet):
    return _rejected(wallet.balance(("W-0", "0", "USD")))


@probe("balance-refused")
def _balance_ok(wallet):
    """Every account's balance can be read, before and after an adjustment moved it."""
    before = all(_accepted(wallet.balance(account)) for account in ACCOUNTS)
    number = fresh("E")
    wallet.execute("1.00", number=number)
    moved = _accepted(wallet.balance())
    wallet.cancel(number, "1.00")
    return before and moved


@probe("slow-execute")
def _fast_execute(wallet):
    return all(wallet.execute("1.00", kind).elapsed < 3.0 for kind in ("OPEN_POSITION", "NORMAL_CLOSE"))


@probe("slow-cancel")
def _fast_cancel(wallet):
    elapsed = []
    for kind in ("OPEN_POSITION", "NORMAL_CLOSE"):
        number = fresh("E")
        wallet.execute("1.00", kind, number=number)
        elapsed.append(wallet.cancel(number, "1.00").elapsed)
    return max(elapsed) < 3.0


@probe("execute-always-rejected")
def _applied(wallet):
    return _accepted(wallet.execute("1.00"))


@probe("replay-moves-money-again")
def _replay_money(wallet):
    before, number = wallet.amount(), fresh("E")
    wallet.execute("2.00", number=number)
    wallet.execute("2.00", number=number)
    return wallet.amount() == before - 2


@probe("replay-answers-different-code")
def _replay_code(wallet):
    number = fresh("E")
    return wallet.execute("2.00", number=number).code == wallet.execute("2.00", number=number).code


@probe("close-debits")
def _close_credits(wallet):
    before = wallet.amount()
    wallet.execute("5.00", "NORMAL_CLOSE")
    return wallet.amount() == before + 5


@probe("insufficient-funds-overdraws")
def _no_overdraft(wallet):
    before = wallet.amount()
    return _rejected(wallet.execute("999999.00")) and wallet.amount() == before


@probe("unknown-account-execute-accepted")
def _unknown_execute(wallet):
    return _rejected(wallet.execute("1.00", account=("W-0", "0", "USD")))


@probe("cancel-unknown-answers-success")
def _never_received(wallet):
    return wallet.cancel(fresh("E")).code == "US_0000002"


@probe("cancel-rejected-answers-us0000002")
def _not_applied(wallet):
    number = fresh("E")
    wallet.execute("999999.00", number=number)
    return wallet.cancel(number, "999999.00").code == "US_0000001"


@probe("cancel-does-not-refund")
def _refund(wallet):
    before, number = wallet.amount(), fresh("E")
    wallet.execute("3.00", number=number)
    return _accepted(wallet.cancel(number, "3.00")) and wallet.amount() == before


@probe("cancel-replay-refunds-twice")
def _cancel_replay_money(wallet):
    before, number, cancel = wallet.amount(), fresh("E"), fresh("C")
    wallet.execute("3.00", number=number)
    wallet.cancel(number, "3.00", number=cancel)
    wallet.cancel(number, "3.00", number=cancel)
    return wallet.amount() == before


@probe("second-cancel-refunds-again")
def _second_cancel_money(wallet):
    before, number = wallet.amount(), fresh("E")
    wallet.execute("3.00", number=number)
    wallet.cancel(number, "3.00")
    wallet.cancel(number, "3.00")
    return wallet.amount() == before


@probe("cancel-replay-answers-different-code")
def _cancel_replay_code(wallet):
    number, cancel = fresh("E"), fresh("C")
    wallet.execute("3.00", number=number)
    return (
        wallet.cancel(number, "3.00", number=cancel).code == wallet.cancel(number, "3.00", number=cancel).code
    )


@probe("second-cancel-refused")
def _second_cancel_code(wallet):
    number = fresh("E")
    wallet.execute("3.00", number=number)
    wallet.cancel(number, "3.00")
    return wallet.cancel(number, "3.00").code == "0"


@probe("non-object-body-html-500")
def _array_body_refused(wallet):
    replies = [wallet.post(path, [1, 2]) for path in (BALANCE_PATH, EXECUTE_PATH)]
    return all(reply.status < 500 and reply.json["ok"] is False for reply in replies)


@probe("unknown-account-server-error")
def _no_server_error(wallet):
    replies = [
        wallet.balance(("W-0", "0", "USD")),
        wallet.execute("1.00", account=("W-0", "0", "USD")),
        wallet.post(EXECUTE_PATH, execute_body("1.00", bizType="1")),
    ]
    return all(reply.status < 500 for reply in replies)


@probe("malformed-json-answered-success")
def _malformed_json(wallet):
    replies = [
        wallet.post(path, raw=b'{"thirdServerCode": ') for path in (BALANCE_PATH, EXECUTE_PATH, CANCEL_PATH)
    ]
    return all(_rejected(reply) for reply in replies)


@probe("get-answers-200")
def _method_not_allowed(wallet):
    reply = wallet.request("GET", BALANCE_PATH)
    return reply.status == 405 and not (reply.json or {}).get("ok")


@probe("balance-other-currency")
def _balance_of_the_named_account(wallet):
    reply = wallet.balance(("W-1001", "86000001", "GBP"))  # a known user, a currency it holds no account in
    if reply.ok is False:
        return True
    data = reply.json["data"]
    return data.get("currency") == "GBP" and Decimal(data["amount"]) == 0


@probe("received-execute-answers-never-received")
def _refused_execute_was_received(wallet):
    refused, unknown = fresh("E"), fresh("E")
    wallet.execute("999999.00", number=refused)
    wallet.execute("1.00", account=("W-0", "0", "USD"), number=unknown)
    return all(wallet.cancel(n, amount).code != "US_0000002" for n, amount in ((refused, "999999.00"),
                                                                               (unknown, "1.00")))


@probe("flaky-trace-echo")
def _trace_always_echoed(wallet):
    replies = [wallet.balance() for _ in range(6)]
    return all(reply.json["trace"] == reply.sent_trace for reply in replies)


# ---------------------------------------------------------------- delivery probes (the platform's rules)

CONCURRENCY = 8


def _concurrently(wallet: WalletClient, calls: list[Callable[[WalletClient], object]]) -> list:
    """Each call on its own client (a requests.Session is not thread-safe), all at once; bounded."""
    clients = [WalletClient(wallet.base_url) for _ in calls]
    barrier = threading.Barrier(len(calls))

    def run(index: int):
        barrier.wait(timeout=10)
        return calls[index](clients[index])

    try:
        with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
            return list(pool.map(run, range(len(calls))))
    finally:
        for client in clients:
            client.close()


@probe("late-execute-applies-after-cancel")
def _cut_off_execute_then_cancel(wallet):
    before, number = wallet.amount(), fresh("E")
    late = WalletClient(wallet.base_url)
    try:
        late.post(EXECUTE_PATH, execute_body("5.00", "NORMAL_CLOSE", number=number), timeout=3.0)  # cut-off
    except requests.Timeout:
        pass
    finally:
        late.close()
    wallet.cancel(number, "5.00")  # the platform cancels the order it timed out
    time.sleep(0.8)  # a late execute would have committed by now
    return wallet.amount() == before


def _raw_post(wallet: WalletClient, path: str, body: dict) -> bytes:
    url = urllib.parse.urlsplit(wallet.base_url)
    payload = json.dumps(body).encode()
    head = "".join(f"{name}: {value}\r\n" for name, value in headers().items())
    return (
        f"POST {url.path}{path} HTTP/1.1\r\nHost: {url.netloc}\r\n{head}"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


@probe("lost-cancel-answer-refunds-again")
def _lost_cancel_answer(wallet):
    before, number, cancel = wallet.amount(), fresh("E"), fresh("C")
    wallet.execute("3.00", number=number)
    url = urllib.parse.urlsplit(wallet.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(_raw_post(wallet, CANCEL_PATH, cancel_body(number, "3.00", number=cancel)))
        time.sleep(0.05)  # the connection drops before the answer
    time.sleep(0.6)
    retry = wallet.cancel(number, "3.00", number=cancel)  # the platform retries with the same number
    return retry.code == "0" and wallet.amount() == before


@probe("idempotency-cache-ttl")
def _replays_spread_over_time(wallet):
    before, number, cancel = wallet.amount(), fresh("E"), fresh("C")
    wallet.execute("2.00", number=number)
    wallet.execute("7.00", "NORMAL_CLOSE", number=cancel + "-close")
    wallet.cancel(cancel + "-close", "7.00", number=cancel)
    time.sleep(2.4)
    wallet.execute("2.00", number=number)
    wallet.cancel(cancel + "-close", "7.00", number=cancel)
    return wallet.amount() == before - 2


@probe("check-then-insert-race")
def _concurrent_duplicates(wallet):
    before, number = wallet.amount(), fresh("E")
    body = execute_body("1.50", number=number)
    _concurrently(wallet, [lambda c: c.post(EXECUTE_PATH, body) for _ in range(CONCURRENCY)])
    return wallet.amount() == before - Decimal("1.50")


@probe("cancel-before-execute-forgotten")
def _execute_after_its_cancel(wallet):
    before, number = wallet.amount(), fresh("E")
    answered = wallet.cancel(number, "6.00").code
    wallet.execute("6.00", number=number)
    return answered == "US_0000002" and wallet.amount() == before


@probe("lost-update-under-concurrency")
def _concurrent_executes_on_one_account(wallet):
    before = wallet.amount()
    _concurrently(wallet, [lambda c: c.execute("1.00") for _ in range(CONCURRENCY)])
    return wallet.amount() == before - CONCURRENCY


@probe("mismatched-cancel-refunds-cancel-amount")
def _mismatched_cancel(wallet):
    before, number = wallet.amount(), fresh("E")
    wallet.execute("4.00", number=number)
    code = wallet.cancel(number, "9.00").code
    after = wallet.amount()
    return (code == "0" and after == before) or (code != "0" and after == before - 4)


@probe("overtrading-cancel-wrong-direction")
def _overtrading_cancel(wallet):
    before, number = wallet.amount(), fresh("E")
    wallet.execute("-5.00", "ABNORMAL_OVERTRADING", number=number)
    wallet.cancel(number, "5.00")
    return wallet.amount() == before


@probe("refused-execute-still-debits")
def _refused_moves_nothing(wallet):
    before = wallet.amount(EUR)
    refused = _rejected(wallet.execute("3000.00", account=EUR))
    return refused and wallet.amount(EUR) == before


@probe("serialised-slow-executes")
def _executes_in_time_under_concurrency(wallet):
    def timed(client):
        started = time.monotonic()
        client.execute("1.00")
        return time.monotonic() - started

    return max(_concurrently(wallet, [timed] * CONCURRENCY)) < 3.0


def test_every_fault_has_a_probe():
    assert set(PROBES) == set(FAULTS)


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_changes_behaviour(name: str):
    check = PROBES[name]
    with running(background_stop=True) as conforming:
        assert check(conforming), f"the conforming wallet fails the probe for {name}"
    with running(WalletConfig(fault=name), background_stop=True) as faulty:
        assert not check(faulty), f"fault {name} does not change what the probe sees"
        alive = faulty.post("/no-such-path", {})  # the fault did not take the server down
        assert alive.status == 404


def test_faults_per_requirement_family():
    families = collections.Counter(fault.requirement.split("-")[0] for fault in FAULTS.values())
    assert set(families) == {"ENV", "HDR", "VAL", "CUR", "BAL", "EXE", "CAN", "ROB", "DLV"}


# ---------------------------------------------------------------- faults stay narrow: one rule, not its neighbours


def test_lost_cancel_fault_keeps_concurrent_duplicates_idempotent():
    """lost-cancel-answer-refunds-again breaks DLV-002 only: duplicates in flight at once wait on the lock."""
    with running(WalletConfig(fault="lost-cancel-answer-refunds-again")) as wallet:
        before, number, cancel = wallet.amount(), fresh("E"), fresh("C")
        wallet.execute("3.00", number=number)
        body = cancel_body(number, "3.00", number=cancel)
        codes = _concurrently(wallet, [lambda c: c.post(CANCEL_PATH, body).code for _ in range(4)])
        assert codes == ["0"] * 4 and wallet.amount() == before


def test_balance_other_currency_fault_only_for_valid_codes():
    """balance-other-currency falls back only for an ISO code: 'usd' stays refused (CUR-002 is not its rule)."""
    with running(WalletConfig(fault="balance-other-currency")) as wallet:
        assert _rejected(wallet.balance(("W-1001", "86000001", "usd")))
        assert wallet.balance(("W-1001", "86000001", "CHF")).json["data"]["currency"] == "USD"


def test_flaky_trace_echo_breaks_one_answer_in_three():
    """Deterministic by a counter: answers 3, 6, 9, ... carry a stale trace, the others echo it."""
    with running(WalletConfig(fault="flaky-trace-echo")) as wallet:
        echoed = [reply.json["trace"] == reply.sent_trace for reply in (wallet.balance() for _ in range(9))]
        assert echoed == [True, True, False] * 3
