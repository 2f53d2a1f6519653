"""Execute and cancel as the platform uses them (reference §2.5, §2.6, §4, §5).

Each test is one conversation on one profile account: balance before, the
calls, balance after. Every execute the suite makes is settled: the tests
cancel what they applied, and the money ledger compensates anything left over.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from conformance.checks import NEVER_SENT_PREFIX, conversation, judge_conversation
from conformance.suite.plugin import Blocked, expect, expect_all, judged, require_answer
from conformance.suite.teller import format_amount, lettered_currency_account, unknown_account

pytestmark = pytest.mark.usefixtures("money")


def _judge(journal, ctx, check, **exchanges):
    return judged(journal, judge_conversation(check, ctx, **exchanges))


@pytest.mark.requirement(
    "EXE-002", "EXE-005", "EXE-003", "EXE-004", "CAN-003", "CAN-004", "CAN-006", "CAN-005", "CAN-007", "EXE-001"
)
@pytest.mark.parametrize("operation_type", ["OPEN_POSITION", "NORMAL_CLOSE"])
def test_execute_replay_cancel_replay_second_cancel(operation_type, teller, journal, ctx, account):
    before = teller.balance(account)
    require_answer(before)
    execute_body = teller.execute_body(account, teller.amount(account), operation_type=operation_type)
    execute = teller.execute(execute_body)
    after = teller.balance(account)
    replay = teller.execute(execute_body)
    after_replay = teller.balance(account)
    cancel_body = teller.cancel_body(execute_body)
    cancel = teller.cancel(cancel_body)
    after_cancel = teller.balance(account)
    cancel_replay = teller.cancel(cancel_body)
    after_cancel_replay = teller.balance(account)
    second_cancel = teller.cancel(teller.cancel_body(execute_body))
    after_second_cancel = teller.balance(account)
    require_answer(execute, after, cancel, after_cancel)

    outcomes = {
        "EXE-002": _judge(journal, ctx, conversation.funded_execute_applied, before=before, execute=execute),
        "EXE-005": lambda: _judge(
            journal, ctx, conversation.execute_moves_exact_amount, before=before, execute=execute, after=after
        ),
        "EXE-003": lambda: _judge(
            journal,
            ctx,
            conversation.replay_moves_no_money,
            after_first=after,
            replay=replay,
            after_replay=after_replay,
        ),
        "EXE-004": lambda: _judge(journal, ctx, conversation.replay_answers_same_code, first=execute, replay=replay),
        "CAN-003": lambda: _judge(
            journal,
            ctx,
            conversation.cancel_restores_balance,
            before_execute=before,
            execute=execute,
            cancel=cancel,
            after_cancel=after_cancel,
        ),
        "CAN-004": lambda: _judge(
            journal,
            ctx,
            conversation.cancel_replay_no_second_refund,
            after_cancel=after_cancel,
            replay=cancel_replay,
            after_replay=after_cancel_replay,
        ),
        "CAN-006": lambda: _judge(journal, ctx, conversation.cancel_replay_same_code,
                                  first=cancel, replay=cancel_replay),
        "CAN-005": lambda: _judge(
            journal,
            ctx,
            conversation.second_cancel_no_refund,
            first=cancel,
            before=after_cancel_replay,
            cancel=second_cancel,
            after=after_second_cancel,
        ),
        "CAN-007": lambda: _judge(journal, ctx, conversation.second_cancel_answers_success,
                                  first=cancel, second=second_cancel),
    }
    expect_all(journal, {**outcomes, "EXE-001": (execute, replay)}, gate="EXE-002")


@pytest.mark.requirement("HDR-004", "EXE-002", "CAN-003")
def test_cancel_without_timestamp_is_processed(teller, journal, ctx, account):
    """A timestamp-less cancel is processed like one with it: a control pair with the header comes first, so a
    wallet whose cancels never give money back fails CAN-003 there, and HDR-004 is blocked, not blamed."""
    control_before = teller.balance(account)
    control_body = teller.execute_body(account, teller.amount(account))
    control_execute = teller.execute(control_body)
    control_cancel = teller.cancel(teller.cancel_body(control_body))
    control_after = teller.balance(account)
    before = teller.balance(account)
    execute_body = teller.execute_body(account, teller.amount(account))
    execute = teller.execute(execute_body)
    cancel = teller.cancel(teller.cancel_body(execute_body), timestamp=False)
    after = teller.balance(account)
    require_answer(control_before, control_execute, control_cancel, control_after, before, execute, cancel, after)
    # the execute must have been applied, and a cancel with the header must work, for this one to mean anything
    applied = _judge(journal, ctx, conversation.funded_execute_applied, before=before, execute=execute)
    control = _judge(journal, ctx, conversation.cancel_restores_balance, before_execute=control_before,
                     execute=control_execute, cancel=control_cancel, after_cancel=control_after)
    def timestamp_less():
        return _judge(journal, ctx, conversation.cancel_without_timestamp_processed,
                      before=before, execute=execute, cancel=cancel, after=after)

    expect_all(journal, {"EXE-002": applied, "CAN-003": control, "HDR-004": timestamp_less},
               gate=("EXE-002", "CAN-003"))


@pytest.mark.requirement("CAN-001")
def test_cancel_of_never_received_request(teller, journal, ctx, account, state):
    before = teller.balance(account)
    execute_body = teller.execute_body(account, teller.amount(account))
    never_sent = f"{NEVER_SENT_PREFIX}{state.request_number('n')}"[:48]
    cancel = teller.cancel(teller.cancel_body(execute_body, reverse=never_sent))
    after = teller.balance(account)
    require_answer(before, cancel, after)
    expect(journal, "CAN-001", cancel)
    expect(
        journal,
        "CAN-001",
        _judge(journal, ctx, conversation.never_received_moves_no_money, before=before, cancel=cancel, after=after),
    )


@pytest.mark.requirement("CAN-002", "EXE-006", "CAN-008")
def test_cancel_of_rejected_execute(teller, journal, ctx, accounts):
    """The smallest overdraft (one unit more than the balance) on the account that holds least, so the
    probe fits the run's money bound (--max-execute-amount) wherever an account holds little."""
    balances = {account: teller.balance(account) for account in accounts}
    require_answer(*balances.values())
    account = min(accounts, key=lambda a: teller.current_balance(balances[a]))
    before = balances[account]
    balance = teller.current_balance(before)
    digits = teller.digits(account)
    too_much = format_amount(max(balance, Decimal(0)) + Decimal(1).scaleb(-digits), digits)
    execute_body = teller.execute_body(account, too_much)  # a debit the balance cannot cover
    execute = teller.execute(execute_body)
    after_execute = teller.balance(account)
    cancel = teller.cancel(teller.cancel_body(execute_body))
    after = teller.balance(account)
    require_answer(execute, after_execute, cancel, after)
    expect(
        journal,
        "EXE-006",
        _judge(journal, ctx, conversation.overdraft_rejected, before=before, execute=execute, after=after_execute),
    )
    if execute.succeeded:
        raise Blocked("EXE-006", "the over-balance debit was applied, so CAN-002 cannot be judged on it")
    expect_all(journal, {
        "CAN-002": _judge(journal, ctx, conversation.rejected_execute_cancel_us0000001,
                          before=before, execute=execute, cancel=cancel, after=after),
        "CAN-008": _judge(journal, ctx, conversation.received_execute_never_answered_never_received,
                          execute=execute, cancel=cancel),
    })


