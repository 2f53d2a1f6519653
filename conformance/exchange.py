"""An Exchange: what the suite sent, what came back, how long it took.

The one currency between layers. Checks judge exchanges; reporting and the
evidence bundle serialise the very exchanges that were judged, so what an
auditor reads is what was judged. Secrets are redacted only when serialising.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

_ids = itertools.count(1)
_ids_lock = threading.Lock()

REDACTED = "<redacted>"


def next_exchange_id() -> str:
    with _ids_lock:
        return f"x{next(_ids):06d}"


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _NOT_JSON


class _NotJson:
    def __repr__(self) -> str:
        return "<not JSON>"


_NOT_JSON = _NotJson()


def _lookup(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers:
        if key.lower() == lowered:
            return value
    return None


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]  # as sent, names in their original case
    body: bytes

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup (RFC 9110 §5.1)."""
        return _lookup(self.headers, name)

    def has_header(self, name: str) -> bool:
        return self.header(name) is not None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def json(self) -> Any:
        """The parsed body, or None when it is not JSON."""
        parsed = _parse_json(self.body)
        return None if parsed is _NOT_JSON else parsed

    @property
    def body_is_json(self) -> bool:
        return _parse_json(self.body) is not _NOT_JSON


@dataclass(frozen=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    elapsed_ms: float
    truncated: str | None = None  # why the suite stopped reading the body (size cap, time bound), if it did

    def header(self, name: str) -> str | None:
        return _lookup(self.headers, name)

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()

    @property
    def json(self) -> Any:
        parsed = _parse_json(self.body)
        return None if parsed is _NOT_JSON else parsed

    @property
    def envelope(self) -> dict | None:
        """The body when it is a JSON object, else None."""
        parsed = self.json
        return parsed if isinstance(parsed, dict) else None


@dataclass(frozen=True)
class Exchange:
    """One HTTP call. ``response`` is None when the call failed (``error`` says why)."""

    request: Request
    response: Response | None
    operation: str | None  # operationId, None for a path outside the contract
    origin: str  # e.g. "generated/fuzzing/negative" or "handwritten/test_headers::test_missing_trace"
    negative: bool = False  # built to be invalid on purpose
    error: str | None = None
    waited_ms: float | None = None  # with no response: how long the client waited before it gave up
    id: str = field(default_factory=next_exchange_id)
    started_at: float = field(default_factory=time.time)

    @property
    def elapsed_ms(self) -> float | None:
        return None if self.response is None else self.response.elapsed_ms

    @property
    def envelope(self) -> dict | None:
        return None if self.response is None else self.response.envelope

    @property
    def succeeded(self) -> bool:
        """The wallet said yes: an envelope with ok true and code "0"."""
        envelope = self.envelope
        return bool(envelope) and envelope.get("ok") is True and envelope.get("code") == "0"

    @property
    def code(self) -> Any:
        envelope = self.envelope
        return None if envelope is None else envelope.get("code")

    @property
    def rejected(self) -> bool:
        """The wallet said no: HTTP 4xx, or an envelope with ok false (spec decision D5)."""
        if self.response is None:
            return False
        if 400 <= self.response.status < 500:
            return True
        envelope = self.envelope
        return self.response.status < 300 and envelope is not None and envelope.get("ok") is False

    def to_record(self, secrets: frozenset[str] = frozenset()) -> dict:
        """A JSON-ready record for reports and evidence, with secret header values redacted."""

        def headers(items: tuple[tuple[str, str], ...]) -> list[list[str]]:
            return [[k, REDACTED if k.lower() in secrets else v] for k, v in items]

        def text(body: bytes) -> str:
            return body.decode("utf-8", errors="replace")

        record: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "origin": self.origin,
            "negative": self.negative,
            "started_at": round(self.started_at, 3),
            "request": {
                "method": self.request.method,
                "url": self.request.url,
                "headers": headers(self.request.headers),
                "body": text(self.request.body),
            },
            "response": None,
            "error": self.error,
            "waited_ms": None if self.waited_ms is None else round(self.waited_ms, 3),
        }
        if self.response is not None:
            record["response"] = {
                "status": self.response.status,
                "headers": headers(self.response.headers),
                "body": text(self.response.body),
                "elapsed_ms": round(self.response.elapsed_ms, 3),
            }
            if self.response.truncated:
                record["response"]["truncated"] = self.response.truncated
        return record

    def as_curl(self, secrets: frozenset[str] = frozenset()) -> str:
        """A curl command that replays the request (secret header values redacted)."""
        parts = ["curl", "-sS", "-X", self.request.method, _quote(self.request.url)]
        for key, value in self.request.headers:
            if key.lower() in ("content-length", "host", "accept-encoding", "connection"):
                continue
            shown = REDACTED if key.lower() in secrets else value
            parts += ["-H", _quote(f"{key}: {shown}")]
        if self.request.body:
            parts += ["--data-raw", _quote(self.request.body.decode("utf-8", errors="replace"))]
        return " ".join(parts)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
