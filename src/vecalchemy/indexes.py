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

from sqlalchemy import Connection, Engine, Index, Table, func, inspect, select, text
from sqlalchemy.schema import CreateIndex, DropIndex

from vecalchemy.errors import IndexBuildError, InvalidArgument
from vecalchemy.schema import INFO_KEY, IVFFlat, VectorSpec, building_indexes, vector_indexes

__all__ = ["IndexResult", "build_indexes", "drop_indexes", "table_of"]

log = logging.getLogger("vecalchemy.indexes")

#: The ``lists`` of IVFFlat indexes built with ``lists=None``, per (database URL, index
#: name), as :func:`vecalchemy.search` read them to choose ``probes``; building or
#: dropping an index forgets its entries.
IVFFLAT_LISTS: dict[tuple[str, str], int] = {}


def _forget(name: str) -> None:
    for key in [k for k in IVFFLAT_LISTS if k[1] == name]:
        IVFFLAT_LISTS.pop(key, None)


@dataclass(frozen=True)
class IndexResult:
    """What :func:`build_indexes` or :func:`drop_indexes` did to one index."""

    name: str
    action: str  # "built", "exists", "dropped", "absent"
    rows: int | None = None
    seconds: float = 0.0
    options: dict[str, int] | None = None


def table_of(target: Any) -> Table:
    """The ``Table`` of a mapped class or a ``Table`` itself."""
    if isinstance(target, Table):
        return target
    try:
        table = inspect(target).local_table
    except Exception as exc:
        raise InvalidArgument(f"expected a mapped class or a Table, got {target!r}") from exc
    if not isinstance(table, Table):
        raise InvalidArgument(f"{target!r} is not mapped to a single table")
    return table


def _exists(conn: Connection, ix: Index) -> bool:
    schema = ix.table.schema if ix.table is not None else None
    sql = text(
        "SELECT 1 FROM pg_indexes WHERE indexname = :name "
        "AND schemaname = coalesce(:schema, current_schema())"
    )
    return conn.execute(sql, {"name": ix.name, "schema": schema}).first() is not None


def _build_one(conn: Connection, ix: Index) -> IndexResult:
    spec: VectorSpec = ix.info[INFO_KEY]
    name = str(ix.name)
    if _exists(conn, ix):
        return IndexResult(name=name, action="exists")
    table = ix.table
    assert table is not None
    assert spec.index is not None
    col = next(iter(ix.columns))
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
    _forget(name)
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

    def run(conn: Connection) -> list[IndexResult]:
        out = []
        for ix in vector_indexes(table):
            existed = _exists(conn, ix)
            _forget(str(ix.name))
            conn.execute(DropIndex(ix, if_exists=True))
            out.append(IndexResult(name=str(ix.name), action="dropped" if existed else "absent"))
        return out

    if isinstance(bind, Engine):
        with bind.begin() as conn:
            return run(conn)
    return run(bind)
