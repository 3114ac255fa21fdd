"""The storage report: what each vector column costs on disk, and what halfvec or binary
quantization would save, measured on a sample of its own values."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from vecalchemy._catalog import mentions
from vecalchemy._names import qualified
from vecalchemy.errors import InvalidArgument
from vecalchemy.metrics import INDEX_DIM_LIMITS, Metric, Storage

__all__ = ["ColumnStorage", "IndexSize", "Saving", "StorageOption", "storage_report"]

_STORAGE_NAMES = {"p": "plain", "e": "external", "m": "main", "x": "extended"}


def _fits(v: str) -> str:
    """Whether vector ``v`` fits halfvec: every element within ±65,504 (a norm within it
    proves that cheaply)."""
    return (
        f"(vector_norm({v}) <= 65504 OR (SELECT max(abs(x)) FROM unnest({v}::real[]) x) <= 65504)"
    )


#: The storages each column type's values could be converted to.
_ALTERNATIVES = {Storage.VECTOR: (Storage.HALFVEC, Storage.BIT), Storage.HALFVEC: (Storage.BIT,)}

_TABLES = """
SELECT c.oid, c.relkind
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = :name AND (CAST(:schema AS text) IS NULL OR n.nspname = :schema)
  AND c.relkind IN ('r', 'p', 'm') AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""

_LEAVES = "SELECT relid::oid FROM pg_partition_tree(:oid) WHERE isleaf ORDER BY 1"

_COLUMNS = """
SELECT c.oid AS relid, n.nspname, c.relname, a.attnum, a.attname, t.typname,
       a.atttypmod AS typmod, a.attstorage, c.reltuples::float8 AS reltuples,
       pg_relation_size(c.oid) AS heap,
       coalesce(pg_relation_size(nullif(c.reltoastrelid, 0)), 0) AS toast,
       coalesce(pg_indexes_size(nullif(c.reltoastrelid, 0)), 0) AS toast_index,
       pg_total_relation_size(c.oid) AS total,
       has_column_privilege(c.oid, a.attnum, 'SELECT') AS readable
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
WHERE t.typname IN ('vector', 'halfvec', 'sparsevec', 'bit') AND c.relkind IN ('r', 'm')
  AND c.relpersistence <> 't' AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND (CAST(:relids AS oid[]) IS NULL OR c.oid = ANY(CAST(:relids AS oid[])))
ORDER BY 2, 3, 4
"""

_INDEXES = """
SELECT x.indrelid AS relid, i.relname, am.amname, x.indisvalid, x.indkey::int2[] AS indkey,
       ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true)
             FROM generate_series(1, x.indnkeyatts) k ORDER BY k) AS keys,
       ARRAY(SELECT o.opcname FROM unnest(x.indclass::oid[]) WITH ORDINALITY u(oid, k)
             JOIN pg_opclass o ON o.oid = u.oid ORDER BY u.k) AS opclasses,
       pg_relation_size(x.indexrelid) AS bytes, i.reloptions
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_am am ON am.oid = i.relam
WHERE x.indrelid = ANY(CAST(:relids AS oid[]))
ORDER BY i.relname
"""


@dataclass(frozen=True)
class IndexSize:
    """One index on a vector column or on an expression of it (a halfvec cast, a binary
    quantization): its ``name``, access ``method``, operator class, the indexed ``key``
    (the column or the expression), whether it is ``valid``, its size in ``bytes``
    (``pg_relation_size``) and its build ``options`` (``m=16``, ``lists=100``)."""

    name: str
    method: str
    opclass: str
    key: str
    valid: bool
    bytes: int
    options: tuple[str, ...]


@dataclass(frozen=True)
class Saving:
    """What one storage option saves against the column as it is stored now.

    ``value_bytes`` / ``value_pct``: per value, from the sizes measured on the sample;
    ``table_bytes`` / ``table_pct`` and ``index_bytes`` / ``index_pct``: projected from
    the sample's temporary tables and indexes (``measure_indexes=True``; None otherwise).
    """

    value_bytes: float | None
    value_pct: float | None
    table_bytes: int | None
    table_pct: float | None
    index_bytes: int | None
    index_pct: float | None


