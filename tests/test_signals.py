"""SIGINT/SIGTERM real runs against a file-backed wallet: traffic stops, money settles, reports exist, 130/143.

No `conformance settle` here: the run itself must leave every balance exact. A second signal exits at
once and prints the settle command (then settle finishes the job). About 10-25 s per trial.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
from money_harness import in_flight, intents, records, settle, start_run, wait_for, wallet

pytestmark = pytest.mark.slow


def applied(found, origin, operation_type=None):
    mine = {i["seq"] for i in intents(found, "execute", origin)
            if operation_type is None or i["body"].get("operationType") == operation_type}
    return sum(1 for r in found if r.get("kind") == "outcome" and r.get("intent") in mine and r["status"] == "applied")


GENERATED = ("--phases", "fuzzing", "--max-outstanding", "200", "--max-examples", "20")


@pytest.mark.parametrize(("sig", "code", "fault", "extra", "reached"), [
    (signal.SIGINT, 130, None, (), lambda r: len(intents(r, "execute")) >= 3),
    (signal.SIGTERM, 143, None, GENERATED, lambda r: applied(r, "generated") >= 3),
    (signal.SIGINT, 130, "slow-cancel", GENERATED, lambda r: in_flight(r, "cancel", "compensation")),
], ids=["sigint-handwritten", "sigterm-generated-slice", "sigint-mid-settle"])
def test_one_signal_stops_settles_reports_and_exits_documented_code(tmp_path, sig, code, fault, extra, reached):
    with wallet(tmp_path, fault) as target:
        before = target.balances()
        report_dir = tmp_path / "run"
        process = start_run(target, report_dir, *extra)
        wait_for(report_dir, reached, process)
        at_signal = target.balances()
        sent = time.monotonic()
        process.send_signal(sig)
        _out, err = process.communicate(timeout=120)
        took = time.monotonic() - sent
        journal = records(report_dir)
        stopped_at = max((r["seq"] for r in intents(journal, "execute") if not r["origin"].startswith(
            ("compensation", "settle"))), default=0)
        print(f"\n[{sig.name} {fault or ''}] moved at the signal: {at_signal != before}, exit {process.returncode} "
              f"{took:.2f} s after the signal, executes journaled {stopped_at}, balances exact: "
              f"{target.balances() == before}")
        assert process.returncode == code, err
        assert target.balances() == before
        summary = json.loads((report_dir / "summary.json").read_text())
        ledger = json.loads((report_dir / "ledger.json").read_text())
        assert summary["exit_code"] == code and summary["stopped"]["signal"] == sig
        assert ledger["outstanding"] == [] and summary["money"]["outstanding"] == []
        assert list(report_dir.glob("evidence-*.zip")), "no evidence bundle written"
        assert took < 60, "the run did not stop promptly"


def test_second_signal_exits_at_once_with_the_settle_command(tmp_path):
    with wallet(tmp_path, "slow-cancel") as target:
        before = target.balances()
        report_dir = tmp_path / "run"
        process = start_run(target, report_dir, *GENERATED)
        wait_for(report_dir, lambda r: applied(r, "generated", "NORMAL_CLOSE") >= 1, process)
        process.send_signal(signal.SIGINT)  # the run settles: the credit's cancel is slow (3.2 s)
        wait_for(report_dir, lambda r: in_flight(r, "cancel", "compensation"), process)
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=30)
        took = time.monotonic() - sent
        print(f"\n[second SIGINT] exit {process.returncode} after {took:.2f} s")
        assert process.returncode == 130
        assert took < 2.0
        assert f"conformance settle {report_dir.resolve()}" in err
        finished = settle(report_dir)
        assert finished.returncode == 0, finished.stdout
        assert target.balances() == before
