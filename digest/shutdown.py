"""Stopping cleanly: SIGTERM or Ctrl-C sets `stop_requested`; the send loop finishes the
message in flight on each connection and stops, the worker and the scheduler wind down."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType, TracebackType

log = logging.getLogger(__name__)

stop_requested = threading.Event()


class graceful_stop:  # noqa: N801 (used as a context manager, reads as a phrase)
    """While inside, SIGTERM/SIGINT ask the send loop to stop after the message in flight."""

    def __enter__(self) -> None:
        self._previous = {sig: signal.signal(sig, self._handle)
                          for sig in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        log.warning("signal %d: finishing the message in flight, then stopping", signum)
        stop_requested.set()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
