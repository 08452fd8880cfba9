"""Alembic environment: migrations run on the connection ``f8a_jobs.storage.migrate`` passes."""

from alembic import context

from f8a_jobs.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
