"""Every view of a run names the same failed, warned and skipped requirements as summary.json.

Real runs (the command line in a subprocess) against the reference wallet with one fault of each kind
a requirement can be judged by: a handwritten test (``missing-trace-accepted``, HDR-001), a generated
slice with no handwritten test running (``unknown-biztype-accepted``, VAL-004), the money conversation
judged by the ledger (``cancel-does-not-refund``, CAN-003), and a conforming wallet. Each view is read
back in its own format: the table on stdout, ``junit.xml`` (by its elements), the Allure results Allure
will read (status and category of each requirement result), the evidence bundle's manifest and
traceability matrix.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from conformance.reference import DEFAULT_ACCOUNTS, WalletConfig, serve
from conformance.reporting import allure, categories

ACCOUNTS = [arg for a in DEFAULT_ACCOUNTS for arg in ("--account", f"{a.third_server_code}:{a.user_name}:{a.currency}")]
HANDWRITTEN = ["--phases", "handwritten,examples"]
GENERATED = ["--phases", "coverage,fuzzing", "--max-examples", "10", "--seed", "7"]
RUNS = {
    "handwritten-fault": ("missing-trace-accepted", HANDWRITTEN, "HDR-001"),
    "generated-fault": ("unknown-biztype-accepted", GENERATED, "VAL-004"),
    "ledger-fault": ("cancel-does-not-refund", HANDWRITTEN, "CAN-003"),
    "conforming": (None, HANDWRITTEN, None),
}
TABLE_ROW = re.compile(r"^([A-Z]{3}-\d{3})\s+(MUST|SHOULD)\s+(PASS|FAIL|WARN|FLAKY|WAIVED|SKIP)\b")
MARKS = {"PASS": "passed", "FAIL": "failed", "WARN": "warning", "FLAKY": "flaky", "WAIVED": "waived",
         "SKIP": "skipped"}


def run(fault: str | None, phases: list[str], report_dir: Path) -> subprocess.CompletedProcess:
    with serve(WalletConfig(fault=fault)) as base_url:
        return subprocess.run(
            [sys.executable, "-m", "conformance.cli", "run", "--base-url", base_url, "--report-dir", str(report_dir),
             "--rate-limit", "0", "--allow-money-movement", "--no-html", *ACCOUNTS, *phases],
            capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "100"},
        )


def from_summary(report_dir: Path) -> dict[str, str]:
    summary = json.loads((report_dir / "summary.json").read_text())
    return {row["id"]: row["status"] for row in summary["requirements"]}


def from_table(stdout: str) -> dict[str, str]:
    found = {}
    for line in stdout.splitlines():
        match = TABLE_ROW.match(line)
        if match:
            found[match.group(1)] = MARKS[match.group(3)]
    return found


def from_junit(report_dir: Path) -> dict[str, str]:
    found = {}
    for case in ET.parse(report_dir / "junit.xml").getroot().iter("testcase"):
        rid = case.get("name", "").split(" ", 1)[0]
        if not re.fullmatch(r"[A-Z]{3}-\d{3}", rid):
            continue
        if case.find("failure") is not None:
            assert rid in case.find("failure").get("message"), "a failure names its requirement id"
            found[rid] = "failed"
        elif case.find("skipped") is not None:
            found[rid] = "waived" if " waived:" in case.find("skipped").get("message") else "skipped"
        elif case.find("system-out") is not None:
            found[rid] = case.find("system-out").text.split(":", 1)[0].lower()
        else:
            found[rid] = "passed"
    return found


def from_allure(report_dir: Path) -> tuple[dict[str, str], Counter]:
    """Each requirement result's status by its Allure status and category; the category counts."""
    found, in_categories = {}, Counter()
    results = allure.read_requirement_results(report_dir / allure.RESULTS_DIR)
    top_level = list((report_dir / allure.RESULTS_DIR).glob("*-result.json"))
    assert len(top_level) == len(results), "Allure reads requirement results only (the ring counts requirements)"
    by_name = {name: key for key, name in categories.CATEGORY_NAMES.items()}
    for result in results:
        rid = result["fullName"].split("#", 1)[1]
        names = categories.category_of(result["statusDetails"]["message"], result["status"])
        assert len(names) <= 1, f"{rid} is in several categories: {names}"
        if names:
            status, _ = by_name[names[0]]
            in_categories[names[0]] += 1
        else:
            assert result["status"] == "passed", f"{rid}: {result['status']} but in no category"
            status = "passed"
        found[rid] = status
    return found, in_categories


def from_bundle(report_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    bundle = next(report_dir.glob("evidence-*.zip"))
    with zipfile.ZipFile(bundle) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        matrix = json.loads(archive.read("traceability.json"))
    listed = {rid: status for status, ids in manifest["requirements"].items() for rid in ids}
    everything = {row["id"]: row["status"] for row in matrix["requirements"]}
    return ({rid: listed.get(rid, "passed") for rid in everything}, everything)


@pytest.fixture(scope="module", params=sorted(RUNS))
def finished(request, tmp_path_factory):
    fault, phases, requirement = RUNS[request.param]
    report_dir = tmp_path_factory.mktemp(request.param)
    done = run(fault, phases, report_dir)
    assert (report_dir / "summary.json").exists(), done.stderr[-800:]
    return request.param, requirement, done, report_dir


@pytest.mark.slow
def test_every_view_names_the_same_requirements(finished):
    name, requirement, done, report_dir = finished
    truth = from_summary(report_dir)
    allure_view, in_categories = from_allure(report_dir)
    manifest_view, traceability_view = from_bundle(report_dir)
    views = {"table": from_table(done.stdout), "junit": from_junit(report_dir), "allure": allure_view,
             "manifest": manifest_view, "traceability": traceability_view}
    for view, seen in views.items():
        assert seen == truth, f"{name}: {view} disagrees with summary.json: " + ", ".join(
            f"{rid} {seen.get(rid)} vs {truth.get(rid)}" for rid in sorted(set(seen) | set(truth))
            if seen.get(rid) != truth.get(rid))
    summary = json.loads((report_dir / "summary.json").read_text())
    for (status, level), category in categories.CATEGORY_NAMES.items():
        assert in_categories.get(category, 0) == summary["counts"][level][status], category
    if requirement is not None:
        assert truth[requirement] == "failed", f"{name}: the fault's requirement {requirement} is {truth[requirement]}"
        assert done.returncode == 1


@pytest.mark.slow
def test_a_failed_run_shows_its_failure_in_junit_and_allure(finished):
    _name, requirement, _done, report_dir = finished
    if requirement is None:
        pytest.skip("the conforming run has no failure")
    root = ET.parse(report_dir / "junit.xml").getroot()
    assert int(root.get("failures")) >= 1
    messages = [f.get("message") for f in root.iter("failure")]
    assert any(requirement in m for m in messages), messages
    results = allure.read_requirement_results(report_dir / allure.RESULTS_DIR)
    failed = [r for r in results if r["status"] == "failed"]
    assert failed and len(failed) < len(results), "the overview ring of a failed run is not 100% passed"
    mine = next(r for r in results if r["fullName"] == f"requirements#{requirement}")
    assert mine["status"] == "failed" and requirement in mine["statusDetails"]["message"]
    assert mine.get("attachments"), "a failed requirement carries its evidence"
    assert mine.get("steps"), "the tests or slices that judged it are nested beneath it"
