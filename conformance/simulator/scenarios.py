"""The delivery scenarios: each plays one way the platform really delivers calls, and ends in a money check.

A scenario returns :class:`Story` objects: the recorded exchanges of one conversation, named the
way the check of its requirement (``conformance.checks.delivery``) takes them. The scenarios make
calls; they never judge. Every call goes through :class:`~conformance.simulator.platform.Platform`
(journaled, judged by the exchange checks, seen by the money ledger, bounded).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from conformance.checks import NEVER_SENT_PREFIX
from conformance.checks import delivery as checks
from conformance.checks.money import balance_amount, balance_data, digits_of
from conformance.delivery import CANCEL, EXECUTE
from conformance.exchange import Exchange
from conformance.profile import TestAccount
from conformance.simulator.platform import Platform

#: The opt-in long retry windows (seconds): replays after these delays (--long-retry-windows).
LONG_RETRY_WINDOWS = (30.0, 120.0)
#: Rounds of N concurrent duplicates (each on its own requestUniqueNo).
CONCURRENT_ROUNDS = 3
#: Executes per level of the load scenario: the level, and at least this many.
LOAD_MIN_EXECUTES = 4


class UnreadableBalance(AssertionError):
    """A profile account's balance cannot be read: no scenario on it can be judged."""


@dataclass
class Story:
    """One conversation of a scenario, ready for its check."""

    scenario: str
    check: Callable
    parts: dict[str, Any]
    concurrency: int = 1
    note: str = ""
    started: float = field(default_factory=time.monotonic)
    duration_s: float = 0.0

    @property
    def requirement(self) -> str:
        return self.check.check.requirement  # type: ignore[attr-defined]

    def exchanges(self) -> list[Exchange]:
        seen: dict[str, Exchange] = {}
        for value in self.parts.values():
            for exchange in checks._flatten(value):
                seen.setdefault(exchange.id, exchange)
        return sorted(seen.values(), key=lambda e: e.started_at)

    def record(self) -> dict[str, Any]:
        """The facts the report shows per scenario: requests, concurrency, latency, money before/after."""
        from conformance.simulator.report import percentiles

        exchanges = self.exchanges()
        money: dict[str, dict[str, str | None]] = {}
        for balance in (e for e in exchanges if e.operation == "getUserAmount"):
            body = balance.request.json or {}
            key = f"{body.get('thirdServerCode')}:{body.get('userName')}:{body.get('currency')}"
            money.setdefault(key, {"before": _shown(balance)})["after"] = _shown(balance)
        executes = [e.response.elapsed_ms for e in exchanges
                    if e.operation == EXECUTE and e.response is not None]
        return {
            "scenario": self.scenario,
            "requirement": self.requirement,
            "check": self.check.check.name,  # type: ignore[attr-defined]
            "note": self.note,
            "concurrency": self.concurrency,
            "requests": len(exchanges),
            "by_operation": {op: sum(e.operation == op for e in exchanges)
                             for op in ("getUserAmount", EXECUTE, CANCEL)},
            "unanswered": sum(e.response is None for e in exchanges),
            "execute_latency_ms": percentiles(executes),
            "money": money,
            "duration_s": round(self.duration_s, 3),
            "exchanges": [e.id for e in exchanges],
        }


def _shown(exchange: Exchange) -> str | None:
    value = balance_amount(exchange)
    return None if value is None else str(value)


