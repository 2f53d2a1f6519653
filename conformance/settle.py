"""Settling money: cancel every adjustment the journal says may be applied, as the platform would.

:func:`settle_outstanding` is the one compensation path: the run calls it after
each test and slice, when ``--max-outstanding`` is reached, and at the end; and
``conformance settle REPORT_DIR`` calls it on the journal a killed or
interrupted run left behind. For each outstanding adjustment it sends the
platform's cancel (reference §5.1), retried with backoff under the **same**
requestUniqueNo until a definitive answer ("0", US_0000001, US_0000002) or its
budget is spent: the platform's delivery model, :func:`conformance.delivery.reverse_order`
(reference §2.6), the one cancel loop of the suite. The cancel's
number is derived from the execute's number, and a cancel already journaled
for it is resent as it was, so settling twice, or after a crash mid-settle,
moves no money twice: a replayed cancel is answered as first, and a cancel of
a never-received execute is answered US_0000002 and moves nothing.

Exit codes of ``conformance settle`` (also in the README):

  0  nothing is outstanding (everything the journal knows of is settled)
  2  usage or configuration error (no journal in the directory, bad flags, journal in use)
  4  some adjustments are still outstanding (listed; run settle again later)
  5  internal error of the suite itself
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from conformance.delivery import SYSTEM_CLOCK, CancelPolicy, reverse_order
from conformance.exchange import Exchange
from conformance.money_journal import (
    CANCEL,
    JOURNAL_FILE,
    Adjustment,
    JournalBusy,
    MoneyJournal,
    read,
    summarise,
)
from conformance.reporting import redaction

EXIT_SETTLED, EXIT_USAGE, EXIT_OUTSTANDING = 0, 2, 4


def cancel_number(execute_number: str) -> str:
    """The compensation cancel's requestUniqueNo for an execute: the same in every process that settles it."""
    return "cf-settle-" + hashlib.sha256(execute_number.encode()).hexdigest()[:32]


def cancel_body_for(adjustment: Adjustment, fallback: tuple[str, int] | None = None) -> dict:
    """The cancel to send: one already journaled by a compensation/settle (resent as it was), else a new one.

    The platform's cancel mirrors its execute (reference §5.1). An execute the suite broke on purpose
    (a negative case cut off before its answer) has fields no valid cancel can carry; its cancel names
    it by number from ``fallback`` (a run account and its digits), so the wallet can answer it at all.
    """
    from conformance.checks import schema

    number = cancel_number(adjustment.number or "")
    for cancel in adjustment.cancels:
        sent = cancel.get("body")
        if cancel.get("number") == number and isinstance(sent, dict) and not schema.request_errors(CANCEL, sent):
            return sent  # a retry is a replay of the very cancel sent before
    body = _mirror(adjustment.body, number, adjustment.number)
    if schema.request_errors(CANCEL, body) and fallback is not None:
        account, digits = fallback
        third, user, currency = account.split(":", 2)
        amount = "1" if not digits else "1." + "0" * digits
        body = _mirror({"thirdServerCode": third, "userName": user, "currency": currency, "bizType": 1,
                        "amount": amount, "amountDigits": digits}, number, adjustment.number)
    return body


def fallback_account(state: Any) -> tuple[str, int] | None:
    """A run account and its digits (from the preflight balance), for cancels of deliberately broken executes."""
    for account, record in state.balances.get("preflight", {}).items():
        if isinstance(record.get("digits"), int):
            return account, record["digits"]
    return None


def _mirror(execute: dict, number: str, reverse: str | None) -> dict:
    body = {
        "thirdServerCode": execute.get("thirdServerCode"),
        "userName": execute.get("userName"),
        "currency": execute.get("currency"),
        "bizType": execute.get("bizType"),
        "amount": str(execute.get("amount", "0")).lstrip("-"),
        "amountDigits": execute.get("amountDigits"),
        "requestUniqueNo": number,
        "reverseRequestUniqueNo": reverse,
        "requestTime": int(time.time() * 1000),
        "ip": execute.get("ip") or "127.0.0.1",
        "cancelRemark": "conformance suite compensation",
    }
    if "orderId" in execute:
        body["orderId"] = execute["orderId"]
    return body


