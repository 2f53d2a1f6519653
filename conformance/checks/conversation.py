"""Execute and cancel as a conversation: money moves once, cancels give it back once (reference §2.5, §2.6).

Balances are read from successful balance answers (``before``/``after`` exchanges)
as exact decimals; an execute's amount from its request. A conversation check
returns NA when a step it needs is missing or did not give a readable answer,
because the step that failed is judged by its own check.
"""

from __future__ import annotations

from decimal import Decimal

from conformance.checks import NA, NEVER_SENT_PREFIX, Context, check
from conformance.checks.answers import decimals, describe, is_decimal_string, must_be_rejected
from conformance.checks.money import balance_amount
from conformance.exchange import Exchange

SUCCESS = "0"
NEVER_RECEIVED = "US_0000002"
RECEIVED_NOT_APPLIED = "US_0000001"


def signed_effect(execute: Exchange) -> Decimal | None:
    """How an applied execute should move the balance (reference §4.1 inference): debit or credit."""
    body = execute.request.json
    if not isinstance(body, dict) or not is_decimal_string(body.get("amount")):
        return None
    amount = Decimal(body["amount"])
    if body.get("operationType") == "NORMAL_CLOSE":
        return amount
    if body.get("operationType") in ("OPEN_POSITION", "ABNORMAL_OVERTRADING"):
        return -abs(amount)
    return None


def _balances(*exchanges: Exchange | None) -> list[Decimal] | None:
    amounts = [balance_amount(e) for e in exchanges]
    return None if any(a is None for a in amounts) else amounts  # type: ignore[return-value]


def _moved(before: Decimal, after: Decimal) -> str:
    return f"balance went from {before} to {after}"


@check("EXE-007")
def unknown_account_execute_rejected(exchange: Exchange, ctx: Context):
    """An execute for an account the wallet does not hold is rejected."""
    if not ctx.is_reserved_unknown_account(exchange.request.json):
        return NA
    return must_be_rejected(exchange, "the account does not exist")


@check("CAN-001")
def never_received_answers_us0000002(exchange: Exchange, ctx: Context):
    """A cancel of a request number never sent answers US_0000002."""
    body = exchange.request.json
    if (
        exchange.request.method != "POST"
        or exchange.response is None
        or exchange.negative
        or not isinstance(body, dict)
        or not str(body.get("reverseRequestUniqueNo", "")).startswith(NEVER_SENT_PREFIX)
        or not ctx.is_profile_account(body)
    ):
        return NA
    if exchange.code == NEVER_RECEIVED:
        return None
    return f"cancel of a never-sent request number answered {describe(exchange)}; expected code {NEVER_RECEIVED}"


@check("CAN-001", kind="conversation")
def never_received_moves_no_money(*, before: Exchange, cancel: Exchange, after: Exchange, ctx: Context):
    """A cancel of a request number never sent moves no money."""
    amounts = _balances(before, after)
    if amounts is None:
        return NA
    return None if amounts[0] == amounts[1] else "cancel of a never-sent request: " + _moved(*amounts)


@check("EXE-002", kind="conversation")
def funded_execute_applied(*, before: Exchange, execute: Exchange, ctx: Context):
    """A valid execute for a profile account with enough balance is applied."""
    amounts, effect = _balances(before), signed_effect(execute)
    if amounts is None or effect is None or execute.response is None:
        return NA
    if amounts[0] + effect < 0:
        return NA  # not funded: EXE-006 judges it
    return None if execute.succeeded else f"a funded, valid execute was not applied: {describe(execute)}"


@check("EXE-005", kind="conversation")
def execute_moves_exact_amount(*, before: Exchange, execute: Exchange, after: Exchange, ctx: Context):
    """An applied execute moves the balance by exactly its amount."""
    amounts, effect = _balances(before, after), signed_effect(execute)
    if amounts is None or effect is None or not execute.succeeded:
        return NA
    expected = amounts[0] + effect
    return None if amounts[1] == expected else f"expected balance {expected}; " + _moved(*amounts)


@check("EXE-003", kind="conversation")
def replay_moves_no_money(*, after_first: Exchange, replay: Exchange, after_replay: Exchange, ctx: Context):
    """A replayed execute moves no money a second time."""
    amounts = _balances(after_first, after_replay)
    if amounts is None or replay.response is None:
        return NA
    return None if amounts[0] == amounts[1] else "replaying the execute moved money again: " + _moved(*amounts)


@check("EXE-004", kind="conversation")
def replay_answers_same_code(*, first: Exchange, replay: Exchange, ctx: Context):
    """A replayed execute answers with the same code as the first."""
    if first.envelope is None or replay.envelope is None:
        return NA
    return None if first.code == replay.code else f"first answer code {first.code!r}, replay {replay.code!r}"


