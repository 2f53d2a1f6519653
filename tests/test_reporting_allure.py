"""Allure view of the shared run: one result per requirement, statuses and categories from the verdicts,
evidence attached, tests nested beneath, environment, history, the reference shipped beside the HTML."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from test_reporting_run import PREVIOUS_BUILD_ORDER, SharedRun, shared_run

from conformance import contract
from conformance.reporting import allure, categories, history, html


@pytest.fixture(scope="module")
def run() -> SharedRun:
    return shared_run()


def results(run) -> dict[str, dict]:
    found = allure.read_requirement_results(run.report_dir / allure.RESULTS_DIR)
    return {r["fullName"].split("#", 1)[1]: r for r in found}


def test_allure_reads_one_result_per_requirement_and_the_tests_are_set_aside(run):
    top = list((run.report_dir / allure.RESULTS_DIR).glob("*-result.json"))
    assert sorted(results(run)) == sorted(contract.load().requirements) and len(top) == len(results(run))
    assert list((run.report_dir / allure.RESULTS_DIR / allure.TESTS_DIR).glob("*-result.json")), \
        "the tests' own results are kept (in the evidence), out of Allure's sight"


def test_status_and_category_of_each_requirement_follow_its_verdict(run):
    rows = {r["id"]: r for r in run.summary["requirements"]}
    seen = Counter()
    for rid, result in results(run).items():
        row = rows[rid]
        assert result["status"] == categories.allure_status(row["status"], row["level"])
        names = categories.category_of(result["statusDetails"]["message"], result["status"])
        if row["status"] == "passed":
            assert names == []
        else:
            assert names == [categories.CATEGORY_NAMES[(row["status"], row["level"])]]
            seen[(row["status"], row["level"])] += 1
        severity = next(lb["value"] for lb in result["labels"] if lb["name"] == "severity")
        assert severity == ("critical" if row["level"] == "MUST" else "minor")
        assert {"name": "parentSuite", "value": "Requirements"} in result["labels"]
    for (status, level), count in seen.items():
        assert run.summary["counts"][level][status] == count


def test_a_failed_requirement_carries_its_evidence_and_the_tests_that_judged_it(run):
    mine = results(run)["ENV-002"]
    assert mine["status"] == "failed"
    assert mine["statusDetails"]["message"].startswith("MUST requirement failed: ENV-002")
    names = [a["name"] for a in mine["attachments"]]
    assert any(n.endswith(" curl") for n in names) and any(n.endswith("request/response") for n in names)
    for attachment in mine["attachments"]:
        assert (run.report_dir / allure.RESULTS_DIR / attachment["source"]).is_file()
    failed_steps = [s for s in mine["steps"] if s["status"] == "failed"]
    assert failed_steps, "a test that judged it against the target is nested beneath it, failed"
    assert mine["description"].startswith("**ENV-002** (MUST")
    assert all(link["url"].startswith("reference/webhook-api.html#section-") for link in mine["links"])


def test_the_run_overview_container_carries_the_charts(run):
    containers = [json.loads(p.read_text()) for p in (run.report_dir / allure.RESULTS_DIR).glob("*-container.json")]
    assert len(containers) == 1 and len(containers[0]["children"]) == len(contract.load().requirements)
    kinds = {a["type"] for a in containers[0]["befores"][0]["attachments"]}
    assert kinds == {"image/svg+xml"}


def test_environment_and_executor(run):
    environment = allure.read_properties(run.report_dir / allure.RESULTS_DIR / "environment.properties")
    assert environment["verdict"] == "failed (exit 1)"
    assert "failed" in environment["requirements.MUST"]
    executor = json.loads((run.report_dir / allure.RESULTS_DIR / "executor.json").read_text())
    assert executor["buildOrder"] == PREVIOUS_BUILD_ORDER + 1


def test_executor_links_a_github_actions_run(tmp_path):
    environ = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "77", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_NUMBER": "5",
               "GITHUB_WORKFLOW": "nightly"}
    executor = json.loads(history.write_executor(tmp_path, {"run": {"id": "abc"}}, environ).read_text())
    assert executor["buildUrl"] == "https://github.com/o/r/actions/runs/77" and executor["type"] == "github"


def test_the_html_overview_counts_requirements_and_a_failed_run_is_not_100_percent(run):
    if not run.html_expected:
        pytest.skip("no Allure command line on this machine")
    summary = json.loads((run.report_dir / allure.REPORT_DIR / "widgets" / "summary.json").read_text())
    statistic = summary["statistic"]
    assert statistic["total"] == len(contract.load().requirements)
    assert statistic["failed"] >= 1 and statistic["passed"] < statistic["total"]
    for directory in (run.report_dir, run.report_dir / allure.REPORT_DIR):
        page = (directory / "reference" / "webhook-api.html").read_text()
        assert 'id="section-2.4"' in page


def _executable(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(("setup", "expected"), [
    ("missing", "HTML report skipped: ALLURE_CMD={tmp}/missing/allure is not an executable file"),
    ("no-java", "HTML report skipped: the Allure command line needs a Java runtime (e.g. openjdk-17-jre-headless)"),
    ("fails", "HTML report skipped: allure generate failed (exit 3): boom"),
])
def test_html_problems_are_one_line(tmp_path, monkeypatch, setup, expected):
    monkeypatch.setattr(html, "_repo_root", lambda: tmp_path / "elsewhere")
    monkeypatch.chdir(tmp_path)
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
    assert html.generate_html(report, lines.append, environ) is None
    assert lines == [expected.format(tmp=tmp_path)]


def test_allure_is_found_in_node_modules_of_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(html, "_repo_root", lambda: tmp_path / "elsewhere")
    cli = _executable(tmp_path / "node_modules" / ".bin" / "allure", "exit 0")
    _executable(tmp_path / "bin" / "java", "exit 0")
    found = html.find_command_line({"PATH": str(tmp_path / "bin")}, cwd=tmp_path)
    assert found.available and found.command == cli
    assert os.access(found.command, os.X_OK)


def test_history_is_found_in_results_or_report_folders(tmp_path):
    for where in ("allure-report/history", "allure-results/history", "history"):
        base = tmp_path / where.replace("/", "_")
        (base / where).mkdir(parents=True)
        (base / where / "history.json").write_text("{}")
        assert history.history_source(base) == base / where
        target = tmp_path / f"results-{where.replace('/', '_')}"
        target.mkdir()
        assert history.carry_history(target, base) == target / "history"
