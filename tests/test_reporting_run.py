"""One real conformance run shared by every reporting and evidence self-test, and tests of what it printed.

The run targets the reference wallet with one deliberate fault (``ok-fail-both-true``, which
breaks the MUST requirement ENV-002), served here as an *external* target with secret headers,
so that the reports hold real failures of handwritten and generated tests, real secrets to leak,
and real money movement. It is then given a made-up previous night (summary.json and Allure
history) so that ``--compare`` and ``--history`` are exercised by the same ``finish`` call.

Other test modules import :func:`shared_run` (``tests/`` is on sys.path, as for conftest_reference).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance import contract, reporting
from conformance import profile as profiles
from conformance.reporting import html
from conformance.run import RunResult, execute

FAULT = "ok-fail-both-true"  # breaks ENV-002 (MUST)
SECRETS = ("Bearer s3cr3t-TOKEN-xyz", "k3y-ABC-987", "gw-SECRET-555")
HEADERS = [f"Authorization: {SECRETS[0]}", f"X-Api-Key: {SECRETS[1]}", f"X-Gateway-Key: {SECRETS[2]}"]
PREVIOUS_RUN_ID = "prev0001"
PREVIOUS_BUILD_ORDER = 41
#: Where `npm install allure-commandline@2` was run on the development machine (used only when the
#: command line is not found the supported ways: $ALLURE_CMD, PATH, node_modules/.bin).
DEV_ALLURE = Path("/tmp/allure-cli/node_modules/.bin/allure")


@dataclass
class SharedRun:
    root: Path
    report_dir: Path
    result: RunResult
    profile: profiles.Profile
    lines: list[str]
    environ: dict[str, str]
    html_expected: bool
    previous_dir: Path
    seconds: float

    @property
    def summary(self) -> dict:
        return json.loads((self.report_dir / "summary.json").read_text(encoding="utf-8"))

    @property
    def bundle(self) -> Path:
        return self.report_dir / f"evidence-{self.result.summary['run']['id']}.zip"

    def results(self) -> list[dict]:
        return [json.loads(p.read_text(encoding="utf-8"))
                for p in sorted((self.report_dir / "allure-results").glob("*-result.json"))]


_RUN: SharedRun | None = None


def reporting_environ() -> tuple[dict[str, str], bool]:
    """The environment finish() gets: the Allure command line where this machine has one."""
    environ = dict(os.environ)
    if not html.find_command_line(environ).available and DEV_ALLURE.is_file():
        environ["ALLURE_CMD"] = str(DEV_ALLURE)
    return environ, html.find_command_line(environ).available


def previous_summary(statuses: dict[str, str]) -> dict:
    """A made-up previous summary.json: every requirement passed, except the given statuses."""
    rows = [{"id": r.id, "level": r.level, "statement": r.statement, "status": statuses.get(r.id, "passed")}
            for r in contract.load().requirements.values()]
    return {
        "suite": {"name": "multimarkets-webhook-conformance", "version": "0.0.9"},
        "spec": {"sha256": contract.load().spec_sha256},
        "run": {"id": PREVIOUS_RUN_ID, "started_at": "2026-11-24T02:17:00+00:00"},
        "verdict": "failed" if "failed" in statuses.values() else "passed",
        "exit_code": 1 if "failed" in statuses.values() else 0,
        "requirements": rows,
    }


def _previous_night(root: Path) -> Path:
    previous = root / "previous"
    history = previous / "allure-report" / "history"
    history.mkdir(parents=True)
    # ENV-011 (SHOULD) warned last night and passes now: recovered; ENV-002 (MUST) passed and now fails:
    # regressed; the verdict went from passed to failed.
    (previous / "summary.json").write_text(json.dumps(previous_summary({"ENV-011": "warning"})), encoding="utf-8")
    trend = [{"buildOrder": PREVIOUS_BUILD_ORDER, "reportName": "previous night",
              "data": {"failed": 1, "broken": 0, "skipped": 0, "passed": 9, "unknown": 0, "total": 10}}]
    (history / "history-trend.json").write_text(json.dumps(trend), encoding="utf-8")
    (history / "history.json").write_text("{}", encoding="utf-8")
    return previous


def _execute() -> SharedRun:
    from conformance.reference import DEFAULT_ACCOUNTS, WalletConfig, serve

    root = Path(tempfile.mkdtemp(prefix="conformance-reporting-"))
    atexit.register(shutil.rmtree, root, True)
    previous = _previous_night(root)
    environ, html = reporting_environ()
    started = time.monotonic()
    with serve(WalletConfig(fault=FAULT)) as base_url:
        profile = profiles.build({
            "base_url": base_url,
            "accounts": [f"{a.third_server_code}:{a.user_name}:{a.currency}" for a in DEFAULT_ACCOUNTS],
            "allow_money_movement": True,
            "rate_limit": 0,
            "report_dir": str(root / "report"),
            "max_examples": 3,
            "phases": "examples,handwritten",
            "headers": HEADERS,
            "history": str(previous),
            "compare": str(previous / "summary.json"),
        }, environ={})
        result = execute(profile)
    lines: list[str] = []
    reporting.finish(result, profile, say=lines.append, environ=environ)
    return SharedRun(root=root, report_dir=result.report_dir, result=result, profile=profile, lines=lines,
                     environ=environ, html_expected=html, previous_dir=previous,
                     seconds=round(time.monotonic() - started, 1))


def shared_run() -> SharedRun:
    global _RUN
    if _RUN is None:
        _RUN = _execute()
    return _RUN


@pytest.fixture(scope="module")
def run() -> SharedRun:
    return shared_run()


# ------------------------------------------------------------------- tests
def test_the_run_failed_on_the_fault_and_finish_kept_its_exit_code(run):
    assert run.result.exit_code == 1
    assert run.summary["verdict"] == "failed"
    statuses = {row["id"]: row["status"] for row in run.summary["requirements"]}
    assert statuses["ENV-002"] == "failed"
    assert not [e for e in run.summary["suite_errors"] if e.startswith("reporting error")]
    assert not [line for line in run.lines if line.startswith("reporting error")], run.lines


def test_finish_printed_each_step_once(run):
    lines = run.lines
    evidence = [line for line in lines if line.startswith("evidence: ")]
    assert len(evidence) == 1 and evidence[0].endswith(f"unsigned; check with: conformance verify {run.bundle})")
    assert any(line.startswith(f"compared with run {PREVIOUS_RUN_ID} (passed): ") for line in lines)
    assert any(line.startswith("Allure history: carried over from ") for line in lines)
    html_lines = [line for line in lines if line.startswith(("HTML report", "Allure history for"))]
    if run.html_expected:
        assert html_lines == [f"HTML report: {run.report_dir / 'report.html'}"]
    else:
        assert len(html_lines) == 1 and html_lines[0].startswith("HTML report skipped: ")
    assert lines[-1] == f"reports: {run.report_dir}"
    assert any(line.startswith("verdict: FAILED (exit 1)") for line in lines)


def test_junit_xml_holds_every_requirement(run):
    """junit.xml is rendered from the verdicts: one testcase per requirement, failures name the id."""
    import xml.etree.ElementTree as ET

    root = ET.parse(run.report_dir / "junit.xml").getroot()
    cases = [c for c in root.iter("testcase") if c.get("classname", "").startswith("requirements.")]
    assert [c.get("name").split(" ", 1)[0] for c in cases] == [r["id"] for r in run.summary["requirements"]]
    failures = {c.get("name").split(" ", 1)[0] for c in cases if c.find("failure") is not None}
    assert failures == {r["id"] for r in run.summary["requirements"] if r["status"] == "failed"} >= {"ENV-002"}
    for case in cases:
        failure = case.find("failure")
        if failure is not None:
            assert failure.get("message").startswith(case.get("name").split(" ", 1)[0] + " failed (MUST)")
