"""``python -m conformance.reference.cli`` and the configuration API."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest_reference import USD, WalletClient, assert_accepted, headers

from conformance.reference import DEFAULT_ACCOUNTS, FAULTS, Account, WalletConfig
from conformance.reference.cli import add_arguments, run

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "conformance.reference.cli"]


def cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def start(*args: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    line = process.stdout.readline().strip()
    assert line.startswith("listening on http://127.0.0.1:"), (line, process.stderr.read())
    return process, line.removeprefix("listening on ")


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    process.send_signal(sig)
    try:
        return process.wait(timeout=15)
    finally:
        process.stdout.close()
        process.stderr.close()


# ---------------------------------------------------------------- subprocess


def test_list_faults():
    result = cli("--list-faults")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(FAULTS)
    for line, fault in zip(lines, FAULTS.values(), strict=True):
        name, requirement, level, description = line.split(None, 3)
        assert (name, requirement, level, description) == (
            fault.name,
            fault.requirement,
            fault.level,
            fault.description,
        )


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "0", "--account", "W-1:user:USD"],
        ["--port", "0", "--account", "W-1:user:USD:12,5"],
        ["--port", "0", "--account", "W-1::USD:1.00"],
        ["--port", "0", "--account", "W-1:u:USD:1.00", "--account", "W-1:u:USD:2.00"],
        ["--port", "0", "--fault", "no-such-fault"],
        ["--port", "0", "--prefix", "api"],
        ["--port", "70000"],
        [],
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str]):
    result = cli(*args)
    assert result.returncode == 2, result
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("conformance reference: error: ")


def test_port_in_use_exits_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = cli("--port", str(taken.getsockname()[1]))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "cannot listen" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_until_signalled(sig: int):
    process, url = start(
        "--port", "0", "--keys", "snake", "--prefix", "/wallet/v1", "--account", "T-1:u-1:GBP:10.000"
    )
    try:
        assert url.endswith("/wallet/v1")
        reply = requests.post(
            url + "/get-user-amount",
            json={"thirdServerCode": "T-1", "userName": "u-1", "currency": "GBP"},
            headers=headers(),
            timeout=5,
        )
        assert reply.json()["data"] == {
            "user_name": "u-1",
            "currency": "GBP",
            "amount": "10.000",
            "amount_digits": 3,
        }
    finally:
        code = stop(process, sig)
    assert code == 0


def test_fault_and_db_options(tmp_path):
    db = str(tmp_path / "wallet.db")
    process, url = start("--port", "0", "--db", db, "--fault", "close-debits")
    try:
        client = WalletClient(url)
        assert_accepted(client.execute("1.00", "NORMAL_CLOSE"))
        assert str(client.amount(USD)) == "99999.00"
        client.close()
    finally:
        assert stop(process) == 0
    process, url = start("--port", "0", "--db", db)
    try:
        assert str(WalletClient(url).amount(USD)) == "99999.00"
    finally:
        assert stop(process) == 0


def test_run_with_an_argparse_parser(capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args(["--list-faults"])) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(FAULTS)
    assert run(parser.parse_args(["--port", "0", "--account", "bad"])) == 2
    assert "bad" in capsys.readouterr().err


# ---------------------------------------------------------------- configuration API


def test_account_parse():
    account = Account.parse("W-1001:86000001:USD:100000.00")
    assert account == Account("W-1001", "86000001", "USD", "100000.00")
    assert account.digits == 2
    assert Account.parse("W-1004:86000004:JPY:10000000").digits == 0
    assert Account.parse("A:B:USDT:-0.000001").opening_minor == -1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("W-1:u:USD", "four fields"),
        ("W-1:u:USD:1.00:x", "four fields"),
        (":u:USD:1.00", "thirdServerCode is empty"),
        ("W-1:u::1.00", "currency is empty"),
        ("W-1:u:USD:1e3", "plain decimal"),
        ("W-1:u:USD:1,000.00", "plain decimal"),
        ("W-1:u:USD:", "plain decimal"),
        ("W-1:" + "u" * 49 + ":USD:1.00", "48"),
        ("W-1:u:" + "C" * 17 + ":1.00", "16"),
        ("W-1:u:USD:" + "9" * 30, "range"),
    ],
)
def test_account_parse_errors(text: str, message: str):
    with pytest.raises(ValueError, match=message):
        Account.parse(text)


def test_wallet_config_defaults_and_errors():
    config = WalletConfig()
    assert config.accounts == DEFAULT_ACCOUNTS
    assert (config.keys, config.prefix, config.db, config.fault) == ("camel", "/api/cats-gateway", None, None)
    assert [a.spec() for a in DEFAULT_ACCOUNTS] == [
        "W-1001:86000001:USD:100000.00",
        "W-1002:86000002:HKD:500000.0000",
        "W-1003:86000003:USDT:50000.000000",
        "W-1004:86000004:JPY:10000000",
        "W-1005:86000001:EUR:2500.00",
    ]
    assert WalletConfig(prefix="/x/").prefix == "/x"
    assert WalletConfig(prefix="").prefix == ""
    for bad in (
        {"keys": "kebab"},
        {"prefix": "x"},
        {"fault": "nope"},
        {"accounts": ()},
        {"accounts": ("A:u:USD:1", "A:u:USD:2")},
    ):
        with pytest.raises(ValueError):
            WalletConfig(**bad)
    with pytest.raises(AttributeError):
        config.keys = "snake"  # frozen
