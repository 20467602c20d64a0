"""The subscriber list, kept in the state database (SQLite in WAL mode or PostgreSQL, so
the web app can record an unsubscribe while a digest is being sent). CSV is the exchange
format: `[subscribers] path` is read into the database whenever the file changes, and
`digest subscribers import/export` move lists in and out. An import never re-activates an
address that unsubscribed, bounced or complained (the suppression list) unless asked to."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, insert, select, update

from digest.errors import SubscriberError
from digest.models import Subscriber
from digest.store import (
    Store,
    as_utc,
    deliveries,
    settings_table,
    subscriber_events,
    subscribers,
    suppressions,
)

log = logging.getLogger(__name__)

COLUMNS = ("email", "name", "status", "subscribed_at", "format")
STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")
SUPPRESSING = ("unsubscribed", "bounced", "complained")
FORMATS = ("html", "text")
BATCH = 1000


@dataclass(frozen=True)
class ListEntry:
    """One row of a CSV list."""

    subscriber: Subscriber
    subscribed_at: str = ""
    format: str = "html"


@dataclass(frozen=True)
class ImportResult:
    """What an import did, and the rows it had to skip or leave alone."""

    added: int
    updated: int
    skipped: tuple[str, ...]
    suppressed: int = 0


def check_address(address: str) -> str:
    """Return the address as typed (trimmed) when valid; raise SubscriberError when not.
    Syntax only: no DNS look-ups."""
    address = address.strip()
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise SubscriberError(f"{address!r} is not a valid email address: {exc}") from None
    return address


def comparison_key(address: str) -> str:
    """The address as compared for duplicates: trimmed and case-folded."""
    return address.strip().casefold()


def address_hash(address: str) -> str:
    """What the suppression list keeps of an address."""
    return hashlib.sha256(comparison_key(address).encode("utf-8")).hexdigest()


# --- CSV --------------------------------------------------------------------------------


def parse_csv(text: str, origin: str) -> tuple[list[ListEntry], list[str]]:
    """Rows of a CSV list (header row with at least `email`); bad rows come back as one
    message each, with the line number."""
    problems: list[str] = []
    entries = list(read_csv(io.StringIO(text), origin, problems))
    return entries, problems


def read_csv(handle: TextIO, origin: str, problems: list[str]) -> Iterator[ListEntry]:
    """Stream the rows of a CSV list; each bad row adds a message (with its line number)
    to `problems` and is skipped. Repeats within a thousand rows are merged and reported;
    further apart, the later row simply updates the earlier one."""
    reader = csv.DictReader(handle)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "email" not in header:
        raise SubscriberError(f"{origin}: line 1: header row must have an 'email' column")
    reader.fieldnames = header
    recent: set[str] = set()
    for row in reader:
        try:
            entry = _row_entry(row)
        except SubscriberError as exc:
            problems.append(f"{origin}: line {reader.line_num}: {exc}; row skipped")
            continue
        key = comparison_key(entry.subscriber.email)
        if key in recent:
            problems.append(f"{origin}: line {reader.line_num}: duplicate of an earlier row; "
                            "merged")
            continue
        if len(recent) >= BATCH:
            recent.clear()
        recent.add(key)
        yield entry


def _row_entry(row: dict[str, str | None]) -> ListEntry:
    email = check_address(row.get("email") or "")
    status = (row.get("status") or "active").strip().lower()
    if status not in STATUSES:
        raise SubscriberError(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
    fmt = (row.get("format") or "html").strip().lower()
    if fmt not in FORMATS:
        raise SubscriberError(f"unknown format {fmt!r} (html or text)")
    name = " ".join((row.get("name") or "").split())
    return ListEntry(Subscriber(email=email, name=name, status=status),
                     (row.get("subscribed_at") or "").strip(), fmt)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _parse_time(value: str, fallback: datetime) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return fallback
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- the list in the database ------------------------------------------------------------


class SubscriberList:
    """Every read and change of the subscriber list."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    def get(self, email: str) -> dict[str, Any] | None:
        """The stored row of one address, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(select(subscribers).where(
                subscribers.c.email_key == comparison_key(email))).first()
        return dict(row._mapping) if row else None

    def is_suppressed(self, email: str) -> bool:
        """Whether the address is on the suppression list."""
        with self.engine.connect() as conn:
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
        with self.engine.begin() as conn:
            return self._upsert(conn, ListEntry(Subscriber(email, name, status), "", format),
                                now, cause, reactivate)

    def _upsert(self, conn: Any, entry: ListEntry, now: datetime, cause: str,
                reactivate: bool) -> str:
        s = entry.subscriber
        key = comparison_key(s.email)
        row = conn.execute(select(subscribers).where(subscribers.c.email_key == key)).first()
        suppressed = conn.execute(select(suppressions.c.reason).where(
            suppressions.c.email_hash == address_hash(key))).first()
        wants_mail = s.status in ("active", "pending")
        if wants_mail and (suppressed or (row and row.status in SUPPRESSING)) and not reactivate:
            return "suppressed"
        if reactivate and wants_mail:
            conn.execute(delete(suppressions).where(
                suppressions.c.email_hash == address_hash(key)))
        if row is None:
            conn.execute(insert(subscribers).values(
                email_key=key, email=s.email, name=s.name, status=s.status,
                format=entry.format, updated_at=now,
                subscribed_at=_parse_time(entry.subscribed_at, now)))
            self._event(conn, key, s.status, cause, now)
            self._suppress_if_needed(conn, key, s.status, now)
            return "added"
        changes = {k: v for k, v in (("name", s.name or row.name), ("status", s.status),
                                     ("format", entry.format)) if getattr(row, k) != v}
        if not changes:
            return "unchanged"
        conn.execute(update(subscribers).where(subscribers.c.email_key == key)
                     .values(updated_at=now, **changes))
        if "status" in changes:
            self._event(conn, key, s.status, cause, now)
            self._suppress_if_needed(conn, key, s.status, now)
        return "updated"

    def set_status(self, email: str, status: str, now: datetime, cause: str) -> bool:
        """Change one address's status, with its cause; True when it changed."""
        if status not in STATUSES:
            raise SubscriberError(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
        key = comparison_key(email)
        with self.engine.begin() as conn:
            changed = conn.execute(update(subscribers).where(
                subscribers.c.email_key == key, subscribers.c.status != status)
                .values(status=status, updated_at=now)).rowcount
            if changed:
                self._event(conn, key, status, cause, now)
            self._suppress_if_needed(conn, key, status, now)
        return bool(changed)

    def remove(self, email: str, now: datetime) -> bool:
        """Stop mailing an address (it becomes unsubscribed and suppressed); False when it
        was not on the list as pending or active."""
        row = self.get(email)
        if row is None or row["status"] not in ("active", "pending"):
            return False
        return self.set_status(email, "unsubscribed", now, "removed by operator")

    @staticmethod
    def _event(conn: Any, key: str, status: str, cause: str, now: datetime) -> None:
        conn.execute(insert(subscriber_events).values(email_key=key, at=now, status=status,
                                                      cause=cause))

    @staticmethod
    def _suppress_if_needed(conn: Any, key: str, status: str, now: datetime) -> None:
        if status not in SUPPRESSING:
            return
        digest_of_key = address_hash(key)
        if conn.execute(select(suppressions.c.email_hash).where(
                suppressions.c.email_hash == digest_of_key)).first() is None:
            conn.execute(insert(suppressions).values(email_hash=digest_of_key, reason=status,
                                                     at=now))

    def import_entries(self, entries: Iterable[ListEntry], now: datetime, *, cause: str,
                       reactivate: bool = False) -> ImportResult:
        """Merge rows into the list, a batch per transaction: one query for the rows and
        suppressions a batch already has, one bulk insert for the new ones."""
        added = updated = suppressed = 0
        batch: list[ListEntry] = []

        def flush() -> None:
            nonlocal added, updated, suppressed
            with self.engine.begin() as conn:
                a, u, s = self._import_batch(conn, batch, now, cause, reactivate)
            added, updated, suppressed = added + a, updated + u, suppressed + s
            batch.clear()

        for entry in entries:
            batch.append(entry)
            if len(batch) == BATCH:
                flush()
        if batch:
            flush()
        return ImportResult(added=added, updated=updated, skipped=(), suppressed=suppressed)

    def _import_batch(self, conn: Any, batch: list[ListEntry], now: datetime, cause: str,
                      reactivate: bool) -> tuple[int, int, int]:
        keys = [comparison_key(e.subscriber.email) for e in batch]
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
                outcome = self._upsert(conn, entry, now, cause, reactivate)
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
                          "subscribed_at": _parse_time(entry.subscribed_at, now)})
            events.append({"email_key": key, "at": now, "status": s.status, "cause": cause})
            if s.status in SUPPRESSING and key not in blocked:
                new_suppressions.append({"email_hash": address_hash(key), "reason": s.status,
                                         "at": now})
        for table, rows in ((subscribers, fresh), (subscriber_events, events),
                            (suppressions, new_suppressions)):
            if rows:
                conn.execute(insert(table), rows)
        return len(fresh), updated, suppressed

    def import_csv(self, source: Path, now: datetime, *, reactivate: bool = False
                   ) -> ImportResult:
        """Import a CSV file; bad rows are reported with their line numbers and skipped."""
        problems: list[str] = []
        try:
            with source.open(encoding="utf-8-sig", newline="") as handle:
                result = self.import_entries(read_csv(handle, str(source), problems), now,
                                             cause=f"imported from {source.name}",
                                             reactivate=reactivate)
        except (OSError, UnicodeDecodeError) as exc:
            raise SubscriberError(f"{source}: cannot read ({exc})") from None
        return ImportResult(result.added, result.updated, tuple(problems), result.suppressed)

    def sync_file(self, path: Path, now: datetime) -> ImportResult | None:
        """Read the configured list file into the database when it has changed since the
        last time; None when it has not (or does not exist)."""
        if not path.exists():
            return None
        fingerprint = _file_digest(path)
        name = f"subscribers-file:{path}"
        with self.engine.connect() as conn:
            known = conn.execute(select(settings_table.c.value)
                                 .where(settings_table.c.name == name)).scalar()
        if known == fingerprint:
            return None
        result = self.import_csv(path, now)
        for problem in result.skipped:
            log.warning("%s", problem)
        with self.engine.begin() as conn:
            if known is None:
                conn.execute(insert(settings_table).values(name=name, value=fingerprint))
            else:
                conn.execute(update(settings_table).where(settings_table.c.name == name)
                             .values(value=fingerprint))
        log.info("%s read into the subscriber list: %d added, %d updated, %d left "
                 "suppressed", path, result.added, result.updated, result.suppressed)
        return result

    def iter_active(self) -> Iterator[Subscriber]:
        """Active subscribers, read in batches so a long list never sits in memory whole."""
        query = select(subscribers.c.id, subscribers.c.email, subscribers.c.name,
                       subscribers.c.format).where(subscribers.c.status == "active")
        for row in self.store.stream(query, subscribers.c.id, BATCH):
            yield Subscriber(email=row.email, name=row.name, format=row.format)

    def count_by_status(self) -> dict[str, int]:
        """How many subscribers have each status."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(subscribers.c.status, func.count())
                                .group_by(subscribers.c.status)).all()
        return {status: int(n) for status, n in rows}

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every subscriber row, in batches."""
        for row in self.store.stream(select(subscribers), subscribers.c.id, BATCH):
            yield dict(row._mapping)

    def export_csv(self, out: TextIO) -> int:
        """Write the list as CSV with a header row; returns the number of rows."""
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        count = 0
        for row in self.rows():
            stamp = row["subscribed_at"]
            writer.writerow([row["email"], row["name"], row["status"],
                             as_utc(stamp).isoformat(timespec="seconds") if stamp else "",
                             row["format"]])
            count += 1
        return count

    def show(self, email: str) -> dict[str, Any] | None:
        """Everything stored about one person."""
        row = self.get(email)
        key = comparison_key(email)
        with self.engine.connect() as conn:
            events = [dict(e._mapping) for e in conn.execute(
                select(subscriber_events.c.at, subscriber_events.c.status,
                       subscriber_events.c.cause)
                .where(subscriber_events.c.email_key == key).order_by(subscriber_events.c.id))]
            sent = conn.execute(select(deliveries.c.digest_id, deliveries.c.status,
                                       deliveries.c.updated_at)
                                .where(func.lower(deliveries.c.email) == key)
                                .order_by(deliveries.c.digest_id)).all()
        suppressed = self.is_suppressed(email)
        if row is None and not events and not sent and not suppressed:
            return None
        return {"subscriber": row, "events": events,
                "deliveries": [dict(d._mapping) for d in sent], "suppressed": suppressed}

    def forget(self, email: str, now: datetime) -> bool:
        """Erase all personal data of an address; keep only its hash in the suppression
        list so it is never mailed again. True when anything was stored."""
        key = comparison_key(email)
        digest_of_key = address_hash(key)
        with self.engine.begin() as conn:
            gone = conn.execute(delete(subscribers).where(subscribers.c.email_key == key))
            conn.execute(delete(subscriber_events).where(subscriber_events.c.email_key == key))
            wiped = conn.execute(update(deliveries).where(func.lower(deliveries.c.email) == key)
                                 .values(email=f"forgotten:{digest_of_key[:16]}", name=""))
            conn.execute(delete(suppressions).where(suppressions.c.email_hash == digest_of_key))
            conn.execute(insert(suppressions).values(email_hash=digest_of_key,
                                                     reason="forgotten", at=now))
        if self.engine.dialect.name == "sqlite":  # old copies in the write-ahead log go too
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return bool(gone.rowcount or wiped.rowcount)


class StatusLookup:
    """Right-before-sending checks of one address's status, on a DBAPI connection of its
    own (one indexed query, a few tens of microseconds)."""

    def __init__(self, store: Store) -> None:
        self._connection = store.engine.raw_connection()
        marker = "?" if store.engine.dialect.paramstyle == "qmark" else "%s"
        self._sql = f"SELECT status FROM subscribers WHERE email_key = {marker}"

    def is_active(self, email: str) -> bool:
        """True when the address is subscribed and active right now."""
        cursor = self._connection.cursor()
        try:
            cursor.execute(self._sql, (comparison_key(email),))
            row = cursor.fetchone()
        finally:
            cursor.close()
        self._connection.rollback()  # end the read so the next one sees new commits
        return row is not None and row[0] == "active"

    def close(self) -> None:
        """Give the connection back."""
        self._connection.close()
