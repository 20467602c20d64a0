"""The state database: which articles have been in a digest, each digest's rendered
content, and one delivery row per (digest, subscriber). SQLAlchemy Core, so the same
code runs on SQLite (WAL mode) now and PostgreSQL later."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError

from digest.errors import ConfigError, DigestError, LockedError
from digest.models import Article, ArticleEdit, FeedEntry, RenderedDigest, Subscriber

log = logging.getLogger(__name__)

metadata = MetaData()

digests = Table(
    "digests", metadata,
    Column("id", Integer, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False),  # sending | paused | sent
    Column("subject", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    # The scheduled fire time this digest was built for; unique, so a slot never gets two.
    # NULL for digests sent by hand (`digest run`).
    Column("slot", DateTime(timezone=True)),
    Index("ix_digests_slot", "slot", unique=True),
)

digest_articles = Table(
    "digest_articles", metadata,
    Column("digest_id", Integer, ForeignKey("digests.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("url", Text, nullable=False, index=True),
    Column("title", Text, nullable=False),
    Column("source_name", Text, nullable=False),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", Integer, primary_key=True),
    Column("digest_id", Integer, ForeignKey("digests.id"), nullable=False),
    Column("email", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("format", String(8), nullable=False, default="html"),
    # pending | sent | failed | deferred | skipped
    Column("status", String(16), nullable=False),
    Column("message_id", Text),
    Column("reply", Text),
    Column("code", Integer),  # the SMTP reply code of the last attempt
    Column("attempts", Integer, nullable=False, default=0),
    Column("updated_at", DateTime(timezone=True)),
    # Who is sending this row right now, and until when (`digest worker` and every sender
    # claim batches; a lease that runs out is picked up by another sender).
    Column("lease_owner", Text),
    Column("lease_until", DateTime(timezone=True)),
    UniqueConstraint("digest_id", "email"),
    Index("ix_deliveries_digest_status", "digest_id", "status"),
)

# Every process sending right now, with a heartbeat: the global rate limit is shared out
# among the live ones.
senders = Table(
    "senders", metadata,
    Column("owner", Text, primary_key=True),  # host:pid:random
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
)

locks = Table(
    "locks", metadata,
    Column("name", String(64), primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
)

source_state = Table(
    "source_state", metadata,
    Column("url", Text, primary_key=True),
    Column("etag", Text, nullable=False, default=""),
    Column("last_modified", Text, nullable=False, default=""),
    Column("last_success_at", DateTime(timezone=True)),
    Column("last_failure_at", DateTime(timezone=True)),
    Column("last_error", Text, nullable=False, default=""),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("listed", Integer, nullable=False, default=0),  # entries in the category last read
)

# Entries a source listed that have not been in a digest yet: kept so that a feed that
# answers 304, or drops old items, still yields them until they are sent.
source_entries = Table(
    "source_entries", metadata,
    Column("source_url", Text, primary_key=True),
    Column("url", Text, primary_key=True),
    Column("entry", Text, nullable=False),  # the FeedEntry as JSON
    Column("first_seen", DateTime(timezone=True), nullable=False),
)

# An editor's summary of an article, used in place of the generated one; digest_id is set
# once the article has gone out in a digest, so later edits cannot rewrite history.
summary_edits = Table(
    "summary_edits", metadata,
    Column("url", Text, primary_key=True),
    Column("text", Text, nullable=False),  # the editor's summary; "" keeps the generated one
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("digest_id", Integer, ForeignKey("digests.id")),
    Column("excluded", Integer, nullable=False, default=0),
    Column("pinned", Integer, nullable=False, default=0),
    Column("position", Integer),
    Column("headline", Text, nullable=False, default=""),
    Column("updated_by", Text, nullable=False, default=""),
)

# The subscriber list. email_key is the address normalised for comparison; email keeps it
# as typed for display. Every change of status is an event with its cause.
subscribers = Table(
    "subscribers", metadata,
    Column("id", Integer, primary_key=True),
    Column("email_key", Text, nullable=False, unique=True),
    Column("email", Text, nullable=False),
    Column("name", Text, nullable=False, default=""),
    # pending | active | unsubscribed | bounced | complained
    Column("status", String(16), nullable=False),
    Column("format", String(8), nullable=False, default="html"),  # html | text
    Column("subscribed_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("confirm_sent_at", DateTime(timezone=True)),  # last confirmation email
)

subscriber_events = Table(
    "subscriber_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("email_key", Text, nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("cause", Text, nullable=False),
)

# Addresses never to mail again unless an operator says so: sha256 of the email_key, so an
# address that asked to be forgotten stays suppressed without being stored.
suppressions = Table(
    "suppressions", metadata,
    Column("email_hash", String(64), primary_key=True),
    Column("reason", String(16), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# Bookkeeping for things synchronised from files (the subscriber CSV's fingerprint).
settings_table = Table(
    "settings", metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

# One row per job run (scheduled or by hand): what it did, or why it did nothing.
runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),  # digest | gather | resume | manual
    Column("slot", DateTime(timezone=True)),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("outcome", String(16), nullable=False),  # sent | skipped | failed | gathered
    Column("reason", Text, nullable=False, default=""),
    Column("articles", Integer, nullable=False, default=0),
    Column("recipients", Integer, nullable=False, default=0),
    Column("sent", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("deferred", Integer, nullable=False, default=0),
    Column("digest_id", Integer),
)

STALE_LOCK_AGE = timedelta(hours=12)
FAILING_AFTER = 3


@dataclass(frozen=True)
class StoredDigest:
    """A digest as committed before sending: what every recipient gets."""

    id: int
    created_at: datetime
    status: str
    subject: str
    html: str
    text: str

    @property
    def rendered(self) -> RenderedDigest:
        return RenderedDigest(subject=self.subject, html=self.html, text=self.text)


@dataclass(frozen=True)
class SourceState:
    """What the state database remembers of one source URL."""

    url: str
    etag: str = ""
    last_modified: str = ""
    last_success_at: datetime | None = None
    last_error: str = ""
    consecutive_failures: int = 0
    listed: int = 0

    @property
    def failing(self) -> bool:
        return self.consecutive_failures >= FAILING_AFTER


UNSENT = ("pending", "deferred")


@dataclass(frozen=True)
class DeliveryCounts:
    """How far a digest's sending has got."""

    pending: int = 0
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.sent + self.failed + self.deferred + self.skipped

    @property
    def unsent(self) -> int:
        return self.pending + self.deferred


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


