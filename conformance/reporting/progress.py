"""Live progress of a run that a person can follow, from a terminal or a CI log.

On a terminal: a ``rich`` progress bar (phase, done/total, elapsed, what is being waited for) that keeps
ticking on its own, with lines printed above it. Without a terminal (CI, a pipe): plain lines only, and
a heartbeat line whenever nothing was printed for :data:`HEARTBEAT_S` seconds, so a log never goes quiet
during the stateful phase or the HTML render. Compact by default (failures and a line every tenth of
the run); ``verbose`` prints one line per test.

The interface for the run, the CLI and the suite's plugin::

    progress = Progress(verbose=False)
    with progress:                       # or .start(total) / .stop()
        progress.start(total, phase="tests")
        progress.test_done(nodeid, outcome)
        progress.waiting("rendering the HTML report")
        progress.say("a line")            # progress("a line") is the same: usable as a say callback

Every line goes through :func:`conformance.reporting.redaction.scrub` with the run's secrets.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from conformance.reporting.redaction import Secrets, scrub

HEARTBEAT_S = 5.0
FAILING = ("failed", "error")


class Progress:
    def __init__(self, *, stream: TextIO | None = None, verbose: bool = False, tty: bool | None = None,
                 secrets: Secrets | None = None, heartbeat_s: float = HEARTBEAT_S):
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self.tty = self.stream.isatty() if tty is None else tty
        self.secrets = secrets or Secrets()
        self.heartbeat_s = heartbeat_s
        self.total = 0
        self.done = 0
        self.failed = 0
        self.phase_name = "starting"
        self.waiting_for: str | None = None
        self._started = time.monotonic()
        self._last_output = time.monotonic()
        self._next_mark = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Any = None
        self._task: Any = None

    # ----------------------------------------------------------------- life
    def __enter__(self) -> Progress:
        self._begin()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _begin(self) -> None:
        if self._thread is not None or self._live is not None:
            return
        self._started = time.monotonic()
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            console = Console(file=self.stream, highlight=False, force_terminal=True)
            self._live = Bar(SpinnerColumn(), TextColumn("[bold]{task.fields[phase]}"), BarColumn(),
                             MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[waiting]}"),
                             console=console, transient=True, refresh_per_second=4)
            self._task = self._live.add_task("run", total=None, phase=self.phase_name, waiting="")
            self._live.start()
        else:
            self._thread = threading.Thread(target=self._heartbeat, name="conformance-progress", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
            self._thread = None
        if self._live is not None:
            self._live.stop()
            self._live = None

    # ------------------------------------------------------------ interface
    def start(self, total: int, phase: str = "tests") -> None:
        self._begin()
        with self._lock:
            self.total, self.done, self.failed = total, 0, 0
            self._next_mark = max(1, total // 10)
        self.phase(phase, total)

    def phase(self, name: str, total: int | None = None) -> None:
        self._begin()
        with self._lock:
            self.phase_name = name
            self.waiting_for = None
            if total is not None:
                self.total = total
        self._update()
        if not self.tty:
            self._emit(f"phase: {name}" + (f" ({total} tests)" if total else ""))

    def test_done(self, nodeid: str, outcome: str) -> None:
        with self._lock:
            self.done += 1
            self.failed += outcome in FAILING
            done, total = self.done, self.total
            mark = done >= self._next_mark
            if mark:
                self._next_mark = done + max(1, total // 10)
        self._update()
        line = f"[{done:>4}/{total}] {outcome:<7} {nodeid}"
        if self.verbose or outcome in FAILING:
            self._emit(line)
        elif not self.tty and (mark or done == total):
            self._emit(f"[{done:>4}/{total}] {self.phase_name}: {self.failed} failed so far, "
                       f"{self.elapsed():.0f} s elapsed")

    def waiting(self, what: str | None) -> None:
        """Say what the run is waiting for (None: nothing in particular); shown live and in heartbeats."""
        self._begin()
        with self._lock:
            self.waiting_for = what
        self._update()
        if what and not self.tty:
            self._emit(f"waiting: {what}")

    def say(self, line: str) -> None:
        self._emit(line)

    __call__ = say

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    # ------------------------------------------------------------ internals
    def _emit(self, line: str) -> None:
        line = scrub(str(line), self.secrets)
        with self._lock:
            self._last_output = time.monotonic()
        if self._live is not None:
            from rich.text import Text

            self._live.console.print(Text(line))
        else:
            print(line, file=self.stream, flush=True)

    def _update(self) -> None:
        if self._live is None or self._task is None:
            return
        waiting = f"waiting for {scrub(self.waiting_for, self.secrets)}" if self.waiting_for else ""
        self._live.update(self._task, total=self.total or None, completed=self.done, phase=self.phase_name,
                          waiting=waiting)

    def _heartbeat(self) -> None:
        while not self._stop.wait(min(1.0, self.heartbeat_s)):
            with self._lock:
                quiet = time.monotonic() - self._last_output
                what = self.waiting_for
                done, total, phase = self.done, self.total, self.phase_name
            if quiet >= self.heartbeat_s:
                counted = f" {done}/{total}" if total else ""
                self._emit(f"… {phase}{counted}, {self.elapsed():.0f} s elapsed"
                           + (f", waiting for {what}" if what else ""))
