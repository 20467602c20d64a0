"""The delivery ledger: every digest as committed before sending, its articles, one
delivery row per (digest, subscriber), the leases senders hold on those rows, and the
senders themselves. A digest and all its pending deliveries are written in one
transaction; each outcome is committed the moment the server has answered."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from digest.message import new_message_id
from digest.models import Article, Recipient, RenderedDigest, Subscriber, TrackingMode
from digest.state import editorial, sources
from digest.state.db import Database, as_utc, maybe_utc, pid_alive
from digest.state.schema import deliveries, digest_articles, digests, senders
from digest.subscribers import address_key

UNSENT = ("pending", "deferred")
REJECTED = "rejected"  # the relay refused the digest's content; its articles are new again
STATUSES = ("pending", "sent", "failed", "deferred", "skipped", "unconfirmed")


@dataclass(frozen=True)
class StoredDigest:
    """A digest as committed before sending: what every recipient gets."""

    id: int
    created_at: datetime
    status: str
    subject: str
    html: str
    text: str
    marker: str = ""
    tracking: TrackingMode = TrackingMode()
    finished_at: datetime | None = None

    @property
    def rendered(self) -> RenderedDigest:
        return RenderedDigest(subject=self.subject, html=self.html, text=self.text,
                              marker=self.marker, tracking=self.tracking)


@dataclass(frozen=True)
class DeliveryCounts:
    """How far a digest's sending has got."""

    pending: int = 0
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0
    unconfirmed: int = 0  # the connection was lost before the server confirmed it

    @property
    def total(self) -> int:
        return (self.pending + self.sent + self.failed + self.deferred + self.skipped
                + self.unconfirmed)

    @property
    def unsent(self) -> int:
        return self.pending + self.deferred


@dataclass(frozen=True)
class DigestWithCounts:
    """A past or current digest with how its deliveries stand."""

    digest: StoredDigest
    counts: DeliveryCounts
    articles: int


@dataclass(frozen=True)
class DigestArticle:
    """One article as it went out in a digest."""

    position: int
    url: str
    title: str
    source_name: str
    link: str = ""  # where its tracked link leads; "" for the URL itself

    @property
    def target(self) -> str:
        """Where a reader following this article's link lands."""
        return self.link or self.url


@dataclass(frozen=True)
class Delivery:
    """One recipient's delivery row as `digest subscribers show` lists it."""

    digest_id: int
    status: str
    updated_at: datetime | None


class Created(Enum):
    """Why create_digest wrote nothing (a digest id means it did)."""

    NO_RECIPIENTS = "no recipients"
    NO_ARTICLES = "no articles"
    SLOT_TAKEN = "slot taken"


