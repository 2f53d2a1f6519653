"""Verdict aggregation: which requirement a failing test blames, and why a requirement was not judged."""

from __future__ import annotations

from conformance import verdicts
from conformance.checks import Outcome, Status


def rows(outcomes=(), tests=()):
    table = verdicts.requirement_statuses(list(outcomes), list(tests), {}, frozenset(), True)
    return {row["id"]: row for row in table}


def result(nodeid, message, *requirements, outcome="failed"):
    return {"nodeid": nodeid, "outcome": outcome, "message": message, "requirements": list(requirements)}


def passed(rid):
    return Outcome(rid, "some.check", Status.PASSED, None, ("x1",))


def test_a_failure_blames_the_requirement_its_first_line_names():
    for prefix in ("", "AssertionError: ", "Failed: "):
        message = prefix + "EXE-006: the over-balance debit was applied"
        found = rows(tests=[result("t::a", message, "EXE-006", "CAN-002")])
        assert found["EXE-006"]["status"] == "warning"  # SHOULD
        assert found["CAN-002"]["status"] == "skipped", prefix


def test_a_failure_naming_nothing_blames_every_requirement_of_the_test():
    found = rows([passed("CAN-003")], [result("t::b", "the target did not answer cancelAdjustment", "CAN-003")])
    assert found["CAN-003"]["status"] == "failed"  # other passing evaluations do not hide it


def test_an_unanswered_call_fails_the_rule_even_beside_passing_evaluations():
    message = "CAN-003: could not be judged, the target did not answer: connection reset"
    assert rows([passed("CAN-003")], [result("t::c", message, "CAN-003")])["CAN-003"]["status"] == "failed"


def test_suite_defects_blame_nobody():
    message = f"CAN-003: the probe did not reach the rule (no check applied); {verdicts.SUITE_DEFECT}"
    assert rows(tests=[result("t::d", message, "CAN-003")])["CAN-003"]["status"] == "skipped"


def test_blocked_requirements_say_by_what():
    message = "EXE-002 violated: refused\nCAN-003: not judged, blocked by the EXE-002 violation above"
    found = rows(tests=[result("t::e", message, "EXE-002", "CAN-003")])
    assert found["EXE-002"]["status"] == "failed"
    assert found["CAN-003"]["status"] == "skipped"
    assert found["CAN-003"]["reason"] == "not judged: blocked by the EXE-002 violation (t::e)"
