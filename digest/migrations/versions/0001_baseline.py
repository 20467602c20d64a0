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

from digest.store import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

log = logging.getLogger("digest.migrate")


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind, checkfirst=True)
    inspector = sa.inspect(bind)
    for table in metadata.sorted_tables:
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