@check("EXE-006", kind="conversation")
def overdraft_rejected(*, before: Exchange, execute: Exchange, after: Exchange, ctx: Context):
    """A debit beyond the available balance is rejected and moves no money."""
    amounts, effect = _balances(before, after), signed_effect(execute)
    if amounts is None or effect is None or amounts[0] + effect >= 0 or execute.response is None:
        return NA
    problems = []
    if not execute.rejected:
        problems.append(f"a debit of {-effect} against a balance of {amounts[0]} was {describe(execute)}")
    if amounts[0] != amounts[1]:
        problems.append(_moved(*amounts))
    return "; ".join(problems) or None


def _refused_execute_cancel(before: Exchange, execute: Exchange, cancel: Exchange, after: Exchange,
                            accepted: tuple[str, ...], what: str):
    """A cancel of an execute the wallet refused answers one of ``accepted`` and moves no money."""
    amounts = _balances(before, after)
    if amounts is None or not execute.rejected or cancel.response is None:
        return NA
    problems = []
    if cancel.code not in accepted:
        problems.append(f"cancel of {what} answered {describe(cancel)}; expected {' or '.join(accepted)}")
    if amounts[0] != amounts[1]:
        problems.append(_moved(*amounts))
    return "; ".join(problems) or None


@check("CAN-002", kind="conversation")
def rejected_execute_cancel_us0000001(
    *, before: Exchange, execute: Exchange, cancel: Exchange, after: Exchange, ctx: Context
):
    """A cancel of a received but rejected execute answers US_0000001 and moves no money."""
    return _refused_execute_cancel(before, execute, cancel, after, (RECEIVED_NOT_APPLIED,), "a rejected execute")


@check("CAN-003", kind="conversation")
def cancel_restores_balance(
    *, before_execute: Exchange, execute: Exchange, cancel: Exchange, after_cancel: Exchange, ctx: Context
):
    """A cancel of an applied execute answers success and restores the balance."""
    amounts = _balances(before_execute, after_cancel)
    if amounts is None or not execute.succeeded or cancel.response is None:
        return NA
    problems = []
    if not cancel.succeeded:
        problems.append(f"cancel of an applied execute answered {describe(cancel)}")
    if amounts[0] != amounts[1]:
        problems.append(f"balance before the execute {amounts[0]}, after the cancel {amounts[1]}")
    return "; ".join(problems) or None


@check("CAN-004", kind="conversation")
def cancel_replay_no_second_refund(
    *, after_cancel: Exchange, replay: Exchange, after_replay: Exchange, ctx: Context
):
    """A replayed cancel gives no money back a second time."""
    amounts = _balances(after_cancel, after_replay)
    if amounts is None or replay.response is None:
        return NA
    return None if amounts[0] == amounts[1] else "replaying the cancel moved money again: " + _moved(*amounts)


@check("CAN-005", kind="conversation")
def second_cancel_no_refund(
    *, before: Exchange, cancel: Exchange, after: Exchange, ctx: Context, first: Exchange | None = None
):
    """A second cancel of an execute already reversed gives no money back."""
    amounts = _balances(before, after)
    if amounts is None or cancel.response is None:
        return NA
    if first is not None and not first.succeeded:
        return NA  # the first cancel did not reverse it: this one is not a second reversal
    return None if amounts[0] == amounts[1] else "a second cancel moved money again: " + _moved(*amounts)


@check("CAN-006", kind="conversation")
def cancel_replay_same_code(*, first: Exchange, replay: Exchange, ctx: Context):
    """A replayed cancel answers with the same code as the first."""
    if first.envelope is None or replay.envelope is None:
        return NA
    return None if first.code == replay.code else f"first cancel code {first.code!r}, replay {replay.code!r}"


@check("CAN-007", kind="conversation")
def second_cancel_answers_success(*, first: Exchange, second: Exchange, ctx: Context):
    """A second cancel of an execute already reversed answers success."""
    if not first.succeeded or second.response is None:
        return NA
    return None if second.succeeded else f"a second cancel of a reversed execute answered {describe(second)}"


@check("HDR-004", kind="conversation")
def cancel_without_timestamp_processed(
    *, before: Exchange, execute: Exchange, cancel: Exchange, after: Exchange, ctx: Context
):
    """A cancel without the timestamp header is accepted and processed: success, and the money given back."""
    if cancel.request.has_header("timestamp") or not execute.succeeded or cancel.response is None:
        return NA
    problems = []
    if not cancel.succeeded:
        problems.append(f"a cancel without the (optional) timestamp header was answered {describe(cancel)}")
    amounts = _balances(before, after)
    if amounts is not None and amounts[0] != amounts[1]:
        problems.append(f"balance before the execute {amounts[0]}, after the timestamp-less cancel {amounts[1]}")
    return "; ".join(problems) or None


