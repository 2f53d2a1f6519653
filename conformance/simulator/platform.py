"""The platform as a client: how MultiMarkets delivers calls to a wallet (reference §2.6).

:class:`Platform` sends through the suite's recording client (so every call is journaled, judged and
seen by the money ledger) and adds what the platform does and the plain client does not:

- an execute is waited for until the contract's deadline, to the last byte; an answer that has not
  arrived by then is cut off (the call itself is left to finish in the background so its late answer,
  and whatever it did to the money, is still recorded);
- an answer can be lost on purpose: the request is sent whole, the simulator waits until the wallet
  starts answering (it has done its work) and closes the connection without reading the answer;
- orders run in parallel on a bounded pool (``concurrency``), at a bounded rate (the client's limiter).
"""

from __future__ import annotations

import contextvars
import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter

from conformance import delivery
from conformance.delivery import EXECUTE, CancelPolicy, SettleResult
from conformance.exchange import Exchange, Request
from conformance.profile import TestAccount
from conformance.transport import Client

T = TypeVar("T")
R = TypeVar("R")

CUT_OFF_ERROR = "timed out: no answer within {deadline:g} s (the platform cut the execute off)"
DROPPED_ERROR = "answer lost on purpose: the simulator closed the connection once the wallet began to answer"
CLOSED_ERROR = "answer lost on purpose: the simulator closed the connection right after sending"
UNSTARTED_ERROR = "no answer began within {wait:g} s; the simulator closed the connection"


class Platform:
    """One delivery phase's sender: bounded, journaled, with the platform's deadline."""

    def __init__(
        self,
        client: Client,
        *,
        concurrency: int,
        policy: CancelPolicy | None = None,
        deadline_s: float | None = None,
        clock: delivery.Clock = delivery.SYSTEM_CLOCK,
    ):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.client = client
        self.concurrency = concurrency
        self.policy = policy or CancelPolicy()
        self.deadline_s = delivery.execute_deadline_s() if deadline_s is None else deadline_s
        self.clock = clock
        # every order in flight has at most one call of its own out, plus one execute left to finish late
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=2 * concurrency + 2)
        client.session.mount("http://", adapter)
        client.session.mount("https://", adapter)
        self._calls = ThreadPoolExecutor(max_workers=2 * concurrency + 2, thread_name_prefix="delivery-call")
        self._late: list[Future] = []
        self._late_lock = threading.Lock()

    def close(self) -> None:
        self.finish_late(self.client.profile.timeout)
        self._calls.shutdown(wait=True, cancel_futures=False)

    # ------------------------------------------------------------------ sends
    def call(self, operation: str, body: Any, origin: str) -> Exchange:
        """One documented call, journaled and judged like every other."""
        return self.client.call(operation, body, origin=origin)

    def balance(self, account: TestAccount, origin: str) -> Exchange:
        body = {"thirdServerCode": account.third_server_code, "userName": account.user_name,
                "currency": account.currency}
        return self.call("getUserAmount", body, origin)

    def sender(self, origin: str) -> delivery.Send:
        """A ``send`` for :func:`conformance.delivery.deliver_order`: executes with the deadline, cancels plain."""

        def send(operation: str, body: Any) -> Exchange:
            if operation == EXECUTE:
                return self.execute_with_deadline(body, origin)
            return self.call(operation, body, origin)

        return send

    def execute_with_deadline(self, body: Any, origin: str) -> Exchange:
        """The execute as the platform sees it: its exchange if answered by the deadline, else a cut-off view.

        The cut-off view (no response, a timed-out error) is what the platform decides on; it is not
        journaled. The real call goes on and is journaled when it ends (see :meth:`finish_late`).
        """
        future = self._calls.submit(contextvars.copy_context().run, self.call, EXECUTE, body, origin)
        try:
            return future.result(timeout=self.deadline_s)
        except FutureTimeout:
            with self._late_lock:
                self._late.append(future)
            request = Request("POST", self.client.url(EXECUTE), (), json.dumps(body).encode())
            return Exchange(request=request, response=None, operation=EXECUTE, origin=origin,
                            error=CUT_OFF_ERROR.format(deadline=self.deadline_s))

    def finish_late(self, timeout: float) -> list[Exchange]:
        """Wait (at most ``timeout`` s in all) for the executes cut off so far; their real exchanges."""
        with self._late_lock:
            late, self._late = self._late, []
        ends = time.monotonic() + timeout
        done = []
        for future in late:
            try:
                done.append(future.result(timeout=max(0.0, ends - time.monotonic())))
            except FutureTimeout:
                with self._late_lock:
                    self._late.append(future)
        return done

    def settle(self, execute_body: Any, cancel_body: Any, origin: str) -> SettleResult:
        """One order, delivered as the platform does (execute, cut-off, cancel retried)."""
        return delivery.deliver_order(execute_body, cancel_body, self.sender(origin), self.policy, self.clock,
                                      deadline_s=self.deadline_s)

    def reverse(self, cancel_body: Any, origin: str, *, placed: bool = False) -> SettleResult:
        return delivery.reverse_order(cancel_body, self.sender(origin), self.policy, self.clock, placed=placed)

    def lose_answer(self, operation: str, body: Any, origin: str, *, wallet_done: bool = True) -> Exchange:
        """Send the call whole and close the connection without reading the answer.

        ``wallet_done``: first wait (at most the deadline) until the answer begins, so the wallet has
        done its work and only the answer is lost; otherwise close at once (the platform gave up before
        the wallet answered: whatever the wallet does after that, it does for a client that has gone).

        Journaled but not judged: the answer was discarded unread, so there is nothing to judge; the
        money ledger still treats it as an adjustment of unknown outcome until it is settled.
        """
        client = self.client
        headers = list(client.documented_headers(operation)) + list(client.profile.headers)
        payload = json.dumps(body).encode()
        headers.append(("Content-Type", "application/json"))
        request = Request("POST", client.url(operation), tuple(headers), payload)
        money = getattr(client, "money", None)  # the run's write-ahead money journal, when the client has one
        seq = money.admit(operation, body, origin) if money is not None else None
        client.limiter.wait()
        started = time.time()
        error = _send_and_drop(request, client.profile, wait_s=self.deadline_s if wallet_done else 0.0)
        exchange = Exchange(request=request, response=None, operation=operation, origin=origin, error=error,
                            started_at=started)
        if money is not None:
            money.outcome(seq, exchange)
        if client.journal is not None:
            client.journal.record(exchange, judge=False)
        return exchange

    # ------------------------------------------------------------- parallel
    def in_parallel(self, work: Callable[[T], R], items: Iterable[T], limit: int | None = None) -> list[R]:
        """``work`` on every item, at most ``limit`` (never more than ``concurrency``) at once; in order."""
        items = list(items)
        if not items:
            return []
        width = min(len(items), self.concurrency if limit is None else max(1, min(limit, self.concurrency)))
        gate = _StartingGate(width)

        def started(item: T) -> R:
            gate.arrive()  # the first wave leaves together, so its calls really overlap
            return work(item)

        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="delivery-order") as pool:
            # each order runs in a copy of the caller's context: its outcomes are stamped with the caller's test
            futures = [pool.submit(contextvars.copy_context().run, started, item) for item in items]
            return [future.result() for future in futures]


