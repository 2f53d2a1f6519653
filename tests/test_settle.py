"""Settling: the platform's cancel loop, `conformance settle`, a hanging cancel, and the report-dir rule."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_checks import EXECUTE, envelope, ex

from conformance import settle
from conformance.delivery import CancelPolicy
from conformance.money_journal import JOURNAL_FILE, MoneyJournal, read
from conformance.profile import Profile
from conformance.reference import WalletConfig, serve
from conformance.transport import Client


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def _owed(tmp_path):
    money = MoneyJournal(tmp_path)
    execute = ex("executeAdjustment", body={**EXECUTE, "requestUniqueNo": "E-1"}, reply=envelope())
    money.outcome(money.admit("executeAdjustment", execute.request.json, "handwritten/t"), execute)
    return money


def _sender(money, answer):
    """A send that journals like Client.send does, answering with ``answer(body)``."""
    sent = []

    def send(operation, body):
        sent.append(body["requestUniqueNo"])
        seq = money.admit(operation, body, "compensation/end")
        exchange = answer(body)
        money.outcome(seq, exchange)
        return exchange

    return send, sent


def test_the_same_cancel_is_retried_until_a_definitive_answer(tmp_path):
    money = _owed(tmp_path)
    codes = iter([envelope(code="BUSY"), {"error": "bad gateway"}, envelope(code="0")])
    send, sent = _sender(money, lambda body: ex("cancelAdjustment", body=body, reply=next(codes)))
    left = settle.settle_outstanding(money, send, policy=CancelPolicy(backoff_initial_s=0), timeout_s=None,
                                     clock=FakeClock())
    assert left == [] and sent == [settle.cancel_number("E-1")] * 3
    money.close()


def test_settling_ends_within_its_timeout(tmp_path):
    money = _owed(tmp_path)
    clock = FakeClock()

    def busy(body):
        clock.now += 1.0  # each try takes a second and never answers definitively
        return ex("cancelAdjustment", body=body, reply=envelope(code="BUSY"))

    send, sent = _sender(money, busy)
    policy = CancelPolicy(retries=100, backoff_initial_s=0.5, backoff_factor=2, backoff_max_s=2, budget_s=600)
    left = settle.settle_outstanding(money, send, policy=policy, timeout_s=10, clock=clock)
    assert [a.number for a in left] == ["E-1"] and clock.now <= 10 + 1.0 and 3 <= len(sent) <= 6
    money.close()


def test_the_compensation_number_is_the_same_in_every_process():
    assert settle.cancel_number("E-1") == settle.cancel_number("E-1") != settle.cancel_number("E-2")
    assert len(settle.cancel_number("x" * 48)) <= 48


def run_settle(report_dir, **values):
    lines, errors = [], []
    code = settle.command(str(report_dir), values, say=lines.append, err=errors.append)
    return code, lines, errors


def test_settle_without_a_journal_is_a_usage_error(tmp_path):
    code, _, errors = run_settle(tmp_path)
    assert code == 2 and len(errors) == 1 and JOURNAL_FILE in errors[0]


def test_settle_refuses_a_journal_in_use(tmp_path):
    money = MoneyJournal(tmp_path)
    money.start_run("r", "http://127.0.0.1:9/api", 439, [])
    code, _, errors = run_settle(tmp_path)
    money.close()
    assert code == 2 and "in use" in errors[0]


def _balance(client, account):
    third, user, currency = account
    exchange = client.call("getUserAmount", {"thirdServerCode": third, "userName": user, "currency": currency},
                           origin="test")
    return exchange.envelope["data"]["amount"]


def test_settle_puts_money_back_once_and_is_idempotent(tmp_path):
    account = ("W-1001", "86000001", "USD")
    with serve(WalletConfig(db=tmp_path / "wallet.sqlite")) as url:
        money = MoneyJournal(tmp_path / "run")
        money.start_run("r", url, 439, [":".join(account)])
        client = Client(Profile(base_url=url), money=money)
        before = _balance(client, account)
        money.balance("preflight", ":".join(account), before, 2)
        body = {**EXECUTE, "thirdServerCode": account[0], "userName": account[1], "currency": account[2],
                "amount": "7.00", "amountDigits": 2, "operationType": "OPEN_POSITION", "requestUniqueNo": "E-settle"}
        assert client.call("executeAdjustment", body, origin="handwritten/t").succeeded
        # an execute cut off before it was even sent (intent only): settle must cancel it too, harmlessly
        money.admit("executeAdjustment", {**body, "requestUniqueNo": "E-never-sent"}, "handwritten/t")
        assert _balance(client, account) != before
        client.close()
        money.close()

        code, lines, _ = run_settle(tmp_path / "run", headers=["X-Gateway-Key: topsecret-value-4711"])
        assert code == 0, lines
        for path in (tmp_path / "run").iterdir():  # the secret was sent, and stored nowhere
            assert b"topsecret-value-4711" not in path.read_bytes(), path.name
        check = Client(Profile(base_url=url))
        assert _balance(check, account) == before
        state = read(tmp_path / "run" / JOURNAL_FILE)
        assert {a.number: a.settlement for a in state.adjustments.values()} == {
            "E-settle": "reversed", "E-never-sent": "never received"}
        sent = len([i for i in state.intents.values() if i["op"] == "cancel"])

        code, lines, _ = run_settle(tmp_path / "run")
        assert code == 0 and "0 adjustment(s) outstanding" in lines[0]
        assert len([i for i in read(tmp_path / "run" / JOURNAL_FILE).intents.values() if i["op"] == "cancel"]) == sent
        assert _balance(check, account) == before
        check.close()
        addenda = sorted((tmp_path / "run").glob("settle-addendum-*.json"))
        assert len(addenda) == 2 and json.loads(addenda[0].read_text())["sha256"][JOURNAL_FILE]


# ------------------------------------------------------------------ a target whose cancel hangs
@contextlib.contextmanager
def hanging_cancel_wallet():
    """Balance and execute answer at once (every execute applied); a cancel never answers."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if self.path.endswith("/cancel-external-system-credit-limit-adjustment"):
                time.sleep(3600)
                return
            data = {}
            if self.path.endswith("/get-user-amount"):
                data = {"thirdServerCode": body.get("thirdServerCode"), "userName": body.get("userName"),
                        "currency": body.get("currency"), "amount": "1000.00", "amountDigits": 2}
            payload = json.dumps({"ok": True, "fail": False, "code": "0", "msg": "success", "data": data,
                                  "trace": self.headers.get("trace"), "tm": int(time.time() * 1000),
                                  "bizCode": None, "msgParams": None}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_a_hanging_cancel_ends_the_run_within_its_bounds(tmp_path):
    """~25 s: --max-duration 8, --timeout 1, --settle-timeout 3; the run must end with the list and the command."""
    with hanging_cancel_wallet() as url:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "conformance.cli", "run", "--base-url", url, "--account", "W-1:1:USD",
             "--allow-money-movement", "--no-html", "--rate-limit", "0", "--phases", "handwritten",
             "--report-dir", str(tmp_path / "run"), "--timeout", "1", "--settle-timeout", "3",
             "--max-duration", "8"], capture_output=True, text=True, timeout=120)
        took = time.monotonic() - started
    print(f"\n[hanging cancel] exit {done.returncode} after {took:.1f} s")
    assert took < 40, "the run did not end within its bounds"
    assert done.returncode in (1, 4)
    assert "still outstanding" in done.stdout
    assert f"conformance settle {(tmp_path / 'run').resolve()}" in done.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["money"]["outstanding"] and summary["stopped"]["reason"].startswith("--max-duration")


