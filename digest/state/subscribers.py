"""The subscriber list in the state database: one row per address (compared by its key,
kept as typed), every status change as an event with its cause, and the suppression list
(a hash of each address that unsubscribed, bounced, complained or asked to be forgotten)
that imports never override unless asked to."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from digest.errors import SubscriberError
from digest.models import Subscriber
from digest.state import bounces, engagement, ledger
from digest.state.db import Database, maybe_utc
from digest.state.schema import (
    deliveries,
    settings_table,
    subscriber_events,
    subscribers,
    suppressions,
)
from digest.subscribers import (
    FORMATS,
    STATUSES,
    SUPPRESSING,
    ImportResult,
    ListEntry,
    address_hash,
    address_key,
    check_address,
    parse_time,
)
from digest.tokens import new_token_id

BATCH = 1000
# Rows a transaction of an import takes: a commit costs SQLite a WAL write and a
# checkpoint now and then, and the IN lists stay well within its variable limit.
IMPORT_BATCH = 5000


@dataclass(frozen=True)
class SubscriberRow:
    """One subscriber as stored."""

    email: str
    name: str
    status: str
    format: str
    subscribed_at: datetime | None
    updated_at: datetime | None
    confirm_sent_at: datetime | None = None
    token_id: str = ""


@dataclass(frozen=True)
class StatusEvent:
    """One change of a subscriber's status, with its cause."""

    at: datetime
    status: str
    cause: str


@dataclass(frozen=True)
class SubscriberReport:
    """Everything stored about one address."""

    subscriber: SubscriberRow | None
    events: tuple[StatusEvent, ...]
    deliveries: tuple[ledger.Delivery, ...]
    suppressed: bool
    bounces: tuple[bounces.BounceEntry, ...] = ()


