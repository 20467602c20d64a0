"""Click and open counts ([tracking]): each digest keeps how its links count and where
each article's tracked link leads; clicks and opens are rows of their own.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("digests", sa.Column("tracking", sa.String(32)))
    op.add_column("digest_articles", sa.Column("link", sa.Text))
    op.create_table(
        "clicks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("digest_id", sa.Integer, sa.ForeignKey("digests.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("automated", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reader", sa.String(64)),
    )
    op.create_index("ix_clicks_digest_position", "clicks", ["digest_id", "position"])
    op.create_index("ix_clicks_reader", "clicks", ["reader"])
    op.create_table(
        "opens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("digest_id", sa.Integer, sa.ForeignKey("digests.id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("automated", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reader", sa.String(64)),
    )
    op.create_index("ix_opens_digest", "opens", ["digest_id"])
    op.create_index("ix_opens_reader", "opens", ["reader"])
    op.create_index("ix_deliveries_digest_status_time", "deliveries",
                    ["digest_id", "status", "updated_at"])
    op.create_index("ix_deliveries_token_digest", "deliveries", ["token_id", "digest_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_token_digest", "deliveries")
    op.drop_index("ix_deliveries_digest_status_time", "deliveries")
    op.drop_table("opens")
    op.drop_table("clicks")
    with op.batch_alter_table("digest_articles") as batch:
        batch.drop_column("link")
    with op.batch_alter_table("digests") as batch:
        batch.drop_column("tracking")
