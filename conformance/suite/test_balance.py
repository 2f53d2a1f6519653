"""The balance query: data fields, key style, amount format, currency (reference §3, §7, §8.1, §8.12)."""

from __future__ import annotations

import pytest

from conformance.suite.plugin import expect
from conformance.suite.teller import lettered_currency_account, unknown_account

BALANCE_RULES = ("BAL-007", "BAL-001", "BAL-002", "BAL-003", "BAL-004", "CUR-001", "CUR-002")


@pytest.mark.requirement(*BALANCE_RULES)
def test_balance_of_every_profile_account(teller, journal, accounts):
    for account in accounts:
        exchange = teller.balance(account)
        for requirement in BALANCE_RULES:
            expect(journal, requirement, exchange)


@pytest.mark.requirement("BAL-005")
def test_balance_names_the_requested_user(teller, journal, account):
    expect(journal, "BAL-005", teller.balance(account))


@pytest.mark.requirement("BAL-006")
def test_balance_of_unknown_account_is_refused(teller, journal, account):
    expect(journal, "BAL-006", teller.balance(unknown_account(account)))


@pytest.mark.requirement("CUR-003")
def test_lower_case_currency_does_not_address_the_account(teller, journal, accounts):
    account = lettered_currency_account(accounts)
    body = {**teller.balance_body(account), "currency": account.currency.lower()}
    expect(journal, "CUR-003", teller.call("getUserAmount", body))
