"""Waivers: a known failure, tied to a requirement id, an owner, a ticket and an expiry date.

A waiver file (``--waivers FILE``, or ``[[waiver]]`` tables in the profile TOML) holds tables like::

    [[waiver]]
    requirement = "EXE-001"             # a catalogue id
    reason = "the staging wallet's database is slow at night"
    owner = "payments-team@vendor.example"
    ticket = "PAY-1234"                  # an id or a link
    expires = 2027-01-31                 # YYYY-MM-DD (a TOML date or a string), inclusive
    operation = "executeAdjustment"      # optional: only failures on this operation
    account = "W-1001:86000001:USD"      # optional: only failures on this account

:func:`apply` is pure: it takes the run's verdicts, the waivers and today's date and returns new verdicts
and a :class:`WaiverReport`. A covered ``failed``, ``warning`` or ``flaky`` row becomes ``waived`` (its own
status, never ``passed``) carrying the waiver; an expired waiver leaves its row failing and says so; a waiver
whose requirement passed is "no longer needed" (and fails the run under ``strict``). A waiver never touches a
suite error, never makes a skipped (unjudged) requirement anything but skipped, and never turns an incomplete
run green: :meth:`WaiverReport.outcome` only ever makes a verdict worse.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance import contract, verdicts

REQUIRED = ("requirement", "reason", "owner", "ticket", "expires")
OPTIONAL = ("operation", "account")
COVERED = frozenset({"failed", "warning", "flaky"})


class WaiverError(ValueError):
    """A malformed waiver (the profile turns it into a ConfigError: one line, exit 2)."""


@dataclass(frozen=True)
class Waiver:
    requirement: str
    reason: str
    owner: str
    ticket: str
    expires: dt.date
    operation: str | None = None
    account: tuple[str, str, str] | None = None
    source: str = ""  # where it was written: "FILE waiver #N"

    def active(self, today: dt.date) -> bool:
        return today <= self.expires  # inclusive: valid through the whole expiry day

    def covers(self, scopes: Iterable[tuple[str | None, tuple[str, str, str] | None]] | None) -> bool:
        """Whether every failure of the requirement lies inside this waiver's scope.

        ``scopes`` are (operation, account) of each failing exchange; None when unknown. An unscoped waiver
        covers any failure; a scoped one covers only failures known to be inside its scope.
        """
        if self.operation is None and self.account is None:
            return True
        scopes = list(scopes or ())
        if not scopes:
            return False
        return all((self.operation is None or op == self.operation) and
                   (self.account is None or acc == self.account) for op, acc in scopes)

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"requirement": self.requirement, "reason": self.reason, "owner": self.owner,
                                  "ticket": self.ticket, "expires": self.expires.isoformat()}
        if self.operation is not None:
            record["operation"] = self.operation
        if self.account is not None:
            record["account"] = ":".join(self.account)
        if self.source:
            record["source"] = self.source
        return record


@dataclass(frozen=True)
class WaiverReport:
    """What the waivers did to this run (written to summary.json as ``waivers``)."""

    applied: tuple[dict, ...] = ()  # waiver records with "state": "applied"
    expired: tuple[dict, ...] = ()  # expired waivers whose requirement failed: the failure stands
    not_needed: tuple[dict, ...] = ()  # the requirement passed: remove the waiver
    unused: tuple[dict, ...] = ()  # the requirement was not judged, or failed outside the waiver's scope
    strict: bool = False

    @property
    def fails_run(self) -> bool:
        return self.strict and bool(self.not_needed)

    def outcome(self, run: verdicts.RunVerdict) -> tuple[str, int]:
        """The run's verdict and exit code with the waivers taken into account (only ever worse)."""
        verdict, code = run.verdict, run.exit_code
        if self.fails_run and verdict != "failed":
            return "failed", verdicts.EXIT_FAILED
        return verdict, code

    def to_record(self) -> dict[str, Any]:
        return {"strict": self.strict, "fails_run": self.fails_run, "applied": list(self.applied),
                "expired": list(self.expired), "not_needed": list(self.not_needed), "unused": list(self.unused)}


