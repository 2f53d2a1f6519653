"""Schemathesis hooks and checks: the suite's rules, as Schemathesis sees them.

Loaded by ``schemathesis.toml`` (``hooks = "conformance.schemathesis_hooks"``)
for a bare ``st run``, and imported by :mod:`conformance.generated` for
``conformance run``: both judge generated traffic with the same functions.

- ``before_call`` gives every generated request a fresh 13-digit ``timestamp``
  and a unique ``trace``, except when the case is negative in its headers (then
  the headers are broken on purpose and are left alone). Inside
  ``conformance run`` it also points positive cases at the profile's real
  accounts and company, so the wallet's business rules are reached.
- ``after_call`` records the exchange and judges it once with every exchange check.
- one Schemathesis check per suite check reports that judgement, titled with
  its requirement id, so ``st run`` output speaks the catalogue's language.
"""

from __future__ import annotations

import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import schemathesis
from schemathesis.core.failures import Failure, Severity
from schemathesis.core.parameters import ParameterLocation

from conformance import checks, contract
from conformance.checks import Context, Outcome, judge_exchange
from conformance.exchange import Exchange, Request, Response

#: Schemathesis' own checks, and the requirement each one speaks for.
BUILTIN_REQUIREMENTS = {
    "not_a_server_error": "ROB-001",
    "status_code_conformance": "ENV-010",
    "content_type_conformance": "ENV-001",
    "response_schema_conformance": "ENV-009",
    "response_headers_conformance": "ENV-009",
    "unsupported_method": "ROB-003",
}
#: Stock checks that assume errors are HTTP 4xx, or that schema-valid means business-valid; this API
#: reports errors as HTTP 200 with ok=false (spec decision D5). The suite's VAL-010, HDR-001..003 and
#: BAL-007/EXE-002 judge the same things the way this API works.
EXCLUDED_BUILTINS = ("negative_data_rejection", "positive_data_acceptance", "missing_required_header")


@dataclass
class Active:
    """Set by ``conformance run`` while it drives Schemathesis; absent under a bare ``st run``."""

    journal: Any  # conformance.journal.Journal
    company_id: int
    accounts: tuple[tuple[str, str, str], ...] = ()
    account_digits: dict[tuple[str, str, str], int] = field(default_factory=dict)
    money_allowed: bool = True
    phase: str = ""


ACTIVE: Active | None = None
_DEFAULT_CONTEXT = Context()
_local = threading.local()


# ------------------------------------------------------------------------- hooks
@schemathesis.hook
def before_call(context, case, kwargs):
    meta = case.meta  # read before editing the case: editing re-validates and may re-label it
    body_negative = meta is not None and meta.is_negative_at(ParameterLocation.BODY)
    keep = _deliberately_broken_headers(meta)
    if keep is not None:
        if case.headers is None:
            case.headers = {}
        if "trace" not in keep:
            case.headers["trace"] = f"conformance-{uuid.uuid4().hex}"
        has_timestamp = any(name.lower() == "timestamp" for name in case.headers)
        is_cancel = case.operation.path == "/cancel-external-system-credit-limit-adjustment"
        if "timestamp" not in keep and (has_timestamp or not is_cancel):
            case.headers["timestamp"] = str(int(time.time() * 1000))
        if ACTIVE is not None and "companyid" not in keep:
            case.headers["companyId"] = str(ACTIVE.company_id)
    if ACTIVE is not None and not body_negative and isinstance(case.body, dict):
        _use_profile_account(case.body)


def _deliberately_broken_headers(meta) -> set[str] | None:
    """Header names a negative case broke on purpose; None when it broke some it does not name (touch none)."""
    if meta is None or not meta.is_negative_at(ParameterLocation.HEADER):
        return set()
    data = meta.phase.data
    if getattr(data, "parameter_location", None) == ParameterLocation.HEADER and getattr(data, "parameter", None):
        return {data.parameter.lower()}  # the coverage phase names the single header it broke
    return None  # fuzzing/stateful negatives: several or unnamed headers are broken


