"""Building and dropping vector indexes: the ones declared with :func:`vecalchemy.Embedding`,
or one index on any table's vector column.

``metadata.create_all()`` creates HNSW indexes with their tables, but never IVFFlat
indexes (their list centres are learnt from the rows present at build time, so an index
built on an empty table has terrible recall). After loading rows, or after creating
tables inside :func:`vecalchemy.defer_indexes` for a fast bulk load, call
:func:`build_indexes` (every declared index of a model) or :func:`build_index` (one
index, optionally ``CONCURRENTLY``, with a progress bar, or rebuilt in place).

Both size the build's session first: ``maintenance_work_mem`` to hold the HNSW graph
(or IVFFlat's k-means) as pgvector's sources size it, within ``max_memory`` and what the
server allows, and ``max_parallel_maintenance_workers`` to the cores the server has;
both settings are restored afterwards, so a pooled connection goes back as it came.

Example::

    with vecalchemy.defer_indexes():
        Base.metadata.create_all(engine)
    load(engine, Doc, rows)
    for built in vecalchemy.build_indexes(engine, Doc):
        print(built.name, built.action, f"{built.seconds:.1f}s", built.settings)
    vecalchemy.build_index(engine, Doc.embedding, rebuild=True, concurrently=True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, Engine, Index, MetaData, Table, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.schema import CreateIndex, DropIndex

from vecalchemy._build_progress import ProgressPoller
from vecalchemy._build_session import (
    DEFAULT_MAX_MEMORY,
    BuildOptions,
    BuildSettings,
    autocommit,
    failure_hint,
    first_line,
    plan,
    server_facts,
    session_settings,
    spill_notice,
)
from vecalchemy._catalog import IndexInfo, check_metric, indexes_sql, on_column, parse_indexes
from vecalchemy._engine_state import engine_state
from vecalchemy._index_memory import format_bytes
from vecalchemy._names import describe, fit_identifier, qualified
from vecalchemy._progress import Progress, progress_reporter
from vecalchemy._sql import (
    INFO_KEY,
    building_indexes,
    column_of,
    dimensioned_storage,
    table_of,
)
from vecalchemy.errors import (
    IndexBuildError,
    InvalidArgument,
    MetricRequired,
    UnsupportedIndex,
)
from vecalchemy.metrics import IndexMethod, Metric, Storage
from vecalchemy.schema import (
    HNSW,
    IVFFlat,
    VectorSpec,
    embedding_column,
    resolve_spec,
    vector_indexes,
)

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "BuildSettings",
    "IndexResult",
    "build_index",
    "build_indexes",
    "drop_indexes",
]

log = logging.getLogger("vecalchemy.indexes")


@dataclass(frozen=True)
class IndexResult:
    """What :func:`build_index`, :func:`build_indexes` or :func:`drop_indexes` did to one
    index: ``action`` is ``"built"``, ``"rebuilt"``, ``"exists"``, ``"dropped"`` or
    ``"absent"``; ``options`` the index's ``WITH`` parameters, ``settings`` the session
    settings it was built with."""

    name: str
    action: str
    rows: int | None = None
    seconds: float = 0.0
    options: dict[str, int] | None = None
    settings: BuildSettings | None = None


# -- which index ----------------------------------------------------------------------


def _database_indexes(conn: Connection, table: Table) -> list[IndexInfo]:
    rows = conn.execute(
        text(indexes_sql(":table")), {"table": qualified(table.schema, table.name)}
    ).all()
    return parse_indexes(rows)


def _exists(conn: Connection, ix: Index) -> bool:
    return (
        _validity(conn, ix.table.schema if ix.table is not None else None, str(ix.name)) is not None
    )


def _validity(conn: Connection, schema: str | None, name: str) -> bool | None:
    """Whether the index ``name`` is valid; None when there is no such index."""
    found: bool | None = conn.execute(
        text("SELECT x.indisvalid FROM pg_index x WHERE x.indexrelid = to_regclass(:n)"),
        {"n": qualified(schema, name)},
    ).scalar()
    return found


def _declared_index(col: Column[Any], spec: VectorSpec) -> Index:
    if spec.index is None:
        raise UnsupportedIndex(
            f"{describe(col)} was declared with index=None: there is no index to build; "
            "declare one (Embedding(..., index=HNSW())) or pass a column of a table "
            "vecalchemy did not declare, with index=HNSW(...)"
        )
    table = col.table
    assert isinstance(table, Table)
    name = resolve_spec(col)[1].index_name
    for ix in vector_indexes(table):
        if ix.name == name:
            return ix
    raise InvalidArgument(f"{describe(col)} has no declared index {name}")  # pragma: no cover


def _index_spec(existing: IndexInfo, storage: Storage) -> HNSW | IVFFlat:
    """The HNSW/IVFFlat spec of an index in the database (m, ef_construction; lists is
    left to the row-count rule), quantized as its operator class says."""
    options = dict(re.findall(r"(\w+)='?(\d+)'?", existing.definition.rsplit(" WITH ", 1)[-1]))
    parsed = Metric.from_opclass(existing.opclass)
    quantize = None
    if parsed is not None and parsed[1] is not storage:
        quantize = "binary" if parsed[1] is Storage.BIT else "halfvec"
    if existing.method == IndexMethod.IVFFLAT.value:
        return IVFFlat(quantize=quantize)
    m = int(options.get("m", 16))
    return HNSW(m=m, ef_construction=int(options.get("ef_construction", 64)), quantize=quantize)


def _plain_index(
    conn: Connection, col: Column[Any], metric: str | Metric | None, index: HNSW | IVFFlat | None
) -> Index:
    """The index to build on a column vecalchemy did not declare (a reflected table's,
    say): its metric and parameters from ``metric``/``index``, else from the column's
    index in the database; named like that index, else ``ix_<table>_<column>_<method>``."""
    table = col.table
    if not isinstance(table, Table):
        raise InvalidArgument(f"{describe(col)} is not attached to a table")
    storage, dim = dimensioned_storage(col)
    wanted = Metric.parse(metric) if metric is not None else None
    mine = [
        i
        for i in _database_indexes(conn, table)
        if i.valid and not i.partial and on_column(i, col.name) and i.metric is not None
    ]
    if wanted is None:
        # The metric of the column's index (of the method asked for); a Hamming index on
        # a binary-quantized expression does not tell the column's own metric.
        told = [
            i
            for i in mine
            if (index is None or i.method == index.method.value)
            and (i.metric is not Metric.HAMMING or storage is Storage.BIT)
        ]
        if not told:
            raise MetricRequired(
                f"{describe(col)} has no vector index to read the metric from; pass "
                "metric='cosine' (or l2, inner_product, ...; on the command line --metric)"
            )
        wanted = told[0].metric
        if index is None:
            index = _index_spec(told[0], storage)
    assert wanted is not None
    chosen = index or HNSW()

    def declare(spec: HNSW | IVFFlat) -> Index:
        column = embedding_column(col.name, dim, metric=wanted, storage=storage, index=spec)
        return vector_indexes(Table(table.name, MetaData(), column, schema=table.schema))[0]

    ix = declare(chosen)
    opclass = ix.info[INFO_KEY].opclass
    same = [i for i in mine if i.opclass == opclass and i.method == chosen.method.value]
    if same and chosen.name is None and same[0].name != ix.name:
        ix = declare(dataclasses.replace(chosen, name=same[0].name))  # keep its name
    return ix


def _resolve(
    conn: Connection, target: Any, metric: str | Metric | None, index: HNSW | IVFFlat | None
) -> tuple[Index, bool]:
    """The Index object for ``target``, and whether vecalchemy declared it."""
    if index is not None and not isinstance(index, (HNSW, IVFFlat)):
        raise UnsupportedIndex(f"index must be vecalchemy.HNSW(...) or IVFFlat(...), got {index!r}")
    if isinstance(target, Index):
        if not isinstance(target.info.get(INFO_KEY), VectorSpec):
            raise InvalidArgument(
                f"index {target.name} was not declared by vecalchemy; pass its column with "
                "metric= and index= instead"
            )
        declared_ix = target
    else:
        col = column_of(target)
        spec = col.info.get(INFO_KEY)
        if not isinstance(spec, VectorSpec):
            return _plain_index(conn, col, metric, index), False
        declared_ix = _declared_index(col, spec)
    if metric is not None or index is not None:
        raise InvalidArgument(
            f"index {declared_ix.name} is declared with Embedding(...): its metric and "
            "parameters come from the declaration; change the declaration, or drop "
            "metric= and index="
        )
    return declared_ix, True


# -- building -------------------------------------------------------------------------


def _drop_leftover(
    bind: Engine | Connection, conn: Connection, schema: str | None, name: str
) -> bool:
    """Drop the INVALID index a failed CREATE INDEX CONCURRENTLY left; True if there was one."""

    def drop(c: Connection) -> bool:
        if _validity(c, schema, name) is not False:
            return False
        with session_settings(c, {"statement_timeout": "0", "lock_timeout": "0"}):
            c.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {qualified(schema, name)}")
        return True

    if not conn.invalidated and not conn.closed:
        try:
            return drop(conn)
        except DBAPIError:
            log.warning("cannot drop the invalid index %s on the build's connection", name)
    with bind.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as fresh:
        return drop(fresh)


def _rows(conn: Connection, ix: Index) -> int:
    table = ix.table
    assert table is not None
    col = next(iter(ix.columns))
    count: int = conn.execute(
        select(func.count()).select_from(table).where(col.is_not(None))
    ).scalar_one()
    return count


def _existing(
    conn: Connection, ix: Index, spec: VectorSpec, *, declared: bool, same_method: bool
) -> IndexInfo | None:
    """The database's index that already is ``ix`` (same column, operator class and, for
    :func:`build_index`, method), or None. Raises when the name is taken otherwise."""
    table = ix.table
    assert table is not None
    assert spec.index is not None
    col = next(iter(ix.columns))
    name = str(ix.name)
    indexes = _database_indexes(conn, table)
    schema = table.schema
    partial = spec.index.where is not None
    if partial:
        same = next((i for i in indexes if i.name == name and i.valid), None)
        if same is not None:
            return same
    elif declared:
        # An index for another metric means the model and the database disagree, and a
        # second index would hide that: refuse, saying how to fix it.
        same = check_metric(
            describe(col),
            col.name,
            spec.opclass,
            spec.index_metric,
            [i for i in indexes if not i.partial],
        )
        if same is not None and not same_method:
            return same
    for i in [] if partial else indexes:
        if i.valid and _same_kind(i, col.name, spec, method=same_method):
            return i
    validity = _validity(conn, schema, name)
    if validity is False:
        raise IndexBuildError(
            f"not building {name}: an INVALID index of that name exists (a CREATE INDEX "
            f"CONCURRENTLY that failed, or one still running); drop it (DROP INDEX "
            f"CONCURRENTLY {qualified(schema, name)}) or rebuild it (rebuild=True)"
        )
    if validity is not None:  # a non-vector index (or one on another column) of that name
        raise IndexBuildError(
            f"not building {name}: an index of that name exists in the database but "
            f"does not index {describe(col)} for {spec.index_metric.value}; drop or "
            "rename it, or name the index with HNSW(name=...)"
        )
    return None


def _to_replace(conn: Connection, ix: Index, spec: VectorSpec) -> IndexInfo | None:
    """For a rebuild: the index of that name, else the column's index of the same kind."""
    table = ix.table
    assert table is not None
    assert spec.index is not None
    col = next(iter(ix.columns))
    indexes = _database_indexes(conn, table)
    for i in indexes:
        if i.name == str(ix.name):
            return i
    if spec.index.where is not None:
        return None
    for i in indexes:
        if _same_kind(i, col.name, spec):
            return i
    return None


