"""Schema migrations with Alembic: the state database is brought to the newest revision
by `digest db upgrade`, and by any command that opens an older one (under a database-wide
lock on PostgreSQL, so several hosts starting at once migrate it once)."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Integer, MetaData, create_engine, func, insert, select, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from digest.errors import StateCopyError, StateUnavailable
from digest.state.db import as_utc, first_line, safe_url
from digest.state.schema import SCHEDULER_JOBS, metadata, scheduler_jobs_table

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
LOCK_ID = 0x5C_D16E57  # pg_advisory_lock key for schema changes


def _alembic(connection: Connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.cache
def head() -> str:
    """The newest revision this version knows."""
    script = ScriptDirectory.from_config(_alembic(None))  # type: ignore[arg-type]
    return str(script.get_current_head())


def current(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest revision; (revision before, revision after)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
        before = MigrationContext.configure(conn).get_current_revision()
        target = head()
        if before != target:
            log.info("state database: migrating from %s to %s", before or "(none)", target)
            command.upgrade(_alembic(conn), "head")
    return before, target


@dataclass(frozen=True)
class Upgraded:
    """What `digest db upgrade` did."""

    before: str | None
    after: str
    fresh: bool  # the database had no tables at all


def upgrade_url(url: str, where: str) -> Upgraded:
    """Create or upgrade the schema of the database at `url`."""
    engine = create_engine(url)
    try:
        fresh = "digests" not in sa_inspect(engine).get_table_names()
        before, after = upgrade(engine)
    except OperationalError as exc:
        raise StateUnavailable(f"{where}: cannot open {safe_url(url)}: "
                               f"{first_line(exc.orig)}") from None
    finally:
        engine.dispose()
    return Upgraded(before, after, fresh)


def copy_state(source: Engine, target_url: str, batch: int = 2000) -> dict[str, int]:
    """Copy every row of the state database into an empty one at `target_url` (created
    and migrated first): how many rows each table got. Times are kept in UTC."""
    target = create_engine(target_url)
    try:
        return _copy(source, target, batch)
    except (OperationalError, ProgrammingError, DBAPIError) as exc:
        raise StateCopyError(f"--to {safe_url(target_url)}: {first_line(exc.orig)}") from None
    finally:
        target.dispose()


def _copy(source: Engine, target: Engine, batch: int) -> dict[str, int]:
    upgrade(target)
    with target.connect() as conn:
        for table in metadata.sorted_tables:
            if conn.execute(select(func.count()).select_from(table)).scalar():
                raise StateCopyError(f"--to {safe_url(str(target.url))}: table {table.name} "
                                  "is not empty; copy only into a new, empty database")
    # Locks and live senders belong to the processes of the old database.
    tables = [t for t in metadata.sorted_tables if t.name not in ("locks", "senders")]
    if SCHEDULER_JOBS in sa_inspect(source).get_table_names():
        jobs = MetaData()
        tables.append(scheduler_jobs_table(jobs))
        jobs.create_all(target, checkfirst=True)
    counts: dict[str, int] = {}
    with source.connect() as reading, target.begin() as writing:
        for table in tables:
            order = list(table.primary_key.columns) or list(table.columns)[:1]
            stamps = [c.name for c in table.columns
                      if getattr(c.type, "timezone", False)]
            copied = 0
            result = reading.execution_options(yield_per=batch).execute(
                select(table).order_by(*order))
            for rows in result.partitions(batch):
                values = [dict(row._mapping) for row in rows]
                for value in values:
                    for name in stamps:
                        if value[name] is not None:
                            value[name] = as_utc(value[name])
                writing.execute(insert(table), values)
                copied += len(values)
            counts[table.name] = copied
        if target.dialect.name == "postgresql":
            for table in tables:
                if "id" in table.columns and isinstance(table.c.id.type, Integer):
                    writing.execute(text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"))
    return counts
