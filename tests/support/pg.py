"""Registry test backends: throwaway PostgreSQL databases, the ``registry_url`` fixture, and
the process context used by the crash and concurrency tests.

PostgreSQL is expected on 127.0.0.1:5432 with trust auth for user ``postgres``. When it does
not answer, tests that need it are skipped with the reason, never silently passed.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _admin_connection():
    import psycopg
    try:
        return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres",
                               autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
        pytest.skip(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}: {reason}")


def pg_url(database: str) -> str:
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


@contextmanager
def temporary_databases(count: int = 1, prefix: str = "retrain_test") -> Iterator[list[str]]:
    """Create ``count`` uniquely named databases; yield their URLs; drop them afterwards."""
    from psycopg import sql
    conn = _admin_connection()
    names = [f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}" for _ in range(count)]
    created: list[str] = []
    try:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            created.append(name)
        yield [pg_url(n) for n in names]
    finally:
        for name in created:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))
        conn.close()


@contextmanager
def temporary_database(prefix: str = "retrain_test") -> Iterator[str]:
    with temporary_databases(1, prefix) as urls:
        yield urls[0]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@contextmanager
def backend_urls(backend: str, tmp_path: Path, count: int = 1) -> Iterator[list[str]]:
    """``count`` empty registry databases of ``backend`` ('sqlite' or 'postgresql')."""
    if backend == "sqlite":
        yield [sqlite_url(tmp_path / f"registry-{i}.db") for i in range(count)]
    else:
        with temporary_databases(count) as urls:
            yield urls


@pytest.fixture(params=BACKENDS)
def registry_url(request, tmp_path) -> Iterator[str]:
    """An empty registry database URL: a SQLite file, or a fresh PostgreSQL database."""
    with backend_urls(request.param, tmp_path) as urls:
        yield urls[0]


# Modules the fork server imports once, so that each test process starts in milliseconds.
_PRELOAD = ["retrain.training", "retrain.workspace", "retrain.registry", "sklearn.ensemble",
            "skops.io", "test_crash_consistency", "test_concurrency"]


def process_context():
    """A multiprocessing context whose processes fork from a server that has the library
    imported: real, separate processes (own connections, killable) without ~3 s of imports
    each. Worker functions must live in a module listed in ``_PRELOAD`` or importable."""
    import multiprocessing
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx
