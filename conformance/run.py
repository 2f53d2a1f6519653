"""One conformance run: start the target if embedded, preflight, suite, compensation, verdicts, reports."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from conformance import preflight, schemathesis_hooks
from conformance.conversations import CancelPairs
from conformance.journal import Journal
from conformance.ledger import Ledger
from conformance.profile import Profile, TestAccount
from conformance.suite.plugin import RunState, SuitePlugin
from conformance.summary import build_summary
from conformance.transport import Client

SUITE_DIR = Path(__file__).resolve().parent / "suite"
#: Files and folders a run writes into its report directory (cleared before a run reuses the directory).
ARTIFACTS = (
    "summary.json", "ledger.json", "profile.json", "exchanges.jsonl", "outcomes.jsonl", "junit.xml",
    "allure-results", "allure-report", "report.html", "pytest.ini", "evidence", "comparison.json",
)


@dataclass
class RunResult:
    exit_code: int
    summary: dict[str, Any]
    report_dir: Path


def default_report_dir() -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("reports") / f"run-{stamp}"


def prepare_report_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name in ARTIFACTS:
        target = path / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for leftover in path.glob("evidence-*.zip"):
        leftover.unlink()
    return path


@contextlib.contextmanager
def target(profile: Profile) -> Iterator[Profile]:
    """The profile pointed at its target: the given URL, or an embedded reference wallet started here."""
    if not profile.embedded:
        yield profile
        return
    from conformance.reference import DEFAULT_ACCOUNTS, WalletConfig, serve

    keys = "snake" if profile.keys == "snake" else "camel"
    with serve(WalletConfig(keys=keys)) as base_url:
        accounts = tuple(TestAccount(a.third_server_code, a.user_name, a.currency) for a in DEFAULT_ACCOUNTS)
        yield profile.with_embedded_target(base_url, accounts)


def _pytest_args(report_dir: Path, verbose: bool) -> list[str]:
    ini = report_dir / "pytest.ini"
    ini.write_text("[pytest]\n")
    return [
        str(SUITE_DIR),
        "-c", str(ini),
        "--rootdir", str(SUITE_DIR),
        "-p", "no:cacheprovider",
        "-p", "no:randomly",
        "-o", "timeout=900",
        "-o", "junit_family=xunit2",
        "-o", "junit_suite_name=multimarkets-webhook-conformance",
        "--junitxml", str(report_dir / "junit.xml"),
        "--alluredir", str(report_dir / "allure-results"),
        "-W", "ignore::DeprecationWarning",
        *(["-q", "--tb=short", "--no-header"] if verbose else ["-p", "no:terminal"]),
    ]


def execute(profile: Profile, *, progress: Callable[[str], None] | None = None, verbose: bool = False) -> RunResult:
    """Run the suite against the profile's target; write every artifact; return the verdict."""
    import pytest

    say = progress or (lambda line: None)
    preflight.check_base_url(profile)  # setup mistakes end here, before anything is written or sent
    preflight.check_accounts_named(profile)
    report_dir = prepare_report_dir(Path(profile.report_dir) if profile.report_dir else default_report_dir())
    started = time.time()
    run_id = uuid.uuid4().hex[:8]
    with target(profile) as live:
        journal = Journal(
            report_dir, live.judging_context(), secret_headers=live.secret_header_names,
            secret_values=live.secret_values,
        )
        ledger = Ledger()
        journal.observers += [ledger, CancelPairs(journal)]
        state = RunState(profile=live, journal=journal, ledger=ledger, run_id=run_id)
        say(f"target: {live.base_url} ({'embedded reference wallet' if live.embedded else 'external'})")
        try:
            checked = preflight.run(live, journal)
        except (preflight.TargetUnreachable, preflight.SetupError):
            journal.close()
            raise
        digits = checked.digits
        journal.ctx = replace(journal.ctx, account_digits=tuple(digits.items()))
        state.generated = schemathesis_hooks.GeneratedRun(
            journal=journal, company_id=live.company_id, accounts=tuple(a.key for a in live.accounts),
            account_digits=digits, money_allowed=live.money_allowed, client_timeout_s=live.timeout,
            number_prefix=f"cf-{run_id}-g",
        )
        plugin = SuitePlugin(state, progress=say)
        pytest_exit = None
        try:
            pytest_exit = pytest.main(_pytest_args(report_dir, verbose), plugins=[plugin])
        finally:
            say("settling money: cancelling every adjustment still outstanding")
            compensation_client = Client(live, journal)
            try:
                leftover = ledger.compensate(compensation_client) if live.money_allowed else ledger.outstanding()
            finally:
                compensation_client.close()
            journal.close()
        summary = build_summary(live, state, started, leftover=leftover, pytest_exit=int(pytest_exit))
    _write_json(report_dir / "summary.json", summary)
    _write_json(report_dir / "ledger.json", ledger.summary())
    _write_json(report_dir / "profile.json", live.to_record())
    return RunResult(exit_code=summary["exit_code"], summary=summary, report_dir=report_dir)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
