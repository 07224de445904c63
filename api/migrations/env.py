"""Alembic environment: migrations run against the URL the service was configured with."""

from alembic import context
from sqlalchemy import Engine, create_engine, event, pool

from api.models import Base

config = context.config
target_metadata = Base.metadata


MIGRATION_LOCK = 4_107_731  # PostgreSQL advisory lock key: one migrating process at a time


def _engine() -> Engine:
    """Every migration runs in one transaction, so a failure part-way leaves the database as it
    was (on SQLite the driver's own transaction handling would commit each DDL statement), and
    processes starting together migrate one after the other: the later one waits, then finds
    the schema current."""
    url = config.get_main_option("sqlalchemy.url")
    if not url.startswith("sqlite"):
        return create_engine(url, poolclass=pool.NullPool)
    engine = create_engine(url, poolclass=pool.NullPool, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # the writer's lock before reading the version

    return engine


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    with _engine().connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          transactional_ddl=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