def _same_kind(i: IndexInfo, column: str, spec: VectorSpec, *, method: bool = True) -> bool:
    """Whether ``i`` is a whole-table index on ``column`` with ``spec``'s operator class
    (and, with ``method``, its method)."""
    assert spec.index is not None
    return (
        not i.partial
        and on_column(i, column)
        and i.opclass == spec.opclass
        and (not method or i.method == spec.index.method.value)
    )


def _build_one(
    bind: Engine | Connection,
    conn: Connection,
    ix: Index,
    opts: BuildOptions,
    *,
    declared: bool = True,
    same_method: bool = False,
) -> IndexResult:
    spec: VectorSpec = ix.info[INFO_KEY]
    name = str(ix.name)
    table = ix.table
    assert table is not None
    assert spec.index is not None
    schema = table.schema
    replacing: IndexInfo | None = None
    if opts.rebuild:
        replacing = _to_replace(conn, ix, spec)
    else:
        same = _existing(conn, ix, spec, declared=declared, same_method=same_method)
        if same is not None:
            if same.name != name:
                log.info("%s is served by the existing index %s; not building it", name, same.name)
            return IndexResult(name=same.name, action="exists")

    rows = _rows(conn, ix)
    with_: dict[str, int] = (
        dict(spec.index.with_options(rows=rows)) if isinstance(spec.index, HNSW) else {}
    )
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
    final = replacing.name if replacing is not None else name
    build_name = fit_identifier(final, "rebuild") if replacing is not None else final
    if replacing is not None:
        leftover = _validity(conn, schema, build_name)
        if leftover is True:
            raise IndexBuildError(
                f"not rebuilding {final}: {build_name} exists, from a rebuild still running or "
                f"interrupted before its swap; drop it (DROP INDEX CONCURRENTLY "
                f"{qualified(schema, build_name)}) and call again"
            )
        if leftover is False:
            log.info("dropping %s, left by a failed rebuild", build_name)
            conn.exec_driver_sql(
                f"DROP INDEX {'CONCURRENTLY ' if opts.concurrently else ''}"
                f"{qualified(schema, build_name)}"
            )

    settings = plan(server_facts(conn), spec, rows, with_, opts)
    values = {
        "maintenance_work_mem": f"{settings.maintenance_work_mem // 1024}kB",
        "max_parallel_maintenance_workers": str(settings.parallel_workers),
    }
    pg = ix.dialect_options["postgresql"]
    saved = pg["with"], pg["concurrently"], ix.name
    started = time.perf_counter()
    try:
        pg["with"], pg["concurrently"] = with_ or None, opts.concurrently
        ix.name = build_name  # type: ignore[assignment]
        with contextlib.ExitStack() as stack:
            stack.enter_context(session_settings(conn, values))
            spilled = stack.enter_context(spill_notice(conn))
            report = stack.enter_context(progress_reporter(opts.progress))
            if report is not None:
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
                stack.enter_context(ProgressPoller(conn.engine, pid, report, rows=rows))
            with building_indexes():
                conn.execute(CreateIndex(ix, if_not_exists=True))
    except DBAPIError as exc:
        if not opts.concurrently:
            raise  # rolled back with the transaction: nothing stays
        dropped = _drop_leftover(bind, conn, schema, build_name)
        left = (
            "the invalid index it left was dropped, so nothing half-built stays"
            if dropped
            else "it left no index behind"
        )
        raise IndexBuildError(
            f"CREATE INDEX CONCURRENTLY {build_name} failed: {first_line(exc)}; {left}. "
            f"{failure_hint(exc)[0].upper()}{failure_hint(exc)[1:]}"
        ) from exc
    finally:
        pg["with"], pg["concurrently"], ix.name = saved
    if replacing is not None:
        _swap(conn, schema, final, build_name, concurrently=opts.concurrently)
    seconds = time.perf_counter() - started
    settings = dataclasses.replace(settings, spilled_after=spilled[0] if spilled else None)
    if spilled:
        log.warning(
            "the graph of %s no longer fitted in maintenance_work_mem (%s) after %s tuples",
            final,
            format_bytes(settings.maintenance_work_mem),
            spilled[0],
        )
    log.info("built %s on %s rows in %.1f s (%s)", final, rows, seconds, settings.as_dict())
    return IndexResult(
        name=final,
        action="rebuilt" if replacing is not None else "built",
        rows=rows,
        seconds=seconds,
        options=with_ or None,
        settings=settings,
    )


