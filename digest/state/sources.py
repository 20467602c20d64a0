"""What the state database remembers of each source: its HTTP validators, its failures,
and the entries it listed that have not been in a digest yet (so a feed that answers 304,
or drops old items, still yields them until they are sent)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from digest.models import FeedEntry
from digest.state.db import Database, maybe_utc
from digest.state.schema import digest_articles, digests, source_entries, source_state

FAILING_AFTER = 3


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


class SourceMemory:
    """Reads and writes of `source_state` and `source_entries`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def state(self, url: str) -> SourceState:
        """What was remembered of a source (validators, failures); blank when new."""
        with self.db.connect() as conn:
            row = conn.execute(select(source_state).where(source_state.c.url == url)).first()
        return _source_state(row) if row else SourceState(url=url)

    def all_states(self) -> list[SourceState]:
        """Every source the database remembers."""
        with self.db.connect() as conn:
            rows = conn.execute(select(source_state).order_by(source_state.c.url)).all()
        return [_source_state(row) for row in rows]

    def record_success(self, url: str, etag: str, last_modified: str, now: datetime,
                       listed: int | None = None) -> None:
        """A source answered: remember its validators (and, when it was read, how many
        entries it listed) and clear its failure count."""
        values: dict[str, Any] = {"etag": etag, "last_modified": last_modified,
                                  "last_success_at": now, "consecutive_failures": 0,
                                  "last_error": ""}
        if listed is not None:
            values["listed"] = listed
        self._upsert(url, **values)

    def record_failure(self, url: str, reason: str, now: datetime) -> int:
        """A source failed this cycle; returns how many cycles in a row it has failed."""
        failures = self.state(url).consecutive_failures + 1
        self._upsert(url, last_failure_at=now, last_error=reason,
                     consecutive_failures=failures)
        return failures

    def _upsert(self, url: str, **values: Any) -> None:
        with self.db.begin() as conn:
            updated = conn.execute(update(source_state).where(source_state.c.url == url)
                                   .values(**values))
            if updated.rowcount == 0:
                conn.execute(insert(source_state).values(url=url, **values))

    def remember_entries(self, source_url: str, entries: Sequence[FeedEntry],
                         now: datetime) -> None:
        """Keep a source's entries until they have been in a digest."""
        with self.db.begin() as conn:
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
        sent = select(digest_articles.c.url).where(digest_articles.c.digest_id.in_(
            select(digests.c.id).where(digests.c.status != "rejected")))
        with self.db.connect() as conn:
            rows = conn.execute(select(source_entries.c.entry).where(
                source_entries.c.source_url == source_url,
                source_entries.c.url.not_in(sent)).order_by(source_entries.c.first_seen)).all()
        return [_entry_from_json(row.entry) for row in rows]

    def waiting_count(self) -> int:
        """How many listed entries (of any source) have been in no digest yet."""
        from sqlalchemy import func

        sent = select(digest_articles.c.url).where(digest_articles.c.digest_id.in_(
            select(digests.c.id).where(digests.c.status != "rejected")))
        with self.db.connect() as conn:
            return int(conn.execute(select(func.count(source_entries.c.url.distinct())).where(
                source_entries.c.url.not_in(sent))).scalar() or 0)

    def forget_entries_before(self, cutoff: datetime) -> None:
        """Drop kept entries first seen before the cutoff (they are no longer news)."""
        with self.db.begin() as conn:
            conn.execute(source_entries.delete().where(source_entries.c.first_seen < cutoff))


def forget_listed(conn: Connection, urls: Iterable[str]) -> None:
    """Inside a digest's commit: its articles' kept entries are done with."""
    conn.execute(source_entries.delete().where(source_entries.c.url.in_(list(urls))))


def last_success(conn: Connection) -> datetime | None:
    """When any source was last read without error."""
    from sqlalchemy import func

    return maybe_utc(conn.execute(select(func.max(source_state.c.last_success_at))).scalar())


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
                       last_success_at=maybe_utc(row.last_success_at),
                       last_error=row.last_error or "",
                       consecutive_failures=row.consecutive_failures or 0,
                       listed=row.listed or 0)