@dataclass(frozen=True)
class StorageOption:
    """The column's values stored one way: as they are now (the first option of a
    :class:`ColumnStorage`), as ``halfvec``, or binary-quantized to ``bit``.

    * ``computed_bytes``: one value, from the type's layout (``4·d + 8`` for vector,
      ``2·d + 8`` for halfvec, ``⌈d/8⌉ + 8`` for bit, ``8·nnz + 16`` for sparsevec with
      the sample's mean ``nnz``);
    * ``measured_bytes``: the mean ``pg_column_size`` over the sample: of the stored
      values for the current option, of the cast (``col::halfvec(d)``,
      ``binary_quantize(col)::bit(d)``) for the others;
    * ``table_bytes``: the table (heap + TOAST + TOAST index) with the column stored this
      way: the actual size for the current option; for the others, projected from
      temporary copies of the sample (``measure_indexes=True``, else None);
    * ``index_bytes``: the index the column's method builds on values stored this way,
      measured on the sample and scaled to the table's values (``measure_indexes=True``);
      ``index`` is what was built (or why none was);
    * ``saving``: against the current option (None for the current one).
    """

    type: str
    storage: Storage
    computed_bytes: float | None
    measured_bytes: float | None
    table_bytes: int | None = None
    index_bytes: int | None = None
    index: str | None = None
    saving: Saving | None = None


@dataclass(frozen=True)
class ColumnStorage:
    """The storage of one vector column (vector, halfvec, sparsevec or bit) of a table.

    * ``rows``: the table's rows (``reltuples``, or ``count(*)`` when the table was never
      analyzed; ``rows_counted`` tells which); ``values``: its non-null values, from the
      sample's share of NULLs;
    * ``sampled``: how many non-null values the per-value sizes were measured on (0 when
      the role may not read the column: then only catalog sizes and ``computed_bytes``);
    * ``out_of_line``: how many sampled values are stored in the TOAST table
      (``pg_column_toast_chunk_id``, PostgreSQL 17+; None before), ``compressed``: how
      many are compressed;
    * ``heap_bytes``, ``toast_bytes``, ``toast_index_bytes``: the table's main fork, its
      TOAST table and the TOAST table's index; ``total_bytes``: everything, indexes
      included (``pg_total_relation_size``);
    * ``indexes``: each index on the column or an expression of it, with its size;
    * ``options``: the column as it is stored now, then halfvec and bit where they apply,
      each with its per-value size computed and measured (see :class:`StorageOption`);
    * ``notes``: what could not be measured, and why.

    Example::

        for col in vecalchemy.storage_report(engine, table="docs"):
            now, *others = col.options
            for opt in others:
                print(col.column, opt.type, f"saves {opt.saving.value_pct:.0f}% per value")
    """

    schema: str
    table: str
    column: str
    type: str
    dims: int | None
    storage: str
    rows: int | None
    rows_counted: bool
    values: int | None
    sampled: int
    computed_bytes: float | None
    measured_bytes: float | None
    out_of_line: int | None
    compressed: int | None
    heap_bytes: int
    toast_bytes: int
    toast_index_bytes: int
    total_bytes: int
    indexes: tuple[IndexSize, ...]
    options: tuple[StorageOption, ...]
    notes: tuple[str, ...]

    @property
    def table_bytes(self) -> int:
        """The table without its indexes: heap + TOAST + TOAST index."""
        return self.heap_bytes + self.toast_bytes + self.toast_index_bytes

    @property
    def index_bytes(self) -> int:
        """All the indexes on the column (or expressions of it) together."""
        return sum(ix.bytes for ix in self.indexes)

    def as_dict(self) -> dict[str, Any]:
        """The report of this column as a JSON-ready dict (sizes in bytes)."""
        out = asdict(self)
        out["table_bytes"] = self.table_bytes
        out["index_bytes"] = self.index_bytes
        for opt in out["options"]:
            opt["storage"] = opt["storage"].value
        return out


