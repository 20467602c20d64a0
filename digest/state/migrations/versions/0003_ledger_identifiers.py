"""Identifiers a message carries instead of the address: each subscriber gets a random
token id for their links (unsubscribe, confirmation), copied into each delivery row; each
delivery row gets the address's comparison key, so every lookup by address uses the one
normalisation (Unicode case-folding; SQL lower() is ASCII-only in SQLite).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade() -> None:
    op.add_column("subscribers", sa.Column("token_id", sa.String(24)))
    op.add_column("deliveries", sa.Column("email_key", sa.Text))
    op.add_column("deliveries", sa.Column("token_id", sa.String(24)))
    bind = op.get_bind()
    subscribers = sa.table("subscribers", sa.column("id", sa.Integer),
                           sa.column("email_key", sa.Text), sa.column("token_id", sa.String))
    deliveries = sa.table("deliveries", sa.column("id", sa.Integer), sa.column("email", sa.Text),
                          sa.column("email_key", sa.Text), sa.column("token_id", sa.String))
    tokens: dict[str, str] = {}
    for row in bind.execute(sa.select(subscribers.c.id, subscribers.c.email_key)).all():
        tokens[row.email_key] = secrets.token_urlsafe(12)
        bind.execute(subscribers.update().where(subscribers.c.id == row.id)
                     .values(token_id=tokens[row.email_key]))
    rows = bind.execute(sa.select(deliveries.c.id, deliveries.c.email)).all()
    for start in range(0, len(rows), BATCH):
        for row in rows[start:start + BATCH]:
            key = row.email.strip().casefold()
            bind.execute(deliveries.update().where(deliveries.c.id == row.id)
                         .values(email_key=key, token_id=tokens.get(key)))
    op.create_index("ix_subscribers_token_id", "subscribers", ["token_id"], unique=True)
    op.create_index("ix_deliveries_email_key", "deliveries", ["email_key"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_email_key", "deliveries")
    op.drop_index("ix_subscribers_token_id", "subscribers")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("token_id")
        batch.drop_column("email_key")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("token_id")