def _same_adjustment(execute: Exchange, cancel: Exchange) -> bool:
    """The cancel names the execute's account, amount and amountDigits (may they differ? open, §12.12)."""
    first, second = execute.request.json, cancel.request.json
    if not isinstance(first, dict) or not isinstance(second, dict):
        return False
    same_account = all(
        first.get(k) == second.get(k) for k in ("thirdServerCode", "userName", "currency", "amountDigits")
    )
    amounts = first.get("amount"), second.get("amount")
    return same_account and all(isinstance(a, str) for a in amounts) and amounts[0].lstrip("-") == amounts[1]


def _clean(exchange: Exchange) -> bool:
    """Answered, valid and plausible in every reading (:func:`~conformance.checks.schema.business_valid`),
    and the documented headers sent as documented (others judge the rest)."""
    from conformance.checks.schema import business_valid, documented_spellings

    return (
        exchange.response is not None
        and exchange.request.has_header("timestamp")
        and documented_spellings(exchange)
        and business_valid(exchange)
    )


def known_valid_execute(execute: Exchange, ctx: Context) -> bool:
    """An execute the suite knows to be valid in every reading of the docs, not only by the schema.

    Schema-clean; for a profile account whose decimals the suite read at preflight; ``amountDigits`` equal
    to them and the amount carrying exactly that many decimals; the sign right for its operation type.
    Only such an execute's refusal is a business refusal ("received, not applied"); anything else may have
    been refused as invalid, which a wallet may treat as never received (spec decision D13).
    """
    from conformance.checks.validation import sign_problem

    body = execute.request.json
    if execute.operation != "executeAdjustment" or not isinstance(body, dict) or not _clean(execute):
        return False
    digits = ctx.digits_of(body)
    amount = body.get("amount")
    return (
        digits is not None
        and body.get("amountDigits") == digits
        and is_decimal_string(amount)
        and decimals(amount) == digits
        and sign_problem("executeAdjustment", body) is None
    )


def received(execute: Exchange) -> bool:
    """The wallet answered the execute with its envelope: it received it, whatever it decided."""
    return execute.response is not None and execute.envelope is not None and execute.response.status < 500


@check("CAN-003", kind="conversation")
def first_cancel_of_applied_execute_succeeds(*, execute: Exchange, cancel: Exchange, ctx: Context):
    """The first cancel of an applied execute answers success (judged on every such pair, generated ones too)."""
    if not execute.succeeded or not _clean(cancel) or not _same_adjustment(execute, cancel):
        return NA
    return None if cancel.succeeded else f"the first cancel of an applied execute answered {describe(cancel)}"


@check("CAN-002", kind="conversation")
def cancel_of_refused_execute_answers_us0000001(*, execute: Exchange, cancel: Exchange, ctx: Context):
    """A cancel of a valid execute the wallet refused answers US_0000001 (judged on generated pairs too).

    Judged only when the execute is valid in every reading (:func:`known_valid_execute`) and the cancel is
    itself clean and names the same adjustment: a cancel refused on its own account (not one of the
    documented cancel codes) proves nothing about the execute.
    """
    if (
        not execute.rejected
        or not known_valid_execute(execute, ctx)
        or not _clean(cancel)
        or not _same_adjustment(execute, cancel)
        or cancel.envelope is None
    ):
        return NA
    if cancel.code == RECEIVED_NOT_APPLIED:
        return None
    if cancel.code not in (SUCCESS, NEVER_RECEIVED):
        return NA  # the cancel was refused on its own (CAN-008 and the cancel's own rules judge the rest)
    return f"cancel of a refused execute answered {describe(cancel)}; expected {RECEIVED_NOT_APPLIED}"


@check("CAN-002", kind="conversation")
def cancel_of_invalid_execute_settles_nothing(
    *, before: Exchange, execute: Exchange, cancel: Exchange, after: Exchange, ctx: Context
):
    """A cancel of an execute refused as invalid answers US_0000001 or US_0000002 (D13) and moves no money."""
    return _refused_execute_cancel(before, execute, cancel, after, (RECEIVED_NOT_APPLIED, NEVER_RECEIVED),
                                   "an execute refused as invalid (spec decision D13)")


@check("CAN-008", kind="conversation")
def received_execute_never_answered_never_received(*, execute: Exchange, cancel: Exchange, ctx: Context):
    """A cancel of a valid execute the wallet answered is never answered US_0000002 (never received)."""
    if not received(execute) or not known_valid_execute(execute, ctx) or cancel.envelope is None:
        return NA
    if cancel.code != NEVER_RECEIVED:
        return None
    return (
        f"the wallet answered the execute {execute.request.json.get('requestUniqueNo')!r} "
        f"({describe(execute)}), yet its cancel answered {NEVER_RECEIVED} (never received)"
    )
