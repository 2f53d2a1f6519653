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

import os
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import schemathesis
from schemathesis.core.failures import Failure, Severity
from schemathesis.core.parameters import ParameterLocation

from conformance import checks, contract
from conformance.checks import Context, Outcome, judge_exchange
from conformance.exchange import Exchange, Request, Response

#: Schemathesis' own checks that judge what one of the suite's checks already judges, the way this API
#: works: two verdicts for one rule could disagree (the stock unsupported_method demands 405 where ROB-003
#: accepts 501 or the error envelope; not_a_server_error fails a 501 to TRACE that RFC 9110 allows). They
#: do not run; the suite's own check, registered below under the requirement's id, speaks for each rule.
DUPLICATED_BUILTINS = {
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
EXCLUDED_BUILTINS = (
    "negative_data_rejection", "positive_data_acceptance", "missing_required_header", *DUPLICATED_BUILTINS,
)


@dataclass
class GeneratedRun:
    """What ``conformance run`` hands its generated slices: attached to each schema it drives
    (:func:`attach`), read back by the hooks from the case they are given (:func:`run_of`). Under a
    bare ``st run`` no schema carries one, and the hooks judge with default settings and no journal."""

    journal: Any  # conformance.journal.Journal
    company_id: int
    accounts: tuple[tuple[str, str, str], ...] = ()
    account_digits: dict[tuple[str, str, str], int] = field(default_factory=dict)
    money_allowed: bool = True
    client_timeout_s: float = 10.0
    number_prefix: str = "conformance"  # every generated execute/cancel number starts with it (run-scoped)
    gate: Any = None  # run.MoneyGate: journals each execute/cancel before it is sent, stops traffic on a signal
    phase: str = ""
    numbers: set[str] = field(default_factory=set)  # requestUniqueNo values sent so far (one namespace)
    lock: threading.Lock = field(default_factory=threading.Lock)
    gate: Any = None  # conformance.transport.GeneratedGate: stop check, write-ahead money journal, bounded reads


_ATTRIBUTE = "conformance_run"


def attach(schema, run: GeneratedRun) -> None:
    """Hand ``run`` to every hook call made for cases of ``schema``."""
    setattr(schema, _ATTRIBUTE, run)


def run_of(case) -> GeneratedRun | None:
    return getattr(case.operation.schema, _ATTRIBUTE, None)


_DEFAULT_CONTEXT = Context()
_local = threading.local()


# ------------------------------------------------------------------------- hooks
ALLOW_MONEY_ENV = "CONFORMANCE_ALLOW_MONEY_MOVEMENT"


class MoneyMovementRefused(RuntimeError):
    """A bare ``st run`` against a non-local target would move money nobody compensates."""


def _guard_bare_money_call(case) -> None:
    """Under a bare ``st run`` (no ledger), refuse execute/cancel calls to anything but a loopback target.

    ``conformance run`` gates money by its profile and compensates every adjustment; a bare ``st run``
    has neither, so it may only move money on the local reference wallet, or where the operator says so.
    """
    operation = contract.load().operation_for_path(case.operation.path)
    if operation is None or not operation.moves_money:
        return
    if os.environ.get(ALLOW_MONEY_ENV, "").strip().lower() in ("1", "true", "yes"):
        return
    host = (urlsplit(case.operation.schema.get_base_url()).hostname or "").lower()
    if host in ("127.0.0.1", "localhost", "::1"):
        return
    raise MoneyMovementRefused(
        f"refusing to send {case.operation.path} to {host}: a bare st run does not compensate adjustments; "
        f"use `conformance run --allow-money-movement`, or `--include-operation-id getUserAmount`, "
        f"or set {ALLOW_MONEY_ENV}=true"
    )


@schemathesis.hook
def before_call(context, case, kwargs):
    run = run_of(case)
    if run is None:
        _guard_bare_money_call(case)
    meta = case.meta  # read before editing the case: editing re-validates and may re-label it
    body_negative = meta is not None and meta.is_negative_at(ParameterLocation.BODY)
    keep = _deliberately_broken_headers(meta)
    if keep is not None:
        if case.headers is None:
            case.headers = {}
        if "trace" not in keep:
            case.headers["trace"] = f"conformance-{uuid.uuid4().hex}"
        has_timestamp = any(name.lower() == "timestamp" for name in case.headers)
        documented = contract.load().operation_for_path(case.operation.path)
        required = documented is not None and "timestamp" in documented.required_headers
        if "timestamp" not in keep and (has_timestamp or required):
            case.headers["timestamp"] = str(int(time.time() * 1000))
        if run is not None and "companyid" not in keep:
            case.headers["companyId"] = str(run.company_id)
    if isinstance(case.body, dict):
        _fresh_times(case.body, case.operation.path, keep_broken=body_negative)
    if run is not None and isinstance(case.body, dict):
        if body_negative:
            _aim_negative_body(run, case.body, case.operation.path)
        else:
            _plausible(case.body, case.operation.path)
            _use_profile_account(run, case.body)
            _unique_number(run, case.body, case.operation.path)
    if run is not None and run.gate is not None:
        run.gate.before(case, kwargs)  # last: the body journaled is the body sent
    _local.sent_at = time.perf_counter()  # the deadline is measured from here to the last byte of the answer


def _deliberately_broken_headers(meta) -> set[str] | None:
    """Header names a negative case broke on purpose; None when it broke some it does not name (touch none)."""
    if meta is None or not meta.is_negative_at(ParameterLocation.HEADER):
        return set()
    data = meta.phase.data
    if getattr(data, "parameter_location", None) == ParameterLocation.HEADER and getattr(data, "parameter", None):
        return {data.parameter.lower()}  # the coverage phase names the single header it broke
    return None  # fuzzing/stateful negatives: several or unnamed headers are broken


ACCOUNT_FIELDS = ("thirdServerCode", "userName", "currency")


def _unique_number(run: GeneratedRun, body: dict, path: str) -> None:
    """Give every judged execute and cancel a requestUniqueNo of this run that no request has used yet.

    Generation repeats numbers ("", the spec's example, a number linked into two cancels), and the spec's
    example numbers are the same in every run: a repeat is a replay to the wallet, which rightly answers the
    first answer again (idempotence, not acceptance), and two executes under one number cannot be told apart
    by the money ledger. Executes and cancels share one namespace (a wallet may keep one). A number already
    in this run's namespace and not sent yet is kept (a stateful step made it); any other is replaced. The
    operation comes from the path, not from the body: a negative execute without operationType is still one.
    """
    operation = contract.load().operation_for_path(path)
    if operation is None or not operation.moves_money:
        return
    number = body.get("requestUniqueNo")
    limit = operation.max_lengths.get("requestUniqueNo", 48)
    with run.lock:
        fresh = isinstance(number, str) and number.startswith(run.number_prefix) and number not in run.numbers
        if not fresh:
            number = body["requestUniqueNo"] = f"{run.number_prefix}-{uuid.uuid4().hex}"[:limit]
        run.numbers.add(number)


def _plausible(body: dict, path: str) -> None:
    """A positive body as a business probe sends it (spec decision D19): documented fields only, no null,
    an ip that is an address, metadata that is JSON text. A correct wallet may refuse anything else."""
    import ipaddress
    import json

    operation = contract.load().operation_for_path(path)
    if operation is None:
        return
    documented = set(operation.request_schema.get("properties", {}))
    for name in [name for name, value in body.items() if name not in documented or value is None]:
        del body[name]
    if "ip" in body:
        try:
            ipaddress.ip_address(str(body["ip"]))
        except ValueError:
            body["ip"] = "203.0.113.7"
    if isinstance(body.get("metadata"), str):
        try:
            json.loads(body["metadata"])
        except ValueError:
            body["metadata"] = json.dumps({"note": body["metadata"][:40]})[: operation.max_lengths.get("metadata", 200)]


def _fresh_times(body: dict, path: str, *, keep_broken: bool) -> None:
    """A valid ``requestTime`` is set to now (spec decision D17: a wallet may refuse stale times).

    The spec's examples carry a fixed time; a wallet that checks freshness would refuse them for a reason
    no rule judges. A deliberately broken requestTime (a negative case) is left as it is.
    """
    if "requestTime" not in body:
        return
    if keep_broken and not contract.load().rules.is_epoch_millis(body["requestTime"]):
        return
    body["requestTime"] = int(time.time() * 1000)


def _aim_negative_body(run: GeneratedRun, body: dict, path: str) -> None:
    """Point a negative body's *valid* parts at a profile account, leaving its broken parts broken.

    A wallet may look the account up before it validates the rest; a negative case for an unknown
    account is then refused for the account, and the field it breaks on purpose is never looked at.
    Only fields the schema finds nothing wrong with are touched: the account when all three account
    fields are present and valid, the amount and amountDigits when both are.
    """
    from conformance.checks import schema

    operation = contract.load().operation_for_path(path)
    if operation is None:
        return
    errors = schema.request_errors(operation.operation_id, body)
    broken = {error.split(":", 1)[0].split("/", 1)[0] for error in errors}  # the field each error's path names
    broken |= {name for name in (*ACCOUNT_FIELDS, "amount", "amountDigits", "operationType", "requestUniqueNo")
               if any(f"'{name}'" in error for error in errors)}  # ... or its message quotes (required, ...)
    if "requestUniqueNo" in body and "requestUniqueNo" not in broken:
        _unique_number(run, body, path)  # else a repeated example number makes it a replay of another request
    if "amount" in body:
        _shrink_amount(body)  # whatever else is broken: little money moves if the wallet wrongly accepts it
    if any(name not in body or name in broken for name in ACCOUNT_FIELDS):
        return
    _use_profile_account(run, body, align_amount=False)
    if {"amount", "amountDigits"} <= set(body) and not {"amount", "amountDigits", "operationType"} & broken:
        _align_amount(run, body)


def _shrink_amount(body: dict) -> None:
    """An amount in a negative case, made small: if the wallet wrongly accepts the case, little money moves,
    and the run's money bounds never refuse the probe. A valid amount becomes 1 to 9 units (sign and decimals
    kept); a broken one that still reads as a large number ("1e3") becomes "1e0" (still broken, one unit)."""
    amount = body["amount"]
    if not isinstance(amount, str):
        return
    if not contract.load().rules.is_decimal(amount):
        try:
            large = abs(Decimal(amount.strip())) > 9
        except (ArithmeticError, ValueError):
            return
        if large:
            body["amount"] = "-1e0" if amount.strip().startswith("-") else "1e0"
        return
    decimals = len(amount.split(".", 1)[1]) if "." in amount else 0
    magnitude = Decimal(1 + zlib.crc32(amount.encode()) % 9)
    signed = -magnitude if amount.startswith("-") else magnitude
    body["amount"] = f"{signed:.{decimals}f}"


def _align_amount(run: GeneratedRun, body: dict) -> None:
    key = tuple(body.get(k) for k in ACCOUNT_FIELDS)
    digits = run.account_digits.get(key)
    if digits is None or not isinstance(body.get("amount"), str):
        return
    magnitude = Decimal(1 + zlib.crc32(body["amount"].encode()) % 9)
    operation_type = body.get("operationType")
    if operation_type is None:
        signed = magnitude  # cancel: the amount is a magnitude
    else:
        signed = -magnitude if operation_type == "ABNORMAL_OVERTRADING" else magnitude
    body["amount"], body["amountDigits"] = f"{signed:.{digits}f}", digits


def _use_profile_account(run: GeneratedRun, body: dict, *, align_amount: bool = True) -> None:
    """Point a positive body at a profile account, with an amount that account can carry."""
    accounts = run.accounts
    if not accounts:
        return
    key = (body.get("thirdServerCode"), body.get("userName"), body.get("currency"))
    if key not in accounts:
        # Deterministic choice: the same generated body always gets the same account.
        key = accounts[zlib.crc32(repr(sorted(body.items())).encode()) % len(accounts)]
        body["thirdServerCode"], body["userName"], body["currency"] = key
    if align_amount and "operationType" in body:
        _align_amount(run, body)


@schemathesis.hook
def after_call(context, case, response):
    run = run_of(case)
    exchange = to_exchange(case, response)
    if run is not None and run.gate is not None:
        run.gate.after(case, exchange)
    outcomes = run.journal.record(exchange) if run is not None else judge_exchange(exchange, _DEFAULT_CONTEXT)
    _local.last = (id(response), exchange, outcomes)


@schemathesis.hook
def after_network_error(context, case, request):
    """A generated call that got no answer (timeout, reset) is an exchange too: journaled and, for an
    execute, put on the money ledger as an unknown outcome that must be compensated."""
    run = run_of(case)
    if run is None:
        return
    timeout_ms = run.client_timeout_s * 1000
    # Schemathesis does not say whether its client gave up or the connection failed: when the client's
    # timeout is below the deadline, the call is taken as given up early (it proves nothing about the deadline).
    waited = timeout_ms if timeout_ms < contract.load().rules.execute_deadline_ms else None
    error = "no answer (the connection failed, or the client's timeout expired)"
    exchange = _exchange(case, request, None, error=error, waited_ms=waited)
    if run.gate is not None:
        run.gate.after(case, exchange)
    run.journal.record(exchange)


def to_exchange(case, response) -> Exchange:
    """The generated call as an exchange; its time runs from ``before_call`` to the last byte of the body
    (Schemathesis' own ``elapsed`` stops at the headers)."""
    headers = tuple((name, value) for name, values in response.headers.items() for value in values)
    body = response.content or b""
    sent_at = getattr(_local, "sent_at", None)
    elapsed = (time.perf_counter() - sent_at) * 1000 if sent_at is not None else response.elapsed * 1000
    reply = Response(status=response.status_code, headers=headers, body=body, elapsed_ms=max(elapsed, 0.0),
                     truncated=getattr(response.request, "conformance_truncated", None))
    return _exchange(case, response.request, reply)


def _exchange(case, sent, reply: Response | None, error: str | None = None, waited_ms: float | None = None) -> Exchange:
    """The exchange of one generated call: the request as sent, and the reply (None when there was none)."""
    body = sent.body if isinstance(sent.body, bytes) else (sent.body or "").encode()
    request = Request(method=sent.method, url=sent.url, headers=tuple(sent.headers.items()), body=body)
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
        error=error,
        waited_ms=waited_ms,
    )


