"""The balance query: data fields, key style, amount format, currency (reference §3, §7, §8.1, §8.12)."""

from __future__ import annotations

import pytest

from conformance.suite.plugin import expect, expect_all
from conformance.suite.teller import lettered_currency_account, unknown_account

BALANCE_RULES = ("BAL-007", "BAL-001", "BAL-002", "BAL-003", "BAL-004", "CUR-001", "CUR-002")


@pytest.mark.requirement(*BALANCE_RULES)
def test_balance_of_every_profile_account(teller, journal, accounts):
    exchanges = tuple(teller.balance(account) for account in accounts)
    expect_all(journal, dict.fromkeys(BALANCE_RULES, exchanges))


#: ISO 4217 codes to ask a known user for, the first the profile does not list for them (BAL-008).
UNHELD_CANDIDATES = ("CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "ZAR")


@pytest.mark.requirement("BAL-008")
def test_balance_in_a_currency_the_user_does_not_hold(teller, journal, accounts):
    """A known user, a currency the profile holds no account in: a refusal, or exactly that user and currency."""
    account = accounts[0]
    held = {a.currency for a in accounts if (a.third_server_code, a.user_name) == account.key[:2]}
    currency = next(c for c in UNHELD_CANDIDATES if c not in held)
    expect(journal, "BAL-008", teller.call("getUserAmount", {**teller.balance_body(account), "currency": currency}))


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
