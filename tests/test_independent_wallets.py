"""No false failures against wallets written apart from this project.

``tests/independent/`` holds two wallets written by "other vendor teams" from the public docs only
(``spec/webhook-api.reference.md``), each making the choices the docs leave open its own way and
differently from the other and from our reference wallet:

- ``node_wallet.js`` (Node.js standard library): errors as HTTP 200 ok=false, snake_case balance keys,
  ABNORMAL_OVERTRADING ignored, US_0000002 for the cancel of an execute it refused as invalid, null
  accepted in optional fields, ``Content-Type: application/json; charset=utf-8``;
- ``stdlib_wallet.py`` (Python ``http.server``): errors as HTTP 400/409 with the envelope, camelCase keys,
  ABNORMAL_OVERTRADING applied even below zero, a mismatched or second cancel refused, strict ip/metadata checks,
  unknown fields refused, a timestamp more than 5 minutes off refused, ``Connection: close``.

Both honour every documented rule, so the real ``conformance run`` command line (a subprocess, all
phases, a reduced budget) must end with exit 0 and no MUST requirement failed. A failure here is a
false verdict of the suite (or a wallet bug: read the outcome and the reference before "fixing" either).
After the run, the wallet's balances are read directly: every adjustment the suite made was compensated.
A second run against the same wallet process (a nightly job against a persistent pre-production wallet)
must be just as clean: the suite must not take the first run's requests for its own.
"""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "independent"
ACCOUNTS = (("T1", "86000001", "USD", "1000"), ("T2", "86000002", "USD", "500"))


def _wallet_command(name: str) -> list[str]:
    if name == "node":
        node = shutil.which("node")
        if node is None:
            pytest.skip("node is not installed")
        return [node, str(HERE / "node_wallet.js")]
    return [sys.executable, str(HERE / "stdlib_wallet.py")]


def _start(command: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    args = [*command, "--port", "0"]
    for account in ACCOUNTS:
        args += ["--account", ":".join(account)]
    with log.open("w") as stderr:  # a file, not a pipe: a chatty wallet must not block on a full pipe
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 15)
    url = proc.stdout.readline().strip() if ready else ""
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise AssertionError(f"the wallet did not print its URL: {url!r} {log.read_text()[-500:]}")
    return proc, url


def _balance(url: str, third: str, user: str, currency: str) -> Decimal:
    body = json.dumps({"thirdServerCode": third, "userName": user, "currency": currency}).encode()
    request = urllib.request.Request(
        f"{url}/get-user-amount", data=body, method="POST",
        headers={"Content-Type": "application/json", "trace": "independent-final-balance", "companyId": "439",
                 "timestamp": str(int(time.time() * 1000))},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        envelope = json.loads(answer.read())
    assert envelope["code"] == "0", envelope
    return Decimal(envelope["data"]["amount"])


def _run(url: str, report: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    # the wallets hold test money: the amount bound for external targets is lifted, as in test_faults.py
    args = [sys.executable, "-m", "conformance.cli", "run", "--base-url", url, "--allow-money-movement",
            "--max-execute-amount", "0", "--rate-limit", "0",
            "--max-examples", "10", "--no-html", "--report-dir", str(report), *extra]
    for third, user, currency, _ in ACCOUNTS:
        args += ["--account", f"{third}:{user}:{currency}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    return done, json.loads((report / "summary.json").read_text())


def _must_failures(summary: dict) -> dict[str, list[str]]:
    return {
        row["id"]: sorted({example["message"][:160] for example in row.get("failing_examples", [])})[:3]
        for row in summary["requirements"]
        if row["level"] == "MUST" and row["status"] == "failed"
    }


def _assert_clean(wallet: str, done: subprocess.CompletedProcess, summary: dict, report: Path, log: Path) -> None:
    must_failed = _must_failures(summary)
    assert not must_failed, (
        f"MUST failures against the independent {wallet} wallet (false verdicts of the suite?): "
        + json.dumps(must_failed, indent=1) + f"\nreport: {report}\nwallet stderr: " + log.read_text()[-1000:]
    )
    assert not summary["money"]["outstanding"], (
        f"the run says it left money uncompensated on the {wallet} wallet: "
        + json.dumps([(e["requestUniqueNo"], e["outcome"]) for e in summary["money"]["outstanding"]])
        + f" {summary.get('suite_errors')}"
    )
    assert done.returncode == 0, f"exit {done.returncode}: {summary.get('suite_errors')}\n" + done.stdout[-1500:]


def _assert_balances_restored(url: str) -> None:
    final = {account[:3]: _balance(url, *account[:3]) for account in ACCOUNTS}
    started = {account[:3]: Decimal(account[3]) for account in ACCOUNTS}
    assert final == started, f"the wallet's balances after the run: {final}, before: {started}"


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=10)
    proc.stdout.close()


@pytest.mark.slow
@pytest.mark.parametrize("wallet", ["node", "stdlib"])
def test_independent_wallet_gets_no_false_failure(wallet, tmp_path):
    log = tmp_path / "wallet.stderr"
    proc, url = _start(_wallet_command(wallet), log)
    try:
        report = tmp_path / "report"
        done, summary = _run(url, report)
        _assert_clean(wallet, done, summary, report, log)
        _assert_balances_restored(url)
    finally:
        _stop(proc)


@pytest.mark.slow
def test_second_run_against_the_same_wallet(tmp_path):
    """A nightly job runs the suite again and again against one persistent wallet, with the default seed.

    The second run must not mistake the first run's requests for its own: a requestUniqueNo it sends must
    not be one the wallet already saw (a replay, answered from storage). The stdlib wallet refuses a second
    cancel of a reversed adjustment (D16), so a replayed execute the run thinks it applied can never be
    "compensated", and the run would report money outstanding that never moved.
    """
    log = tmp_path / "wallet.stderr"
    proc, url = _start(_wallet_command("stdlib"), log)
    try:
        _, first_summary = _run(url, tmp_path / "first")
        assert not first_summary["money"]["outstanding"], first_summary.get("suite_errors")
        report = tmp_path / "second"
        done, summary = _run(url, report)
        _assert_clean("stdlib (second run)", done, summary, report, log)
        _assert_balances_restored(url)
    finally:
        _stop(proc)
