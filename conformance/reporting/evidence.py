"""The evidence bundle: one archive per run that an auditor can check without the suite's code.

``evidence-<run id>.zip`` in the report directory holds::

    manifest.json                 files (path, sha256, size), suite version, spec sha256, run id, seed, ...
    manifest.json.sha256          SHA-256 of manifest.json (sha256sum format): catches a damaged manifest
    manifest.sig                  optional: Ed25519 signature of the exact bytes of manifest.json,
                                  raw 64 bytes (verify: openssl pkeyutl -verify -pubin
                                  -inkey signing-key.pub.pem -rawin -in manifest.json -sigfile manifest.sig)
    signing-key.pub.pem           optional: the public key of the signer (listed in the manifest)
    VERSION                       the suite version
    spec/webhook.openapi.yaml     the contract tested, and its SHA-256 (spec/webhook.openapi.yaml.sha256)
    spec/requirements.yaml        the requirement catalogue
    spec/webhook-api.reference.md the reference text the requirements cite
    summary.json                  verdicts (the seed is in run.seed)
    profile.json                  the effective target profile, secrets redacted
    traceability.json             requirement -> checks -> tests -> verdict -> evidence (exchange ids)
    exchanges.jsonl outcomes.jsonl  every HTTP exchange and every check outcome
    ledger.json                   every money adjustment made and how it was compensated
    junit.xml allure-results/**   the test results; report.html and comparison.json when present

Every file goes through :func:`conformance.reporting.redaction.scrub` before it is written; a file
that changed is listed under ``redactions`` in the manifest. The manifest also states the verdict and
which requirements failed, warned and were skipped; ``conformance verify`` checks them against
``summary.json``.

``conformance verify`` answers two questions apart (README, "Verifying evidence"):

- *intact*: every file matches the manifest, the manifest matches its digest, and the manifest's verdict
  agrees with ``summary.json`` (and summary.json's verdict with its own requirements);
- *authentic*: ``manifest.sig`` verifies under a key the operator trusts: ``--public-key FILE`` or
  ``--fingerprint SHA256`` (of the raw Ed25519 public key, printed by the run that signed). The
  ``signing-key.pub.pem`` shipped in the bundle proves nothing on its own: anyone can re-sign with theirs.

Exit codes: 0 intact and authentic; 1 not intact (tampered, damaged, or the verdicts disagree);
2 unreadable (not a zip, no manifest, unusable key file, bad fingerprint); 6 intact but not authentic
(signed by another key, bad signature, unsigned, or no trusted key given; ``--intact-only`` turns the
last two into 0 for a bundle nobody signed).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance import __version__, contract
from conformance.reporting import redaction, traceability
from conformance.reporting.compare import COMPARISON_FILE
from conformance.reporting.html import HTML_FILE, RESULTS_DIR
from conformance.reporting.redaction import public_url

FORMAT = "multimarkets-webhook-conformance/evidence/1"
MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest.json.sha256"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "signing-key.pub.pem"
#: Files of the bundle that the manifest cannot list (they are about the manifest itself).
ABOUT_MANIFEST = (MANIFEST, MANIFEST_DIGEST, SIGNATURE)
#: Report-dir files copied as they are (when present); summary.json and profile.json are required.
REPORT_FILES = ("summary.json", "profile.json", "exchanges.jsonl", "outcomes.jsonl", "ledger.json", "junit.xml",
                HTML_FILE, COMPARISON_FILE)
REQUIRED = ("summary.json", "profile.json")

EXIT_VERIFIED, EXIT_MISMATCH, EXIT_UNREADABLE, EXIT_NOT_AUTHENTIC = 0, 1, 2, 6


class EvidenceError(Exception):
    """The bundle cannot be built (a required file is missing, the signing key is unusable)."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bundle_name(run_id: str) -> str:
    return f"evidence-{run_id}.zip"


