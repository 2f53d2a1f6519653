"""The evidence bundle of the shared run: what it holds, the traceability matrix, secrets, robustness."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from test_reporting_run import SECRETS, SharedRun, shared_run

from conformance import __version__, contract, reporting
from conformance.reporting import allure, evidence, html, redaction
from conformance.run import RunResult


@pytest.fixture(scope="module")
def run() -> SharedRun:
    return shared_run()


@pytest.fixture(scope="module")
def members(run) -> dict[str, bytes]:
    with zipfile.ZipFile(run.bundle) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.fixture(scope="module")
def manifest(members) -> dict:
    return json.loads(members["manifest.json"])


# ---------------------------------------------------------------- contents
def test_the_bundle_holds_every_listed_file(run, members):
    spec = contract.load()
    expected = {
        "manifest.json", "manifest.json.sha256", "VERSION", "spec/webhook.openapi.yaml",
        "spec/webhook.openapi.yaml.sha256", "spec/requirements.yaml", "spec/webhook-api.reference.md",
        "summary.json", "profile.json", "traceability.json", "exchanges.jsonl", "outcomes.jsonl", "ledger.json",
        "junit.xml", "comparison.json", *(["report.html"] if run.html_expected else []),
    }
    results_dir = run.report_dir / "allure-results"
    results = {f"allure-results/{p.relative_to(results_dir).as_posix()}": p.read_bytes()
               for p in results_dir.rglob("*") if p.is_file()}
    assert set(members) == expected | set(results)
    for name, data in results.items():
        assert members[name] == data, name
    for name in ("summary.json", "profile.json", "exchanges.jsonl", "outcomes.jsonl", "ledger.json", "junit.xml",
                 "comparison.json", *(["report.html"] if run.html_expected else [])):
        assert members[name] == (run.report_dir / name).read_bytes(), name
    assert members["spec/webhook.openapi.yaml"] == spec.spec_bytes
    assert members["spec/requirements.yaml"] == spec.catalogue_bytes
    assert members["spec/webhook-api.reference.md"] == spec.reference_bytes
    assert members["spec/webhook.openapi.yaml.sha256"] == f"{spec.spec_sha256}  webhook.openapi.yaml\n".encode()
    assert members["VERSION"] == f"{__version__}\n".encode()
    for needed in ("environment.properties", "executor.json", "categories.json", "history/history-trend.json"):
        assert f"allure-results/{needed}" in members
    assert sum(name.startswith("allure-results/tests/") and name.endswith("-result.json")
               for name in members) >= run.summary["tests"]["total"]  # replays of failing tests add retries


def test_the_manifest_hashes_every_other_file(members, manifest, run):
    listed = {item["path"]: item for item in manifest["files"]}
    assert set(listed) == set(members) - {"manifest.json", "manifest.json.sha256"}
    for name, item in listed.items():
        assert item["sha256"] == hashlib.sha256(members[name]).hexdigest(), name
        assert item["size"] == len(members[name])
    digest = hashlib.sha256(members["manifest.json"]).hexdigest()
    assert members["manifest.json.sha256"] == f"{digest}  manifest.json\n".encode()
    summary = run.summary
    assert manifest["format"] == evidence.FORMAT
    assert manifest["suite"]["version"] == __version__
    assert manifest["spec_sha256"] == contract.load().spec_sha256 == summary["spec"]["sha256"]
    assert manifest["run_id"] == summary["run"]["id"]
    assert manifest["seed"] == summary["run"]["seed"] == 20261125
    assert manifest["verdict"] == "failed" and manifest["exit_code"] == 1
    assert manifest["target"] == run.profile.base_url
    assert manifest["redactions"] == [] and manifest["signature"] is None
    created = dt.datetime.fromisoformat(manifest["created_at"])
    assert abs((dt.datetime.now(dt.UTC) - created).total_seconds()) < 600


def test_profile_ledger_and_exchanges_in_the_bundle(members, run):
    profile = json.loads(members["profile.json"])
    assert profile["headers"] == {"Authorization": "<redacted>", "X-Api-Key": "<redacted>",
                                  "X-Gateway-Key": "<redacted>"}
    assert profile["seed"] == 20261125 and profile["base_url"] == run.profile.base_url
    ledger = json.loads(members["ledger.json"])
    assert ledger["executes_sent"] > 0 and ledger["applied"] == ledger["reversed"] > 0
    assert ledger["outstanding"] == []
    for entry in ledger["entries"]:
        assert entry["requestUniqueNo"] and entry["execute_exchanges"]
        if entry["outcome"] == "applied":
            assert entry["settlement"] == "reversed" and (entry.get("cancel_exchanges") or entry.get("cancels"))
    exchanges = members["exchanges.jsonl"].decode().splitlines()
    assert len(exchanges) == run.summary["exchanges"]
    sent = dict(json.loads(exchanges[0])["request"]["headers"])
    assert sent["Authorization"] == sent["X-Api-Key"] == sent["X-Gateway-Key"] == "<redacted>"


# ------------------------------------------------------------ traceability
def test_traceability_links_requirements_checks_tests_verdicts_and_evidence(members, run):
    matrix = json.loads(members["traceability.json"])
    catalogue = contract.load().requirements
    rows = {row["id"]: row for row in matrix["requirements"]}
    assert list(rows) == list(catalogue)
    assert matrix["run_id"] == run.summary["run"]["id"] and matrix["verdict"] == "failed"
    statuses = {row["id"]: row["status"] for row in run.summary["requirements"]}
    exchanges = {json.loads(line)["id"]: json.loads(line) for line in members["exchanges.jsonl"].decode().splitlines()}
    outcomes = [json.loads(line) for line in members["outcomes.jsonl"].decode().splitlines()]
    for rid, row in rows.items():
        requirement = catalogue[rid]
        assert (row["level"], row["statement"], row["source"]) == (requirement.level, requirement.statement,
                                                                   list(requirement.source))
        assert row["status"] == statuses[rid]
        assert row["reference"] == [f"reference/webhook-api.html#section-{s}" for s in requirement.source]
        assert row["checks"] or row["status"] == "skipped", rid  # the check functions that judge it
        assert row["tests"] or row["status"] == "skipped", rid
        judged = [o for o in outcomes
                  if o["requirement"] == rid and o["status"] in ("passed", "violated", "unanswered")]
        assert row["evaluations"] == len(judged)
        assert sum(check["evaluations"] for check in row["checks"]) == len(judged)
        if row["status"] == "passed":
            assert row["evidence"]["failing_exchanges"] == [] and row["violations"] == 0
    env2 = rows["ENV-002"]
    assert env2["status"] == "failed" and env2["violations"] > 0
    failing = env2["evidence"]["failing_exchanges"]
    assert failing and all(exchange_id in exchanges for exchange_id in failing)
    for exchange_id in failing:  # the evidence really shows the fault: ok and fail both true
        body = json.loads(exchanges[exchange_id]["response"]["body"])
        assert body["ok"] is True and body["fail"] is True
    tests = {t["nodeid"]: t["outcome"] for t in env2["tests"]}
    assert tests["test_envelope.py::test_envelope_on_successful_balance"] == "failed"
    assert tests["test_generated.py::test_generated[examples-positive-getUserAmount]"] == "failed"
    assert any(c["name"] == "envelope.ok_is_not_fail" and c["violations"] > 0 for c in env2["checks"])
    assert [f["test"] for f in env2["evidence"]["generated_failures"]][:1] == [
        "test_generated.py::test_generated[examples-positive-getUserAmount]"]
    for row in rows.values():  # every failure or warning points at its evidence
        if row["status"] in ("failed", "warning"):
            evidence_of = row["evidence"]
            assert evidence_of["failing_exchanges"] or evidence_of["generated_failures"] or evidence_of["examples"]


# ------------------------------------------------------------------ secrets
def _embedded_payloads(html: bytes) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(rb"d\('[^']*','([A-Za-z0-9+/=]*)'\)", html)]


def test_no_secret_anywhere_in_the_report_dir(run):
    assert not any(redaction.contains(line.encode(), SECRETS) for line in run.lines)
    checked = 0
    for path in sorted(run.report_dir.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        blobs = [data]
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                blobs += [archive.read(name) for name in archive.namelist()]
                blobs += [p for name in archive.namelist() if name.endswith(".html")
                          for p in _embedded_payloads(archive.read(name))]
        if path.suffix == ".html":
            blobs += _embedded_payloads(data)
        for blob in blobs:
            for secret in SECRETS:
                for form in (f.encode() for f in redaction.Secrets.coerce([secret]).forms()):
                    assert form not in blob, f"{secret!r} leaked into {path}"
            checked += 1
    assert checked > 1500  # every report file, every bundle member, every embedded HTML data file
    assert b"<redacted>" in (run.report_dir / "exchanges.jsonl").read_bytes()  # the headers were sent, and hidden


def _copy_report(run: SharedRun, target: Path) -> RunResult:
    def ignore(directory, names):
        return [n for n in names if n in ("allure-report", "report.html") or n.startswith("evidence-")]

    shutil.copytree(run.report_dir, target, ignore=ignore)
    summary = json.loads((target / "summary.json").read_text())
    return RunResult(exit_code=summary["exit_code"], summary=summary, report_dir=target)


def test_a_leaked_secret_is_redacted_in_the_bundle_and_noted_in_the_manifest(run, tmp_path):
    result = _copy_report(run, tmp_path / "report")
    exchanges = result.report_dir / "exchanges.jsonl"
    exchanges.write_text(exchanges.read_text() + json.dumps({"id": "leak", "note": SECRETS[0]}) + "\n")
    attachment = next((result.report_dir / "allure-results").glob("*-attachment.txt"))
    attachment.write_text(f"curl -H 'X-Gateway-Key: {SECRETS[2]}' -H 'X-Api-Key: {SECRETS[1]}'")
    bundle = evidence.write_bundle(result.report_dir, secrets=SECRETS, destination=tmp_path / "bundle.zip")
    with zipfile.ZipFile(bundle.path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        for name in archive.namelist():
            assert not redaction.contains(archive.read(name), SECRETS), name
        assert archive.read(f"allure-results/{attachment.name}") == (
            b"curl -H 'X-Gateway-Key: <redacted>' -H 'X-Api-Key: <redacted>'")
    assert manifest["redactions"] == sorted([
        {"file": "exchanges.jsonl", "occurrences": 1},
        {"file": f"allure-results/{attachment.name}", "occurrences": 1},
    ], key=lambda item: item["file"])
    assert bundle.redactions == {"exchanges.jsonl": 1, f"allure-results/{attachment.name}": 1}
    assert evidence.verify_bundle(bundle.path).intact


def test_finish_scrubs_a_leaked_secret_from_the_report_dir(run, tmp_path, monkeypatch):
    monkeypatch.setattr(html, "_repo_root", lambda: tmp_path)
    monkeypatch.chdir(tmp_path)
    result = _copy_report(run, tmp_path / "report")
    outcomes = result.report_dir / "outcomes.jsonl"
    outcomes.write_text(outcomes.read_text() + json.dumps({"note": f"leaked {SECRETS[1]}"}) + "\n")
    lines: list[str] = []
    reporting.finish(result, run.profile, say=lines.append, environ={"PATH": str(tmp_path)})
    assert SECRETS[1] not in outcomes.read_text() and '"leaked <redacted>"' in outcomes.read_text()
    for path in result.report_dir.rglob("*"):
        if path.is_file() and path.suffix != ".zip":
            assert SECRETS[1].encode() not in path.read_bytes(), path


def test_short_secrets_are_not_scrubbed():
    assert redaction.redact(b"abc abc", ["abc"]) == (b"abc abc", 0)
    assert redaction.redact(b'{"h": "p\\"w1"}', ['p"w1']) == (b'{"h": "<redacted>"}', 1)


# --------------------------------------------------------------- robustness
def test_a_failing_reporting_step_is_one_line_and_the_rest_still_runs(run, tmp_path, monkeypatch):
    monkeypatch.setattr(html, "_repo_root", lambda: tmp_path)
    monkeypatch.chdir(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("allure results exploded")

    monkeypatch.setattr(allure, "prepare_results", broken)
    result = _copy_report(run, tmp_path / "report")
    lines: list[str] = []
    reporting.finish(result, run.profile, say=lines.append, environ={"PATH": str(tmp_path)})
    error = "reporting error: allure results: RuntimeError: allure results exploded"
    assert error in lines
    assert result.exit_code == 1 and result.summary["verdict"] == "failed"
    assert (tmp_path / "report" / f"evidence-{result.summary['run']['id']}.zip").is_file()
    written = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert error in written["suite_errors"] and written["exit_code"] == 1
    assert f"suite: {error}" in lines  # the table shows it too


@pytest.mark.parametrize(("key", "problem"), [
    ("garbage", "is not a PEM private key"),
    ("rsa", "is not an Ed25519 key (RSAPrivateKey)"),
    ("encrypted", "is encrypted; give an unencrypted Ed25519 PEM key"),
])
def test_an_unusable_signing_key_is_one_line_and_no_bundle(run, tmp_path, monkeypatch, key, problem):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    monkeypatch.setattr(html, "_repo_root", lambda: tmp_path)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "key.pem"
    if key == "garbage":
        path.write_text("not a key")
    elif key == "rsa":
        path.write_bytes(rsa.generate_private_key(65537, 2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    else:
        path.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw")))
    result = _copy_report(run, tmp_path / "report")
    lines: list[str] = []
    profile = dataclasses.replace(run.profile, signing_key=str(path))
    reporting.finish(result, profile, say=lines.append, environ={"PATH": str(tmp_path)})
    assert f"reporting error: evidence bundle: EvidenceError: signing key {path} {problem}" in lines
    assert not list((tmp_path / "report").glob("evidence-*.zip"))
    assert result.exit_code == 1


def test_build_bundle_is_the_runs_entry_point(run, tmp_path):
    result = _copy_report(run, tmp_path / "report")
    path = evidence.build_bundle(result, run.profile)
    assert path == result.report_dir / f"evidence-{result.summary['run']['id']}.zip"
    assert evidence.verify_bundle(path).intact
