"""Engines ready for pgvector: URL resolution, extension creation, type registration per connection.

The tests that need a database without the extension, or a user who may not create it,
make their own database (and role) on the test server and drop it at the end.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from pgvector import HalfVector, SparseVector, Vector
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine as sa_create_async_engine
from sqlalchemy.pool import NullPool

import vecalchemy
from vecalchemy import ConfigurationError, ExtensionNotAvailable
from vecalchemy.engine import DATABASE_URL_ENV

DRIVERS = ["psycopg", "psycopg_async", "asyncpg"]
ASYNC_DRIVERS = ["psycopg_async", "asyncpg"]

VALUES_SQL = "SELECT '[1,2,3]'::{s}vector, '[1,2]'::{s}halfvec, '{{1:5}}/3'::{s}sparsevec"


def _with_driver(url: URL, driver: str) -> URL:
    name = "psycopg" if driver == "psycopg_async" else driver
    return url.set(drivername=f"postgresql+{name}")


def _text(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def _check_values(row: Any) -> None:
    """The driver gave pgvector objects (types registered), not the text form."""
    vector, halfvec, sparsevec = row
    assert isinstance(vector, (Vector, np.ndarray)), type(vector)
    values = vector.to_numpy() if isinstance(vector, Vector) else vector
    assert np.asarray(values).tolist() == [1.0, 2.0, 3.0]
    assert isinstance(halfvec, HalfVector)
    assert halfvec.to_list() == [1.0, 2.0]
    assert isinstance(sparsevec, SparseVector)
    assert sparsevec.to_list() == [5.0, 0.0, 0.0]


def _check_sync(conn: sa.Connection, schema: str = "") -> None:
    _check_values(conn.exec_driver_sql(VALUES_SQL.format(s=schema)).one())


async def _check_async(conn: Any, schema: str = "") -> None:
    _check_values((await conn.exec_driver_sql(VALUES_SQL.format(s=schema))).one())


def _pid_sync(conn: sa.Connection) -> int:
    return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()


async def _pid_async(conn: Any) -> int:
    return (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()


def _extensions(url: URL) -> dict[str, str]:
    """extname -> schema in the database at ``url`` (read with a plain engine)."""
    eng = sa.create_engine(url, poolclass=NullPool)
    try:
        with eng.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT e.extname, n.nspname FROM pg_extension e "
                "JOIN pg_namespace n ON n.oid = e.extnamespace"
            )
            return dict(rows.all())
    finally:
        eng.dispose()


def _admin(url: URL, *statements: str) -> None:
    eng = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with eng.connect() as conn:
            for sql in statements:
                conn.exec_driver_sql(sql)
    finally:
        eng.dispose()


@contextlib.contextmanager
def fresh_database(server_url: URL, *statements: str) -> Iterator[URL]:
    """A new database from template0 (so without the extension), dropped at the end."""
    name = f"vecalchemy_engine_{uuid.uuid4().hex[:8]}"
    _admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE template0')
    url = server_url.set(database=name)
    try:
        if statements:
            _admin(url, *statements)
        yield url
    finally:
        _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def login_role(server_url: URL) -> Iterator[str]:
    """A role that may log in and nothing more (not a superuser), dropped at the end. It
    has the password of ``server_url`` (servers ask for one), so that URL with only the
    user name changed logs in as the role."""
    role = f"weak_{uuid.uuid4().hex[:8]}"
    password = "" if server_url.password is None else str(server_url.password)
    secret = f" PASSWORD '{password.replace(chr(39), chr(39) * 2)}'" if password else ""
    _admin(server_url, f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE{secret}')
    try:
        yield role
    finally:
        _admin(server_url, f'DROP ROLE IF EXISTS "{role}"')


# -- resolve_url ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "async_", "expected"),
    [
        ("postgres://app:secret@db:5432/app", False, "postgresql+psycopg://app:secret@db:5432/app"),
        ("postgresql://app@db/app", False, "postgresql+psycopg://app@db/app"),
        ("postgresql+psycopg://app@db/app", False, "postgresql+psycopg://app@db/app"),
        (
            "postgresql+psycopg://postgres@/app?host=/tmp/sock&port=5433",
            False,
            "postgresql+psycopg://postgres@/app?host=/tmp/sock&port=5433",
        ),
        ("postgres://app@db/app", True, "postgresql+psycopg://app@db/app"),
        ("postgresql+asyncpg://app@db/app", True, "postgresql+asyncpg://app@db/app"),
        ("postgres+asyncpg://app@db/app", True, "postgresql+asyncpg://app@db/app"),
        ("postgresql+psycopg_async://app@db/app", True, "postgresql+psycopg_async://app@db/app"),
        (
            URL.create("postgres", username="u", host="h", database="d"),
            False,
            "postgresql+psycopg://u@h/d",
        ),
    ],
)
def test_resolve_url_normalises(given: str | URL, async_: bool, expected: str) -> None:
    """postgres:// and postgresql:// mean psycopg 3; supported drivers are kept; the rest
    of the URL (user, password, host, port, query) is unchanged."""
    assert vecalchemy.resolve_url(given, async_=async_) == sa.make_url(expected)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("sqlite://", "vecalchemy needs PostgreSQL with pgvector, got a 'sqlite' URL"),
        ("sqlite:///tmp/app.db", "got a 'sqlite' URL; use postgresql+psycopg://"),
        ("mysql+pymysql://app@db/app", "got a 'mysql' URL"),
        ("postgresql+psycopg2://app@db/app", "driver 'psycopg2' is not supported"),
        ("postgresql+pg8000://app@db/app", "driver 'pg8000' is not supported"),
        (
            "postgresql+asyncpg://app@db/app",
            "asyncpg is async-only; use vecalchemy.create_async_engine()",
        ),
        ("not a url", "cannot parse database URL 'not a url'"),
        ("", "cannot parse database URL"),
    ],
)
def test_bad_urls_for_a_sync_engine(given: str, message: str) -> None:
    """URLs vecalchemy cannot serve raise ConfigurationError before any connection."""
    with pytest.raises(ConfigurationError) as info:
        vecalchemy.resolve_url(given)
    assert message in str(info.value)
    with pytest.raises(ConfigurationError) as again:
        vecalchemy.create_engine(given)
    assert str(again.value) == str(info.value)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("sqlite+aiosqlite://", "got a 'sqlite' URL"),
        ("postgresql+psycopg2://app@db/app", "driver 'psycopg2' is not supported"),
    ],
)
def test_bad_urls_for_an_async_engine(given: str, message: str) -> None:
    """create_async_engine refuses the same URLs with ConfigurationError."""
    with pytest.raises(ConfigurationError, match=message):
        vecalchemy.create_async_engine(given)


def test_psycopg_async_url_for_a_sync_engine(server_url: URL) -> None:
    """postgresql+psycopg_async:// given to create_engine() is refused like asyncpg, or
    served by psycopg's sync dialect: never a sync engine on an async driver, which
    fails only at the first query (MissingGreenlet)."""
    url = server_url.set(drivername="postgresql+psycopg_async")
    eng: sa.Engine | None = None
    message = ""
    try:
        eng = vecalchemy.create_engine(url)
    except ConfigurationError as exc:
        message = str(exc)
    if eng is None:
        assert "create_async_engine" in message
        return
    try:
        assert not eng.dialect.is_async
    finally:
        eng.dispose()


def test_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a url: $VECALCHEMY_DATABASE_URL, then $DATABASE_URL; an empty value is unset."""
    monkeypatch.setenv(DATABASE_URL_ENV, "postgres://a@first/one")
    monkeypatch.setenv("DATABASE_URL", "postgres://b@second/two")
    assert _text(vecalchemy.resolve_url()) == "postgresql+psycopg://a@first/one"
    assert _text(vecalchemy.resolve_url("postgresql://c@given/three")) == (
        "postgresql+psycopg://c@given/three"
    )
    monkeypatch.setenv(DATABASE_URL_ENV, "")
    assert _text(vecalchemy.resolve_url()) == "postgresql+psycopg://b@second/two"
    monkeypatch.delenv(DATABASE_URL_ENV)
    assert _text(vecalchemy.resolve_url()) == "postgresql+psycopg://b@second/two"


