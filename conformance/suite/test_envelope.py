"""The envelope on success and on error, for every operation (reference §2.4)."""

from __future__ import annotations

import pytest

from conformance.suite.plugin import expect
from conformance.suite.teller import OPERATIONS, unknown_account

ENVELOPE = ("ENV-001", "ENV-002", "ENV-003", "ENV-004", "ENV-005", "ENV-006", "ENV-007", "ENV-010", "ROB-001")


@pytest.mark.requirement(*ENVELOPE, "ENV-008", "ENV-009")
def test_envelope_on_successful_balance(teller, journal, accounts):
    for account in accounts:
        exchange = teller.balance(account)
        for requirement in (*ENVELOPE, "ENV-008", "ENV-009"):
            expect(journal, requirement, exchange)


@pytest.mark.requirement(*ENVELOPE, "ENV-009")
@pytest.mark.parametrize("operation", OPERATIONS)
def test_envelope_on_error(operation, teller, journal, account, profile):
    if operation != "getUserAmount" and not profile.money_allowed:
        pytest.skip("money movement is not allowed for this target (use --allow-money-movement)")
    body = teller.body_for(operation, account)
    body["thirdServerCode"] = unknown_account(account).third_server_code
    exchange = teller.call(operation, body)
    for requirement in (*ENVELOPE, "ENV-009"):
        expect(journal, requirement, exchange)


@pytest.mark.requirement("ENV-011", "ENV-012", "ENV-013")
def test_envelope_good_practice(teller, journal, account):
    success = teller.balance(account)
    failure = teller.balance(unknown_account(account))
    # an error no wallet can take for a success: the required currency is missing
    invalid = teller.call("getUserAmount", {k: v for k, v in teller.balance_body(account).items() if k != "currency"},
                          negative=True)
    for requirement in ("ENV-011", "ENV-013"):
        expect(journal, requirement, success, failure)
    expect(journal, "ENV-012", failure, invalid)