class Desk:
    """Builds the platform's bodies for one account and reads its balance."""

    def __init__(self, platform: Platform, account: TestAccount, number: Callable[[str], str], origin: str,
                 digits: int):
        self.platform = platform
        self.account = account
        self.number = number
        self.origin = origin
        self.digits = digits

    def balance(self) -> Exchange:
        return self.platform.balance(self.account, self.origin)

    def current(self, exchange: Exchange) -> Decimal:
        value = balance_amount(exchange)
        if value is None:
            raise UnreadableBalance(f"the balance of {self.account} is unreadable: {exchange.code!r}")
        return value

    def amount(self, units: Decimal | str = "1") -> str:
        return f"{Decimal(units):.{self.digits}f}"

    def execute_body(self, units: Decimal | str = "1", operation_type: str = "OPEN_POSITION",
                     number: str | None = None, marker: str = "") -> dict:
        amount = self.amount(units)
        if operation_type == "ABNORMAL_OVERTRADING":
            amount = "-" + amount  # reference §4.1: negative for ABNORMAL_OVERTRADING
        return {
            "thirdServerCode": self.account.third_server_code,
            "userName": self.account.user_name,
            "currency": self.account.currency,
            "bizType": 1 if operation_type == "OPEN_POSITION" else 2,
            "operationType": operation_type,
            "amount": amount,
            "amountDigits": self.digits,
            "orderId": time.time_ns() // 1000 % 10**15,
            "requestUniqueNo": number or self.number("dlv-e"),
            "requestTime": int(time.time() * 1000),
            "ip": "203.0.113.7",
            "metadata": '{"source":"conformance-suite","delivery":"%s"}' % (marker or self.origin.split("/")[-1]),
        }

    def cancel_body(self, execute: dict, *, number: str | None = None, account: TestAccount | None = None,
                    amount: str | None = None) -> dict:
        named = account or self.account
        return {
            "thirdServerCode": named.third_server_code,
            "userName": named.user_name,
            "currency": named.currency,
            "bizType": execute["bizType"],
            "amount": amount or str(execute["amount"]).lstrip("-"),
            "amountDigits": execute["amountDigits"],
            "orderId": execute["orderId"],
            "requestUniqueNo": number or self.number("dlv-c"),
            "reverseRequestUniqueNo": execute["requestUniqueNo"],
            "requestTime": int(time.time() * 1000),
            "ip": "203.0.113.7",
            "cancelRemark": "platform timeout",
        }

    def execute(self, body: dict) -> Exchange:
        return self.platform.call(EXECUTE, body, self.origin)

    def cancel(self, body: dict) -> Exchange:
        return self.platform.call(CANCEL, body, self.origin)


@dataclass
class Simulation:
    """What every scenario needs: the platform, the profile's accounts, request numbers, the windows."""

    platform: Platform
    accounts: tuple[TestAccount, ...]
    number: Callable[[str], str]
    retry_window: float = 2.5
    long_windows: tuple[float, ...] = ()
    max_execute_amount: Decimal | None = None  # the run's exposure bound on one execute (None = none)
    _digits: dict[TestAccount, int] = field(default_factory=dict)

    def desk(self, scenario: str, account: TestAccount | None = None) -> Desk:
        account = account or self.accounts[0]
        origin = f"delivery/{scenario}"
        if account not in self._digits:
            exchange = self.platform.balance(account, origin)
            data = balance_data(exchange)
            digits = digits_of(data) if isinstance(data, dict) else None
            if not isinstance(digits, int) or isinstance(digits, bool) or digits < 0:
                raise UnreadableBalance(
                    f"cannot read the balance of profile account {account} (code {exchange.code!r}); see BAL-007")
            self._digits[account] = digits
        return Desk(self.platform, account, self.number, origin, self._digits[account])

    @property
    def concurrency(self) -> int:
        return self.platform.concurrency


def _timed(story: Story) -> Story:
    story.duration_s = time.monotonic() - story.started
    return story


# ---------------------------------------------------------------- DLV-001
def cut_off_execute(sim: Simulation) -> list[Story]:
    """The execute's answer never reaches the platform (lost, or later than the deadline); it cancels."""
    stories = []
    desk = sim.desk("cut-off-lost")
    story = Story("cut-off-lost", checks.cut_off_execute_leaves_no_trace, {}, note="answer lost after sending")
    before = desk.balance()
    body = desk.execute_body()
    lost = sim.platform.lose_answer(EXECUTE, body, desk.origin)
    settled = sim.platform.reverse(desk.cancel_body(body), desk.origin)
    story.parts = {"before": before, "lost_execute": lost, "cancels": settled.cancels, "after": desk.balance()}
    stories.append(_timed(story))

    desk = sim.desk("cut-off-late")
    story = Story("cut-off-late", checks.cut_off_execute_leaves_no_trace, {},
                  note="NORMAL_CLOSE: cut off at the deadline if the wallet answers late")
    before = desk.balance()
    body = desk.execute_body(operation_type="NORMAL_CLOSE", marker="cut-off-late")
    result = sim.platform.settle(body, desk.cancel_body(body), desk.origin)
    if result.placed:  # answered in time: not a cut-off; the platform (here) reverses it to leave no trace
        sim.platform.reverse(desk.cancel_body(body), desk.origin, placed=True)
        execute = result.execute
        story.note += " (answered in time: placed, the late rule was not exercised)"
    else:
        late = sim.platform.finish_late(sim.platform.client.profile.timeout)
        execute = late[0] if late else result.execute
    story.parts = {"before": before, "execute": execute, "cancels": result.cancels, "after": desk.balance()}
    stories.append(_timed(story))
    return stories


