"""Configuration of the reference wallet."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from conformance.reference.accounts import DEFAULT_ACCOUNTS, Account
from conformance.reference.faults import check_fault_name
from conformance.reference.variants import check_variants

KEY_STYLES = ("camel", "snake")
DEFAULT_PREFIX = "/api/cats-gateway"


@dataclass(frozen=True)
class WalletConfig:
    """What the wallet holds and how it answers.

    accounts  the provisioned accounts (Account objects or ``THIRD:USER:CUR:BALANCE`` strings)
    keys      balance data keys: "camel" (userName, amountDigits) or "snake" (user_name, amount_digits)
    prefix    path prefix of the three operations ("" for none)
    db        SQLite file; None keeps the ledger in memory (lost when the server stops)
    fault     name of one deliberate fault from FAULTS, or None for a conforming wallet
    variants  names of conforming variants from VARIANTS (other legal readings of the docs), combinable;
              "snake-keys" implies keys="snake"
    """

    accounts: tuple[Account, ...] = DEFAULT_ACCOUNTS
    keys: str = "camel"
    prefix: str = DEFAULT_PREFIX
    db: str | Path | None = None
    fault: str | None = None
    variants: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        accounts = _accounts(self.accounts)
        object.__setattr__(self, "accounts", accounts)
        if self.keys not in KEY_STYLES:
            raise ValueError(f"keys must be one of {', '.join(KEY_STYLES)}, not {self.keys!r}")
        object.__setattr__(self, "prefix", _prefix(self.prefix))
        check_fault_name(self.fault)
        object.__setattr__(self, "variants", check_variants(self.variants))
        if "snake-keys" in self.variants:
            object.__setattr__(self, "keys", "snake")

    def is_fault(self, name: str) -> bool:
        return self.fault == name

    def has(self, variant: str) -> bool:
        return variant in self.variants


def _accounts(accounts: Iterable[Account | str]) -> tuple[Account, ...]:
    if isinstance(accounts, str | Account):
        accounts = [accounts]
    parsed = tuple(a if isinstance(a, Account) else Account.parse(a) for a in accounts)
    if not parsed:
        raise ValueError("at least one account is needed")
    seen: set[tuple[str, str, str]] = set()
    for account in parsed:
        if account.key in seen:
            raise ValueError(f"account {':'.join(account.key)} is configured twice")
        seen.add(account.key)
    return parsed


def _prefix(prefix: str) -> str:
    if not isinstance(prefix, str):
        raise ValueError("prefix must be a string")
    prefix = prefix.rstrip("/")
    if prefix and not prefix.startswith("/"):
        raise ValueError(f"prefix must start with '/': {prefix!r}")
    if any(c in prefix for c in "?#{} "):
        raise ValueError(f"prefix must be a plain path: {prefix!r}")
    return prefix