@pytest.mark.requirement("CAN-002")
def test_cancel_of_invalid_execute(teller, journal, ctx, account):
    """An execute refused as invalid (wrong sign): its cancel answers US_0000001, or US_0000002 where the
    wallet keeps no record of invalid requests (spec decision D13); either way no money moves."""
    before = teller.balance(account)
    execute_body = teller.execute_body(account, "-" + teller.amount(account))
    execute = teller.execute(execute_body, negative=True)
    cancel = teller.cancel(teller.cancel_body(execute_body))
    after = teller.balance(account)
    require_answer(before, execute, cancel, after)
    if execute.succeeded:
        raise Blocked("VAL-006", "the wrong-sign execute was applied, so CAN-002 cannot be judged on it")
    expect(
        journal,
        "CAN-002",
        _judge(
            journal,
            ctx,
            conversation.cancel_of_invalid_execute_settles_nothing,
            before=before,
            execute=execute,
            cancel=cancel,
            after=after,
        ),
    )


@pytest.mark.requirement("EXE-007")
def test_execute_for_unknown_account_is_rejected(teller, journal, account):
    body = teller.execute_body(unknown_account(account), teller.amount(account))
    expect(journal, "EXE-007", teller.execute(body))


@pytest.mark.requirement("EXE-001")
def test_execute_latency(teller, journal, account):
    """Ten small executes, each reversed at once; every one must answer within 3 s."""
    executes = []
    for _ in range(10):
        body = teller.execute_body(account, teller.amount(account))
        executes.append(teller.execute(body))
        teller.cancel(teller.cancel_body(body))
    expect(journal, "EXE-001", *executes)


@pytest.mark.requirement("CUR-003")
def test_lower_case_currency_moves_no_money(teller, journal, accounts):
    """An execute in `usd` must not debit the `USD` account: the money path matches codes exactly too."""
    account = lettered_currency_account(accounts)
    body = {**teller.execute_body(account, teller.amount(account)), "currency": account.currency.lower()}
    execute = teller.execute(body)  # if applied, the money ledger cancels it before the run ends
    require_answer(execute)
    expect(journal, "CUR-003", execute)