# ---------------------------------------------------------------- DLV-002
def lost_cancel_answer(sim: Simulation) -> list[Story]:
    """The cancel's answer is lost; the platform retries it with the same requestUniqueNo."""
    desk = sim.desk("lost-cancel-answer")
    story = Story("lost-cancel-answer", checks.lost_cancel_answer_retried_refunds_once, {})
    before = desk.balance()
    body = desk.execute_body()
    execute = desk.execute(body)
    cancel = desk.cancel_body(body)
    lost = sim.platform.lose_answer(CANCEL, cancel, desk.origin, wallet_done=False)
    retried = sim.platform.reverse(cancel, desk.origin, placed=execute.succeeded)
    story.parts = {"before": before, "execute": execute, "lost_cancel": lost, "retries": retried.cancels,
                   "after": desk.balance()}
    return [_timed(story)]


# ---------------------------------------------------------------- DLV-003
def spread_replays(sim: Simulation) -> list[Story]:
    """An execute and its cancel, then replays of both spread over the retry window (and the long ones)."""
    stories = []
    windows = [sim.retry_window, *sim.long_windows]
    for window in windows:
        name = f"replays-over-{window:g}s"
        desk = sim.desk(name)
        story = Story(name, checks.replays_spread_over_time_move_nothing, {},
                      note=f"replays at {window / 2:g} s and {window:g} s after the execute")
        body = desk.execute_body()
        cancel_body = desk.cancel_body(body)
        execute = desk.execute(body)
        cancel = desk.cancel(cancel_body)
        settled = desk.balance()
        replays, balances = [], []
        start = execute.started_at
        for at in (window / 2, window):
            time.sleep(max(0.0, start + at - time.time()))
            for send, replayed in ((desk.execute, body), (desk.cancel, cancel_body)):
                replays.append(send(replayed))
                balances.append(desk.balance())
        story.parts = {"execute": execute, "cancel": cancel, "settled": settled, "replays": replays,
                       "balances": balances}
        stories.append(_timed(story))
    return stories


# ---------------------------------------------------------------- DLV-004
def duplicate_deliveries(sim: Simulation) -> list[Story]:
    """Three sequential deliveries of one execute and of its cancel; then N concurrent ones of another, in
    CONCURRENT_ROUNDS rounds (a race shows on most rounds, not on every one: one round proves little)."""
    stories = []
    modes = ["sequential"] + ["concurrent"] * CONCURRENT_ROUNDS
    for round_, mode in enumerate(modes):
        name = f"duplicates-{mode}" + (f"-{round_}" if mode == "concurrent" else "")
        desk = sim.desk(name)
        copies = 3 if mode == "sequential" else max(2, sim.concurrency)
        story = Story(name, checks.duplicate_deliveries_move_once, {}, concurrency=1 if mode == "sequential"
                      else copies, note=f"{copies} deliveries of one execute, then of one cancel")
        body = desk.execute_body()
        cancel_body = desk.cancel_body(body)
        before = desk.balance()
        if mode == "sequential":
            executes = [desk.execute(body) for _ in range(copies)]
            after_executes = desk.balance()
            cancels = [desk.cancel(cancel_body) for _ in range(copies)]
        else:
            executes = sim.platform.in_parallel(desk.execute, [body] * copies)
            after_executes = desk.balance()
            cancels = sim.platform.in_parallel(desk.cancel, [cancel_body] * copies)
        story.parts = {"before": before, "executes": executes, "after_executes": after_executes,
                       "cancels": cancels, "after_cancels": desk.balance()}
        stories.append(_timed(story))
    return stories


# ---------------------------------------------------------------- DLV-005
def cancel_before_execute(sim: Simulation) -> list[Story]:
    """The cancel overtakes its execute: it arrives first (never received), then the execute arrives."""
    desk = sim.desk("cancel-before-execute")
    story = Story("cancel-before-execute", checks.late_execute_after_its_cancel_moves_nothing, {})
    body = desk.execute_body()
    before = desk.balance()
    cancel = desk.cancel(desk.cancel_body(body))
    execute = desk.execute(body)
    story.parts = {"before": before, "cancel": cancel, "execute": execute, "after": desk.balance()}
    return [_timed(story)]


# ---------------------------------------------------------------- DLV-006
def _orders(desk: Desk, count: int) -> list[tuple[dict, dict, bool]]:
    """count small debits (OPEN_POSITION, 1-3 units), every other one reversed by its cancel.

    Debits only: the operation types are DLV-008's; a wallet slow on one type (a credit's settlement
    path) must not fail the concurrency and load rules for that.
    """
    orders = []
    for index in range(count):
        body = desk.execute_body(units=str(1 + index % 3))
        orders.append((body, desk.cancel_body(body), index % 2 == 1))
    return orders