def database_url(database: str, base: Path, password: str = "") -> str:
    """A SQLAlchemy URL from the [state] database setting (a path or a URL). A
    postgresql:// URL gets the psycopg (3) driver, and the password when it has none."""
    if "://" in database:
        url = make_url(database)
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        if password and url.password is None:
            url = url.set(password=password)
        return url.render_as_string(hide_password=False)
    path = (base / database).resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"[state] database: cannot create the folder {path.parent} "
                          f"({exc.strerror})") from None
    return f"sqlite:///{path}"


class Store:
    """All reads and writes of the state database."""

    def __init__(self, url: str, where: str = "[state] database") -> None:
        self.url = url
        self.engine: Engine = create_engine(url, future=True)
        # SQLite has one writer at a time and its busy handler sleeps a millisecond or more
        # on a collision; the sending threads of one process take turns on this lock instead.
        self._write_lock = threading.Lock() if url.startswith("sqlite") else nullcontext()
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            from digest.migrate import current, head, upgrade

            if current(self.engine) != head():
                upgrade(self.engine)
        except OperationalError as exc:
            self.engine.dispose()
            raise DigestError(f"{where}: cannot open {safe_url(url)}: "
                              f"{first_line(exc.orig)}") from None

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def known_urls(self, urls: Iterable[str]) -> set[str]:
        """The URLs among these that were already in a digest."""
        wanted = list(dict.fromkeys(urls))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                rows = conn.execute(select(digest_articles.c.url)
                                    .where(digest_articles.c.url.in_(chunk)))
                found.update(row.url for row in rows)
        return found

    def source_state(self, url: str) -> SourceState:
        """What was remembered of a source (validators, failures); blank when new."""
        with self.engine.connect() as conn:
            row = conn.execute(select(source_state).where(source_state.c.url == url)).first()
        return _source_state(row) if row else SourceState(url=url)

    def all_source_states(self) -> list[SourceState]:
        """Every source the database remembers."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(source_state).order_by(source_state.c.url)).all()
        return [_source_state(row) for row in rows]

    def record_source_success(self, url: str, etag: str, last_modified: str,
                              now: datetime, listed: int | None = None) -> None:
        """A source answered: remember its validators (and, when it was read, how many
        entries it listed) and clear its failure count."""
        values: dict[str, Any] = {"etag": etag, "last_modified": last_modified,
                                  "last_success_at": now, "consecutive_failures": 0,
                                  "last_error": ""}
        if listed is not None:
            values["listed"] = listed
        self._upsert_source(url, now, **values)

    def record_source_failure(self, url: str, reason: str, now: datetime) -> int:
        """A source failed this cycle; returns how many cycles in a row it has failed."""
        failures = self.source_state(url).consecutive_failures + 1
        self._upsert_source(url, now, last_failure_at=now, last_error=reason,
                            consecutive_failures=failures)
        return failures

    def _upsert_source(self, url: str, now: datetime, **values: Any) -> None:
        with self.engine.begin() as conn:
            updated = conn.execute(update(source_state).where(source_state.c.url == url)
                                   .values(**values))
            if updated.rowcount == 0:
                conn.execute(insert(source_state).values(url=url, **values))

    def remember_entries(self, source_url: str, entries: Sequence[FeedEntry],
                         now: datetime) -> None:
        """Keep a source's entries until they have been in a digest."""
        with self.engine.begin() as conn:
            known = {row.url for row in conn.execute(
                select(source_entries.c.url).where(source_entries.c.source_url == source_url))}
            for entry in entries:
                url, payload = entry.url, _entry_json(entry)
                if url in known:
                    conn.execute(update(source_entries).where(
                        source_entries.c.source_url == source_url,
                        source_entries.c.url == url).values(entry=payload))
                else:
                    conn.execute(insert(source_entries).values(
                        source_url=source_url, url=url, entry=payload, first_seen=now))

    def remembered_entries(self, source_url: str) -> list[FeedEntry]:
        """Entries kept for a source whose URL has not been in a digest yet."""
        sent = select(digest_articles.c.url)
        with self.engine.connect() as conn:
            rows = conn.execute(select(source_entries.c.entry).where(
                source_entries.c.source_url == source_url,
                source_entries.c.url.not_in(sent)).order_by(source_entries.c.first_seen)).all()
        return [_entry_from_json(row.entry) for row in rows]

    def forget_entries_before(self, cutoff: datetime) -> None:
        """Drop kept entries first seen before the cutoff (they are no longer news)."""
        with self.engine.begin() as conn:
            conn.execute(source_entries.delete().where(source_entries.c.first_seen < cutoff))

    def set_summary_edit(self, url: str, text: str, now: datetime) -> None:
        """Use this text as the article's summary in the next digest."""
        self.save_article_edit(url, now, text=text)

    def clear_summary_edit(self, url: str) -> bool:
        """Go back to the generated summary; True when there was an edit."""
        with self.engine.begin() as conn:
            gone = conn.execute(update(summary_edits).where(
                summary_edits.c.url == url, summary_edits.c.digest_id.is_(None),
                summary_edits.c.text != "").values(text=""))
        return bool(gone.rowcount)

    def pending_summary_edits(self) -> dict[str, str]:
        """URL → editor's summary, for articles not yet sent."""
        return {url: e.summary for url, e in self.article_edits().items() if e.summary}

    def article_edits(self) -> dict[str, ArticleEdit]:
        """URL → the editor's changes, for articles not yet sent."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(summary_edits)
                                .where(summary_edits.c.digest_id.is_(None))).all()
        return {row.url: ArticleEdit(url=row.url, excluded=bool(row.excluded),
                                     pinned=bool(row.pinned), position=row.position,
                                     headline=row.headline or "", summary=row.text)
                for row in rows}

    def save_article_edit(self, url: str, now: datetime, by: str = "", **changes: Any) -> None:
        """Change some of an article's edits (excluded, pinned, position, headline, text)."""
        with self.engine.begin() as conn:
            row = conn.execute(select(summary_edits.c.digest_id)
                               .where(summary_edits.c.url == url)).first()
            if row is not None and row.digest_id is not None:
                raise DigestError(f"{url}: already sent in digest {row.digest_id}; "
                                  "it can no longer change")
            values = {**changes, "updated_at": now, "updated_by": by}
            if row is None:
                conn.execute(insert(summary_edits).values(url=url, text="", **values)
                             if "text" not in changes else insert(summary_edits).values(
                                 url=url, **values))
            else:
                conn.execute(update(summary_edits).where(summary_edits.c.url == url)
                             .values(**values))

    def create_digest(self, rendered: RenderedDigest, articles: Sequence[Article],
                      recipients: Iterable[Subscriber], now: datetime,
                      slot: datetime | None = None) -> int | None:
        """Commit a digest, its articles and one pending delivery per recipient, atomically;
        None (and nothing written) when there is no recipient. Raises SlotTaken when the
        scheduled slot already has its digest."""
        with self.engine.begin() as conn:
            try:
                digest_id = conn.execute(insert(digests).values(
                    created_at=now, status="sending", subject=rendered.subject,
                    html=rendered.html, text=rendered.text, slot=slot)
                    .returning(digests.c.id)).scalar_one()
            except IntegrityError:
                raise SlotTaken(f"slot {slot} already has its digest") from None
            if articles:
                conn.execute(insert(digest_articles), [
                    {"digest_id": digest_id, "position": i, "url": a.url, "title": a.title,
                     "source_name": a.source_name} for i, a in enumerate(articles)])
            conn.execute(update(summary_edits).where(
                summary_edits.c.url.in_([a.url for a in articles]),
                summary_edits.c.digest_id.is_(None)).values(digest_id=digest_id))
            listed = [u for a in articles for u in (a.url, a.feed_url) if u]
            conn.execute(source_entries.delete().where(source_entries.c.url.in_(listed)))
            added = 0
            for batch in _batches(recipients, 1000):
                conn.execute(self._insert_ignoring_duplicates(deliveries), [
                    {"digest_id": digest_id, "email": s.email, "name": s.name,
                     "format": s.format, "status": "pending", "updated_at": now,
                     "attempts": 0} for s in batch])
                added += len(batch)
            if not added:
                conn.rollback()
                return None
        return int(digest_id)

    def _insert_ignoring_duplicates(self, table: Table) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert
            return pg_insert(table).on_conflict_do_nothing()
        if self.engine.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert
            return sqlite_insert(table).on_conflict_do_nothing()
        return insert(table)

    def unfinished_digests(self) -> list[StoredDigest]:
        """Every digest whose sending has not finished (sending or paused), oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(digests).where(digests.c.status.in_(("sending", "paused")))
                                .order_by(digests.c.id)).all()
        return [_stored(row) for row in rows]

    def unfinished_digest(self) -> StoredDigest | None:
        """The oldest digest whose sending has not finished (sending or paused), if any."""
        with self.engine.connect() as conn:
            row = conn.execute(select(digests).where(digests.c.status.in_(("sending", "paused")))
                               .order_by(digests.c.id).limit(1)).first()
        return _stored(row) if row else None

    def set_digest_status(self, digest_id: int, status: str) -> None:
        """Mark a digest sending, paused or sent."""
        with self.engine.begin() as conn:
            conn.execute(update(digests).where(digests.c.id == digest_id).values(status=status))

    def expire_deferred(self, digest_id: int, lifetime: timedelta, now: datetime) -> int:
        """Give up deferred deliveries of a digest older than `lifetime`; how many."""
        stored = self.get_digest(digest_id)
        if stored is None or now - stored.created_at < lifetime:
            return 0
        hours = lifetime.total_seconds() / 3600
        with self.engine.begin() as conn:
            expired = conn.execute(update(deliveries).where(
                deliveries.c.digest_id == digest_id, deliveries.c.status == "deferred")
                .values(status="failed", updated_at=now,
                        reply=func.coalesce(deliveries.c.reply, "") +
                        f" [failed (expired): still deferred after {hours:g} hours]"))
        return int(expired.rowcount)

    def hard_failures(self, email: str) -> int:
        """How many deliveries to this address ended in a 5xx reply."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(deliveries).where(
                deliveries.c.email == email, deliveries.c.status == "failed",
                deliveries.c.code >= 500, deliveries.c.code < 600)).scalar_one())

    def get_digest(self, digest_id: int) -> StoredDigest | None:
        """One digest by id."""
        with self.engine.connect() as conn:
            row = conn.execute(select(digests).where(digests.c.id == digest_id)).first()
        return _stored(row) if row else None

    def pending_deliveries(self, digest_id: int, batch: int = 1000) -> Iterator[Subscriber]:
        """Recipients of a digest still waiting for their message (pending or deferred),
        streamed in batches so memory stays flat however long the list."""
        query = select(deliveries.c.id, deliveries.c.email, deliveries.c.name,
                       deliveries.c.format).where(deliveries.c.digest_id == digest_id,
                                                  deliveries.c.status.in_(UNSENT))
        for row in self.stream(query, deliveries.c.id, batch):
            yield Subscriber(email=row.email, name=row.name, format=row.format)

    def claim_deliveries(self, digest_id: int, owner: str, limit: int, lease: timedelta,
                         now: datetime, retry_deferred: bool = True) -> list[Subscriber]:
        """Lease up to `limit` unsent deliveries nobody else holds (row locks with SKIP
        LOCKED on PostgreSQL; SQLite has one writer at a time)."""
        wanted = UNSENT if retry_deferred else ("pending",)
        free = select(deliveries.c.id).where(
            deliveries.c.digest_id == digest_id, deliveries.c.status.in_(wanted),
            or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now)
        ).order_by(deliveries.c.id).limit(limit).with_for_update(skip_locked=True)
        with self._write_lock, self.engine.begin() as conn:
            rows = conn.execute(update(deliveries).where(
                deliveries.c.id.in_(free.scalar_subquery())).values(
                lease_owner=owner, lease_until=now + lease).returning(
                deliveries.c.id, deliveries.c.email, deliveries.c.name,
                deliveries.c.format)).all()
        return [Subscriber(email=r.email, name=r.name, format=r.format)
                for r in sorted(rows, key=lambda r: r.id)]

    def renew_leases(self, owner: str, lease: timedelta, now: datetime) -> int:
        """Extend every lease this sender holds on unsent rows; beat its heart."""
        with self._write_lock, self.engine.begin() as conn:
            renewed = conn.execute(update(deliveries).where(
                deliveries.c.lease_owner == owner, deliveries.c.status.in_(UNSENT)).values(
                lease_until=now + lease)).rowcount
            conn.execute(update(senders).where(senders.c.owner == owner)
                         .values(heartbeat_at=now))
        return int(renewed)

    def release_leases(self, owner: str) -> int:
        """Give back the unsent rows this sender holds, for others to send."""
        with self._write_lock, self.engine.begin() as conn:
            return int(conn.execute(update(deliveries).where(
                deliveries.c.lease_owner == owner, deliveries.c.status.in_(UNSENT)).values(
                lease_owner=None, lease_until=None)).rowcount)

    def release_dead_leases(self, digest_id: int, now: datetime) -> int:
        """Free the rows leased by senders on this host whose process is gone (a crash or
        SIGKILL), so a restart need not wait for their leases to run out."""
        host = socket.gethostname()
        with self.engine.connect() as conn:
            owners = conn.execute(select(deliveries.c.lease_owner).distinct().where(
                deliveries.c.digest_id == digest_id, deliveries.c.lease_until >= now,
                deliveries.c.status.in_(UNSENT))).scalars().all()
        dead = [o for o in owners if o and o.split(":")[0] == host
                and not _pid_alive(int(o.split(":")[1]))]
        freed = 0
        for owner in dead:
            freed += self.release_leases(owner)
        return freed

    def register_sender(self, owner: str, now: datetime) -> None:
        """Count this process among the live senders."""
        host, pid, _ = owner.split(":")
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(senders.delete().where(senders.c.owner == owner))
            conn.execute(insert(senders).values(owner=owner, host=host, pid=int(pid),
                                                started_at=now, heartbeat_at=now))

    def unregister_sender(self, owner: str) -> None:
        """This process stopped sending."""
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(senders.delete().where(senders.c.owner == owner))

    def live_senders(self, now: datetime, within: timedelta) -> int:
        """Senders whose heart beat within `within` (this one included, so at least 1)."""
        return max(1, self.count_live_senders(now, within))

    def count_live_senders(self, now: datetime, within: timedelta) -> int:
        """How many senders' hearts beat within `within`; the ones that died without a
        word are forgotten."""
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(senders.delete().where(senders.c.heartbeat_at < now - 10 * within))
            count = conn.execute(select(func.count()).select_from(senders).where(
                senders.c.heartbeat_at >= now - within)).scalar()
        return int(count or 0)

    def sending_digests(self) -> list[StoredDigest]:
        """Digests being sent (not paused), oldest first: the work of `digest worker`."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(digests).where(digests.c.status == "sending")
                                .order_by(digests.c.id)).all()
        return [_stored(row) for row in rows]

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

    def mark_delivery(self, digest_id: int, email: str, *, status: str, message_id: str,
                      reply: str, now: datetime, code: int | None = None,
                      attempts: int = 1) -> None:
        """Record one recipient's outcome, in its own commit (the repeat window is one message)."""
        with self.engine.begin() as conn:
            conn.execute(self._mark, {"b_digest_id": digest_id, "b_email": email,
                                      "b_status": status, "b_message_id": message_id,
                                      "b_reply": reply, "b_updated_at": now, "b_code": code,
                                      "b_attempts": attempts})

    def ledger_writer(self) -> LedgerWriter:
        """A connection of its own for one sending thread to record outcomes quickly."""
        return LedgerWriter(self.engine, self._write_lock)

    # One statement compiled once: the ledger commit is on the hot path of every send.
    _mark = (update(deliveries)
             .where(deliveries.c.digest_id == bindparam("b_digest_id"),
                    deliveries.c.email == bindparam("b_email"))
             .values(status=bindparam("b_status"), message_id=bindparam("b_message_id"),
                     reply=bindparam("b_reply"), updated_at=bindparam("b_updated_at"),
                     code=bindparam("b_code"),
                     attempts=deliveries.c.attempts + bindparam("b_attempts")))

    def delivery_counts(self, digest_id: int) -> DeliveryCounts:
        """Pending, sent and failed deliveries of one digest."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(deliveries.c.status, func.count())
                                .where(deliveries.c.digest_id == digest_id)
                                .group_by(deliveries.c.status)).all()
        counts = {status: n for status, n in rows}
        return DeliveryCounts(**{k: counts.get(k, 0) for k in
                                 ("pending", "sent", "failed", "deferred", "skipped")})

    def finish_digest(self, digest_id: int, now: datetime) -> bool:
        """Mark a digest sent once no delivery is pending or deferred; True when it was."""
        if self.delivery_counts(digest_id).unsent:
            return False
        with self.engine.begin() as conn:
            conn.execute(update(digests).where(digests.c.id == digest_id)
                         .values(status="sent", finished_at=now))
        return True

    def digest_for_slot(self, slot: datetime) -> int | None:
        """The digest built for a scheduled slot, if there is one."""
        with self.engine.connect() as conn:
            found = conn.execute(select(digests.c.id).where(digests.c.slot == slot)).scalar()
        return int(found) if found is not None else None

    def record_run(self, **values: Any) -> int:
        """Remember one job run; returns its id."""
        with self.engine.begin() as conn:
            return int(conn.execute(insert(runs).values(**values).returning(runs.c.id))
                       .scalar_one())

    def recent_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        """The latest job runs, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(runs).order_by(runs.c.id.desc()).limit(limit)).all()
        return [{**row._mapping, "slot": as_utc(row.slot) if row.slot else None,
                 "started_at": as_utc(row.started_at),
                 "finished_at": as_utc(row.finished_at) if row.finished_at else None}
                for row in rows]

    def health(self) -> dict[str, datetime | None]:
        """When sources were last read without error, and a digest was last sent."""
        with self.engine.connect() as conn:
            gathered = conn.execute(select(func.max(source_state.c.last_success_at))).scalar()
            sent = conn.execute(select(func.max(digests.c.finished_at))
                                .where(digests.c.status == "sent")).scalar()
        return {"last_gather_at": as_utc(gathered) if gathered else None,
                "last_send_at": as_utc(sent) if sent else None}

    def get_setting(self, name: str) -> Any:
        """A JSON value kept in the settings table, or None."""
        with self.engine.connect() as conn:
            value = conn.execute(select(settings_table.c.value)
                                 .where(settings_table.c.name == name)).scalar()
        return json.loads(value) if value is not None else None

    def set_setting(self, name: str, value: Any) -> None:
        """Keep a JSON value in the settings table; None removes it."""
        with self.engine.begin() as conn:
            conn.execute(settings_table.delete().where(settings_table.c.name == name))
            if value is not None:
                conn.execute(insert(settings_table).values(name=name, value=json.dumps(value)))

    def forget_settings(self, prefix: str, keep: Callable[[Any], bool]) -> int:
        """Remove the settings under `prefix` whose value `keep` rejects; how many."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(settings_table).where(
                settings_table.c.name.startswith(prefix, autoescape=True))).all()
        gone = [row.name for row in rows if not keep(json.loads(row.value))]
        if gone:
            with self.engine.begin() as conn:
                conn.execute(settings_table.delete().where(settings_table.c.name.in_(gone)))
        return len(gone)

    def recent_digests(self, limit: int = 10) -> list[tuple[StoredDigest, DeliveryCounts]]:
        """The latest digests with their delivery counts, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(digests).order_by(digests.c.id.desc())
                                .limit(limit)).all()
        return [(_stored(row), self.delivery_counts(row.id)) for row in rows]

    def digest_articles(self, digest_id: int) -> list[dict[str, Any]]:
        """The articles of one digest in their order."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(digest_articles)
                                .where(digest_articles.c.digest_id == digest_id)
                                .order_by(digest_articles.c.position)).all()
        return [dict(row._mapping) for row in rows]

    @contextmanager
    def lock(self, name: str, now: datetime) -> Iterator[None]:
        """Hold a named lock in the database; raise LockedError when a live process has it."""
        me = {"name": name, "host": socket.gethostname(), "pid": os.getpid(),
              "acquired_at": now}
        while not self._try_lock(name, me, now):
            pass
        try:
            yield
        finally:
            with self.engine.begin() as conn:
                conn.execute(locks.delete().where(locks.c.name == name,
                                                  locks.c.pid == me["pid"],
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


class SlotTaken(DigestError):
    """A scheduled slot already has its digest."""


class LedgerWriter:
    """Records delivery outcomes on a DBAPI connection of its own, one commit per message:
    the commit is on the hot path of every send, so it skips SQLAlchemy's per-statement
    work (about 200 µs a message) while keeping its own transaction per outcome."""

    def __init__(self, engine: Engine, write_lock: Any) -> None:
        self._connection = engine.raw_connection()
        self._write_lock = write_lock
        self._text_times = engine.dialect.name == "sqlite"
        marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._sql = (f"UPDATE deliveries SET status = {marker}, message_id = {marker}, "
                     f"reply = {marker}, code = {marker}, attempts = attempts + {marker}, "
                     f"updated_at = {marker} WHERE digest_id = {marker} AND email = {marker}")

    def mark(self, digest_id: int, email: str, *, status: str, message_id: str, reply: str,
             code: int | None, attempts: int, now: datetime) -> None:
        """Record one recipient's outcome and commit it before anything else happens."""
        # SQLAlchemy keeps SQLite datetimes as ISO text without a zone; write the same.
        when = now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if self._text_times else now
        values = (status, message_id, reply, code, attempts, when, digest_id, email)
        with self._write_lock:
            cursor = self._connection.cursor()
            try:
                cursor.execute(self._sql, values)
            finally:
                cursor.close()
            self._connection.commit()

    def close(self) -> None:
        """Give the connection back to the pool."""
        self._connection.close()


