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

Every file is scanned for the profile's secret values before it is written; any
occurrence is replaced by ``<redacted>`` and listed under ``redactions`` in the
manifest. :func:`verify_bundle` recomputes every hash (``conformance verify``).
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
from conformance.reporting.allure import HTML_FILE, RESULTS_DIR, public_url
from conformance.reporting.compare import COMPARISON_FILE

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

EXIT_VERIFIED, EXIT_MISMATCH, EXIT_UNREADABLE = 0, 1, 2


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


def write_bundle(report_dir: Path, secrets: tuple[str, ...] = (), signing_key: str | Path | None = None,
                 created_at: str | None = None, destination: Path | None = None) -> Bundle:
    """Write ``evidence-<run id>.zip`` (into the report directory, or ``destination``) from a finished run."""
    report_dir = Path(report_dir)
    try:
        summary = json.loads((report_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise EvidenceError(f"summary.json of {report_dir} cannot be read: {error}") from None
    key = load_signing_key(signing_key) if signing_key else None
    files = _collect(report_dir, summary)
    redactions: dict[str, int] = {}
    for name, data in files.items():
        cleaned, count = redaction.redact(data, secrets)
        if count:
            files[name] = cleaned
            redactions[name] = count
    signature_info = None
    if key is not None:
        files[PUBLIC_KEY] = public_pem(key)
        signature_info = {
            "algorithm": "Ed25519",
            "file": SIGNATURE,
            "encoding": "raw 64-byte signature of the exact bytes of manifest.json",
            "public_key": PUBLIC_KEY,
            "public_key_sha256": sha256(_raw_public(key.public_key())),
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
    return Bundle(path=path, files=len(files) + len(head), signed=key is not None, redactions=redactions)


def build_bundle(result, profile) -> Path:
    """The run's evidence bundle (signed when the profile names a signing key); its path."""
    return write_bundle(
        Path(result.report_dir), secrets=tuple(getattr(profile, "secret_values", ())),
        signing_key=getattr(profile, "signing_key", None),
    ).path


# ------------------------------------------------------------------ verify
@dataclass
class VerifyReport:
    bundle: str
    error: str | None = None  # the bundle cannot be read at all (exit 2)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    signature: str = "not checked"  # valid / invalid / absent / not checked
    signature_detail: str = ""
    signature_required: bool = False
    manifest: dict[str, Any] | None = None
    files_checked: int = 0

    @property
    def signature_ok(self) -> bool:
        if self.signature == "invalid":
            return False
        return not (self.signature_required and self.signature != "valid")

    @property
    def ok(self) -> bool:
        return self.error is None and not (self.added or self.removed or self.changed) and self.signature_ok

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return EXIT_UNREADABLE
        return EXIT_VERIFIED if self.ok else EXIT_MISMATCH

    def problems(self) -> list[str]:
        lines = [f"changed: {name} ({self.details.get(name, 'SHA-256 differs from the manifest')})"
                 for name in self.changed]
        lines += [f"removed: {name} ({self.details.get(name, 'listed in the manifest, missing from the bundle')})"
                  for name in self.removed]
        lines += [f"added: {name} ({self.details.get(name, 'in the bundle, not in the manifest')})"
                  for name in self.added]
        if not self.signature_ok:
            lines.append(f"signature: {self.signature} ({self.signature_detail})")
        return lines


def _change(report: VerifyReport, name: str, why: str) -> None:
    if name not in report.changed:
        report.changed.append(name)
        report.details[name] = why


def verify_bundle(path: str | Path, public_key=None) -> VerifyReport:
    """Recompute every hash of a bundle; with ``public_key``, its signature must be present and valid."""
    report = VerifyReport(bundle=str(path), signature_required=public_key is not None)
    key = None
    if public_key is not None:
        try:
            key = load_public_key(public_key)
        except (OSError, EvidenceError) as error:
            report.error = f"cannot use public key {public_key}: {getattr(error, 'strerror', None) or error}"
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
        _check_signature(report, archive, entries, manifest, manifest_bytes, key, read)
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


def _check_signature(report, archive, entries, manifest, manifest_bytes, key, read) -> None:
    from cryptography.exceptions import InvalidSignature

    declared = manifest.get("signature")
    if SIGNATURE not in entries:
        if declared:
            report.removed.append(SIGNATURE)
            report.signature = "invalid"
            report.signature_detail = f"the manifest says it is signed, {SIGNATURE} is missing"
        else:
            report.signature = "absent"
            report.signature_detail = "the bundle is not signed" + (" but a public key was given" if key else "")
        return
    signature = read(SIGNATURE)
    if signature is None:
        report.signature, report.signature_detail = "invalid", f"{SIGNATURE} is unreadable"
        return
    if len(signature) != 64:
        with contextlib.suppress(ValueError):
            signature = base64.b64decode(signature, validate=True)
    source = "the given public key"
    if key is None:
        if PUBLIC_KEY not in entries:
            report.signature = "not checked"
            report.signature_detail = f"no {PUBLIC_KEY} in the bundle and no --public-key"
            return
        try:
            key = load_public_key(read(PUBLIC_KEY) or b"")
        except EvidenceError as error:
            report.signature, report.signature_detail = "invalid", f"{PUBLIC_KEY}: {error}"
            return
        source = f"the bundle's own {PUBLIC_KEY} (pass --public-key to pin the signer)"
    fingerprint = sha256(_raw_public(key))[:16]
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature:
        report.signature = "invalid"
        report.signature_detail = f"{SIGNATURE} does not match manifest.json under key {fingerprint}… ({source})"
        return
    report.signature = "valid"
    report.signature_detail = f"Ed25519 key sha256 {fingerprint}…, {source}"


def verify_command(bundle_path: str, public_key: str | None = None, say: Callable[[str], None] = print) -> int:
    """``conformance verify``: one line per problem naming the file, then one verdict line; 0 / 1 / 2."""
    report = verify_bundle(bundle_path, public_key=public_key)
    if report.error is not None:
        say(f"conformance verify: {report.error}")
        return report.exit_code
    for line in report.problems():
        say(line)
    manifest = report.manifest or {}
    about = (f"run {manifest.get('run_id')}, suite {manifest.get('suite', {}).get('version')}, "
             f"spec sha256 {str(manifest.get('spec_sha256'))[:12]}…")
    if report.ok:
        say(f"verified: {report.files_checked} files match {MANIFEST} of {bundle_path} ({about}); "
            f"signature {report.signature}" + (f": {report.signature_detail}" if report.signature_detail else ""))
    else:
        count = len(report.problems())
        say(f"NOT verified: {count} problem(s) in {bundle_path} ({about})")
    return report.exit_code
