"""Progress for long work: a rich bar on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

log = logging.getLogger("digest.progress")


class Advance(Protocol):
    def __call__(self, step: int = 1) -> None: ...


@contextmanager
def progress(description: str, total: int) -> Iterator[Advance]:
    """Yield a callable that advances the count; shows a bar only on an interactive terminal."""
    if sys.stderr.isatty() and total > 1:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda step=1: bar.advance(task, step)
        return
    done = 0
    last_log = time.monotonic()

    def advance(step: int = 1) -> None:
        nonlocal done, last_log
        done += step
        if done == total or time.monotonic() - last_log >= 5:
            log.info("%s: %d/%d", description, done, total)
            last_log = time.monotonic()

    yield advance