@pytest.mark.parametrize("variable", [DATABASE_URL_ENV, "DATABASE_URL"])
def test_bad_url_from_environment(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    """A URL from the environment is checked like a given one."""
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv(variable, "sqlite:///app.db")
    with pytest.raises(ConfigurationError, match="got a 'sqlite' URL"):
        vecalchemy.create_engine()
    monkeypatch.setenv(variable, "postgresql+asyncpg://app@db/app")
    with pytest.raises(ConfigurationError, match="asyncpg is async-only"):
        vecalchemy.create_engine()
    assert vecalchemy.resolve_url(async_=True).drivername == "postgresql+asyncpg"


def test_create_engine_uses_the_environment(
    monkeypatch: pytest.MonkeyPatch, server_url: URL
) -> None:
    """create_engine() with no argument connects to $VECALCHEMY_DATABASE_URL."""
    monkeypatch.setenv(DATABASE_URL_ENV, _text(server_url))
    monkeypatch.setenv("DATABASE_URL", "sqlite://")  # would fail if it were used
    eng = vecalchemy.create_engine()
    try:
        with eng.connect() as conn:
            assert conn.exec_driver_sql("SELECT current_database()").scalar() == server_url.database
            _check_sync(conn)
    finally:
        eng.dispose()


async def test_create_async_engine_uses_the_environment(
    monkeypatch: pytest.MonkeyPatch, server_url: URL
) -> None:
    """create_async_engine() with no argument uses $VECALCHEMY_DATABASE_URL (asyncpg here)."""
    monkeypatch.setenv(DATABASE_URL_ENV, _text(_with_driver(server_url, "asyncpg")))
    eng = vecalchemy.create_async_engine()
    try:
        assert eng.dialect.driver == "asyncpg"
        async with eng.connect() as conn:
            await _check_async(conn)
    finally:
        await eng.dispose()


# -- types on every pooled connection -----------------------------------------------------------


def test_types_registered_on_every_pooled_connection(server_url: URL) -> None:
    """Three connections checked out at once all return pgvector objects."""
    eng = vecalchemy.create_engine(server_url, pool_size=3, max_overflow=0)
    try:
        with contextlib.ExitStack() as stack:
            conns = [stack.enter_context(eng.connect()) for _ in range(3)]
            assert len({_pid_sync(c) for c in conns}) == 3
            for conn in conns:
                _check_sync(conn)
        # and again once they are back in the pool
        with eng.connect() as conn:
            _check_sync(conn)
    finally:
        eng.dispose()


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
async def test_async_types_registered_on_every_pooled_connection(
    server_url: URL, driver: str
) -> None:
    """With psycopg async and asyncpg, three connections at once all return pgvector objects."""
    eng = vecalchemy.create_async_engine(
        _with_driver(server_url, driver), pool_size=3, max_overflow=0
    )
    try:
        async with contextlib.AsyncExitStack() as stack:
            conns = [await stack.enter_async_context(eng.connect()) for _ in range(3)]
            assert len({await _pid_async(c) for c in conns}) == 3
            for conn in conns:
                await _check_async(conn)
    finally:
        await eng.dispose()


def test_the_connection_fixture_has_types(connection: sa.Connection) -> None:
    """The shared test engine (vecalchemy.create_engine) returns pgvector objects."""
    _check_sync(connection)


async def test_the_async_connection_fixture_has_types(async_connection: Any) -> None:
    """The shared async test engines (both drivers) return pgvector objects."""
    await _check_async(async_connection)


def test_vectors_round_trip_as_parameters(connection: sa.Connection) -> None:
    """Registered types also send numpy arrays and pgvector objects as parameters."""
    got = connection.exec_driver_sql(
        "SELECT %(a)s <-> %(b)s::vector", {"a": Vector([0.0, 0.0]), "b": np.array([3.0, 4.0])}
    ).scalar()
    assert got == pytest.approx(5.0)


# -- setup() on engines built elsewhere -----------------------------------------------------------


def test_setup_plain_engine(server_url: URL) -> None:
    """setup() prepares a plain sqlalchemy.create_engine and returns it."""
    eng = sa.create_engine(server_url)
    try:
        assert vecalchemy.setup(eng) is eng
        with eng.connect() as conn:
            _check_sync(conn)
    finally:
        eng.dispose()


def test_setup_prepares_a_connection_pooled_before_it(server_url: URL) -> None:
    """A connection that was already in the pool before setup() gets the types on checkout."""
    eng = sa.create_engine(server_url, pool_size=1, max_overflow=0)
    try:
        with eng.connect() as conn:
            before = _pid_sync(conn)
            raw = conn.exec_driver_sql("SELECT '[1,2,3]'::vector").scalar()
            assert isinstance(raw, str)  # not registered yet
        vecalchemy.setup(eng)
        with eng.connect() as conn:
            assert _pid_sync(conn) == before  # the very same pooled connection
            _check_sync(conn)
    finally:
        eng.dispose()


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
async def test_setup_async_engine_with_a_pooled_connection(server_url: URL, driver: str) -> None:
    """setup() on a plain async engine, whose pool already holds a connection."""
    eng: AsyncEngine = sa_create_async_engine(
        _with_driver(server_url, driver), pool_size=1, max_overflow=0
    )
    try:
        async with eng.connect() as conn:
            before = await _pid_async(conn)
        assert vecalchemy.setup(eng) is eng
        async with eng.connect() as conn:
            assert await _pid_async(conn) == before
            await _check_async(conn)
    finally:
        await eng.dispose()


def test_setup_is_idempotent(server_url: URL) -> None:
    """A second setup() adds no listeners and the engine still works."""
    eng = vecalchemy.create_engine(server_url)
    try:
        listeners = (len(eng.pool.dispatch.connect), len(eng.pool.dispatch.checkout))
        assert vecalchemy.setup(eng) is eng
        assert vecalchemy.setup(eng) is eng
        assert (len(eng.pool.dispatch.connect), len(eng.pool.dispatch.checkout)) == listeners
        with eng.connect() as conn:
            _check_sync(conn)
    finally:
        eng.dispose()


def test_setup_refuses_other_databases() -> None:
    """setup() on a SQLite engine raises ConfigurationError naming dialect and driver."""
    eng = sa.create_engine("sqlite://")
    listeners = (len(eng.pool.dispatch.connect), len(eng.pool.dispatch.checkout))
    try:
        with pytest.raises(ConfigurationError) as info:
            vecalchemy.setup(eng)
        assert str(info.value) == (
            "vecalchemy supports postgresql with psycopg 3 or asyncpg, not sqlite+pysqlite"
        )
        assert (len(eng.pool.dispatch.connect), len(eng.pool.dispatch.checkout)) == listeners
    finally:
        eng.dispose()


# -- the extension ----------------------------------------------------------------------------


async def _connect_and_check(url: URL, driver: str, schema: str = "") -> None:
    url = _with_driver(url, driver)
    if driver == "psycopg":
        eng = vecalchemy.create_engine(url, poolclass=NullPool)
        try:
            with eng.connect() as conn:
                _check_sync(conn, schema)
        finally:
            eng.dispose()
        return
    aeng = vecalchemy.create_async_engine(url, poolclass=NullPool)
    try:
        async with aeng.connect() as conn:
            await _check_async(conn, schema)
    finally:
        await aeng.dispose()


@pytest.mark.parametrize("driver", DRIVERS)
async def test_extension_created_in_a_fresh_database(server_url: URL, driver: str) -> None:
    """The first connection to a database without pgvector creates the extension."""
    with fresh_database(server_url) as url:
        assert "vector" not in _extensions(url)
        await _connect_and_check(url, driver)
        assert _extensions(url)["vector"] == "public"


@pytest.mark.parametrize("driver", DRIVERS)
async def test_extension_in_a_schema_off_the_search_path(server_url: URL, driver: str) -> None:
    """Types are registered from the extension's own schema, even when that schema is not
    on the search_path, and no second copy is created."""
    with fresh_database(
        server_url, "CREATE SCHEMA ext", "CREATE EXTENSION vector SCHEMA ext"
    ) as url:
        await _connect_and_check(url, driver, schema="ext.")
        assert _extensions(url)["vector"] == "ext"
        eng = sa.create_engine(url, poolclass=NullPool)
        try:
            with eng.connect() as conn:
                assert "ext" not in conn.exec_driver_sql("SHOW search_path").scalar()
        finally:
            eng.dispose()


def _sessions_of(server_url: URL, role: str) -> int:
    """Backends logged in as ``role`` (waiting up to 5 s for closed ones to exit)."""
    eng = sa.create_engine(server_url, poolclass=NullPool)
    try:
        with eng.connect() as conn:
            for _ in range(50):
                count = conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = %(r)s", {"r": role}
                ).scalar_one()
                if count == 0:
                    break
                time.sleep(0.1)
            return int(count)
    finally:
        eng.dispose()


