"""Bounces and complaints that arrive later: one row per report read (`bounce_events`,
unique by the message's fingerprint, so each counts once), the rate alerts sent
(`bounce_alerts`), and an index on the Message-ID of each delivery, which a report that
lost its VERP address still quotes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounce_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("delivery_id", sa.Integer),
        sa.Column("digest_id", sa.Integer),
        sa.Column("email_key", sa.Text),
        sa.Column("status", sa.String(16), nullable=False, server_default=""),
        sa.Column("diagnostic", sa.Text, nullable=False, server_default=""),
        sa.Column("action", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_bounce_events_fingerprint", "bounce_events", ["fingerprint"],
                    unique=True)
    op.create_index("ix_bounce_events_email_key", "bounce_events", ["email_key"])
    op.create_index("ix_bounce_events_digest_kind", "bounce_events", ["digest_id", "kind"])
    op.create_table(
        "bounce_alerts",
        sa.Column("digest_id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_deliveries_message_id", "deliveries", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_message_id", "deliveries")
    op.drop_table("bounce_alerts")
    op.drop_index("ix_bounce_events_digest_kind", "bounce_events")
    op.drop_index("ix_bounce_events_email_key", "bounce_events")
    op.drop_index("ix_bounce_events_fingerprint", "bounce_events")
    op.drop_table("bounce_events")
