"""Balances, execute, cancel, idempotence, concurrency and persistence of the reference wallet."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from conftest_reference import (
    EUR,
    HKD,
    JPY,
    USD,
    USDT,
    WalletClient,
    assert_accepted,
    assert_rejected,
    fresh,
    headers,
    join_background_stops,
    running,
)

from conformance.reference import DEFAULT_ACCOUNTS, Account, WalletConfig
from conformance.reference.store import Ledger


@pytest.fixture(scope="module", autouse=True)
def _stop_wallets():
    yield
    join_background_stops()


@pytest.fixture
def wallet():
    """A fresh wallet per test: the tests below assert exact balances."""
    with running(background_stop=True) as client:
        yield client


OPENING = {
    USD: ("100000.00", 2),
    HKD: ("500000.0000", 4),
    USDT: ("50000.000000", 6),
    JPY: ("10000000", 0),
    EUR: ("2500.00", 2),
}


# ---------------------------------------------------------------- balance


@pytest.mark.parametrize("keys", ["camel", "snake"])
def test_balance_data_in_both_key_styles(keys: str):
    with running(WalletConfig(keys=keys), background_stop=True) as wallet:
        for account, (amount, digits) in OPENING.items():
            data = assert_accepted(wallet.balance(account))["data"]
            if keys == "camel":
                assert data == {
                    "userName": account[1],
                    "currency": account[2],
                    "amount": amount,
                    "amountDigits": digits,
                }
            else:
                assert data == {
                    "user_name": account[1],
                    "currency": account[2],
                    "amount": amount,
                    "amount_digits": digits,
                }
            assert type(data["amount"]) is str


def test_configured_accounts_replace_the_defaults():
    config = WalletConfig(accounts=("A:u1:GBP:12.5", Account("B", "u2", "CHF", "-3.000")))
    with running(config, background_stop=True) as wallet:
        assert assert_accepted(wallet.balance(("A", "u1", "GBP")))["data"]["amount"] == "12.5"
        assert assert_accepted(wallet.balance(("B", "u2", "CHF")))["data"]["amount"] == "-3.000"
        assert_rejected(wallet.balance(USD), "ACCOUNT_NOT_FOUND")


# ---------------------------------------------------------------- execute


@pytest.mark.parametrize(
    ("account", "operation_type", "amount", "after"),
    [
        (USD, "OPEN_POSITION", "25.50", "99974.50"),
        (USD, "NORMAL_CLOSE", "0.01", "100000.01"),
        (USD, "ABNORMAL_OVERTRADING", "-100.25", "99899.75"),
        (HKD, "OPEN_POSITION", "0.0001", "499999.9999"),
        (USDT, "NORMAL_CLOSE", "1.000001", "50001.000001"),
        (JPY, "OPEN_POSITION", "9999999", "1"),
        (EUR, "OPEN_POSITION", "2500.00", "0.00"),
    ],
)
def test_execute_moves_exact_amounts(wallet: WalletClient, account, operation_type, amount, after):
    assert_accepted(wallet.execute(amount, operation_type, account))
    assert wallet.balance(account).json["data"]["amount"] == after


@pytest.mark.parametrize("operation_type", ["OPEN_POSITION", "ABNORMAL_OVERTRADING"])
def test_debit_beyond_balance_rejected(wallet: WalletClient, operation_type: str):
    amount = "2500.01" if operation_type == "OPEN_POSITION" else "-2500.01"
    assert_rejected(wallet.execute(amount, operation_type, EUR), "INSUFFICIENT_FUNDS")
    assert wallet.amount(EUR) == Decimal("2500.00")


def test_replayed_execute_moves_money_once(wallet: WalletClient):
    number = fresh("E")
    first = assert_accepted(wallet.execute("10.00", number=number))
    for _ in range(3):
        again = assert_accepted(wallet.execute("10.00", number=number))
        assert (again["code"], again["msg"]) == (first["code"], first["msg"])
    assert wallet.amount() == Decimal("99990.00")


def test_replay_with_a_different_payload_answers_the_first_and_moves_nothing(wallet: WalletClient):
    number = fresh("E")
    assert_accepted(wallet.execute("10.00", number=number))
    assert_accepted(wallet.execute("500.00", "NORMAL_CLOSE", number=number))
    assert_accepted(wallet.execute("1.0000", account=HKD, number=number))
    assert wallet.amount() == Decimal("99990.00")
    assert wallet.amount(HKD) == Decimal("500000")


def test_replayed_rejection_keeps_its_code(wallet: WalletClient):
    number = fresh("E")
    assert_rejected(wallet.execute("3000.00", account=EUR, number=number), "INSUFFICIENT_FUNDS")
    assert_accepted(wallet.execute("1000.00", "NORMAL_CLOSE", EUR))
    assert_rejected(wallet.execute("3000.00", account=EUR, number=number), "INSUFFICIENT_FUNDS")
    assert wallet.amount(EUR) == Decimal("3500.00")


def test_execute_rejected_for_its_headers_is_remembered(wallet: WalletClient):
    number = fresh("E")
    assert_rejected(wallet.execute("1.00", number=number, hdrs=headers(timestamp=None)), "INVALID_HEADER")
    assert_rejected(wallet.execute("1.00", number=number), "INVALID_HEADER")  # replay answers the first
    assert_rejected(wallet.cancel(number, "1.00"), "US_0000001")
    assert wallet.amount() == Decimal("100000.00")


def test_invalid_request_is_rejected_even_when_its_number_was_applied(wallet: WalletClient):
    number = fresh("E")
    assert_accepted(wallet.execute("1.00", number=number))
    assert_rejected(wallet.execute("1.00", number=number, hdrs=headers(trace=None)), "INVALID_HEADER")
    assert_accepted(wallet.execute("1.00", number=number))
    assert wallet.amount() == Decimal("99999.00")


# ---------------------------------------------------------------- cancel


def test_cancel_of_never_received_answers_us0000002(wallet: WalletClient):
    number = fresh("C")
    assert_rejected(wallet.cancel(fresh("E"), number=number), "US_0000002")
    assert_rejected(wallet.cancel(fresh("E"), number=number), "US_0000002")  # replay
    assert wallet.amount() == Decimal("100000.00")


@pytest.mark.parametrize(
    "reject",
    ["insufficient funds", "unknown account", "bad header", "bad parameter", "wrong digits"],
)
def test_cancel_of_received_but_rejected_answers_us0000001(wallet: WalletClient, reject: str):
    number = fresh("E")
    if reject == "insufficient funds":
        reply = wallet.execute("999999.00", number=number)
    elif reject == "unknown account":
        reply = wallet.execute("1.00", account=("W-1001", "nobody", "USD"), number=number)
    elif reject == "bad header":
        reply = wallet.execute("1.00", number=number, hdrs=headers(companyId="x"))
    elif reject == "bad parameter":
        reply = wallet.execute("1.00", number=number, bizType=7)
    else:
        reply = wallet.execute("1.000", number=number)
    assert_rejected(reply)
    assert_rejected(wallet.cancel(number, "1.00"), "US_0000001")
    assert wallet.amount() == Decimal("100000.00")


def test_unreadable_request_unique_no_is_not_remembered(wallet: WalletClient):
    number = "E" * 49
    assert_rejected(wallet.execute("1.00", number=number), "INVALID_PARAMETER")
    assert_rejected(wallet.cancel(number, "1.00"), "US_0000002")


@pytest.mark.parametrize(
    ("operation_type", "amount", "account"),
    [
        ("OPEN_POSITION", "40.00", USD),
        ("NORMAL_CLOSE", "40.00", USD),
        ("ABNORMAL_OVERTRADING", "-40.00", USD),
        ("OPEN_POSITION", "12", JPY),
    ],
)
def test_cancel_reverses_exactly_once(wallet: WalletClient, operation_type, amount, account):
    opening = wallet.amount(account)
    number = fresh("E")
    assert_accepted(wallet.execute(amount, operation_type, account, number=number))
    assert wallet.amount(account) != opening
    cancel = fresh("C")
    positive = amount.lstrip("-")
    assert_accepted(wallet.cancel(number, positive, account, number=cancel))
    assert wallet.amount(account) == opening
    assert_accepted(wallet.cancel(number, positive, account, number=cancel))  # replay
    assert wallet.amount(account) == opening
    assert_accepted(wallet.cancel(number, positive, account))  # second cancel, new number
    assert wallet.amount(account) == opening
    assert_accepted(wallet.execute(amount, operation_type, account, number=number))  # execute replay
    assert wallet.amount(account) == opening


def test_cancel_refunds_the_executes_account(wallet: WalletClient):
    number = fresh("E")
    assert_accepted(wallet.execute("10.00", number=number))
    assert_accepted(wallet.cancel(number, "10.00", EUR))  # names another account
    assert wallet.amount() == Decimal("100000.00")
    assert wallet.amount(EUR) == Decimal("2500.00")


def test_cancel_of_a_credit_may_take_the_balance_negative(wallet: WalletClient):
    credit = fresh("E")
    assert_accepted(wallet.execute("100.00", "NORMAL_CLOSE", EUR, number=credit))
    assert_accepted(wallet.execute("2600.00", "OPEN_POSITION", EUR))
    assert_accepted(wallet.cancel(credit, "100.00", EUR))
    assert wallet.balance(EUR).json["data"]["amount"] == "-100.00"
    assert_rejected(wallet.execute("0.01", account=EUR), "INSUFFICIENT_FUNDS")


def test_late_execute_after_its_cancel_is_rejected(wallet: WalletClient):
    number, cancel = fresh("E"), fresh("C")
    assert_rejected(wallet.cancel(number, "5.00", number=cancel), "US_0000002")
    assert_rejected(wallet.execute("5.00", number=number), "ALREADY_CANCELLED")
    assert wallet.amount() == Decimal("100000.00")
    assert_rejected(wallet.cancel(number, "5.00", number=cancel), "US_0000002")  # replay: the first answer
    assert_rejected(wallet.cancel(number, "5.00"), "US_0000001")  # a new cancel: received, not applied


def test_execute_and_cancel_numbers_are_separate_namespaces(wallet: WalletClient):
    shared = fresh("X")
    assert_accepted(wallet.execute("1.00", number=shared))
    assert_accepted(wallet.cancel(shared, "1.00", number=shared))
    assert wallet.amount() == Decimal("100000.00")


# ---------------------------------------------------------------- concurrency


def _in_threads(count: int, work) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_concurrent_adjustments_lose_no_update(wallet: WalletClient):
    threads, per_thread = 8, 30  # 240 adjustments on one account
    plan = [
        [("OPEN_POSITION", "1.23") if (t + i) % 3 else ("NORMAL_CLOSE", "0.50") for i in range(per_thread)]
        for t in range(threads)
    ]
    expected = Decimal("100000.00")
    for moves in plan:
        for operation_type, amount in moves:
            expected += Decimal(amount) if operation_type == "NORMAL_CLOSE" else -Decimal(amount)

    def work(index: int) -> None:
        client = WalletClient(wallet.base_url)
        for operation_type, amount in plan[index]:
            assert client.execute(amount, operation_type).code == "0"
        client.close()

    _in_threads(threads, work)
    assert wallet.amount() == expected


def test_concurrent_replays_and_cancels_move_money_once(wallet: WalletClient):
    number = fresh("E")

    def replay(_: int) -> None:
        client = WalletClient(wallet.base_url)
        for _ in range(5):
            assert client.execute("7.00", number=number).code == "0"
        client.close()

    _in_threads(10, replay)
    assert wallet.amount() == Decimal("99993.00")

    def cancel(_: int) -> None:
        client = WalletClient(wallet.base_url)
        for _ in range(5):
            assert client.cancel(number, "7.00").code == "0"
        client.close()

    _in_threads(10, cancel)
    assert wallet.amount() == Decimal("100000.00")


# ---------------------------------------------------------------- persistence


def test_state_survives_a_restart_with_a_db_file(tmp_path):
    config = WalletConfig(db=tmp_path / "ledger.sqlite3")
    applied, rejected = fresh("E"), fresh("E")
    with running(config) as wallet:
        assert_accepted(wallet.execute("100.00", number=applied))
        assert_rejected(wallet.execute("3000.00", account=EUR, number=rejected), "INSUFFICIENT_FUNDS")
    with running(config) as wallet:
        assert wallet.amount() == Decimal("99900.00")
        assert_accepted(wallet.execute("100.00", number=applied))  # replay after restart
        assert wallet.amount() == Decimal("99900.00")
        assert_rejected(wallet.cancel(rejected, "3000.00", EUR), "US_0000001")
        assert_accepted(wallet.cancel(applied, "100.00"))
    with running(config) as wallet:
        assert wallet.amount() == Decimal("100000.00")


def test_in_memory_state_starts_fresh():
    for _ in range(2):
        with running(background_stop=True) as wallet:
            assert wallet.amount() == Decimal("100000.00")
            assert_accepted(wallet.execute("1.00"))


def test_db_file_that_disagrees_with_the_accounts_is_refused(tmp_path):
    db = tmp_path / "ledger.sqlite3"
    Ledger(DEFAULT_ACCOUNTS, db).close()
    with pytest.raises(ValueError, match="decimals"):
        Ledger([Account("W-1001", "86000001", "USD", "100000.000")], db)


def test_ledger_balances_are_minor_units():
    ledger = Ledger(DEFAULT_ACCOUNTS)
    try:
        assert ledger.balances()[USD] == 10_000_000
        assert ledger.balances()[JPY] == 10_000_000
        assert ledger.balances()[USDT] == 50_000_000_000
    finally:
        ledger.close()
