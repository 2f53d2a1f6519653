"""The suite's HTTP client: bounded rate, timeouts, TLS settings, every call recorded as an Exchange.

Used by the handwritten suite, the preflight, compensation and ``conformance
settle``. (Schemathesis sends its own requests; its hooks record them through
the same :class:`~conformance.journal.Journal`.)

Every call passes the run's money journal first (:meth:`MoneyJournal.admit`):
an execute or cancel is written to disk before it leaves, and a stopping run
refuses new traffic. Every exchange is bounded as a whole: ``timeout`` bounds
the entire call (connect, headers and body together, so a target that trickles
bytes is cut), and at most ``max_body_bytes`` of a body are read, decompressed
or kept (:func:`read_bounded`); a cut or truncated answer says so in
``Response.truncated``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
import uuid
import zlib
from collections.abc import Iterable
from typing import Any

import requests

from conformance import contract
from conformance.exchange import Exchange, Request, Response
from conformance.money_journal import MoneyJournal
from conformance.profile import Profile
from conformance.reporting import redaction

DEFAULT_MAX_BODY_BYTES = 1 << 20
CHUNK = 64 * 1024


class _WholeExchangeTimeout(Exception):
    pass


def read_bounded(raw, cap: int, deadline: float | None = None) -> tuple[bytes, str | None]:
    """At most ``cap`` bytes of a streamed urllib3 response body, decoded by hand; and why it was cut, if it was.

    The body is read undecoded in chunks; gzip/deflate are inflated with ``max_length`` so a
    compression bomb never expands beyond ``cap``; the read stops at ``deadline`` (monotonic).
    """
    encoding = (raw.headers.get("content-encoding") or "").strip().lower()
    decoder = None
    if encoding in ("gzip", "x-gzip", "deflate"):
        decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    out = bytearray()
    wire = 0
    note = None
    complete = False
    reader = getattr(raw, "read1", None) or raw.read
    try:
        while True:
            if deadline is not None and time.monotonic() > deadline:
                note = "cut: the whole exchange exceeded its time bound"
                break
            chunk = reader(CHUNK, decode_content=False)
            if not chunk:
                complete = True
                if decoder is not None:
                    out += decoder.flush()[: cap - len(out)]
                break
            wire += len(chunk)
            if decoder is None:
                room = cap - len(out)
                out += chunk[:room]
                if len(chunk) > room:
                    note = f"truncated: the body exceeds {cap} bytes"
                    break
                continue
            out += decoder.decompress(chunk, cap - len(out) + 1)
            if len(out) > cap or decoder.unconsumed_tail or wire > cap:
                del out[cap:]
                note = f"truncated: the {encoding} body inflates beyond {cap} bytes (not decompressed further)"
                break
    except zlib.error as error:
        note = f"the {encoding} body does not decompress ({error})"
    finally:
        if complete and hasattr(raw, "release_conn"):
            raw.release_conn()  # read to its end: the connection goes back to the pool (keep-alive)
        else:
            raw.close()  # cut short or failed: never reuse a connection with unread bytes on it
    if note is None and decoder is None and encoding not in ("", "identity"):
        note = f"content-encoding {encoding!r} not decoded"
    return bytes(out), note


def bounded_response_hook(cap: int, bound: float | None):
    """A requests ``response`` hook: the body is read by :func:`read_bounded` before anyone asks for it.

    For calls made by other code on a requests session (Schemathesis' generated calls): requests
    runs response hooks before it reads the content, so ``response.content`` is the bounded body.
    """

    def hook(response, *args, **kwargs):
        deadline = None if bound is None else time.monotonic() + bound
        body, note = read_bounded(response.raw, cap, deadline)
        response._content = body
        response._content_consumed = True
        if note is not None and response.request is not None:
            response.request.conformance_truncated = note  # the generated exchange is built from this request
        return response

    return hook


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

    def __init__(self, profile: Profile, journal: Any | None = None, *, money: MoneyJournal | None = None):
        if profile.base_url is None:
            raise ValueError("the profile has no base URL yet")
        self.profile = profile
        self.journal = journal
        self.money = money if money is not None else money_journal_of(journal)
        self.max_body_bytes = getattr(profile, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)
        # requests.Session is not thread-safe (its cookie jar and pool dicts race: "dictionary changed size
        # during iteration" under the delivery phase's parallel orders): one session per calling thread.
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self.limiter = RateLimiter(profile.effective_rate_limit)
        self.contract = contract.load()

    @property
    def session(self) -> requests.Session:
        """This thread's session (keep-alive connections are reused within a thread)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.verify = self.profile.tls_verify_setting
            session.headers.update(
                {"User-Agent": "multimarkets-webhook-conformance", "Accept-Encoding": "gzip, deflate"}
            )
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _scrub(self, text: str) -> str:
        """``text`` without the profile's secret header values (requests quotes a value in some errors)."""
        secrets = [value for _, value in self.profile.headers]
        return redaction.redact(text.encode("utf-8"), secrets)[0].decode("utf-8")

    def close(self) -> None:
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

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
        # write-ahead; only a POST is one of the documented (money-moving) calls
        money_operation = operation if request.method == "POST" else None
        seq = None if self.money is None else self.money.admit(money_operation, request.json, origin)
        self.limiter.wait()
        started = time.time()
        clock = time.perf_counter()
        bound = self.profile.timeout
        try:
            status, headers, body, truncated = self._exchange_within(request, bound)
        except (requests.exceptions.RequestException, _WholeExchangeTimeout) as error:
            why = (f"timed out: the whole exchange took longer than {bound:g} s"
                   if isinstance(error, _WholeExchangeTimeout) else describe_transport_error(error, bound))
            exchange = Exchange(
                request=request,
                response=None,
                operation=operation,
                origin=origin,
                negative=negative,
                error=self._scrub(why),
                # only a client that gave up waits a known time; a reset or refusal is no waiting of ours
                waited_ms=(time.perf_counter() - clock) * 1000
                if isinstance(error, requests.exceptions.Timeout | _WholeExchangeTimeout) else None,
                started_at=started,
            )
        else:
            elapsed = (time.perf_counter() - clock) * 1000
            response = Response(status=status, headers=headers, body=body, elapsed_ms=elapsed, truncated=truncated)
            exchange = Exchange(
                request=request, response=response, operation=operation, origin=origin, negative=negative,
                started_at=started,
            )
        if self.money is not None:
            self.money.outcome(seq, exchange)
        return exchange

    def _exchange_within(self, request: Request, bound: float):
        """The call in a worker thread, abandoned (its socket shut) when the whole exchange exceeds ``bound``."""
        deadline = time.monotonic() + bound
        box: dict[str, Any] = {}
        done = threading.Event()
        session = self.session  # the calling thread's: the worker only carries this one call

        def work() -> None:
            try:
                raw = session.request(
                    request.method,
                    request.url,
                    headers=dict(request.headers),
                    data=request.body,
                    timeout=bound,
                    allow_redirects=False,
                    stream=True,
                )
                box["raw"] = raw
                body, note = read_bounded(raw.raw, self.max_body_bytes, deadline)
                box["value"] = (raw.status_code, tuple(raw.headers.items()), body, note)
            except BaseException as error:  # handed to the caller's thread
                box["error"] = error
            finally:
                done.set()

        worker = threading.Thread(target=work, name="conformance-call", daemon=True)
        worker.start()
        if not done.wait(max(0.0, deadline - time.monotonic()) + 0.05):
            raw = box.get("raw")
            if raw is not None:  # unblock the worker's read; it ends on its own otherwise (per-read timeout)
                with contextlib.suppress(Exception):  # best effort: the caller has already moved on
                    raw.raw.shutdown()
            raise _WholeExchangeTimeout()
        if "error" in box:
            raise box["error"]
        return box["value"]


def money_journal_of(journal: Any) -> MoneyJournal | None:
    """The money journal of the run a Journal belongs to (its ledger observer holds it), if any."""
    for observer in getattr(journal, "observers", ()):
        money = getattr(observer, "money", None)
        if isinstance(money, MoneyJournal):
            return money
    return None


class GeneratedGate:
    """What Schemathesis' generated calls pass through (called from the hooks' before_call/after_call).

    Before a call: the stop check and the write-ahead journal record (as for :meth:`Client.send`), and a
    response hook that reads at most ``max_body_bytes`` of the answer. After it: the money outcome.
    """

    def __init__(self, money: MoneyJournal, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 bound: float | None = None) -> None:
        self.money = money
        self.max_body_bytes = max_body_bytes
        self.bound = bound
        self._pending: dict[int, int | None] = {}
        self._lock = threading.Lock()

    def before(self, case, kwargs: dict) -> None:
        operation = contract.load().operation_for_path(case.operation.path)
        meta = case.meta
        origin = (f"generated/{meta.phase.name.value if meta else 'unknown'}/"
                  f"{meta.generation.mode.value if meta else 'positive'}")
        seq = self.money.admit(operation.operation_id if operation else None, case.body, origin)
        with self._lock:
            self._pending[id(case)] = seq
        hooks = kwargs.setdefault("hooks", {})
        hooks["response"] = [*list(hooks.get("response") or ()), bounded_response_hook(self.max_body_bytes, self.bound)]

    def after(self, case, exchange: Exchange) -> None:
        with self._lock:
            seq = self._pending.pop(id(case), None)
        self.money.outcome(seq, exchange)
