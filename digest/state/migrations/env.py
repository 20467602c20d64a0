"""Alembic environment: migrations run on the connection `digest.migrate` hands over."""

from alembic import context

from digest.state.schema import SCHEDULER_JOBS, metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite",
                  include_name=lambda name, kind, _parent: kind != "table"
                  or name != SCHEDULER_JOBS)
with context.begin_transaction():
    context.run_migrations()
