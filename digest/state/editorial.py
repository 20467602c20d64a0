"""The editor's records: changes to articles of the next digest (kept per URL so they
survive new arrivals), and the typed marks on the next digest — a hold, an approval, the
opening note, the slot waiting for approval — plus editor login sessions. A mark stays in
its table after it is used or withdrawn, so `digest status` can say what became of it."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from digest.errors import EditorialError
from digest.models import ArticleEdit
from digest.state.db import Database, as_utc, maybe_utc
from digest.state.schema import editor_sessions, editorial_marks, summary_edits

HOLD, APPROVAL, NOTE, WAITING = "hold", "approval", "note", "waiting"


@dataclass(frozen=True)
class Hold:
    """An editor's hold on the next scheduled digest."""

    by: str
    at: datetime
    reason: str = ""
    used_at: datetime | None = None
    used_slot: datetime | None = None  # the scheduled slot it skipped


@dataclass(frozen=True)
class Approval:
    """An editor's approval of the next digest: it covers the articles they saw."""

    by: str
    at: datetime
    articles: tuple[str, ...] = ()
    used_at: datetime | None = None
    used_digest_id: int | None = None


@dataclass(frozen=True)
class DraftNote:
    """The editor's words that open the next digest."""

    text: str
    by: str
    at: datetime


@dataclass(frozen=True)
class ApprovalWait:
    """A scheduled slot whose digest is waiting for an editor's approval."""

    slot: datetime
    since: datetime


@dataclass(frozen=True)
class EditorSession:
    """One editor login, known server-side so logout and expiry end it for good."""

    editor: str
    expires: datetime


