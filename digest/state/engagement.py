"""Clicks on tracked links and loads of the open image, as counted: one row each, people
and automated requests apart; and the figures a report of a sent digest shows, read
across the ledger, the subscriber events and the bounce reports (read only: each of those
tables keeps its own owner)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, insert, select, update
from sqlalchemy.engine import Connection

from digest.state.db import Database, as_utc
from digest.state.schema import (
    clicks,
    deliveries,
    digest_articles,
    digests,
    opens,
    subscriber_events,
)


@dataclass(frozen=True)
class Tally:
    """Requests counted: by people, and by scanners, previewers and programs."""

    people: int = 0
    automated: int = 0


@dataclass(frozen=True)
class ArticleTally:
    """One article of a sent digest and the clicks on its tracked link."""

    position: int
    title: str
    source_name: str
    url: str
    clicks: Tally


@dataclass(frozen=True)
class AudiencePoint:
    """How many readers one sent digest went to."""

    digest_id: int
    at: datetime
    recipients: int


class Engagement:
    """The clicks and opens tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record_click(self, digest_id: int, position: int, *, automated: bool, reader: str,
                     now: datetime) -> None:
        """Count one click on the tracked link to the article at `position`."""
        with self.db.write_lock, self.db.begin() as conn:
            conn.execute(insert(clicks).values(digest_id=digest_id, position=position,
                                               at=_stored_time(now, reader),
                                               automated=int(automated),
                                               reader=reader or None))

    def record_open(self, digest_id: int, *, automated: bool, reader: str,
                    now: datetime) -> None:
        """Count one load of the digest's open image."""
        with self.db.write_lock, self.db.begin() as conn:
            conn.execute(insert(opens).values(digest_id=digest_id,
                                              at=_stored_time(now, reader),
                                              automated=int(automated), reader=reader or None))

    def article_clicks(self, digest_id: int) -> list[ArticleTally]:
        """Every article of a digest in its order, with its clicks."""
        people = func.sum(case((clicks.c.automated == 0, 1), else_=0))
        machines = func.sum(case((clicks.c.automated != 0, 1), else_=0))
        counted = (select(clicks.c.position, people.label("people"),
                          machines.label("machines"))
                   .where(clicks.c.digest_id == digest_id)
                   .group_by(clicks.c.position).subquery())
        query = (select(digest_articles, counted.c.people, counted.c.machines)
                 .outerjoin(counted, counted.c.position == digest_articles.c.position)
                 .where(digest_articles.c.digest_id == digest_id)
                 .order_by(digest_articles.c.position))
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
        return [ArticleTally(row.position, row.title, row.source_name, row.url,
                             Tally(int(row.people or 0), int(row.machines or 0)))
                for row in rows]

    def open_tally(self, digest_id: int) -> Tally:
        """The digest's counted opens."""
        query = select(func.sum(case((opens.c.automated == 0, 1), else_=0)),
                       func.sum(case((opens.c.automated != 0, 1), else_=0))).where(
            opens.c.digest_id == digest_id)
        with self.db.connect() as conn:
            people, machines = conn.execute(query).one()
        return Tally(int(people or 0), int(machines or 0))

    def unsubscribed_after(self, digest_id: int, since: datetime,
                           until: datetime | None) -> int:
        """Readers of this digest who unsubscribed after it was sent and before the next
        one (`until`; None: up to now)."""
        window = [subscriber_events.c.at >= since]
        if until is not None:
            window.append(subscriber_events.c.at < until)
        query = (select(func.count(func.distinct(subscriber_events.c.email_key)))
                 .select_from(subscriber_events.join(deliveries, and_(
                     deliveries.c.email_key == subscriber_events.c.email_key,
                     deliveries.c.digest_id == digest_id, deliveries.c.status == "sent")))
                 .where(subscriber_events.c.status == "unsubscribed", *window))
        with self.db.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def next_digest_after(self, digest_id: int) -> datetime | None:
        """When the next sent digest after this one was made, if there is one."""
        query = select(func.min(digests.c.created_at)).where(
            digests.c.id > digest_id, digests.c.status == "sent")
        with self.db.connect() as conn:
            found = conn.execute(query).scalar()
        return as_utc(found) if found is not None else None

    def audience(self, limit: int = 52) -> list[AudiencePoint]:
        """The recipients of the latest sent digests, oldest first: the audience over time."""
        recipients = (select(deliveries.c.digest_id, func.count().label("n"))
                      .where(deliveries.c.status == "sent")
                      .group_by(deliveries.c.digest_id).subquery())
        query = (select(digests.c.id, digests.c.created_at, recipients.c.n)
                 .join(recipients, recipients.c.digest_id == digests.c.id)
                 .where(digests.c.status == "sent")
                 .order_by(digests.c.id.desc()).limit(limit))
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
        return [AudiencePoint(row.id, as_utc(row.created_at), int(row.n))
                for row in reversed(rows)]


def _stored_time(now: datetime, reader: str) -> datetime:
    """A click's time as kept: to the hour when it names no reader, so a click cannot be
    matched to one delivery's time and through it to a reader."""
    return now if reader else now.replace(minute=0, second=0, microsecond=0)


def forget_reader(conn: Connection, token_ids: Sequence[str]) -> None:
    """Inside a `forget`: clicks and opens stay counted but no longer name the reader."""
    ids = [t for t in token_ids if t]
    if ids:
        conn.execute(update(clicks).where(clicks.c.reader.in_(ids)).values(reader=None))
        conn.execute(update(opens).where(opens.c.reader.in_(ids)).values(reader=None))
