"""The run log: one row per job run (scheduled, by hand, gather-only, resume) with what it
did or why it did nothing, and the times a monitor asks for."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from digest.state import ledger, sources
from digest.state.db import Database, as_utc, maybe_utc
from digest.state.schema import runs


@dataclass(frozen=True)
class Run:
    """One job run as recorded."""

    kind: str  # digest | gather | resume | manual
    outcome: str  # sent | skipped | failed | gathered | resumed | queued
    started_at: datetime
    finished_at: datetime | None = None
    slot: datetime | None = None
    reason: str = ""
    articles: int = 0
    recipients: int = 0
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    digest_id: int | None = None
    id: int = 0

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 1)


@dataclass(frozen=True)
class HealthTimes:
    """When sources were last read without error, and a digest last finished sending."""

    last_gather_at: datetime | None
    last_send_at: datetime | None


class RunLog:
    """Reads and writes of `runs`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, run: Run) -> int:
        """Remember one job run; returns its id."""
        values = {k: v for k, v in dataclasses.asdict(run).items() if k != "id"}
        with self.db.begin() as conn:
            return int(conn.execute(insert(runs).values(**values).returning(runs.c.id))
                       .scalar_one())

    def recent(self, limit: int = 10) -> list[Run]:
        """The latest job runs, newest first."""
        with self.db.connect() as conn:
            rows = conn.execute(select(runs).order_by(runs.c.id.desc()).limit(limit)).all()
        return [_run(row) for row in rows]

    def health_times(self) -> HealthTimes:
        """The last successful gather and send."""
        with self.db.connect() as conn:
            return HealthTimes(sources.last_success(conn), ledger.last_send(conn))


def _run(row: Any) -> Run:
    return Run(kind=row.kind, outcome=row.outcome, started_at=as_utc(row.started_at),
               finished_at=maybe_utc(row.finished_at), slot=maybe_utc(row.slot),
               reason=row.reason or "", articles=row.articles or 0,
               recipients=row.recipients or 0, sent=row.sent or 0, failed=row.failed or 0,
               deferred=row.deferred or 0, digest_id=row.digest_id, id=row.id)