def storage_report(
    engine: Engine | sa.Connection,
    *,
    table: str | None = None,
    sample: int = 1000,
    measure_indexes: bool = False,
) -> list[ColumnStorage]:
    """The storage of every vector column (of ``table``: ``name`` or ``schema.name``):
    rows, bytes per value computed and measured, heap, TOAST and index sizes, and what
    halfvec or binary quantization would save.

    By default it reads only the catalog and a ``sample`` of each column's values, in a
    ``READ ONLY`` transaction: a role with only ``SELECT`` rights gets the whole report,
    one with no rights on a table gets its catalog sizes and a note. With
    ``measure_indexes=True`` it also copies the sample into temporary tables (as it is,
    as halfvec and as bit), builds the column's index method on each (HNSW with the
    column's ``m`` and ``ef_construction``, ``bit_hamming_ops`` for bit) and scales the
    sizes to the table's values; the temporary tables are dropped before it returns, and
    nothing else is written.

    Raises :class:`~vecalchemy.InvalidArgument` for a ``table`` that does not exist.

    Example::

        for col in vecalchemy.storage_report(engine, table="docs", measure_indexes=True):
            print(col.column, col.measured_bytes, col.toast_bytes, col.index_bytes)
            for opt in col.options[1:]:
                print(" as", opt.type, opt.saving)
    """
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        raise InvalidArgument(f"sample must be a positive integer, got {sample!r}")
    if isinstance(engine, sa.Connection):
        return _report(engine, table, sample, measure_indexes, own=False)
    with engine.connect() as conn:
        # Never autocommit (where SET TRANSACTION READ ONLY would not hold), and one
        # snapshot for the catalog sizes and the samples.
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        return _report(conn, table, sample, measure_indexes, own=True)


def _report(
    conn: sa.Connection, table: str | None, sample: int, measure: bool, *, own: bool
) -> list[ColumnStorage]:
    if not conn.in_transaction():
        conn.begin()
    if own or not measure:
        # A caller's connection that measures creates temporary tables in its transaction.
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    try:
        found = _read(conn, table, sample)
    finally:
        if own:
            conn.rollback()
    if not measure:
        return [col for col, _ in found]
    if own:
        conn.begin()
    try:
        return [_measure(conn, col, probe) for col, probe in found]
    finally:
        if own:
            conn.rollback()


@dataclass(frozen=True)
class _Probe:
    """What the measuring step needs from the reading step for one column."""

    relid: int
    rel: str  # the table, quoted
    rows: int | None
    sample: int
    index: IndexSize | None  # the column's vector index whose method is copied
    readable: bool


def _relids(conn: sa.Connection, table: str | None) -> list[int] | None:
    """The tables to report (a partitioned table's leaf partitions), or None for all."""
    if table is None:
        return None
    rows = conn.execute(sa.text(_TABLES), {"name": table, "schema": None}).all()
    if not rows and "." in table:
        schema, _, name = table.rpartition(".")
        rows = conn.execute(sa.text(_TABLES), {"name": name, "schema": schema}).all()
    if not rows:
        raise InvalidArgument(
            f"no table {table!r} in this database; give its name as it is in "
            "pg_class (schema.table for another schema)"
        )
    out: list[int] = []
    for oid, kind in rows:
        if kind == "p":
            out.extend(conn.execute(sa.text(_LEAVES), {"oid": oid}).scalars())
        else:
            out.append(oid)
    return out


def _read(
    conn: sa.Connection, table: str | None, sample: int
) -> list[tuple[ColumnStorage, _Probe]]:
    relids = _relids(conn, table)
    if relids == []:
        return []
    cols = conn.execute(sa.text(_COLUMNS), {"relids": relids}).all()
    if not cols:
        return []
    indexes = conn.execute(sa.text(_INDEXES), {"relids": sorted({c.relid for c in cols})}).all()
    version = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one())
    return [_column(conn, c, _on_column(indexes, c), sample, version) for c in cols]


def _on_column(indexes: Sequence[Any], col: Any) -> tuple[IndexSize, ...]:
    """The indexes whose key is the column or an expression of it (not a WHERE on it)."""
    out = []
    for r in indexes:
        if r.relid != col.relid:
            continue
        for attnum, key, opclass in zip(r.indkey, r.keys, r.opclasses, strict=False):
            if attnum == col.attnum or (attnum == 0 and mentions(key, col.attname)):
                options = tuple(r.reloptions or ())
                out.append(
                    IndexSize(r.relname, r.amname, opclass, key, r.indisvalid, r.bytes, options)
                )
                break
    return tuple(out)


