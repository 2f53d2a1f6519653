"""Preflight: before any money moves, is this the webhook API, and are the profile's accounts real?

Setup mistakes are the operator's, never the wallet's: they end in one line and exit 2 (:class:`SetupError`)
before any execute is sent, saying what to fix. A target that gives no HTTP answer, or answers with
something that is plainly not this API (an HTML page, plain text), is unreachable (exit 3). A target that
answers with a broken attempt at the envelope (JSON with trailing bytes, say) is reachable and broken: the
run goes on and the envelope rules fail it (exit 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlsplit

from conformance import contract
from conformance.checks.answers import is_decimal_string, is_int
from conformance.checks.money import balance_data, digits_of
from conformance.exchange import Exchange
from conformance.profile import Profile, TestAccount
from conformance.transport import Client


class SetupError(Exception):
    """The operator's configuration is wrong for this target (exit 2): the message says what to fix."""


class TargetUnreachable(Exception):
    """The target gave no HTTP answer, or is plainly not this API (exit 3)."""


@dataclass
class PreflightResult:
    digits: dict[tuple[str, str, str], int] = field(default_factory=dict)  # decimals per profile account
    balances: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)  # balance before the run
    exchanges: list[Exchange] = field(default_factory=list)


def check_base_url(profile: Profile) -> None:
    """A base URL that already ends in one of the three operation paths is a setup mistake."""
    if profile.base_url is None or profile.embedded:
        return
    path = urlsplit(profile.base_url).path.rstrip("/")
    for operation in contract.load().operations.values():
        if path.endswith(operation.path):
            prefix = profile.base_url.rstrip("/")[: -len(operation.path)] or "https://host"
            raise SetupError(
                f"the base URL ends in the operation path {operation.path}; give the prefix before the three "
                f"paths instead (--base-url {prefix})"
            )


def check_accounts_named(profile: Profile) -> None:
    if not profile.embedded and not profile.accounts:
        raise SetupError(
            "no test account named: the suite judges the wallet's business rules only on accounts you name "
            "(--account THIRD:USER:CUR, repeatable; CONFORMANCE_ACCOUNTS or [target] accounts in the profile)"
        )


def run(profile: Profile, journal) -> PreflightResult:
    """Check the configuration, then one balance query per profile account (recorded and judged like any call)."""
    check_base_url(profile)
    check_accounts_named(profile)
    result = PreflightResult()
    client = Client(profile, journal)
    try:
        for account in profile.accounts:
            exchange = client.call("getUserAmount", _balance_body(account), origin="preflight")
            result.exchanges.append(exchange)
            _judge_reachability(exchange)
            if exchange.envelope is None:
                continue  # a broken envelope: the envelope rules fail it; the account's decimals stay unknown
            _require_account(account, exchange)
            data = balance_data(exchange)
            value = digits_of(data) if isinstance(data, dict) else None
            if is_int(value) and value >= 0:
                result.digits[account.key] = value
            amount = data.get("amount") if isinstance(data, dict) else None
            if is_decimal_string(amount):
                result.balances[account.key] = Decimal(amount)
    finally:
        client.close()
    return result


def _balance_body(account: TestAccount) -> dict:
    return {"thirdServerCode": account.third_server_code, "userName": account.user_name, "currency": account.currency}


def _judge_reachability(exchange: Exchange) -> None:
    url = exchange.request.url
    response = exchange.response
    if response is None:
        raise TargetUnreachable(f"cannot reach {url}: {exchange.error}")
    if response.status == 404:
        raise SetupError(
            f"POST {url} answered HTTP 404: is --base-url the prefix before /get-user-amount "
            f"(e.g. https://host/api/cats-gateway)?"
        )
    if exchange.envelope is None and not _attempts_json(exchange):
        snippet = " ".join(response.body[:60].decode("utf-8", "replace").split())
        raise TargetUnreachable(
            f"{url} does not speak the webhook API: HTTP {response.status} "
            f"{response.content_type or 'no content type'}, body {snippet!r}"
        )


def _attempts_json(exchange: Exchange) -> bool:
    """The answer is an attempt at the JSON envelope (a JSON content type, or a body that opens like JSON)."""
    response = exchange.response
    assert response is not None
    opening = response.body.lstrip()[:1]
    return response.content_type.endswith("json") or opening in (b"{", b"[")


def _require_account(account: TestAccount, exchange: Exchange) -> None:
    if exchange.succeeded:
        return
    envelope = exchange.envelope or {}
    raise SetupError(
        f"account {account} was not found by the target: its balance query answered HTTP "
        f"{exchange.response.status if exchange.response else '-'}, code {envelope.get('code')!r}, "
        f"msg {str(envelope.get('msg'))[:80]!r}; check --account THIRD:USER:CUR and --company-id"
    )