async def _open_and_close(eng: sa.Engine | AsyncEngine) -> None:
    if isinstance(eng, AsyncEngine):
        async with eng.connect():
            pass
    else:
        with eng.connect():
            pass


@pytest.mark.parametrize("driver", DRIVERS)
async def test_user_who_may_not_create_the_extension(server_url: URL, driver: str) -> None:
    """A non-superuser connecting to a database without pgvector gets ExtensionNotAvailable
    saying to run CREATE EXTENSION, nothing is created; once an administrator has run it,
    the same engine works."""
    with login_role(server_url) as role, fresh_database(server_url) as admin_url:
        url = _with_driver(admin_url.set(username=role), driver)
        database = admin_url.database
        if driver == "psycopg":
            eng: Any = vecalchemy.create_engine(url)
        else:
            eng = vecalchemy.create_async_engine(url)
        try:
            for _ in range(2):  # the failure is not remembered as success
                with pytest.raises(ExtensionNotAvailable) as info:
                    await _open_and_close(eng)
                message = str(info.value)
                assert "CREATE EXTENSION vector" in message
                assert repr(database) in message
                assert "may not create it" in message
                assert "vector" not in _extensions(admin_url)
            assert _sessions_of(server_url, role) == 0  # the refused connection was closed

            _admin(admin_url, "CREATE EXTENSION vector")
            if driver == "psycopg":
                with eng.connect() as conn:
                    assert conn.exec_driver_sql("SELECT current_user").scalar() == role
                    _check_sync(conn)
            else:
                async with eng.connect() as conn:
                    await _check_async(conn)
        finally:
            if driver == "psycopg":
                eng.dispose()
            else:
                await eng.dispose()