def _column(
    conn: sa.Connection, c: Any, indexes: tuple[IndexSize, ...], sample: int, version: int
) -> tuple[ColumnStorage, _Probe]:
    storage = Storage.parse(c.typname)
    dims = c.typmod if c.typmod > 0 else None
    rel = qualified(c.nspname, c.relname)
    notes: list[str] = []
    rows: int | None = int(c.reltuples) if c.reltuples >= 0 else None
    counted = False
    if rows is None and c.readable:
        rows, counted = int(conn.execute(sa.text(f"SELECT count(*) FROM {rel}")).scalar_one()), True
    elif rows is None:
        notes.append("the table was never analyzed and may not be read: its row count is unknown")
    vector_index = next(
        (ix for ix in indexes if ix.valid and ix.method in ("hnsw", "ivfflat")), None
    )
    source = _source(rel, f"{qualified(None, c.attname)} AS v", rows, sample)
    m: Any = None
    if not c.readable:
        notes.append(
            f"no SELECT right on {c.attname}: sizes come from the catalog only "
            "(computed per value, not measured)"
        )
    else:
        sql = _sample_sql(storage, dims, version)
        m = conn.execute(sa.text(sql + source)).one()
        if m.seen == 0 and rows:  # TABLESAMPLE picked no block: read the first rows instead
            source = _source(rel, f"{qualified(None, c.attname)} AS v", 0, sample)
            m = conn.execute(sa.text(sql + source)).one()
    sampled = int(m.n) if m is not None else 0
    if m is not None and sampled == 0:
        notes.append("no non-null value in the sample: nothing to measure")
    if version < 170000 and sampled:
        notes.append("PostgreSQL < 17 cannot tell which values are out of line")
    nnz = float(m.nnz) if storage is Storage.SPARSEVEC and sampled else None
    values = None
    if rows is not None and m is not None and m.seen:
        values = round(rows * m.n / m.seen)
    options = [
        StorageOption(
            f"{c.typname}({dims})" if dims else c.typname,
            storage,
            _computed(storage, dims, nnz),
            _num(m.bytes) if sampled else None,
            table_bytes=c.heap + c.toast + c.toast_index,
        )
    ]
    for alt in _ALTERNATIVES.get(storage, ()):
        measured = getattr(m, alt.value) if sampled else None
        options.append(
            StorageOption(
                f"{alt.value}({dims})" if dims else alt.value,
                alt,
                _computed(alt, dims, None),
                _num(measured),
            )
        )
    if storage is Storage.SPARSEVEC:
        notes.append("halfvec and binary quantization apply to dense vectors, not to sparsevec")
    if storage is Storage.VECTOR and sampled and m.overflow:
        notes.append(
            f"{m.overflow:,} of {sampled:,} sampled values have elements beyond halfvec's "
            "range (±65,504): a halfvec column would reject them (measured on the others)"
        )
    col = ColumnStorage(
        schema=c.nspname,
        table=c.relname,
        column=c.attname,
        type=c.typname,
        dims=dims,
        storage=_STORAGE_NAMES.get(c.attstorage, c.attstorage),
        rows=rows,
        rows_counted=counted,
        values=values,
        sampled=sampled,
        computed_bytes=options[0].computed_bytes,
        measured_bytes=options[0].measured_bytes,
        out_of_line=int(m.toasted) if sampled and m.toasted is not None else None,
        compressed=int(m.compressed) if sampled else None,
        heap_bytes=c.heap,
        toast_bytes=c.toast,
        toast_index_bytes=c.toast_index,
        total_bytes=c.total,
        indexes=indexes,
        options=_with_savings(options),
        notes=tuple(notes),
    )
    return col, _Probe(c.relid, rel, rows, sample, vector_index, bool(c.readable))


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _computed(storage: Storage, dims: int | None, nnz: float | None) -> float | None:
    """One value's bytes from the type's layout (pgvector's structs: a 4-byte varlena
    header and 4 bytes of dimensions; sparsevec 16 bytes, then an index and a value per
    non-zero; bit: PostgreSQL's varbit, a header and the bit length, then the bits)."""
    if storage is Storage.SPARSEVEC:
        return None if nnz is None else 8 * nnz + 16
    return None if dims is None else float(storage.bytes_per_row(dims))