def _run_orders(sim: Simulation, desk: Desk, orders, limit: int) -> tuple[list[Exchange], list[Exchange]]:
    """Each order: its execute (waited for), then its cancel when it is to be reversed; ``limit`` at once."""

    def order(item: tuple[dict, dict, bool]) -> tuple[Exchange, Exchange | None]:
        body, cancel_body, reverse = item
        execute = desk.execute(body)
        return execute, desk.cancel(cancel_body) if reverse else None

    done = sim.platform.in_parallel(order, orders, limit=limit)
    return [e for e, _ in done], [c for _, c in done if c is not None]


def concurrent_orders(sim: Simulation) -> list[Story]:
    """N orders on one account, all in flight at once: executes, and the cancels of half of them."""
    desk = sim.desk("concurrent-orders")
    count = max(4, sim.concurrency)
    story = Story("concurrent-orders", checks.concurrent_orders_leave_exact_balance, {},
                  concurrency=sim.concurrency, note=f"{count} orders, half of them reversed, every answer awaited")
    before = desk.balance()
    executes, cancels = _run_orders(sim, desk, _orders(desk, count), sim.concurrency)
    story.parts = {"before": before, "executes": executes, "cancels": cancels, "after": desk.balance()}
    return [_timed(story)]


# ---------------------------------------------------------------- DLV-007
def mismatched_cancels(sim: Simulation) -> list[Story]:
    """A cancel naming twice the execute's amount; one naming another account (when the profile has two)."""
    stories = []
    variants: list[tuple[str, TestAccount | None]] = [("amount", None)]
    if len(sim.accounts) > 1:
        variants.append(("account", sim.accounts[1]))
    for what, other in variants:
        name = f"mismatched-{what}"
        desk = sim.desk(name)
        story = Story(name, checks.mismatched_cancel_refused_or_exact, {},
                      note=f"the cancel names another {what} than its execute")
        body = desk.execute_body()
        before = desk.balance()
        other_before = sim.platform.balance(other, desk.origin) if other else None
        execute = desk.execute(body)
        after_execute = desk.balance()
        if other is None:
            mismatched = desk.cancel_body(body, amount=desk.amount(Decimal(2)))
        else:
            mismatched = desk.cancel_body(body, account=other)
        cancel = desk.cancel(mismatched)
        after = desk.balance()
        parts = {"before": before, "execute": execute, "after_execute": after_execute, "cancel": cancel,
                 "after": after}
        if other is not None:
            parts |= {"other_before": other_before, "other_after": sim.platform.balance(other, desk.origin)}
        if not cancel.succeeded and execute.succeeded:  # refused: the platform's correct cancel settles it
            sim.platform.reverse(desk.cancel_body(body), desk.origin, placed=True)
        story.parts = parts
        stories.append(_timed(story))
    return stories


# ---------------------------------------------------------------- DLV-008
def every_operation_type(sim: Simulation) -> list[Story]:
    """Execute and cancel of each operation type, ABNORMAL_OVERTRADING included."""
    stories = []
    for kind in ("OPEN_POSITION", "NORMAL_CLOSE", "ABNORMAL_OVERTRADING"):
        name = f"operation-{kind.lower().replace('_', '-')}"
        desk = sim.desk(name)
        story = Story(name, checks.cancel_restores_what_execute_moved, {})
        body = desk.execute_body(operation_type=kind)
        before = desk.balance()
        execute = desk.execute(body)
        after_execute = desk.balance()
        cancel = desk.cancel(desk.cancel_body(body))
        story.parts = {"before": before, "execute": execute, "after_execute": after_execute, "cancel": cancel,
                       "after_cancel": desk.balance()}
        stories.append(_timed(story))
    return stories