# ------------------------------------------------------------------ signing
def load_signing_key(path: str | Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise EvidenceError(f"signing key {path} cannot be read: {error.strerror or error}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise EvidenceError(f"signing key {path} is encrypted; give an unencrypted Ed25519 PEM key") from None
    except ValueError:
        raise EvidenceError(f"signing key {path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise EvidenceError(f"signing key {path} is not an Ed25519 key ({type(key).__name__})")
    return key


def public_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(source):
    """An Ed25519 public key from a PEM file path (a public key, or a private key whose public half is used)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    if isinstance(source, Ed25519PublicKey):
        return source
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError):
            raise EvidenceError("not a PEM Ed25519 public key") from None
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise EvidenceError(f"not an Ed25519 key ({type(key).__name__})")
    return key


def _raw_public(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# ------------------------------------------------------------------- build
@dataclass
class Bundle:
    path: Path
    files: int
    signed: bool
    redactions: dict[str, int]
    fingerprint: str | None = None  # sha256:<hex of the raw public key> of the signer


def fingerprint(key) -> str:
    """The pinnable identity of an Ed25519 public key: ``sha256:`` + hex SHA-256 of its 32 raw bytes."""
    return "sha256:" + sha256(_raw_public(key))


def normalise_fingerprint(text: str) -> str:
    value = text.strip().lower().removeprefix("sha256:").replace(":", "")
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise EvidenceError(f"fingerprint {text!r} is not sha256:<64 hex digits>")
    return "sha256:" + value


def requirement_lists(summary: dict[str, Any]) -> dict[str, list[str]]:
    """The ids per status that counts against or leaves out a requirement (as the manifest states them)."""
    lists: dict[str, list[str]] = {}
    for status in ("failed", "warning", "flaky", "waived", "skipped"):
        lists[status] = [r["id"] for r in summary.get("requirements", []) if r.get("status") == status]
    return lists


def _collect(report_dir: Path, summary: dict[str, Any]) -> dict[str, bytes]:
    spec = contract.load()
    files: dict[str, bytes] = {
        f"spec/{spec.spec_path.name}": spec.spec_bytes,
        f"spec/{spec.spec_path.name}.sha256": f"{spec.spec_sha256}  {spec.spec_path.name}\n".encode(),
        f"spec/{spec.catalogue_path.name}": spec.catalogue_bytes,
        f"spec/{spec.reference_path.name}": spec.reference_bytes,
        "VERSION": f"{__version__}\n".encode(),
    }
    for name in REPORT_FILES:
        path = report_dir / name
        if path.is_file():
            files[name] = path.read_bytes()
        elif name in REQUIRED:
            raise EvidenceError(f"{name} is missing from {report_dir}")
    results = report_dir / RESULTS_DIR
    if results.is_dir():
        for path in sorted(results.rglob("*")):
            if path.is_file() and not path.is_symlink():
                files[f"{RESULTS_DIR}/{path.relative_to(results).as_posix()}"] = path.read_bytes()
    matrix = traceability.build(report_dir, summary)
    files[traceability.TRACEABILITY_FILE] = (json.dumps(matrix, indent=2, ensure_ascii=False) + "\n").encode()
    return files


def write_bundle(report_dir: Path, secrets: redaction.Secrets | tuple[str, ...] = (),
                 signing_key: str | Path | None = None, created_at: str | None = None,
                 destination: Path | None = None) -> Bundle:
    """Write ``evidence-<run id>.zip`` (into the report directory, or ``destination``) from a finished run."""
    report_dir = Path(report_dir)
    try:
        summary = json.loads((report_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise EvidenceError(f"summary.json of {report_dir} cannot be read: {error}") from None
    key = load_signing_key(signing_key) if signing_key else None
    files = _collect(report_dir, summary)
    redactions: dict[str, int] = {}
    secrets = redaction.Secrets.coerce(secrets)
    for name, data in files.items():
        cleaned = redaction.scrub(data, secrets)
        if cleaned != data:
            files[name] = cleaned
            redactions[name] = 1
    signature_info = None
    if key is not None:
        files[PUBLIC_KEY] = public_pem(key)
        signature_info = {
            "algorithm": "Ed25519",
            "file": SIGNATURE,
            "encoding": "raw 64-byte signature of the exact bytes of manifest.json",
            "public_key": PUBLIC_KEY,
            "public_key_sha256": sha256(_raw_public(key.public_key())),
            "fingerprint": fingerprint(key.public_key()),
        }
    run = summary.get("run", {})
    spec = contract.load()
    manifest = {
        "format": FORMAT,
        "suite": {"name": summary.get("suite", {}).get("name"), "version": __version__},
        "spec": {"file": f"spec/{spec.spec_path.name}", "sha256": spec.spec_sha256,
                 "catalogue_sha256": spec.catalogue_sha256},
        "spec_sha256": spec.spec_sha256,
        "run_id": run.get("id"),
        "seed": run.get("seed"),
        "target": public_url((summary.get("target") or {}).get("base_url")),
        "verdict": summary.get("verdict"),
        "exit_code": summary.get("exit_code"),
        "counts": summary.get("counts"),
        "requirements": requirement_lists(summary),
        "created_at": created_at or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files": [{"path": name, "sha256": sha256(data), "size": len(data)} for name, data in sorted(files.items())],
        "redactions": [{"file": name, "occurrences": count} for name, count in sorted(redactions.items())],
        "signature": signature_info,
    }
    manifest_bytes = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    head = {MANIFEST: manifest_bytes, MANIFEST_DIGEST: f"{sha256(manifest_bytes)}  {MANIFEST}\n".encode()}
    if key is not None:
        head[SIGNATURE] = key.sign(manifest_bytes)
    path = Path(destination) if destination else report_dir / bundle_name(str(run.get("id") or "unknown"))
    handle, scratch = tempfile.mkstemp(prefix=".evidence-", suffix=".zip", dir=path.parent)
    os.close(handle)
    try:
        with zipfile.ZipFile(scratch, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
            for name, data in [*head.items(), *sorted(files.items())]:
                archive.writestr(name, data)
        os.replace(scratch, path)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    return Bundle(path=path, files=len(files) + len(head), signed=key is not None, redactions=redactions,
                  fingerprint=fingerprint(key.public_key()) if key is not None else None)


def build_bundle(result, profile) -> Path:
    """The run's evidence bundle (signed when the profile names a signing key); its path."""
    return write_bundle(
        Path(result.report_dir), secrets=redaction.Secrets.of(profile),
        signing_key=getattr(profile, "signing_key", None),
    ).path


# ------------------------------------------------------------------ verify
@dataclass
class VerifyReport:
    bundle: str
    error: str | None = None  # the bundle (or the trusted key) cannot be read at all (exit 2)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    disagreements: list[str] = field(default_factory=list)  # the manifest's verdict against summary.json
    authenticity: str = "not checked"  # authentic / not authentic / not checked
    authenticity_detail: str = ""
    key_given: bool = False
    manifest: dict[str, Any] | None = None
    files_checked: int = 0

    @property
    def intact(self) -> bool:
        return self.error is None and not (self.added or self.removed or self.changed or self.disagreements)

    @property
    def authentic(self) -> bool:
        return self.authenticity == "authentic"

    @property
    def ok(self) -> bool:
        return self.intact and self.authentic

    def exit_code_for(self, intact_only: bool = False) -> int:
        if self.error is not None:
            return EXIT_UNREADABLE
        if not self.intact:
            return EXIT_MISMATCH
        if self.authentic:
            return EXIT_VERIFIED
        if intact_only and not self.key_given:
            return EXIT_VERIFIED
        return EXIT_NOT_AUTHENTIC

    @property
    def exit_code(self) -> int:
        return self.exit_code_for()

    def problems(self) -> list[str]:
        lines = [f"changed: {name} ({self.details.get(name, 'SHA-256 differs from the manifest')})"
                 for name in self.changed]
        lines += [f"removed: {name} ({self.details.get(name, 'listed in the manifest, missing from the bundle')})"
                  for name in self.removed]
        lines += [f"added: {name} ({self.details.get(name, 'in the bundle, not in the manifest')})"
                  for name in self.added]
        lines += [f"verdict: {line}" for line in self.disagreements]
        return lines


def _change(report: VerifyReport, name: str, why: str) -> None:
    if name not in report.changed:
        report.changed.append(name)
        report.details[name] = why


def _trusted_key(report: VerifyReport, public_key, pinned: str | None):
    """The key the operator trusts (or None), and a fingerprint to hold the bundle's key to."""
    key = None
    if public_key is not None:
        try:
            key = load_public_key(public_key)
        except (OSError, EvidenceError) as error:
            report.error = f"cannot use public key {public_key}: {getattr(error, 'strerror', None) or error}"
            return None, None
    if pinned is not None:
        try:
            pinned = normalise_fingerprint(pinned)
        except EvidenceError as error:
            report.error = str(error)
            return None, None
        if key is not None and fingerprint(key) != pinned:
            report.error = f"--public-key {public_key} has fingerprint {fingerprint(key)}, not the pinned {pinned}"
            return None, None
    return key, pinned


def verify_bundle(path: str | Path, public_key=None, fingerprint_pin: str | None = None) -> VerifyReport:
    """Is the bundle intact (every hash, the verdicts agree)? Is it authentic (signed by the trusted key)?"""
    report = VerifyReport(bundle=str(path), key_given=public_key is not None or fingerprint_pin is not None)
    key, pinned = _trusted_key(report, public_key, fingerprint_pin)
    if report.error is not None:
        return report
    target = Path(path)
    if not target.is_file():
        report.error = f"{path}: no such file"
        return report
    try:
        archive = zipfile.ZipFile(target)
    except (zipfile.BadZipFile, OSError) as error:
        report.error = f"{path}: not a zip archive ({error})"
        return report
    with archive:
        entries = [info.filename for info in archive.infolist() if not info.is_dir()]
        duplicates = sorted({name for name in entries if entries.count(name) > 1})
        if MANIFEST not in entries:
            report.error = f"{path}: no {MANIFEST} (not an evidence bundle, or its manifest was removed)"
            return report

        def read(name: str) -> bytes | None:
            try:
                return archive.read(name)
            except Exception as error:  # damaged member: bad CRC, bad deflate stream, ...
                _change(report, name, f"unreadable: {error}")
                return None

        manifest_bytes = read(MANIFEST)
        if manifest_bytes is None:
            return report
        if MANIFEST_DIGEST in entries:
            digest = read(MANIFEST_DIGEST)
            expected = (digest or b"").decode("ascii", "replace").split(" ", 1)[0].strip()
            if digest is not None and expected != sha256(manifest_bytes):
                _change(report, MANIFEST, f"its SHA-256 differs from {MANIFEST_DIGEST}")
        else:
            report.removed.append(MANIFEST_DIGEST)
        try:
            manifest = json.loads(manifest_bytes.decode("utf-8"))
            listed = {item["path"]: item for item in manifest["files"]}
            for item in listed.values():
                str(item["sha256"]), int(item["size"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
            _change(report, MANIFEST, f"not a readable manifest: {type(error).__name__}: {error}")
            return report
        report.manifest = manifest
        contents: dict[str, bytes] = {}
        for name, item in sorted(listed.items()):
            if name not in entries:
                report.removed.append(name)
                continue
            measured = _stream_digest(archive, name, int(item["size"]), report)
            if measured is None:
                continue
            report.files_checked += 1
            actual, size = measured
            if actual != item["sha256"] or size != item["size"]:
                _change(report, name, f"SHA-256 {actual[:16]}… ≠ manifest {str(item['sha256'])[:16]}…")
            if name == "summary.json":  # the one member read whole (its verdict is checked below)
                contents[name] = read(name) if size == item["size"] else None
        for name in sorted(set(entries)):
            if name not in listed and name not in ABOUT_MANIFEST:
                report.added.append(name)
        for name in duplicates:
            if name not in report.added:
                report.added.append(name)
                report.details[name] = "the bundle holds this path more than once"
        spec_file = (manifest.get("spec") or {}).get("file")
        spec_item = listed.get(spec_file or "")
        if spec_item is not None and spec_item["sha256"] != manifest.get("spec_sha256"):
            _change(report, MANIFEST, f"spec_sha256 does not match {spec_file}")
        _check_verdicts(report, manifest, contents.get("summary.json"))
        _check_signature(report, entries, manifest, manifest_bytes, key, pinned, read)
    return report


def _stream_digest(archive, name: str, expected_size: int, report) -> tuple[str, int] | None:
    """SHA-256 and size of a member, streamed in blocks; stops one byte past the manifest's size (a member
    that inflates beyond what the manifest says is changed, and is never expanded whole in memory)."""
    digest, size = hashlib.sha256(), 0
    try:
        with archive.open(name) as member:
            while size <= expected_size:
                block = member.read(min(1 << 20, expected_size + 1 - size))
                if not block:
                    break
                digest.update(block)
                size += len(block)
    except Exception as error:  # damaged member: bad CRC, bad deflate stream, ...
        _change(report, name, f"unreadable: {error}")
        return None
    return digest.hexdigest(), size


def _check_verdicts(report: VerifyReport, manifest: dict, summary_bytes: bytes | None) -> None:
    """The manifest's verdict and requirement lists must be summary.json's, and summary.json must agree with itself."""
    from conformance import verdicts

    if summary_bytes is None:
        report.disagreements.append("summary.json is missing: nothing to hold the manifest's verdict to")
        return
    try:
        summary = json.loads(summary_bytes.decode("utf-8"))
        rows = summary["requirements"]
        recomputed, recomputed_exit = verdicts.overall(rows, summary.get("suite_errors") or ())
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        report.disagreements.append(f"summary.json is not a readable summary ({type(error).__name__})")
        return
    for name in ("verdict", "exit_code"):
        if manifest.get(name) != summary.get(name):
            report.disagreements.append(f"the manifest says {name} {manifest.get(name)!r}, "
                                        f"summary.json says {summary.get(name)!r}")
    if "requirements" in manifest and manifest["requirements"] != requirement_lists(summary):
        report.disagreements.append("the manifest's failed/warning/skipped requirements differ from summary.json")
    if summary.get("verdict") not in (recomputed, None) and not summary.get("flaky_fails"):
        report.disagreements.append(f"summary.json says {summary.get('verdict')!r} but its requirements make it "
                                    f"{recomputed!r} (exit {recomputed_exit})")


def _check_signature(report, entries, manifest, manifest_bytes, key, pinned, read) -> None:
    from cryptography.exceptions import InvalidSignature

    if SIGNATURE not in entries:
        report.authenticity = "not authentic" if report.key_given else "not checked"
        report.authenticity_detail = "the bundle is not signed" + (
            "" if report.key_given else "; nobody vouches for it (give --public-key or --fingerprint)")
        if manifest.get("signature"):
            report.removed.append(SIGNATURE)
        return
    if key is None and pinned is None:
        report.authenticity = "not checked"
        report.authenticity_detail = (f"signed, but no trusted key given: the bundle's own {PUBLIC_KEY} proves "
                                      "nothing (give --public-key or --fingerprint)")
        return
    signature = read(SIGNATURE)
    if signature is None:
        report.authenticity, report.authenticity_detail = "not authentic", f"{SIGNATURE} is unreadable"
        return
    if len(signature) != 64:
        with contextlib.suppress(ValueError):
            signature = base64.b64decode(signature, validate=True)
    if key is None:  # only a pinned fingerprint: the shipped key counts only if it is the pinned one
        shipped = read(PUBLIC_KEY) if PUBLIC_KEY in entries else None
        try:
            key = load_public_key(shipped or b"")
        except EvidenceError:
            report.authenticity = "not authentic"
            report.authenticity_detail = f"no usable {PUBLIC_KEY} in the bundle to match the pinned {pinned}"
            return
        if fingerprint(key) != pinned:
            report.authenticity = "not authentic"
            report.authenticity_detail = f"signed by key {fingerprint(key)}, not the pinned {pinned}"
            return
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature:
        report.authenticity = "not authentic"
        report.authenticity_detail = (f"{SIGNATURE} does not verify under the trusted key {fingerprint(key)} "
                                      "(signed by another key, or the manifest was changed)")
        return
    report.authenticity = "authentic"
    report.authenticity_detail = f"signed by the trusted key {fingerprint(key)}"


def verify_command(bundle_path: str, public_key: str | None = None, say: Callable[[str], None] = print, *,
                   fingerprint_pin: str | None = None, intact_only: bool = False) -> int:
    """``conformance verify``: one line per problem, then ``intact:`` and ``authentic:`` lines; 0 / 1 / 2 / 6."""
    report = verify_bundle(bundle_path, public_key=public_key, fingerprint_pin=fingerprint_pin)
    if report.error is not None:
        say(f"conformance verify: {report.error}")
        return report.exit_code_for(intact_only)
    for line in report.problems():
        say(line)
    manifest = report.manifest or {}
    about = (f"run {manifest.get('run_id')}, verdict {manifest.get('verdict')}, suite "
             f"{manifest.get('suite', {}).get('version')}, spec sha256 {str(manifest.get('spec_sha256'))[:12]}…")
    if report.intact:
        say(f"intact: yes: {report.files_checked} files match {MANIFEST} and the verdicts agree ({about})")
    else:
        say(f"intact: NO: {len(report.problems())} problem(s) in {bundle_path} ({about})")
    label = {"authentic": "yes", "not authentic": "NO, not authentic", "not checked": "not checked"}
    say(f"authentic: {label[report.authenticity]}: {report.authenticity_detail}")
    code = report.exit_code_for(intact_only)
    if code == EXIT_VERIFIED:
        say("verified" + ("" if report.authentic else " (intact only: nothing shows who wrote it)"))
    else:
        say(f"NOT verified (exit {code})")
    return code
