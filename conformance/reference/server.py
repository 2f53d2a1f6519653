"""Running the wallet: uvicorn in a background thread, as a context manager.

uvicorn lower-cases header names before the ASGI app sees them. The wallet's
protocol, a small subclass of uvicorn's httptools protocol (h11 when httptools is
not installed), also hands the app the names as they were sent, in
``scope["extensions"]["raw_header_names"]`` (a list of bytes parallel to
``scope["headers"]``), so the fault ``header-names-case-sensitive`` can tell
``Trace`` from ``trace``. httptools parses in C: several times h11's throughput.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is not installed: h11 only
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

from conformance.reference.app import create_app
from conformance.reference.config import WalletConfig
from conformance.reference.store import Ledger

STARTUP_TIMEOUT = 10.0


class RawHeaderNamesH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus the raw header names in the ASGI scope."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._raw_header_names: list[bytes] | None = None
        super().__init__(*args, **kwargs)
        next_event = self.conn.next_event

        def recording_next_event() -> Any:
            event = next_event()
            if isinstance(event, h11.Request):
                self._raw_header_names = [name for name, _ in event.headers.raw_items()]
            return event

        self.conn.next_event = recording_next_event  # type: ignore[method-assign]

    @property  # type: ignore[override]
    def scope(self) -> Any:
        return self._scope

    @scope.setter
    def scope(self, value: Any) -> None:
        # uvicorn builds the scope right after reading the request event; attach that event's names.
        if value is not None and self._raw_header_names is not None:
            value.setdefault("extensions", {})["raw_header_names"] = self._raw_header_names
            self._raw_header_names = None
        self._scope = value


class OneSendTransport:
    """One response's transport: holds the response head until the first body write (or the end of
    the response), so that head and body of a small answer leave in one send() instead of two.

    uvicorn writes the status line and headers on ``http.response.start`` and the body on
    ``http.response.body``; every other call goes to the real transport unchanged.
    """

    def __init__(self, transport: Any, cycle: Any):
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._held = False

    def write(self, data: bytes) -> None:
        if not self._held and self._cycle.response_started:  # the head (a 100 Continue is written before)
            self._held = True
            self._head = bytes(data)
            return
        if self._head is not None:
            data, self._head = self._head + data, None
        self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


if HttpToolsProtocol is not None:

    class OneSendHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[valid-type,misc]
        """uvicorn's httptools protocol, sending each response's head and body in one write."""

        def on_headers_complete(self) -> None:
            super().on_headers_complete()  # creates the cycle; its task runs on a later loop turn
            cycle = self.cycle
            if cycle is not None and cycle.scope is self.scope and not isinstance(cycle.transport, OneSendTransport):
                transport = cycle.transport = OneSendTransport(cycle.transport, cycle)
                on_response = cycle.on_response

                def flushed_on_response() -> None:
                    transport.flush()  # a HEAD answer has no body write
                    on_response()

                cycle.on_response = flushed_on_response

    class RawHeaderNamesHttpToolsProtocol(OneSendHttpToolsProtocol):
        """Also the raw header names in the ASGI scope (only the fault header-names-case-sensitive reads them)."""

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._raw_header_names: list[bytes] = []
            self.scope["extensions"] = {"raw_header_names": self._raw_header_names}

        def on_header(self, name: bytes, value: bytes) -> None:
            self._raw_header_names.append(name)  # before uvicorn lower-cases it
            super().on_header(name, value)


    class WholeRequestHttpToolsProtocol(OneSendHttpToolsProtocol):
        """Keeps each whole request for the app even when the client closes right after sending it, as a
        servlet container does (uvicorn answers such a request's receive() with http.disconnect only).
        The body is in ``scope["extensions"]["wallet.received_body"]`` once the request is complete."""

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._received: list[bytes] = []

        def on_body(self, body: bytes) -> None:
            self._received.append(body)
            super().on_body(body)

        def on_message_complete(self) -> None:
            self.scope.setdefault("extensions", {})["wallet.received_body"] = b"".join(self._received)
            super().on_message_complete()


def protocol_for(config: WalletConfig) -> type:
    """httptools when installed (h11 otherwise); the other flavours only for the faults that need them."""
    if HttpToolsProtocol is None:
        return RawHeaderNamesH11Protocol
    if config.fault == "header-names-case-sensitive":
        return RawHeaderNamesHttpToolsProtocol
    if config.fault == "lost-cancel-answer-refunds-again":  # processes what the platform gave up on
        return WholeRequestHttpToolsProtocol
    return OneSendHttpToolsProtocol


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; OSError (e.g. address in use) is raised here, before any thread starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets TCP_NODELAY only then
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def base_url(host: str, port: int, prefix: str) -> str:
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{prefix}"


@contextmanager
def serve(config: WalletConfig, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run the wallet until the block exits; yields the base URL once connections are accepted.

    ``port=0`` picks a free port. Raises OSError when the address cannot be bound and
    ValueError when the ledger file disagrees with the configured accounts.
    """
    sock = bind(host, port)
    ledger = None
    try:
        ledger = Ledger(config.accounts, config.db, config.fault, config.variants)
        uv_config = uvicorn.Config(
            create_app(config, ledger),
            http=protocol_for(config),
            lifespan="off",
            proxy_headers=False,  # the wallet is not behind a proxy; saves a middleware per request
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(uv_config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="reference-wallet", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                raise RuntimeError("the reference wallet did not start")
            time.sleep(0.005)
        try:
            yield base_url(host, sock.getsockname()[1], config.prefix)
        finally:
            server.should_exit = True
            thread.join(timeout=15)
    finally:
        sock.close()
        if ledger is not None:
            ledger.close()
