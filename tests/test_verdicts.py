"""Verdict aggregation: typed outcomes in, one status per requirement out (no message is ever read)."""

from __future__ import annotations

from conformance import verdicts
from conformance.checks import Outcome, Status


def rows(*outcomes, money_allowed=True, skip_reasons=None):
    table = verdicts.aggregate(list(outcomes), exchanges={}, secrets=frozenset(), money_allowed=money_allowed,
                               skip_reasons=skip_reasons)
    return {row.id: row for row in table}


def outcome(rid, status, origin="t::a", attempt=0, **extra):
    return Outcome(rid, "some.check", status, None, ("x1",), origin=origin, attempt=attempt, **extra)


def test_every_catalogue_requirement_gets_exactly_one_verdict():
    from conformance import contract

    assert set(rows()) == set(contract.load().requirements)


def test_a_violation_fails_a_must_and_warns_a_should():
    found = rows(outcome("EXE-002", Status.VIOLATED), outcome("EXE-004", Status.VIOLATED))
    assert found["EXE-002"].status == "failed"
    assert found["EXE-004"].status == "warning"


def test_one_violation_among_passes_is_enough():
    found = rows(outcome("CAN-003", Status.PASSED), outcome("CAN-003", Status.VIOLATED, origin="t::b"))
    assert found["CAN-003"].status == "failed"
    assert found["CAN-003"].evaluations == 2 and found["CAN-003"].violations == 1


def test_nothing_judged_is_skipped_with_its_reason():
    found = rows(skip_reasons={"CUR-003": ["no profile account has a currency code with letters"]})
    assert found["CUR-003"].status == "skipped"
    assert "letters" in found["CUR-003"].reason
    assert "not exercised" in found["BAL-001"].reason
    money = rows(money_allowed=False)
    assert "money movement is not allowed" in money["EXE-002"].reason


def test_a_failure_that_passed_on_replay_is_flaky_and_one_that_did_not_stays_failed():
    flaky = rows(outcome("ENV-005", Status.VIOLATED, attempt=0), outcome("ENV-005", Status.PASSED, attempt=1))
    assert flaky["ENV-005"].status == "flaky"
    assert flaky["ENV-005"].attempts == {"t::a": ["violated", "passed"]}
    stays = rows(outcome("ENV-005", Status.VIOLATED, attempt=0), outcome("ENV-005", Status.VIOLATED, attempt=1))
    assert stays["ENV-005"].status == "failed"
    not_replayed = rows(outcome("ENV-005", Status.VIOLATED, attempt=0))
    assert not_replayed["ENV-005"].status == "failed"


def test_flaky_fails_the_run_only_when_asked():
    table = tuple(rows(outcome("ENV-005", Status.VIOLATED), outcome("ENV-005", Status.PASSED, attempt=1)).values())
    assert verdicts.RunVerdict(table, flaky_fails=True).verdict == "failed"
    assert verdicts.RunVerdict(table).verdict != "failed"


def test_run_verdict_exit_codes():
    passed = tuple(r.with_status("passed") for r in rows().values())
    assert verdicts.RunVerdict(passed).exit_code == verdicts.EXIT_PASSED
    assert verdicts.RunVerdict(passed, ("a suite error",)).exit_code == verdicts.EXIT_INCOMPLETE
    failed = tuple(r.with_status("failed") if r.id == "ENV-001" else r for r in passed)
    assert verdicts.RunVerdict(failed, ("a suite error",)).exit_code == verdicts.EXIT_FAILED
    skipped = tuple(r.with_status("skipped") if r.id == "ENV-001" else r for r in passed)
    assert verdicts.RunVerdict(skipped).exit_code == verdicts.EXIT_INCOMPLETE
    warned_should = tuple(r.with_status("warning") if r.id == "EXE-004" else r for r in passed)
    assert verdicts.RunVerdict(warned_should).exit_code == verdicts.EXIT_PASSED


def test_records_carry_the_outcome_counts_and_origins():
    record = rows(outcome("EXE-002", Status.PASSED), outcome("EXE-002", Status.UNANSWERED, origin="t::z"))["EXE-002"]
    data = record.to_record()
    assert data["status"] == "failed"
    assert data["outcomes"] == {"passed": 1, "unanswered": 1}
    assert data["tests"] == ["t::a", "t::z"]
    assert data["failing_examples"][0]["status"] == "unanswered"