def _swap(conn: Connection, schema: str | None, old: str, new: str, *, concurrently: bool) -> None:
    """Put the rebuilt index ``new`` in the place of ``old``, under ``old``'s name."""
    try:
        conn.exec_driver_sql(
            f"DROP INDEX {'CONCURRENTLY ' if concurrently else ''}{qualified(schema, old)}"
        )
        conn.exec_driver_sql(
            f"ALTER INDEX {qualified(schema, new)} RENAME TO {qualified(None, old)}"
        )
    except DBAPIError as exc:
        if not concurrently:
            raise
        raise IndexBuildError(
            f"the new index {new} is built, but replacing {old} with it failed: "
            f"{first_line(exc)}; finish by hand: DROP INDEX CONCURRENTLY IF EXISTS "
            f"{qualified(schema, old)}; ALTER INDEX {qualified(schema, new)} RENAME TO "
            f"{qualified(None, old)};"
        ) from exc


def _forget(bind: Engine | Connection, table: Table) -> None:
    engine_state(bind.engine).forget(qualified(table.schema, table.name))


def build_index(
    bind: Engine | Connection,
    target: Any,
    *,
    metric: str | Metric | None = None,
    index: HNSW | IVFFlat | None = None,
    concurrently: bool = False,
    rebuild: bool = False,
    max_memory: int | str = DEFAULT_MAX_MEMORY,
    maintenance_work_mem: int | str | None = None,
    parallel_workers: int | None = None,
    progress: Progress | bool | None = None,
) -> IndexResult:
    """Build one vector index, with the session sized for it; or rebuild it in place.

    ``target`` is a declared :func:`~vecalchemy.Embedding` column (``Doc.embedding``),
    one of :func:`~vecalchemy.vector_indexes` (a partial index, say), or the column of a
    table vecalchemy did not create (a reflected ``Table``): then ``metric`` and
    ``index`` (``HNSW(m=..., ef_construction=...)`` or ``IVFFlat(lists=...)``) say what
    to build, and default to those of the column's index in the database (whose name
    is kept), else ``MetricRequired`` / ``HNSW()``.

    Settings, for this build only and put back afterwards (never left on a pooled
    connection): ``maintenance_work_mem`` to hold pgvector's graph (HNSW) or k-means
    (IVFFlat), estimated from the row count, dimensions, storage and ``m`` with 20%
    headroom, but at most ``max_memory`` (default 4GB), never less than the session
    already has, at most half the server's memory when the server runs on this machine
    and at most what the server accepts; ``maintenance_work_mem=`` sets it outright.
    ``max_parallel_maintenance_workers`` to this machine's cores less one (the leader
    builds too) when the server is local, else the server's setting, within
    ``max_parallel_workers``; ``parallel_workers=`` sets it outright. The result's
    :class:`BuildSettings` say what was chosen and whether the graph fitted.

    ``concurrently=True`` runs ``CREATE INDEX CONCURRENTLY`` (writes go on during the
    build) on an AUTOCOMMIT connection of its own (``bind`` must be an Engine, or an
    AUTOCOMMIT Connection); if it fails, the INVALID index it leaves is dropped and
    :class:`IndexBuildError` says why. ``rebuild=True`` builds a new index under a
    temporary name (IVFFlat ``lists`` from the current row count, unless declared),
    then drops the old one and gives the new one its name; without an old index it
    builds. ``progress`` is a callable ``(phase, done, total)``, called from another
    thread as ``pg_stat_progress_create_index`` advances, or True for a bar on stderr.

    An index that exists already (same column, operator class and method) is left
    alone (``action="exists"``). IVFFlat on a table without rows raises
    :class:`IndexBuildError` before anything is written.

    Example::

        result = vecalchemy.build_index(engine, Doc.embedding, concurrently=True, progress=True)
        result.action, result.seconds, result.settings.as_dict()

        items = sa.Table("items", sa.MetaData(), autoload_with=engine)
        vecalchemy.build_index(engine, items.c.embedding, metric="cosine", index=HNSW(m=16))
        vecalchemy.build_index(engine, items.c.embedding, rebuild=True)  # IVFFlat: new lists
    """
    opts = BuildOptions.make(
        concurrently=concurrently,
        rebuild=rebuild,
        maintenance_work_mem=maintenance_work_mem,
        max_memory=max_memory,
        parallel_workers=parallel_workers,
        progress=progress,
    )
    if not isinstance(target, (Index, InstrumentedAttribute, Column)):
        raise InvalidArgument(
            f"build_index builds one index: pass a vector column (Doc.embedding, "
            f"table.c.embedding) or one of vecalchemy.vector_indexes(table), got {target!r}; "
            "for every declared index of a model use build_indexes()"
        )

    def run(conn: Connection) -> IndexResult:
        ix, declared = _resolve(conn, target, metric, index)
        assert ix.table is not None
        _forget(bind, ix.table)
        return _build_one(bind, conn, ix, opts, declared=declared, same_method=True)

    if concurrently:
        if isinstance(bind, Engine):
            with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                return run(conn)
        if not autocommit(bind):
            raise IndexBuildError(
                "concurrently=True runs CREATE INDEX CONCURRENTLY, which cannot run inside a "
                "transaction: pass the Engine (build_index then uses an AUTOCOMMIT connection "
                "of its own), or a Connection with execution_options(isolation_level="
                "'AUTOCOMMIT')"
            )
        return run(bind)
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            return run(conn)
    return run(bind)


