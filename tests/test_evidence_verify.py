"""`conformance verify`: intact (every file matches, the verdicts agree) apart from authentic (signed by a key
the operator trusts); any changed, added or removed file fails by name; a key shipped in the bundle proves nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from test_reporting_run import SECRETS, SharedRun, shared_run

from conformance.reporting import evidence


@pytest.fixture(scope="module")
def run() -> SharedRun:
    return shared_run()


@pytest.fixture(scope="module")
def names(run) -> list[str]:
    with zipfile.ZipFile(run.bundle) as archive:
        return archive.namelist()


def flip(data: bytes, position: int | None = None) -> bytes:
    """The same bytes with one bit of one byte changed (the middle one by default)."""
    index = len(data) // 2 if position is None else position
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


def rewrite(source: Path, target: Path, *, change: str | None = None, remove: str | None = None,
            add: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as new:
        for name in old.namelist():
            if name == remove:
                continue
            data = old.read(name)
            new.writestr(name, flip(data) if name in (change or "").split("|") else data)
        for name, data in (add or {}).items():
            new.writestr(name, data)
    return target


def verify(path: Path, public_key=None, **options) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = evidence.verify_command(str(path), public_key=str(public_key) if public_key else None, say=lines.append,
                                   **options)
    return code, lines


# ---------------------------------------------------------------- untouched
def test_the_untouched_bundle_verifies(run):
    report = evidence.verify_bundle(run.bundle)
    assert report.intact and not report.authentic
    assert report.files_checked == len(report.manifest["files"]) > 800
    assert report.authenticity == "not checked"
    code, lines = verify(run.bundle)  # intact, but nobody vouches for an unsigned bundle
    assert code == 6
    assert lines[0].startswith(f"intact: yes: {report.files_checked} files match manifest.json and the verdicts agree "
                               f"(run {run.summary['run']['id']}, verdict ")
    assert lines[1].startswith("authentic: not checked: the bundle is not signed")
    code, lines = verify(run.bundle, intact_only=True)
    assert code == 0 and lines[-1] == "verified (intact only: nothing shows who wrote it)"


# ------------------------------------------------------------------ changed
def _pick(names: list[str], kind: str) -> str:
    picks = {
        "an allure result": lambda n: n.startswith("allure-results/") and n.endswith("-result.json"),
        "an allure attachment": lambda n: n.startswith("allure-results/") and "-attachment." in n,
        "the allure history": lambda n: n.startswith("allure-results/history/"),
    }
    return sorted(n for n in names if picks[kind](n))[0] if kind in picks else kind


@pytest.mark.parametrize("member", [
    "summary.json", "spec/webhook.openapi.yaml", "spec/webhook.openapi.yaml.sha256", "spec/requirements.yaml",
    "spec/webhook-api.reference.md", "VERSION", "profile.json", "traceability.json", "exchanges.jsonl",
    "outcomes.jsonl", "ledger.json", "junit.xml", "comparison.json", "allure-results/environment.properties",
    "allure-results/categories.json", "an allure result", "an allure attachment", "the allure history",
    "report.html",
])
def test_one_changed_byte_in_any_file_fails_naming_it(run, names, tmp_path, member):
    member = _pick(names, member)
    if member not in names:
        pytest.skip(f"{member} is not in this bundle (no Allure command line here)")
    tampered = rewrite(run.bundle, tmp_path / "tampered.zip", change=member)
    report = evidence.verify_bundle(tampered)
    assert report.changed == [member] and not report.added and not report.removed
    code, lines = verify(tampered)
    assert code == 1
    assert lines[0].startswith(f"changed: {member} (SHA-256 ")
    assert lines[-1] == "NOT verified (exit 1)"


@pytest.mark.parametrize("position", ["start", "middle", "end"])
def test_a_changed_manifest_fails_naming_it(run, tmp_path, position):
    with zipfile.ZipFile(run.bundle) as archive:
        size = len(archive.read("manifest.json"))
    where = {"start": 0, "middle": size // 2, "end": size - 2}[position]
    with zipfile.ZipFile(run.bundle) as old, zipfile.ZipFile(tmp_path / "t.zip", "w", zipfile.ZIP_DEFLATED) as new:
        for name in old.namelist():
            data = old.read(name)
            new.writestr(name, flip(data, where) if name == "manifest.json" else data)
    report = evidence.verify_bundle(tmp_path / "t.zip")
    assert "manifest.json" in report.changed and report.exit_code == 1
    code, lines = verify(tmp_path / "t.zip")
    assert code == 1 and any(line.startswith("changed: manifest.json (") for line in lines)


def test_a_changed_manifest_digest_fails(run, tmp_path):
    tampered = rewrite(run.bundle, tmp_path / "t.zip", change="manifest.json.sha256")
    code, lines = verify(tampered)
    assert code == 1 and lines[0] == "changed: manifest.json (its SHA-256 differs from manifest.json.sha256)"


def test_every_changed_file_is_named(run, names, tmp_path):
    """Change every file of the bundle at once: the report names each of them, none is left unchecked."""
    listed = [n for n in names if n not in evidence.ABOUT_MANIFEST]
    tampered = rewrite(run.bundle, tmp_path / "t.zip", change="|".join(listed))
    report = evidence.verify_bundle(tampered)
    assert sorted(report.changed) == sorted(listed)


def test_a_damaged_zip_member_fails_naming_it(run, tmp_path):
    """A byte flipped in the archive itself (not re-zipped): the member cannot be read back."""
    damaged = tmp_path / "damaged.zip"
    shutil.copyfile(run.bundle, damaged)
    with zipfile.ZipFile(damaged) as archive:
        info = archive.getinfo("summary.json")
    raw = bytearray(damaged.read_bytes())
    header = struct.unpack("<4s5H3L2H", raw[info.header_offset:info.header_offset + 30])
    start = info.header_offset + 30 + header[-2] + header[-1]
    raw[start + info.compress_size // 2] ^= 0x01
    damaged.write_bytes(bytes(raw))
    report = evidence.verify_bundle(damaged)
    assert report.changed == ["summary.json"] and report.details["summary.json"].startswith("unreadable: ")
    assert verify(damaged)[0] == 1


# ----------------------------------------------------------- added, removed
@pytest.mark.parametrize("extra", ["notes.txt", "allure-results/extra-result.json", "spec/other.yaml"])
def test_an_added_file_fails_naming_it(run, tmp_path, extra):
    tampered = rewrite(run.bundle, tmp_path / "t.zip", add={extra: b"{}"})
    report = evidence.verify_bundle(tampered)
    assert report.added == [extra] and not report.changed and not report.removed
    code, lines = verify(tampered)
    assert code == 1 and lines[0] == f"added: {extra} (in the bundle, not in the manifest)"


def test_a_duplicated_entry_fails(run, tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name, which is the point
        tampered = rewrite(run.bundle, tmp_path / "t.zip", add={"summary.json": b"{}"})
    report = evidence.verify_bundle(tampered)
    assert "summary.json" in report.added and report.exit_code == 1


@pytest.mark.parametrize("member", ["summary.json", "spec/webhook.openapi.yaml", "an allure result",
                                    "ledger.json", "manifest.json.sha256"])
def test_a_removed_file_fails_naming_it(run, names, tmp_path, member):
    member = _pick(names, member)
    tampered = rewrite(run.bundle, tmp_path / "t.zip", remove=member)
    report = evidence.verify_bundle(tampered)
    assert report.removed == [member] and not report.changed and not report.added
    code, lines = verify(tampered)
    assert code == 1 and lines[0].startswith(f"removed: {member} (")


def test_a_bundle_without_its_manifest_cannot_be_read(run, tmp_path):
    tampered = rewrite(run.bundle, tmp_path / "t.zip", remove="manifest.json")
    code, lines = verify(tampered)
    assert code == 2
    assert lines == [f"conformance verify: {tampered}: no manifest.json (not an evidence bundle, or its manifest was "
                     "removed)"]


# ----------------------------------------------------------------- signing
@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    folder = tmp_path_factory.mktemp("keys")
    paths = {}
    for name in ("signer", "stranger"):
        key = Ed25519PrivateKey.generate()
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
        paths[f"{name}.pub"] = folder / f"{name}.pub.pem"
        paths[f"{name}.pub"].write_bytes(evidence.public_pem(key))
    return paths


@pytest.fixture(scope="module")
def signed(run, keys, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("signed") / "signed.zip"
    bundle = evidence.write_bundle(run.report_dir, secrets=SECRETS, signing_key=keys["signer"], destination=target)
    assert bundle.signed
    return bundle.path


def test_a_signed_bundle_verifies_with_the_signers_public_key(signed, keys):
    with zipfile.ZipFile(signed) as archive:
        signature = archive.read("manifest.sig")
        manifest = json.loads(archive.read("manifest.json"))
        assert archive.read("signing-key.pub.pem") == keys["signer.pub"].read_bytes()
    assert len(signature) == 64  # raw Ed25519 signature, as documented
    assert manifest["signature"]["algorithm"] == "Ed25519"
    assert "signing-key.pub.pem" in {item["path"] for item in manifest["files"]}
    report = evidence.verify_bundle(signed, public_key=keys["signer.pub"])
    assert report.ok and report.authenticity == "authentic"
    code, lines = verify(signed, keys["signer.pub"])
    assert code == 0 and lines[1].startswith("authentic: yes: signed by the trusted key sha256:")
    # the private key file is accepted as --public-key too (its public half is used)
    assert evidence.verify_bundle(signed, public_key=keys["signer"]).authentic


def test_a_pinned_fingerprint_accepts_the_signer(signed, keys):
    pin = evidence.fingerprint(evidence.load_public_key(keys["signer.pub"]))
    assert manifest_of(signed)["signature"]["fingerprint"] == pin
    code, lines = verify(signed, fingerprint_pin=pin)
    assert code == 0 and lines[-1] == "verified", lines
    code, lines = verify(signed, fingerprint_pin=pin.removeprefix("sha256:").upper())
    assert code == 0


def digest_line(manifest: bytes) -> bytes:
    return f"{hashlib.sha256(manifest).hexdigest()}  manifest.json\n".encode()


def manifest_of(bundle: Path) -> dict:
    with zipfile.ZipFile(bundle) as archive:
        return json.loads(archive.read("manifest.json"))


def test_the_bundles_own_key_proves_nothing(signed):
    """Signed, intact, but no trusted key given: not verified (exit 6), whatever key the bundle ships."""
    code, lines = verify(signed)
    assert code == 6
    assert lines[1].startswith("authentic: not checked: signed, but no trusted key given")


def resign(source: Path, target: Path, key_path: Path, mutate=None) -> Path:
    """Rewrite a bundle as a forger would: change files, re-hash everything, sign with their own key."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if mutate:
        mutate(members)
    key = evidence.load_signing_key(key_path)
    members["signing-key.pub.pem"] = evidence.public_pem(key)
    manifest = json.loads(members["manifest.json"])
    listed = {item["path"] for item in manifest["files"]}
    manifest["files"] = [{"path": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                         for name, data in sorted(members.items()) if name in listed]
    if manifest.get("signature"):
        manifest["signature"]["fingerprint"] = evidence.fingerprint(key.public_key())
    members["manifest.json"] = json.dumps(manifest, indent=2).encode()
    members["manifest.json.sha256"] = digest_line(members["manifest.json"])
    members["manifest.sig"] = key.sign(members["manifest.json"])
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def _pass_the_run(members: dict) -> None:
    """A consistent forgery: every failed requirement passed, the verdicts recomputed to match."""
    from conformance import verdicts

    summary = json.loads(members["summary.json"])
    for row in summary["requirements"]:
        if row["status"] in ("failed", "skipped"):
            row["status"], row["failing_examples"] = "passed", []
            row.pop("reason", None)
    summary["suite_errors"] = []
    summary["verdict"], summary["exit_code"] = verdicts.overall(summary["requirements"])
    assert summary["verdict"] == "passed"
    members["summary.json"] = json.dumps(summary).encode()
    manifest = json.loads(members["manifest.json"])
    manifest["verdict"], manifest["exit_code"] = "passed", 0
    manifest["requirements"] = evidence.requirement_lists(summary)
    members["manifest.json"] = json.dumps(manifest).encode()


def test_a_bundle_resigned_with_another_key_is_not_authentic(signed, keys, tmp_path):
    forged = resign(signed, tmp_path / "forged.zip", keys["stranger"], mutate=_pass_the_run)
    report = evidence.verify_bundle(forged)
    assert report.intact  # a consistent forgery: every hash matches, so only authenticity can catch it
    pin = evidence.fingerprint(evidence.load_public_key(keys["signer.pub"]))
    for options in ({"public_key": keys["signer.pub"]}, {"fingerprint_pin": pin}):
        code, lines = verify(forged, **{k: str(v) if k == "public_key" else v for k, v in options.items()})
        assert code == 6, lines
        assert lines[1].startswith("authentic: NO, not authentic"), lines
        assert lines[-1] == "NOT verified (exit 6)"


def _members(bundle) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _repack(members: dict[str, bytes], target, *, rehash: bool) -> None:
    """Write a forged bundle: the manifest re-hashed over the members (``rehash``) and its own digest redone."""
    manifest = json.loads(members["manifest.json"])
    if rehash:
        manifest["files"] = [{"path": n, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
                             for n, d in sorted(members.items())
                             if n not in ("manifest.json", "manifest.json.sha256")]
    members["manifest.json"] = json.dumps(manifest).encode()
    members["manifest.json.sha256"] = digest_line(members["manifest.json"])
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_an_unsigned_forgery_is_rejected_when_a_key_is_required(run, keys, tmp_path):
    def forge(members):
        _pass_the_run(members)
        for name in ("manifest.sig", "signing-key.pub.pem"):
            members.pop(name, None)

    members = _members(run.bundle)
    forge(members)
    forged = tmp_path / "unsigned.zip"
    _repack(members, forged, rehash=True)
    assert evidence.verify_bundle(forged).intact
    code, lines = verify(forged, keys["signer.pub"])
    assert code == 6 and lines[1] == "authentic: NO, not authentic: the bundle is not signed"


def test_a_manifest_verdict_that_disagrees_with_summary_is_rejected(run, tmp_path):
    """Only the manifest says "passed": re-hashed consistently, yet the verdicts disagree (not intact, exit 1)."""
    members = _members(run.bundle)
    manifest = json.loads(members["manifest.json"])
    assert manifest["verdict"] != "passed"
    manifest["verdict"], manifest["exit_code"] = "passed", 0
    members["manifest.json"] = json.dumps(manifest).encode()
    forged = tmp_path / "verdict.zip"
    _repack(members, forged, rehash=False)
    code, lines = verify(forged, intact_only=True)
    assert code == 1
    assert lines[0].startswith("verdict: the manifest says verdict 'passed', summary.json says ")


def test_a_summary_whose_verdict_contradicts_its_requirements_is_rejected(run, tmp_path):
    def only_verdict(members):
        summary = json.loads(members["summary.json"])
        summary["verdict"], summary["exit_code"] = "passed", 0
        members["summary.json"] = json.dumps(summary).encode()
        manifest = json.loads(members["manifest.json"])
        manifest["verdict"], manifest["exit_code"] = "passed", 0
        members["manifest.json"] = json.dumps(manifest).encode()

    members = _members(run.bundle)
    only_verdict(members)
    forged = tmp_path / "self.zip"
    _repack(members, forged, rehash=True)
    code, lines = verify(forged, intact_only=True)
    assert code == 1 and any("but its requirements make it 'failed'" in line for line in lines), lines


def test_openssl_agrees_with_the_documented_signature_format(signed, keys, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    with zipfile.ZipFile(signed) as archive:
        archive.extract("manifest.json", tmp_path)
        archive.extract("manifest.sig", tmp_path)
    done = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(keys["signer.pub"]), "-rawin",
                           "-in", str(tmp_path / "manifest.json"), "-sigfile", str(tmp_path / "manifest.sig")],
                          capture_output=True, text=True, check=False)
    if "rawin" in done.stderr and done.returncode != 0 and "Unknown" in done.stderr:
        pytest.skip("this openssl has no -rawin (needs OpenSSL 3)")
    assert done.returncode == 0, done.stderr
    assert "Signature Verified Successfully" in done.stdout


def test_a_tampered_signed_manifest_fails_its_signature(signed, keys, tmp_path):
    """Re-hash a changed file and rewrite the manifest and its digest consistently: only the signature catches it."""
    with zipfile.ZipFile(signed) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    summary = json.loads(members["summary.json"])
    summary["target"]["base_url"] = "http://forged.example"
    members["summary.json"] = json.dumps(summary).encode()
    manifest = json.loads(members["manifest.json"])
    for item in manifest["files"]:
        if item["path"] == "summary.json":
            item["sha256"] = hashlib.sha256(members["summary.json"]).hexdigest()
            item["size"] = len(members["summary.json"])
    members["manifest.json"] = json.dumps(manifest, indent=2).encode()
    digest = hashlib.sha256(members["manifest.json"]).hexdigest()
    members["manifest.json.sha256"] = f"{digest}  manifest.json\n".encode()
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(forged, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    report = evidence.verify_bundle(forged, public_key=keys["signer.pub"])
    assert report.intact
    assert report.authenticity == "not authentic" and report.exit_code == 6


def test_a_removed_signature_fails(signed, keys, tmp_path):
    stripped = rewrite(signed, tmp_path / "t.zip", remove="manifest.sig")
    report = evidence.verify_bundle(stripped, public_key=keys["signer.pub"])
    assert report.removed == ["manifest.sig"] and report.exit_code == 1


# ----------------------------------------------------------------------- CLI
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance.cli", "verify", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_cli_exit_codes_and_one_line_errors(run, tmp_path, keys):
    ok = _cli(str(run.bundle), "--intact-only")
    assert ok.returncode == 0 and ok.stdout.startswith("intact: yes: ") and ok.stderr == ""
    assert _cli(str(run.bundle)).returncode == 6

    tampered = rewrite(run.bundle, tmp_path / "t.zip", change="summary.json")
    bad = _cli(str(tampered))
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[0].startswith("changed: summary.json (SHA-256 ")
    assert bad.stdout.splitlines()[-1] == "NOT verified (exit 1)"

    not_zip = tmp_path / "not-a-bundle.zip"
    not_zip.write_text("hello")
    for args, expected in (
        ([str(not_zip)], f"conformance verify: {not_zip}: not a zip archive (File is not a zip file)"),
        ([str(tmp_path / "missing.zip")], f"conformance verify: {tmp_path / 'missing.zip'}: no such file"),
        ([str(run.bundle), "--public-key", str(not_zip)],
         f"conformance verify: cannot use public key {not_zip}: not a PEM Ed25519 public key"),
    ):
        done = _cli(*args)
        assert done.returncode == 2, done
        assert done.stdout.splitlines() == [expected] and "Traceback" not in done.stdout + done.stderr