def _source(rel: str, select: str, rows: int | None, sample: int) -> str:
    """The sample's FROM clause: the first ``sample`` rows of a small table, a block sample
    (about three times ``sample`` rows, cut to ``sample``) of a large one."""
    how = ""
    if rows is not None and rows > 10 * sample:
        how = f" TABLESAMPLE SYSTEM ({min(100.0, 300.0 * sample / rows):.6f}) REPEATABLE (0)"
    return f"(SELECT {select} FROM {rel}{how} LIMIT {sample}) s"


def _sample_sql(storage: Storage, dims: int | None, version: int) -> str:
    """What is measured on the sample of a column (``SELECT ... FROM``, without the
    sample's FROM clause)."""
    toasted = (
        "count(*) FILTER (WHERE pg_column_toast_chunk_id(v) IS NOT NULL)"
        if version >= 170000
        else "NULL::bigint"
    )
    items = [
        "count(*) AS seen",
        "count(v) AS n",
        "avg(pg_column_size(v)) AS bytes",
        f"{toasted} AS toasted",
        "count(*) FILTER (WHERE pg_column_compression(v) IS NOT NULL) AS compressed",
    ]
    cast = f"({dims})" if dims else ""
    if storage is Storage.VECTOR:
        # CASE, not FILTER: a value beyond halfvec's range must never reach the cast.
        items.append(
            f"avg(CASE WHEN {_fits('v')} THEN pg_column_size(v::halfvec{cast}) END) AS halfvec"
        )
        items.append(f"count(*) FILTER (WHERE NOT {_fits('v')}) AS overflow")
    if storage in (Storage.VECTOR, Storage.HALFVEC):
        items.append(f"avg(pg_column_size(binary_quantize(v)::bit{cast})) AS bit")
    if storage is Storage.SPARSEVEC:
        # A stored value may be short-headed or TOASTed: the size of a fresh copy is exact.
        items.append("avg((pg_column_size(v::text::sparsevec) - 16) / 8.0) AS nnz")
    return f"SELECT {', '.join(items)} FROM "


def _with_savings(options: list[StorageOption]) -> tuple[StorageOption, ...]:
    now = options[0]
    out = [replace(now, saving=None)]
    for opt in options[1:]:
        value = _diff(now.measured_bytes, opt.measured_bytes)
        table = _diff(now.table_bytes, opt.table_bytes)
        index = _diff(now.index_bytes, opt.index_bytes)
        saving = Saving(
            value_bytes=value,
            value_pct=_pct(value, now.measured_bytes),
            table_bytes=None if table is None else round(table),
            table_pct=_pct(table, now.table_bytes),
            index_bytes=None if index is None else round(index),
            index_pct=_pct(index, now.index_bytes),
        )
        out.append(replace(opt, saving=saving))
    return tuple(out)


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _pct(part: float | None, whole: float | None) -> float | None:
    return None if part is None or not whole else 100.0 * part / whole


# -- measure_indexes: the sample in temporary tables ------------------------------------------


