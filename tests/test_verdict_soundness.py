"""What we saw go wrong off the happy path (issue 8), one test each: no false failures, no quiet passes.

Each test reproduces one observed defect; each was run against the code before its fix and failed there.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from conformance import contract, schemathesis_hooks, verdicts
from conformance.checks import Context, Outcome, Status, conversation, judge_conversation
from conformance.checks.money import answers_for_the_account_it_names
from conformance.checks.robustness import execute_within_deadline
from conformance.checks.validation import schema_invalid_request_rejected
from conformance.exchange import Exchange, Request, Response
from conformance.reference import DEFAULT_ACCOUNTS, WalletConfig, serve
from tests.test_checks import CANCEL, EXECUTE, HEADERS, PATHS, REJECTED, envelope, ex
from tests.test_cli_errors import http_server

CLI = [sys.executable, "-m", "conformance.cli"]
USD = ("W-1", "86000001", "USD")
CTX = Context(accounts=(USD,), account_digits=((USD, 2),))


# 1 ---------------------------------------------------------------------------------------------------------
def _run(numbers=()):
    return schemathesis_hooks.GeneratedRun(journal=None, company_id=439, numbers=set(numbers), number_prefix="cf-r1")


def test_a_negative_execute_without_operation_type_gets_a_fresh_number():
    """A negative execute (operationType missing) reused an example's number: an idempotent wallet answered
    the first answer, and the suite called that acceptance. Its kind now comes from the path."""
    run = _run()
    body = {k: v for k, v in EXECUTE.items() if k != "operationType"}
    schemathesis_hooks._unique_number(run, body, PATHS["executeAdjustment"])
    assert body["requestUniqueNo"] != "E-1" and body["requestUniqueNo"].startswith("cf-r1")
    assert len(body["requestUniqueNo"]) <= contract.load().operations["executeAdjustment"].max_lengths[
        "requestUniqueNo"]


def test_numbers_are_run_scoped_and_shared_by_executes_and_cancels():
    """The spec's example numbers recur in every run (a replay for a wallet that outlives a run), and a cancel
    could reuse an execute's number (one namespace in many wallets): every number is this run's and unused."""
    run = _run()
    execute = dict(EXECUTE, requestUniqueNo="cf-r1-abc")
    schemathesis_hooks._unique_number(run, execute, PATHS["executeAdjustment"])
    assert execute["requestUniqueNo"] == "cf-r1-abc"  # this run's and unused: kept (a stateful step made it)
    cancel = dict(CANCEL, requestUniqueNo="cf-r1-abc")
    schemathesis_hooks._unique_number(run, cancel, PATHS["cancelAdjustment"])
    assert cancel["requestUniqueNo"] != "cf-r1-abc"
    example = dict(EXECUTE, requestUniqueNo="EXE-20261125-000001")
    schemathesis_hooks._unique_number(run, example, PATHS["executeAdjustment"])
    assert example["requestUniqueNo"].startswith("cf-r1")


def test_positive_generated_bodies_are_plausible_business_probes():
    body = dict(CANCEL, ip="", metadata="not json", extra=[1], orderId=None)  # orderId is optional on cancel
    schemathesis_hooks._plausible(body, PATHS["cancelAdjustment"])
    assert "extra" not in body and "orderId" not in body
    assert body["ip"] == "203.0.113.7"
    json.loads(body["metadata"])


# 2 ---------------------------------------------------------------------------------------------------------
def test_null_in_an_optional_field_is_never_judged_a_schema_violation():
    accepted_null = ex("executeAdjustment", metadata=None)
    assert schema_invalid_request_rejected(accepted_null, CTX) is conversation.NA
    decisions = {d["id"] for d in contract.load().spec["info"]["x-decisions"]}
    assert "D12-null-optional" in decisions
    # a real schema violation next to the null is still judged
    assert isinstance(schema_invalid_request_rejected(ex("executeAdjustment", metadata=None, bizType=7), CTX), str)


# 3 ---------------------------------------------------------------------------------------------------------
def test_a_cancel_refused_on_its_own_proves_nothing_about_its_execute():
    """An execute with amountDigits 142 was refused; its cancel, as invalid, was refused too; the suite
    expected US_0000001 (CAN-002). Only executes valid in every reading are judged, and a cancel answered
    with neither documented code proves nothing."""
    odd = ex("executeAdjustment", amountDigits=142, reply=REJECTED)
    cancel = ex("cancelAdjustment", amountDigits=142, reply=REJECTED)
    outcome = judge_conversation(conversation.cancel_of_refused_execute_answers_us0000001, CTX,
                                 execute=odd, cancel=cancel)
    assert outcome.status is Status.NOT_APPLICABLE
    valid = ex("executeAdjustment", reply=envelope("INSUFFICIENT_FUNDS", ok=False))
    refused_cancel = ex("cancelAdjustment", reply=envelope("BAD_CANCEL", ok=False))
    outcome = judge_conversation(conversation.cancel_of_refused_execute_answers_us0000001, CTX,
                                 execute=valid, cancel=refused_cancel)
    assert outcome.status is Status.NOT_APPLICABLE
    wrong = ex("cancelAdjustment", reply=envelope("0"))
    outcome = judge_conversation(conversation.cancel_of_refused_execute_answers_us0000001, CTX,
                                 execute=valid, cancel=wrong)
    assert outcome.status is Status.VIOLATED


# 4 ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wallet():
    with serve(WalletConfig()) as url:
        yield url


def _cli(*args):
    started = time.monotonic()
    done = subprocess.run([*CLI, "run", "--no-html", *args], capture_output=True, text=True, timeout=60)
    return done.returncode, done.stderr, done.stdout, time.monotonic() - started


def _one_line(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--account", "W-9999:nobody:USD"], "account W-9999:nobody:USD was not found"),
        (["--account", "W-1001:86000001:USD", "--base-url-suffix", "/get-user-amount"], "ends in the operation path"),
        ([], "no test account named"),
    ],
    ids=["wrong-account", "operation-path-in-base-url", "no-account"],
)
def test_setup_mistakes_are_configuration_errors_before_any_execute(wallet, tmp_path, extra, fragment):
    base = wallet
    if "--base-url-suffix" in extra:
        index = extra.index("--base-url-suffix")
        base += extra[index + 1]
        extra = extra[:index] + extra[index + 2:]
    code, stderr, _, took = _cli("--base-url", base, "--allow-money-movement", "--report-dir", str(tmp_path / "r"),
                                 *extra)
    assert code == 2, stderr
    line = _one_line(stderr)
    assert fragment in line
    assert took < 10  # measured well under 2 s in-process; the subprocess start dominates here
    exchanges = tmp_path / "r" / "exchanges.jsonl"
    sent = [json.loads(x) for x in exchanges.read_text().splitlines()] if exchanges.exists() else []
    assert not [x for x in sent if x["operation"] in ("executeAdjustment", "cancelAdjustment")]


def test_setup_checks_take_under_two_seconds(wallet, tmp_path):
    """The preflight itself (in-process, no interpreter start): a wrong account is refused within 2 s."""
    from conformance import preflight
    from conformance.journal import Journal
    from conformance.profile import Profile, TestAccount

    profile = Profile(base_url=wallet, accounts=(TestAccount("W-9999", "nobody", "USD"),))
    journal = Journal(tmp_path, profile.judging_context())
    started = time.monotonic()
    with pytest.raises(preflight.SetupError):
        preflight.run(profile, journal)
    journal.close()
    assert time.monotonic() - started < 2.0


# 5 ---------------------------------------------------------------------------------------------------------
class _TrailingBytes(http.server.BaseHTTPRequestHandler):
    """A wallet whose answers are the envelope followed by extra bytes (HTTP 200, application/json)."""

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        data = {"userName": body.get("userName"), "currency": body.get("currency"), "amount": "100.00",
                "amountDigits": 2}
        payload = json.dumps({**envelope(data=data), "trace": self.headers.get("trace")}).encode() + b"}garbage"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_invalid_json_answers_fail_the_envelope_rule_not_reachability(tmp_path):
    with http_server(_TrailingBytes) as port:
        url = f"http://127.0.0.1:{port}/api"
        code, stderr, _, _ = _cli("--base-url", url, "--account", "W-1:86000001:USD", "--phases", "handwritten",
                                  "--rate-limit", "0", "--report-dir", str(tmp_path / "r"))
    assert code == 1, stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    rows = {r["id"]: r for r in summary["requirements"]}
    assert rows["ENV-001"]["status"] == "failed"


# 6 ---------------------------------------------------------------------------------------------------------
def _verdict(*outcomes):
    rows = verdicts.aggregate(list(outcomes), exchanges={}, secrets=frozenset(), money_allowed=True)
    return {row.id: row for row in rows}


def test_an_unanswered_probe_never_counts_as_passed():
    rows = _verdict(Outcome("EXE-003", "c", Status.PASSED, None, ()),
                    Outcome("EXE-003", "suite.expect", Status.UNANSWERED, "reset", ("x2",), origin="t"))
    assert rows["EXE-003"].status == "failed"


def test_a_target_caused_inapplicability_is_not_a_suite_defect():
    rows = _verdict(Outcome("CAN-002", "c", Status.NOT_APPLICABLE, "refused", (), origin="t"))
    assert rows["CAN-002"].status == "skipped"
    assert "inapplicable" in rows["CAN-002"].reason
    assert verdicts.suite_errors_from([Outcome("CAN-002", "c", Status.NOT_APPLICABLE, "x", ())]) == []


def test_a_suite_defect_blames_nobody_and_makes_the_run_unsound():
    defect = Outcome("CAN-003", "suite.expect", Status.SUITE_DEFECT, "no check applied", (), origin="t::d")
    rows = _verdict(defect)
    assert rows["CAN-003"].status == "skipped"
    errors = verdicts.suite_errors_from([defect])
    assert errors and "t::d" in errors[0]
    run = verdicts.RunVerdict(tuple(rows.values()), tuple(errors))
    assert run.exit_code != verdicts.EXIT_PASSED


def test_blocked_requirements_say_by_which_requirement():
    rows = _verdict(Outcome("EXE-002", "c", Status.VIOLATED, "refused", (), origin="t"),
                    Outcome("CAN-003", "suite.expect", Status.BLOCKED, "blocked", (), origin="t", blocked_by="EXE-002"))
    assert rows["EXE-002"].status == "failed"
    assert rows["CAN-003"].status == "skipped"
    assert rows["CAN-003"].blocked_by == ("EXE-002",)
    assert "EXE-002" in rows["CAN-003"].reason


def test_verdicts_never_read_message_text():
    """The same outcomes with messages that name other requirements give the same verdicts."""
    plain = _verdict(Outcome("EXE-002", "c", Status.PASSED, None, ()))
    noisy = _verdict(Outcome("EXE-002", "c", Status.PASSED, "CAN-003 violated: suite defect", ()))
    assert {k: v.status for k, v in plain.items()} == {k: v.status for k, v in noisy.items()}


# 7 ---------------------------------------------------------------------------------------------------------
def test_generated_exchanges_are_timed_to_the_last_byte():
    """Schemathesis' own elapsed stops at the headers; a body that trickles in 4.5 s later passed EXE-001."""
    schema = SimpleNamespace(get_base_url=lambda: "http://127.0.0.1:1/api")
    operation = SimpleNamespace(path=PATHS["executeAdjustment"], schema=schema)
    meta = None
    case = SimpleNamespace(operation=operation, meta=meta, headers={}, body=dict(EXECUTE))
    schemathesis_hooks.before_call(None, case, {})
    time.sleep(0.3)
    request = SimpleNamespace(method="POST", url="http://w/api" + PATHS["executeAdjustment"],
                              headers={"trace": "t-1"}, body=json.dumps(EXECUTE).encode())
    response = SimpleNamespace(headers={"Content-Type": ["application/json"]}, status_code=200,
                               content=json.dumps(envelope()).encode(), elapsed=0.001, request=request)
    exchange = schemathesis_hooks.to_exchange(case, response)
    assert exchange.response.elapsed_ms >= 300