def settle_outstanding(money: MoneyJournal, send: Callable[[str, dict], Exchange], *, policy: CancelPolicy,
                       timeout_s: float | None, say: Callable[[str], None] = lambda line: None,
                       clock: Any = SYSTEM_CLOCK) -> list[Adjustment]:
    """Cancel every outstanding, cancellable adjustment within ``timeout_s`` in all; return what is still open."""
    deadline = None if timeout_s is None else clock.monotonic() + timeout_s
    for adjustment in money.outstanding():
        if not adjustment.cancellable:
            continue
        remaining = None if deadline is None else deadline - clock.monotonic()
        if remaining is not None and remaining <= 0:
            say("settle: --settle-timeout reached; the rest stays outstanding")
            break
        budget = policy.budget_s if remaining is None else min(policy.budget_s, remaining)
        # the platform's cancel loop (conformance.delivery): the same cancel until definitive or the budget ends
        reverse_order(cancel_body_for(adjustment, fallback_account(money.state)), send,
                      replace(policy, budget_s=budget), clock, placed=adjustment.outcome == "applied")
    return money.outstanding()


def describe(adjustment: Adjustment) -> str:
    body = adjustment.body if isinstance(adjustment.body, dict) else {}
    why = "" if adjustment.cancellable else " (no requestUniqueNo: cannot be cancelled, check by hand)"
    return (f"{adjustment.number or adjustment.key} {adjustment.account} {body.get('operationType')} "
            f"{body.get('amount')} ({adjustment.outcome}){why}")


def settle_command_line(report_dir: Path) -> str:
    return f"conformance settle {report_dir.resolve()}"


# ------------------------------------------------------------------ the command
def command(report_dir: str, values: dict[str, Any], *, say: Callable[[str], None],
            err: Callable[[str], None]) -> int:
    """``conformance settle REPORT_DIR``: see the module docstring for what it does and its exit codes."""
    from conformance import profile as profiles
    from conformance.transport import Client

    directory = Path(report_dir)
    if not (directory / JOURNAL_FILE).is_file():
        err(f"conformance settle: error: {directory} has no {JOURNAL_FILE} (not a report dir of this suite)")
        return EXIT_USAGE
    state = read(directory / JOURNAL_FILE)
    run = state.run
    if run.get("embedded") and not values.get("base_url"):
        return _void_embedded(directory, state, say, err)
    merged = {"base_url": values.get("base_url") or run.get("target"),
              "company_id": values.get("company_id") or run.get("company_id")}
    merged.update({k: v for k, v in values.items() if k not in merged and v is not None})
    if not merged["base_url"]:
        err("conformance settle: error: the journal names no target; pass --base-url")
        return EXIT_USAGE
    try:
        profile = profiles.build({**merged, "allow_money_movement": True})
    except profiles.ConfigError as error:
        err(f"conformance settle: configuration error: {error}")
        return EXIT_USAGE
    money = _open_journal(directory, err)
    if money is None:
        return EXIT_USAGE
    started = time.monotonic()
    owed = money.outstanding()
    say(f"settle: {len(owed)} adjustment(s) outstanding in {directory / JOURNAL_FILE}"
        + (f" ({state.torn} torn record(s) skipped)" if state.torn else ""))
    secrets = profile.secret_header_names
    scrubbing = redaction.Secrets.of(profile)  # header values, URL credentials: the one redaction of every writer
    log = open(directory / "settle-exchanges.jsonl", "a", encoding="utf-8")  # noqa: SIM115
    client = Client(profile, money=money)

    def send(operation: str, body: dict) -> Exchange:
        exchange = client.call(operation, body, origin="settle")
        record = redaction.scrub(exchange.to_record(secrets), scrubbing)
        log.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        log.flush()
        return exchange

    try:
        left = settle_outstanding(money, send, policy=policy_of(profile), timeout_s=profile.settle_timeout, say=say)
        read_now = read_balances(client, money, [a for a in run.get("accounts", [])], "settle")
        elapsed = time.monotonic() - started
        money.note_settle({"by": "conformance settle", "settled": len(owed) - len(left),
                           "outstanding": [a.key for a in left], "duration_s": round(elapsed, 3)})
    finally:
        client.close()
        log.close()
        money.close()
    final = read(directory / JOURNAL_FILE)
    write_json(directory / "ledger.json", summarise(final))
    addendum = write_addendum(directory, final, elapsed)
    for adjustment in left:
        say(f"  outstanding: {describe(adjustment)}")
    for account in summarise(final)["balances"]["accounts"]:
        if account["account"] not in read_now:  # never pass an earlier reading off as the balance now
            say(f"  balance {account['account']}: not read now (the target did not answer it); "
                f"last reading {account['after']}")
            continue
        say(f"  balance {account['account']}: {account['before']} -> {account['after']} ({account['meaning']})")
    say(f"settle: {len(owed) - len(left)} settled, {len(left)} outstanding, {elapsed:.1f} s; addendum {addendum.name}")
    unread = [a for a in run.get("accounts", []) if a not in read_now]
    if unread and not left:
        say(f"settle: {len(unread)} balance(s) could not be read now: the money cannot be confirmed")
    return EXIT_OUTSTANDING if left or unread else EXIT_SETTLED


