"""Time as a parameter: library code that needs "now" more than once takes a `Clock`
(tests pass their own); code that needs one moment takes `now: datetime`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time in UTC: the default clock."""
    return datetime.now(UTC)