def _measure(conn: sa.Connection, col: ColumnStorage, probe: _Probe) -> ColumnStorage:
    if len(col.options) == 1:  # sparsevec, bit: nothing to compare with
        return col
    plan = _plan(conn, col, probe)
    if isinstance(plan, str):
        return replace(col, notes=(*col.notes, plan))
    made: list[str] = []
    try:
        copies = [_copy(conn, col, plan, i, made) for i in range(len(col.options))]
    except BaseException:
        # In a failed transaction the DROP fails too, and the rollback removes them.
        with contextlib.suppress(sa.exc.DBAPIError):
            _drop(conn, made)
        raise
    _drop(conn, made)
    base, values = copies[0], plan.values
    if not base.n:  # the table changed since the sample was read
        return replace(col, notes=(*col.notes, "indexes not measured: the copy got no values"))
    options = [replace(col.options[0], index_bytes=base.scaled_index(values), index=base.built)]
    for opt, copy in zip(col.options[1:], copies[1:], strict=True):
        table = None
        if copy.n:  # the table with this column's bytes per value instead of the current ones
            table = col.table_bytes + round((copy.table / copy.n - base.table / base.n) * values)
        index = copy.scaled_index(values)
        options.append(replace(opt, table_bytes=table, index_bytes=index, index=copy.built))
    notes = [
        f"table and index sizes of the options are projected from {base.n:,} sampled rows "
        f"copied into temporary tables, scaled to {plan.values:,} values"
    ]
    if plan.left_out:
        notes.append(
            f"the copies leave out {plan.left_out} column(s) the role may not read: the "
            "table projections count their bytes as unchanged"
        )
    return replace(col, options=_with_savings(options), notes=(*col.notes, *notes))


@dataclass(frozen=True)
class _Plan:
    """How the sample is copied: the temporary tables' name prefix, the sample's rows
    (every column the role may read), their column definitions, the vector column, its
    dimensions, the values the sample stands for, and the index method, metric and
    options of the column's own index."""

    prefix: str
    source: str
    columns: tuple[Any, ...]
    left_out: int  # columns the role may not read
    column: str
    dims: int
    values: int
    method: str
    metric: Metric
    options: tuple[str, ...]


_COPIED = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attstorage,
       t.typstorage, a.attcompression,
       has_column_privilege(a.attrelid, a.attnum, 'SELECT') AS readable
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = :relid AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_COMPRESSION = {"p": "pglz", "l": "lz4"}


@dataclass(frozen=True)
class _Copy:
    """One temporary copy of the sample, measured."""

    n: int
    table: int
    index: int | None
    built: str

    def scaled_index(self, values: int) -> int | None:
        """The index's bytes for ``values`` values, at the sample's bytes per value."""
        return None if self.index is None or not self.n else round(self.index / self.n * values)


def _plan(conn: sa.Connection, col: ColumnStorage, probe: _Probe) -> _Plan | str:
    """How to copy the sample, or why it cannot be (a note)."""
    if not probe.readable:
        return "indexes not measured: no SELECT right on the column"
    if col.dims is None:
        return "indexes not measured: a column without dimensions cannot be indexed"
    if not col.sampled or not col.values:
        return "indexes not measured: no values to sample"
    if not conn.execute(
        sa.text("SELECT has_database_privilege(current_database(), 'TEMP')")
    ).scalar():
        return (
            "indexes not measured: copying the sample needs the TEMP privilege on the "
            "database (GRANT TEMP ON DATABASE <db> TO <role>)"
        )
    # The column's own index, or HNSW with pgvector's defaults (l2) when it has none.
    method, metric = "hnsw", Metric.L2
    options: tuple[str, ...] = ()
    if probe.index is not None:
        found = Metric.from_opclass(probe.index.opclass)
        method, options = probe.index.method, probe.index.options
        metric = found[0] if found is not None else metric
    # Whole rows, so that the copies pack pages as the table does.
    every = conn.execute(sa.text(_COPIED), {"relid": probe.relid}).all()
    columns = tuple(c for c in every if c.readable)
    select = ", ".join(qualified(None, c.attname) for c in columns)
    source = _source(probe.rel, select, probe.rows, probe.sample)
    prefix = f"vecalchemy_sizes_{uuid.uuid4().hex[:12]}"
    left_out = len(every) - len(columns)
    return _Plan(
        prefix, source, columns, left_out, col.column, col.dims, col.values, method, metric, options
    )


