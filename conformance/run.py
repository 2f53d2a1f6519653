"""One conformance run: start the target if embedded, preflight, suite, compensation, verdicts, reports.

Money safety (README "Money safety and settle"): every execute and cancel is
journaled to ``money-journal.jsonl`` before it is sent; outstanding money is
settled after every test and generated slice, whenever ``--max-outstanding``
adjustments are open, and at the end, each time within ``--settle-timeout``.
The first SIGINT/SIGTERM (or ``--max-duration``, or the execute budget) stops
new traffic at once, settles, writes the reports and exits 130/143 (4 for a
bound); a second signal exits at once and prints the ``conformance settle``
command that finishes the job.

Report directory rule: a run refuses a directory that holds an earlier run's
artifacts unless ``--overwrite`` is given; even then the earlier artifacts are
only set aside until the new run has reached its target (and put back if it
does not), and a directory whose journal still has money outstanding is always
refused (settle it first).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from conformance import preflight, schemathesis_hooks
from conformance.conversations import CancelPairs
from conformance.delivery import CancelPolicy
from conformance.journal import Journal
from conformance.ledger import Ledger
from conformance.money_journal import JOURNAL_FILE, Bounds, MoneyJournal
from conformance.money_journal import read as read_money_journal
from conformance.profile import Profile, TestAccount
from conformance.reporting import redaction
from conformance.settle import describe, read_balances, settle_command_line, settle_outstanding
from conformance.suite.plugin import RunState, SuitePlugin
from conformance.suite.replay import ReplayPlugin
from conformance.summary import build_summary
from conformance.transport import Client, GeneratedGate

SUITE_DIR = Path(__file__).resolve().parent / "suite"
#: Files and folders a run writes into its report directory (cleared before a run reuses the directory).
ARTIFACTS = (
    "summary.json", "ledger.json", "profile.json", "exchanges.jsonl", "outcomes.jsonl", "junit.xml",
    "allure-results", "allure-report", "report.html", "pytest.ini", "evidence", "comparison.json",
    JOURNAL_FILE, "settle-exchanges.jsonl",
)
EXIT_STOPPED_BY_BOUND = 4  # --max-duration or --max-executes stopped the run: incomplete


class ReportDirInUse(Exception):
    """The report directory holds an earlier run that must not be destroyed (exit 2)."""


@dataclass
class RunResult:
    exit_code: int
    summary: dict[str, Any]
    report_dir: Path


def default_report_dir() -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("reports") / f"run-{stamp}"


def _earlier_artifacts(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    found = [path / name for name in ARTIFACTS if (path / name).exists()]
    found += sorted(path.glob("evidence-*.zip")) + sorted(path.glob("settle-addendum-*"))
    return found


def prepare_report_dir(path: Path, *, overwrite: bool = False) -> Path | None:
    """Check the report dir is safe to use; with ``overwrite``, set the earlier run aside (not deleted).

    Returns the folder holding the set-aside artifacts (None when there were none); the caller
    deletes it with :func:`discard_previous` once the new run reached its target, or puts it back
    with :func:`restore_previous` when it did not.
    """
    earlier = _earlier_artifacts(path)
    journal = path / JOURNAL_FILE
    if journal.is_file():
        owed = read_money_journal(journal).outstanding()
        if owed:
            raise ReportDirInUse(
                f"{path} holds an earlier run with {len(owed)} adjustment(s) still outstanding; "
                f"settle it first: {settle_command_line(path)}")
    if earlier and not overwrite:
        raise ReportDirInUse(f"{path} already holds a run's reports; choose a new --report-dir or pass --overwrite")
    path.mkdir(parents=True, exist_ok=True)
    if not earlier:
        return None
    aside = path / f".previous-{uuid.uuid4().hex[:8]}"
    aside.mkdir()
    for item in earlier:
        item.rename(aside / item.name)
    return aside


def discard_previous(aside: Path | None) -> None:
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def restore_previous(path: Path, aside: Path | None) -> None:
    """Put the earlier run back (the new run never reached its target): its files win over the new ones."""
    if aside is None:
        return
    for item in aside.iterdir():
        target = path / item.name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        item.rename(target)
    aside.rmdir()


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
        "--assert=plain",  # the suite judges through typed outcomes; rewriting its modules cost ~20 s a run
        "-o", "timeout=900",
        "--alluredir", str(report_dir / "allure-results"),
        "-W", "ignore::DeprecationWarning",
        *(["-q", "--tb=short", "--no-header"] if verbose else ["-p", "no:terminal"]),
    ]


class Stopper:
    """SIGINT/SIGTERM for one run: the first stops new traffic (and the run settles); a second exits at once."""

    def __init__(self, money: MoneyJournal, report_dir: Path) -> None:
        self.money = money
        self.report_dir = report_dir
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum = signum
            self.money.stop(f"{name} received")
            _stderr(f"conformance: {name}: stopping new traffic, settling money, writing reports "
                    f"({name} again exits at once)")
            return
        _stderr(f"conformance: {name} again: exiting now; money may be outstanding. "
                f"Finish with: {settle_command_line(self.report_dir)}")
        os._exit(128 + self.signum)

    def __enter__(self) -> Stopper:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


#: The terminal's stderr as it was when the module loaded, before pytest's capture dup2()s fd 2 away: a signal's
#: line must reach the person who pressed Ctrl-C, not a captured test's output.
try:
    _REAL_STDERR = os.dup(2)
except OSError:  # no stderr at all
    _REAL_STDERR = 2


def _stderr(line: str) -> None:
    os.write(_REAL_STDERR, (line + "\n").encode("utf-8", "replace"))  # async-signal-safe enough: no buffering


class SettleAsTheRunGoes:
    """A pytest plugin: settle after every test and generated slice; end the session once the run stops."""

    def __init__(self, settle: Callable[[str], Any], money: MoneyJournal) -> None:
        self._settle = settle
        self._money = money
        self._session: Any = None

    def pytest_sessionstart(self, session) -> None:
        self._session = session

    def pytest_runtest_logfinish(self, nodeid, location) -> None:
        if self._money.stopping.is_set():
            if self._session is not None:
                self._session.shouldstop = f"the run is stopping: {self._money.stop_reason}"
            return
        self._settle("after-test")


def execute(profile: Profile, *, progress: Callable[[str], None] | None = None, verbose: bool = False) -> RunResult:
    """Run the suite against the profile's target; write every artifact; return the verdict."""
    import pytest

    say = progress or (lambda line: None)
    preflight.check_base_url(profile)  # setup mistakes end here, before anything is written or sent
    preflight.check_accounts_named(profile)
    report_dir = Path(profile.report_dir) if profile.report_dir else default_report_dir()
    aside = prepare_report_dir(report_dir, overwrite=profile.overwrite)
    started = time.time()
    run_id = uuid.uuid4().hex[:8]
    money = MoneyJournal(report_dir, bounds=Bounds(
        max_outstanding=profile.max_outstanding, max_executes=profile.effective_max_executes,
        max_execute_amount=profile.effective_max_execute_amount))
    stopper = Stopper(money, report_dir)
    timer = None
    try:
        with stopper, target(profile) as live:
            journal = Journal(
                report_dir, live.judging_context(), secret_headers=live.secret_header_names,
                secret_values=live.secret_values, secrets=redaction.Secrets.of(live),
            )
            ledger = Ledger(money=money)
            journal.observers += [ledger, CancelPairs(journal)]
            money.start_run(run_id, live.base_url, live.company_id, [str(a) for a in live.accounts],
                            embedded=live.embedded)
            state = RunState(profile=live, journal=journal, ledger=ledger, run_id=run_id)
            say(f"target: {live.base_url} ({'embedded reference wallet' if live.embedded else 'external'})")
            try:
                checked = preflight.run(live, journal)
            except (preflight.TargetUnreachable, preflight.SetupError):
                journal.close()
                money.close()
                restore_previous(report_dir, aside)
                raise
            digits = checked.digits
            journal.ctx = replace(journal.ctx, account_digits=tuple(digits.items()))
            for account in live.accounts:
                balance = checked.balances.get(account.key)
                money.balance("preflight", str(account), None if balance is None else str(balance),
                              digits.get(account.key))
            discard_previous(aside)
            if profile.max_duration is not None:
                timer = threading.Timer(profile.max_duration,
                                        lambda: money.stop(f"--max-duration {profile.max_duration:g} s reached"))
                timer.daemon = True
                timer.start()
            compensation = Client(live, journal)
            policy = CancelPolicy(budget_s=live.settle_timeout)

            def settle_now(label: str) -> list:
                if not live.money_allowed:
                    return money.outstanding()
                return settle_outstanding(
                    money, lambda op, body: compensation.call(op, body, origin=f"compensation/{label}"),
                    policy=policy, timeout_s=live.settle_timeout, say=say)

            money.on_limit = lambda: settle_now("max-outstanding")
            state.generated = schemathesis_hooks.GeneratedRun(
                journal=journal, company_id=live.company_id, accounts=tuple(a.key for a in live.accounts),
                account_digits=digits, money_allowed=live.money_allowed, client_timeout_s=live.timeout,
                number_prefix=f"cf-{run_id}-g", gate=GeneratedGate(money, live.max_body_bytes, live.timeout),
            )
            plugin = SuitePlugin(state, progress=say)
            replay = ReplayPlugin(state, live.replays, progress=say)  # failing MUST probes replayed (flaky)
            pytest_exit = None
            settle_started = None
            try:
                pytest_exit = pytest.main(
                    _pytest_args(report_dir, verbose),
                    plugins=[plugin, replay, SettleAsTheRunGoes(settle_now, money)])
            finally:
                if timer is not None:
                    timer.cancel()
                say("settling money: cancelling every adjustment still outstanding")
                settle_started = time.monotonic()
                try:
                    leftover = settle_now("end")
                    read_balances(compensation, money, [str(a) for a in live.accounts], "end")
                finally:
                    compensation.close()
                    journal.close()
            settle_s = time.monotonic() - settle_started
            summary = build_summary(live, state, started, leftover=leftover, pytest_exit=int(pytest_exit))
            ledger_record = ledger.summary()
    finally:
        money.close()
    _account_for_stop(summary, stopper, money, leftover, report_dir, settle_s, say)
    _write_json(report_dir / "summary.json", summary)
    _write_json(report_dir / "ledger.json", ledger_record)
    _write_json(report_dir / "profile.json", live.to_record())
    return RunResult(exit_code=summary["exit_code"], summary=summary, report_dir=report_dir)