@pytest.mark.parametrize("driver", DRIVERS)
async def test_server_without_pgvector(server_url: URL, driver: str) -> None:
    """A server where pgvector is not installed gets ExtensionNotAvailable naming the fix
    (install pgvector or use the embedded server), and nothing is created.

    The embedded server always ships pgvector, so this database hides it: a view in a
    schema placed before pg_catalog on the search_path lists the available extensions
    without vector, which is what a server without pgvector reports.
    """
    hide = (
        "CREATE SCHEMA shadow",
        "CREATE VIEW shadow.pg_available_extensions AS "
        "SELECT * FROM pg_catalog.pg_available_extensions WHERE name <> 'vector'",
        "GRANT USAGE ON SCHEMA shadow TO PUBLIC",
    )
    with fresh_database(server_url, *hide) as admin_url:
        url = _with_driver(admin_url, driver)
        search_path = "-c search_path=shadow,pg_catalog,public"
        if driver == "asyncpg":
            connect_args: dict[str, Any] = {
                "server_settings": {"search_path": "shadow,pg_catalog,public"}
            }
        else:
            connect_args = {"options": search_path}
        if driver == "psycopg":
            eng: Any = vecalchemy.create_engine(url, connect_args=connect_args)
        else:
            eng = vecalchemy.create_async_engine(url, connect_args=connect_args)
        try:
            with pytest.raises(ExtensionNotAvailable) as info:
                await _open_and_close(eng)
            message = str(info.value)
            assert message.startswith("vector extension is not available on this server")
            assert "install pgvector" in message
            assert "vecalchemy db up" in message
            assert "vector" not in _extensions(admin_url)
        finally:
            if driver == "psycopg":
                eng.dispose()
            else:
                await eng.dispose()