def test_a_client_timeout_below_the_deadline_proves_nothing_and_no_answer_is_unanswered():
    request = Request("POST", "http://w/api" + PATHS["executeAdjustment"], HEADERS, json.dumps(EXECUTE).encode())
    gave_up = Exchange(request, None, "executeAdjustment", "t", error="timed out", waited_ms=1000)
    assert execute_within_deadline(gave_up, CTX) is conversation.NA
    reset = Exchange(request, None, "executeAdjustment", "t", error="connection reset")
    from conformance.checks import judgement

    assert judgement(execute_within_deadline(reset, CTX)) is Status.UNANSWERED
    late = Exchange(request, Response(200, (("Content-Type", "application/json"),), b"{}", 4500.0),
                    "executeAdjustment", "t")
    assert judgement(execute_within_deadline(late, CTX)) is Status.VIOLATED


# 8 ---------------------------------------------------------------------------------------------------------
def test_us0000002_for_a_received_execute_is_a_falsehood():
    refused = ex("executeAdjustment", reply=envelope("INSUFFICIENT_FUNDS", ok=False))
    applied = ex("executeAdjustment")
    never = ex("cancelAdjustment", reply=envelope("US_0000002", ok=False))
    for execute in (refused, applied):
        outcome = judge_conversation(conversation.received_execute_never_answered_never_received, CTX,
                                     execute=execute, cancel=never)
        assert outcome.status is Status.VIOLATED and outcome.requirement == "CAN-008"
    # an execute refused as invalid may be read as never received (D13)
    invalid = ex("executeAdjustment", amount="-5.00", reply=REJECTED)
    outcome = judge_conversation(conversation.received_execute_never_answered_never_received, CTX,
                                 execute=invalid, cancel=never)
    assert outcome.status is Status.NOT_APPLICABLE
    fine = ex("cancelAdjustment", reply=envelope("US_0000001", ok=False))
    outcome = judge_conversation(conversation.received_execute_never_answered_never_received, CTX,
                                 execute=refused, cancel=fine)
    assert outcome.status is Status.PASSED


# 9 ---------------------------------------------------------------------------------------------------------
def test_a_balance_for_an_unheld_currency_answers_for_exactly_that_account():
    body = {"thirdServerCode": "W-1", "userName": "86000001", "currency": "CHF"}
    other = envelope(data={"userName": "86000001", "currency": "USD", "amount": "100.00", "amountDigits": 2})
    opened = envelope(data={"userName": "86000001", "currency": "CHF", "amount": "0.00", "amountDigits": 2})
    assert isinstance(answers_for_the_account_it_names(ex(body=body, reply=other), CTX), str)
    assert answers_for_the_account_it_names(ex(body=body, reply=opened), CTX) is None  # opened on demand (D18)
    assert answers_for_the_account_it_names(ex(body=body, reply=REJECTED), CTX) is None
    held = {"thirdServerCode": "W-1", "userName": "86000001", "currency": "USD"}
    assert answers_for_the_account_it_names(ex(body=held, reply=other), CTX) is conversation.NA


def test_the_default_accounts_are_what_the_embedded_run_uses():
    assert DEFAULT_ACCOUNTS  # the embedded run names them; BAL-008 asks the first user for an unheld currency
