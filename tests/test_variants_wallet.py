"""The conforming variants of the reference wallet (conformance/reference/variants.py).

* the catalogue: every variant names a spec decision, is used by the wallet's code,
  and contradicting combinations are refused;
* for every variant, a probe that sees the variant's wire behaviour on the wallet
  running it and not on the default wallet (so no variant is a no-op and the
  default does not drift into a variant);
* variants combine: a wallet running many at once shows each of them.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from conftest_reference import (
    BALANCE_PATH,
    EXECUTE_PATH,
    USD,
    WalletClient,
    execute_body,
    fresh,
    headers,
    join_background_stops,
    running,
)

from conformance.reference import VARIANTS, Variant, WalletConfig
from conformance.reference import cli as reference_cli
from conformance.reference.envelope import NUMERIC_CODES
from conformance.reference.variants import EXCLUSIVE

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def _stop_wallets():
    yield
    join_background_stops()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# ---------------------------------------------------------------- the catalogue


def test_catalogue_shape_and_decisions():
    spec = yaml.safe_load((ROOT / "spec" / "webhook.openapi.yaml").read_text())
    decisions = {d["id"] for d in spec["info"]["x-decisions"]}
    from conformance.contract import load

    requirements = load().requirements
    assert len(VARIANTS) >= 25
    for name, variant in VARIANTS.items():
        assert isinstance(variant, Variant) and variant.name == name
        documented = variant.decision.startswith("documented:")
        if documented:
            assert variant.decision.removeprefix("documented:") in requirements, name
        else:
            assert variant.decision in decisions, (name, variant.decision)
        assert len(variant.description) > 20, name


def test_every_variant_is_implemented_in_the_code_path():
    package = ROOT / "conformance" / "reference"
    source = "\n".join(
        path.read_text() for path in package.glob("*.py") if path.name not in ("variants.py", "__init__.py")
    )
    for name in VARIANTS:
        assert f'"{name}"' in source, f"variant {name} is not used by the wallet"


def test_unknown_and_contradicting_variants_are_refused():
    with pytest.raises(ValueError, match="unknown variant"):
        WalletConfig(variants=frozenset({"no-such-variant"}))
    for group in EXCLUSIVE:
        first, second, *_ = sorted(group)
        with pytest.raises(ValueError, match="contradict"):
            WalletConfig(variants=frozenset({first, second}))
    assert WalletConfig(variants={"snake-keys"}).keys == "snake"
    assert WalletConfig(variants=["strict-ip", "bounded-ids"]).variants == {"strict-ip", "bounded-ids"}


def test_cli_lists_variants_and_refuses_bad_ones(capsys):
    assert reference_cli.main(["--list-variants"]) == 0
    listed = capsys.readouterr().out
    for variant in VARIANTS.values():
        assert variant.name in listed and variant.decision in listed
    assert reference_cli.main(["--port", "0", "--variant", "no-such-variant"]) == 2
    assert "unknown variant 'no-such-variant'" in capsys.readouterr().err
    code = reference_cli.main(
        ["--port", "0", "--variant", "overtrading-overdraws", "--variant", "overtrading-ignored-success"]
    )
    assert code == 2 and "contradict" in capsys.readouterr().err


# ---------------------------------------------------------------- probes: True when the variant is seen

Probe = Callable[[WalletClient], bool]
PROBES: dict[str, Probe] = {}


def probe(name: str):
    def register(function: Probe) -> Probe:
        PROBES[name] = function
        return function

    return register


def _is(reply, name: str) -> bool:
    """The failure ``name``, spelled by name or by its numeric code (variant numeric-error-codes)."""
    return reply.ok is False and reply.code in (name, NUMERIC_CODES.get(name))


def _camel(data: dict) -> dict:
    """Balance data with camelCase keys whatever the wallet's key style."""
    return {{"user_name": "userName", "amount_digits": "amountDigits"}.get(k, k): v for k, v in data.items()}


