"""The target profile: where to test, with what, and how gently.

Read once from, in order of precedence, command-line flags, ``CONFORMANCE_*``
environment variables, a TOML file, and defaults; validated once; frozen; passed
down. Nothing below the CLI reads the environment or files on its own.

Every extra header is treated as a secret: its value is used on the wire and
never printed, logged or reported (:meth:`Profile.to_record` redacts it).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conformance.checks import Context
from conformance.exchange import REDACTED

PHASES = ("examples", "coverage", "fuzzing", "stateful", "handwritten", "delivery")
KEY_STYLES = ("camel", "snake", "either")
EMBEDDED = "embedded reference wallet"
DEFAULT_EXTERNAL_RATE_LIMIT = 20.0  # requests per second against a real target
DEFAULT_EXTERNAL_MAX_EXECUTES = 2000  # executes per run against a real target (0 = no bound)
DEFAULT_EXTERNAL_MAX_EXECUTE_AMOUNT = "100"  # |amount| of one execute against a real target (0 = no bound)
ENV_PREFIX = "CONFORMANCE_"
MAX_CONCURRENCY = 64  # the delivery phase never holds more orders in flight than this
MAX_RETRY_WINDOW = 60.0  # seconds; longer spreads are the opt-in long windows


class ConfigError(ValueError):
    """Bad configuration: the CLI prints it on one line and exits 2."""


@dataclass(frozen=True)
class TestAccount:
    __test__ = False  # not a pytest test class

    third_server_code: str
    user_name: str
    currency: str

    @classmethod
    def parse(cls, text: str) -> TestAccount:
        parts = text.strip().split(":")
        if len(parts) != 3 or not all(parts):
            raise ConfigError(f"account {text!r} is not THIRD:USER:CUR (three non-empty parts)")
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.third_server_code}:{self.user_name}:{self.currency}"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.third_server_code, self.user_name, self.currency)


@dataclass(frozen=True)
class Profile:
    base_url: str | None = None  # None: start the embedded reference wallet
    company_id: int = 439
    accounts: tuple[TestAccount, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # extra headers, secrets
    keys: str = "either"
    currency_allowlist: tuple[str, ...] = ("USDT",)
    timeout: float = 10.0
    rate_limit: float | None = None  # requests per second; None = default for the target kind
    verify_tls: bool = True
    ca_bundle: str | None = None
    seed: int = 20261125
    max_examples: int = 100
    phases: tuple[str, ...] = PHASES
    allow_money_movement: bool = False
    report_dir: str | None = None
    compare: str | None = None
    history: str | None = None  # a previous report dir whose Allure history is carried over
    signing_key: str | None = None  # path to an Ed25519 private key (PEM) for the evidence bundle
    html: bool = True  # render report.html when the Allure command line is available
    concurrency: int = 8  # delivery phase: orders in flight at once (bounded, MAX_CONCURRENCY)
    delivery_rate_limit: float | None = None  # delivery phase requests per second; None = rate_limit's default
    retry_window: float = 2.5  # delivery phase: seconds over which replays are spread (DLV-003)
    long_retry_windows: bool = False  # opt in to the replays spread over minutes (simulator.LONG_RETRY_WINDOWS)
    settle_timeout: float = 120.0  # seconds for settling all outstanding money, at each settle point
    max_duration: float | None = None  # seconds for the whole run; then it stops, settles, reports (exit 4)
    max_outstanding: int = 20  # adjustments open at once; reaching it settles before the next execute
    max_executes: int | None = None  # executes per run; None = the default for the target kind, 0 = none
    max_execute_amount: str | None = None  # |amount| of one execute; None = default for the target kind, 0 = none
    max_body_bytes: int = 1 << 20  # bytes read, decompressed and kept per response
    overwrite: bool = False  # allow a run into a report dir that holds an earlier run
    # nightly: waivers (conformance.waivers), replays of failing probes, flaky failures
    waivers: tuple = ()  # conformance.waivers.Waiver, from --waivers FILE and the profile's [[waiver]] tables
    strict_waivers: bool = False  # a waiver no longer needed fails the run
    replays: int = 2  # replays of a failing MUST probe before the failure is final (0 = off)
    flaky_fails: bool = False  # a flaky requirement fails the run
    config_file: str | None = field(default=None, compare=False)
    target: str = "external"  # "embedded" once pointed at the started reference wallet

    # ---------------------------------------------------------------- derived
    @property
    def embedded(self) -> bool:
        return self.base_url is None or self.target == "embedded"

    @property
    def money_allowed(self) -> bool:
        """Money-moving calls run against the embedded wallet always, elsewhere only when allowed."""
        return self.embedded or self.allow_money_movement

    @property
    def effective_rate_limit(self) -> float | None:
        if self.rate_limit is not None:
            return self.rate_limit if self.rate_limit > 0 else None
        return None if self.embedded else DEFAULT_EXTERNAL_RATE_LIMIT

    @property
    def effective_delivery_rate_limit(self) -> float | None:
        """The delivery phase's requests per second (None = unlimited): its own setting, else the run's."""
        if self.delivery_rate_limit is not None:
            return self.delivery_rate_limit if self.delivery_rate_limit > 0 else None
        return self.effective_rate_limit

    @property
    def effective_max_executes(self) -> int | None:
        value = self.max_executes if self.max_executes is not None else (
            None if self.embedded else DEFAULT_EXTERNAL_MAX_EXECUTES)
        return value or None

    @property
    def effective_max_execute_amount(self) -> Decimal | None:
        value = self.max_execute_amount if self.max_execute_amount is not None else (
            None if self.embedded else DEFAULT_EXTERNAL_MAX_EXECUTE_AMOUNT)
        return Decimal(value) if value is not None and Decimal(value) > 0 else None

    @property
    def secret_header_names(self) -> frozenset[str]:
        return frozenset(name.lower() for name, _ in self.headers)

    @property
    def secret_values(self) -> tuple[str, ...]:
        return tuple(value for _, value in self.headers if value)

    @property
    def tls_verify_setting(self) -> bool | str:
        return self.ca_bundle if self.ca_bundle else self.verify_tls

    def judging_context(self) -> Context:
        return Context(
            keys=self.keys,
            currency_allowlist=frozenset(self.currency_allowlist),
            accounts=tuple(a.key for a in self.accounts),
        )

    def with_embedded_target(self, base_url: str, accounts: tuple[TestAccount, ...]) -> Profile:
        """The profile pointed at the started embedded reference wallet."""
        return replace(self, base_url=base_url, accounts=self.accounts or accounts, target="embedded")

    def to_record(self) -> dict[str, Any]:
        """The effective profile for reports and evidence, with secret header values redacted."""
        record: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "headers":
                value = {name: REDACTED for name, _ in value}
            elif item.name == "waivers":
                value = [w.to_record() for w in value]
            elif item.name == "accounts":
                value = [str(a) for a in value]
            elif isinstance(value, tuple):
                value = list(value)
            record[item.name] = value
        record["money_allowed"] = self.money_allowed
        record["effective_rate_limit"] = self.effective_rate_limit
        record["effective_delivery_rate_limit"] = self.effective_delivery_rate_limit
        record["effective_max_executes"] = self.effective_max_executes
        amount = self.effective_max_execute_amount
        record["effective_max_execute_amount"] = None if amount is None else str(amount)
        return record


# -------------------------------------------------------------------- parsing
def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}: {value!r} is not a boolean (true/false)")


def _number(name: str, value: Any, kind: type, minimum: float | None = None) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {value!r} is not a{'n integer' if kind is int else ' number'}") from None
    if isinstance(value, bool):
        raise ConfigError(f"{name}: {value!r} is not a number")
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name}: {value!r} must be at least {minimum}")
    return number


def _list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part for part in re.split(r"[,\s]+", value) if part]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    raise ConfigError(f"{value!r} is not a list")


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
        # Never echo any of it: a header given without its colon may be nothing but its secret value.
        raise ConfigError("a header: expected 'NAME: VALUE' (its text is not shown: it may hold a secret)")
    value = value.strip()
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):  # CR/LF would split the header
        raise ConfigError(f"header {name!r}: its value holds a control character (CR, LF, ...); it is not shown")
    return name, value


def _base_url(value: Any) -> str:
    text = str(value).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"base URL {text!r} is not an http(s) URL")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        # the three paths are appended to it; a query (often a key) would end up inside the path, and is
        # not shown: give a key as a --header instead
        raise ConfigError("the base URL carries a query string or fragment (not shown): give the prefix before "
                          "the three paths, and any key as --header 'NAME: VALUE'")
    return text


def _from_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error.strerror}") from None
    flat: dict[str, Any] = {}
    known = {"target", "http", "run", "evidence"}
    if "waiver" in data:  # [[waiver]] tables (conformance.waivers), kept apart from the sections
        flat["waiver_tables"] = (data.pop("waiver"), path)
    for section, values in data.items():
        if section not in known or not isinstance(values, dict):
            raise ConfigError(f"config file {path}: unknown section [{section}] (known: {', '.join(sorted(known))})")
        for key, value in values.items():
            flat[key] = value
    if isinstance(flat.get("headers"), dict):
        flat["headers"] = [f"{k}: {v}" for k, v in flat["headers"].items()]
    return flat


_ENV_KEYS = (
    "base_url", "company_id", "accounts", "headers", "keys", "currency_allowlist", "timeout", "rate_limit",
    "verify_tls", "ca_bundle", "seed", "max_examples", "phases", "allow_money_movement", "report_dir",
    "compare", "history", "signing_key", "html", "concurrency", "delivery_rate_limit", "retry_window",
    "long_retry_windows",
    "compare", "history", "signing_key", "html", "settle_timeout", "max_duration", "max_outstanding",
    "max_executes", "max_execute_amount", "max_body_bytes", "overwrite",
    "waivers", "strict_waivers", "replays", "flaky_fails",
)


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in _ENV_KEYS:
        name = ENV_PREFIX + key.upper()
        if name in environ and environ[name] != "":
            raw = environ[name]
            values[key] = [line for line in re.split(r"\n|;;", raw) if line.strip()] if key == "headers" else raw
    return values


def build(cli: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Profile:
    """Merge CLI values (None = not given) over environment over TOML over defaults, and validate."""
    environ = os.environ if environ is None else environ
    config_file = cli.get("config") or environ.get(ENV_PREFIX + "CONFIG")
    merged: dict[str, Any] = _from_toml(config_file) if config_file else {}
    merged.update(_from_env(environ))
    merged.update({k: v for k, v in cli.items() if v is not None and k != "config"})

    waiver_tables = merged.pop("waiver_tables", None)
    unknown = set(merged) - {f.name for f in fields(Profile)} | ({"target", "config_file"} & set(merged))
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")

    values: dict[str, Any] = {"config_file": config_file}
    values["waivers"] = _waivers(merged.pop("waivers", None), waiver_tables)
    for key, value in merged.items():
        if key == "base_url":
            values[key] = _base_url(value)
        elif key == "company_id":
            values[key] = _number("company_id", value, int)
        elif key == "accounts":
            values[key] = tuple(TestAccount.parse(a) for a in _list(value))
        elif key == "headers":
            items = [value] if isinstance(value, str) else list(value)
            values[key] = tuple(parse_header(h) for h in items)
        elif key == "keys":
            if value not in KEY_STYLES:
                raise ConfigError(f"keys: {value!r} is not one of {', '.join(KEY_STYLES)}")
            values[key] = value
        elif key == "currency_allowlist":
            values[key] = tuple(_list(value))
        elif key == "timeout":
            values[key] = _number("timeout", value, float, minimum=0.1)
        elif key == "rate_limit":
            values[key] = _number("rate_limit", value, float, minimum=0)
        elif key == "concurrency":
            values[key] = _number("concurrency", value, int, minimum=1)
            if values[key] > MAX_CONCURRENCY:
                raise ConfigError(f"concurrency: {value!r} is more than {MAX_CONCURRENCY}")
        elif key == "delivery_rate_limit":
            values[key] = _number("delivery_rate_limit", value, float, minimum=0)
        elif key == "retry_window":
            values[key] = _number("retry_window", value, float, minimum=0)
            if values[key] > MAX_RETRY_WINDOW:
                raise ConfigError(f"retry_window: {value!r} is more than {MAX_RETRY_WINDOW:g} s "
                                  "(longer spreads: --long-retry-windows)")
        elif key in ("settle_timeout", "max_duration"):
            values[key] = _number(key, value, float, minimum=0.1)
        elif key == "max_outstanding":
            values[key] = _number(key, value, int, minimum=1)
        elif key == "max_executes":
            values[key] = _number(key, value, int, minimum=0)
        elif key == "max_body_bytes":
            values[key] = _number(key, value, int, minimum=1024)
        elif key == "max_execute_amount":
            try:
                amount = Decimal(str(value).strip())
            except InvalidOperation:
                raise ConfigError(f"max_execute_amount: {value!r} is not a decimal number") from None
            if not amount.is_finite() or amount < 0:
                raise ConfigError(f"max_execute_amount: {value!r} must be a non-negative number")
            values[key] = str(amount)
        elif key in ("verify_tls", "allow_money_movement", "html", "overwrite", "long_retry_windows",
                     "strict_waivers", "flaky_fails"):
            values[key] = _bool(key, value)
        elif key == "seed":
            values[key] = _number("seed", value, int, minimum=0)
        elif key == "max_examples":
            values[key] = _number("max_examples", value, int, minimum=1)
        elif key == "replays":
            values[key] = _number("replays", value, int, minimum=0)
        elif key == "phases":
            phases = tuple(_list(value))
            bad = [p for p in phases if p not in PHASES]
            if bad or not phases:
                raise ConfigError(f"phases: {', '.join(bad) or 'none given'}; choose from {', '.join(PHASES)}")
            values[key] = phases
        elif key in ("ca_bundle", "signing_key", "compare", "history"):
            path = str(value)
            if not Path(path).exists():
                raise ConfigError(f"{key}: {path} does not exist")
            values[key] = path
        else:
            values[key] = str(value)
    return Profile(**values)


def _waivers(files: Any, tables: tuple[Any, str] | None) -> tuple:
    """The waivers of the ``waivers`` file(s) and of the profile's own ``[[waiver]]`` tables."""
    from conformance import waivers

    found: list = []
    try:
        if tables is not None:
            found += waivers.parse(*tables)
        for path in ([] if files is None else [files] if isinstance(files, str) else list(files)):
            found += waivers.load(str(path))
    except waivers.WaiverError as error:
        raise ConfigError(str(error)) from None
    return tuple(found)