# ---------------------------------------------------------------- DLV-009
def refused_adjustments(sim: Simulation) -> list[Story]:
    """An execute the balance cannot cover, then its cancel; a cancel of a number never sent.

    The over-balance debit is made on the profile account with the smallest positive balance, only when it
    stays within the run's exposure bound (--max-execute-amount); otherwise it is not sent, and says so.
    """
    desks = [sim.desk("refused-execute", account) for account in sim.accounts]
    balances = [(desk.current(desk.balance()), index) for index, desk in enumerate(desks)]
    # the smallest positive balance: a replay of this probe must find money to (wrongly) take again
    smallest, index = min([b for b in balances if b[0] > 0] or balances)
    desk = desks[index]
    too_much = abs(smallest) + Decimal(1).scaleb(-desk.digits)  # one minor unit more than there is
    story = Story("refused-execute", checks.refused_adjustments_move_nothing, {},
                  note=f"a debit of {desk.amount(too_much)} on {desk.account} (balance {smallest}), then its cancel")
    if sim.max_execute_amount is not None and too_much > sim.max_execute_amount:
        story.note = (f"not sent: a debit the smallest balance cannot cover ({desk.amount(too_much)} on "
                      f"{desk.account}) is above the run's --max-execute-amount {sim.max_execute_amount}")
        story.parts = {"before": desk.balance()}  # nothing refused, nothing said: not applicable
        stories = [_timed(story)]
    else:
        before = desk.balance()
        body = desk.execute_body(units=too_much)
        execute = desk.execute(body)
        after_execute = desk.balance()
        cancel = desk.cancel(desk.cancel_body(body))
        story.parts = {"before": before, "execute": execute, "after_execute": after_execute, "cancel": cancel,
                       "after_cancel": desk.balance()}
        stories = [_timed(story)]

    desk = sim.desk("never-received-cancel")
    story = Story("never-received-cancel", checks.refused_adjustments_move_nothing, {},
                  note="a cancel of a request number never sent")
    body = desk.execute_body(number=f"{NEVER_SENT_PREFIX}{sim.number('dlv')}"[:48])
    before = desk.balance()
    cancel = desk.cancel(desk.cancel_body(body))
    after = desk.balance()
    story.parts = {"before": before, "cancel": cancel, "after_cancel": after}
    stories.append(_timed(story))
    return stories


# ---------------------------------------------------------------- DLV-010
def load_levels(concurrency: int) -> list[int]:
    """The concurrency levels of the load scenario: 1, 4 and N (those not above N, each once)."""
    return sorted({level for level in (1, 4, concurrency) if level <= concurrency})


def deadline_under_load(sim: Simulation) -> list[Story]:
    """At concurrency 1, 4 and N: max(4, level) orders (execute, then its cancel), level in flight at once."""
    stories = []
    for level in load_levels(sim.concurrency):
        name = f"load-c{level}"
        desk = sim.desk(name)
        count = max(LOAD_MIN_EXECUTES, level)
        orders = [(b, c, True) for b, c, _ in _orders(desk, count)]
        before = desk.balance()
        started = time.monotonic()
        executes, cancels = _run_orders(sim, desk, orders, level)
        after = desk.balance()
        note = f"{count} executes, each then cancelled, {level} in flight"
        stories.append(Story(name, checks.executes_in_time_under_load, {"executes": executes},
                             concurrency=level, note=note, started=started))
        stories.append(Story(f"{name}-money", checks.concurrent_orders_leave_exact_balance,
                             {"before": before, "executes": executes, "cancels": cancels, "after": after},
                             concurrency=level, note=note, started=started))
        for story in stories[-2:]:
            _timed(story)
    return stories


#: Every scenario, in run order (the load comes last: it should not slow the others' clock).
SCENARIOS: dict[str, Callable[[Simulation], list[Story]]] = {
    "cut-off-execute": cut_off_execute,
    "lost-cancel-answer": lost_cancel_answer,
    "spread-replays": spread_replays,
    "duplicate-deliveries": duplicate_deliveries,
    "cancel-before-execute": cancel_before_execute,
    "concurrent-orders": concurrent_orders,
    "mismatched-cancels": mismatched_cancels,
    "every-operation-type": every_operation_type,
    "refused-adjustments": refused_adjustments,
    "deadline-under-load": deadline_under_load,
}


def stories_of(sim: Simulation, names: Sequence[str] | None = None) -> list[Story]:
    return [story for name in (names or SCENARIOS) for story in SCENARIOS[name](sim)]


#: The requirements each scenario judges (its stories' checks name them).
REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "cut-off-execute": ("DLV-001",),
    "lost-cancel-answer": ("DLV-002",),
    "spread-replays": ("DLV-003",),
    "duplicate-deliveries": ("DLV-004",),
    "cancel-before-execute": ("DLV-005",),
    "concurrent-orders": ("DLV-006",),
    "mismatched-cancels": ("DLV-007",),
    "every-operation-type": ("DLV-008",),
    "refused-adjustments": ("DLV-009",),
    "deadline-under-load": ("DLV-010", "DLV-006"),
}