class Ledger:
    """Reads and writes of `digests`, `digest_articles`, `deliveries` and `senders`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- digests ---------------------------------------------------------------------

    def create_digest(self, rendered: RenderedDigest, articles: Sequence[Article],
                      recipients: Iterable[Subscriber], now: datetime,
                      slot: datetime | None = None,
                      message_domain: str = "localhost") -> int | Created:
        """Commit a digest, its articles and one pending delivery per recipient, atomically,
        each with the Message-ID its message will carry. Nothing is written when there is no
        recipient, or when the scheduled slot already has its digest: the answer says
        which. A digest without articles is never written."""
        if not articles:
            return Created.NO_ARTICLES
        with self.db.begin() as conn:
            try:
                digest_id = conn.execute(insert(digests).values(
                    created_at=now, status="sending", subject=rendered.subject,
                    html=rendered.html, text=rendered.text, slot=slot,
                    marker=rendered.marker or None,
                    tracking=rendered.tracking.encode() or None)
                    .returning(digests.c.id)).scalar_one()
            except IntegrityError:
                return Created.SLOT_TAKEN
            if articles:
                conn.execute(insert(digest_articles), [
                    {"digest_id": digest_id, "position": i, "url": a.url, "title": a.title,
                     "source_name": a.source_name,
                     "link": rendered.links[i] if i < len(rendered.links) else None}
                    for i, a in enumerate(articles)])
            editorial.mark_edits_sent(conn, [a.url for a in articles], digest_id)
            added = 0
            for batch in _batches(recipients, 1000):
                conn.execute(self.db.insert_ignoring_duplicates(deliveries), [
                    {"digest_id": digest_id, "email": s.email, "name": s.name,
                     "format": s.format, "status": "pending", "updated_at": now,
                     "attempts": 0, "email_key": address_key(s.email),
                     "token_id": s.token_id or None,
                     "message_id": new_message_id(digest_id, message_domain)} for s in batch])
                added += len(batch)
            if not added:
                conn.rollback()
                return Created.NO_RECIPIENTS
        return int(digest_id)

    def get_digest(self, digest_id: int) -> StoredDigest | None:
        """One digest by id."""
        with self.db.connect() as conn:
            row = conn.execute(select(digests).where(digests.c.id == digest_id)).first()
        return _stored(row) if row else None

    def unfinished_digests(self) -> list[StoredDigest]:
        """Every digest whose sending has not finished (sending or paused), oldest first."""
        return self._digests_with_status("sending", "paused")

    def sending_digests(self) -> list[StoredDigest]:
        """Digests being sent (not paused), oldest first: the work of `digest worker`."""
        return self._digests_with_status("sending")

    def _digests_with_status(self, *statuses: str) -> list[StoredDigest]:
        with self.db.connect() as conn:
            rows = conn.execute(select(digests).where(digests.c.status.in_(statuses))
                                .order_by(digests.c.id)).all()
        return [_stored(row) for row in rows]

    def set_digest_status(self, digest_id: int, status: str) -> None:
        """Mark a digest sending, paused or sent."""
        with self.db.begin() as conn:
            conn.execute(update(digests).where(digests.c.id == digest_id).values(status=status))

    def finish_digest(self, digest_id: int, now: datetime) -> bool:
        """Mark a digest sent once no delivery is pending or deferred; True when it was."""
        if self.delivery_counts(digest_id).unsent:
            return False
        with self.db.begin() as conn:
            conn.execute(update(digests).where(digests.c.id == digest_id)
                         .values(status="sent", finished_at=now))
            # Its articles are sent: the entries kept for them are done with.
            urls = select(digest_articles.c.url).where(digest_articles.c.digest_id == digest_id)
            sources.forget_listed(conn, [row.url for row in conn.execute(urls)])
        return True

    def reject_digest(self, digest_id: int, reason: str, now: datetime) -> None:
        """The relay refused the digest itself (its content), not its recipients: it stops,
        its articles are new again (and their edits editable), its slot free, and its
        deliveries, kept as they were answered, count as nobody's bounce."""
        with self.db.begin() as conn:
            conn.execute(update(digests).where(digests.c.id == digest_id).values(
                status=REJECTED, finished_at=now, slot=None))
            conn.execute(update(deliveries).where(
                deliveries.c.digest_id == digest_id, deliveries.c.status.in_(UNSENT)).values(
                status="skipped", reply=f"not sent: {reason}", lease_owner=None,
                lease_until=None))
            editorial.release_edits(conn, digest_id)
            editorial.reopen_marks(conn, digest_id)
    def digest_for_slot(self, slot: datetime) -> int | None:
        """The digest built for a scheduled slot, if there is one."""
        with self.db.connect() as conn:
            found = conn.execute(select(digests.c.id).where(digests.c.slot == slot)).scalar()
        return int(found) if found is not None else None

    def recent_digests(self, limit: int = 10) -> list[DigestWithCounts]:
        """The latest digests with their delivery counts, newest first."""
        with self.db.connect() as conn:
            rows = conn.execute(select(digests).order_by(digests.c.id.desc())
                                .limit(limit)).all()
            articles = {row[0]: int(row[1]) for row in conn.execute(
                select(digest_articles.c.digest_id, func.count())
                .where(digest_articles.c.digest_id.in_([row.id for row in rows]))
                .group_by(digest_articles.c.digest_id))}
        return [DigestWithCounts(_stored(row), self.delivery_counts(row.id),
                                 articles.get(row.id, 0)) for row in rows]

    def digest_articles(self, digest_id: int) -> list[DigestArticle]:
        """The articles of one digest in their order."""
        with self.db.connect() as conn:
            rows = conn.execute(select(digest_articles)
                                .where(digest_articles.c.digest_id == digest_id)
                                .order_by(digest_articles.c.position)).all()
        return [DigestArticle(row.position, row.url, row.title, row.source_name,
                              row.link or "") for row in rows]

    def link_target(self, digest_id: int, position: int) -> str | None:
        """Where the tracked link to one article of a sent digest leads, if it exists."""
        if not (0 < digest_id < 2**63 and 0 <= position < 2**31):
            return None
        with self.db.connect() as conn:
            row = conn.execute(select(digest_articles.c.url, digest_articles.c.link).where(
                digest_articles.c.digest_id == digest_id,
                digest_articles.c.position == position)).first()
        return (row.link or row.url) if row else None

    def delivered_at(self, digest_id: int, token_id: str, before: datetime) -> datetime | None:
        """When the digest reached the reader with this token id (with "", the latest
        delivery of the digest before `before`): how a link prefetch is told apart."""
        query = select(func.max(deliveries.c.updated_at)).where(
            deliveries.c.digest_id == digest_id, deliveries.c.status == "sent",
            deliveries.c.updated_at <= before)
        if token_id:
            query = query.where(deliveries.c.token_id == token_id)
        with self.db.connect() as conn:
            return maybe_utc(conn.execute(query).scalar())

    def digest_of(self, url: str) -> int | None:
        """The digest an article went out in, if any (a refused digest does not count)."""
        with self.db.connect() as conn:
            found = conn.execute(select(digest_articles.c.digest_id).where(
                digest_articles.c.url == url, digest_articles.c.digest_id.in_(
                    select(digests.c.id).where(digests.c.status != REJECTED)))
                .limit(1)).scalar()
        return int(found) if found is not None else None

    def sent_urls(self, urls: Iterable[str]) -> set[str]:
        """The URLs among these that were already in a digest."""
        wanted = list(dict.fromkeys(urls))
        found: set[str] = set()
        with self.db.connect() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                rows = conn.execute(select(digest_articles.c.url).where(
                    digest_articles.c.url.in_(chunk), digest_articles.c.digest_id.in_(
                        select(digests.c.id).where(digests.c.status != REJECTED))))
                found.update(row.url for row in rows)
        return found

    # --- deliveries ------------------------------------------------------------------

    def delivery_counts(self, digest_id: int) -> DeliveryCounts:
        """Pending, sent and failed deliveries of one digest."""
        with self.db.connect() as conn:
            rows = conn.execute(select(deliveries.c.status, func.count())
                                .where(deliveries.c.digest_id == digest_id)
                                .group_by(deliveries.c.status)).all()
        counts = {status: n for status, n in rows}
        return DeliveryCounts(**{k: counts.get(k, 0) for k in STATUSES})

    def expire_deferred(self, digest_id: int, lifetime: timedelta, now: datetime) -> int:
        """Give up deferred deliveries of a digest older than `lifetime`; how many."""
        stored = self.get_digest(digest_id)
        if stored is None or now - stored.created_at < lifetime:
            return 0
        hours = lifetime.total_seconds() / 3600
        with self.db.begin() as conn:
            expired = conn.execute(update(deliveries).where(
                deliveries.c.digest_id == digest_id, deliveries.c.status == "deferred")
                .values(status="failed", updated_at=now,
                        reply=func.coalesce(deliveries.c.reply, "") +
                        f" [failed (expired): still deferred after {hours:g} hours]"))
        return int(expired.rowcount)

    def hard_failures(self, email: str) -> int:
        """How many deliveries to this address ended in a 5xx reply (a digest the relay
        refused for its content counts for nobody)."""
        with self.db.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(deliveries).where(
                deliveries.c.email_key == address_key(email), deliveries.c.status == "failed",
                deliveries.c.digest_id.in_(select(digests.c.id)
                                           .where(digests.c.status != REJECTED)),
                deliveries.c.code >= 500, deliveries.c.code < 600)).scalar_one())

    def deliveries_to(self, key: str) -> list[Delivery]:
        """Every delivery row of one address (by its comparison key), oldest first."""
        with self.db.connect() as conn:
            rows = conn.execute(select(deliveries.c.digest_id, deliveries.c.status,
                                       deliveries.c.updated_at)
                                .where(deliveries.c.email_key == key)
                                .order_by(deliveries.c.digest_id)).all()
        return [Delivery(row.digest_id, row.status, maybe_utc(row.updated_at)) for row in rows]

    def mark(self, delivery_id: int, *, status: str, reply: str, code: int | None,
             attempts: int, now: datetime) -> None:
        """Record one outcome through the pool (off the hot path: an outcome the sending
        thread's own connection could not commit)."""
        with self.db.write_lock, self.db.begin() as conn:
            conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(
                status=status, reply=reply, code=code,
                attempts=deliveries.c.attempts + attempts, updated_at=now))

    def writer(self, connection: Any) -> LedgerWriter:
        """Records outcomes on one sending thread's own DBAPI connection."""
        return LedgerWriter(self.db, connection)

    # --- leases and senders ------------------------------------------------------------

    def claim_deliveries(self, digest_id: int, owner: str, limit: int, lease: timedelta,
                         now: datetime, retry_deferred: bool = True,
                         message_domain: str = "localhost") -> list[Recipient]:
        """Lease up to `limit` unsent deliveries nobody else holds (row locks with SKIP
        LOCKED on PostgreSQL; SQLite has one writer at a time). A row written by a version
        that did not assign Message-IDs up front gets its one now, before any attempt."""
        wanted = UNSENT if retry_deferred else ("pending",)
        free = select(deliveries.c.id).where(
            deliveries.c.digest_id == digest_id, deliveries.c.status.in_(wanted),
            or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now)
        ).order_by(deliveries.c.id).limit(limit).with_for_update(skip_locked=True)
        with self.db.write_lock, self.db.begin() as conn:
            rows = conn.execute(update(deliveries).where(
                deliveries.c.id.in_(free.scalar_subquery())).values(
                lease_owner=owner, lease_until=now + lease).returning(
                deliveries.c.id, deliveries.c.email, deliveries.c.name, deliveries.c.format,
                deliveries.c.token_id, deliveries.c.message_id)).all()
            assigned = {r.id: new_message_id(digest_id, message_domain)
                        for r in rows if not r.message_id}
            for delivery_id, message_id in assigned.items():
                conn.execute(update(deliveries).where(deliveries.c.id == delivery_id)
                             .values(message_id=message_id))
        return [Recipient(delivery_id=r.id, email=r.email, name=r.name, format=r.format,
                          token_id=r.token_id or "",
                          message_id=r.message_id or assigned[r.id])
                for r in sorted(rows, key=lambda r: r.id)]

    def renew_leases(self, owner: str, lease: timedelta, now: datetime) -> int:
        """Extend every lease this sender holds on unsent rows; beat its heart."""
        with self.db.write_lock, self.db.begin() as conn:
            renewed = conn.execute(update(deliveries).where(
                deliveries.c.lease_owner == owner, deliveries.c.status.in_(UNSENT)).values(
                lease_until=now + lease)).rowcount
            conn.execute(update(senders).where(senders.c.owner == owner)
                         .values(heartbeat_at=now))
        return int(renewed)

    def release_leases(self, owner: str) -> int:
        """Give back the unsent rows this sender holds, for others to send."""
        with self.db.write_lock, self.db.begin() as conn:
            return int(conn.execute(update(deliveries).where(
                deliveries.c.lease_owner == owner, deliveries.c.status.in_(UNSENT)).values(
                lease_owner=None, lease_until=None)).rowcount)

    def release_dead_leases(self, digest_id: int, now: datetime) -> int:
        """Free the rows leased by senders on this host whose process is gone (a crash or
        SIGKILL), so a restart need not wait for their leases to run out."""
        host = socket.gethostname()
        with self.db.connect() as conn:
            owners = conn.execute(select(deliveries.c.lease_owner).distinct().where(
                deliveries.c.digest_id == digest_id, deliveries.c.lease_until >= now,
                deliveries.c.status.in_(UNSENT))).scalars().all()
        dead = [o for o in owners if o and o.split(":")[0] == host
                and not pid_alive(int(o.split(":")[1]))]
        return sum(self.release_leases(owner) for owner in dead)

    def register_sender(self, owner: str, now: datetime) -> None:
        """Count this process among the live senders."""
        host, pid, _ = owner.split(":")
        with self.db.write_lock, self.db.begin() as conn:
            conn.execute(senders.delete().where(senders.c.owner == owner))
            conn.execute(insert(senders).values(owner=owner, host=host, pid=int(pid),
                                                started_at=now, heartbeat_at=now))

    def unregister_sender(self, owner: str) -> None:
        """This process stopped sending."""
        with self.db.write_lock, self.db.begin() as conn:
            conn.execute(senders.delete().where(senders.c.owner == owner))

    def live_senders(self, now: datetime, within: timedelta) -> int:
        """Senders whose heart beat within `within` (this one included, so at least 1)."""
        return max(1, self.count_live_senders(now, within))

    def count_live_senders(self, now: datetime, within: timedelta) -> int:
        """How many senders' hearts beat within `within`; the ones that died without a
        word are forgotten."""
        with self.db.write_lock, self.db.begin() as conn:
            conn.execute(senders.delete().where(senders.c.heartbeat_at < now - 10 * within))
            count = conn.execute(select(func.count()).select_from(senders).where(
                senders.c.heartbeat_at >= now - within)).scalar()
        return int(count or 0)


