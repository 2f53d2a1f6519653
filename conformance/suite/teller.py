"""The teller: builds the platform's calls for the handwritten suite (valid by default, broken on request)."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from conformance.checks import UNKNOWN_ACCOUNT_PREFIX
from conformance.checks.money import balance_amount, balance_data, digits_of
from conformance.exchange import Exchange
from conformance.profile import TestAccount
from conformance.suite.plugin import Blocked, RunState
from conformance.transport import Client

OPERATIONS = ("getUserAmount", "executeAdjustment", "cancelAdjustment")


def unknown_account(template: TestAccount) -> TestAccount:
    return TestAccount(f"{UNKNOWN_ACCOUNT_PREFIX}{int(time.time())}", template.user_name, template.currency)


def lettered_currency_account(accounts) -> TestAccount:
    """The first profile account whose currency code has letters (CUR-003 lower-cases it), else skip the test."""
    for account in accounts:
        if account.currency != account.currency.lower():
            return account
    pytest.skip("no profile account has a currency code with letters")


def format_amount(value: Decimal, digits: int) -> str:
    return f"{value:.{digits}f}"


class Teller:
    def __init__(self, client: Client, state: RunState, origin: str):
        self.client = client
        self.state = state
        self.origin = origin
        self._digits: dict[TestAccount, int] = {}

    # ---------------------------------------------------------------- bodies
    @staticmethod
    def balance_body(account: TestAccount) -> dict:
        return {
            "thirdServerCode": account.third_server_code,
            "userName": account.user_name,
            "currency": account.currency,
        }

    def execute_body(
        self, account: TestAccount, amount: str, *, operation_type: str = "OPEN_POSITION", number: str | None = None
    ) -> dict:
        return {
            **self.balance_body(account),
            "bizType": 1 if operation_type == "OPEN_POSITION" else 2,
            "operationType": operation_type,
            "amount": amount,
            "amountDigits": len(amount.split(".", 1)[1]) if "." in amount else 0,
            "orderId": int(time.time() * 1000) * 1000 + len(self.state.ledger.entries) % 1000,
            "requestUniqueNo": number or self.state.request_number("exe"),
            "requestTime": int(time.time() * 1000),
            "ip": "203.0.113.7",
            "metadata": '{"source":"conformance-suite"}',
        }

    def cancel_body(self, execute: dict, *, number: str | None = None, reverse: str | None = None) -> dict:
        return {
            "thirdServerCode": execute["thirdServerCode"],
            "userName": execute["userName"],
            "currency": execute["currency"],
            "bizType": execute.get("bizType", 1),
            "amount": str(execute["amount"]).lstrip("-"),
            "amountDigits": execute["amountDigits"],
            "orderId": execute.get("orderId", 1),
            "requestUniqueNo": number or self.state.request_number("can"),
            "reverseRequestUniqueNo": reverse or execute["requestUniqueNo"],
            "requestTime": int(time.time() * 1000),
            "ip": "203.0.113.7",
            "cancelRemark": "conformance suite: reverse the adjustment",
        }

    def body_for(self, operation: str, account: TestAccount) -> dict:
        """A valid body for ``operation`` (execute: a small debit; cancel: of a small debit sent just now).

        A cancel probe names an execute the wallet really received and applied: a wallet that validates
        nothing on cancel would reverse it and answer "0", which the probe's rule sees. (Cancelling a number
        never sent would be answered US_0000002 with ok=false by such a wallet: a refusal for the wrong
        reason, a quiet pass.) The debit is compensated like every other adjustment of the run.
        """
        if operation == "getUserAmount":
            return self.balance_body(account)
        execute = self.execute_body(account, self.amount(account))
        if operation == "executeAdjustment":
            return execute
        self.execute(execute)
        return self.cancel_body(execute)

    # ----------------------------------------------------------------- calls
    def call(self, operation: str, body: Any = None, **kwargs: Any) -> Exchange:
        return self.client.call(operation, body, origin=self.origin, **kwargs)

    def balance(self, account: TestAccount, **kwargs: Any) -> Exchange:
        return self.call("getUserAmount", self.balance_body(account), **kwargs)

    def execute(self, body: dict, **kwargs: Any) -> Exchange:
        return self.call("executeAdjustment", body, **kwargs)

    def cancel(self, body: dict, *, timestamp: bool = True, **kwargs: Any) -> Exchange:
        headers = None if timestamp else self.client.documented_headers("cancelAdjustment", timestamp=False)
        return self.call("cancelAdjustment", body, headers=headers, **kwargs)

    # --------------------------------------------------------------- amounts
    def digits(self, account: TestAccount) -> int:
        """The account's number of decimals, read from its balance (asked once)."""
        if account not in self._digits:
            exchange = self.balance(account)
            data = balance_data(exchange)
            digits = digits_of(data) if isinstance(data, dict) else None
            if not isinstance(digits, int) or isinstance(digits, bool) or digits < 0:
                raise Blocked("BAL-007",
                    f"cannot read the balance of profile account {account} (HTTP "
                    f"{exchange.response.status if exchange.response else exchange.error}, code {exchange.code!r}); "
                    "see BAL-007"
                )
            self._digits[account] = digits
        return self._digits[account]

    def amount(self, account: TestAccount, units: str = "1") -> str:
        return format_amount(Decimal(units), self.digits(account))

    def current_balance(self, exchange: Exchange) -> Decimal:
        value = balance_amount(exchange)
        if value is None:
            raise Blocked("BAL-007", f"the balance answer is unreadable: code {exchange.code!r}")
        return value
