"""Prompt, clean stops for the long-running commands that own the sandbox (``sandbox``, ``demo``, ``lab``).

The first SIGINT or SIGTERM raises :class:`Stopped` in the main thread wherever it is (starting the
sandbox, waiting on a run, serving), so the command goes straight to its ``finally`` and stops what it
started. From then on further signals are noted and ignored: the cleanup is bounded (every wait in it
has a timeout) and must not be cut short, or it would leave processes behind. Handlers are installed
explicitly for both signals, so a command started in the background (where the shell leaves SIGINT
ignored) still stops on ``kill -INT``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """The command was asked to stop by a signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class Guard:
    """State of :func:`stop_on_signals`: ``stopping`` once a signal came (or :meth:`calm` was called)."""

    def __init__(self) -> None:
        self.stopping = False
        self.signum: int | None = None

    def calm(self) -> None:
        """From now on signals are ignored (call at the start of a cleanup)."""
        self.stopping = True

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        if self.stopping:
            return
        self.stopping = True
        raise Stopped(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Guard]:
    """SIGINT/SIGTERM raise :class:`Stopped` once; the previous handlers come back on exit."""
    guard = Guard()
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover - CLIs run in main
        yield guard
        return
    previous: dict[int, Any] = {sig: signal.signal(sig, guard.handler) for sig in SIGNALS}
    try:
        yield guard
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