class LedgerWriter:
    """Records delivery outcomes on a sending thread's DBAPI connection, one commit per
    message: the commit is on the hot path of every send, so it skips SQLAlchemy's
    per-statement work (about 200 µs a message) while keeping its own transaction per
    outcome."""

    def __init__(self, db: Database, connection: Any) -> None:
        self._connection = connection
        self._write_lock = db.write_lock
        self._text_times = db.is_sqlite
        marker = db.marker
        self._sql = (f"UPDATE deliveries SET status = {marker}, reply = {marker}, "
                     f"code = {marker}, attempts = attempts + {marker}, updated_at = {marker} "
                     f"WHERE id = {marker}")

    def mark(self, delivery_id: int, *, status: str, reply: str, code: int | None,
             attempts: int, now: datetime) -> None:
        """Record one recipient's outcome and commit it before anything else happens."""
        # SQLAlchemy keeps SQLite datetimes as ISO text without a zone; write the same.
        when = now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if self._text_times else now
        with self._write_lock:
            cursor = self._connection.cursor()
            try:
                cursor.execute(self._sql, (status, reply, code, attempts, when, delivery_id))
            finally:
                cursor.close()
            self._connection.commit()


def forget_address(conn: Connection, key: str, replacement: str) -> int:
    """Inside a `forget`: the address leaves every delivery row; how many rows it was in."""
    return int(conn.execute(update(deliveries).where(deliveries.c.email_key == key)
                            .values(email=replacement, email_key=replacement, name="",
                                    token_id=None)).rowcount)


