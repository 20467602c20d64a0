"""Subscribe requests waiting for their confirmation email: written by the web form (one
insert, whatever the address), taken by the web process's own worker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select

from digest.state.db import Database, as_utc
from digest.state.schema import signup_requests


@dataclass(frozen=True)
class SignupRequest:
    """One subscribe form sent."""

    id: int
    email: str
    name: str
    format: str
    received_at: datetime


class SignupQueue:
    """Reads and writes of `signup_requests`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, email: str, name: str, fmt: str, now: datetime) -> None:
        """Queue a request."""
        with self.db.begin() as conn:
            conn.execute(insert(signup_requests).values(email=email, name=name, format=fmt,
                                                        received_at=now))

    def waiting(self, limit: int = 100) -> list[SignupRequest]:
        """The oldest requests not handled yet."""
        with self.db.connect() as conn:
            rows = conn.execute(select(signup_requests).order_by(signup_requests.c.id)
                                .limit(limit)).all()
        return [SignupRequest(r.id, r.email, r.name, r.format, as_utc(r.received_at))
                for r in rows]

    def done(self, request_id: int) -> None:
        """A request was handled (the confirmation sent, or nothing to send)."""
        with self.db.begin() as conn:
            conn.execute(delete(signup_requests).where(signup_requests.c.id == request_id))
