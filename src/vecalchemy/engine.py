"""Engines that are ready for pgvector: extension created, types registered on every connection.

:func:`create_engine` and :func:`create_async_engine` take a URL, or none: then
``$VECALCHEMY_DATABASE_URL``, then ``$DATABASE_URL``, and otherwise the embedded
PostgreSQL server (started if needed). :func:`setup` does the same work on an engine
you built yourself.

What set-up does, once per pooled connection, for psycopg 3 (sync and async) and
asyncpg:

* makes sure the ``vector`` extension exists in the database (``CREATE EXTENSION IF
  NOT EXISTS vector`` the first time), or raises :class:`ExtensionNotAvailable` saying
  how to fix it;
* registers pgvector's types with the driver, looking them up in the schema the
  extension lives in (which need not be on the ``search_path``), so vectors travel in
  binary and come back as pgvector objects.

Example::

    import vecalchemy

    engine = vecalchemy.create_engine()        # embedded server, or $VECALCHEMY_DATABASE_URL
    aengine = vecalchemy.create_async_engine("postgresql+asyncpg://app@db/app")
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine as sa_create_async_engine

from vecalchemy._catalog import version_tuple
from vecalchemy._sql import REGISTERED_FLAG

if TYPE_CHECKING:
    from vecalchemy.server import EmbeddedServer
from vecalchemy.errors import ConfigurationError, ExtensionNotAvailable

__all__ = [
    "DATABASE_URL_ENV",
    "create_async_engine",
    "create_engine",
    "resolve_url",
    "setup",
]

log = logging.getLogger("vecalchemy.engine")

#: Environment variable naming the database to use (checked before ``DATABASE_URL``).
DATABASE_URL_ENV = "VECALCHEMY_DATABASE_URL"

_SUPPORTED = ("psycopg", "psycopg_async", "asyncpg")
_STATE_KEY = "vecalchemy_ready"

E = TypeVar("E", Engine, AsyncEngine)


def resolve_url(
    url: str | URL | None = None, *, async_: bool = False, driver: str | None = None
) -> URL:
    """The database URL to use, normalised to a driver vecalchemy supports.

    Order: ``url``, ``$VECALCHEMY_DATABASE_URL``, ``$DATABASE_URL``, then the embedded
    server (started if needed). ``postgres://`` and ``postgresql://`` mean psycopg 3;
    ``driver="asyncpg"`` (or ``"psycopg"``) picks the driver whatever the URL says.

    Example::

        >>> str(resolve_url("postgres://app@db:5432/app"))
        'postgresql+psycopg://app@db:5432/app'
    """
    return _resolve(url, async_=async_, driver=driver)[0]


def _resolve(
    url: str | URL | None, *, async_: bool = False, driver: str | None = None
) -> tuple[URL, EmbeddedServer | None]:
    """The URL, and the embedded server it points to when none was configured."""
    raw: str | URL | None = url
    server: EmbeddedServer | None = None
    if raw is None:
        raw = os.environ.get(DATABASE_URL_ENV) or os.environ.get("DATABASE_URL") or None
    if raw is None:
        from vecalchemy.server import EmbeddedServer

        server = EmbeddedServer()
        server.start()
        raw = server.url(driver="psycopg")
    try:
        parsed = make_url(raw)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"cannot parse database URL {str(raw)!r}; expected "
            "postgresql+psycopg://user:password@host:port/dbname"
        ) from exc
    backend, _, url_driver = parsed.drivername.partition("+")
    driver = driver or url_driver
    if backend == "postgres":
        backend = "postgresql"
    if backend != "postgresql":
        raise ConfigurationError(
            f"vecalchemy needs PostgreSQL with pgvector, got a {backend!r} URL; use "
            "postgresql+psycopg://... or postgresql+asyncpg://..."
        )
    if not driver:
        driver = "psycopg"
    if driver not in ("psycopg", "psycopg_async", "asyncpg"):
        raise ConfigurationError(
            f"driver {driver!r} is not supported; use postgresql+psycopg:// (sync or async) or "
            "postgresql+asyncpg:// (async)"
        )
    if driver == "psycopg_async" and not async_:
        driver = "psycopg"  # one package, both modes; a sync engine needs the sync dialect
    if driver == "asyncpg" and not async_:
        raise ConfigurationError(
            "asyncpg is async-only; use vecalchemy.create_async_engine(), or "
            "postgresql+psycopg:// for a sync engine"
        )
    return parsed.set(drivername=f"postgresql+{driver}"), server


def _follow(engine: Engine, server: EmbeddedServer) -> None:
    """Connect every new connection to where the embedded server is now.

    ``vecalchemy db down && vecalchemy db up`` may move the server to another port (when
    its old one was taken meanwhile); the URL the engine was made with would then point
    nowhere. The server's socket, port and password are read from its data directory
    on each new connection (a file read, no process started), and ``pool_pre_ping``
    replaces the connections the restart closed.
    """

    def where_now(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        cparams.update(server.connect_args())

    event.listen(engine, "do_connect", where_now)


def create_engine(url: str | URL | None = None, *, driver: str | None = None, **kw: Any) -> Engine:
    """A SQLAlchemy ``Engine`` set up for pgvector (see :func:`setup`).

    ``url`` defaults as described in :func:`resolve_url`; other keyword arguments go to
    :func:`sqlalchemy.create_engine`. An engine on the embedded server (no URL
    configured) survives restarts of the server: it pings pooled connections before use
    and connects new ones wherever the server listens now.

    Example::

        engine = vecalchemy.create_engine()
        with Session(engine) as session:
            hits = vecalchemy.search(session, Doc.embedding, q, k=5)
    """
    resolved, server = _resolve(url, driver=driver)
    if server is not None:
        kw.setdefault("pool_pre_ping", True)
    engine = sa.create_engine(resolved, **kw)
    if server is not None:
        _follow(engine, server)
    return setup(engine)


def create_async_engine(
    url: str | URL | None = None, *, driver: str | None = None, **kw: Any
) -> AsyncEngine:
    """An ``AsyncEngine`` set up for pgvector; psycopg 3 (async) or asyncpg.

    ``driver="asyncpg"`` uses asyncpg with the configured (or embedded) server; on the
    embedded server it survives restarts as :func:`create_engine` does.

    Example::

        engine = vecalchemy.create_async_engine("postgresql+asyncpg://app@localhost/app")
        engine = vecalchemy.create_async_engine(driver="asyncpg")   # default server
        async with AsyncSession(engine) as session:
            hits = await vecalchemy.asearch(session, Doc.embedding, q, k=5)
    """
    resolved, server = _resolve(url, async_=True, driver=driver)
    if server is not None:
        kw.setdefault("pool_pre_ping", True)
    engine = sa_create_async_engine(resolved, **kw)
    if server is not None:
        _follow(engine.sync_engine, server)
    return setup(engine)


def setup(engine: E) -> E:
    """Prepare an engine you built yourself for pgvector, and return it.

    Adds pool listeners that, on every new (or not yet prepared) pooled connection,
    ensure the ``vector`` extension exists (once per engine) and register pgvector's
    types with the driver. Idempotent.

    Example::

        engine = sqlalchemy.create_engine("postgresql+psycopg://app@db/app", pool_size=20)
        vecalchemy.setup(engine)
    """
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    driver = sync_engine.dialect.driver
    if driver == "psycopg" and sync_engine.dialect.is_async:
        driver = "psycopg_async"  # SQLAlchemy 2.1 names both psycopg dialects "psycopg"
    if sync_engine.dialect.name != "postgresql" or driver not in _SUPPORTED:
        raise ConfigurationError(
            f"vecalchemy supports postgresql with psycopg 3 or asyncpg, not "
            f"{sync_engine.dialect.name}+{driver}"
        )
    if getattr(sync_engine, "_vecalchemy_setup", False):
        return engine
    ready = _ExtensionCheck()

    def prepare(dbapi_connection: Any, record: Any) -> None:
        if record.info.get(_STATE_KEY):
            return
        schema = ready.ensure(dbapi_connection)
        _register_types(driver, dbapi_connection, schema)
        record.info[_STATE_KEY] = True

    event.listen(sync_engine, "connect", prepare)
    # A connection pooled before setup() ran is prepared when it is next checked out.
    event.listen(sync_engine, "checkout", lambda conn, record, proxy: prepare(conn, record))
    setattr(sync_engine.dialect, REGISTERED_FLAG, True)
    sync_engine._vecalchemy_setup = True  # type: ignore[attr-defined]
    return engine


class _ExtensionCheck:
    """Ensure the extension exists, once per engine; remember the schema it is in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._schema: str | None = None

    def ensure(self, dbapi_connection: Any) -> str:
        with self._lock:
            if self._schema is None:
                self._schema = _ensure_extension(dbapi_connection)
            return self._schema


