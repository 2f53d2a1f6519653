"""The platform's delivery rules (DLV-001..010): cut-off, retried cancels, replays, races, load.

Every check judges one scenario of the delivery simulator (``conformance.simulator``) from its
recorded exchanges, passed by keyword, single exchanges or sequences of them. The money check is
always the same: the balance must equal the start plus exactly the adjustments the platform
considers placed (:func:`conformance.delivery.classify_execute`: answered "0" in time, or, where a
scenario waits for every answer, answered "0") and not reversed by a cancel answered "0". Where the
docs leave a choice open (spec decisions D14 ABNORMAL_OVERTRADING applied or ignored, D15 a
mismatched cancel refused or honoured, D13/D14 the answer to the cancel of an ignored execute), every
legal reading passes.

:func:`judge` runs one check and returns a typed :class:`~conformance.checks.Outcome`: UNANSWERED
when a call the check needs got no answer (parts named ``lost_*`` were dropped on purpose and never
count), otherwise passed / violated / not_applicable from the check's result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from itertools import product
from typing import Any

from conformance import delivery
from conformance.checks import NA, Context, Outcome, Status, check, judgement
from conformance.checks.answers import describe
from conformance.checks.conversation import signed_effect
from conformance.checks.money import balance_amount
from conformance.exchange import Exchange

Part = Exchange | Sequence[Exchange] | None


def _flatten(value: Part) -> list[Exchange]:
    if value is None:
        return []
    if isinstance(value, Exchange):
        return [value]
    return [e for e in value if e is not None]


def judge(func: Callable, ctx: Context, **parts: Part) -> Outcome:
    """Run one delivery check on a scenario's parts (NOT_APPLICABLE when the rule does not apply)."""
    item = func.check  # type: ignore[attr-defined]
    if item.kind != "conversation":
        raise ValueError(f"{item.name} is not a conversation check")
    ids = tuple(dict.fromkeys(e.id for value in parts.values() for e in _flatten(value)))
    silent = [
        e for name, value in parts.items() if not name.startswith("lost_") for e in _flatten(value)
        if e.response is None
    ]
    if silent:
        first = silent[0]
        return Outcome(item.requirement, item.name, Status.UNANSWERED,
                       f"could not be judged: {first.operation} got no answer ({first.error})", ids)
    result = func(ctx=ctx, **parts)
    return Outcome(item.requirement, item.name, judgement(result), None if result is NA else result, ids)


# ------------------------------------------------------------------ money
def legal_effects(execute: Exchange) -> set[Decimal] | None:
    """What an applied execute may legally move: its signed amount; ABNORMAL_OVERTRADING also nothing (D14)."""
    effect = signed_effect(execute)
    if effect is None:
        return None
    body = execute.request.json
    if isinstance(body, dict) and body.get("operationType") == "ABNORMAL_OVERTRADING":
        return {effect, Decimal(0)}
    return {effect}


def placed(execute: Exchange, *, deadline: bool = True) -> bool:
    """The platform considers the execute's money moved: answered "0" (within the deadline, if it applies)."""
    if deadline:
        event, _ = delivery.classify_execute(execute, delivery.execute_deadline_s())
        return event is delivery.Event.EXECUTE_PLACED
    return execute.succeeded


def reversed_by(cancels: Iterable[Exchange]) -> bool:
    """A cancel of the order answered "0": the platform considers it reversed."""
    return any(delivery.definitive_cancel_code(c) == delivery.REVERSED for c in cancels)


def expected_balances(
    before: Decimal, orders: Iterable[tuple[Exchange, Sequence[Exchange]]], *, deadline: bool = True
) -> set[Decimal] | None:
    """Every balance a correct wallet may show: start plus the placed, unreversed orders' legal effects."""
    choices: list[set[Decimal]] = []
    for execute, cancels in orders:
        if not placed(execute, deadline=deadline) or reversed_by(cancels):
            continue
        effects = legal_effects(execute)
        if effects is None:
            return None
        choices.append(effects)
    return {before + sum(combo, Decimal(0)) for combo in product(*choices)}


def _shown(values: set[Decimal]) -> str:
    return " or ".join(str(v) for v in sorted(values))


def _money(before: Exchange, after: Exchange, orders, *, deadline: bool = True, what: str) -> str | None:
    start, end = balance_amount(before), balance_amount(after)
    if start is None or end is None:
        return NA
    expected = expected_balances(start, orders, deadline=deadline)
    if expected is None:
        return NA
    if end in expected:
        return None
    return f"{what}: balance went from {start} to {end}; the platform's view allows {_shown(expected)}"


def _definitive(cancels: Sequence[Exchange]) -> str | None:
    return next((code for c in cancels if (code := delivery.definitive_cancel_code(c)) is not None), None)


