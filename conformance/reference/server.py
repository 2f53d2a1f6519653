"""Running the wallet: uvicorn (h11) in a background thread, as a context manager.

uvicorn lower-cases header names before the ASGI app sees them. The wallet's
protocol, a small subclass of uvicorn's h11 protocol, also hands the app the
names as they were sent, in ``scope["extensions"]["raw_header_names"]`` (a list
of bytes parallel to ``scope["headers"]``), so the fault
``header-names-case-sensitive`` can tell ``Trace`` from ``trace``.
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
            http=RawHeaderNamesH11Protocol,
            lifespan="off",
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
