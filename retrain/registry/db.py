"""Engines and schema migrations for the registry (SQLite by default, PostgreSQL for teams)."""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError as AlembicError
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import ArgumentError, OperationalError

from retrain.errors import RegistryError

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK_KEY = 7_341_901  # PostgreSQL advisory lock id for schema upgrades


def _enable_wal(cursor) -> None:
    """Switch a SQLite database to WAL. On a new file several processes may race to do it, and
    the switch does not wait on the busy timeout, so retry for a while."""
    deadline = time.monotonic() + 60
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _ln(x):
    """SQL ``ln`` for SQLite, which has it built in only when compiled with its math
    functions. NULL for NULL and for x <= 0, like the built-in (the log_loss metric clamps
    its argument away from 0 anyway)."""
    if x is None or x <= 0:
        return None
    return math.log(x)


def make_engine(url: str, *, immediate: bool = False) -> Engine:
    """An engine for ``url``. With ``immediate`` on SQLite, every transaction takes the write
    lock at BEGIN, so concurrent writers queue (busy timeout) instead of failing on upgrade."""
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn, _record):
                dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA busy_timeout=60000")
                cur.execute("PRAGMA foreign_keys=ON")
                _enable_wal(cur)
                cur.close()
                # The log_loss metric needs ln(); not every SQLite build has it.
                dbapi_conn.create_function("ln", 1, _ln, deterministic=True)

            @event.listens_for(engine, "begin")
            def _on_begin(conn):
                conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

            return engine
        return create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ModuleNotFoundError) as exc:
        raise RegistryError(f"[registry] url {url!r} is not usable: {exc}") from None


def _alembic_config(connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _scripts() -> ScriptDirectory:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg)


def head_revision() -> str:
    return _scripts().get_current_head()


def _known_revision(revision: str) -> bool:
    try:
        return _scripts().get_revision(revision) is not None
    except AlembicError:
        return False


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe when several processes open a new registry."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    target = head_revision() if revision == "head" else revision
    try:
        current = current_revision(engine)
        if current == target:
            return
        if current is not None and not _known_revision(current):
            # Written by a newer retrain: never guess at a schema we do not know.
            raise RegistryError(
                f"the registry at {engine.url.render_as_string(hide_password=True)} has schema "
                f"revision {current!r}, which this version of retrain does not know (its newest "
                f"is {head_revision()!r}); upgrade retrain to use this registry")
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            command.upgrade(_alembic_config(conn), revision)
    except OperationalError as exc:
        reason = " ".join(str(exc.orig).split())  # a driver's message spans several lines
        raise RegistryError(f"cannot open the registry at "
                            f"{engine.url.render_as_string(hide_password=True)}: {reason[:300]}") from None
