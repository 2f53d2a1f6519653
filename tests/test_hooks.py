"""The Schemathesis hooks' safety rails under a bare `st run` (no ledger, no profile)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conformance.schemathesis_hooks import ALLOW_MONEY_ENV, MoneyMovementRefused, _guard_bare_money_call


def case(path: str, base_url: str):
    schema = SimpleNamespace(get_base_url=lambda: base_url)
    return SimpleNamespace(operation=SimpleNamespace(path=path, schema=schema))


EXECUTE = "/external-system-credit-limit-adjustment"
CANCEL = "/cancel-external-system-credit-limit-adjustment"


@pytest.mark.parametrize("path", [EXECUTE, CANCEL])
def test_money_calls_to_a_remote_wallet_are_refused(path, monkeypatch):
    monkeypatch.delenv(ALLOW_MONEY_ENV, raising=False)
    with pytest.raises(MoneyMovementRefused, match="does not compensate"):
        _guard_bare_money_call(case(path, "https://wallet.example/api/cats-gateway"))


def test_balance_queries_and_the_local_reference_wallet_are_allowed(monkeypatch):
    monkeypatch.delenv(ALLOW_MONEY_ENV, raising=False)
    _guard_bare_money_call(case("/get-user-amount", "https://wallet.example/api"))
    _guard_bare_money_call(case(EXECUTE, "http://127.0.0.1:8080/api/cats-gateway"))
    _guard_bare_money_call(case(CANCEL, "http://localhost:8080/api/cats-gateway"))


def test_the_operator_can_allow_it_explicitly(monkeypatch):
    monkeypatch.setenv(ALLOW_MONEY_ENV, "true")
    _guard_bare_money_call(case(EXECUTE, "https://wallet.example/api"))