@pytest.mark.parametrize("driver", DRIVERS)
async def test_pgvector_older_than_0_8_is_refused(server_url: URL, driver: str) -> None:
    """A database whose pgvector predates iterative scans (0.8.0) gets ExtensionNotAvailable
    naming its version and the fix, on connect, instead of every search failing on
    set_config('hnsw.iterative_scan'). The embedded server ships 0.8.6 only, so this
    scratch database's catalog records 0.7.4 (what ALTER EXTENSION would read)."""
    with fresh_database(
        server_url,
        "CREATE EXTENSION vector",
        "UPDATE pg_extension SET extversion = '0.7.4' WHERE extname = 'vector'",
    ) as admin_url:
        url = _with_driver(admin_url, driver)
        if driver == "psycopg":
            eng: Any = vecalchemy.create_engine(url)
        else:
            eng = vecalchemy.create_async_engine(url)
        try:
            for _ in range(2):  # refused on every connection, not only the first
                with pytest.raises(ExtensionNotAvailable) as info:
                    await _open_and_close(eng)
                message = str(info.value)
                assert message.startswith("this database has pgvector 0.7.4; vecalchemy needs")
                assert "0.8.0 or later" in message
                assert "ALTER EXTENSION vector UPDATE" in message
        finally:
            if driver == "psycopg":
                eng.dispose()
            else:
                await eng.dispose()