_SCHEMA_SQL = (
    "SELECT n.nspname, e.extversion FROM pg_extension e "
    "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
)

#: The oldest pgvector vecalchemy runs on: iterative index scans (hnsw.iterative_scan,
#: hnsw.max_scan_tuples, ivfflat.max_probes) arrived in 0.8.0.
MIN_PGVECTOR = (0, 8, 0)


def _check_version(version: str) -> None:
    """Raise :class:`ExtensionNotAvailable` for a pgvector older than :data:`MIN_PGVECTOR`."""
    if version_tuple(version) < MIN_PGVECTOR:
        wanted = ".".join(map(str, MIN_PGVECTOR))
        raise ExtensionNotAvailable(
            f"this database has pgvector {version}; vecalchemy needs {wanted} or later "
            "(its searches use iterative index scans). Install a newer pgvector on the "
            "server, then run: ALTER EXTENSION vector UPDATE;"
        )


def _ensure_extension(dbapi_connection: Any) -> str:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(_SCHEMA_SQL)
        row = cursor.fetchone()
        if row is None:
            cursor.execute(
                "SELECT current_database(), "
                "(SELECT default_version FROM pg_available_extensions WHERE name = 'vector')"
            )
            database, available = cursor.fetchone()
            if available is None:
                dbapi_connection.rollback()
                raise ExtensionNotAvailable(
                    "vector extension is not available on this server; install pgvector "
                    "(https://github.com/pgvector/pgvector#installation) or use the embedded "
                    "server (vecalchemy db up, and leave VECALCHEMY_DATABASE_URL unset)"
                )
            try:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except Exception as exc:
                dbapi_connection.rollback()
                raise ExtensionNotAvailable(
                    f"the vector extension is installed on this server but not created in "
                    f"database {database!r}, and this user may not create it ({exc}); ask an "
                    f"administrator to run: CREATE EXTENSION vector; in {database!r}"
                ) from exc
            log.info("created extension vector %s in database %s", available, database)
            cursor.execute(_SCHEMA_SQL)
            row = cursor.fetchone()
        dbapi_connection.commit()
    finally:
        cursor.close()
    _check_version(str(row[1]))
    return str(row[0])


