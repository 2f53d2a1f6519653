"""Secrets never leave a run: ONE redaction function, :func:`scrub`, for every place that writes.

The journal's records, the exchanges' curl lines, summary.json, JUnit, Allure, the evidence bundle,
error messages and every line on stdout/stderr go through :func:`scrub` with the run's
:class:`Secrets` (built once from the profile by :meth:`Secrets.of`).

Redaction is structural first, so that a short secret is caught where it sits without corrupting
anything else (redacting the value ``"1"`` by substring would turn ``"elapsed_ms": 1.0`` into junk):

- by header name: the value of every secret header (the profile's extra headers, and always
  ``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``), wherever a header is
  written: ``[name, value]`` pairs and ``{name: value}`` maps in records, ``Name: value`` in curl
  lines and text, ``Name=value`` in a malformed command-line argument;
- URL credentials: ``scheme://user:password@host`` loses its userinfo in any string;
- then, for values of :data:`MIN_BLIND_LENGTH` characters or more, every remaining occurrence of the
  value and of its encoded forms (JSON-escaped, URL-encoded, base64, ``user:password`` as base64) in
  string values only, never in numbers or keys.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

REDACTED = "<redacted>"
_XML_REDACTED = "&lt;redacted&gt;"  # REDACTED as it stands in XML text (junit.xml)
#: Header names whose values are always secret, whatever the profile says.
ALWAYS_SECRET = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
#: Shorter values are redacted structurally only (where they sit as a header value or URL credential).
MIN_BLIND_LENGTH = 4
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@'\"<>]+@")


@dataclass(frozen=True)
class Secrets:
    """What counts as secret in one run: header names (lower case) and the secret values themselves."""

    header_names: frozenset[str] = frozenset()
    values: tuple[str, ...] = ()
    credentials: tuple[tuple[str, str], ...] = ()  # (user, password) of URLs: base64'd in Authorization: Basic

    @classmethod
    def of(cls, profile: Any) -> Secrets:
        """The profile's extra headers (names and values) and the userinfo of its base URL."""
        headers = tuple(getattr(profile, "headers", ()) or ())
        return cls.build(headers=headers, urls=(getattr(profile, "base_url", None),))

    @classmethod
    def build(cls, headers: Iterable[tuple[str, str]] = (), urls: Iterable[str | None] = (),
              values: Iterable[str] = ()) -> Secrets:
        headers = tuple(headers)
        names = {name.lower() for name, _ in headers if name}
        found = [value for _, value in headers if value]
        pairs = []
        for url in urls:
            found += url_credentials(url)
            parts = urlsplit(str(url)) if url else None
            if parts is not None and parts.username:
                pairs.append((unquote(parts.username), unquote(parts.password or "")))
        found += [v for v in values if v]
        return cls(frozenset(names), tuple(dict.fromkeys(found)), tuple(pairs))

    @classmethod
    def coerce(cls, secrets: Secrets | Iterable[str] | None) -> Secrets:
        if isinstance(secrets, Secrets):
            return secrets
        return cls(values=tuple(dict.fromkeys(s for s in (secrets or ()) if s)))

    @property
    def names(self) -> frozenset[str]:
        return self.header_names | ALWAYS_SECRET

    def forms(self) -> list[str]:
        """Every textual form a long-enough secret takes in a report, longest first."""
        return list(_forms(self.values, self.credentials))

    def __bool__(self) -> bool:
        return bool(self.values or self.header_names)