# ------------------------------------------------------------------ DLV-001
@check("DLV-001", kind="conversation")
def cut_off_execute_leaves_no_trace(
    *, before: Exchange, after: Exchange, cancels: Sequence[Exchange], ctx: Context,
    execute: Exchange | None = None, lost_execute: Exchange | None = None,
):
    """An execute cut off at the deadline (late or unanswered) and cancelled leaves the account untouched."""
    subject = execute if execute is not None else lost_execute
    if subject is None or (subject.response is not None and placed(subject)):
        return NA  # answered "0" in time: placed, not cut off
    if _definitive(cancels) is None:
        return NA  # the cancel never got a definitive answer: DLV-002 / ROB judge that
    start, end = balance_amount(before), balance_amount(after)
    if start is None or end is None:
        return NA
    if start == end:
        return None
    why = delivery.classify_execute(subject, delivery.execute_deadline_s())[1]
    return (f"the execute was cut off ({why}) and cancelled (answered {_definitive(cancels)}), yet the "
            f"balance went from {start} to {end}")


# ------------------------------------------------------------------ DLV-002
@check("DLV-002", kind="conversation")
def lost_cancel_answer_retried_refunds_once(
    *, before: Exchange, execute: Exchange, lost_cancel: Exchange, retries: Sequence[Exchange], after: Exchange,
    ctx: Context,
):
    """A cancel whose answer was lost, retried with the same requestUniqueNo, refunds once, definitively."""
    if not execute.succeeded:
        return NA  # nothing was applied to give back
    if not retries:
        return NA
    numbers = {(c.request.json or {}).get("requestUniqueNo") for c in (lost_cancel, *retries)}
    if len(numbers) != 1:
        return NA  # not a retry of the same cancel: a suite defect, never the wallet's
    code = _definitive(retries)
    if code is None:
        last = retries[-1]
        return f"{len(retries)} retries of the cancel got no definitive answer; the last: {describe(last)}"
    return _money(before, after, [(execute, [*retries])], deadline=False,
                  what=f"the retried cancel answered {code}")


# ------------------------------------------------------------------ DLV-003
@check("DLV-003", kind="conversation")
def replays_spread_over_time_move_nothing(
    *, execute: Exchange, cancel: Exchange, settled: Exchange, replays: Sequence[Exchange],
    balances: Sequence[Exchange], ctx: Context,
):
    """Replays of an execute and its cancel, spread over the retry window, move no money.

    ``balances[i]`` is the balance read right after ``replays[i]``: a replayed execute applied again and a
    replayed cancel refunding again would cancel out over a pair, so each replay is judged on its own.
    """
    if not execute.succeeded or not cancel.succeeded or not replays or len(balances) != len(replays):
        return NA  # the conversation to replay did not happen (EXE-002 / CAN-003 judge why)
    start = balance_amount(settled)
    if start is None:
        return NA
    problems = []
    for replay, balance in zip(replays, balances, strict=True):
        end = balance_amount(balance)
        if end is not None and end != start:
            after_s = replay.started_at - execute.started_at
            what = "execute" if replay.operation == delivery.EXECUTE else "cancel"
            problems.append(f"the {what} replayed {after_s:.1f} s after the execute (answered {replay.code!r}) "
                            f"left the balance at {end}, not {start}")
            break  # later replays start from a moved balance: the first one that moved money is the finding
    return "; ".join(problems) or None


# ------------------------------------------------------------------ DLV-004
@check("DLV-004", kind="conversation")
def duplicate_deliveries_move_once(
    *, before: Exchange, executes: Sequence[Exchange], after_executes: Exchange, cancels: Sequence[Exchange],
    after_cancels: Exchange, ctx: Context,
):
    """Duplicates of one execute (then of one cancel), sequential or concurrent, move money once."""
    if not executes:
        return NA
    applied = [e for e in executes if e.succeeded]
    execute = applied[0] if applied else executes[0]
    moved = _money(before, after_executes, [(execute, [])], deadline=False,
                   what=f"{len(executes)} deliveries of one execute ({len(applied)} answered \"0\")")
    refund = _money(before, after_cancels, [(execute, cancels)], deadline=False,
                    what=f"then {len(cancels)} deliveries of its cancel (codes {[c.code for c in cancels]})")
    if moved is NA or refund is NA:
        return NA
    return "; ".join(p for p in (moved, refund) if p) or None


# ------------------------------------------------------------------ DLV-005
@check("DLV-005", kind="conversation")
def late_execute_after_its_cancel_moves_nothing(
    *, before: Exchange, cancel: Exchange, execute: Exchange, after: Exchange, ctx: Context
):
    """An execute arriving after its cancel (answered US_0000002) moves no money."""
    if cancel.code != delivery.NEVER_RECEIVED:
        return NA  # CAN-001 judges the answer to a cancel of a number not received yet
    start, end = balance_amount(before), balance_amount(after)
    if start is None or end is None:
        return NA
    if start == end:
        return None
    return (f"the execute arrived after its cancel (answered {delivery.NEVER_RECEIVED}) and was "
            f"{describe(execute)}: balance went from {start} to {end}")