def _register_types(driver: str, dbapi_connection: Any, schema: str) -> None:
    if driver == "psycopg":
        _register_psycopg(dbapi_connection, schema)
    elif driver == "psycopg_async":
        dbapi_connection.run_async(lambda conn: _register_psycopg_async(conn, schema))
    else:
        dbapi_connection.run_async(lambda conn: _register_asyncpg(conn, schema))


async def _register_asyncpg(conn: Any, schema: str) -> None:
    """Binary codecs for asyncpg that also accept text.

    pgvector-python's asyncpg codecs take only lists, arrays and pgvector objects, but
    SQLAlchemy's pgvector column types turn values into text before the driver sees
    them (pgvector-python#114); these encoders take both, so ORM writes work too.
    """
    from pgvector import HalfVector, SparseVector, Vector

    for name, cls in (("vector", Vector), ("halfvec", HalfVector), ("sparsevec", SparseVector)):
        await conn.set_type_codec(
            name,
            schema=schema,
            encoder=_binary_encoder(cls),
            decoder=cls.from_binary,
            format="binary",
        )


def _binary_encoder(cls: Any) -> Any:
    def encode(value: Any) -> bytes:
        if isinstance(value, cls):
            return bytes(value.to_binary())
        if isinstance(value, str):
            return bytes(cls.from_text(value).to_binary())
        return bytes(cls(value).to_binary())

    return encode


def _psycopg_names(schema: str) -> list[tuple[str, Any]]:
    # bit is a core type (pg_catalog); the others live in the extension's schema, which
    # need not be on the search_path (hosted servers often use an "extensions" schema).
    from psycopg import sql

    return [
        ("vector", sql.Identifier(schema, "vector")),
        ("halfvec", sql.Identifier(schema, "halfvec")),
        ("sparsevec", sql.Identifier(schema, "sparsevec")),
        ("bit", "bit"),
    ]


def _register_psycopg(conn: Any, schema: str) -> None:
    from psycopg.types import TypeInfo

    infos = [(kind, TypeInfo.fetch(conn, name)) for kind, name in _psycopg_names(schema)]
    _install_psycopg(conn, infos)
    if conn.info.transaction_status != 0:  # TypeInfo.fetch may leave a transaction open
        conn.rollback()


async def _register_psycopg_async(conn: Any, schema: str) -> None:
    from psycopg.types import TypeInfo

    infos = [(kind, await TypeInfo.fetch(conn, name)) for kind, name in _psycopg_names(schema)]
    _install_psycopg(conn, infos)
    if conn.info.transaction_status != 0:
        await conn.rollback()


def _install_psycopg(conn: Any, infos: list[tuple[str, Any]]) -> None:
    from pgvector.psycopg.bit import register_bit_info
    from pgvector.psycopg.halfvec import register_halfvec_info
    from pgvector.psycopg.sparsevec import register_sparsevec_info
    from pgvector.psycopg.vector import register_vector_info

    registrars = {
        "vector": register_vector_info,
        "halfvec": register_halfvec_info,
        "sparsevec": register_sparsevec_info,
        "bit": register_bit_info,
    }
    for kind, info in infos:
        if info is not None:
            registrars[kind](conn, info)
