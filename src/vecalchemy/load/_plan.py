"""A load's plan: the table, columns, batches and conflict key, checked before any SQL runs."""

from __future__ import annotations

from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, replace
from typing import Any, Literal

import sqlalchemy as sa
from pgvector.sqlalchemy import BIT, HALFVEC, SPARSEVEC, VECTOR

from vecalchemy._sql import INFO_KEY, REGISTERED_FLAG
from vecalchemy._typing import ConflictMode, IndexMode
from vecalchemy.errors import (
    ConfigurationError,
    InvalidArgument,
    InvalidRows,
)
from vecalchemy.load._batches import Batch, arow_batches, column_batches, row_batches
from vecalchemy.metrics import INDEX_DIM_LIMITS, Metric, Storage
from vecalchemy.schema import VectorSpec

__all__ = [
    "CATALOG_SQL",
    "UNIQUE_SQL",
    "ColumnType",
    "Plan",
    "VectorColumn",
    "check_arbiter",
    "check_driver",
    "column_types",
    "make_plan",
]

_TEXT_OID = 25
_Kind = Literal["vector", "halfvec", "sparsevec", "bit"]


@dataclass(frozen=True)
class VectorColumn:
    """A pgvector column as declared in the SQLAlchemy table, checked against the server."""

    label: str  # "docs.embedding", for messages
    kind: _Kind
    dim: int | None
    #: The most non-zero elements a row may have: 1,000 for a sparsevec column declared
    #: with a vector index (pgvector's HNSW limit), else None.
    max_nnz: int | None = None
    #: False for a column declared with metric cosine: a zero vector has no direction.
    zero_ok: bool = True

    def describe(self) -> str:
        return self.kind if self.dim is None else f"{self.kind}({self.dim})"


@dataclass(frozen=True)
class ColumnType:
    """How the values of one loaded column are checked and sent, from the server's catalog."""

    name: str
    oid: int  # the type binary COPY sends the values as (psycopg)
    typname: str  # the type's name, or its base type's for a domain ("jsonb")
    vector: VectorColumn | None  # the checks for a pgvector column


# -- the plan: everything checked before any SQL runs ---------------------------------


@dataclass(frozen=True)
class Plan:
    table: sa.Table
    columns: list[sa.Column[Any]]
    batches: Iterator[Batch] | AsyncGenerator[Batch, None]
    indexes: IndexMode
    on_conflict: ConflictMode
    conflict: tuple[str, ...]  # the conflict columns, for "ignore" and "update"


def make_plan(
    table: object,
    rows: object,
    *,
    columns: Sequence[str] | None,
    batch_size: int,
    indexes: IndexMode,
    on_conflict: ConflictMode,
    conflict_columns: Sequence[str] | None,
    async_: bool,
) -> Plan:
    tbl = _as_table(table)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidRows(f"batch_size must be a positive integer, got {batch_size!r}")
    if indexes not in ("keep", "defer"):
        raise InvalidRows(f"indexes must be 'keep' or 'defer', got {indexes!r}")
    if on_conflict not in ("error", "ignore", "update"):
        raise InvalidRows(f"on_conflict must be 'error', 'ignore' or 'update', got {on_conflict!r}")

    batches: Iterator[Batch] | AsyncGenerator[Batch, None]
    if isinstance(rows, Mapping):
        if columns is not None:
            raise InvalidRows(
                "columns= is for rows given as tuples; a dict of columns names its own columns"
            )
        names = list(rows)
        cols = [_column(tbl, name) for name in names]
        batches = column_batches(rows, names, batch_size)
    elif isinstance(rows, AsyncIterable):
        if not async_:
            raise InvalidArgument("rows is an async iterable; load it with await aload(...)")
        cols = list(tbl.columns) if columns is None else [_column(tbl, c) for c in columns]
        batches = arow_batches(rows, len(cols), batch_size, explicit=columns is not None)
    elif isinstance(rows, Iterable) and not isinstance(rows, (str, bytes)):
        cols = list(tbl.columns) if columns is None else [_column(tbl, c) for c in columns]
        batches = row_batches(rows, len(cols), batch_size, explicit=columns is not None)
    else:
        raise InvalidArgument("rows must be an iterable of tuples or a dict of columns")
    if not cols:
        raise InvalidRows("no columns to load; pass columns=[...] or a non-empty dict")
    if len({c.name for c in cols}) != len(cols):
        raise InvalidRows(f"a column is named twice in {[c.name for c in cols]}")
    conflict = _conflict_columns(tbl, cols, on_conflict, conflict_columns)
    return Plan(tbl, cols, batches, indexes, on_conflict, conflict)


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


def check_driver(dialect: sa.Dialect, plan: Plan, *, async_: bool) -> None:
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


def _vector_column(column: sa.Column[Any]) -> VectorColumn | None:
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
    zero_ok = not (isinstance(declared, VectorSpec) and declared.metric is Metric.COSINE)
    return VectorColumn(f"{table}.{column.name}", kind, dim, max_nnz, zero_ok)


CATALOG_SQL = """
SELECT a.attname, a.attnum, t.oid, t.typname, t.typtype, t.typbasetype, t.typcategory,
       a.atttypmod, b.typname
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type b ON b.oid = t.typbasetype
WHERE a.attrelid = to_regclass(CAST(:table AS text)) AND a.attnum > 0 AND NOT a.attisdropped
"""

# The unique keys ON CONFLICT can use as its arbiter: immediate, not partial, no expressions.
UNIQUE_SQL = """
SELECT CAST(i.indkey AS int2[]), i.indnkeyatts
FROM pg_index i
WHERE i.indrelid = to_regclass(CAST(:table AS text)) AND i.indisunique AND i.indimmediate
  AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
"""


def column_types(
    catalog: Sequence[Any], tbl: sa.Table, cols: list[sa.Column[Any]]
) -> tuple[list[ColumnType], dict[int, str]]:
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
    out: list[ColumnType] = []
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
        out.append(ColumnType(column.name, int(oid), str(typname), spec))
    return out, attnames


def check_arbiter(
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
