"""The connection to the state database: its URL, SQLite's pragmas, the lock that one
process's sending threads take turns on, named locks between processes, and batched reads
of long tables. Nothing here knows the migrations (`digest.state.migrate` does)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, create_engine, event, insert, select, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from digest.errors import LockedError, StateUnavailable
from digest.state.schema import locks

STALE_LOCK_AGE = timedelta(hours=12)
# Pooled connections a process needs besides one per sending thread: the main thread,
# the lease heartbeat, the thread claiming the next batch, a web request or two.
POOL_HEADROOM = 5


def safe_url(url: str) -> str:
    """A database URL fit for messages and logs: the password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unreadable URL)"


def first_line(error: object) -> str:
    """The first line of a driver's error (libpq adds hints on further lines)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def outage_text(error: BaseException) -> str:
    """What a driver or the pool said when the database went away, in one line."""
    text = first_line(getattr(error, "orig", None) or error)
    return text.split(" (Background on this error at:", 1)[0]


def as_utc(value: datetime) -> datetime:
    """A datetime read back from the database, with its UTC zone (SQLite drops it)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def maybe_utc(value: datetime | None) -> datetime | None:
    """as_utc for a column that may be NULL."""
    return as_utc(value) if value is not None else None


class Database:
    """One state database: the engine and what every repository over it shares."""

    def __init__(self, url: str, sending_threads: int = 2) -> None:
        self.url = url
        _private_sqlite_file(url)
        self.engine: Engine = create_engine(url, future=True,
                                            **pool_options(url, sending_threads))
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        # SQLite has one writer at a time and its busy handler sleeps a millisecond or more
        # on a collision; the sending threads of one process take turns on this lock instead.
        self._write_lock: AbstractContextManager[Any] = (
            threading.Lock() if self.is_sqlite else nullcontext())
        dbapi = self.engine.dialect.loaded_dbapi
        # The database going away: a lost connection or a server shut down (through
        # SQLAlchemy, or raw on the sending path), a pool that cannot hand out a connection
        # in time, a SQLite lock held past busy_timeout. Not a constraint or a bad query.
        self.outages: tuple[type[BaseException], ...] = (
            OperationalError, InterfaceError, PoolTimeout,
            dbapi.OperationalError, dbapi.InterfaceError)

    def unavailable(self, error: BaseException, doing: str) -> StateUnavailable:
        """The one-line error for the database going away while doing something."""
        return StateUnavailable(f"state database {safe_url(self.url)} unavailable while "
                                f"{doing}: {outage_text(error)}")

    @contextmanager
    def reachable(self, doing: str) -> Iterator[None]:
        """Turn the database going away inside the block into StateUnavailable."""
        try:
            yield
        except self.outages as exc:
            raise self.unavailable(exc, doing) from None

    @property
    def marker(self) -> str:
        """The DBAPI driver's parameter marker, for the statements on the sending path."""
        return "?" if self.engine.dialect.paramstyle == "qmark" else "%s"

    def raw_connection(self) -> Any:
        """A DBAPI connection of the pool, for one sending thread's hot path."""
        return self.engine.raw_connection()

    @property
    def write_lock(self) -> AbstractContextManager[Any]:
        """Held around writes that several threads of this process make at once."""
        return self._write_lock

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def connect(self) -> Connection:
        """A connection for reads."""
        return self.engine.connect()

    def begin(self) -> AbstractContextManager[Connection]:
        """A connection in a transaction, committed when the block ends."""
        return self.engine.begin()

    def stream(self, query: Any, key: Any, batch: int = 1000) -> Iterator[Any]:
        """The rows of a query, fetched in batches ordered by an increasing integer key
        (each batch its own short read, so a long table never sits in memory whole)."""
        last = 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(query.where(key > last).order_by(key).limit(batch)).all()
            if not rows:
                return
            yield from rows
            last = getattr(rows[-1], key.name)

    def insert_ignoring_duplicates(self, table: Table) -> Any:
        """An INSERT that skips rows whose unique key is already there."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert
            return pg_insert(table).on_conflict_do_nothing()
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert
            return sqlite_insert(table).on_conflict_do_nothing()
        return insert(table)

    @contextmanager
    def lock(self, name: str, now: datetime) -> Iterator[None]:
        """Hold a named lock in the database; raise LockedError when a live process has it."""
        me = {"name": name, "host": socket.gethostname(), "pid": os.getpid(),
              "acquired_at": now}
        while not self._try_lock(name, me, now):
            pass
        try:
            yield
        except BaseException:
            # Failing already, perhaps because the database went away: a lock that cannot
            # be released now is a dead process's, which the next one takes over.
            try:
                self._unlock(name, me)
            except self.outages:
                pass
            raise
        with self.reachable(f"releasing the {name} lock"):
            self._unlock(name, me)

    def _unlock(self, name: str, me: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(locks.delete().where(locks.c.name == name, locks.c.pid == me["pid"],
                                              locks.c.host == me["host"]))

    def _try_lock(self, name: str, me: dict[str, Any], now: datetime) -> bool:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(locks).values(**me))
            return True
        except IntegrityError:
            pass
        with self.engine.begin() as conn:
            holder = conn.execute(select(locks).where(locks.c.name == name)).first()
            if holder is None:
                return False  # released meanwhile: try the insert again
            if _lock_alive(holder, now):
                raise LockedError(
                    f"state database is locked by another {name} (host {holder.host}, "
                    f"pid {holder.pid}, since {as_utc(holder.acquired_at):%Y-%m-%d %H:%M} UTC)"
                    f"; stop it first, or wait for it to finish")
            # Stale: take it over only if nobody else did in the meantime.
            taken = conn.execute(update(locks).where(
                locks.c.name == name, locks.c.host == holder.host, locks.c.pid == holder.pid,
                locks.c.acquired_at == holder.acquired_at).values(**me))
            return taken.rowcount == 1


def pool_options(url: str, sending_threads: int) -> dict[str, int]:
    """The pool for a process that sends over `sending_threads` connections at once: each
    sending thread holds one connection for its whole pass (status checks and commits on
    the hot path) and briefly takes a second when a hard failure makes it count bounces;
    the pool keeps one per thread plus the headroom, and allows as many again in bursts."""
    if url in ("sqlite://", "sqlite:///:memory:"):
        return {}  # one in-memory database per thread: SQLAlchemy's own pool for it
    size = max(1, sending_threads) + POOL_HEADROOM
    return {"pool_size": size, "max_overflow": size}


def _private_sqlite_file(url: str) -> None:
    """A new SQLite state file is created readable by its owner only (its -wal and -shm
    files take the same mode): it holds the subscribers' addresses."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return
    path = url.removeprefix("sqlite:///")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError:
        return  # SQLite itself will say what is wrong with the path


def pid_alive(pid: int) -> bool:
    """Whether a process of this host is still running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_alive(holder: Any, now: datetime) -> bool:
    if holder.host == socket.gethostname():
        return pid_alive(holder.pid)
    return now - as_utc(holder.acquired_at) < STALE_LOCK_AGE


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA secure_delete=ON")  # forgotten subscribers leave no trace on disk
    cursor.close()
