"""The write-ahead money journal: on disk before the request leaves, folded the same way at write and read time."""

from __future__ import annotations

import contextlib
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_checks import CANCEL, EXECUTE, envelope, ex

from conformance.ledger import Ledger
from conformance.money_journal import (
    JOURNAL_FILE,
    Bounds,
    ExposureRefused,
    JournalBusy,
    MoneyJournal,
    RunStopped,
    public_url,
    read,
)
from conformance.profile import Profile
from conformance.transport import Client


def execute(number="E-1", reply=None, **changes):
    return ex("executeAdjustment", body={**EXECUTE, "requestUniqueNo": number, **changes},
              reply=reply if reply is not None else envelope())


def cancel(reverse="E-1", code="0", number="C-1"):
    return ex("cancelAdjustment", body={**CANCEL, "requestUniqueNo": number, "reverseRequestUniqueNo": reverse},
              reply=envelope(code=code))


def journal_execute(money, exchange, origin="handwritten/t"):
    seq = money.admit("executeAdjustment", exchange.request.json, origin)
    money.outcome(seq, exchange)
    return seq


@contextlib.contextmanager
def witness(journal_path):
    """A server that answers whether the journal on disk already names the request it received."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            on_disk = journal_path.read_text() if journal_path.exists() else ""
            seen.append(any(json.loads(line).get("number") == body.get("requestUniqueNo")
                            for line in on_disk.splitlines() if '"intent"' in line))
            payload = json.dumps({"ok": True, "code": "0", "msg": "", "data": {}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api", seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_intent_is_on_disk_before_the_wallet_sees_the_request_and_no_secret_is(tmp_path):
    money = MoneyJournal(tmp_path)
    with witness(tmp_path / JOURNAL_FILE) as (url, seen):
        client = Client(Profile(base_url=url, headers=(("X-Gateway-Key", "s3cr3t-value-123"),)), money=money)
        body = {**EXECUTE, "requestUniqueNo": "E-disk"}
        client.call("executeAdjustment", body, origin="handwritten/t")
        client.call("cancelAdjustment", {**CANCEL, "requestUniqueNo": "C-disk", "reverseRequestUniqueNo": "E-disk"},
                    origin="handwritten/t")
        client.close()
    money.close()
    text = (tmp_path / JOURNAL_FILE).read_text()
    assert "s3cr3t-value-123" not in text
    state = read(tmp_path / JOURNAL_FILE)
    assert [a.outcome for a in state.adjustments.values()] == ["applied"]
    assert state.outstanding() == []  # the cancel answered "0"
    assert seen == [True, True], "a request left before its intent was on disk"


def test_an_intent_without_an_outcome_is_money_that_may_have_moved(tmp_path):
    """The issue's first row: the call was cut (KeyboardInterrupt in Client.send); the journal still knows."""
    money = MoneyJournal(tmp_path)
    ledger = Ledger(money=money)
    money.admit("executeAdjustment", {**EXECUTE, "requestUniqueNo": "E-cut"}, "handwritten/t")
    summary = ledger.summary()
    assert [e["requestUniqueNo"] for e in summary["outstanding"]] == ["E-cut"]
    assert summary["outstanding"][0]["outcome"] == "unknown"
    money.close()


def test_the_fold_settles_like_the_platform(tmp_path):
    money = MoneyJournal(tmp_path)
    journal_execute(money, execute("E-1"))  # applied
    journal_execute(money, execute("E-2", reply=envelope(code="INSUFFICIENT_FUNDS", ok=False)))  # rejected
    journal_execute(money, execute("E-3", reply={"error": "bad gateway"}))  # unknown
    for exchange in (cancel("E-1", "US_0000002", "C-1"), cancel("E-3", "US_0000002", "C-3")):
        seq = money.admit("cancelAdjustment", exchange.request.json, "compensation/end")
        money.outcome(seq, exchange)
    # never received does not settle money the wallet said it moved; it settles an unknown one
    assert [a.number for a in money.outstanding()] == ["E-1"]
    seq = money.admit("cancelAdjustment", cancel("E-1", "0", "C-4").request.json, "compensation/end")
    money.outcome(seq, cancel("E-1", "0", "C-4"))
    assert money.outstanding() == []
    money.close()
    assert read(tmp_path / JOURNAL_FILE).outstanding() == []  # the same fold from disk


def test_a_torn_last_line_is_skipped_and_counted(tmp_path):
    money = MoneyJournal(tmp_path)
    journal_execute(money, execute("E-1"))
    money.close()
    with open(tmp_path / JOURNAL_FILE, "a") as handle:
        handle.write('{"kind": "intent", "seq": 9, "op": "exec')  # killed mid-write
    state = read(tmp_path / JOURNAL_FILE)
    assert state.torn == 1 and [a.number for a in state.outstanding()] == ["E-1"]


def test_a_stopping_run_refuses_new_traffic_but_not_settling(tmp_path):
    money = MoneyJournal(tmp_path)
    money.stop("SIGINT received")
    with pytest.raises(RunStopped):
        money.admit("getUserAmount", {}, "handwritten/t")
    with pytest.raises(RunStopped):
        money.admit("executeAdjustment", dict(EXECUTE), "generated/fuzzing/positive")
    assert money.admit("cancelAdjustment", dict(CANCEL), "compensation/end") is not None
    assert money.admit("cancelAdjustment", dict(CANCEL), "settle") is not None
    money.close()


def test_exposure_bounds(tmp_path):
    money = MoneyJournal(tmp_path, bounds=Bounds(max_outstanding=2, max_executes=4,
                                                 max_execute_amount=Decimal("10")))
    with pytest.raises(ExposureRefused):
        money.admit("executeAdjustment", {**EXECUTE, "amount": "-10.01"}, "handwritten/t")
    # a validation probe's non-plain amount is the probe's business (a conforming wallet refuses it)
    money.admit("executeAdjustment", {**EXECUTE, "amount": "1e3", "requestUniqueNo": "E-probe"}, "handwritten/t")
    money.outcome(money.state.intents and max(money.state.intents),
                  execute("E-probe", reply=envelope(code="INVALID_PARAMETER", ok=False)))
    settled = []
    money.on_limit = lambda: settled.append(len(money.outstanding()))
    journal_execute(money, execute("E-1"))
    journal_execute(money, execute("E-2"))
    with pytest.raises(RunStopped):  # two open, settling did not close them: stop rather than open a third
        money.admit("executeAdjustment", {**EXECUTE, "requestUniqueNo": "E-3"}, "handwritten/t")
    assert settled == [2] and "max-outstanding" in money.stop_reason
    money.close()

    counted = MoneyJournal(tmp_path / "b", bounds=Bounds(max_outstanding=None, max_executes=1))
    journal_execute(counted, execute("E-1"))
    with pytest.raises(RunStopped):
        counted.admit("executeAdjustment", {**EXECUTE, "requestUniqueNo": "E-2"}, "handwritten/t")
    assert "max-executes" in counted.stop_reason
    counted.close()


def test_one_writer_per_journal(tmp_path):
    money = MoneyJournal(tmp_path)
    with pytest.raises(JournalBusy):
        MoneyJournal(tmp_path)
    money.close()
    MoneyJournal(tmp_path).close()


def test_the_target_is_stored_without_credentials():
    assert public_url("https://user:pa55@wallet.example:8443/api?x=1") == "https://wallet.example:8443/api?x=1"