# -- the embedded server restarts under an engine ------------------------------------------


@pytest.mark.slow
async def test_engines_on_the_embedded_server_survive_a_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """vecalchemy.create_engine() with no URL uses the embedded server; after `db down`
    and `db up` on another port (the old one taken meanwhile), the same sync and async
    engines keep working: pooled connections are pinged, new ones find the server."""
    import shutil
    import socket
    import tempfile
    from pathlib import Path

    from vecalchemy.server import DATA_DIR_ENV, EmbeddedServer

    data_dir = Path(tempfile.mkdtemp(prefix="vecalchemy-restart-"))
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    server = EmbeddedServer(data_dir, settings={"fsync": "off"})
    server.start()
    engines: list[Any] = []
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        eng = vecalchemy.create_engine()
        aeng = vecalchemy.create_async_engine(driver="asyncpg")
        engines = [eng, aeng]
        with eng.connect() as c:
            assert c.execute(sa.text("SELECT 1")).scalar() == 1
        async with aeng.connect() as ac:
            assert (await ac.execute(sa.text("SELECT 1"))).scalar() == 1
        old_port = server.status().port
        assert old_port is not None
        server.stop()
        blocker.bind(("127.0.0.1", old_port))
        blocker.listen()
        server.start()
        assert server.status().port != old_port  # the server moved
        for _ in range(3):  # every pooled connection was closed by the restart
            with eng.connect() as c:
                assert c.execute(sa.text("SELECT 1")).scalar() == 1
            async with aeng.connect() as ac:
                assert (await ac.execute(sa.text("SELECT 1"))).scalar() == 1
    finally:
        blocker.close()
        for e in engines:
            if isinstance(e, AsyncEngine):
                await e.dispose()
            else:
                e.dispose()
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