@dataclass(frozen=True)
class Addressee:
    """Whom one delivery went to, as a bounce report about it needs to know."""

    delivery_id: int
    digest_id: int
    email_key: str


def addressee(conn: Connection, *, delivery_id: int | None = None,
              message_ids: Sequence[str] = ()) -> Addressee | None:
    """The delivery with this id, else the first with one of these Message-IDs."""
    query = select(deliveries.c.id, deliveries.c.digest_id, deliveries.c.email_key)
    if delivery_id is not None:
        row = conn.execute(query.where(deliveries.c.id == delivery_id)).first()
    elif message_ids:
        row = conn.execute(query.where(deliveries.c.message_id.in_(list(message_ids)))
                           .order_by(deliveries.c.id).limit(1)).first()
    else:
        row = None
    return Addressee(row.id, row.digest_id, row.email_key or "") if row else None


def sent_counts(conn: Connection, digest_ids: Sequence[int]) -> dict[int, int]:
    """How many messages each of these digests sent."""
    rows = conn.execute(select(deliveries.c.digest_id, func.count()).where(
        deliveries.c.digest_id.in_(list(digest_ids)), deliveries.c.status == "sent")
        .group_by(deliveries.c.digest_id))
    return {int(digest_id): int(n) for digest_id, n in rows}


def last_send(conn: Connection) -> datetime | None:
    """When a digest last finished sending."""
    return maybe_utc(conn.execute(select(func.max(digests.c.finished_at))
                                  .where(digests.c.status == "sent")).scalar())


def _batches(items: Iterable[Subscriber], size: int) -> Iterator[list[Subscriber]]:
    batch: list[Subscriber] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _stored(row: Any) -> StoredDigest:
    return StoredDigest(id=row.id, created_at=as_utc(row.created_at), status=row.status,
                        subject=row.subject, html=row.html, text=row.text,
                        marker=row.marker or "", tracking=TrackingMode.decode(row.tracking),
                        finished_at=maybe_utc(row.finished_at))