# ---------------------------------------------------------------------------------------------- apply
def apply(
    run: verdicts.RunVerdict,
    waivers: Iterable[Waiver],
    today: dt.date,
    strict: bool = False,
    *,
    scopes: Mapping[str, list[tuple[str | None, tuple[str, str, str] | None]]] | None = None,
) -> tuple[verdicts.RunVerdict, WaiverReport]:
    """The run's verdicts with the waivers applied, and what they did. Pure: no clock, no files.

    ``scopes`` maps a requirement id to the (operation, account) of each of its failing exchanges (see
    :func:`failure_scopes`); only scoped waivers need it.
    """
    by_requirement: dict[str, list[Waiver]] = {}
    for waiver in waivers:
        by_requirement.setdefault(waiver.requirement, []).append(waiver)
    applied: list[dict] = []
    expired: list[dict] = []
    not_needed: list[dict] = []
    unused: list[dict] = []
    rows = []
    for row in run.requirements:
        mine = by_requirement.get(row.id, [])
        if not mine:
            rows.append(row)
            continue
        if row.status in COVERED:
            live = [w for w in mine if w.active(today)]
            fitting = [w for w in live if w.covers((scopes or {}).get(row.id))]
            if fitting:
                waiver = fitting[0]
                record = {**waiver.to_record(), "state": "applied", "was": row.status}
                applied.append(record)
                reason = f"waived: {waiver.reason} (owner {waiver.owner}, {waiver.ticket}, " \
                         f"expires {waiver.expires.isoformat()}; was {row.status})"
                rows.append(row.with_status("waived", waiver=record, reason=reason))
                unused += [_unused(w, "another waiver covered the failure") for w in mine if w is not waiver]
                continue
            gone = [w for w in mine if not w.active(today)]
            for waiver in gone:
                expired.append({**waiver.to_record(), "state": "expired"})
            for waiver in live:
                unused.append(_unused(waiver, "the requirement failed outside the waiver's scope"))
            if gone:
                first = gone[0]
                reason = f"waiver expired on {first.expires.isoformat()} (owner {first.owner}, {first.ticket})"
                if row.reason:
                    reason = f"{row.reason}; {reason}"
                rows.append(row.with_status(row.status, waiver={**first.to_record(), "state": "expired"},
                                            reason=reason))
            else:
                rows.append(row)
        elif row.status == "passed":
            not_needed += [{**w.to_record(), "state": "not needed"} for w in mine]
            rows.append(row.with_status("passed", waiver={**mine[0].to_record(), "state": "not needed"}))
        else:  # skipped: not judged, so neither waived nor known to be unneeded
            unused += [_unused(w, f"the requirement was not judged ({row.reason or 'skipped'})") for w in mine]
            rows.append(row)
    report = WaiverReport(tuple(applied), tuple(expired), tuple(not_needed), tuple(unused), strict)
    return verdicts.RunVerdict(tuple(rows), run.suite_errors, run.flaky_fails), report


def lines(report: Mapping[str, Any] | None) -> list[str]:
    """The block printed after the table, from summary.json's ``waivers`` record."""
    report = report or {}
    out = []
    for record in report.get("applied", []):
        out.append(f"waived: {record['requirement']} (was {record.get('was')}; owner {record['owner']}, "
                   f"{record['ticket']}, expires {record['expires']})")
    for record in report.get("expired", []):
        out.append(f"waiver expired: {record['requirement']} on {record['expires']} (owner {record['owner']}, "
                   f"{record['ticket']}): the failure counts")
    for record in report.get("not_needed", []):
        tail = ": fails the run (--strict-waivers)" if report.get("strict") else ": remove it"
        out.append(f"waiver no longer needed: {record['requirement']} passed (owner {record['owner']}, "
                   f"{record['ticket']}){tail}")
    for record in report.get("unused", []):
        out.append(f"waiver unused: {record['requirement']}: {record['why']}")
    return out


def _unused(waiver: Waiver, why: str) -> dict:
    return {**waiver.to_record(), "state": "unused", "why": why}