def _open_journal(directory: Path, err: Callable[[str], None]) -> MoneyJournal | None:
    """The run's journal, held for this settle; None (said on one line) when a live run or settle holds it."""
    try:
        return MoneyJournal(directory)
    except JournalBusy as error:
        err(f"conformance settle: error: {error}")
        return None


def _void_embedded(directory: Path, state: Any, say: Callable[[str], None], err: Callable[[str], None]) -> int:
    """A run against the embedded wallet: its in-memory ledger ended with the run, so nothing is owed."""
    money = _open_journal(directory, err)
    if money is None:
        return EXIT_USAGE
    owed = money.outstanding()
    reason = "the run's embedded reference wallet kept its money in memory and ended with the run"
    if owed:
        money.note_settle({"by": "conformance settle", "void": reason, "outstanding": [a.key for a in owed]})
    money.close()
    write_json(directory / "ledger.json", summarise(read(directory / JOURNAL_FILE)))
    say(f"settle: {len(owed)} adjustment(s) were open, nothing is owed: {reason}")
    return EXIT_SETTLED


def policy_of(profile: Any) -> CancelPolicy:
    timeout = getattr(profile, "settle_timeout", None) or 60.0
    return CancelPolicy(budget_s=timeout)


def read_balances(client: Any, money: MoneyJournal, accounts: list[str], when: str) -> set[str]:
    """One balance query per account, journaled (the report compares preflight with the last reading).

    Returns the accounts whose balance was actually read now (an unreachable target reads none)."""
    from conformance.checks.money import balance_amount, balance_data, digits_of

    read_now: set[str] = set()
    for account in accounts:
        third, user, currency = account.split(":", 2)
        try:
            exchange = client.call("getUserAmount", {"thirdServerCode": third, "userName": user,
                                                     "currency": currency}, origin=f"settle/balance-{when}")
        except KeyboardInterrupt:
            raise
        except Exception:  # a balance we cannot read is reported as unread
            continue
        data = balance_data(exchange)
        amount = balance_amount(exchange)
        if isinstance(data, dict) and amount is not None:
            money.balance(when, account, str(amount), digits_of(data))
            read_now.add(account)
    return read_now


def write_addendum(directory: Path, state: Any, elapsed: float) -> Path:
    """A hashed addendum to the run's evidence: the journal, ledger and settle log as they are now."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    files = {}
    for name in (JOURNAL_FILE, "ledger.json", "settle-exchanges.jsonl", *sorted(
            p.name for p in directory.glob("evidence-*.zip"))):
        path = directory / name
        if path.is_file():
            files[name] = file_sha256(path)
    summary = summarise(state)
    record = {
        "kind": "settle addendum",
        "at": dt.datetime.now(dt.UTC).isoformat(),
        "duration_s": round(elapsed, 3),
        "outstanding": summary["outstanding"],
        "balances": summary["balances"],
        "sha256": files,
    }
    body = json.dumps(record, indent=2, sort_keys=True) + "\n"
    path = directory / f"settle-addendum-{stamp}.json"
    path.write_text(body, encoding="utf-8")
    (directory / f"{path.name}.sha256").write_text(
        f"{hashlib.sha256(body.encode()).hexdigest()}  {path.name}\n", encoding="utf-8")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
