"""Waivers: a known failure tied to a requirement, an owner, a ticket and an expiry date.

Unit tests of the pure :func:`conformance.waivers.apply` and of the parser, then real runs (the CLI, a
subprocess) against the reference wallet behind the proxy of ``test_flaky`` breaking ENV-005 on every
lower-case-currency balance query (a deterministic MUST failure), and against the conforming wallet.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from test_flaky import flaky_proxy, row
from test_flaky import run as run_suite

from conformance import verdicts, waivers
from conformance.reference import WalletConfig, serve

TODAY = dt.date(2026, 12, 1)


def waiver(requirement="ENV-005", expires=dt.date(2026, 12, 31), **scope) -> waivers.Waiver:
    return waivers.Waiver(requirement=requirement, reason="vendor ticket open", owner="wallet-team@example",
                          ticket="PAY-1", expires=expires, **scope)


def run_of(**statuses: str) -> verdicts.RunVerdict:
    """Every catalogue requirement passed, except the ones named (id with _ for -)."""
    rows = verdicts.aggregate([], exchanges={}, secrets=frozenset(), money_allowed=True)
    wanted = {k.replace("_", "-"): v for k, v in statuses.items()}
    return verdicts.RunVerdict(tuple(r.with_status(wanted.get(r.id, "passed")) for r in rows))


def by_id(run: verdicts.RunVerdict, rid: str):
    return next(r for r in run.requirements if r.id == rid)


# ------------------------------------------------------------------------------------------------ apply
def test_a_valid_waiver_turns_a_failing_run_green_as_waived_never_passed():
    before = run_of(ENV_005="failed")
    assert before.exit_code == 1
    after, report = waivers.apply(before, [waiver()], TODAY)
    assert by_id(after, "ENV-005").status == "waived"
    assert by_id(after, "ENV-005").waiver["owner"] == "wallet-team@example"
    assert "vendor ticket open" in by_id(after, "ENV-005").reason
    assert report.outcome(after) == ("passed", 0)
    assert [r["requirement"] for r in report.applied] == ["ENV-005"]
    assert after.counts()["MUST"]["waived"] == 1 and after.counts()["MUST"]["failed"] == 0


def test_the_expiry_day_is_inclusive_and_the_day_after_the_failure_counts():
    on_the_day, _ = waivers.apply(run_of(ENV_005="failed"), [waiver(expires=TODAY)], TODAY)
    assert by_id(on_the_day, "ENV-005").status == "waived"
    after, report = waivers.apply(run_of(ENV_005="failed"), [waiver(expires=TODAY)], TODAY + dt.timedelta(days=1))
    row_ = by_id(after, "ENV-005")
    assert row_.status == "failed" and "waiver expired on 2026-12-01" in row_.reason
    assert report.outcome(after) == ("failed", 1)
    assert [r["requirement"] for r in report.expired] == ["ENV-005"]


def test_a_waiver_whose_requirement_passes_is_no_longer_needed_and_fails_only_under_strict():
    lenient, report = waivers.apply(run_of(), [waiver()], TODAY)
    assert by_id(lenient, "ENV-005").status == "passed"
    assert [r["requirement"] for r in report.not_needed] == ["ENV-005"]
    assert report.outcome(lenient) == ("passed", 0)
    strict, report = waivers.apply(run_of(), [waiver()], TODAY, strict=True)
    assert report.fails_run and report.outcome(strict) == ("failed", 1)


def test_a_waiver_never_greens_an_incomplete_run_or_a_skipped_requirement():
    skipped = run_of(ENV_005="skipped")
    after, report = waivers.apply(skipped, [waiver()], TODAY)
    assert by_id(after, "ENV-005").status == "skipped"
    assert report.outcome(after) == ("incomplete", 4)
    assert report.unused and not report.not_needed  # not judged: not known to be unneeded
    unsound = verdicts.RunVerdict(run_of(ENV_005="failed").requirements, ("a suite defect",))
    after, report = waivers.apply(unsound, [waiver()], TODAY)
    assert after.suite_errors == ("a suite defect",)
    assert report.outcome(after) == ("incomplete", 4)


def test_warnings_and_flaky_rows_are_waived_too_and_other_rows_untouched():
    before = run_of(ENV_013="warning", ENV_005="flaky", ENV_002="failed")
    after, _ = waivers.apply(before, [waiver("ENV-013"), waiver("ENV-005")], TODAY)
    assert [by_id(after, r).status for r in ("ENV-013", "ENV-005", "ENV-002")] == ["waived", "waived", "failed"]


def test_a_scoped_waiver_covers_only_failures_inside_its_scope():
    usd = ("W-1001", "86000001", "USD")
    scoped = [waiver(operation="getUserAmount", account=usd)]
    inside = {"ENV-005": [("getUserAmount", usd)]}
    outside = {"ENV-005": [("getUserAmount", usd), ("executeAdjustment", usd)]}
    unknown = {"ENV-005": [(None, None)]}
    assert by_id(waivers.apply(run_of(ENV_005="failed"), scoped, TODAY, scopes=inside)[0], "ENV-005").status == "waived"
    for scopes in (outside, unknown, None):
        after, report = waivers.apply(run_of(ENV_005="failed"), scoped, TODAY, scopes=scopes)
        assert by_id(after, "ENV-005").status == "failed"
        assert "outside the waiver's scope" in report.unused[0]["why"]


# ---------------------------------------------------------------------------------------------- parsing
GOOD = """
[[waiver]]
requirement = "ENV-005"
reason = "trace echo broken on the lower-case probe"
owner = "wallet-team@example"
ticket = "https://tracker.example/PAY-1"
expires = 2099-12-31
operation = "getUserAmount"
"""


def test_a_good_file_parses(tmp_path):
    path = tmp_path / "w.toml"
    path.write_text(GOOD + '\n[[waiver]]\nrequirement = "EXE-001"\nreason = "r"\nowner = "o"\nticket = "T-2"\n'
                    'expires = "2099-01-01"\naccount = "W-1001:86000001:USD"\n')
    first, second = waivers.load(path)
    assert (first.requirement, first.expires, first.operation) == ("ENV-005", dt.date(2099, 12, 31), "getUserAmount")
    assert second.account == ("W-1001", "86000001", "USD") and second.expires == dt.date(2099, 1, 1)


BAD = {
    "not TOML": ("[[waiver]\nrequirement = 1", "not valid TOML"),
    "no tables": ("title = 'x'", "unknown key"),
    "missing owner": (GOOD.replace('owner = "wallet-team@example"\n', ""), "missing owner"),
    "unknown id": (GOOD.replace('"ENV-005"', '"ENV-999"'), "unknown requirement id 'ENV-999'"),
    "bad date": (GOOD.replace("2099-12-31", '"31/12/2099"'), "is not a date (YYYY-MM-DD)"),
    "datetime": (GOOD.replace("2099-12-31", "2099-12-31T10:00:00Z"), "not a date and time"),
    "unknown key": (GOOD + 'severity = "low"\n', "unknown key(s) severity"),
    "empty reason": (GOOD.replace('reason = "trace echo broken on the lower-case probe"', 'reason = ""'),
                     "reason must be a non-empty string"),
    "bad operation": (GOOD.replace('"getUserAmount"', '"getBalance"'), "unknown operation 'getBalance'"),
    "bad account": (GOOD + 'account = "W-1001"\n', "is not THIRD:USER:CUR"),
    "duplicate": (GOOD + GOOD, "a second waiver for ENV-005"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_malformed_waiver_file_is_one_line_and_exit_2(case, tmp_path):
    text, message = BAD[case]
    path = tmp_path / "waivers.toml"
    path.write_text(text)
    with pytest.raises(waivers.WaiverError) as caught:
        waivers.load(path)
    assert message in str(caught.value)
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--waivers", str(path), "--phases",
                           "examples", "--max-examples", "1", "--no-html", "--report-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_a_missing_waiver_file_and_profile_tables_are_checked_too(tmp_path):
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--waivers", str(tmp_path / "nope.toml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "does not exist" in done.stderr
    profile = tmp_path / "profile.toml"
    profile.write_text("[run]\nmax_examples = 3\n" + GOOD.replace('"ENV-005"', '"NOPE-1"'))
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--config", str(profile)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown requirement id 'NOPE-1'" in done.stderr, done.stderr


# ------------------------------------------------------------------------------------------------ runs
def waiver_file(tmp_path: Path, expires: str, **extra: str) -> str:
    path = tmp_path / "waivers.toml"
    lines = ["[[waiver]]", 'requirement = "ENV-005"', 'reason = "trace echo broken on one probe"',
             'owner = "wallet-team@example"', 'ticket = "PAY-1"', f"expires = {expires}"]
    lines += [f'{k} = "{v}"' for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def green_but_for_skips(summary: dict) -> str:
    """The verdict a run without MUST failures has: passed, or incomplete when a MUST was not judged."""
    must_skipped = any(r["status"] == "skipped" and r["level"] == "MUST" for r in summary["requirements"])
    return "incomplete" if must_skipped or summary["suite_errors"] else "passed"


@pytest.fixture(scope="module")
def wallet():
    with serve(WalletConfig()) as url:
        yield url


def test_run_a_waived_failure_does_not_fail_the_run_and_is_shown_with_its_owner(wallet, tmp_path):
    path = waiver_file(tmp_path, "2099-12-31", operation="getUserAmount")
    with flaky_proxy(wallet, period=1) as (url, broken):
        code, summary, out = run_suite(url, tmp_path / "run", "--waivers", path, "--replays", "0")
    assert broken, "the fault was hit"
    env = row(summary, "ENV-005")
    assert env["status"] == "waived" and env["waiver"]["owner"] == "wallet-team@example", env
    assert env["violations"] > 0 and env["failing_examples"]
    assert summary["verdict"] == green_but_for_skips(summary) and code in (0, 4)
    assert summary["counts"]["MUST"]["waived"] == 1
    assert "WAIVED" in out
    assert "waived: ENV-005 (was failed; owner wallet-team@example, PAY-1, expires 2099-12-31)" in out
    bundle = next((tmp_path / "run").glob("evidence-*.zip"))
    with zipfile.ZipFile(bundle) as archive:
        name = next(n for n in archive.namelist() if n.endswith("summary.json"))
        inside = json.loads(archive.read(name))
    assert row(inside, "ENV-005")["waiver"]["ticket"] == "PAY-1"
    assert inside["waivers"]["applied"][0]["requirement"] == "ENV-005"


def test_run_an_expired_waiver_fails_the_run_and_says_it_expired(wallet, tmp_path):
    path = waiver_file(tmp_path, "2020-01-31")
    with flaky_proxy(wallet, period=1) as (url, _):
        code, summary, out = run_suite(url, tmp_path / "run", "--waivers", path, "--replays", "0")
    env = row(summary, "ENV-005")
    assert env["status"] == "failed" and "waiver expired on 2020-01-31" in env["reason"]
    assert code == 1 and summary["verdict"] == "failed"
    assert "waiver expired: ENV-005 on 2020-01-31" in out


def test_run_a_waiver_no_longer_needed_is_reported_and_fails_under_strict(wallet, tmp_path):
    path = waiver_file(tmp_path, "2099-12-31")
    code, summary, out = run_suite(wallet, tmp_path / "lenient", "--waivers", path)
    assert row(summary, "ENV-005")["status"] == "passed"
    assert summary["waivers"]["not_needed"][0]["requirement"] == "ENV-005"
    assert "waiver no longer needed: ENV-005 passed" in out
    assert summary["verdict"] == green_but_for_skips(summary) and code in (0, 4)
    code, summary, out = run_suite(wallet, tmp_path / "strict", "--waivers", path, "--strict-waivers")
    assert code == 1 and summary["verdict"] == "failed" and summary["waivers"]["fails_run"]
    assert "fails the run (--strict-waivers)" in out