def _account_for_stop(summary: dict, stopper: Stopper, money: MoneyJournal, leftover: list, report_dir: Path,
                      settle_s: float, say: Callable[[str], None]) -> None:
    """A stopped run's exit code and note; the outstanding list and the settle command when money is left."""
    stop = None
    if money.stop_reason is not None:
        stop = {"reason": money.stop_reason, "signal": stopper.signum}
        summary.setdefault("suite_errors", []).append(f"the run was stopped early: {money.stop_reason}")
        if stopper.signum is not None:
            summary["exit_code"] = 128 + stopper.signum
            summary["verdict"] = "interrupted"
        elif summary.get("exit_code") == 0:
            summary["exit_code"], summary["verdict"] = EXIT_STOPPED_BY_BOUND, "incomplete"
    summary["stopped"] = stop
    summary.setdefault("money", {})["final_settle_s"] = round(settle_s, 3)
    if leftover:
        command = settle_command_line(report_dir)
        summary["money"]["settle_command"] = command
        say(f"money: {len(leftover)} adjustment(s) still outstanding:")
        for adjustment in leftover[:50]:
            say(f"  {describe(adjustment)}")
        say(f"money: finish with: {command}")
        print(f"conformance: {len(leftover)} adjustment(s) outstanding; finish with: {command}", file=sys.stderr)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
