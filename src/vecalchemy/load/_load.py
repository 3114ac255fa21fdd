"""load() and aload(): a plan checked before any SQL runs, then its steps on one driver.

Private to :mod:`vecalchemy.load`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import (
    AsyncIterable,
    Iterable,
    Mapping,
    Sequence,
)
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vecalchemy._steps import arun_steps, run_steps
from vecalchemy._typing import ConflictMode, IndexMode
from vecalchemy.errors import (
    InvalidArgument,
)
from vecalchemy.load._plan import Plan, check_driver, make_plan
from vecalchemy.load._result import LoadResult
from vecalchemy.load._statements import Outcome, load_steps

__all__ = [
    "aload",
    "load",
]

log = logging.getLogger("vecalchemy.load")


# -- the public functions -------------------------------------------------------------


def load(
    bind: sa.Engine | sa.Connection,
    table: sa.Table | type[Any],
    rows: Iterable[Sequence[Any]] | Mapping[str, Any],
    *,
    columns: Sequence[str] | None = None,
    batch_size: int = 10_000,
    indexes: IndexMode = "keep",
    on_conflict: ConflictMode = "error",
    conflict_columns: Sequence[str] | None = None,
) -> LoadResult:
    """Write ``rows`` into ``table`` with binary COPY and return the number of rows written.

    ``bind`` is an :class:`~sqlalchemy.engine.Engine` or
    :class:`~sqlalchemy.engine.Connection` using the psycopg 3 driver
    (``postgresql+psycopg://``); for an async engine use :func:`aload`. With an engine,
    the load runs in its own transaction and is committed. With a connection, it runs in
    a new transaction that is committed, or, if the connection is already in a
    transaction, inside a SAVEPOINT: the rows are then committed when the caller
    commits, and a failed load leaves the caller's earlier work intact.

    ``table`` is a :class:`~sqlalchemy.Table` or a mapped class. ``rows`` is either

    * an iterable of tuples (any sequences) holding the values of ``columns`` in order;
      ``columns`` defaults to all the table's columns; a generator is streamed batch by
      batch, so memory stays flat however many rows it yields; or
    * a mapping of column name to a sequence of values, all of the same length
      (column-oriented): a 2-D numpy array is the fastest way to pass a vector column.

    Vectors may be lists, numpy arrays or pgvector objects; ``None`` writes NULL. Before
    each batch of ``batch_size`` rows is written, the vectors of every pgvector column
    (``VECTOR``, ``HALFVEC``, ``SPARSEVEC``, ``BIT``) are checked at once: the dimension
    must be the column's, and every value finite (and, for ``halfvec``, within float16
    range). A bad row raises :class:`~vecalchemy.errors.DimensionMismatch` or
    :class:`~vecalchemy.errors.InvalidVector` naming the row (its 0-based position in
    ``rows``) and the column, and nothing is written: the whole load is one transaction
    (or savepoint). Other values are converted by the driver; an error there is the
    driver's.

    ``indexes="defer"`` drops the vector indexes declared on the table (with
    :func:`vecalchemy.Embedding` or :func:`vecalchemy.embedding_column`) that exist,
    loads, then calls :func:`vecalchemy.build_indexes`, all in the load's transaction;
    afterwards every vector index declared on the table exists (declared ones that were
    missing, such as an IVFFlat index ``create_all()`` skipped, are built too), and
    ``result.indexes_rebuilt`` names them. Inserting into an HNSW index gets slow once
    it holds many rows, so this is the fast path for a big load into an indexed table;
    with ``"keep"`` (the default) indexes are left alone and updated row by row. An
    IVFFlat index is trained on the rows present when it is built (``lists`` comes from
    the row count), so it is rebuilt on the old rows plus the new ones, and cannot be
    built on a table left empty (:class:`~vecalchemy.errors.IndexBuildError`). Dropping
    an index locks the table (ACCESS EXCLUSIVE) until the transaction ends: other
    sessions wait to read it while the load and rebuild run.

    ``on_conflict`` says what happens to a row whose key already exists in the table:
    ``"error"`` (the default: PostgreSQL's unique violation, nothing written),
    ``"ignore"`` (the existing row is kept) or ``"update"`` (the existing row's loaded
    columns, other than the key, take the new values; the columns not loaded keep
    theirs). The key is ``conflict_columns``, by default the table's primary key; it
    must be among the loaded columns and match a unique index or constraint of the
    table. For ``"ignore"`` and ``"update"`` the rows are copied into a temporary
    staging table (``ON COMMIT DROP``, dropped at the end of the load), then moved with
    one ``INSERT ... SELECT ... ON CONFLICT``. A key given twice in one load raises
    :class:`~vecalchemy.errors.InvalidRows` naming both rows, and nothing is written
    (rows with a NULL key column never conflict).

    Returns a :class:`LoadResult`: an ``int`` counting the rows inserted, plus the rows
    updated with ``"update"`` (with ``"ignore"``, skipped rows are not counted; see
    ``result.received``), with the time taken and the indexes rebuilt.

    Example::

        from sqlalchemy import BigInteger, Column, MetaData, Table, Text
        from pgvector.sqlalchemy import VECTOR

        docs = Table(
            "docs", MetaData(),
            Column("id", BigInteger, primary_key=True),
            Column("body", Text),
            Column("embedding", VECTOR(3)),
        )
        load(engine, docs, [(1, "first", [0.1, 0.2, 0.3]), (2, "second", [0.4, 0.5, 0.6])])

        # column-oriented, vectors as one float32 array, into an indexed table:
        load(engine, docs, {"id": ids, "body": texts, "embedding": vectors}, indexes="defer")

        # insert new ids, update the vectors of existing ones:
        load(engine, docs, {"id": ids, "embedding": vectors}, on_conflict="update")
    """
    plan = make_plan(
        table,
        rows,
        columns=columns,
        batch_size=batch_size,
        indexes=indexes,
        on_conflict=on_conflict,
        conflict_columns=conflict_columns,
        async_=False,
    )
    started = time.perf_counter()
    if isinstance(bind, sa.Engine):
        check_driver(bind.dialect, plan, async_=False)
        with bind.begin() as conn:
            outcome = _run(conn, plan)
    elif isinstance(bind, sa.Connection):
        check_driver(bind.dialect, plan, async_=False)
        with bind.begin_nested() if bind.in_transaction() else bind.begin():
            outcome = _run(bind, plan)
    elif isinstance(bind, (AsyncEngine, AsyncConnection)):
        raise InvalidArgument(
            f"load() takes a sync Engine or Connection, got an {type(bind).__name__}; "
            "use await aload(...)"
        )
    else:
        raise InvalidArgument(
            f"bind must be a SQLAlchemy Engine or Connection, got {type(bind).__name__}; "
            "for a Session, pass session.connection()"
        )
    return _result(plan, outcome, started)


async def aload(
    bind: AsyncEngine | AsyncConnection,
    table: sa.Table | type[Any],
    rows: Iterable[Sequence[Any]] | AsyncIterable[Sequence[Any]] | Mapping[str, Any],
    *,
    columns: Sequence[str] | None = None,
    batch_size: int = 10_000,
    indexes: IndexMode = "keep",
    on_conflict: ConflictMode = "error",
    conflict_columns: Sequence[str] | None = None,
) -> LoadResult:
    """The async twin of :func:`load`, for psycopg 3 (async) and asyncpg.

    Same arguments, checks, transaction handling, index deferral, upserts and result as
    :func:`load`; ``bind`` is an :class:`~sqlalchemy.ext.asyncio.AsyncEngine` or
    :class:`~sqlalchemy.ext.asyncio.AsyncConnection` (for an ``AsyncSession``, pass
    ``await session.connection()``), and ``rows`` may also be an async iterable (an
    async generator is streamed batch by batch, like a generator).

    With psycopg the rows go through one binary ``COPY`` (``AsyncCursor.copy``), with the
    same encoders as :func:`load`. With asyncpg each batch is written with
    ``copy_records_to_table`` on the underlying asyncpg connection: vectors are checked
    and encoded here, then handed to the pgvector codecs that
    :func:`vecalchemy.create_async_engine` (or :func:`vecalchemy.setup`) registers on
    every pooled connection; an engine without them raises
    :class:`~vecalchemy.errors.ConfigurationError` before any SQL runs. ``json``/``jsonb``
    values are serialised with the engine's ``json_serializer`` as SQLAlchemy would.
    asyncpg remembers the column types of a table it has copied into, per connection:
    DDL run through the engine resets that, but after another process changes a
    column's type, dispose of the engine's pool (``await engine.dispose()``).

    Example::

        engine = vecalchemy.create_async_engine("postgresql+asyncpg://app@db/app")

        async def rows():
            async for batch in fetch_documents():
                for doc in batch:
                    yield doc.id, doc.text, doc.vector

        result = await aload(engine, Doc, rows(), columns=["id", "body", "embedding"])
        print(f"{result:,} rows in {result.seconds:.1f} s")
    """
    plan = make_plan(
        table,
        rows,
        columns=columns,
        batch_size=batch_size,
        indexes=indexes,
        on_conflict=on_conflict,
        conflict_columns=conflict_columns,
        async_=True,
    )
    started = time.perf_counter()
    if isinstance(bind, AsyncEngine):
        check_driver(bind.dialect, plan, async_=True)
        async with bind.begin() as conn:
            outcome = await _arun(conn, plan)
    elif isinstance(bind, AsyncConnection):
        check_driver(bind.dialect, plan, async_=True)
        async with bind.begin_nested() if bind.in_transaction() else bind.begin():
            outcome = await _arun(bind, plan)
    elif isinstance(bind, (sa.Engine, sa.Connection)):
        raise InvalidArgument(
            f"aload() takes an AsyncEngine or AsyncConnection, got a {type(bind).__name__}; "
            "use load(...)"
        )
    else:
        raise InvalidArgument(
            f"bind must be a SQLAlchemy AsyncEngine or AsyncConnection, got "
            f"{type(bind).__name__}; for an AsyncSession, pass await session.connection()"
        )
    return _result(plan, outcome, started)


def _result(plan: Plan, outcome: Outcome, started: float) -> LoadResult:
    seconds = time.perf_counter() - started
    log.info(
        "loaded %s of %s rows into %s in %.2f s (%.0f rows/s)%s",
        outcome.written,
        outcome.received,
        plan.table.name,
        seconds,
        outcome.received / seconds if seconds else 0.0,
        f"; rebuilt {', '.join(outcome.rebuilt)}" if outcome.rebuilt else "",
    )
    return LoadResult(
        outcome.written,
        received=outcome.received,
        seconds=seconds,
        indexes_rebuilt=outcome.rebuilt,
    )


# -- running the statements -----------------------------------------------------------


def _run(conn: sa.Connection, plan: Plan) -> Outcome:
    return run_steps(conn, load_steps(plan, conn.dialect.identifier_preparer))


async def _arun(conn: AsyncConnection, plan: Plan) -> Outcome:
    return await arun_steps(conn, load_steps(plan, conn.dialect.identifier_preparer))