def _data_balance(wallet: WalletClient, account=USD) -> Decimal:
    reply = wallet.balance(account)
    data = reply.json["data"]
    return Decimal(data["amount"])


@probe("errors-http-400")
def _error_statuses(wallet):
    statuses = (
        wallet.post(EXECUTE_PATH, raw=b"{").status,
        wallet.post(EXECUTE_PATH, execute_body("1.00"), content_type="text/plain").status,
        wallet.balance(("W-0", "0", "USD")).status,
        wallet.execute("999999.00").status,
        wallet.cancel(fresh("E")).status,
    )
    envelopes = wallet.execute("999999.00").json
    return statuses == (400, 415, 404, 409, 409) and envelopes["ok"] is False


@probe("numeric-error-codes")
def _numeric_codes(wallet):
    codes = (wallet.execute("999999.00").code, wallet.balance(("W-0", "0", "USD")).code)
    return codes == ("2003", "2001") and wallet.cancel(fresh("E")).code == "US_0000002"


@probe("error-data-empty")
def _error_data_empty(wallet):
    body = wallet.execute("999999.00").json
    return body["ok"] is False and body["data"] == {}


@probe("error-data-absent")
def _error_data_absent(wallet):
    failed, succeeded = wallet.execute("999999.00").json, wallet.balance().json
    return "data" not in failed and isinstance(succeeded["data"], dict)


@probe("minimal-envelope")
def _minimal(wallet):
    reply = wallet.balance()
    return set(reply.json) == {"code", "msg", "trace", "data", "ok", "fail"} and (
        reply.json["trace"] == reply.sent_trace
    )


@probe("execute-data-balance")
def _execute_balance(wallet):
    number = fresh("E")
    executed = wallet.execute("1.00", number=number).json["data"]
    after_execute = wallet.amount()
    cancelled = wallet.cancel(number, "1.00").json["data"]
    return executed == {"balance": str(after_execute), "currency": "USD"} and (
        cancelled == {"balance": str(wallet.amount()), "currency": "USD"}
    )


@probe("spring-content-type")
def _spring(wallet):
    return wallet.balance().headers["content-type"] == "application/json;charset=UTF-8"


@probe("gzip-responses")
def _gzip(wallet):
    reply = wallet.balance()  # requests sends Accept-Encoding: gzip and decodes the body
    plain = wallet.session.post(
        wallet.base_url + BALANCE_PATH,
        data=json.dumps({"thirdServerCode": USD[0], "userName": USD[1], "currency": USD[2]}),
        headers={**headers(), "Content-Type": "application/json", "Accept-Encoding": "identity"},
        timeout=10,
    )
    return (
        reply.headers.get("content-encoding") == "gzip"
        and reply.json["code"] == "0"
        and "content-encoding" not in plain.headers
    )


@probe("chunked-responses")
def _chunked(wallet):
    reply = wallet.balance()
    return reply.headers.get("transfer-encoding") == "chunked" and "content-length" not in reply.headers


@probe("connection-close")
def _connection_close(wallet):
    return wallet.balance().headers.get("connection", "").lower() == "close"


@probe("slow-but-in-time")
def _slow_in_time(wallet):
    started = time.monotonic()
    reply = wallet.execute("1.00")
    elapsed = time.monotonic() - started
    return reply.code == "0" and 1.4 <= elapsed < 3.0


@probe("snake-keys")
def _snake(wallet):
    return set(wallet.balance().json["data"]) == {"user_name", "currency", "amount", "amount_digits"}


@probe("auto-open-accounts")
def _auto_open(wallet):
    reply = wallet.balance(("W-1001", "86000001", "GBP"))
    if reply.code != "0":
        return False
    data = reply.json["data"]
    execute = wallet.execute("1.00", account=("W-1001", "86000001", "GBP"))
    stranger = wallet.balance(("W-0", "0", "GBP"))
    not_iso = [wallet.balance(("W-1001", "86000001", code)) for code in ("usd", "XYZ")]  # CUR-002: ISO only
    return (
        _camel(data) == {"userName": "86000001", "currency": "GBP", "amount": "0.00", "amountDigits": 2}
        and _is(execute, "INSUFFICIENT_FUNDS")
        and _is(stranger, "ACCOUNT_NOT_FOUND")
        and all(_is(reply, "ACCOUNT_NOT_FOUND") for reply in not_iso)
    )