class EditorialRecords:
    """Reads and writes of `summary_edits`, `editorial_marks` and `editor_sessions`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- per-article edits -------------------------------------------------------------

    def article_edits(self) -> dict[str, ArticleEdit]:
        """URL → the editor's changes, for articles not yet sent."""
        with self.db.connect() as conn:
            rows = conn.execute(select(summary_edits)
                                .where(summary_edits.c.digest_id.is_(None))).all()
        return {row.url: ArticleEdit(url=row.url, excluded=bool(row.excluded),
                                     pinned=bool(row.pinned), position=row.position,
                                     headline=row.headline or "", summary=row.text)
                for row in rows}

    def save_article_edit(self, url: str, now: datetime, by: str = "", **changes: Any) -> None:
        """Change some of an article's edits (excluded, pinned, position, headline, text)."""
        with self.db.begin() as conn:
            row = conn.execute(select(summary_edits.c.digest_id)
                               .where(summary_edits.c.url == url)).first()
            if row is not None and row.digest_id is not None:
                raise EditorialError(f"{url}: already sent in digest {row.digest_id}; "
                                  "it can no longer change")
            values = {**changes, "updated_at": now, "updated_by": by}
            if row is None:
                conn.execute(insert(summary_edits).values(url=url, **{"text": "", **values}))
            else:
                conn.execute(update(summary_edits).where(summary_edits.c.url == url)
                             .values(**values))

    def set_summary_edit(self, url: str, text: str, now: datetime) -> None:
        """Use this text as the article's summary in the next digest."""
        self.save_article_edit(url, now, text=text)

    def clear_summary_edit(self, url: str) -> bool:
        """Go back to the generated summary; True when there was an edit."""
        with self.db.begin() as conn:
            gone = conn.execute(update(summary_edits).where(
                summary_edits.c.url == url, summary_edits.c.digest_id.is_(None),
                summary_edits.c.text != "").values(text=""))
        return bool(gone.rowcount)

    def pending_summary_edits(self) -> dict[str, str]:
        """URL → editor's summary, for articles not yet sent."""
        return {url: e.summary for url, e in self.article_edits().items() if e.summary}

    # --- hold ----------------------------------------------------------------------------

    def hold(self) -> Hold | None:
        """The hold in force, if any."""
        row = self._current(HOLD)
        return _hold(row) if row else None

    def last_used_hold(self) -> Hold | None:
        """The hold that skipped a scheduled digest most recently."""
        row = self._last_used(HOLD)
        return _hold(row) if row else None

    def set_hold(self, by: str, reason: str, now: datetime) -> Hold | None:
        """Put a hold in force; returns the one it replaces, if any."""
        with self.db.begin() as conn:
            previous = self._current(HOLD, conn)
            self._end(conn, HOLD, now, "replaced")
            conn.execute(insert(editorial_marks).values(kind=HOLD, actor=by, at=now,
                                                        text=reason))
        return _hold(previous) if previous else None

    def end_hold(self, now: datetime) -> bool:
        """Lift the hold; False when there was none."""
        with self.db.begin() as conn:
            return self._end(conn, HOLD, now, "released") > 0

    def use_hold(self, slot: datetime, now: datetime) -> None:
        """The hold skipped this scheduled slot: it is spent."""
        self._use(HOLD, now, slot=slot)

    # --- approval ----------------------------------------------------------------------

    def approval(self) -> Approval | None:
        """The approval in force, if any."""
        row = self._current(APPROVAL)
        return _approval(row) if row else None

    def last_used_approval(self) -> Approval | None:
        """The approval that most recently let a digest go out."""
        row = self._last_used(APPROVAL)
        return _approval(row) if row else None

    def approve(self, by: str, articles: Sequence[str], now: datetime) -> None:
        """Record an approval of these articles (it replaces an earlier one)."""
        with self.db.begin() as conn:
            self._end(conn, APPROVAL, now, "replaced")
            conn.execute(insert(editorial_marks).values(
                kind=APPROVAL, actor=by, at=now, articles=json.dumps(list(articles))))

    def withdraw_approval(self, now: datetime) -> bool:
        """Withdraw the approval in force; False when there was none."""
        with self.db.begin() as conn:
            return self._end(conn, APPROVAL, now, "withdrawn") > 0

    def use_approval(self, digest_id: int, now: datetime) -> None:
        """The approval let this digest go out: it is spent."""
        self._use(APPROVAL, now, digest_id=digest_id)

    # --- note ----------------------------------------------------------------------------

    def note(self) -> DraftNote | None:
        """The opening note of the next digest, if any."""
        row = self._current(NOTE)
        return DraftNote(row.text, row.actor, as_utc(row.at)) if row else None

    def set_note(self, text: str, by: str, now: datetime) -> None:
        """Write (or, with empty text, remove) the opening note."""
        with self.db.begin() as conn:
            self._end(conn, NOTE, now, "replaced")
            if text:
                conn.execute(insert(editorial_marks).values(kind=NOTE, actor=by, at=now,
                                                            text=text))

    def use_note(self, digest_id: int, now: datetime) -> None:
        """The note opened this digest; the next one starts blank."""
        self._use(NOTE, now, digest_id=digest_id)

    # --- waiting for approval -------------------------------------------------------------

    def waiting(self) -> ApprovalWait | None:
        """The scheduled slot waiting for an approval, if any."""
        row = self._current(WAITING)
        return ApprovalWait(as_utc(row.slot), as_utc(row.at)) if row else None

    def set_waiting(self, slot: datetime, now: datetime) -> None:
        """This slot's digest waits for an approval (since now)."""
        with self.db.begin() as conn:
            self._end(conn, WAITING, now, "replaced")
            conn.execute(insert(editorial_marks).values(kind=WAITING, actor="", at=now,
                                                        slot=slot))

    def end_waiting(self, now: datetime) -> None:
        """No slot is waiting any more."""
        with self.db.begin() as conn:
            self._end(conn, WAITING, now, "done")

    # --- editor sessions -------------------------------------------------------------------

    def open_session(self, editor: str, expires: datetime, now: datetime) -> str:
        """Start a login session; returns its id (only a hash of it is stored)."""
        sid = secrets.token_urlsafe(24)
        with self.db.begin() as conn:
            conn.execute(editor_sessions.delete().where(editor_sessions.c.expires_at <= now))
            conn.execute(insert(editor_sessions).values(sid_hash=_sid_hash(sid), editor=editor,
                                                        created_at=now, expires_at=expires))
        return sid

    def session(self, sid: str) -> EditorSession | None:
        """The session with this id, if it was opened and not ended."""
        if not sid:
            return None
        with self.db.connect() as conn:
            row = conn.execute(select(editor_sessions).where(
                editor_sessions.c.sid_hash == _sid_hash(sid))).first()
        return EditorSession(row.editor, as_utc(row.expires_at)) if row else None

    def end_session(self, sid: str) -> None:
        """Log out: the session id no longer opens anything."""
        with self.db.begin() as conn:
            conn.execute(editor_sessions.delete().where(
                editor_sessions.c.sid_hash == _sid_hash(sid)))

    # --- shared ------------------------------------------------------------------------------

    def _current(self, kind: str, conn: Connection | None = None) -> Any:
        query = (select(editorial_marks).where(
            editorial_marks.c.kind == kind, editorial_marks.c.used_at.is_(None),
            editorial_marks.c.ended_at.is_(None)).order_by(editorial_marks.c.id.desc()).limit(1))
        if conn is not None:
            return conn.execute(query).first()
        with self.db.connect() as reading:
            return reading.execute(query).first()

    def _last_used(self, kind: str) -> Any:
        with self.db.connect() as conn:
            return conn.execute(select(editorial_marks).where(
                editorial_marks.c.kind == kind, editorial_marks.c.used_at.is_not(None))
                .order_by(editorial_marks.c.id.desc()).limit(1)).first()

    @staticmethod
    def _end(conn: Connection, kind: str, now: datetime, reason: str) -> int:
        return int(conn.execute(update(editorial_marks).where(
            editorial_marks.c.kind == kind, editorial_marks.c.used_at.is_(None),
            editorial_marks.c.ended_at.is_(None)).values(ended_at=now, ended_reason=reason)
        ).rowcount)

    def _use(self, kind: str, now: datetime, *, digest_id: int | None = None,
             slot: datetime | None = None) -> None:
        with self.db.begin() as conn:
            conn.execute(update(editorial_marks).where(
                editorial_marks.c.kind == kind, editorial_marks.c.used_at.is_(None),
                editorial_marks.c.ended_at.is_(None)).values(
                used_at=now, used_digest_id=digest_id,
                **({"slot": slot} if slot is not None else {})))


def mark_edits_sent(conn: Connection, urls: Sequence[str], digest_id: int) -> None:
    """Inside a digest's commit: its articles' edits belong to it and no longer change."""
    conn.execute(update(summary_edits).where(summary_edits.c.url.in_(list(urls)),
                                             summary_edits.c.digest_id.is_(None))
                 .values(digest_id=digest_id))


def release_edits(conn: Connection, digest_id: int) -> None:
    """A refused digest's articles are the next digest's again, with their edits."""
    conn.execute(update(summary_edits).where(summary_edits.c.digest_id == digest_id)
                 .values(digest_id=None))


def reopen_marks(conn: Connection, digest_id: int) -> None:
    """The note and approval a refused digest used are in force again."""
    conn.execute(update(editorial_marks).where(editorial_marks.c.used_digest_id == digest_id)
                 .values(used_at=None, used_digest_id=None))


def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()


def _hold(row: Any) -> Hold:
    return Hold(row.actor, as_utc(row.at), row.text or "", maybe_utc(row.used_at),
                maybe_utc(row.slot))


def _approval(row: Any) -> Approval:
    return Approval(row.actor, as_utc(row.at), tuple(json.loads(row.articles or "[]")),
                    maybe_utc(row.used_at), row.used_digest_id)
