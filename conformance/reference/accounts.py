"""Accounts of the reference wallet and the money arithmetic they need.

Money is an integer number of minor units (``"100000.00"`` with 2 digits is
``10000000``); decimal strings are parsed with :mod:`decimal` rules by hand and
never through ``float``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
MAX_MINOR = 10**18  # far below SQLite's 2**63 - 1, so no balance or amount can overflow a column
_MAX_DIGITS = 36  # longer digit strings are out of range anyway; keeps int() cheap


def decimals_of(text: str) -> int:
    """Number of decimal places of a plain decimal string."""
    return len(text.partition(".")[2])


def to_minor(text: str, digits: int) -> int | None:
    """A plain decimal string as minor units at ``digits`` places; None if it is not exact there.

    ``to_minor("25.5", 2) == 2550``, ``to_minor("25.555", 2) is None``. The caller has
    checked the string against :data:`DECIMAL`.
    """
    negative = text.startswith("-")
    whole, _, fraction = text.lstrip("-").partition(".")
    if len(whole) + len(fraction) > _MAX_DIGITS or digits > _MAX_DIGITS:
        return None
    if len(fraction) > digits:
        if fraction[digits:].strip("0"):
            return None
        fraction = fraction[:digits]
    value = int(whole + fraction.ljust(digits, "0"))
    return -value if negative else value


def format_minor(minor: int, digits: int) -> str:
    """Minor units as a plain decimal string with exactly ``digits`` decimals: ``"-12.30"``."""
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**digits)
    if digits == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{digits}d}"


@dataclass(frozen=True)
class Account:
    """A wallet account, provisioned by configuration: ``W-1001:86000001:USD:100000.00``."""

    third_server_code: str
    user_name: str
    currency: str
    balance: str  # opening balance, a plain decimal string; its decimals are the account's digits

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise ValueError(f"invalid account {self.spec()!r}: {problem}")

    @property
    def digits(self) -> int:
        """amountDigits of the account: the number of decimals of the balance string."""
        return decimals_of(self.balance)

    @property
    def opening_minor(self) -> int:
        minor = to_minor(self.balance, self.digits)
        assert minor is not None
        return minor

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.third_server_code, self.user_name, self.currency)

    def spec(self) -> str:
        return f"{self.third_server_code}:{self.user_name}:{self.currency}:{self.balance}"

    @classmethod
    def parse(cls, text: str) -> Account:
        """``THIRD:USER:CUR:BALANCE`` -> Account; ValueError with a readable message otherwise."""
        parts = text.split(":")
        if len(parts) != 4:
            raise ValueError(
                f"invalid account {text!r}: expected THIRD:USER:CURRENCY:BALANCE "
                f"(four fields separated by ':'), got {len(parts)} field(s)"
            )
        return cls(*(part.strip() for part in parts))


def _problem(account: Account) -> str | None:
    for label, value in (
        ("thirdServerCode", account.third_server_code),
        ("userName", account.user_name),
        ("currency", account.currency),
    ):
        if not isinstance(value, str) or not value:
            return f"{label} is empty"
    if len(account.user_name) > 48:
        return "userName is longer than 48 characters (execute and cancel could not address it)"
    if len(account.currency) > 16:
        return "currency is longer than 16 characters"
    if not isinstance(account.balance, str) or not DECIMAL.fullmatch(account.balance):
        return f"balance {account.balance!r} is not a plain decimal such as 100000.00"
    if account.digits > 18:
        return "balance has more than 18 decimals"
    minor = to_minor(account.balance, account.digits)
    if minor is None or abs(minor) > MAX_MINOR:
        return "balance is out of range"
    return None


DEFAULT_ACCOUNTS: tuple[Account, ...] = tuple(
    Account.parse(spec)
    for spec in (
        "W-1001:86000001:USD:100000.00",
        "W-1002:86000002:HKD:500000.0000",
        "W-1003:86000003:USDT:50000.000000",
        "W-1004:86000004:JPY:10000000",
        "W-1005:86000001:EUR:2500.00",
    )
)