# ------------------------------------------------------------------ the report-dir rule
TARGET = ("--base-url", "http://127.0.0.1:9/api", "--account", "W-1:1:USD")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "conformance.cli", *args], capture_output=True, text=True,
                          timeout=120)


def _earlier_run(directory):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "summary.json").write_text('{"earlier": true}')
    (directory / "evidence-old.zip").write_bytes(b"PK-earlier")


def test_a_report_dir_with_an_earlier_run_is_refused_without_overwrite(tmp_path):
    _earlier_run(tmp_path / "r")
    done = _cli("run", *TARGET, "--report-dir", str(tmp_path / "r"))
    assert done.returncode == 2 and "--overwrite" in done.stderr and len(done.stderr.splitlines()) == 1
    assert (tmp_path / "r" / "evidence-old.zip").read_bytes() == b"PK-earlier"


def test_an_unreachable_target_destroys_nothing_even_with_overwrite(tmp_path):
    _earlier_run(tmp_path / "r")
    done = _cli("run", *TARGET, "--report-dir", str(tmp_path / "r"), "--overwrite")
    assert done.returncode == 3, done.stderr
    assert (tmp_path / "r" / "evidence-old.zip").read_bytes() == b"PK-earlier"
    assert json.loads((tmp_path / "r" / "summary.json").read_text()) == {"earlier": True}
    assert not list((tmp_path / "r").glob(".previous-*"))


def test_a_report_dir_with_money_outstanding_is_refused_even_with_overwrite(tmp_path):
    money = MoneyJournal(tmp_path / "r")
    money.admit("executeAdjustment", {**EXECUTE, "requestUniqueNo": "E-owed"}, "handwritten/t")
    money.close()
    done = _cli("run", "--report-dir", str(tmp_path / "r"), "--overwrite")
    assert done.returncode == 2 and "conformance settle" in done.stderr


def test_settle_of_a_killed_embedded_run_owes_nothing(tmp_path):
    money = MoneyJournal(tmp_path)
    money.start_run("r", "http://127.0.0.1:9/api", 439, [], embedded=True)
    money.admit("executeAdjustment", {**EXECUTE, "requestUniqueNo": "E-mem"}, "handwritten/t")
    money.close()
    code, lines, _ = run_settle(tmp_path)
    assert code == 0 and "nothing is owed" in lines[0]
    assert read(tmp_path / JOURNAL_FILE).outstanding() == []
