"""`--compare PREVIOUS_SUMMARY`: regressions and recoveries, in the shared run and on edited summaries."""

from __future__ import annotations

import copy
import json

import pytest
from test_reporting_run import PREVIOUS_RUN_ID, SharedRun, previous_summary, shared_run

from conformance.reporting import compare


@pytest.fixture(scope="module")
def run() -> SharedRun:
    return shared_run()


def _ids(entries: list[dict]) -> list[str]:
    return [entry["id"] for entry in entries]


def test_the_run_lists_what_regressed_and_recovered_since_the_previous_night(run):
    comparison = json.loads((run.report_dir / "comparison.json").read_text())
    now = {row["id"]: row["status"] for row in run.summary["requirements"]}
    broken = [rid for rid, status in now.items() if status in ("failed", "warning")]  # all passed last night
    assert "ENV-002" in broken and now["ENV-011"] == "passed"
    assert _ids(comparison["regressed"]) == sorted(broken)
    assert all((e["before"], e["after"]) == ("passed", now[e["id"]]) for e in comparison["regressed"])
    assert _ids(comparison["recovered"]) == ["ENV-011"]
    assert comparison["verdict"] == {"before": "passed", "after": "failed", "changed": True}
    assert comparison["previous"]["run_id"] == PREVIOUS_RUN_ID
    assert comparison["current"]["run_id"] == run.summary["run"]["id"]
    unjudged = {rid: ["passed", "skipped"] for rid, status in now.items() if status == "skipped"}  # e.g. DLV-*
    assert comparison["transitions"] == {"ENV-011": ["warning", "passed"], **unjudged,
                                         **{rid: ["passed", now[rid]] for rid in broken}}
    assert comparison["suite_changed"] is True and comparison["spec_changed"] is False
    start = run.lines.index(f"compared with run {PREVIOUS_RUN_ID} (passed): {len(broken)} regressed, 1 recovered, "
                            "0 still failing")
    levels = {row["id"]: row["level"] for row in run.summary["requirements"]}
    assert run.lines[start + 1:start + 3 + len(broken)] == [
        "  verdict: passed → failed",
        *[f"  regressed: {rid} ({levels[rid]}) passed → {now[rid]}" for rid in sorted(broken)],
        "  recovered: ENV-011 (SHOULD) warning → passed",
    ]


def _summary(statuses: dict[str, str]) -> dict:
    return previous_summary(statuses)


def test_regression_and_recovery_between_two_edited_summaries():
    before = _summary({"BAL-004": "failed", "EXE-004": "warning", "CAN-001": "failed", "ROB-003": "skipped"})
    after = _summary({"ENV-005": "failed", "ENV-012": "warning", "CAN-001": "failed", "HDR-001": "skipped"})
    result = compare.compare(after, before)
    assert _ids(result["regressed"]) == ["ENV-005", "ENV-012"]
    assert _ids(result["recovered"]) == ["BAL-004", "EXE-004"]
    assert _ids(result["still_failing"]) == ["CAN-001"]
    assert _ids(result["no_longer_judged"]) == ["HDR-001"]
    assert _ids(result["newly_judged"]) == ["ROB-003"]
    assert result["verdict"]["changed"] is False  # both failed


def test_a_should_raised_to_must_that_now_fails_regressed():
    before = _summary({"VAL-008": "warning"})
    after = _summary({"VAL-008": "failed"})
    for row in after["requirements"]:
        if row["id"] == "VAL-008":
            row["level"] = "MUST"
    [entry] = compare.compare(after, before)["regressed"]
    assert (entry["id"], entry["before"], entry["after"], entry["level_before"]) == ("VAL-008", "warning", "failed",
                                                                                      "SHOULD")


def test_new_and_removed_requirements():
    before, after = _summary({}), _summary({})
    after["requirements"].append({"id": "ENV-099", "level": "MUST", "statement": "new", "status": "failed"})
    removed = before["requirements"][0]["id"]
    after["requirements"] = [r for r in after["requirements"] if r["id"] != removed]
    result = compare.compare(after, before)
    assert _ids(result["new"]) == ["ENV-099"] and _ids(result["removed"]) == [removed]
    assert not result["regressed"]
    text = compare.lines(result)
    assert "  new requirement: ENV-099 (MUST) - → failed" in text
    assert f"  removed requirement: {removed} (MUST) passed → -" in text


@pytest.mark.parametrize(("content", "problem"), [
    (None, "does not exist"),
    ("{not json", "is not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    ("[1, 2]", "is not a conformance summary.json (no requirements list)"),
    ('{"requirements": [{"id": "ENV-001"}]}',
     "is not a conformance summary.json (a requirement row without id/status)"),
])
def test_a_bad_previous_file_is_one_warning_line(tmp_path, content, problem):
    previous = tmp_path / "previous.json"
    if content is not None:
        previous.write_text(content)
    lines: list[str] = []
    current = _summary({})
    assert compare.compare_with_previous(current, previous, tmp_path, lines.append) is None
    assert lines == [f"compare skipped: {previous} {problem}"]
    assert not (tmp_path / "comparison.json").exists()


def test_long_lists_are_cut_short():
    before = _summary({})
    after = copy.deepcopy(before)
    for row in after["requirements"]:
        row["status"] = "failed"
    text = compare.lines(compare.compare(after, before), limit=3)
    assert text[0].endswith(f"{len(after['requirements'])} regressed, 0 recovered, 0 still failing")
    assert sum(line.startswith("  regressed: ") for line in text) == 3
    assert any(line.startswith(f"  … and {len(after['requirements']) - 3} more regressed") for line in text)
