"""Bulk loading with PostgreSQL's binary COPY, vectors checked before anything is written.

:func:`load` (psycopg 3) and :func:`aload` (psycopg 3 async, or asyncpg) stream rows
into a table with ``COPY ... FROM STDIN (FORMAT BINARY)``: the fastest way to fill a
table (100,000 rows of 384-dimension float32 vectors: about 90,000 to 130,000 rows/s on a
2-core machine with any of the three drivers, most of the time spent in the server;
a batched ``INSERT`` managed 3,700 rows/s). Every vector is checked (its dimension, that
each value is finite) batch by batch before the batch is written, and a load runs in one
transaction, or in a SAVEPOINT of the caller's, so a bad row anywhere leaves the table
as it was.

Two options make big loads into live tables fast and safe:

* ``indexes="defer"`` drops the table's vector indexes, loads, and rebuilds them in the
  same transaction (inserting into an HNSW index row by row is much slower than
  building it once);
* ``on_conflict="ignore"`` or ``"update"`` upserts: the rows are copied into a temporary
  staging table, then moved with one ``INSERT ... SELECT ... ON CONFLICT``.

Validation, batching and the statements a load runs are written once; the three
drivers differ only in how a statement is executed and how a batch is written.

Example::

    import numpy as np
    from vecalchemy.load import aload, load

    vectors = np.random.default_rng(0).random((100_000, 384), dtype=np.float32)
    n = load(engine, Doc, {"id": range(100_000), "embedding": vectors})
    n = await aload(async_engine, Doc, {"id": ids, "embedding": vectors}, on_conflict="update")
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import struct
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import psycopg
import sqlalchemy as sa
from pgvector import Bit, HalfVector, SparseVector, Vector
from pgvector.sqlalchemy import BIT, HALFVEC, SPARSEVEC, VECTOR
from psycopg import sql
from psycopg.abc import Buffer
from psycopg.adapt import Dumper
from psycopg.pq import Format
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.compiler import IdentifierPreparer

from vecalchemy.errors import (
    ConfigurationError,
    DimensionMismatch,
    InvalidArgument,
    InvalidRows,
    InvalidVector,
)
from vecalchemy.indexes import IndexResult, build_indexes, drop_indexes
from vecalchemy.metrics import INDEX_DIM_LIMITS, Storage
from vecalchemy.query import REGISTERED_FLAG
from vecalchemy.schema import INFO_KEY, VectorSpec
from vecalchemy.vectors import check_sparse

__all__ = ["ConflictMode", "IndexMode", "LoadResult", "aload", "load"]

log = logging.getLogger("vecalchemy.load")

#: What a load does with the table's vector indexes: ``"keep"`` them, or ``"defer"``.
IndexMode = Literal["keep", "defer"]
#: What a load does with a row whose key exists: raise (``"error"``), ``"ignore"`` the
#: row, or ``"update"`` the existing one.
ConflictMode = Literal["error", "ignore", "update"]

_TEXT_OID = 25
_MAX_DIM = 16_000  # pgvector's limit for vector, halfvec and sparsevec
_HALF_MAX = 65504.0  # the largest finite float16
_PG_IDENTIFIER_MAX = 63
_ROW_COLUMN = "vecalchemy_row"  # the staging table's 0-based input position

_Kind = Literal["vector", "halfvec", "sparsevec", "bit"]
#: (index of the batch's first row in the input, the batch's values column by column)
_Batch = tuple[int, list[Sequence[Any]]]


class LoadResult(int):
    """The number of rows a load wrote, which also tells how long it took and what it rebuilt.

    It is an ``int`` (the rows inserted, plus the rows updated with
    ``on_conflict="update"``), so code that used the count keeps working; it compares,
    formats and adds up as that int. Read-only attributes:

    * ``rows``: the same count, as a plain int;
    * ``received``: the rows read from the input (``received - rows`` rows were skipped
      by ``on_conflict="ignore"``);
    * ``seconds``: the wall time of the whole load, index rebuilds included;
    * ``indexes_rebuilt``: the names of the vector indexes built after the load
      (``indexes="defer"``), in the order they were built.

    Example::

        result = load(engine, Doc, rows, indexes="defer")
        print(f"{result:,} rows in {result.seconds:.1f} s")   # 100,000 rows in 2.1 s
        result.indexes_rebuilt                                # ['ix_docs_embedding_hnsw']
    """

    _received: int
    _seconds: float
    _indexes_rebuilt: tuple[str, ...]

    def __new__(
        cls,
        rows: int = 0,
        *,
        received: int | None = None,
        seconds: float = 0.0,
        indexes_rebuilt: Sequence[str] = (),
    ) -> LoadResult:
        self = super().__new__(cls, rows)
        self._received = int(rows) if received is None else received
        self._seconds = seconds
        self._indexes_rebuilt = tuple(indexes_rebuilt)
        return self

    @property
    def rows(self) -> int:
        """The rows inserted or updated, as a plain ``int``."""
        return int(self)

    @property
    def received(self) -> int:
        """The rows read from the input."""
        return self._received

    @property
    def seconds(self) -> float:
        """The wall time of the load, in seconds."""
        return self._seconds

    @property
    def indexes_rebuilt(self) -> list[str]:
        """The vector indexes built after the load (``indexes="defer"``)."""
        return list(self._indexes_rebuilt)

    def __repr__(self) -> str:
        return (
            f"LoadResult(rows={int(self)}, received={self._received}, "
            f"seconds={self._seconds:.3f}, indexes_rebuilt={list(self._indexes_rebuilt)})"
        )

    def __str__(self) -> str:
        return int.__repr__(self)  # as the int it is: f"{result}" prints the count

    def __getnewargs_ex__(self) -> tuple[tuple[int], dict[str, Any]]:
        return (int(self),), {
            "received": self._received,
            "seconds": self._seconds,
            "indexes_rebuilt": self._indexes_rebuilt,
        }


@dataclass(frozen=True)
class _VectorColumn:
    """A pgvector column as declared in the SQLAlchemy table, checked against the server."""

    label: str  # "docs.embedding", for messages
    kind: _Kind
    dim: int | None
    #: The most non-zero elements a row may have: 1,000 for a sparsevec column declared
    #: with a vector index (pgvector's HNSW limit), else None.
    max_nnz: int | None = None

    def describe(self) -> str:
        return self.kind if self.dim is None else f"{self.kind}({self.dim})"


@dataclass(frozen=True)
class _ColumnType:
    """How the values of one loaded column are checked and sent, from the server's catalog."""

    name: str
    oid: int  # the type binary COPY sends the values as (psycopg)
    typname: str  # the type's name, or its base type's for a domain ("jsonb")
    vector: _VectorColumn | None  # the checks for a pgvector column