@functools.lru_cache(maxsize=64)
def _forms(values: tuple[str, ...], credentials: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    forms: set[str] = set()
    for value in values:
        if len(value) < MIN_BLIND_LENGTH:
            continue
        forms |= {value, json.dumps(value)[1:-1], quote(value, safe=""), quote_plus(value, safe=""),
                  base64.b64encode(value.encode()).decode(), json.dumps(value, ensure_ascii=False)[1:-1]}
    for user, password in credentials:
        forms.add(base64.b64encode(f"{user}:{password}".encode()).decode())
    return tuple(sorted((f for f in forms if len(f) >= MIN_BLIND_LENGTH), key=len, reverse=True))


@functools.lru_cache(maxsize=64)
def _forms_pattern(values: tuple[str, ...], credentials: tuple[tuple[str, str], ...]) -> re.Pattern | None:
    """One alternation of every form, longest first: a single pass over a string finds them all."""
    forms = _forms(values, credentials)
    return re.compile("|".join(re.escape(f) for f in forms)) if forms else None


def url_credentials(url: str | None) -> list[str]:
    """The password of a URL (raw and percent-decoded), when it carries one.

    The user name is not a secret value on its own (it is redacted where it stands, in the URL's userinfo and
    inside Authorization: Basic): replacing every occurrence of a short name such as "user" turned
    "get-user-amount" into "get-<redacted>-amount" in the very message the operator needs."""
    if not url:
        return []
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return []
    password = parts.password
    return list(dict.fromkeys([password, unquote(password)])) if password else []


def public_url(url: str | None) -> str:
    """The URL without user:password@ and without its query (either may carry credentials)."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


# ------------------------------------------------------------------ the function
def scrub(value: Any, secrets: Secrets | Iterable[str] | None) -> Any:
    """``value`` with every secret replaced by ``<redacted>``: str, bytes, or a JSON-like structure.

    Records (dicts and lists) are walked: a header's value is redacted by its name, strings by
    :func:`_text`; numbers, booleans and keys are never touched.
    """
    secrets = Secrets.coerce(secrets)
    if isinstance(value, str):
        return _text(value, secrets)
    if isinstance(value, bytes | bytearray):
        return _text(bytes(value).decode("utf-8", "surrogateescape"), secrets).encode("utf-8", "surrogateescape")
    if isinstance(value, dict):
        names = secrets.names
        return {k: (REDACTED if isinstance(k, str) and k.lower() in names and isinstance(v, str | bytes)
                    else scrub(v, secrets)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if (len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], str)
                and value[0].lower() in secrets.names):
            return type(value)([value[0], REDACTED])
        return type(value)(scrub(item, secrets) for item in value)
    return value


@functools.lru_cache(maxsize=256)
def _header_patterns(names: tuple[str, ...]) -> list[tuple[re.Pattern, str]]:
    alternation = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return [
        # "Name": "value" / ["Name", "value"] (JSON), 'Name': 'value' (Python repr)
        (re.compile(rf'(?i)"({alternation})"(\s*[:,]\s*)"(?:[^"\\]|\\.)*"'), rf'"\1"\2"{REDACTED}"'),
        (re.compile(rf"(?i)'({alternation})'(\s*[:,]\s*)'(?:[^'\\]|\\.)*'"), rf"'\1'\2'{REDACTED}'"),
        # Name: value (curl -H, HTTP text), Name=value (a malformed --header argument)
        # (a value already redacted, also as XML text, is left alone: redaction is idempotent)
        (re.compile(rf"(?i)(?<![\w-])({alternation})(\s*[:=][ \t]*)(?![ \t]*(?:{re.escape(REDACTED)}|{_XML_REDACTED}))"
                    rf"[^\s'\"][^'\"\r\n]*"),
         rf"\1\2{REDACTED}"),
    ]


def _text(text: str, secrets: Secrets) -> str:
    if "://" in text and "@" in text:
        text = _USERINFO.sub(rf"\1{REDACTED}@", text)
    lowered = text.lower()
    present = tuple(sorted(n for n in secrets.names if n in lowered))
    if present:
        for pattern, replacement in _header_patterns(present):
            text = pattern.sub(replacement, text)
    pattern = _forms_pattern(secrets.values, secrets.credentials)
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return text


# ---------------------------------------------------------------------- files
def redact_file(path: Path, secrets: Secrets | Iterable[str] | None) -> bool:
    """Redact one report file in place (JSON and JSON Lines structurally); True when it changed."""
    secrets = Secrets.coerce(secrets)
    data = path.read_bytes()
    name = path.name
    cleaned: bytes
    if name.endswith(".jsonl"):
        lines = []
        for line in data.decode("utf-8", "surrogateescape").splitlines():
            try:
                lines.append(json.dumps(scrub(json.loads(line), secrets), ensure_ascii=False, sort_keys=True))
            except ValueError:
                lines.append(_text(line, secrets))
        cleaned = ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8", "surrogateescape")
    elif name.endswith(".json"):
        try:
            original = json.loads(data)
        except ValueError:
            cleaned = scrub(data, secrets)
        else:
            scrubbed = scrub(original, secrets)
            if scrubbed == original:
                return False
            cleaned = (json.dumps(scrubbed, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    else:
        cleaned = scrub(data, secrets)
    if cleaned == data:
        return False
    path.write_bytes(cleaned)
    return True


def scrub_tree(directory: Path, secrets: Secrets | Iterable[str] | None, skip: Iterable[str] = ()) -> dict[str, int]:
    """Redact every file under ``directory`` in place; {relative path: 1} for each file that changed."""
    secrets = Secrets.coerce(secrets)
    skipped = set(skip)
    found: dict[str, int] = {}
    if not secrets.values and not secrets.header_names:
        return found
    for path in sorted(Path(directory).rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if not path.is_file() or path.is_symlink() or relative.split("/", 1)[0] in skipped or relative in skipped:
            continue
        if redact_file(path, secrets):
            found[relative] = 1
    return found


def contains(data: bytes | str, secrets: Secrets | Iterable[str] | None) -> bool:
    """Whether a long-enough secret (or an encoded form) occurs in ``data`` (short ones cannot be told apart)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return any(form in text for form in Secrets.coerce(secrets).forms())


def redact(data: bytes, secrets: Secrets | Iterable[str] | None) -> tuple[bytes, int]:
    """Legacy shape of :func:`scrub` for bytes: (redacted bytes, 1 if anything changed else 0)."""
    cleaned = scrub(bytes(data), secrets)
    return cleaned, int(cleaned != data)


def usable(secrets: Iterable[str]) -> list[str]:
    """Secret values long enough to be searched for as substrings."""
    return [s for s in dict.fromkeys(secrets) if s and len(s) >= MIN_BLIND_LENGTH]