def exchange_and_outcomes(case, response) -> tuple[Exchange, list[Outcome]]:
    last = getattr(_local, "last", None)
    if last is not None and last[0] == id(response):
        return last[1], last[2]
    # after_call did not see this response (e.g. a check run outside the engine): judge it now.
    run = run_of(case)
    exchange = to_exchange(case, response)
    outcomes = judge_exchange(exchange, run.journal.ctx if run is not None else _DEFAULT_CONTEXT)
    _local.last = (id(response), exchange, outcomes)
    return exchange, outcomes


# ------------------------------------------------------------------------ checks
class ConformanceFailure(Failure):
    """A requirement of the catalogue, broken (the id travels as data: ``requirement``)."""

    code = "MMW"
    kind_title = "Conformance requirement violated"

    def __init__(self, *, requirement: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.requirement = requirement


def _register(item: checks.Check) -> None:
    requirement = contract.load().requirements[item.requirement]
    severity = Severity.CRITICAL if requirement.is_must else Severity.LOW

    def run_check(ctx, response, case):
        _, outcomes = exchange_and_outcomes(case, response)
        mine = [o for o in outcomes if o.check == item.name]
        if not mine:
            return True  # not applicable: not recorded
        if not mine[0].status.against_target:
            return None
        raise ConformanceFailure(
            requirement=item.requirement,
            operation=case.operation.label,
            title=f"{item.requirement} ({requirement.level}) {requirement.statement}",
            message=mine[0].message or "",
            severity=severity,
        )

    run_check.__name__ = f"{item.requirement.replace('-', '_')}_{item.name.split('.', 1)[1]}"
    schemathesis.check(run_check)


for _item in checks.exchange_checks():
    _register(_item)