def build_indexes(
    bind: Engine | Connection,
    target: Any,
    *,
    max_memory: int | str = DEFAULT_MAX_MEMORY,
    parallel_workers: int | None = None,
    progress: Progress | bool | None = None,
) -> list[IndexResult]:
    """Create the vector indexes declared on ``target`` (a mapped class or Table) that are missing.

    IVFFlat ``lists`` is derived from the row count when it was left ``None``. Raises
    :class:`IndexBuildError` (and builds nothing more) for an IVFFlat index on a table
    without rows. With an ``Engine`` the work is committed; with a ``Connection`` it
    joins the caller's transaction. Each build gets ``maintenance_work_mem`` and
    ``max_parallel_maintenance_workers`` sized as :func:`build_index` sizes them (with
    ``SET LOCAL``, put back after each build).

    Example::

        results = vecalchemy.build_indexes(engine, Doc)
        [(r.name, r.action) for r in results]   # [('ix_docs_embedding_hnsw', 'built')]
    """
    opts = BuildOptions.make(
        max_memory=max_memory, parallel_workers=parallel_workers, progress=progress
    )
    table = table_of(target)
    _forget(bind, table)
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            return [_build_one(bind, conn, ix, opts) for ix in vector_indexes(table)]
    return [_build_one(bind, bind, ix, opts) for ix in vector_indexes(table)]


def drop_indexes(bind: Engine | Connection, target: Any) -> list[IndexResult]:
    """Drop the vector indexes declared on ``target`` (before a bulk load, say).

    Example::

        vecalchemy.drop_indexes(engine, Doc)
        load(engine, Doc, rows)
        vecalchemy.build_indexes(engine, Doc)
    """
    table = table_of(target)
    _forget(bind, table)

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
