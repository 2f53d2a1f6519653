"""SIGKILL real runs (and a real settle) at several points, then `conformance settle`: balances exactly back.

Against a file-backed reference wallet in its own process; the suite runs as a subprocess. Each trial
prints its numbers (intents journaled at the kill, balances, time to settle). About 5-15 s per trial.
"""

from __future__ import annotations

import datetime as dt
import signal
import time

import pytest
from money_harness import in_flight, intents, records, settle, start_run, wait_for, wallet

pytestmark = pytest.mark.slow


def _kill(process) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def _settle_until_exact(target, report_dir, before, label):
    at_kill = target.balances()
    started = time.monotonic()
    first = settle(report_dir)
    took = time.monotonic() - started
    assert first.returncode == 0, (first.stdout, first.stderr)
    after = target.balances()
    journal = records(report_dir)
    moved = {k: at_kill[k] - before[k] for k in before if at_kill[k] != before[k]}
    print(f"\n[{label}] intents journaled: {len(intents(journal))}, moved at the kill (minor units): {moved}, "
          f"settle {took:.2f} s, balances exact after: {after == before}")
    assert after == before
    again = settle(report_dir)  # idempotent: nothing left, nothing moves
    assert again.returncode == 0 and "0 adjustment(s) outstanding" in again.stdout, again.stdout
    assert target.balances() == before
    return moved


def applied(found, origin, operation_type=None):
    """Executes from ``origin`` (of ``operation_type``) the wallet said it applied."""
    mine = {i["seq"] for i in intents(found, "execute", origin)
            if operation_type is None or i["body"].get("operationType") == operation_type}
    return sum(1 for r in found if r.get("kind") == "outcome" and r.get("intent") in mine and r["status"] == "applied")


def slow_credit_in_flight(found):
    """A first (not replayed) credit is out, unanswered for 0.5 s: the wallet applied it and sleeps (slow-execute)."""
    answered = {r.get("intent") for r in found if r.get("kind") == "outcome"}
    seen = set()
    for intent in intents(found, "execute"):
        first = intent["number"] not in seen
        seen.add(intent["number"])
        age = time.time() - dt.datetime.fromisoformat(intent["at"]).timestamp()
        if first and intent["seq"] not in answered and intent["body"].get("operationType") == "NORMAL_CLOSE" \
                and age > 0.5:
            return True
    return False


KILL_POINTS = {
    # name: (wallet fault, extra run flags, predicate on the journal records)
    "handwritten-early": (None, (), lambda r: len(intents(r, "execute")) >= 3),
    "handwritten-later": (None, (), lambda r: len(intents(r, "execute")) >= 15),
    "handwritten-mid-request": ("slow-execute", (), lambda r: slow_credit_in_flight(r)),
    "generated-slice": (None, ("--phases", "fuzzing"), lambda r: applied(r, "generated") >= 5),
    "run-mid-settle": ("slow-cancel", ("--phases", "fuzzing"),
                       lambda r: in_flight(r, "cancel", "compensation")),
    "delivery-phase": (None, ("--phases", "delivery"), lambda r: len(intents(r, "execute")) >= 30),
}


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_then_settle_restores_every_balance(tmp_path, point):
    fault, extra, reached = KILL_POINTS[point]
    with wallet(tmp_path, fault) as target:
        before = target.balances()
        report_dir = tmp_path / "run"
        process = start_run(target, report_dir, *extra)
        try:
            wait_for(report_dir, reached, process)
        finally:
            _kill(process)
        moved = _settle_until_exact(target, report_dir, before, point)
        if point not in ("handwritten-early", "handwritten-later", "delivery-phase"):  # moved by construction
            assert moved, "nothing had moved at the kill: the trial proves nothing"


def test_sigkill_mid_settle_then_settle_again(tmp_path):
    """Kill the run, start settle against a wallet whose cancels are slow, kill settle mid-cancel, settle again."""
    with wallet(tmp_path, "slow-cancel") as target:
        before = target.balances()
        report_dir = tmp_path / "run"
        process = start_run(target, report_dir, "--phases", "fuzzing", "--max-outstanding", "200",
                            "--max-examples", "20")
        try:  # a credit left applied: its cancel is the slow one settle is killed in
            wait_for(report_dir, lambda r: applied(r, "generated", "NORMAL_CLOSE") >= 1, process)
        finally:
            _kill(process)
        import subprocess

        from money_harness import cli, env

        settling = subprocess.Popen(cli("settle", str(report_dir)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=env())
        try:
            wait_for(report_dir, lambda r: in_flight(r, "cancel", "settle"), settling)
        finally:
            _kill(settling)
        _settle_until_exact(target, report_dir, before, "settle-mid-cancel")