# ------------------------------------------------------------------ DLV-006
@check("DLV-006", kind="conversation")
def concurrent_orders_leave_exact_balance(
    *, before: Exchange, executes: Sequence[Exchange], cancels: Sequence[Exchange], after: Exchange, ctx: Context
):
    """Executes and cancels in flight at once on one account leave the balance exact."""
    by_number: dict[Any, list[Exchange]] = {}
    for cancel in cancels:
        body = cancel.request.json
        if isinstance(body, dict):
            by_number.setdefault(body.get("reverseRequestUniqueNo"), []).append(cancel)
    orders = [(e, by_number.get((e.request.json or {}).get("requestUniqueNo"), [])) for e in executes]
    return _money(before, after, orders, deadline=False,
                  what=f"{len(executes)} executes and {len(cancels)} cancels in flight at once")


# ------------------------------------------------------------------ DLV-007
@check("DLV-007", kind="conversation")
def mismatched_cancel_refused_or_exact(
    *, before: Exchange, execute: Exchange, after_execute: Exchange, cancel: Exchange, after: Exchange,
    ctx: Context, other_before: Exchange | None = None, other_after: Exchange | None = None,
):
    """A cancel naming another amount or account is refused with nothing moved, or refunds exactly the execute."""
    if not execute.succeeded:
        return NA
    start, applied, end = (balance_amount(x) for x in (before, after_execute, after))
    if start is None or applied is None or end is None:
        return NA
    problems = []
    if cancel.succeeded:
        if end != start:
            problems.append(f"the mismatched cancel was honoured but the execute's account went from {applied} to "
                            f"{end}; giving back exactly the execute's amount leaves {start}")
    elif end != applied:
        problems.append(f"the mismatched cancel was refused ({describe(cancel)}) yet the execute's account went "
                        f"from {applied} to {end}")
    if other_before is not None and other_after is not None:
        other = balance_amount(other_before), balance_amount(other_after)
        if None not in other and other[0] != other[1]:
            problems.append(f"the account the cancel named (not the execute's) went from {other[0]} to {other[1]}")
    return "; ".join(problems) or None


# ------------------------------------------------------------------ DLV-008
@check("DLV-008", kind="conversation")
def cancel_restores_what_execute_moved(
    *, before: Exchange, execute: Exchange, after_execute: Exchange, cancel: Exchange, after_cancel: Exchange,
    ctx: Context,
):
    """For every operation type the cancel restores exactly what the execute moved (nothing if nothing)."""
    code = delivery.definitive_cancel_code(cancel)
    if code is None:
        return NA  # no definitive answer: the platform would retry; CAN-003 judges a refused reversal
    start, applied, end = (balance_amount(x) for x in (before, after_execute, after_cancel))
    if start is None or applied is None or end is None:
        return NA
    if end == start:
        return None
    kind = (execute.request.json or {}).get("operationType")
    return (f"{kind}: the execute moved {applied - start}, its cancel (answered {code}) moved {end - applied}; "
            f"the balance ends at {end}, not {start}")


# ------------------------------------------------------------------ DLV-009
@check("DLV-009", kind="conversation")
def refused_adjustments_move_nothing(
    *, before: Exchange, ctx: Context, execute: Exchange | None = None, after_execute: Exchange | None = None,
    cancel: Exchange | None = None, after_cancel: Exchange | None = None,
):
    """An execute answered with a failure moves nothing; a cancel answered US_0000001/US_0000002 neither."""
    refused = execute is not None and execute.rejected
    said_nothing = cancel is not None and cancel.code in (delivery.RECEIVED_NOT_APPLIED, delivery.NEVER_RECEIVED)
    if not refused and not said_nothing:
        return NA  # the execute was applied and its cancel reversed it: CAN-003 judges that
    start = balance_amount(before)
    middle = balance_amount(after_execute) if execute is not None else start
    if start is None or middle is None:
        return NA
    problems = []
    if refused and middle != start:
        problems.append(f"the execute was refused ({describe(execute)}) yet the balance went from {start} to {middle}")
    end = balance_amount(after_cancel) if said_nothing else None
    if end is not None and end != middle:
        problems.append(f"the cancel answered {cancel.code} yet the balance went from {middle} to {end}")  # type: ignore[union-attr]
    return "; ".join(problems) or None


# ------------------------------------------------------------------ DLV-010
@check("DLV-010", kind="conversation")
def executes_in_time_under_load(*, executes: Sequence[Exchange], ctx: Context):
    """Under the configured concurrency every execute is answered, to the last byte, within the deadline."""
    if not executes:
        return NA
    deadline_ms = delivery.execute_deadline_s() * 1000
    late = [e for e in executes if e.response is not None and e.response.elapsed_ms > deadline_ms]
    if not late:
        return None
    worst = max(e.response.elapsed_ms for e in late)  # type: ignore[union-attr]
    return (f"{len(late)} of {len(executes)} executes answered after the {deadline_ms:g} ms deadline "
            f"(slowest {worst:.0f} ms)")
