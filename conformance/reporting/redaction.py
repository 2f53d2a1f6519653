"""The last line of defence for secrets: no profile secret leaves a run in any report file.

The journal and the profile record already redact secret header values where they
write them. This module checks every byte that ends up in the report directory
and in the evidence bundle anyway (tracebacks, third-party reporters and future
code can leak), and replaces any occurrence by ``<redacted>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

REDACTED = b"<redacted>"
#: Shorter values are not scrubbed: replacing every "abc" in the evidence would corrupt it.
MIN_SECRET_LENGTH = 4


def variants(secret: str) -> list[bytes]:
    """The byte forms a secret takes in report files: raw UTF-8 and JSON-escaped (ASCII or not)."""
    forms = {
        secret.encode("utf-8"),
        json.dumps(secret, ensure_ascii=True)[1:-1].encode("ascii"),
        json.dumps(secret, ensure_ascii=False)[1:-1].encode("utf-8"),
    }
    return sorted(forms, key=len, reverse=True)


def usable(secrets: Iterable[str]) -> list[str]:
    return [s for s in dict.fromkeys(secrets) if s and len(s) >= MIN_SECRET_LENGTH]


def redact(data: bytes, secrets: Iterable[str]) -> tuple[bytes, int]:
    """``data`` with every secret replaced by ``<redacted>``, and how many were replaced."""
    count = 0
    for secret in usable(secrets):
        for form in variants(secret):
            found = data.count(form)
            if found:
                count += found
                data = data.replace(form, REDACTED)
    return data, count


def contains(data: bytes, secrets: Iterable[str]) -> bool:
    return any(form in data for secret in usable(secrets) for form in variants(secret))


def scrub_tree(directory: Path, secrets: Iterable[str], skip: Iterable[str] = ()) -> dict[str, int]:
    """Redact secrets in every file under ``directory`` in place; {relative path: occurrences}."""
    secrets = usable(secrets)
    skipped = set(skip)
    found: dict[str, int] = {}
    if not secrets:
        return found
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if not path.is_file() or path.is_symlink() or relative.split("/", 1)[0] in skipped or relative in skipped:
            continue
        data = path.read_bytes()
        cleaned, count = redact(data, secrets)
        if count:
            path.write_bytes(cleaned)
            found[relative] = count
    return found
