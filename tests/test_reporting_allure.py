"""Allure results of the shared run: labels, attachments, environment, categories, history, HTML."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_reporting_run import PREVIOUS_BUILD_ORDER, SharedRun, shared_run

from conformance import contract, reporting
from conformance.reporting import allure
from conformance.run import RunResult

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def run() -> SharedRun:
    return shared_run()


@pytest.fixture(scope="module")
def catalogue():
    return contract.load().requirements


def _labels(result: dict, name: str) -> list[str]:
    return [label["value"] for label in result.get("labels", []) if label["name"] == name]


def _nodeid(result: dict) -> str:
    module = result["fullName"].split("#", 1)[0]
    return f"{module}.py::{result['name']}"


def _generated(result: dict) -> bool:
    return result["fullName"].startswith("test_generated#")


def _scenario_key(result: dict) -> tuple:
    return tuple(allure._parameter(result, name) for name in ("operation", "phase", "mode"))


# ------------------------------------------------------------ one per test
def test_one_result_per_test_with_its_outcome(run):
    results = run.results()
    expected = {r["nodeid"]: r["outcome"] for r in run.summary["test_results"]}
    assert len(results) == len(expected) == run.summary["tests"]["total"]
    assert {_nodeid(r): r["status"] for r in results} == expected


def test_one_generated_result_per_operation_phase_mode(run):
    generated = [r for r in run.results() if _generated(r)]
    scenarios = {(s["operation"] or "all", s["phase"], s["mode"]) for s in run.summary["generated"]}
    assert len(generated) == len(run.summary["generated"]) == len(scenarios) == 3
    assert {_scenario_key(r) for r in generated} == scenarios
    for result in generated:
        operation, phase, mode = _scenario_key(result)
        assert _labels(result, "feature") == [operation]
        assert result["name"] == allure.scenario_test_name(phase, operation, mode)


def test_every_result_is_its_own_test_in_allure(run):
    """Pytest parametrisations Allure would merge into 'retries' (bytes params) get a telling parameter."""
    identities = [allure.identity(r) for r in run.results()]
    assert len(set(identities)) == len(identities)
    malformed = [r for r in run.results() if r["name"].startswith("test_malformed_json_is_rejected")]
    assert malformed and all(allure._parameter(r, "case") for r in malformed)


# ------------------------------------------------------------------ labels
def test_handwritten_results_carry_their_requirements(run, catalogue):
    by_nodeid = {r["nodeid"]: r["requirements"] for r in run.summary["test_results"]}
    handwritten = [r for r in run.results() if not _generated(r)]
    assert len(handwritten) > 100
    operations = set(contract.load().operations)
    for result in handwritten:
        ids = by_nodeid[_nodeid(result)]
        assert ids, result["name"]
        assert _labels(result, "epic") == [allure.EPIC]
        assert set(_labels(result, "requirement")) == set(ids)
        assert set(_labels(result, "story")) == {f"{rid} {catalogue[rid].statement}" for rid in ids}
        must = any(catalogue[rid].is_must for rid in ids)
        assert _labels(result, "severity") == ["critical" if must else "minor"], result["name"]
        assert set(_labels(result, "feature")) <= operations and _labels(result, "feature")
        urls = {link["url"] for link in result.get("links", [])}
        for rid in ids:
            for section in catalogue[rid].source:
                assert f"spec/webhook-api.reference.md#section-{section}" in urls
    should_only = [r for r in handwritten if _labels(r, "severity") == ["minor"]]
    assert should_only, "some handwritten tests judge SHOULD requirements only"


def test_generated_results_carry_the_requirements_judged_in_them(run, catalogue):
    matrix = {row["id"]: {t["nodeid"] for t in row["tests"]}
              for row in _traceability(run)["requirements"]}
    for result in (r for r in run.results() if _generated(r)):
        ids = _labels(result, "requirement")
        assert "ENV-002" in ids and "ENV-001" in ids and "ROB-001" in ids, ids
        assert set(ids) <= set(catalogue)
        for rid in ids:  # every label is backed by the evidence: the matrix lists this test for it
            assert f"test_generated.py::{result['name']}" in matrix[rid], rid
            assert f"{rid} {catalogue[rid].statement}" in _labels(result, "story")
        assert _labels(result, "severity") == ["critical"]
        assert _labels(result, "epic") == [allure.EPIC]
        urls = {link["url"] for link in result["links"]}
        assert {f"spec/webhook-api.reference.md#section-{s}" for s in catalogue["ENV-002"].source} <= urls


def _traceability(run: SharedRun) -> dict:
    import zipfile

    with zipfile.ZipFile(run.bundle) as archive:
        return json.loads(archive.read("traceability.json"))


# ------------------------------------------------------------- attachments
def _attachment(run: SharedRun, item: dict) -> str:
    return (run.report_dir / "allure-results" / item["source"]).read_text(encoding="utf-8")


def test_failing_handwritten_results_attach_curl_and_exchange(run):
    failed = [r for r in run.results() if r["status"] == "failed" and not _generated(r)]
    assert failed  # ENV-002 on the balances at least
    for result in failed:
        names = [a["name"] for a in result["attachments"]]
        curls = [a for a in result["attachments"] if a["name"].endswith(" curl")]
        exchanges = [a for a in result["attachments"] if a["name"].endswith(" exchange")]
        assert curls and exchanges, names
        assert _attachment(run, curls[0]).startswith("curl -sS -X POST ")
        record = json.loads(_attachment(run, exchanges[0]))
        assert record["request"]["url"].startswith(run.profile.base_url)
        assert record["response"]["status"] == 200
        sent = dict(record["request"]["headers"])
        assert sent["Authorization"] == sent["X-Api-Key"] == "<redacted>"


def test_failing_generated_results_attach_every_failing_case(run):
    scenarios = {(s["operation"], s["phase"], s["mode"]): s for s in run.summary["generated"]}
    failed = [r for r in run.results() if r["status"] == "failed" and _generated(r)]
    assert len(failed) == 3
    for result in failed:
        scenario = scenarios[_scenario_key(result)]
        exchanges = [a for a in result["attachments"] if a["name"].endswith(" exchange")]
        assert len(exchanges) == len(scenario["failures"]) > 0
        curls = "\n".join(_attachment(run, a) for a in result["attachments"] if "curl" in a["name"])
        for exchange, failure in zip(exchanges, scenario["failures"], strict=True):
            assert failure["curl"] in curls  # one attachment per case, or one listing them all
            record = json.loads(_attachment(run, exchange))
            assert record["curl"] == failure["curl"]
            assert record["requirement"] == failure["requirement"] == "ENV-002"
            assert json.loads(record["exchange"]["response"]["body"])["fail"] is True  # the very answer at fault
            assert record["exchange"]["origin"] == f"generated/{scenario['phase']}/positive"


def test_attach_failures_helper_for_the_generated_test(tmp_path):
    """attach_failures() (for conformance/suite/test_generated.py) attaches curl + exchange per case."""
    test = tmp_path / "test_helper.py"
    test.write_text(textwrap.dedent("""
        from conformance.reporting.allure import attach_failures

        def test_scenario():
            failures = [{"requirement": "ENV-002", "check": "c", "title": "t", "message": "m",
                         "curl": "curl -X POST -H 'trace: T-1' http://x/get-user-amount"}]
            attach_failures(failures, None)
            raise AssertionError("1 violation(s)")
    """))
    out = tmp_path / "results"
    subprocess.run([sys.executable, "-m", "pytest", str(test), "-q", "-p", "no:cacheprovider", "--alluredir", str(out)],
                   cwd=tmp_path, capture_output=True, check=False, timeout=60)
    [result] = [json.loads(p.read_text()) for p in out.glob("*-result.json")]
    names = [a["name"] for a in result["attachments"]]
    assert names == ["case 1: ENV-002 [c] curl", "case 1: ENV-002 [c] exchange"]
    assert (out / result["attachments"][0]["source"]).read_text().startswith("curl -X POST")


# ------------------------------------------------------- environment/executor
def test_environment_properties_name_target_suite_spec_and_seed(run):
    values = allure.read_properties(run.report_dir / "allure-results" / "environment.properties")
    summary = run.summary
    assert values["target.url"] == run.profile.base_url
    assert values["target.kind"] == "external"
    assert values["suite.version"] == summary["suite"]["version"]
    assert values["spec.file"] == "webhook.openapi.yaml"
    assert values["spec.sha256"] == contract.load().spec_sha256 == summary["spec"]["sha256"]
    assert values["catalogue.sha256"] == contract.load().catalogue_sha256
    assert values["run.seed"] == str(run.profile.seed) == "20261125"
    assert values["run.max_examples"] == "3"
    assert values["run.id"] == summary["run"]["id"]
    assert values["verdict"] == "failed (exit 1)"
    assert values["python"] == sys.version.split()[0]


def test_public_url_drops_credentials():
    assert allure.public_url("https://user:pw@wallet.example:8443/api?key=s") == "https://wallet.example:8443/api"


def test_executor_names_the_run_and_continues_the_build_order(run):
    executor = json.loads((run.report_dir / "allure-results" / "executor.json").read_text())
    assert executor["name"] == "conformance"
    assert executor["type"] == "conformance"
    assert executor["buildName"] == f"run {run.summary['run']['id']}"
    assert executor["buildOrder"] == PREVIOUS_BUILD_ORDER + 1
    assert executor["reportName"].endswith("FAILED")


def test_executor_links_a_github_actions_run(tmp_path):
    summary = {"run": {"id": "abc"}, "verdict": "passed"}
    environ = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "99", "GITHUB_REPOSITORY": "org/repo",
               "GITHUB_RUN_NUMBER": "7", "GITHUB_WORKFLOW": "nightly"}
    executor = json.loads(allure.write_executor(tmp_path, summary, environ).read_text())
    assert executor["type"] == "github"
    assert executor["buildUrl"] == "https://github.com/org/repo/actions/runs/99"
    assert executor["buildName"] == "nightly #7 (run abc)"


# --------------------------------------------------------------- categories
MUST_VIOLATION, SHOULD_VIOLATION = "Contract violation (MUST)", "Contract violation (SHOULD)"
TARGET, SUITE, SUITE_ERROR = "Target did not answer", "Suite defect", "Suite error (unexpected exception)"


def test_categories_json_is_written(run):
    written = json.loads((run.report_dir / "allure-results" / "categories.json").read_text())
    assert [c["name"] for c in written] == [MUST_VIOLATION, SHOULD_VIOLATION, TARGET, SUITE, SUITE_ERROR,
                                            "Not judged (skipped)"]


def _expected_categories(message: str) -> list[str]:
    """What a real failure message of this run should be filed under: by the levels of the ids it names."""
    catalogue = contract.load().requirements
    levels = {catalogue[rid].level for rid in re.findall(r"\b[A-Z]{3}-\d{3}\b", message) if rid in catalogue}
    return [name for level, name in (("MUST", MUST_VIOLATION), ("SHOULD", SHOULD_VIOLATION)) if level in levels]


def test_categories_sort_the_runs_real_failures(run):
    failed = [r for r in run.results() if r["status"] == "failed"]
    assert failed
    for result in failed:
        message = result["statusDetails"]["message"]
        assert allure.category_of(message, "failed") == _expected_categories(message), message
    assert any("ENV-002" in r["statusDetails"]["message"] for r in failed)
    assert allure.category_of("anything", "passed") == []


@pytest.mark.parametrize(("message", "status", "expected"), [
    # conformance/suite/plugin.py expect() and require_answer(), transport.describe_transport_error()
    ("AssertionError: EXE-002: could not be judged, the target did not answer: connection refused", "failed",
     [TARGET]),
    ("AssertionError: the target did not answer executeAdjustment: timed out: no answer within 10 s", "failed",
     [TARGET]),
    ("AssertionError: HDR-001: the probe did not reach the rule (no check applied); suite defect", "failed", [SUITE]),
    ("AssertionError: Schemathesis could not run this scenario: fatal: KeyError('x')", "failed", [SUITE]),
    ("AssertionError: examples/positive/getUserAmount: Schemathesis sent no request", "failed", [SUITE]),
    ("KeyError: 'amount'", "broken", [SUITE_ERROR]),
    ("requests.exceptions.ConnectionError: connection refused", "broken", [TARGET]),
    ("AssertionError: 2 violation(s) in fuzzing/negative/executeAdjustment:\nVAL-004: accepted\nEXE-004: differs",
     "failed", [MUST_VIOLATION, SHOULD_VIOLATION]),
    ("AssertionError: CAN-003 violated: [money.refund] the balance did not come back\n"
     "CAN-005: could not be judged, the target did not answer: timed out", "failed", [MUST_VIOLATION, TARGET]),
    ("money movement is not allowed for this target", "skipped", ["Not judged (skipped)"]),
])
def test_categories_regexes(message, status, expected):
    assert allure.category_of(message, status) == expected


def test_allure_itself_sorts_the_failures_like_that(run):
    if not run.html_expected:
        pytest.skip("the Allure command line is not available here")
    tree = json.loads((run.report_dir / "allure-report" / "data" / "categories.json").read_text())
    # category -> the failure messages grouped under it (Allure groups a category's tests by message)
    members = {group["name"]: {child["name"] for child in group.get("children", [])} for group in tree["children"]}
    messages = [r["statusDetails"]["message"] for r in run.results() if r["status"] == "failed"]
    expected: dict[str, set[str]] = {}
    for message in messages:
        for name in _expected_categories(message):
            expected.setdefault(name, set()).add(message)
    assert members == expected and MUST_VIOLATION in members


# ------------------------------------------------------------------ history
def test_history_of_the_previous_report_is_carried_over(run):
    carried = run.report_dir / "allure-results" / "history" / "history-trend.json"
    source = run.previous_dir / "allure-report" / "history" / "history-trend.json"
    assert carried.read_bytes() == source.read_bytes()
    if run.html_expected:  # the report shows the trend of both nights, and keeps history for the next night
        trend = json.loads((run.report_dir / "allure-report" / "widgets" / "history-trend.json").read_text())
        assert [item["buildOrder"] for item in trend] == [PREVIOUS_BUILD_ORDER + 1, PREVIOUS_BUILD_ORDER]
        assert trend[0]["data"]["failed"] == sum(r["status"] == "failed" for r in run.results()) > 0
        kept = json.loads((run.report_dir / "allure-report" / "history" / "history-trend.json").read_text())
        assert len(kept) == 2


def test_history_is_found_in_results_or_report_folders(tmp_path):
    results = tmp_path / "now" / "allure-results"
    results.mkdir(parents=True)
    assert allure.carry_history(results, tmp_path / "nothing-here") is None
    old = tmp_path / "old" / "allure-results" / "history"
    old.mkdir(parents=True)
    (old / "history.json").write_text('{"a": 1}')
    assert allure.carry_history(results, tmp_path / "old") == results / "history"
    assert (results / "history" / "history.json").read_text() == '{"a": 1}'


# --------------------------------------------------------------------- HTML
def _embedded(html: str, name: str) -> dict:
    match = re.search(rf"d\('{re.escape(name)}','([^']*)'\)", html)
    assert match, f"{name} is not embedded in report.html"
    return json.loads(base64.b64decode(match.group(1)))


def test_single_file_html_report(run):
    if not run.html_expected:
        pytest.skip("the Allure command line is not available here")
    html = (run.report_dir / "report.html").read_text(encoding="utf-8")
    assert "<html" in html[:500].lower()
    assert not re.search(r"""(src|href)=["'](?!data:|https?:|#)[^"']+\.(js|css)""", html), "needs no sibling files"
    suites = _embedded(html, "data/suites.json")
    names = {test["name"] for group in suites["children"] for test in group["children"]}
    assert {r["name"] for r in run.results()} == names
    assert "ENV-002" in json.dumps(_embedded(html, "data/behaviors.json"))
    assert _embedded(html, "widgets/environment.json")


def test_chromium_shows_the_runs_tests(run, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed (/usr/bin/chromium)")
    if not run.html_expected:
        pytest.skip("the Allure command line is not available here")
    report = run.report_dir / "report.html"
    suites = _embedded(report.read_text(encoding="utf-8"), "data/suites.json")
    group = next(g for g in suites["children"] if g["name"] == "test_envelope")
    first = next(c for c in group["children"] if c["name"] == "test_envelope_on_successful_balance")  # it failed
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000", "--dump-dom",
               f"{report.as_uri()}#suites/{group['uid']}/{first['uid']}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    dom = re.sub(r"<script\b.*?</script>", "", done.stdout, flags=re.S)  # what the page shows, not its data
    shown = {child["name"] for child in group["children"] if child["name"] in dom}
    assert shown == {child["name"] for child in group["children"]}, dom[:500]
    assert "test_envelope_on_successful_balance" in dom
    assert "ENV-002 violated" in dom  # the opened failing test's message


# ---------------------------------------------------------- HTML unavailable
def _copy_report(run: SharedRun, target: Path) -> RunResult:
    def ignore(directory, names):
        return [n for n in names if n in ("allure-report", "report.html") or n.startswith("evidence-")]

    shutil.copytree(run.report_dir, target, ignore=ignore)
    summary = json.loads((target / "summary.json").read_text())
    return RunResult(exit_code=summary["exit_code"], summary=summary, report_dir=target)


def _no_allure_anywhere(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(allure, "_repo_root", lambda: tmp_path)
    monkeypatch.chdir(tmp_path)


def test_without_allure_the_run_says_so_in_one_line_and_still_finishes(run, tmp_path, monkeypatch):
    _no_allure_anywhere(monkeypatch, tmp_path)
    result = _copy_report(run, tmp_path / "report")
    lines: list[str] = []
    reporting.finish(result, run.profile, say=lines.append, environ={"PATH": str(tmp_path / "empty-bin")})
    html = [line for line in lines if "HTML" in line]
    assert html == ["HTML report skipped: Allure command line not found "
                    "(npm install --no-save allure-commandline@2 in the repository root; needs Java)"]
    assert not (tmp_path / "report" / "report.html").exists()
    assert (tmp_path / "report" / f"evidence-{result.summary['run']['id']}.zip").is_file()
    assert not [line for line in lines if line.startswith("reporting error")]
    assert lines[-1] == f"reports: {tmp_path / 'report'}"


def _executable(path: Path, script: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(("setup", "expected"), [
    ("missing", "HTML report skipped: ALLURE_CMD={tmp}/missing/allure is not an executable file"),
    ("no-java", "HTML report skipped: the Allure command line needs a Java runtime (e.g. openjdk-17-jre-headless)"),
    ("fails", "HTML report skipped: allure generate failed (exit 3): boom"),
])
def test_html_problems_are_one_line(tmp_path, monkeypatch, setup, expected):
    _no_allure_anywhere(monkeypatch, tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    environ = {"PATH": str(bin_dir)}
    if setup == "missing":
        environ["ALLURE_CMD"] = str(tmp_path / "missing" / "allure")
    else:
        environ["ALLURE_CMD"] = str(_executable(tmp_path / "cli" / "allure", "echo boom >&2; exit 3"))
        if setup == "fails":
            _executable(bin_dir / "java", "exit 0")
    report = tmp_path / "report"
    (report / "allure-results").mkdir(parents=True)
    lines: list[str] = []
    assert allure.generate_html(report, lines.append, environ) is None
    assert lines == [expected.format(tmp=tmp_path)]


def test_allure_is_found_in_node_modules_of_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(allure, "_repo_root", lambda: tmp_path / "elsewhere")
    cli = _executable(tmp_path / "node_modules" / ".bin" / "allure", "exit 0")
    _executable(tmp_path / "bin" / "java", "exit 0")
    found = allure.find_command_line({"PATH": str(tmp_path / "bin")}, cwd=tmp_path)
    assert found.available and found.command == cli
    assert os.access(found.command, os.X_OK)