def _batches(items: Iterable[Subscriber], size: int) -> Iterator[list[Subscriber]]:
    batch: list[Subscriber] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _lock_alive(holder: Any, now: datetime) -> bool:
    if holder.host == socket.gethostname():
        return _pid_alive(holder.pid)
    return now - as_utc(holder.acquired_at) < STALE_LOCK_AGE


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def as_utc(value: datetime) -> datetime:
    """A datetime read back from the database, with its UTC zone (SQLite drops it)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _entry_json(entry: FeedEntry) -> str:
    values = asdict(entry)
    values["published"] = entry.published.isoformat() if entry.published else None
    return json.dumps(values, ensure_ascii=False)


def _entry_from_json(payload: str) -> FeedEntry:
    values = json.loads(payload)
    values["published"] = (datetime.fromisoformat(values["published"])
                           if values.get("published") else None)
    values["categories"] = tuple(values.get("categories") or ())
    values["also_reported_by"] = tuple(tuple(pair) for pair in
                                       values.get("also_reported_by") or ())
    return FeedEntry(**values)


def _source_state(row: Any) -> SourceState:
    return SourceState(url=row.url, etag=row.etag or "", last_modified=row.last_modified or "",
                       last_success_at=as_utc(row.last_success_at) if row.last_success_at
                       else None, last_error=row.last_error or "",
                       consecutive_failures=row.consecutive_failures or 0,
                       listed=row.listed or 0)


def _stored(row: Any) -> StoredDigest:
    return StoredDigest(id=row.id, created_at=as_utc(row.created_at), status=row.status,
                        subject=row.subject, html=row.html, text=row.text)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA secure_delete=ON")  # forgotten subscribers leave no trace on disk
    cursor.close()