@probe("lenient-scalar-coercion")
def _lenient_coercion(wallet):
    number = fresh("E")
    lossless = wallet.execute("1.00", number=number, amountDigits="2", bizType=1.0).code == "0"
    lossy_refused = wallet.execute("1.00", amountDigits=2.5).json.get("ok") is False
    return lossless and lossy_refused


@probe("null-optional-accepted")
def _null_optional(wallet):
    number = fresh("E")
    executed = wallet.execute("1.00", number=number, metadata=None)
    cancelled = wallet.cancel(number, "1.00", orderId=None)
    return executed.code == "0" and cancelled.code == "0"


@probe("fresh-timestamps-only")
def _fresh_only(wallet):
    now = _now_ms()
    stale = str(now - 10 * 60 * 1000)
    fresh_ok = wallet.execute("1.00", hdrs=headers(timestamp=str(now)), requestTime=now).code == "0"
    stale_header = wallet.balance(hdrs=headers(timestamp=stale))
    stale_body = wallet.execute("1.00", hdrs=headers(timestamp=str(now)), requestTime=int(stale))
    return fresh_ok and _is(stale_header, "INVALID_HEADER") and _is(stale_body, "INVALID_PARAMETER")


@probe("company-pinned")
def _company(wallet):
    return wallet.balance().code == "0" and _is(wallet.balance(hdrs=headers(companyId="440")), "INVALID_HEADER")


@probe("strict-unknown-fields")
def _unknown_fields(wallet):
    return _is(wallet.execute("1.00", extraField="x"), "INVALID_PARAMETER")


@probe("strict-ip")
def _strict_ip(wallet):
    good = wallet.execute("1.00", ip="2001:db8::1").code == "0"
    return good and _is(wallet.execute("1.00", ip="not-an-ip"), "INVALID_PARAMETER")


@probe("metadata-must-be-json")
def _metadata_json(wallet):
    return _is(wallet.execute("1.00", metadata="symbol=EURUSD"), "INVALID_PARAMETER")


@probe("bounded-ids")
def _bounded_ids(wallet):
    number = fresh("E")
    wallet.execute("1.00", number=number)
    long_reverse = wallet.cancel("R" * 65, "1.00")
    long_third = wallet.balance(("W" * 65, "86000001", "USD"))
    return _is(long_reverse, "INVALID_PARAMETER") and _is(long_third, "INVALID_PARAMETER")


@probe("invalid-execute-not-remembered")
def _invalid_forgotten(wallet):
    invalid, valid_refused = fresh("E"), fresh("E")
    wallet.execute("1.00", number=invalid, bizType=99)
    wallet.execute("999999.00", number=valid_refused)
    return wallet.cancel(invalid, "1.00").code == "US_0000002" and (
        wallet.cancel(valid_refused, "999999.00").code == "US_0000001"
    )


def _overtrading(wallet: WalletClient, amount: str = "-5.00") -> tuple[str, Decimal, str, Decimal, Decimal]:
    """(execute code, moved by execute, cancel code, moved by cancel, balance before)."""
    before, number = wallet.amount(), fresh("E")
    code = wallet.execute(amount, "ABNORMAL_OVERTRADING", number=number).code
    middle = wallet.amount()
    cancel = wallet.cancel(number, amount.lstrip("-")).code
    return code, middle - before, cancel, wallet.amount() - middle, before


@probe("overtrading-ignored-success")
def _overtrading_ignored_success(wallet):
    return _overtrading(wallet)[:4] == ("0", 0, "0", 0)


