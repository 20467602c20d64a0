"""Bounce and complaint reports as recorded: one row per message read (unique by its
fingerprint, so each counts once however often a mailbox is read again), written in the
same transaction as what it does to the subscriber, and the rate alerts already sent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from digest.state import ledger, subscribers
from digest.state.db import Database, as_utc
from digest.state.schema import bounce_alerts, bounce_events

COUNTED = ("counted", "acted")  # outcomes of a report about one of our deliveries


@dataclass(frozen=True)
class NewBounce:
    """One report, read and matched, about to be recorded."""

    fingerprint: str
    received_at: datetime
    source: str
    kind: str
    outcome: str  # counted (a report about one of our deliveries), or why it is ignored
    status: str = ""
    diagnostic: str = ""
    action: str = ""
    target: ledger.Addressee | None = None


@dataclass(frozen=True)
class History:
    """One address's record, the report being recorded included."""

    status: str  # the subscriber's status now; '' when not on the list
    hard: int  # messages that bounced hard
    soft: int  # messages that bounced soft since the window began


@dataclass(frozen=True)
class Decision:
    """What a report does: a new status for the subscriber (or none), and in words."""

    status: str = ""
    cause: str = ""
    action: str = ""


@dataclass(frozen=True)
class BounceEntry:
    """One report about an address, as `digest subscribers show` lists it."""

    received_at: datetime
    kind: str
    status: str
    diagnostic: str
    digest_id: int | None
    action: str


@dataclass(frozen=True)
class BounceTally:
    """The reports about one digest: addresses that bounced or complained."""

    hard: int = 0
    soft: int = 0
    complaints: int = 0


Decide = Callable[[History], Decision]


class BounceRecords:
    """Reads and writes of `bounce_events` and `bounce_alerts`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def addressee(self, delivery_id: int | None, message_ids: Sequence[str]
                  ) -> ledger.Addressee | None:
        """The delivery a report is about: by its VERP id, else by a Message-ID it quotes."""
        with self.db.connect() as conn:
            found = ledger.addressee(conn, delivery_id=delivery_id) \
                if delivery_id is not None else None
            return found or ledger.addressee(conn, message_ids=message_ids)

    def seen(self, fingerprint: str) -> bool:
        """Whether this message has been recorded already."""
        with self.db.connect() as conn:
            return conn.execute(select(bounce_events.c.id).where(
                bounce_events.c.fingerprint == fingerprint)).first() is not None

    def record(self, bounce: NewBounce, decide: Decide, soft_since: datetime) -> str | None:
        """Record one report and, in the same transaction, what `decide` makes of the
        address's history; its outcome, or None when the message was recorded before
        (nothing done)."""
        with self.db.write_lock, self.db.begin() as conn:
            row_id = conn.execute(self.db.insert_ignoring_duplicates(bounce_events).values(
                **_values(bounce)).returning(bounce_events.c.id)).scalar()
            if row_id is None:
                return None
            target = bounce.target
            if bounce.outcome != "counted" or target is None or not target.email_key:
                return bounce.outcome
            decision = decide(_history(conn, target.email_key, soft_since))
            if decision.status:
                subscribers.change_status(conn, target.email_key, decision.status,
                                          bounce.received_at, decision.cause)
            outcome = "acted" if decision.status else "counted"
            conn.execute(update(bounce_events).where(bounce_events.c.id == row_id).values(
                outcome=outcome, action=decision.action))
        return outcome

    def entries_for(self, key: str) -> list[BounceEntry]:
        """Every report about one address, oldest first."""
        with self.db.connect() as conn:
            rows = conn.execute(select(bounce_events).where(bounce_events.c.email_key == key)
                                .order_by(bounce_events.c.id)).all()
        return [BounceEntry(as_utc(r.received_at), r.kind, r.status, r.diagnostic, r.digest_id,
                            r.action) for r in rows]

    def tallies(self, digest_ids: Sequence[int]) -> dict[int, BounceTally]:
        """Addresses that bounced hard, soft or complained, per digest."""
        with self.db.connect() as conn:
            rows = conn.execute(select(bounce_events.c.digest_id, bounce_events.c.kind,
                                       func.count(bounce_events.c.email_key.distinct()))
                                .where(bounce_events.c.digest_id.in_(list(digest_ids)),
                                       bounce_events.c.outcome.in_(COUNTED))
                                .group_by(bounce_events.c.digest_id, bounce_events.c.kind))
            found: dict[int, dict[str, int]] = {}
            for digest_id, kind, n in rows:
                found.setdefault(int(digest_id), {})[kind] = int(n)
        return {d: BounceTally(k.get("hard", 0), k.get("soft", 0), k.get("complaint", 0))
                for d, k in found.items()}

    def sent(self, digest_ids: Sequence[int]) -> dict[int, int]:
        """Messages sent per digest: what the rates are shares of."""
        with self.db.connect() as conn:
            return ledger.sent_counts(conn, digest_ids)

    def outcomes(self) -> dict[str, int]:
        """How many reports ended each way (counted, acted, ignored, forged, …)."""
        with self.db.connect() as conn:
            rows = conn.execute(select(bounce_events.c.outcome, func.count())
                                .group_by(bounce_events.c.outcome))
            return {str(outcome): int(n) for outcome, n in rows}

    def claim_alert(self, digest_id: int, kind: str, now: datetime) -> bool:
        """True the first time a rate alert of this kind is due for this digest."""
        with self.db.write_lock, self.db.begin() as conn:
            return conn.execute(self.db.insert_ignoring_duplicates(bounce_alerts).values(
                digest_id=digest_id, kind=kind, at=now).returning(bounce_alerts.c.digest_id)
            ).first() is not None  # (rowcount is not told on every driver)


def forget_address(conn: Connection, key: str, replacement: str) -> None:
    """Inside a `forget`: the address leaves every report about it (the rows stay, so the
    messages are still known as read)."""
    conn.execute(update(bounce_events).where(bounce_events.c.email_key == key)
                 .values(email_key=replacement, diagnostic=""))


def _history(conn: Connection, key: str, soft_since: datetime) -> History:
    def messages(kind: str, *extra: Any) -> int:
        return int(conn.execute(select(func.count(bounce_events.c.delivery_id.distinct()))
                                .where(bounce_events.c.email_key == key,
                                       bounce_events.c.kind == kind,
                                       bounce_events.c.outcome.in_(COUNTED), *extra))
                   .scalar_one())

    return History(status=subscribers.status_of(conn, key), hard=messages("hard"),
                   soft=messages("soft", bounce_events.c.received_at >= soft_since))



def _values(bounce: NewBounce) -> dict[str, Any]:
    target = bounce.target
    return {"fingerprint": bounce.fingerprint, "received_at": bounce.received_at,
            "source": bounce.source, "kind": bounce.kind, "outcome": bounce.outcome,
            "status": bounce.status[:16], "diagnostic": bounce.diagnostic,
            "action": bounce.action,
            "delivery_id": target.delivery_id if target else None,
            "digest_id": target.digest_id if target else None,
            "email_key": target.email_key if target else None}
