"""Building and dropping the vector indexes declared with :func:`vecalchemy.Embedding`.

``metadata.create_all()`` creates HNSW indexes with their tables, but never IVFFlat
indexes (their list centres are learnt from the rows present at build time, so an index
built on an empty table has terrible recall). After loading rows, or after creating
tables inside :func:`vecalchemy.defer_indexes` for a fast bulk load, call
:func:`build_indexes`.

Example::

    with vecalchemy.defer_indexes():
        Base.metadata.create_all(engine)
    load(engine, Doc, rows)
    for built in vecalchemy.build_indexes(engine, Doc):
        print(built.name, built.action, f"{built.seconds:.1f}s")
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Index, Table, func, select, text
from sqlalchemy.schema import CreateIndex, DropIndex

from vecalchemy._catalog import IndexInfo, check_metric, indexes_sql, parse_indexes
from vecalchemy._engine_state import engine_state
from vecalchemy._names import describe, qualified
from vecalchemy._sql import INFO_KEY, building_indexes, table_of
from vecalchemy.errors import IndexBuildError
from vecalchemy.schema import IVFFlat, VectorSpec, vector_indexes

__all__ = ["IndexResult", "build_indexes", "drop_indexes"]

log = logging.getLogger("vecalchemy.indexes")


@dataclass(frozen=True)
class IndexResult:
    """What :func:`build_indexes` or :func:`drop_indexes` did to one index."""

    name: str
    action: str  # "built", "exists", "dropped", "absent"
    rows: int | None = None
    seconds: float = 0.0
    options: dict[str, int] | None = None


def _exists(conn: Connection, ix: Index) -> bool:
    schema = ix.table.schema if ix.table is not None else None
    sql = text(
        "SELECT 1 FROM pg_indexes WHERE indexname = :name "
        "AND schemaname = coalesce(:schema, current_schema())"
    )
    return conn.execute(sql, {"name": ix.name, "schema": schema}).first() is not None


def _database_indexes(conn: Connection, table: Table) -> list[IndexInfo]:
    rows = conn.execute(
        text(indexes_sql(":table")), {"table": qualified(table.schema, table.name)}
    ).all()
    return parse_indexes(rows)


def _build_one(conn: Connection, ix: Index) -> IndexResult:
    spec: VectorSpec = ix.info[INFO_KEY]
    name = str(ix.name)
    table = ix.table
    assert table is not None
    assert spec.index is not None
    col = next(iter(ix.columns))
    if spec.index.where is not None and _exists(conn, ix):
        return IndexResult(name=name, action="exists")
    if spec.index.where is None:
        # The same index under another name (hand-made, or by an older version) is not
        # built twice; an index for another metric means the model and the database
        # disagree, and a second index would hide that: refuse, saying how to fix it.
        same = check_metric(
            describe(col),
            col.name,
            spec.opclass,
            spec.index_metric,
            [i for i in _database_indexes(conn, table) if not i.partial],
        )
        if same is not None:
            if same.name != name:
                log.info("%s is served by the existing index %s; not building it", name, same.name)
            return IndexResult(name=same.name, action="exists")
        if _exists(conn, ix):  # a non-vector index (or one on another column) of that name
            raise IndexBuildError(
                f"not building {name}: an index of that name exists in the database but "
                f"does not index {describe(col)} for {spec.index_metric.value}; drop or "
                "rename it, or name the index with HNSW(name=...)"
            )
    rows = conn.execute(
        select(func.count()).select_from(table).where(col.is_not(None))
    ).scalar_one()
    opts = ix.dialect_options["postgresql"]
    saved = opts["with"]
    if isinstance(spec.index, IVFFlat):
        if rows == 0:
            raise IndexBuildError(
                f"not building ivfflat index {name}: {table.name} has no rows with a vector. "
                "IVFFlat learns its lists from the rows present at build time; load the data "
                "first, then call build_indexes()"
            )
        with_ = spec.index.with_options(rows=rows)
        if with_["lists"] > rows:
            raise IndexBuildError(
                f"not building ivfflat index {name}: lists={with_['lists']} is more than the "
                f"{rows} rows in {table.name}; use IVFFlat(lists=None) to derive lists from "
                "the row count, or load more rows"
            )
        opts["with"] = with_
    used = dict(opts["with"] or {})
    started = time.perf_counter()
    try:
        with building_indexes():
            conn.execute(CreateIndex(ix, if_not_exists=True))
    finally:
        opts["with"] = saved
    seconds = time.perf_counter() - started
    log.info("built %s on %s rows in %.1f s", name, rows, seconds)
    return IndexResult(name=name, action="built", rows=rows, seconds=seconds, options=used or None)


def build_indexes(bind: Engine | Connection, target: Any) -> list[IndexResult]:
    """Create the vector indexes declared on ``target`` (a mapped class or Table) that are missing.

    IVFFlat ``lists`` is derived from the row count when it was left ``None``. Raises
    :class:`IndexBuildError` (and builds nothing more) for an IVFFlat index on a table
    without rows. With an ``Engine`` the work is committed; with a ``Connection`` it
    joins the caller's transaction.

    Example::

        results = vecalchemy.build_indexes(engine, Doc)
        [(r.name, r.action) for r in results]   # [('ix_docs_embedding_hnsw', 'built')]
    """
    table = table_of(target)
    engine_state(bind.engine).forget(qualified(table.schema, table.name))
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            return [_build_one(conn, ix) for ix in vector_indexes(table)]
    return [_build_one(bind, ix) for ix in vector_indexes(table)]


def drop_indexes(bind: Engine | Connection, target: Any) -> list[IndexResult]:
    """Drop the vector indexes declared on ``target`` (before a bulk load, say).

    Example::

        vecalchemy.drop_indexes(engine, Doc)
        load(engine, Doc, rows)
        vecalchemy.build_indexes(engine, Doc)
    """
    table = table_of(target)
    engine_state(bind.engine).forget(qualified(table.schema, table.name))

    def run(conn: Connection) -> list[IndexResult]:
        out = []
        for ix in vector_indexes(table):
            existed = _exists(conn, ix)
            conn.execute(DropIndex(ix, if_exists=True))
            out.append(IndexResult(name=str(ix.name), action="dropped" if existed else "absent"))
        return out

    if isinstance(bind, Engine):
        with bind.begin() as conn:
            return run(conn)
    return run(bind)
