"""The state database, and the only code that touches its tables. `open_state(config)`
connects, brings the schema up to date once, and hands out one repository per group of
tables: sources, ledger, editorial, runs, subscribers, signups, bounces, engagement."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy.exc import OperationalError

from digest.errors import ConfigError, StateUnavailable
from digest.state import migrate
from digest.state.bounces import BounceRecords
from digest.state.db import Database, first_line, safe_url
from digest.state.editorial import EditorialRecords
from digest.state.engagement import Engagement
from digest.state.ledger import Ledger
from digest.state.runs import RunLog
from digest.state.signups import SignupQueue
from digest.state.sources import SourceMemory
from digest.state.subscribers import SubscriberRecords

if TYPE_CHECKING:
    from digest.config import Config


class State:
    """One open state database and its repositories."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.sources = SourceMemory(db)
        self.ledger = Ledger(db)
        self.editorial = EditorialRecords(db)
        self.runs = RunLog(db)
        self.subscribers = SubscriberRecords(db)
        self.signups = SignupQueue(db)
        self.bounces = BounceRecords(db)
        self.engagement = Engagement(db)

    def close(self) -> None:
        """Release every pooled connection."""
        self.db.close()

    def __enter__(self) -> State:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def open_state(config: Config) -> State:
    """The state database named in [state]."""
    return open_url(config.database_url(), where=f"{config.path}: [state] database",
                    sending_threads=config.smtp.connections)


def open_url(url: str, where: str = "[state] database", sending_threads: int = 2) -> State:
    """The state database at a SQLAlchemy URL, its schema brought up to date; its pool
    sized for a process sending over `sending_threads` connections."""
    db = Database(url, sending_threads)
    try:
        if migrate.current(db.engine) != migrate.head():
            migrate.upgrade(db.engine)
    except OperationalError as exc:
        db.close()
        raise StateUnavailable(f"{where}: cannot open {safe_url(url)}: "
                               f"{first_line(exc.orig)}") from None
    return State(db)


@dataclass(frozen=True)
class Copied:
    """What `digest db copy` copied, and where to."""

    counts: dict[str, int]
    where: str


def copy_state_to(config: Config, target: str) -> Copied:
    """Copy the whole state into a new, empty database (a PostgreSQL URL or a SQLite
    path), holding the run lock so nothing changes meanwhile."""
    from digest.config import check_database, database_url

    problem = check_database(target)
    if problem:
        raise ConfigError(f"--to {safe_url(target) if '://' in target else target}: {problem}")
    url = database_url(target, Path.cwd(), os.environ.get(config.state.password_env, ""))
    with open_state(config) as state, state.db.lock("run", datetime.now(UTC)):
        counts = migrate.copy_state(state.db.engine, url)
    return Copied(counts, safe_url(url))
