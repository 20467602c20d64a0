"""Baseline: the schema of version 0.1, also for state databases made before migrations.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Databases made by earlier versions (which had no alembic_version table) already hold most
tables: this revision creates what is missing and adds the columns and indexes they lack,
so `digest db upgrade` brings any earlier database to the baseline without losing a row.
Later revisions are plain Alembic operations.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

log = logging.getLogger("digest.migrate")

# The schema as this revision defines it, frozen here: later changes to digest/state/schema.py
# come with revisions of their own and never change what this one does.
baseline = sa.MetaData()

sa.Table(
    "digests", baseline,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("slot", sa.DateTime(timezone=True)),
    sa.Index("ix_digests_slot", "slot", unique=True),
)

sa.Table(
    "digest_articles", baseline,
    sa.Column("digest_id", sa.Integer, sa.ForeignKey("digests.id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("url", sa.Text, nullable=False, index=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("source_name", sa.Text, nullable=False),
)

sa.Table(
    "deliveries", baseline,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("digest_id", sa.Integer, sa.ForeignKey("digests.id"), nullable=False),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("format", sa.String(8), nullable=False, default="html"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("message_id", sa.Text),
    sa.Column("reply", sa.Text),
    sa.Column("code", sa.Integer),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
    sa.Column("lease_owner", sa.Text),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("digest_id", "email"),
    sa.Index("ix_deliveries_digest_status", "digest_id", "status"),
)

sa.Table(
    "senders", baseline,
    sa.Column("owner", sa.Text, primary_key=True),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
)

sa.Table(
    "locks", baseline,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
)

sa.Table(
    "source_state", baseline,
    sa.Column("url", sa.Text, primary_key=True),
    sa.Column("etag", sa.Text, nullable=False, default=""),
    sa.Column("last_modified", sa.Text, nullable=False, default=""),
    sa.Column("last_success_at", sa.DateTime(timezone=True)),
    sa.Column("last_failure_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text, nullable=False, default=""),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, default=0),
    sa.Column("listed", sa.Integer, nullable=False, default=0),
)

sa.Table(
    "source_entries", baseline,
    sa.Column("source_url", sa.Text, primary_key=True),
    sa.Column("url", sa.Text, primary_key=True),
    sa.Column("entry", sa.Text, nullable=False),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
)

sa.Table(
    "summary_edits", baseline,
    sa.Column("url", sa.Text, primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("digest_id", sa.Integer, sa.ForeignKey("digests.id")),
    sa.Column("excluded", sa.Integer, nullable=False, default=0),
    sa.Column("pinned", sa.Integer, nullable=False, default=0),
    sa.Column("position", sa.Integer),
    sa.Column("headline", sa.Text, nullable=False, default=""),
    sa.Column("updated_by", sa.Text, nullable=False, default=""),
)

sa.Table(
    "subscribers", baseline,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email_key", sa.Text, nullable=False, unique=True),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False, default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("format", sa.String(8), nullable=False, default="html"),
    sa.Column("subscribed_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("confirm_sent_at", sa.DateTime(timezone=True)),
)

sa.Table(
    "subscriber_events", baseline,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email_key", sa.Text, nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("cause", sa.Text, nullable=False),
)

sa.Table(
    "suppressions", baseline,
    sa.Column("email_hash", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

sa.Table(
    "settings", baseline,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

sa.Table(
    "runs", baseline,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("slot", sa.DateTime(timezone=True)),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("articles", sa.Integer, nullable=False, default=0),
    sa.Column("recipients", sa.Integer, nullable=False, default=0),
    sa.Column("sent", sa.Integer, nullable=False, default=0),
    sa.Column("failed", sa.Integer, nullable=False, default=0),
    sa.Column("deferred", sa.Integer, nullable=False, default=0),
    sa.Column("digest_id", sa.Integer),
)


def upgrade() -> None:
    bind = op.get_bind()
    baseline.create_all(bind, checkfirst=True)
    inspector = sa.inspect(bind)
    for table in baseline.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            default = getattr(column.default, "arg", None)
            server_default = sa.text(repr(default)) if isinstance(default, (int, str)) else None
            op.add_column(table.name, sa.Column(column.name, column.type,
                                                server_default=server_default))
            log.info("state database: added column %s.%s", table.name, column.name)
        for index in table.indexes:
            index.create(bind, checkfirst=True)


def downgrade() -> None:
    raise NotImplementedError("the baseline cannot be undone; restore a backup instead")