def _copy(conn: sa.Connection, col: ColumnStorage, plan: _Plan, i: int, made: list[str]) -> _Copy:
    """Copy the sample into a temporary table as option ``i`` stores it, index it, and
    measure both. Option 0 (the column as it is) copies the sampled rows with the
    table's column types and storage; the others convert option 0's copy (the vector
    column only), so all hold the same rows."""
    opt = col.options[i]
    name = f"{plan.prefix}_{i}"
    defs, alter, select = [], [], []
    for c in plan.columns:
        ident = qualified(None, c.attname)
        target = c.attname == plan.column
        defs.append(f"{ident} {opt.type if target else c.type}")
        if i == 0 or not target:  # a converted column gets its new type's storage
            if c.attstorage != c.typstorage:
                alter.append(f"ALTER COLUMN {ident} SET STORAGE {_STORAGE_NAMES[c.attstorage]}")
            if c.attcompression in _COMPRESSION:
                alter.append(
                    f"ALTER COLUMN {ident} SET COMPRESSION {_COMPRESSION[c.attcompression]}"
                )
        if target and opt.storage is Storage.HALFVEC:
            select.append(f"{ident}::halfvec({plan.dims})")
        elif target and opt.storage is Storage.BIT:
            select.append(f"binary_quantize({ident})::bit({plan.dims})")
        else:
            select.append(ident)
    conn.exec_driver_sql(f"CREATE TEMP TABLE {name} ({', '.join(defs)})")
    made.append(name)
    if alter:
        conn.exec_driver_sql(f"ALTER TABLE {name} {', '.join(alter)}")
    column = qualified(None, plan.column)
    if i == 0:
        source, where = plan.source, f"{column} IS NOT NULL"
    else:
        source, where = f"pg_temp.{made[0]} s", "true"
        if opt.storage is Storage.HALFVEC:  # values beyond halfvec's range cannot be copied
            where = _fits(column)
    conn.exec_driver_sql(
        f"INSERT INTO {name} SELECT {', '.join(select)} FROM {source} WHERE {where}"
    )
    n = int(conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one())
    if not n:
        return _Copy(0, 0, None, f"none: no sampled value fits {opt.storage.value}")
    built, index = _build(conn, name, opt.storage, n, plan)
    table = conn.exec_driver_sql(
        "SELECT pg_relation_size(c.oid)"
        " + coalesce(pg_relation_size(nullif(c.reltoastrelid, 0)), 0)"
        " + coalesce(pg_indexes_size(nullif(c.reltoastrelid, 0)), 0)"
        f" FROM pg_class c WHERE c.oid = 'pg_temp.{name}'::regclass"
    ).scalar_one()
    return _Copy(n, int(table), index, built)


def _build(
    conn: sa.Connection, name: str, storage: Storage, n: int, plan: _Plan
) -> tuple[str, int | None]:
    """Build the column's index method on a temporary copy: (what was built, or why
    none was; its bytes)."""
    limit = INDEX_DIM_LIMITS[storage]
    if plan.dims > limit:
        return f"none: pgvector indexes {storage.value} up to {limit:,} dimensions", None
    if storage is Storage.BIT:
        opclass = "bit_hamming_ops"
    elif storage in plan.metric.storages:
        opclass = plan.metric.opclass(storage)
    else:
        return f"none: {plan.metric.value} has no {storage.value} operator class", None
    column = qualified(None, plan.column)
    options = list(plan.options)
    if plan.method == "ivfflat":
        # As many lists per sampled row as the real index has per row.
        lists = next((int(o.split("=", 1)[1]) for o in options if o.startswith("lists=")), 100)
        scaled = max(1, min(n, round(lists * n / plan.values)))
        options = [o for o in options if not o.startswith("lists=")] + [f"lists={scaled}"]
    with_ = f" WITH ({', '.join(options)})" if options else ""
    conn.exec_driver_sql(
        f"CREATE INDEX {name}_ix ON pg_temp.{name} USING {plan.method} ({column} {opclass}){with_}"
    )
    size = conn.exec_driver_sql(f"SELECT pg_relation_size('pg_temp.{name}_ix'::regclass)")
    return f"{plan.method} ({column} {opclass}){with_}", int(size.scalar_one())


def _drop(conn: sa.Connection, names: list[str]) -> None:
    """Drop the temporary copies (with their indexes and TOAST tables)."""
    if names:
        conn.exec_driver_sql("DROP TABLE " + ", ".join(f"pg_temp.{n}" for n in names))