def _use_profile_account(body: dict) -> None:
    """Point a positive body at a profile account, with an amount that account can carry."""
    accounts = ACTIVE.accounts if ACTIVE else ()
    if not accounts:
        return
    key = (body.get("thirdServerCode"), body.get("userName"), body.get("currency"))
    if key not in accounts:
        # Deterministic choice: the same generated body always gets the same account.
        key = accounts[zlib.crc32(repr(sorted(body.items())).encode()) % len(accounts)]
        body["thirdServerCode"], body["userName"], body["currency"] = key
    digits = ACTIVE.account_digits.get(key) if ACTIVE else None
    if "operationType" in body and digits is not None and isinstance(body.get("amount"), str):
        magnitude = Decimal(1 + zlib.crc32(body["amount"].encode()) % 9)
        signed = -magnitude if body.get("operationType") == "ABNORMAL_OVERTRADING" else magnitude
        body["amount"], body["amountDigits"] = f"{signed:.{digits}f}", digits


@schemathesis.hook
def after_call(context, case, response):
    exchange = to_exchange(case, response)
    outcomes = ACTIVE.journal.record(exchange) if ACTIVE is not None else judge_exchange(exchange, _DEFAULT_CONTEXT)
    _local.last = (id(response), exchange, outcomes)


def to_exchange(case, response) -> Exchange:
    sent = response.request
    body = sent.body if isinstance(sent.body, bytes) else (sent.body or "").encode()
    request = Request(
        method=sent.method,
        url=sent.url,
        headers=tuple((k, v) for k, v in sent.headers.items()),
        body=body,
    )
    headers = tuple((name, value) for name, values in response.headers.items() for value in values)
    reply = Response(
        status=response.status_code, headers=headers, body=response.content or b"", elapsed_ms=response.elapsed * 1000
    )
    meta = case.meta
    mode = meta.generation.mode.value if meta is not None else "positive"
    phase = meta.phase.name.value if meta is not None else "unknown"
    operation = contract.load().operation_for_path(request.path)
    return Exchange(
        request=request,
        response=reply,
        operation=operation.operation_id if operation else None,
        origin=f"generated/{phase}/{mode}",
        negative=mode == "negative",
    )


def exchange_and_outcomes(case, response) -> tuple[Exchange, list[Outcome]]:
    last = getattr(_local, "last", None)
    if last is not None and last[0] == id(response):
        return last[1], last[2]
    # after_call did not see this response (e.g. a check run outside the engine): judge it now.
    exchange = to_exchange(case, response)
    outcomes = judge_exchange(exchange, ACTIVE.journal.ctx if ACTIVE else _DEFAULT_CONTEXT)
    _local.last = (id(response), exchange, outcomes)
    return exchange, outcomes


# ------------------------------------------------------------------------ checks
class ConformanceFailure(Failure):
    """A requirement of the catalogue, broken."""

    code = "MMW"
    kind_title = "Conformance requirement violated"


def _register(item: checks.Check) -> None:
    requirement = contract.load().requirements[item.requirement]
    severity = Severity.CRITICAL if requirement.is_must else Severity.LOW

    def run_check(ctx, response, case):
        _, outcomes = exchange_and_outcomes(case, response)
        mine = [o for o in outcomes if o.check == item.name]
        if not mine:
            return True  # not applicable: not recorded
        if mine[0].passed:
            return None
        raise ConformanceFailure(
            operation=case.operation.label,
            title=f"{item.requirement} ({requirement.level}) {requirement.statement}",
            message=mine[0].message or "",
            severity=severity,
        )

    run_check.__name__ = f"{item.requirement.replace('-', '_')}_{item.name.split('.', 1)[1]}"
    schemathesis.check(run_check)


for _item in checks.exchange_checks():
    _register(_item)