class _StartingGate:
    """Holds the first ``parties`` arrivals until all are there (at most ``wait_s``); later ones pass."""

    def __init__(self, parties: int, wait_s: float = 5.0):
        self.parties = parties
        self.wait_s = wait_s
        self._arrived = 0
        self._lock = threading.Lock()
        self._open = threading.Event()

    def arrive(self) -> None:
        with self._lock:
            self._arrived += 1
            if self._arrived >= self.parties:
                self._open.set()
        self._open.wait(self.wait_s)


def _send_and_drop(request: Request, profile, *, wait_s: float) -> str:
    """Write the raw HTTP request, wait for the first byte of the answer, close. The error text to record."""
    parts = urlsplit(request.url)
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(request.body)}",
             "Connection: close"]
    lines += [f"{name}: {value}" for name, value in request.headers]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body
    try:
        sock = socket.create_connection((parts.hostname, port), timeout=profile.timeout)
    except OSError as error:
        return f"connection failed ({error.strerror or error})"
    try:
        if secure:
            context = ssl.create_default_context(cafile=profile.ca_bundle) if profile.ca_bundle else (
                ssl.create_default_context())
            if not profile.verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=parts.hostname)
        sock.sendall(raw)
        if not wait_s:
            return CLOSED_ERROR
        readable, _, _ = select.select([sock], [], [], wait_s)
        return DROPPED_ERROR if readable else UNSTARTED_ERROR.format(wait=wait_s)
    except (OSError, ssl.SSLError) as error:
        return f"connection failed while sending ({error})"
    finally:
        sock.close()
