"""Editorial records get tables of their own: holds, approvals, the opening note and the
slot waiting for approval become rows of `editorial_marks`, editor logins rows of
`editor_sessions` (only a hash of each session id). Until now they were JSON values in
the `settings` table; this revision moves whatever is there.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MOVED = ("hold", "approval", "draft_note", "waiting_slot", "waiting_since")


def upgrade() -> None:
    marks = op.create_table(
        "editorial_marks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.Text, nullable=False, server_default=""),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text", sa.Text, nullable=False, server_default=""),
        sa.Column("articles", sa.Text, nullable=False, server_default=""),
        sa.Column("slot", sa.DateTime(timezone=True)),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        sa.Column("used_digest_id", sa.Integer),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("ended_reason", sa.String(16)),
    )
    op.create_index("ix_editorial_marks_kind", "editorial_marks", ["kind", "id"])
    sessions = op.create_table(
        "editor_sessions",
        sa.Column("sid_hash", sa.String(64), primary_key=True),
        sa.Column("editor", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    settings = sa.table("settings", sa.column("name", sa.Text), sa.column("value", sa.Text))
    bind = op.get_bind()
    values = {row.name: json.loads(row.value) for row in bind.execute(sa.select(settings))}
    now = datetime.now(UTC)
    rows = []
    if hold := values.get("hold"):
        rows.append({"kind": "hold", "actor": hold.get("by", ""), "at": _time(hold, now),
                     "text": hold.get("reason", ""), "articles": ""})
    if approval := values.get("approval"):
        rows.append({"kind": "approval", "actor": approval.get("by", ""),
                     "at": _time(approval, now), "text": "",
                     "articles": json.dumps(approval.get("articles", []))})
    if note := values.get("draft_note"):
        rows.append({"kind": "note", "actor": note.get("by", ""), "at": _time(note, now),
                     "text": note.get("text", ""), "articles": ""})
    if waiting := values.get("waiting_slot"):
        since = values.get("waiting_since")
        rows.append({"kind": "waiting", "actor": "", "text": "", "articles": "",
                     "slot": _parse(waiting) or now, "at": _parse(since) or now})
    if rows:
        op.bulk_insert(marks, [{"slot": None, **row} for row in rows])
    logins = []
    for name, value in values.items():
        if name.startswith("editor-session:") and isinstance(value, dict):
            expires = _parse(value.get("expires"))
            if expires is not None and expires > now:
                sid = name.partition(":")[2]
                logins.append({"sid_hash": hashlib.sha256(sid.encode()).hexdigest(),
                               "editor": value.get("editor", ""), "created_at": now,
                               "expires_at": expires})
    if logins:
        op.bulk_insert(sessions, logins)
    bind.execute(settings.delete().where(sa.or_(settings.c.name.in_(MOVED),
                                                settings.c.name.like("editor-session:%"))))


def downgrade() -> None:
    op.drop_table("editor_sessions")
    op.drop_index("ix_editorial_marks_kind", "editorial_marks")
    op.drop_table("editorial_marks")


def _time(record: dict[str, str], fallback: datetime) -> datetime:
    return _parse(record.get("at")) or fallback


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