class SubscriberRecords:
    """Reads and writes of `subscribers`, `subscriber_events`, `suppressions` and the file
    fingerprints in `settings`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, email: str) -> SubscriberRow | None:
        """The stored row of one address, if any."""
        with self.db.connect() as conn:
            row = conn.execute(select(subscribers).where(
                subscribers.c.email_key == address_key(email))).first()
        return _row(row) if row else None

    def by_token(self, token_id: str) -> SubscriberRow | None:
        """The subscriber whose links carry this token id, if any."""
        if not token_id:
            return None
        with self.db.connect() as conn:
            row = conn.execute(select(subscribers).where(
                subscribers.c.token_id == token_id)).first()
        return _row(row) if row else None

    def is_suppressed(self, email: str) -> bool:
        """Whether the address is on the suppression list."""
        with self.db.connect() as conn:
            return conn.execute(select(suppressions.c.email_hash).where(
                suppressions.c.email_hash == address_hash(email))).first() is not None

    def add(self, email: str, name: str, now: datetime, *, status: str = "active",
            cause: str = "added by operator", reactivate: bool = False,
            format: str = "html") -> str:
        """Add or update one address; returns 'added', 'updated', 'unchanged' or
        'suppressed' (it unsubscribed, bounced or complained and reactivate is False)."""
        email = check_address(email)
        if format not in FORMATS:
            raise SubscriberError(f"unknown format {format!r} (html or text)")
        with self.db.begin() as conn:
            return _upsert(conn, ListEntry(Subscriber(email, name, status), "", format),
                           now, cause, reactivate)

    def set_status(self, email: str, status: str, now: datetime, cause: str) -> bool:
        """Change one address's status, with its cause; True when it changed."""
        if status not in STATUSES:
            raise SubscriberError(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
        with self.db.begin() as conn:
            return change_status(conn, address_key(email), status, now, cause)

    def remove(self, email: str, now: datetime) -> bool:
        """Stop mailing an address (it becomes unsubscribed and suppressed); False when it
        was not on the list as pending or active."""
        row = self.get(email)
        if row is None or row.status not in ("active", "pending"):
            return False
        return self.set_status(email, "unsubscribed", now, "removed by operator")

    def mark_confirmation_sent(self, email: str, now: datetime) -> None:
        """A confirmation link went out to this pending address."""
        with self.db.begin() as conn:
            conn.execute(update(subscribers).where(subscribers.c.email_key == address_key(email))
                         .values(confirm_sent_at=now))

    def import_entries(self, entries: Iterable[ListEntry], now: datetime, *, cause: str,
                       reactivate: bool = False) -> ImportResult:
        """Merge rows into the list, a batch per transaction: one query for the rows and
        suppressions a batch already has, one bulk insert for the new ones."""
        added = updated = suppressed = 0
        batch: list[ListEntry] = []

        def flush() -> None:
            nonlocal added, updated, suppressed
            with self.db.begin() as conn:
                a, u, s = _import_batch(conn, batch, now, cause, reactivate)
            added, updated, suppressed = added + a, updated + u, suppressed + s
            batch.clear()

        for entry in entries:
            batch.append(entry)
            if len(batch) == IMPORT_BATCH:
                flush()
        if batch:
            flush()
        return ImportResult(added=added, updated=updated, skipped=(), suppressed=suppressed)

    def iter_active(self) -> Iterator[Subscriber]:
        """Active subscribers, read in batches so a long list never sits in memory whole."""
        query = select(subscribers.c.id, subscribers.c.email, subscribers.c.name,
                       subscribers.c.format, subscribers.c.token_id
                       ).where(subscribers.c.status == "active")
        for row in self.db.stream(query, subscribers.c.id, BATCH):
            yield Subscriber(email=row.email, name=row.name, format=row.format,
                             token_id=row.token_id or "")

    def count_by_status(self) -> dict[str, int]:
        """How many subscribers have each status."""
        with self.db.connect() as conn:
            rows = conn.execute(select(subscribers.c.status, func.count())
                                .group_by(subscribers.c.status)).all()
        return {status: int(n) for status, n in rows}

    def rows(self) -> Iterator[SubscriberRow]:
        """Every subscriber row, in batches."""
        for row in self.db.stream(select(subscribers), subscribers.c.id, BATCH):
            yield _row(row)

    def show(self, email: str) -> SubscriberReport | None:
        """Everything stored about one person."""
        row = self.get(email)
        key = address_key(email)
        with self.db.connect() as conn:
            events = tuple(StatusEvent(maybe_utc(e.at) or e.at, e.status, e.cause)
                           for e in conn.execute(
                               select(subscriber_events).where(
                                   subscriber_events.c.email_key == key)
                               .order_by(subscriber_events.c.id)))
        sent = tuple(ledger.Ledger(self.db).deliveries_to(key))
        suppressed = self.is_suppressed(email)
        reports = tuple(bounces.BounceRecords(self.db).entries_for(key))
        if row is None and not events and not sent and not suppressed and not reports:
            return None
        return SubscriberReport(row, events, sent, suppressed, reports)

    def forget(self, email: str, now: datetime) -> bool:
        """Erase all personal data of an address; keep only its hash in the suppression
        list so it is never mailed again. True when anything was stored."""
        key = address_key(email)
        digest_of_key = address_hash(key)
        with self.db.begin() as conn:
            token_ids = conn.execute(select(subscribers.c.token_id).where(
                subscribers.c.email_key == key).union(select(deliveries.c.token_id).where(
                    deliveries.c.email_key == key))).scalars().all()
            engagement.forget_reader(conn, [t for t in token_ids if t])
            gone = conn.execute(delete(subscribers).where(subscribers.c.email_key == key))
            conn.execute(delete(subscriber_events).where(subscriber_events.c.email_key == key))
            wiped = ledger.forget_address(conn, key, f"forgotten:{digest_of_key[:16]}")
            bounces.forget_address(conn, key, f"forgotten:{digest_of_key[:16]}")
            conn.execute(delete(suppressions).where(suppressions.c.email_hash == digest_of_key))
            conn.execute(insert(suppressions).values(email_hash=digest_of_key,
                                                     reason="forgotten", at=now))
        if self.db.is_sqlite:  # old copies in the write-ahead log go too
            with self.db.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return bool(gone.rowcount or wiped)

    def file_fingerprint(self, path: str) -> str | None:
        """The fingerprint of a subscriber file when it was last read in."""
        with self.db.connect() as conn:
            value = conn.execute(select(settings_table.c.value).where(
                settings_table.c.name == _file_key(path))).scalar()
        return str(value) if value is not None else None

    def set_file_fingerprint(self, path: str, fingerprint: str) -> None:
        """Remember that a subscriber file with this fingerprint has been read in."""
        name = _file_key(path)
        with self.db.begin() as conn:
            conn.execute(settings_table.delete().where(settings_table.c.name == name))
            conn.execute(insert(settings_table).values(name=name, value=fingerprint))

    def status_lookup(self, connection: Any) -> StatusLookup:
        """Right-before-sending checks on a sending thread's DBAPI connection."""
        return StatusLookup(self.db, connection)


class StatusLookup:
    """Right-before-sending checks of one address's status (one indexed query, a few tens
    of microseconds)."""

    def __init__(self, db: Database, connection: Any) -> None:
        self._connection = connection
        self._sql = f"SELECT status FROM subscribers WHERE email_key = {db.marker}"

    def is_active(self, email: str) -> bool:
        """True when the address is subscribed and active right now."""
        cursor = self._connection.cursor()
        try:
            cursor.execute(self._sql, (address_key(email),))
            row = cursor.fetchone()
        finally:
            cursor.close()
        self._connection.rollback()  # end the read so the next one sees new commits
        return row is not None and row[0] == "active"


def change_status(conn: Connection, key: str, status: str, now: datetime, cause: str) -> bool:
    """Inside a transaction: one address's new status, its event and suppression; True
    when it changed."""
    changed = conn.execute(update(subscribers).where(
        subscribers.c.email_key == key, subscribers.c.status != status)
        .values(status=status, updated_at=now)).rowcount
    if changed:
        _event(conn, key, status, cause, now)
    _suppress_if_needed(conn, key, status, now)
    return bool(changed)


def status_of(conn: Connection, key: str) -> str:
    """Inside a transaction: one address's status, '' when it is not on the list."""
    return str(conn.execute(select(subscribers.c.status).where(
        subscribers.c.email_key == key)).scalar() or "")


def _file_key(path: str) -> str:
    return f"subscribers-file:{path}"


def _row(row: Any) -> SubscriberRow:
    return SubscriberRow(email=row.email, name=row.name or "", status=row.status,
                         format=row.format or "html", subscribed_at=maybe_utc(row.subscribed_at),
                         updated_at=maybe_utc(row.updated_at),
                         confirm_sent_at=maybe_utc(row.confirm_sent_at),
                         token_id=row.token_id or "")


def _upsert(conn: Connection, entry: ListEntry, now: datetime, cause: str,
            reactivate: bool) -> str:
    s = entry.subscriber
    key = address_key(s.email)
    row = conn.execute(select(subscribers).where(subscribers.c.email_key == key)).first()
    suppressed = conn.execute(select(suppressions.c.reason).where(
        suppressions.c.email_hash == address_hash(key))).first()
    wants_mail = s.status in ("active", "pending")
    if wants_mail and (suppressed or (row and row.status in SUPPRESSING)) and not reactivate:
        return "suppressed"
    if reactivate and wants_mail:
        conn.execute(delete(suppressions).where(suppressions.c.email_hash == address_hash(key)))
    if row is None:
        conn.execute(insert(subscribers).values(
            email_key=key, email=s.email, name=s.name, status=s.status,
            format=entry.format, updated_at=now, token_id=new_token_id(),
            subscribed_at=parse_time(entry.subscribed_at, now)))
        _event(conn, key, s.status, cause, now)
        _suppress_if_needed(conn, key, s.status, now)
        return "added"
    changes = {k: v for k, v in (("name", s.name or row.name), ("status", s.status),
                                 ("format", entry.format)) if getattr(row, k) != v}
    if not changes:
        return "unchanged"
    conn.execute(update(subscribers).where(subscribers.c.email_key == key)
                 .values(updated_at=now, **changes))
    if "status" in changes:
        _event(conn, key, s.status, cause, now)
        _suppress_if_needed(conn, key, s.status, now)
    return "updated"


def _import_batch(conn: Connection, batch: list[ListEntry], now: datetime, cause: str,
                  reactivate: bool) -> tuple[int, int, int]:
    keys = [address_key(e.subscriber.email) for e in batch]
    known = {row.email_key: row for row in conn.execute(
        select(subscribers.c.email_key, subscribers.c.name, subscribers.c.status,
               subscribers.c.format).where(subscribers.c.email_key.in_(keys)))}
    hashes = {address_hash(k): k for k in keys}
    blocked = {hashes[row.email_hash] for row in conn.execute(
        select(suppressions.c.email_hash).where(suppressions.c.email_hash.in_(hashes)))}
    fresh, events, new_suppressions = [], [], []
    updated = suppressed = 0
    inserting: set[str] = set()
    for key, entry in zip(keys, batch, strict=True):
        s = entry.subscriber
        if key in inserting:
            continue  # a repeat within this batch: the first row stands
        if key in known:
            row = known[key]
            if (row.status, row.format) == (s.status, entry.format) and \
                    (not s.name or s.name == row.name):
                continue  # unchanged: the common case when a list is imported again
            outcome = _upsert(conn, entry, now, cause, reactivate)
            updated += outcome == "updated"
            suppressed += outcome == "suppressed"
            continue
        if s.status in ("active", "pending") and key in blocked and not reactivate:
            suppressed += 1
            continue
        if reactivate and key in blocked and s.status in ("active", "pending"):
            conn.execute(delete(suppressions).where(
                suppressions.c.email_hash == address_hash(key)))
        inserting.add(key)
        fresh.append({"email_key": key, "email": s.email, "name": s.name,
                      "status": s.status, "format": entry.format, "updated_at": now,
                      "token_id": new_token_id(),
                      "subscribed_at": parse_time(entry.subscribed_at, now)})
        events.append({"email_key": key, "at": now, "status": s.status, "cause": cause})
        if s.status in SUPPRESSING and key not in blocked:
            new_suppressions.append({"email_hash": address_hash(key), "reason": s.status,
                                     "at": now})
    for table, rows in ((subscribers, fresh), (subscriber_events, events),
                        (suppressions, new_suppressions)):
        if rows:
            conn.execute(insert(table), rows)
    return len(fresh), updated, suppressed


def _event(conn: Connection, key: str, status: str, cause: str, now: datetime) -> None:
    conn.execute(insert(subscriber_events).values(email_key=key, at=now, status=status,
                                                  cause=cause))


def _suppress_if_needed(conn: Connection, key: str, status: str, now: datetime) -> None:
    if status not in SUPPRESSING:
        return
    digest_of_key = address_hash(key)
    if conn.execute(select(suppressions.c.email_hash).where(
            suppressions.c.email_hash == digest_of_key)).first() is None:
        conn.execute(insert(suppressions).values(email_hash=digest_of_key, reason=status,
                                                 at=now))
