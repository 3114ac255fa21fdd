"""The checks of :func:`vecalchemy.doctor`: catalog and statistics queries, read-only."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from vecalchemy._catalog import version_tuple
from vecalchemy._index_memory import format_bytes, hnsw_graph_bytes, memory_for
from vecalchemy._names import qualified
from vecalchemy.doctor._base import CODES, Catalog, Finding, expression_of, indexes_on
from vecalchemy.doctor._queries import check_queries
from vecalchemy.errors import InvalidArgument, VecalchemyError
from vecalchemy.metrics import INDEX_DIM_LIMITS, Metric, Storage
from vecalchemy.schema import ivfflat_lists_for

__all__ = ["CODES", "Finding", "doctor"]


_COLUMNS = """
SELECT n.nspname, c.relname, a.attname, t.typname, a.atttypmod, a.attstorage,
  (SELECT s.avg_width FROM pg_stats s
   WHERE s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname
   ORDER BY s.inherited LIMIT 1) AS avg_width
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
WHERE t.typname IN ('vector', 'halfvec', 'sparsevec') AND c.relkind IN ('r', 'p', 'm')
  AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND (CAST(:table AS text) IS NULL OR c.relname = :table)
ORDER BY 1, 2, 3
"""


#: TOAST moves a row's wide values out of line above about 2 KB (TOAST_TUPLE_THRESHOLD).
_TOAST = 2032
#: A row stored PLAIN must fit in one 8 KB page with its other columns.
_PLAIN_MAX = 7000


def doctor(
    engine: Engine | sa.Connection,
    *,
    table: str | None = None,
    metadata: sa.MetaData | None = None,
    queries: Sequence[str] | None = None,
    limit: int = 10,
) -> list[Finding]:
    """Every pgvector mistake found in the database (or in ``table``), worst first.

    With ``metadata`` (your models' ``Base.metadata``), the database's indexes are also
    checked against what the models declare: an index whose operator class is not the
    declared metric's, or a declared index the database lacks. Collections are checked
    against the metric their table records, without metadata.

    ``queries`` (SQL text of the application's own queries, with ``$1``, ``%s`` or
    ``:name`` parameters) are planned with ``EXPLAIN`` (never run) and checked: a
    distance operator the column's index cannot serve, an ORDER BY distance without a
    LIMIT, a LIMIT above ``hnsw.ef_search``, a filter with iterative scans off, a filter
    column without an index (VA501-VA505; VA500 when a query cannot be planned). A LIMIT
    given as a parameter is planned as ``LIMIT limit``.

    Runs only catalog and statistics queries in a ``READ ONLY`` transaction, so it is
    safe on a production database and works for a role that may only read; it needs
    no vecalchemy-created objects.

    Example::

        findings = vecalchemy.doctor(engine)
        errors = [f for f in findings if f.severity == "error"]
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidArgument(f"limit must be a positive integer, got {limit!r}")
    if isinstance(queries, str):
        raise InvalidArgument("queries must be a list of SQL statements, not one string")
    if isinstance(engine, sa.Connection):
        return _run(engine, table, metadata, queries, limit)
    with engine.connect() as conn:
        # Never autocommit (where SET TRANSACTION READ ONLY would not hold): one snapshot.
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            return _run(conn, table, metadata, queries, limit)
        finally:
            conn.rollback()


def _run(
    conn: sa.Connection,
    table: str | None,
    metadata: sa.MetaData | None,
    queries: Sequence[str] | None,
    limit: int,
) -> list[Finding]:
    if not conn.in_transaction():
        conn.begin()
    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    cat = Catalog(conn, table)
    found: list[Finding] = []
    for check in CHECKS:
        found.extend(check(cat))
    if metadata is not None:
        found.extend(_declared(cat, metadata))
    if queries:
        found.extend(check_queries(cat, queries, limit=limit))
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(found, key=lambda f: (order[f.severity], f.code, f.object))


def _extension(cat: Catalog) -> Iterator[Finding]:
    conn = cat.conn
    version = conn.execute(
        sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    ).scalar()
    if version is None:
        available = conn.execute(
            sa.text("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
        ).scalar()
        yield Finding(
            "VA101",
            "error",
            "database",
            "the vector extension is not installed"
            + (f" (pgvector {available} is available)" if available else ""),
            "without it there are no vector types, distances or indexes",
            "CREATE EXTENSION vector;"
            if available
            else "install pgvector on the server, then: CREATE EXTENSION vector;",
        )
        return
    if version_tuple(version) < (0, 8, 0):
        missing = ["iterative index scans (filtered searches return fewer than k rows)"]
        if version_tuple(version) < (0, 7, 0):
            missing.append("halfvec, sparsevec and bit indexes, binary quantization")
        yield Finding(
            "VA102",
            "warning",
            "extension vector",
            f"pgvector {version} is older than 0.8.0; it lacks " + "; ".join(missing),
            "filtered and post-update searches silently return fewer than k rows",
            "install pgvector 0.8.0 or later on the server, then: ALTER EXTENSION vector UPDATE;",
        )


def _columns(cat: Catalog) -> Iterator[Finding]:
    conn, table = cat.conn, cat.table
    rows = conn.execute(sa.text(_COLUMNS), {"table": table}).all()
    indexes = cat.indexes
    for schema, tbl, col, typ, typmod, attstorage, avg_width in rows:
        rel = qualified(schema, tbl)
        where = f"{rel}.{qualified(None, col)}"
        if typmod < 0:
            yield Finding(
                "VA201",
                "error",
                where,
                f"{typ} column without dimensions",
                "pgvector cannot index a column whose vectors may have any length, so "
                "every search on it scans the whole table",
                f"ALTER TABLE {rel} ALTER COLUMN {qualified(None, col)} TYPE {typ}(<dim>);",
            )
            continue
        storage = Storage.parse(typ)
        width = 8 + typmod * (4 if storage is Storage.VECTOR else 2)
        if storage is not Storage.SPARSEVEC and attstorage in ("x", "e") and width > _TOAST:
            plain = width <= _PLAIN_MAX
            yield Finding(
                "VA203",
                "warning",
                where,
                f"{typ}({typmod}) values take {width:,} bytes, past TOAST's 2 KB threshold, "
                "so they are stored out of line",
                "the planner underestimates the cost of reading TOASTed vectors and prefers "
                "sequential scans, and every distance computation reads the TOAST table",
                f"ALTER TABLE {rel} ALTER COLUMN {qualified(None, col)} SET STORAGE PLAIN;"
                if plain
                else f"store it as halfvec({typmod}) (half the bytes), or use fewer dimensions",
            )
        elif (
            storage is not Storage.SPARSEVEC
            and attstorage in ("x", "e")
            and avg_width is not None
            and avg_width < width / 2
        ):
            # ANALYZE measures a TOASTed value by its pointer (18 bytes): narrow enough
            # values moved out of line because the rows around them are wide.
            yield Finding(
                "VA203",
                "warning",
                where,
                f"{typ}({typmod}) values take {width:,} bytes but average {avg_width} bytes "
                "in the table's statistics: the rows are wider than TOAST's 2 KB, so the "
                "vectors are stored out of line",
                "exact scans (filters, small tables, the fallback after dead index entries) "
                "read every vector from the TOAST table, several times slower, and the "
                "planner does not know it",
                f"ALTER TABLE {rel} ALTER COLUMN {qualified(None, col)} SET STORAGE MAIN;  "
                f"-- keeps new vectors in the row; then rewrite the table (VACUUM FULL "
                f"{rel}, or pg_repack) to move the old ones back",
            )
        limit = INDEX_DIM_LIMITS[storage]
        if storage is Storage.SPARSEVEC or typmod <= limit:
            continue
        on_col = [
            i for i in indexes if i.nspname == schema and i.tbl == tbl and col in i.definition
        ]
        if any("halfvec" in i.opcname or "bit" in i.opcname for i in on_col):
            continue
        yield Finding(
            "VA202",
            "warning",
            where,
            f"{typ}({typmod}) has more dimensions than pgvector indexes ({limit:,}) and no "
            "halfvec or binary-quantized expression index",
            "every search on it scans the whole table",
            f"CREATE INDEX ON {rel} USING hnsw (({qualified(None, col)}::halfvec({typmod})) "
            "halfvec_cosine_ops);  -- use the opclass of your metric, and query with the "
            f"same cast: ORDER BY {qualified(None, col)}::halfvec({typmod}) <=> ...",
        )


def _indexes(cat: Catalog) -> Iterator[Finding]:
    conn = cat.conn
    rows = cat.indexes
    work_mem = conn.execute(
        sa.text(
            "SELECT setting::bigint * CASE unit WHEN 'kB' THEN 1024 WHEN '8kB' THEN 8192"
            " WHEN 'MB' THEN 1048576 ELSE 1 END FROM pg_settings"
            " WHERE name = 'maintenance_work_mem'"
        )
    ).scalar()
    seen: dict[tuple[str, str, str, bool], str] = {}
    for r in rows:
        rel = qualified(r.nspname, r.tbl)
        idx = qualified(r.nspname, r.idx)
        if not r.indisvalid:
            yield Finding(
                "VA302",
                "error",
                idx,
                f"index {r.idx} on {r.tbl} is invalid (a CREATE INDEX CONCURRENTLY that "
                "failed or was cancelled)",
                "PostgreSQL never uses it for queries but still updates it on every write",
                f"DROP INDEX CONCURRENTLY {idx}; -- then build it again, or: "
                f"REINDEX INDEX CONCURRENTLY {idx};",
            )
            continue
        key = (r.nspname, r.tbl, expression_of(r.definition), r.partial)
        if key in seen and not r.partial:
            yield Finding(
                "VA301",
                "warning",
                idx,
                f"{r.idx} and {seen[key]} index the same expression of {r.tbl}",
                "every write updates both (HNSW inserts are expensive), and the planner "
                "uses one of them",
                f"DROP INDEX CONCURRENTLY {idx};",
            )
        else:
            seen.setdefault(key, r.idx)
        if r.amname == "ivfflat":
            yield from _ivfflat(r, rel, idx)
        elif work_mem is not None:
            yield from _hnsw_memory(r, idx, work_mem)


def _ivfflat(r: Any, rel: str, idx: str) -> Iterator[Finding]:
    options = dict(o.split("=", 1) for o in (r.reloptions or ()))
    lists = int(options.get("lists", 100))
    rows = int(r.rows)
    rule = ivfflat_lists_for(rows)
    if rows < 10 * lists or not rule / 4 <= lists <= rule * 4:
        yield Finding(
            "VA303",
            "warning",
            idx,
            f"IVFFlat index {r.idx} has {lists} lists for about {rows:,} rows (the rule "
            f"gives {rule}: rows/1000 up to 1M rows, sqrt(rows) above)",
            "lists learnt from too few rows (an empty or small table at build time) or "
            "far from the rule give poor recall or slow searches",
            f"DROP INDEX CONCURRENTLY {idx}; CREATE INDEX CONCURRENTLY {qualified(None, r.idx)} "
            f"ON {rel} USING ivfflat ({expression_of(r.definition)}) WITH (lists = {rule});",
        )


def _hnsw_memory(r: Any, idx: str, work_mem: int) -> Iterator[Finding]:
    """pgvector builds an HNSW graph fast while it fits in maintenance_work_mem, and
    much slower once it spills (see vecalchemy._index_memory for the estimate)."""
    options = dict(o.split("=", 1) for o in (r.reloptions or ()))
    m = int(options.get("m", 16))
    dim = _dim_of(r.definition, r.typmod)
    parsed = Metric.from_opclass(r.opcname)
    if dim is None or parsed is None or parsed[1] is Storage.SPARSEVEC:
        return
    need = hnsw_graph_bytes(int(r.rows), dim, parsed[1], m)
    if need <= work_mem:
        return
    gib = need / 2**30
    want = format_bytes(memory_for(need))
    yield Finding(
        "VA305",
        "info",
        idx,
        f"rebuilding HNSW index {r.idx} needs about {gib:.2f} GiB for its graph "
        f"({int(r.rows):,} rows), more than maintenance_work_mem ({work_mem / 2**20:.0f} MB)",
        "a build that does not fit in memory spills and runs many times slower "
        "(REINDEX, a new index, or vecalchemy.build_indexes)",
        f"SET maintenance_work_mem = '{want}'; -- in the session that builds, within the "
        "server's memory; also SET max_parallel_maintenance_workers (or: vecalchemy index "
        "build, which sets both)",
    )


def _dim_of(definition: str, typmod: int | None) -> int | None:
    m = re.search(r"::(?:halfvec|vector|bit)\((\d+)\)", definition)
    if m:
        return int(m.group(1))
    return typmod if typmod is not None and typmod > 0 else None


def _dead(cat: Catalog) -> Iterator[Finding]:
    conn, table = cat.conn, cat.table
    rows = conn.execute(
        sa.text(
            "SELECT s.schemaname, s.relname, s.n_live_tup, s.n_dead_tup"
            " FROM pg_stat_all_tables s WHERE s.n_dead_tup > 1000"
            " AND s.n_dead_tup > 0.2 * (s.n_live_tup + s.n_dead_tup)"
            " AND (CAST(:table AS text) IS NULL OR s.relname = :table)"
            " AND EXISTS (SELECT 1 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " JOIN pg_am am ON am.oid = i.relam WHERE x.indrelid = s.relid"
            " AND am.amname IN ('hnsw', 'ivfflat')) ORDER BY 1, 2"
        ),
        {"table": table},
    ).all()
    for schema, tbl, live, dead in rows:
        rel = qualified(schema, tbl)
        yield Finding(
            "VA304",
            "warning",
            rel,
            f"{dead:,} dead rows against {live:,} live ones in a table with a vector index",
            "dead index entries crowd the nearest neighbours out of an index scan (a search "
            "returns fewer rows, or must scan further), until VACUUM removes them "
            "(pgvector issue #450)",
            f"VACUUM (ANALYZE) {rel}; -- and if the index stays bloated: "
            f"REINDEX TABLE CONCURRENTLY {rel};",
        )


def _settings(cat: Catalog) -> Iterator[Finding]:
    conn = cat.conn
    cost = conn.execute(sa.text("SELECT current_setting('random_page_cost')::float")).scalar()
    if cost is not None and cost < 2.0:
        yield Finding(
            "VA401",
            "warning",
            "setting random_page_cost",
            f"random_page_cost = {cost:g}",
            "with index scans this cheap, a query ordering by distance without a LIMIT "
            "is served by the vector index, which returns at most hnsw.ef_search rows "
            "(40 by default): the result is silently truncated",
            "ALTER DATABASE <db> SET random_page_cost = 4; -- or give every distance "
            "ordering a LIMIT (vecalchemy does that for its own statements)",
        )


def _mismatch(r: Any, where: str, declared: str, by: str, fix: str) -> Finding:
    idx = qualified(r.nspname, r.idx)
    return Finding(
        "VA306",
        "error",
        idx,
        f"index {r.idx} uses {r.opcname}, but {by} declares {where} with {declared}",
        "queries by the declared metric cannot use this index: every search scans the whole table",
        f"DROP INDEX CONCURRENTLY {idx}; -- then {fix}",
    )


def _declared(cat: Catalog, metadata: sa.MetaData) -> Iterator[Finding]:
    """The models' declared metric and index against the database's vector indexes."""
    conn, table = cat.conn, cat.table
    from vecalchemy._sql import INFO_KEY
    from vecalchemy.schema import VectorSpec, resolve_spec

    for t in metadata.tables.values():
        if table is not None and t.name != table:
            continue
        schema = t.schema or "public"
        for col in t.columns:
            spec = col.info.get(INFO_KEY)
            if not isinstance(spec, VectorSpec) or spec.index is None:
                continue
            on_col = indexes_on(cat, schema, t.name, col.name)
            where = f"{qualified(schema, t.name)}.{qualified(None, col.name)}"
            if any(r.opcname == spec.opclass for r in on_col):
                continue
            declared = f"metric {spec.metric.value!r} ({spec.opclass})"
            if on_col:
                yield _mismatch(
                    on_col[0],
                    where,
                    declared,
                    "the model",
                    "vecalchemy.build_indexes(engine, Model), or declare the metric the "
                    "index serves",
                )
            elif conn.execute(
                sa.text("SELECT to_regclass(:t)"), {"t": qualified(schema, t.name)}
            ).scalar():
                yield Finding(
                    "VA307",
                    "warning",
                    where,
                    f"the model declares a {spec.index.method.value} index with {declared} "
                    f"({resolve_spec(col)[1].index_name}); the database has none",
                    "every search scans the whole table",
                    "vecalchemy.build_indexes(engine, Model)  -- or a migration with "
                    "op.create_vector_index(...)",
                )


_COLLECTIONS = """
SELECT n.nspname, c.relname, obj_description(c.oid, 'pg_class') AS comment, t.typname
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'embedding' AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
WHERE c.relkind IN ('r', 'p') AND obj_description(c.oid, 'pg_class') LIKE '%"vecalchemy"%'
  AND (CAST(:table AS text) IS NULL OR c.relname = :table)
ORDER BY 1, 2
"""


def _collections(cat: Catalog) -> Iterator[Finding]:
    """Collections record their metric in their table's comment: their indexes must
    serve it (also when the index was rebuilt by hand, or the table restored)."""
    from vecalchemy.collection._table import collection_config
    from vecalchemy.metrics import Metric

    for schema, tbl, comment, typname in cat.conn.execute(
        sa.text(_COLLECTIONS), {"table": cat.table}
    ).all():
        config = collection_config(comment)
        if config is None or not isinstance(config.get("metric"), str):
            continue
        try:
            metric = Metric.parse(config["metric"])
            opclass = metric.opclass(Storage.parse(typname))
        except VecalchemyError:
            continue
        on_col = indexes_on(cat, schema, tbl, "embedding")
        if on_col and not any(r.opcname == opclass for r in on_col):
            yield _mismatch(
                on_col[0],
                f"{qualified(schema, tbl)}.embedding",
                f"metric {metric.value!r} ({opclass})",
                f"collection {tbl!r}",
                f"CREATE INDEX CONCURRENTLY ON {qualified(schema, tbl)} USING hnsw "
                f"(embedding {opclass});",
            )


CHECKS: tuple[Callable[[Catalog], Iterator[Finding]], ...] = (
    _extension,
    _columns,
    _indexes,
    _dead,
    _settings,
    _collections,
)