class _EncodedDumper(Dumper):
    """Passes on values already in PostgreSQL's binary format (vectors encoded per batch)."""

    format = Format.BINARY

    def dump(self, obj: Any) -> Buffer:
        encoded: bytes = obj
        return encoded


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
    plan = _plan(
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
        _check_driver(bind.dialect, plan, async_=False)
        with bind.begin() as conn:
            outcome = _run(conn, plan)
    elif isinstance(bind, sa.Connection):
        _check_driver(bind.dialect, plan, async_=False)
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
    plan = _plan(
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
        _check_driver(bind.dialect, plan, async_=True)
        async with bind.begin() as conn:
            outcome = await _arun(conn, plan)
    elif isinstance(bind, AsyncConnection):
        _check_driver(bind.dialect, plan, async_=True)
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


def _result(plan: _Plan, outcome: _Outcome, started: float) -> LoadResult:
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


# -- the plan: everything checked before any SQL runs ---------------------------------


@dataclass(frozen=True)
class _Plan:
    table: sa.Table
    columns: list[sa.Column[Any]]
    batches: Iterator[_Batch] | AsyncGenerator[_Batch, None]
    indexes: IndexMode
    on_conflict: ConflictMode
    conflict: tuple[str, ...]  # the conflict columns, for "ignore" and "update"


def _plan(
    table: object,
    rows: object,
    *,
    columns: Sequence[str] | None,
    batch_size: int,
    indexes: IndexMode,
    on_conflict: ConflictMode,
    conflict_columns: Sequence[str] | None,
    async_: bool,
) -> _Plan:
    tbl = _as_table(table)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidRows(f"batch_size must be a positive integer, got {batch_size!r}")
    if indexes not in ("keep", "defer"):
        raise InvalidRows(f"indexes must be 'keep' or 'defer', got {indexes!r}")
    if on_conflict not in ("error", "ignore", "update"):
        raise InvalidRows(f"on_conflict must be 'error', 'ignore' or 'update', got {on_conflict!r}")

    batches: Iterator[_Batch] | AsyncGenerator[_Batch, None]
    if isinstance(rows, Mapping):
        if columns is not None:
            raise InvalidRows(
                "columns= is for rows given as tuples; a dict of columns names its own columns"
            )
        names = list(rows)
        cols = [_column(tbl, name) for name in names]
        batches = _column_batches(rows, names, batch_size)
    elif isinstance(rows, AsyncIterable):
        if not async_:
            raise InvalidArgument("rows is an async iterable; load it with await aload(...)")
        cols = list(tbl.columns) if columns is None else [_column(tbl, c) for c in columns]
        batches = _arow_batches(rows, len(cols), batch_size, explicit=columns is not None)
    elif isinstance(rows, Iterable) and not isinstance(rows, (str, bytes)):
        cols = list(tbl.columns) if columns is None else [_column(tbl, c) for c in columns]
        batches = _row_batches(rows, len(cols), batch_size, explicit=columns is not None)
    else:
        raise InvalidArgument("rows must be an iterable of tuples or a dict of columns")
    if not cols:
        raise InvalidRows("no columns to load; pass columns=[...] or a non-empty dict")
    if len({c.name for c in cols}) != len(cols):
        raise InvalidRows(f"a column is named twice in {[c.name for c in cols]}")
    conflict = _conflict_columns(tbl, cols, on_conflict, conflict_columns)
    return _Plan(tbl, cols, batches, indexes, on_conflict, conflict)


def _conflict_columns(
    tbl: sa.Table,
    cols: list[sa.Column[Any]],
    on_conflict: str,
    conflict_columns: Sequence[str] | None,
) -> tuple[str, ...]:
    if on_conflict == "error":
        if conflict_columns is not None:
            raise InvalidRows(
                "conflict_columns= goes with on_conflict='ignore' or 'update'; with "
                "on_conflict='error' a conflicting row fails the load"
            )
        return ()
    if conflict_columns is None:
        keys = [c.name for c in tbl.primary_key.columns]
        if not keys:
            raise InvalidRows(
                f"table {tbl.name!r} has no primary key to detect conflicts with; pass "
                "conflict_columns=[...] naming columns with a unique index"
            )
    else:
        if isinstance(conflict_columns, str):
            raise InvalidRows(
                f"conflict_columns must be a list of column names, got the string "
                f"{conflict_columns!r}; write conflict_columns=[{conflict_columns!r}]"
            )
        keys = [_column(tbl, name).name for name in conflict_columns]
        if not keys:
            raise InvalidRows("conflict_columns is empty; name the columns of a unique key")
        if len(set(keys)) != len(keys):
            raise InvalidRows(f"a column is named twice in conflict_columns={keys}")
    loaded = [c.name for c in cols]
    missing = [k for k in keys if k not in loaded]
    if missing:
        raise InvalidRows(
            f"conflict column(s) {missing} are not among the loaded columns {loaded}; load "
            "them too: they decide which rows already exist"
        )
    if on_conflict == "update" and set(loaded) <= set(keys):
        raise InvalidRows(
            "on_conflict='update' has nothing to update: every loaded column is a conflict "
            "column; load other columns too, or use on_conflict='ignore'"
        )
    return tuple(keys)


def _check_driver(dialect: sa.Dialect, plan: _Plan, *, async_: bool) -> None:
    driver = dialect.driver
    if driver == "psycopg" and dialect.is_async:
        driver = "psycopg_async"  # SQLAlchemy 2.1 names both psycopg dialects "psycopg"
    if dialect.name != "postgresql" or (
        driver not in ("psycopg_async", "asyncpg") if async_ else driver != "psycopg"
    ):
        wanted = (
            "the psycopg 3 (async) or asyncpg driver; use a postgresql+psycopg:// or "
            "postgresql+asyncpg:// URL"
            if async_
            else "the psycopg 3 sync driver; use a postgresql+psycopg:// URL"
        )
        raise ConfigurationError(
            f"{'aload' if async_ else 'load'}() needs PostgreSQL through {wanted}, not "
            f"{dialect.name}+{driver}"
        )
    if driver == "asyncpg" and not getattr(dialect, REGISTERED_FLAG, False):
        needs = [
            spec.label
            for spec in map(_vector_column, plan.columns)
            if spec is not None and spec.kind != "bit"
        ]
        if needs:
            raise ConfigurationError(
                f"asyncpg has no codec for {', '.join(needs)} on this engine; create it with "
                "vecalchemy.create_async_engine() or call vecalchemy.setup(engine), which "
                "register pgvector's types on every pooled connection"
            )


# -- resolving the table --------------------------------------------------------------


def _as_table(table: object) -> sa.Table:
    if isinstance(table, sa.Table):
        return table
    try:
        mapper = sa.inspect(table)
    except sa.exc.NoInspectionAvailable:
        mapper = None
    local = getattr(mapper, "local_table", None)
    if isinstance(local, sa.Table):
        return local
    raise InvalidArgument(f"table must be a sqlalchemy Table or a mapped class, got {table!r}")


def _column(tbl: sa.Table, name: str) -> sa.Column[Any]:
    if name in tbl.c:
        return tbl.c[name]
    for column in tbl.c:
        if column.name == name:
            return column
    raise InvalidRows(
        f"table {tbl.name!r} has no column {name!r}; its columns are {[c.name for c in tbl.c]}"
    )


def _vector_column(column: sa.Column[Any]) -> _VectorColumn | None:
    kind: _Kind
    type_ = column.type
    if isinstance(type_, VECTOR):
        kind, dim = "vector", type_.dim
    elif isinstance(type_, HALFVEC):
        kind, dim = "halfvec", type_.dim
    elif isinstance(type_, SPARSEVEC):
        kind, dim = "sparsevec", type_.dim
    elif isinstance(type_, BIT):
        kind, dim = "bit", getattr(type_.impl, "length", None)
    else:
        return None
    table = column.table.name if isinstance(column.table, sa.Table) else "?"
    declared = column.info.get(INFO_KEY)
    max_nnz = None
    if kind == "sparsevec" and isinstance(declared, VectorSpec) and declared.index is not None:
        # Known from the declaration: without this check the row fails in the server
        # with an error that names neither the row nor the column.
        max_nnz = INDEX_DIM_LIMITS[Storage.SPARSEVEC]
    return _VectorColumn(f"{table}.{column.name}", kind, dim, max_nnz)


_CATALOG_SQL = """
SELECT a.attname, a.attnum, t.oid, t.typname, t.typtype, t.typbasetype, t.typcategory,
       a.atttypmod, b.typname
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type b ON b.oid = t.typbasetype
WHERE a.attrelid = to_regclass(CAST(:table AS text)) AND a.attnum > 0 AND NOT a.attisdropped
"""

# The unique keys ON CONFLICT can use as its arbiter: immediate, not partial, no expressions.
_UNIQUE_SQL = """
SELECT CAST(i.indkey AS int2[]), i.indnkeyatts
FROM pg_index i
WHERE i.indrelid = to_regclass(CAST(:table AS text)) AND i.indisunique AND i.indimmediate
  AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
"""


def _column_types(
    catalog: Sequence[Any], tbl: sa.Table, cols: list[sa.Column[Any]]
) -> tuple[list[_ColumnType], dict[int, str]]:
    """How each column's values are sent and checked; and the table's columns by attnum.

    Binary COPY applies no casts: every value must be in the exact binary format of the
    column's type, so the types come from the server's catalog, not the table metadata.
    """
    if not catalog:
        raise ConfigurationError(
            f"table {tbl.name!r} does not exist in the database; create it first "
            "(metadata.create_all(engine), or a migration)"
        )
    by_name = {row[0]: tuple(row[1:]) for row in catalog}
    attnames = {int(row[1]): str(row[0]) for row in catalog}
    out: list[_ColumnType] = []
    for column in cols:
        if column.name not in by_name:
            raise ConfigurationError(
                f"column {column.name!r} of table {tbl.name!r} does not exist in the "
                "database; create or migrate the table first"
            )
        _, oid, typname, typtype, basetype, category, typmod, basename = by_name[column.name]
        if typtype == "d":  # a domain is sent as its base type
            oid, typname = basetype, basename
        elif typtype == "e" or (category == "S" and typname not in ("text", "varchar", "name")):
            oid = _TEXT_OID  # enums, char(n), citext: same binary format as text
        spec = _vector_column(column)
        if spec is not None:
            server_dim = typmod if typmod > 0 else None
            if typname != spec.kind or (spec.dim is not None and spec.dim != server_dim):
                found = typname if server_dim is None else f"{typname}({server_dim})"
                raise ConfigurationError(
                    f"column {spec.label} is {spec.describe()} in the table metadata but "
                    f"{found} in the database; migrate the table or fix the model"
                )
            if spec.dim is None and server_dim is not None:
                spec = replace(spec, dim=server_dim)
        out.append(_ColumnType(column.name, int(oid), str(typname), spec))
    return out, attnames


def _check_arbiter(
    uniques: Sequence[Any], attnames: dict[int, str], tbl: sa.Table, keys: tuple[str, ...]
) -> None:
    """Raise unless a unique index or constraint of the table is exactly on ``keys``."""
    found = [
        tuple(attnames.get(int(n), "?") for n in list(indkey)[: int(nkey)])
        for indkey, nkey in uniques
    ]
    if any(set(key) == set(keys) for key in found):
        return
    have = ", ".join(f"({', '.join(key)})" for key in sorted(found)) or "none"
    raise ConfigurationError(
        f"on_conflict needs a unique index or constraint on ({', '.join(keys)}) of table "
        f"{tbl.name!r}, and there is none (its unique keys: {have}); create one, or pass "
        "conflict_columns= naming one of those keys"
    )


# -- the statements a load runs, written once for every driver ------------------------


@dataclass(frozen=True)
class _Sql:
    """Execute a statement; the runner sends back its result."""

    statement: sa.TextClause
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Indexes:
    """Drop (or build) the table's vector indexes; the runner sends back the IndexResults."""

    drop: bool


@dataclass(frozen=True)
class _Copy:
    """COPY every batch into a table; the runner sends back the number of rows."""

    schema: str | None
    name: str
    columns: list[_ColumnType]


_Step = _Sql | _Indexes | _Copy


@dataclass(frozen=True)
class _Outcome:
    received: int
    written: int
    rebuilt: tuple[str, ...]


def _steps(plan: _Plan, preparer: IdentifierPreparer) -> Generator[_Step, Any, _Outcome]:
    """The statements one load runs, in order; the runner sends back each result.

    Written once for :func:`load` and :func:`aload`, whose runners only differ in how
    they execute a statement and write the batches.
    """
    tbl = plan.table
    regclass = preparer.format_table(tbl)
    catalog = (yield _Sql(sa.text(_CATALOG_SQL), {"table": regclass})).all()
    types, attnames = _column_types(catalog, tbl, plan.columns)
    if plan.conflict:
        uniques = (yield _Sql(sa.text(_UNIQUE_SQL), {"table": regclass})).all()
        _check_arbiter(uniques, attnames, tbl, plan.conflict)
    if plan.indexes == "defer":
        dropped: list[IndexResult] = yield _Indexes(drop=True)
        log.info("dropped %s before loading", [r.name for r in dropped if r.action == "dropped"])
    if plan.conflict:
        received, written = yield from _upsert(plan, preparer, types)
    else:
        received = written = yield _Copy(tbl.schema, tbl.name, types)
    rebuilt: tuple[str, ...] = ()
    if plan.indexes == "defer":
        built: list[IndexResult] = yield _Indexes(drop=False)
        rebuilt = tuple(r.name for r in built if r.action == "built")
    return _Outcome(received, written, rebuilt)


def _upsert(
    plan: _Plan, preparer: IdentifierPreparer, types: list[_ColumnType]
) -> Generator[_Step, Any, tuple[int, int]]:
    """COPY into a staging table, refuse duplicate keys, then INSERT ... ON CONFLICT."""

    def q(name: str) -> str:
        # text() reads ":name" as a bind parameter; "\:" is a literal colon.
        return preparer.quote(name).replace(":", "\\:")

    staging = _staging_name(plan.table, types)
    target = preparer.format_table(plan.table).replace(":", "\\:")
    stg, row = q(staging), q(_ROW_COLUMN)
    names = [c.name for c in plan.columns]
    cols = ", ".join(q(n) for n in names)
    keys = ", ".join(q(k) for k in plan.conflict)

    # Only the loaded columns, without constraints: a NOT NULL column that is not
    # loaded must not fail the COPY, and every staging column gets a value anyway.
    yield _Sql(
        sa.text(
            f"CREATE TEMPORARY TABLE {stg} ON COMMIT DROP AS "
            f"SELECT {cols} FROM {target} WITH NO DATA"
        )
    )
    # COPY fills the identity in input order: the 0-based position of each row.
    yield _Sql(
        sa.text(
            f"ALTER TABLE {stg} ADD COLUMN {row} bigint "
            "GENERATED ALWAYS AS IDENTITY (MINVALUE 0 START WITH 0)"
        )
    )
    received: int = yield _Copy(None, staging, types)
    present = " AND ".join(f"{q(k)} IS NOT NULL" for k in plan.conflict)
    duplicate = (
        yield _Sql(
            sa.text(
                f"SELECT (array_agg({row} ORDER BY {row}))[1:6], count(*), {keys} "
                f"FROM {stg} WHERE {present} GROUP BY {keys} HAVING count(*) > 1 "
                f"ORDER BY min({row}) LIMIT 1"
            )
        )
    ).first()
    if duplicate is not None:
        raise InvalidRows(_duplicate_message(plan, duplicate))
    if plan.on_conflict == "ignore":
        action = "NOTHING"
    else:
        updates = [f"{q(n)} = EXCLUDED.{q(n)}" for n in names if n not in plan.conflict]
        action = f"UPDATE SET {', '.join(updates)}"
    inserted = yield _Sql(
        sa.text(
            f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stg} "
            f"ON CONFLICT ({keys}) DO {action}"
        )
    )
    written = int(inserted.rowcount)
    yield _Sql(sa.text(f"DROP TABLE {stg}"))
    return received, written


def _staging_name(tbl: sa.Table, types: list[_ColumnType]) -> str:
    """A temporary table name that changes whenever the loaded columns or their types do.

    asyncpg caches the codecs of ``copy_records_to_table`` by table name and columns: a
    name reused for other column types would be sent with the wrong encoders.
    """
    shape = repr((tbl.schema, tbl.name, [(c.name, c.oid, c.vector) for c in types]))
    digest = hashlib.sha1(shape.encode()).hexdigest()[:10]
    prefix = f"vecalchemy_load_{tbl.name}"[: _PG_IDENTIFIER_MAX - 11]
    return f"{prefix}_{digest}"


def _duplicate_message(plan: _Plan, duplicate: Any) -> str:
    positions = [int(p) for p in duplicate[0]]
    times = int(duplicate[1])
    key = ", ".join(plan.conflict)
    values = ", ".join(_short(v) for v in duplicate[2:])
    shown = [str(p) for p in positions[:5]]
    rows = ", ".join(shown[:-1]) + f" and {shown[-1]}"
    if times > len(shown):
        rows = ", ".join(shown) + f" and {times - len(shown)} more"
    return (
        f"rows {rows} have the same key ({key})=({values}); on_conflict="
        f"{plan.on_conflict!r} takes each key at most once per load: remove the duplicates "
        "from the input; nothing was loaded"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- batching -------------------------------------------------------------------------


def _batch_columns(
    batch: list[Sequence[Any]], start: int, width: int, *, explicit: bool
) -> list[Sequence[Any]]:
    """A batch of row tuples as columns, after checking that each row has ``width`` values."""
    for i, row in enumerate(batch):
        if isinstance(row, (str, bytes, Mapping)) or len(row) != width:
            got = (
                f"a {type(row).__name__}"
                if isinstance(row, (str, bytes, Mapping))
                else f"{len(row)} values"
            )
            hint = "" if explicit else "; name the columns you give with columns=[...]"
            raise InvalidRows(f"row {start + i} has {got}, expected {width}{hint}")
    return list(zip(*batch, strict=True))


def _row_batches(
    rows: Iterable[Sequence[Any]], width: int, batch_size: int, *, explicit: bool
) -> Iterator[_Batch]:
    """(first row's index, the batch's columns) for each batch of row tuples."""
    it = iter(rows)
    start = 0
    while batch := list(itertools.islice(it, batch_size)):
        yield start, _batch_columns(batch, start, width, explicit=explicit)
        start += len(batch)


async def _arow_batches(
    rows: AsyncIterable[Sequence[Any]], width: int, batch_size: int, *, explicit: bool
) -> AsyncGenerator[_Batch, None]:
    """The async twin of :func:`_row_batches`, for an async iterable of row tuples."""
    start = 0
    batch: list[Sequence[Any]] = []
    async for row in rows:
        batch.append(row)
        if len(batch) == batch_size:
            yield start, _batch_columns(batch, start, width, explicit=explicit)
            start += len(batch)
            batch = []
    if batch:
        yield start, _batch_columns(batch, start, width, explicit=explicit)


async def _each(
    batches: Iterator[_Batch] | AsyncGenerator[_Batch, None],
) -> AsyncGenerator[_Batch, None]:
    """The batches of a sync or async source, as one async iterator."""
    if isinstance(batches, AsyncGenerator):
        async with aclosing(batches):
            async for batch in batches:
                yield batch
    else:
        for batch in batches:
            yield batch


def _column_batches(data: Mapping[str, Any], names: list[str], batch_size: int) -> Iterator[_Batch]:
    """(first row's index, the batch's columns) for each slice of a dict of columns.

    The lengths are checked now, before any SQL runs; the slices are made lazily.
    """
    lengths = {name: len(data[name]) for name in names}
    if len(set(lengths.values())) > 1:
        raise InvalidRows(f"the columns have different lengths: {lengths}")
    return _slices(data, names, next(iter(lengths.values()), 0), batch_size)


def _slices(
    data: Mapping[str, Any], names: list[str], total: int, batch_size: int
) -> Iterator[_Batch]:
    for start in range(0, total, batch_size):
        batch: list[Sequence[Any]] = []
        for name in names:
            part = data[name][start : start + batch_size]
            if isinstance(part, np.ndarray) and part.ndim == 1:
                part = part.tolist()  # python scalars for the drivers' encoders
            batch.append(part)
        yield start, batch


# -- checking and encoding vectors ---------------------------------------------------


def _encode(values: Sequence[Any], spec: _VectorColumn, start: int) -> list[bytes | None]:
    """Check a batch of one vector column and encode it in the type's binary format."""
    dense_kind = spec.kind in ("vector", "halfvec")
    if dense_kind and isinstance(values, np.ndarray) and values.ndim == 2:
        if values.dtype.kind in "biuf":  # the fast path: one array, checked at once
            return list(_encode_dense(values, spec, range(start, start + len(values))))
        values = list(values)
    out: list[bytes | None] = [None] * len(values)
    present = [i for i, v in enumerate(values) if v is not None]
    if dense_kind:
        dense = [_unwrap(values[i]) for i in present]
        rows = [start + i for i in present]
        stacked = _stack(dense, spec, rows)
        if isinstance(stacked, list):  # rows of different sizes: one at a time
            encoded = [
                _encode_dense(r[None, :], spec, [row])[0]
                for r, row in zip(stacked, rows, strict=True)
            ]
        else:
            encoded = _encode_dense(stacked, spec, rows)
    elif spec.kind == "sparsevec":
        encoded = [_encode_sparse(values[i], spec, start + i) for i in present]
    else:
        encoded = [_encode_bit(values[i], spec, start + i) for i in present]
    for i, data in zip(present, encoded, strict=True):
        out[i] = data
    return out


def _unwrap(value: Any) -> Any:
    if isinstance(value, (Vector, HalfVector)):
        return value.to_numpy()
    return value


def _stack(
    dense: list[Any], spec: _VectorColumn, rows: list[int]
) -> npt.NDArray[Any] | list[npt.NDArray[np.float32]]:
    """The batch as one 2-D array, or the clear error of its first unreadable row.

    Rows of different sizes (possible in a column without a dimension) come back as a
    list of 1-D arrays.
    """
    if not dense:
        return np.empty((0, spec.dim or 1), dtype=np.float32)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            arr = np.asarray(dense, dtype=np.float32)
    except (TypeError, ValueError):
        arr = None  # ragged or unreadable: find the row
    if arr is not None and arr.ndim == 2:
        return arr
    # Row by row, only to name the first bad one; an undimensioned column may mix sizes.
    checked = [_as_row(v, spec, row) for v, row in zip(dense, rows, strict=True)]
    if len({len(r) for r in checked}) == 1:
        return np.stack(checked)
    return checked


def _as_row(value: Any, spec: _VectorColumn, row: int) -> npt.NDArray[np.float32]:
    if isinstance(value, (str, bytes)):
        raise InvalidVector(
            f"row {row}: {spec.label} needs a list or array of numbers, not a "
            f"{type(value).__name__}; nothing was loaded"
        )
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidVector(
            f"row {row}: {spec.label} value cannot be read as numbers ({exc}); nothing was loaded"
        ) from exc
    if arr.ndim != 1:
        raise InvalidVector(
            f"row {row}: {spec.label} needs a flat list of numbers, got shape {arr.shape}; "
            "nothing was loaded"
        )
    return arr


def _encode_dense(arr: npt.NDArray[Any], spec: _VectorColumn, rows: Sequence[int]) -> list[bytes]:
    """Check a 2-D batch of dense vectors at once and encode each row as vector/halfvec.

    ``rows`` are the input positions of the array's rows, for error messages.
    """
    n, dim = arr.shape
    if n and (spec.dim is not None and dim != spec.dim):
        raise DimensionMismatch(
            f"row {rows[0]}: {spec.label} is {spec.describe()} but the vector has {dim} "
            "dimensions; check the embedding model; nothing was loaded"
        )
    if n and not 1 <= dim <= _MAX_DIM:
        raise InvalidVector(
            f"row {rows[0]}: {spec.label} vector has {dim} dimensions; pgvector stores 1 to "
            f"{_MAX_DIM}; nothing was loaded"
        )
    native = np.dtype(np.float16 if spec.kind == "halfvec" else np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.asarray(arr, dtype=native)
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        index = int(np.flatnonzero(~np.isfinite(values[bad]))[0])
        value = np.asarray(arr)[bad, index]
        if spec.kind == "halfvec" and np.isfinite(value):
            problem = (
                f"has {value} at index {index}, outside halfvec's range (±{_HALF_MAX:g}); "
                "scale the vectors or store them as vector"
            )
        else:
            problem = f"has {value} at index {index}; vectors must hold finite {native} numbers"
        raise InvalidVector(f"row {rows[bad]}: {spec.label} {problem}; nothing was loaded")
    # The binary format: uint16 dimensions, uint16 zero, then big-endian floats.
    header = struct.pack(">HH", dim, 0)
    return [header + row.tobytes() for row in values.astype(native.newbyteorder(">"))]


def _encode_sparse(value: Any, spec: _VectorColumn, row: int) -> bytes:
    if not isinstance(value, SparseVector):
        try:
            if isinstance(value, Mapping):
                if spec.dim is None:
                    raise ValueError("a dict needs a column with a dimension")
                value = SparseVector(dict(value), spec.dim)  # {index: weight}, as search() takes
            else:
                value = SparseVector(value)
        except (TypeError, ValueError) as exc:
            raise InvalidVector(
                f"row {row}: {spec.label} needs a SparseVector, a dict of {{index: weight}} or "
                f"a dense list/array, got {type(value).__name__} ({exc}); nothing was loaded"
            ) from exc
    if spec.dim is not None and value.dimensions() != spec.dim:
        raise DimensionMismatch(
            f"row {row}: {spec.label} is {spec.describe()} but the vector has "
            f"{value.dimensions()} dimensions; nothing was loaded"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.asarray(value.values(), dtype=np.float32)
    if not np.isfinite(values).all():
        raise InvalidVector(
            f"row {row}: {spec.label} has a non-finite value; vectors must hold finite "
            "numbers; nothing was loaded"
        )
    value = check_sparse(
        value,
        dim=value.dimensions(),
        what=f"row {row}: {spec.label}",
        suffix="; nothing was loaded",
    )
    nnz = len(value.indices())
    if spec.max_nnz is not None and nnz > spec.max_nnz:
        raise InvalidVector(
            f"row {row}: {spec.label} has {nnz:,} non-zero elements, but pgvector's HNSW index "
            f"on sparsevec takes at most {spec.max_nnz:,} per row; keep the {spec.max_nnz:,} "
            "largest weights, or declare the column with index=None (exact search only); "
            "nothing was loaded"
        )
    encoded: bytes = value.to_binary()
    return encoded


def _encode_bit(value: Any, spec: _VectorColumn, row: int) -> bytes:
    if not isinstance(value, Bit):
        try:
            value = Bit(value)
        except (TypeError, ValueError) as exc:
            raise InvalidVector(
                f"row {row}: {spec.label} needs a bit string, bools or a Bit ({exc}); "
                "nothing was loaded"
            ) from exc
    length = len(value.to_text())
    if spec.dim is not None and length != spec.dim:
        raise DimensionMismatch(
            f"row {row}: {spec.label} is {spec.describe()} but the value has {length} bits; "
            "nothing was loaded"
        )
    encoded: bytes = value.to_binary()
    return encoded


def _encode_batch(
    values: list[Sequence[Any]], columns: list[_ColumnType], start: int
) -> list[Sequence[Any]]:
    """A batch with its vector columns checked and encoded; the other columns as given."""
    return [
        v if c.vector is None else _encode(v, c.vector, start)
        for v, c in zip(values, columns, strict=True)
    ]


# -- running the statements: psycopg (sync and async) and asyncpg --------------------


def _run(conn: sa.Connection, plan: _Plan) -> _Outcome:
    steps = _steps(plan, conn.dialect.identifier_preparer)
    result: Any = None
    while True:
        try:
            step = steps.send(result)
        except StopIteration as done:
            outcome: _Outcome = done.value
            return outcome
        if isinstance(step, _Sql):
            result = conn.execute(step.statement, step.params)
        elif isinstance(step, _Indexes):
            result = (drop_indexes if step.drop else build_indexes)(conn, plan.table)
        else:
            assert isinstance(plan.batches, Iterator)  # _plan refuses async rows for load()
            result = _copy_psycopg(conn, step, plan.batches)


async def _arun(conn: AsyncConnection, plan: _Plan) -> _Outcome:
    steps = _steps(plan, conn.dialect.identifier_preparer)
    result: Any = None
    while True:
        try:
            step = steps.send(result)
        except StopIteration as done:
            outcome: _Outcome = done.value
            return outcome
        if isinstance(step, _Sql):
            result = await conn.execute(step.statement, step.params)
        elif isinstance(step, _Indexes):
            result = await conn.run_sync(drop_indexes if step.drop else build_indexes, plan.table)
        else:
            raw = (await conn.get_raw_connection()).driver_connection
            if isinstance(raw, psycopg.AsyncConnection):
                result = await _copy_psycopg_async(raw, step, plan.batches)
            else:
                dumps = getattr(conn.dialect, "_json_serializer", None) or json.dumps
                result = await _copy_asyncpg(raw, step, plan.batches, dumps)


def _copy_statement(step: _Copy) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(*([step.schema] if step.schema else []), step.name),
        sql.SQL(", ").join(sql.Identifier(c.name) for c in step.columns),
    )


def _register_encoded(
    cursor: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any], columns: list[_ColumnType]
) -> None:
    for column in columns:
        if column.vector is not None:
            # On this cursor only: the caller's connection keeps its own adapters.
            dumper = type("_EncodedVectorDumper", (_EncodedDumper,), {"oid": column.oid})
            cursor.adapters.register_dumper(None, dumper)


def _copy_psycopg(conn: sa.Connection, step: _Copy, batches: Iterator[_Batch]) -> int:
    raw = conn.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise ConfigurationError("load() needs a psycopg 3 connection; use postgresql+psycopg://")
    written = 0
    with raw.cursor() as cur:
        _register_encoded(cur, step.columns)
        with cur.copy(_copy_statement(step)) as copy:
            copy.set_types([c.oid for c in step.columns])
            # An exception in here (a bad batch, the caller's generator) ends the COPY
            # with an error: the server discards every row sent so far.
            for start, values in batches:
                prepared = _encode_batch(values, step.columns, start)
                for row in zip(*prepared, strict=True):
                    copy.write_row(row)
                written += len(prepared[0])
    return written


async def _copy_psycopg_async(
    raw: psycopg.AsyncConnection[Any],
    step: _Copy,
    batches: Iterator[_Batch] | AsyncGenerator[_Batch, None],
) -> int:
    written = 0
    async with raw.cursor() as cur:
        _register_encoded(cur, step.columns)
        async with cur.copy(_copy_statement(step)) as copy:
            copy.set_types([c.oid for c in step.columns])
            async with aclosing(_each(batches)) as each:
                async for start, values in each:
                    prepared = _encode_batch(values, step.columns, start)
                    for row in zip(*prepared, strict=True):
                        await copy.write_row(row)
                    written += len(prepared[0])
    return written


async def _copy_asyncpg(
    raw: Any,
    step: _Copy,
    batches: Iterator[_Batch] | AsyncGenerator[_Batch, None],
    dumps: Callable[[Any], str],
) -> int:
    """One ``copy_records_to_table`` per batch, each batch checked in full before it starts.

    asyncpg aborts a COPY whose record source raises by cancelling the query from
    another connection; a batch that is already checked and converted never does.
    """
    converters = [_asyncpg_converter(c, dumps) for c in step.columns]
    names = [c.name for c in step.columns]
    written = 0
    async with aclosing(_each(batches)) as each:
        async for start, values in each:
            prepared = _encode_batch(values, step.columns, start)
            converted = [
                column if convert is None else [None if v is None else convert(v) for v in column]
                for column, convert in zip(prepared, converters, strict=True)
            ]
            records = list(zip(*converted, strict=True))
            await raw.copy_records_to_table(
                step.name, records=records, columns=names, schema_name=step.schema
            )
            written += len(records)
    return written


class _EncodedVector(Vector):
    """A vector checked and encoded by :func:`_encode`: the codec sends its bytes as they are.

    The pgvector codecs asyncpg uses (vecalchemy's and pgvector-python's) call
    ``to_binary()`` on an instance of the type, so the bytes the psycopg path sends go
    through unchanged.
    """

    def __init__(self, binary: bytes) -> None:
        self._binary = binary

    def to_binary(self) -> bytes:
        return self._binary


class _EncodedHalfVector(HalfVector):
    """A halfvec already checked and encoded (see :class:`_EncodedVector`)."""

    def __init__(self, binary: bytes) -> None:
        self._binary = binary

    def to_binary(self) -> bytes:
        return self._binary


class _EncodedSparseVector(SparseVector):
    """A sparsevec already checked and encoded (see :class:`_EncodedVector`)."""

    def __init__(self, binary: bytes) -> None:
        self._binary = binary

    def to_binary(self) -> bytes:
        return self._binary


def _bit_string(binary: bytes) -> Any:
    """asyncpg's BitString from a bit value in PostgreSQL's binary format."""
    from asyncpg import BitString

    (length,) = struct.unpack_from(">i", binary)
    return BitString.frombytes(binary[4:], length)


def _asyncpg_converter(column: _ColumnType, dumps: Callable[[Any], str]) -> Any:
    """What turns a column's (encoded) values into what asyncpg's codec for it takes."""
    if column.vector is not None:
        return {
            "vector": _EncodedVector,
            "halfvec": _EncodedHalfVector,
            "sparsevec": _EncodedSparseVector,
            "bit": _bit_string,
        }[column.vector.kind]
    if column.typname in ("json", "jsonb"):
        return dumps  # SQLAlchemy's asyncpg codecs take JSON text, as psycopg takes objects
    return None
