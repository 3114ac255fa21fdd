"""Fixtures: a real PostgreSQL with pgvector, and a transaction per test that is rolled back.

The session starts a throwaway embedded cluster in a temporary directory, unless
``VECALCHEMY_TEST_DATABASE_URL`` names a server to use instead. Each test gets a
connection inside a transaction (and a Session joined to it with savepoints), rolled
back at the end, so tests can create tables freely and leave nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

import vecalchemy

TEST_URL_ENV = "VECALCHEMY_TEST_DATABASE_URL"

#: Server settings that make a throwaway cluster fast (durability does not matter here).
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}

ASYNC_DRIVERS = ["psycopg_async", "asyncpg"]


def _with_driver(url: sa.URL, driver: str) -> sa.URL:
    name = "psycopg" if driver == "psycopg_async" else driver
    return url.set(drivername=f"postgresql+{name}")


@pytest.fixture(scope="session")
def server_url() -> Iterator[sa.URL]:
    """URL (psycopg) of the server the tests run against, with a fresh database."""
    given = os.environ.get(TEST_URL_ENV)
    server = None
    if given:
        base = vecalchemy.resolve_url(given)
    else:
        from vecalchemy.server import EmbeddedServer

        # Not under pytest's tmp_path: the server runs as another user when we are root,
        # and each new pytest session resets /tmp/pytest-of-<user> to mode 0700.
        data_dir = Path(tempfile.mkdtemp(prefix="vecalchemy-test-"))
        server = EmbeddedServer(data_dir, settings=FAST_SETTINGS)
        server.start()
        base = sa.make_url(server.url())
    # A database of our own, so a shared server is left as it was.
    dbname = f"vecalchemy_test_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{dbname}"')
    except sa.exc.OperationalError as exc:  # abort early: nothing else can run
        pytest.exit(f"cannot reach the test database at {base}: {exc}", returncode=3)
    url = base.set(database=dbname)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.dispose()
        if server is not None:
            server.stop()
            shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def engine(server_url: sa.URL) -> Iterator[Engine]:
    """A vecalchemy engine (psycopg 3, sync) on the test database."""
    eng = vecalchemy.create_engine(server_url)
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            yield conn
        finally:
            trans.rollback()


@pytest.fixture
def session(connection: Connection) -> Iterator[Session]:
    """An ORM Session joined to the test's transaction (its commits become savepoints)."""
    with Session(bind=connection, join_transaction_mode="create_savepoint") as s:
        yield s


@pytest.fixture(scope="session", params=ASYNC_DRIVERS)
async def async_engine(
    request: pytest.FixtureRequest, server_url: sa.URL
) -> AsyncIterator[AsyncEngine]:
    """A vecalchemy async engine, once per async driver (psycopg async, asyncpg)."""
    eng = vecalchemy.create_async_engine(_with_driver(server_url, request.param))
    yield eng
    await eng.dispose()


@pytest.fixture
async def async_connection(async_engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """An async connection inside a transaction that is rolled back after the test."""
    async with async_engine.connect() as conn:
        trans = await conn.begin()
        try:
            yield conn
        finally:
            await trans.rollback()


@pytest.fixture
async def async_session(async_connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """An AsyncSession joined to the test's transaction."""
    async with AsyncSession(bind=async_connection, join_transaction_mode="create_savepoint") as s:
        yield s


def explain(conn: Connection | Session, stmt: sa.Select[tuple[object, ...]]) -> str:
    """The plan PostgreSQL chooses for ``stmt`` (sequential scans discouraged, as on big tables)."""
    conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
    return vecalchemy.explain(conn, stmt)


def executed_plan(conn: Connection | Session, stmt: sa.Select[tuple[object, ...]]) -> str:
    """EXPLAIN ANALYZE of ``stmt`` (sequential scans discouraged, as on big tables)."""
    conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
    return vecalchemy.explain(conn, stmt, analyze=True)


def ran(plan: str, node: str) -> list[str]:
    """The lines of an EXPLAIN ANALYZE plan naming ``node`` that were executed."""
    return [line for line in plan.splitlines() if node in line and "never executed" not in line]


#: The settings vecalchemy sets around a statement, as :func:`observed` reads them.
WATCHED = (
    "hnsw.ef_search",
    "hnsw.iterative_scan",
    "hnsw.max_scan_tuples",
    "ivfflat.probes",
    "ivfflat.iterative_scan",
    "ivfflat.max_probes",
    "plan_cache_mode",
    "enable_indexscan",
    "enable_seqscan",
)


def read_settings(dbapi_connection: object) -> dict[str, str | None]:
    """The WATCHED settings in effect on a DBAPI connection (sync facade of any driver)."""
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    try:
        cursor.execute("SELECT " + ", ".join(f"current_setting('{n}', true)" for n in WATCHED))
        row = cursor.fetchone()
    finally:
        cursor.close()
    return dict(zip(WATCHED, row, strict=True))


@pytest.fixture
def observed(engine: Engine) -> Iterator[list[dict[str, str | None]]]:
    """The settings in effect right after each statement that scans a vector index ran
    (in a transaction vecalchemy restores them only before the next statement)."""
    from vecalchemy._sql import NEEDS_ATTR

    seen: list[dict[str, str | None]] = []

    def after(conn: Connection, cursor: object, statement: str, *args: object) -> None:
        context = args[1]
        if getattr(getattr(context, "compiled", None), NEEDS_ATTR, None):
            seen.append(read_settings(conn.connection.dbapi_connection))

    sa.event.listen(engine, "after_cursor_execute", after)
    yield seen
    sa.event.remove(engine, "after_cursor_execute", after)


@pytest.fixture(scope="module")
def module_db_url(server_url: sa.URL) -> Iterator[sa.URL]:
    """A database of the test module's own (dropped after it), for tests that install
    database-wide objects such as the sync outbox's schema."""
    from tests.test_engine import fresh_database

    with fresh_database(server_url) as url:
        yield url


@pytest.fixture(scope="module")
def module_db(module_db_url: sa.URL) -> Iterator[Engine]:
    """An engine on :func:`module_db_url`."""
    engine = vecalchemy.create_engine(module_db_url)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def recorded_statements(target: Engine | Connection) -> Iterator[list[str]]:
    """Every statement sent through SQLAlchemy on ``target`` inside the block."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    sa.event.listen(target, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(target, "before_cursor_execute", record)
