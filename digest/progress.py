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
    def __call__(self, step: int = 1, **counts: int) -> None: ...


@contextmanager
def progress(description: str, total: int) -> Iterator[Advance]:
    """Yield a callable that advances the count (and optional named counts such as
    failed=1); shows a bar only on an interactive terminal."""
    tally: dict[str, int] = {}
    if sys.stderr.isatty() and total > 1:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TaskProgressColumn(), TextColumn("{task.fields[counts]}"),
                   TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task(description, total=total, counts="", rate="")
            started = time.monotonic()

            def advance_bar(step: int = 1, **counts: int) -> None:
                for key, value in counts.items():
                    tally[key] = tally.get(key, 0) + value
                done = bar.tasks[0].completed + step
                rate = done / max(time.monotonic() - started, 1e-6)
                bar.update(task, advance=step, rate=f"{rate:,.0f}/s", counts=", ".join(
                    f"{k} {v}" for k, v in sorted(tally.items()) if v))

            yield advance_bar
        return
    done = 0
    started = last_log = time.monotonic()

    def advance(step: int = 1, **counts: int) -> None:
        nonlocal done, last_log
        done += step
        for key, value in counts.items():
            tally[key] = tally.get(key, 0) + value
        if done == total or time.monotonic() - last_log >= 5:
            rate = done / max(time.monotonic() - started, 1e-6)
            extra = "".join(f", {k} {v}" for k, v in sorted(tally.items()) if v)
            log.info("%s: %d/%d%s (%.0f/s)", description, done, total, extra, rate)
            last_log = time.monotonic()

    yield advance