def failure_scopes(outcomes, exchanges) -> dict[str, list[tuple[str | None, tuple[str, str, str] | None]]]:
    """Requirement id -> (operation, account) of every exchange an outcome against the target names.

    An outcome without an exchange (a Schemathesis built-in check, say) has the unknown scope (None, None),
    which only an unscoped waiver covers.
    """
    scopes: dict[str, list[tuple[str | None, tuple[str, str, str] | None]]] = {}
    for outcome in outcomes:
        if not outcome.status.against_target:
            continue
        found = [exchanges[i] for i in outcome.exchanges if i in exchanges]
        entries = scopes.setdefault(outcome.requirement, [])
        if not found:
            entries.append((None, None))
        for exchange in found:
            body = exchange.request.json
            account = None
            if isinstance(body, dict) and all(isinstance(body.get(k), str)
                                              for k in ("thirdServerCode", "userName", "currency")):
                account = (body["thirdServerCode"], body["userName"], body["currency"])
            entries.append((exchange.operation, account))
    return scopes


# -------------------------------------------------------------------------------------------- parsing
def load(path: str | Path) -> tuple[Waiver, ...]:
    """The waivers of a TOML file; WaiverError (one line) when it cannot be read or is malformed."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise WaiverError(f"waiver file {path} does not exist") from None
    except IsADirectoryError:
        raise WaiverError(f"waiver file {path} is a directory") from None
    except tomllib.TOMLDecodeError as error:
        raise WaiverError(f"waiver file {path} is not valid TOML: {error}") from None
    except OSError as error:
        raise WaiverError(f"waiver file {path} cannot be read: {error.strerror}") from None
    unknown = sorted(set(data) - {"waiver"})
    if unknown:
        raise WaiverError(f"waiver file {path}: unknown key(s) {', '.join(unknown)} (only [[waiver]] tables)")
    if "waiver" not in data:
        raise WaiverError(f"waiver file {path} has no [[waiver]] tables")
    return parse(data["waiver"], str(path))


def parse(tables: Any, source: str) -> tuple[Waiver, ...]:
    """The ``[[waiver]]`` tables of a file or profile; WaiverError naming the first bad one."""
    if not isinstance(tables, list):
        raise WaiverError(f"{source}: 'waiver' must be an array of tables ([[waiver]])")
    catalogue = contract.load()
    parsed: list[Waiver] = []
    seen: set[tuple] = set()
    for number, table in enumerate(tables, 1):
        where = f"{source} waiver #{number}"
        if not isinstance(table, dict):
            raise WaiverError(f"{where}: not a table")
        missing = [key for key in REQUIRED if key not in table]
        if missing:
            raise WaiverError(f"{where}: missing {', '.join(missing)}")
        extra = sorted(set(table) - set(REQUIRED) - set(OPTIONAL))
        if extra:
            raise WaiverError(f"{where}: unknown key(s) {', '.join(extra)}")
        for key in ("requirement", "reason", "owner", "ticket"):
            if not isinstance(table[key], str) or not table[key].strip():
                raise WaiverError(f"{where}: {key} must be a non-empty string")
        requirement = table["requirement"].strip()
        if requirement not in catalogue.requirements:
            raise WaiverError(f"{where}: unknown requirement id {requirement!r} (see: conformance requirements)")
        operation = table.get("operation")
        if operation is not None:
            if operation not in catalogue.operations:
                raise WaiverError(f"{where}: unknown operation {operation!r} "
                                  f"(one of {', '.join(catalogue.operations)})")
            if operation not in catalogue.requirements[requirement].operations:
                raise WaiverError(f"{where}: {requirement} does not apply to {operation}")
        account = _account(table.get("account"), where)
        waiver = Waiver(requirement=requirement, reason=table["reason"].strip(), owner=table["owner"].strip(),
                        ticket=table["ticket"].strip(), expires=_date(table["expires"], where),
                        operation=operation, account=account, source=where)
        key = (waiver.requirement, waiver.operation, waiver.account)
        if key in seen:
            raise WaiverError(f"{where}: a second waiver for {requirement} with the same scope")
        seen.add(key)
        parsed.append(waiver)
    return tuple(parsed)


def _date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.datetime):
        raise WaiverError(f"{where}: expires must be a date (YYYY-MM-DD), not a date and time")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise WaiverError(f"{where}: expires {value!r} is not a date (YYYY-MM-DD)")


def _account(value: Any, where: str) -> tuple[str, str, str] | None:
    if value is None:
        return None
    parts = value.split(":") if isinstance(value, str) else []
    if len(parts) != 3 or not all(parts):
        raise WaiverError(f"{where}: account {value!r} is not THIRD:USER:CUR")
    return (parts[0], parts[1], parts[2])

