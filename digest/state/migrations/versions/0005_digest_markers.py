"""Each digest keeps the random part of its per-subscriber placeholders, so content cannot
forge one (digests made before keep the fixed placeholders: NULL).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("digests", sa.Column("marker", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("digests") as batch:
        batch.drop_column("marker")