@probe("overtrading-ignored-refused")
def _overtrading_ignored_refused(wallet):
    code, moved, cancel, back, _ = _overtrading(wallet)
    return code not in ("0", None) and (moved, cancel, back) == (0, "US_0000001", 0)


@probe("overtrading-overdraws")
def _overtrading_overdraws(wallet):
    balance = wallet.amount()
    code, moved, cancel, back, _ = _overtrading(wallet, f"-{balance + 10:.2f}")
    return code == "0" and moved == -(balance + 10) and cancel == "0" and back == balance + 10


@probe("mismatched-cancel-refused")
def _mismatch_refused(wallet):
    before, number = wallet.amount(), fresh("E")
    wallet.execute("4.00", number=number)
    mismatched = wallet.cancel(number, "9.00")
    refused = mismatched.code not in ("0", "US_0000001", "US_0000002") and wallet.amount() == before - 4
    matching = wallet.cancel(number, "4.00").code == "0" and wallet.amount() == before
    return refused and matching


@probe("second-cancel-refused")
def _second_cancel(wallet):
    before, number = wallet.amount(), fresh("E")
    wallet.execute("3.00", number=number)
    wallet.cancel(number, "3.00")
    second = wallet.cancel(number, "3.00")
    return second.code not in ("0", None) and second.ok is False and wallet.amount() == before


def test_every_variant_has_a_probe():
    assert set(PROBES) == set(VARIANTS)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_changes_the_wire(name: str):
    check = PROBES[name]
    with running(background_stop=True) as default:
        assert not check(default), f"the default wallet already behaves like variant {name}"
    with running(WalletConfig(variants=frozenset({name})), background_stop=True) as variant:
        assert check(variant), f"variant {name} does not show on the wire"


# A wallet makes many choices at once: every variant but the slow one and one of each exclusive group.
COMBINED = frozenset(VARIANTS) - {"slow-but-in-time", "overtrading-ignored-success", "overtrading-overdraws",
                                  "error-data-absent"}


@pytest.mark.parametrize("name", sorted(COMBINED))
def test_variants_combine(name: str, combined_wallet: WalletClient):
    if name in ("fresh-timestamps-only",):
        pytest.skip("the other probes send the helpers' fixed 2025 timestamps")
    assert PROBES[name](combined_wallet), f"variant {name} does not show when combined"


@pytest.fixture(scope="module")
def combined_wallet():
    with running(WalletConfig(variants=COMBINED - {"fresh-timestamps-only"})) as wallet:
        yield wallet


def test_connection_close_closes():
    with running(WalletConfig(variants=frozenset({"connection-close"}))) as wallet:
        host, port = wallet.base_url.split("//")[1].split("/")[0].split(":")
        body = json.dumps({"thirdServerCode": USD[0], "userName": USD[1], "currency": USD[2]}).encode()
        hdrs = "".join(f"{k}: {v}\r\n" for k, v in headers().items())
        request = (
            f"POST /api/cats-gateway{BALANCE_PATH} HTTP/1.1\r\nHost: x\r\n{hdrs}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(request)
            received = b""
            while chunk := sock.recv(65536):  # the wallet closes: recv returns b"" instead of blocking
                received += chunk
        assert b"connection: close" in received.lower() and b'"code":"0"' in received


def test_variant_paths_keep_money_exact():
    """A wallet running the money variants at once still moves exactly what it answers."""
    config = WalletConfig(variants=frozenset({"mismatched-cancel-refused", "overtrading-overdraws",
                                              "second-cancel-refused", "execute-data-balance"}))
    with running(config) as wallet:
        before = wallet.amount()
        numbers = [fresh("E") for _ in range(3)]
        for number in numbers:
            assert wallet.execute("2.00", number=number).code == "0"
        assert _is(wallet.cancel(numbers[0], "3.00"), "CANCEL_MISMATCH")
        for number in numbers:
            assert wallet.cancel(number, "2.00").code == "0"
        assert wallet.amount() == before
        assert _data_balance(wallet) == before
