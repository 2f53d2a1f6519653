"""The money ledger: what counts as moved, what settles it, what the suite must still compensate (pure, no HTTP)."""

from __future__ import annotations

from test_checks import CANCEL, EXECUTE, envelope, ex

from conformance.ledger import Ledger


def execute(number="E-1", reply=None, status=200, error=None, **changes):
    return ex("executeAdjustment", body={**EXECUTE, "requestUniqueNo": number, **changes}, reply=reply,
              status=status, error=error)


def cancel(reverse="E-1", code="0"):
    return ex("cancelAdjustment", body={**CANCEL, "reverseRequestUniqueNo": reverse}, reply=envelope(code=code))


def test_a_success_settles_an_applied_execute():
    ledger = Ledger()
    ledger.observe(execute())
    assert [e.request_unique_no for e in ledger.outstanding()] == ["E-1"]
    ledger.observe(cancel())
    assert ledger.outstanding() == []
    assert ledger.summary()["reversed"] == 1


def test_never_received_does_not_settle_money_the_wallet_said_it_moved():
    ledger = Ledger()
    ledger.observe(execute())
    ledger.observe(cancel(code="US_0000002"))
    ledger.observe(cancel(code="US_0000001"))
    assert [e.request_unique_no for e in ledger.outstanding()] == ["E-1"]


def test_a_clear_refusal_needs_no_compensation():
    ledger = Ledger()
    ledger.observe(execute(reply=envelope(code="INSUFFICIENT_FUNDS")))
    assert ledger.outstanding() == [] and ledger.summary()["rejected"] == 1


def test_ambiguous_answers_are_compensated_as_unknown():
    answers = [
        dict(error="timed out"),  # no answer at all
        dict(reply={"error": "bad gateway"}, status=502),
        dict(reply={"error": "timeout at the proxy"}, status=408),  # a bare 4xx: who said no?
        dict(reply=envelope(code="0", ok=False)),  # contradictory: code says done, ok says not
    ]
    for number, answer in enumerate(answers):
        ledger = Ledger()
        ledger.observe(execute(f"E-{number}", **answer))
        assert [e.outcome for e in ledger.outstanding()] == ["unknown"], answer
        ledger.observe(cancel(f"E-{number}", code="US_0000002"))  # the wallet never saw it: settled
        assert ledger.outstanding() == [], answer


def test_an_applied_execute_without_a_number_stays_outstanding_and_cannot_be_cancelled():
    """(Compensation itself is conformance.settle's, over the money journal: tests/test_settle.py.)"""
    ledger = Ledger()
    ledger.observe(execute(number=""))
    ledger.observe(execute(number=None))
    left = ledger.outstanding()
    assert len(left) == 2 and all(not e.cancellable for e in left)
