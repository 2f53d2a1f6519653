"""Real runs against a file-backed reference wallet in another process, for the kill/signal/settle tests.

Imported as a plain module by tests/test_kill_and_settle.py and tests/test_signals.py. The suite is
started as ``python -m conformance.cli`` with this interpreter and PYTHONPATH, so pointing
PYTHONPATH at another checkout runs that checkout's suite against the same tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ACCOUNTS = ("W-1001:86000001:USD", "W-1002:86000002:HKD", "W-1003:86000003:USDT", "W-1004:86000004:JPY",
            "W-1005:86000001:EUR")
JOURNAL = "money-journal.jsonl"


def env() -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONFORMANCE_")}
    environment["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(Path.cwd())) if p)
    return environment


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "conformance.cli", *args]


@dataclass
class Wallet:
    url: str
    db: Path
    process: subprocess.Popen

    def balances(self) -> dict[str, int]:
        """Every account's balance in minor units, read from the wallet's SQLite file."""
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)) as conn:
            rows = conn.execute("SELECT third_server_code, user_name, currency, balance_minor FROM accounts")
            return {f"{a}:{b}:{c}": minor for a, b, c, minor in rows}


@contextlib.contextmanager
def wallet(tmp_path: Path, fault: str | None = None) -> Iterator[Wallet]:
    db = tmp_path / "wallet.sqlite"
    args = cli("reference", "--port", "0", "--db", str(db), *(["--fault", fault] if fault else []))
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        line = process.stdout.readline()  # "listening on URL"
        if not line.startswith("listening on "):
            raise RuntimeError(f"the wallet did not start: {line!r} {process.stderr.read()!r}")
        yield Wallet(line.split()[-1], db, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_args(target: Wallet, report_dir: Path, *extra: str) -> list[str]:
    accounts = [arg for account in ACCOUNTS for arg in ("--account", account)]
    return cli("run", "--base-url", target.url, *accounts, "--allow-money-movement", "--no-html", "--rate-limit", "0",
               "--report-dir", str(report_dir), "--max-examples", "5", *extra)


def start_run(target: Wallet, report_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(run_args(target, report_dir, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env())


def records(report_dir: Path) -> list[dict]:
    path = report_dir / JOURNAL
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def wait_for(report_dir: Path, predicate, process: subprocess.Popen, timeout: float = 120.0) -> list[dict]:
    """Poll the journal until ``predicate(records)`` holds (or the run ends: AssertionError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = records(report_dir)
        if predicate(found):
            return found
        if process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) before the kill point")
        time.sleep(0.02)
    raise AssertionError("the kill point was not reached in time")


def intents(found: list[dict], op: str | None = None, origin: str = "") -> list[dict]:
    return [r for r in found if r.get("kind") == "intent" and (op is None or r["op"] == op)
            and r.get("origin", "").startswith(origin)]


def in_flight(found: list[dict], op: str = "execute", origin: str = "") -> bool:
    """An intent of ``op`` (from ``origin``) is journaled and its outcome is not: the request is out."""
    answered = {r.get("intent") for r in found if r.get("kind") == "outcome"}
    return any(r["seq"] not in answered for r in intents(found, op, origin))


def settle(report_dir: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cli("settle", str(report_dir), *extra), capture_output=True, text=True, env=env(),
                          timeout=timeout)
