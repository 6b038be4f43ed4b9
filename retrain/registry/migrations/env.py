"""Alembic environment: runs on the connection handed over by retrain.registry.db."""

from alembic import context

from retrain.registry.tables import SQLModel

config = context.config
connection = config.attributes["connection"]
context.configure(connection=connection, target_metadata=SQLModel.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
