"""The suite's HTTP client: bounded rate, timeouts, TLS settings, every call recorded as an Exchange.

Used by the handwritten suite, the preflight and the money ledger's
compensation. (Schemathesis sends its own requests; its hooks record them
through the same :class:`~conformance.journal.Journal`.)
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

import requests

from conformance import contract
from conformance.exchange import Exchange, Request, Response
from conformance.profile import Profile
from conformance.reporting import redaction


class RateLimiter:
    """At most ``rate`` calls per second, spaced evenly (no bursts against a real target)."""

    def __init__(self, rate: float | None):
        self.interval = 0.0 if not rate else 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


def now_millis() -> int:
    return int(time.time() * 1000)


def new_trace() -> str:
    return f"conformance-{uuid.uuid4().hex}"


def describe_transport_error(error: BaseException, timeout: float) -> str:
    """One line saying why a call got no HTTP answer."""
    if isinstance(error, requests.exceptions.SSLError):
        return f"TLS handshake failed ({_root_cause(error)})"
    if isinstance(error, requests.exceptions.Timeout):
        return f"timed out: no answer within {timeout:g} s"
    if isinstance(error, requests.exceptions.ConnectionError):
        cause = _root_cause(error)
        lowered = cause.lower()
        if "name or service not known" in lowered or "nodename nor servname" in lowered or "resolve" in lowered:
            return f"the host name does not resolve ({cause})"
        if "refused" in lowered:
            return "connection refused"
        if _chain_has(error, http.client.BadStatusLine) or "connection aborted" in lowered:
            return f"the server did not answer with HTTP ({cause})"
        return f"connection failed ({cause})"
    if isinstance(error, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema):
        return f"invalid URL ({error})"
    return f"{type(error).__name__}: {error}"


def _chain_has(error: BaseException, kind: type) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind) or any(isinstance(arg, kind) for arg in getattr(seen, "args", ())):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _root_cause(error: BaseException) -> str:
    seen = error
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    text = str(seen) or type(seen).__name__
    return text.splitlines()[0][:200]


class Client:
    """Sends documented (and deliberately broken) calls to the target and records each one."""

    def __init__(self, profile: Profile, journal: Any | None = None):
        if profile.base_url is None:
            raise ValueError("the profile has no base URL yet")
        self.profile = profile
        self.journal = journal
        self.session = requests.Session()
        self.session.verify = profile.tls_verify_setting
        self.session.headers.update({"User-Agent": "multimarkets-webhook-conformance"})
        self.limiter = RateLimiter(profile.effective_rate_limit)
        self.contract = contract.load()

    def _scrub(self, text: str) -> str:
        """``text`` without the profile's secret header values (requests quotes a value in some errors)."""
        secrets = [value for _, value in self.profile.headers]
        return redaction.redact(text.encode("utf-8"), secrets)[0].decode("utf-8")

    def close(self) -> None:
        self.session.close()

    def url(self, operation_id: str) -> str:
        return self.profile.base_url + self.contract.operations[operation_id].path  # type: ignore[operator]

    def documented_headers(self, operation_id: str, *, timestamp: bool = True) -> list[tuple[str, str]]:
        """The three documented headers with fresh values, plus the profile's extra headers."""
        headers = [("trace", new_trace()), ("companyId", str(self.profile.company_id))]
        if timestamp:
            headers.append(("timestamp", str(now_millis())))
        return headers

    def call(
        self,
        operation_id: str,
        body: Any = None,
        *,
        origin: str,
        headers: Iterable[tuple[str, str]] | None = None,
        raw_body: bytes | None = None,
        method: str = "POST",
        negative: bool = False,
    ) -> Exchange:
        """Send one call and return its recorded (and judged, when a journal is attached) exchange."""
        sent_headers = list(self.documented_headers(operation_id) if headers is None else headers)
        sent_headers += list(self.profile.headers)
        data = raw_body if raw_body is not None else (b"" if body is None else json.dumps(body).encode())
        has_type = any(name.lower() == "content-type" for name, _ in sent_headers)
        if (data or method == "POST") and not has_type:
            sent_headers.append(("Content-Type", "application/json"))
        request = Request(method=method, url=self.url(operation_id), headers=tuple(sent_headers), body=data)
        exchange = self.send(request, operation=operation_id, origin=origin, negative=negative)
        if self.journal is not None:
            self.journal.record(exchange)
        return exchange

    def send(self, request: Request, *, operation: str | None, origin: str, negative: bool = False) -> Exchange:
        self.limiter.wait()
        started = time.time()
        clock = time.perf_counter()
        try:
            raw = self.session.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                data=request.body,
                timeout=self.profile.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.RequestException as error:
            return Exchange(
                request=request,
                response=None,
                operation=operation,
                origin=origin,
                negative=negative,
                error=self._scrub(describe_transport_error(error, self.profile.timeout)),
                # only a client that gave up waits a known time; a reset or refusal is no waiting of ours
                waited_ms=(time.perf_counter() - clock) * 1000
                if isinstance(error, requests.exceptions.Timeout) else None,
                started_at=started,
            )
        elapsed = (time.perf_counter() - clock) * 1000
        response = Response(
            status=raw.status_code,
            headers=tuple(raw.headers.items()),
            body=raw.content,
            elapsed_ms=elapsed,
        )
        return Exchange(
            request=request, response=response, operation=operation, origin=origin, negative=negative,
            started_at=started,
        )
