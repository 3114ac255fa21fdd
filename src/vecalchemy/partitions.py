"""Partitioned tables: one partition per tenant (LIST) or per hash bucket (HASH).

pgvector's answer to multi-tenant search: a table partitioned by the tenant column, with
the vector index declared once on the parent. PostgreSQL creates that index (HNSW
included) on every partition, present and future, and a query whose ``WHERE`` gives the
partition key as a value scans only that tenant's partition and its own small index:
no filtering after the index scan, no lost recall.

Declare the parent as an ordinary table with ``postgresql_partition_by``, and a primary
key that includes the partition key (PostgreSQL requires it of unique constraints on a
partitioned table)::

    class Doc(Base):
        __tablename__ = "docs"
        __table_args__ = {"postgresql_partition_by": "LIST (tenant)"}
        tenant: Mapped[str] = mapped_column(primary_key=True)
        id: Mapped[int] = mapped_column(primary_key=True)
        embedding = Embedding(384, metric="cosine")

    Base.metadata.create_all(engine)            # the parent, and its HNSW index
    add_partition(engine, Doc, values=["acme"])    # docs_acme, with its own HNSW index
    add_partition(engine, Doc, default=True)       # docs_default, for every other tenant
    hits = vecalchemy.search(session, Doc.embedding, q, k=5, where=Doc.tenant == "acme")

Rows only go into a table that has a partition for them (or a ``DEFAULT`` partition).
Run ``ANALYZE`` after loading a partition: until then the planner may guess that
``tenant = 'acme'`` is selective and prefer the primary key's B-tree to the HNSW index.
With ``HASH`` partitioning several tenants share a partition, so the tenant filter is
selective again inside it: for a small tenant the planner may rightly read its rows
through that B-tree and sort them exactly; a big one gets the HNSW index (with
:func:`vecalchemy.search`'s iterative scan keeping ``k`` rows coming).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import ExecutableDDLElement
from sqlalchemy.sql.compiler import DDLCompiler

from vecalchemy._names import MAX_IDENTIFIER_BYTES, digest, fit_identifier
from vecalchemy._sql import table_of
from vecalchemy.errors import ConfigurationError, InvalidArgument

__all__ = ["add_partition", "hash_partitions"]

_PARTITION_BY = re.compile(r"^\s*(list|hash|range)\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# pg_partitioned_table.partstrat
_STRATEGIES = {"l": "LIST", "h": "HASH", "r": "RANGE"}

_CATALOG_SQL = sa.text(
    # "char" columns cast to text: asyncpg returns "char" as bytes.
    "SELECT CAST(c.relkind AS text), CAST(p.partstrat AS text) FROM pg_class c "
    "LEFT JOIN pg_partitioned_table p ON p.partrelid = c.oid "
    "WHERE c.oid = to_regclass(CAST(:table AS text))"
)
_EXISTS_SQL = sa.text("SELECT to_regclass(CAST(:name AS text)) IS NOT NULL")


@dataclass(frozen=True)
class _Partitioning:
    """What a table's ``postgresql_partition_by`` declares."""

    strategy: str  # "LIST", "HASH" or "RANGE"
    key: tuple[str, ...]  # the key's columns (or expressions) as written


@dataclass(frozen=True)
class _Bound:
    """``FOR VALUES IN (...)``, ``FOR VALUES WITH (...)`` or ``DEFAULT``."""

    values: tuple[Any, ...] = ()
    modulus: int | None = None
    remainder: int | None = None
    default: bool = False


class _CreatePartition(ExecutableDDLElement):
    """``CREATE TABLE <name> PARTITION OF <parent> <bound>``."""

    def __init__(self, schema: str | None, name: str, parent: sa.Table, bound: _Bound) -> None:
        self.schema = schema
        self.name = name
        self.parent = parent
        self.bound = bound


@compiles(_CreatePartition)
def _compile_create(element: _CreatePartition, compiler: DDLCompiler, **kw: Any) -> str:
    preparer = compiler.preparer
    name = preparer.quote(element.name)
    if element.schema:
        name = f"{preparer.quote_schema(element.schema)}.{name}"
    bound = element.bound
    if bound.default:
        spec = "DEFAULT"
    elif bound.modulus is not None:
        spec = f"FOR VALUES WITH (MODULUS {bound.modulus:d}, REMAINDER {bound.remainder:d})"
    else:
        literals = ", ".join(_literal(v, compiler) for v in bound.values)
        spec = f"FOR VALUES IN ({literals})"
    return f"CREATE TABLE {name} PARTITION OF {preparer.format_table(element.parent)} {spec}"


def _literal(value: Any, compiler: DDLCompiler) -> str:
    """A partition bound value as SQL text that cannot be anything but that one constant.

    DDL takes no bind parameters, so values are written into the statement. Integers
    are written as digits; everything else as an escape string ``E'...'``, whose
    meaning does not depend on the session's ``standard_conforming_strings`` (a plain
    ``'...'`` with a backslash would), and which PostgreSQL casts to the key's type.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(int(value))
    text = str(value).replace("\\", "\\\\").replace("'", "''")
    if compiler.dialect.paramstyle in ("format", "pyformat"):
        # psycopg reads "%" as the start of a placeholder, even with no parameters.
        text = text.replace("%", "%%")
    return f"E'{text}'"


# -- the public functions -------------------------------------------------------------


def add_partition(
    bind: sa.Engine | sa.Connection,
    table: sa.Table | type[Any],
    name: str | None = None,
    *,
    values: Any = None,
    modulus: int | None = None,
    remainder: int | None = None,
    default: bool = False,
) -> str:
    """Create a partition of ``table`` and return its name.

    Give exactly one of:

    * ``values``: for a ``LIST``-partitioned table, the key value(s) the partition holds
      (``values="acme"`` or ``values=["acme", "globex"]``; ``None`` is SQL NULL);
    * ``modulus`` and ``remainder``: for a ``HASH``-partitioned table, the rows whose key
      hashes to ``remainder`` modulo ``modulus`` (see :func:`hash_partitions`);
    * ``default=True``: a ``LIST`` table's ``DEFAULT`` partition, for every key no
      other partition takes.

    ``name`` is a plain identifier (letters, digits, underscores; at most 63 bytes). By
    default it is ``<table>_<value>`` with the value lower-cased and reduced to letters,
    digits and underscores, plus a short hash of the value when that changed it (so
    ``"Acme"`` and ``"acme"`` get different partitions); ``<table>_p<remainder>`` for
    hash partitions and ``<table>_default``. The partition is created in the parent's
    schema, and gets every index of the parent, the vector index included.

    Values are user data and are written into the DDL only as quoted constants: each
    must be of the key column's Python type (a ``str`` for a text column, an ``int``
    for an integer one), checked before any SQL runs. ``bind`` is an ``Engine`` (the
    partition is created and committed) or a ``Connection`` (in its transaction, or in
    a SAVEPOINT of it). For async code: ``await conn.run_sync(add_partition, Doc, ...)``.

    Raises :class:`~vecalchemy.InvalidArgument` for bad arguments or a table that is
    not partitioned (declared without ``postgresql_partition_by``, or created before it
    was), and :class:`~vecalchemy.ConfigurationError` when the table does not exist or
    is partitioned differently in the database; nothing is created then.

    Example::

        add_partition(engine, Doc, values=["acme"])          # 'docs_acme'
        add_partition(engine, Doc, "docs_big", values=[1, 2])  # an integer key
        add_partition(engine, Doc, default=True)             # 'docs_default'
    """
    tbl = _as_table(table)
    parts = _partitioning(tbl)
    bound = _bound(tbl, parts, values=values, modulus=modulus, remainder=remainder, default=default)
    partition = _check_name(name) if name is not None else _default_name(tbl, bound)
    return _run(bind, lambda conn: _create(conn, tbl, parts, [(partition, bound)]))[0]


def hash_partitions(
    bind: sa.Engine | sa.Connection, table: sa.Table | type[Any], modulus: int
) -> list[str]:
    """Create all ``modulus`` partitions of a ``HASH``-partitioned table; return their names.

    They are named ``<table>_p0`` ... ``<table>_p<modulus - 1>`` and created in one
    transaction (all or none). Each gets the parent's indexes, the vector index included.

    Example::

        class Doc(Base):
            __tablename__ = "docs"
            __table_args__ = {"postgresql_partition_by": "HASH (tenant)"}
            ...

        hash_partitions(engine, Doc, 4)   # ['docs_p0', 'docs_p1', 'docs_p2', 'docs_p3']
    """
    tbl = _as_table(table)
    parts = _partitioning(tbl)
    _check_modulus(modulus)
    planned = []
    for r in range(modulus):
        bound = _bound(tbl, parts, values=None, modulus=modulus, remainder=r, default=False)
        planned.append((_default_name(tbl, bound), bound))
    return _run(bind, lambda conn: _create(conn, tbl, parts, planned))


# -- checking the arguments, before any SQL -------------------------------------------


def _as_table(table: object) -> sa.Table:
    try:
        return table_of(table)
    except InvalidArgument:
        raise InvalidArgument(
            f"table must be a sqlalchemy Table or a mapped class, got {table!r}"
        ) from None


def _partitioning(tbl: sa.Table) -> _Partitioning:
    declared = tbl.dialect_options["postgresql"].get("partition_by")
    if not declared:
        raise InvalidArgument(
            f"table {tbl.name!r} is not partitioned; declare it with "
            "__table_args__ = {'postgresql_partition_by': 'LIST (tenant)'} (or "
            "Table(..., postgresql_partition_by='LIST (tenant)')), then create it"
        )
    found = _PARTITION_BY.match(str(declared))
    if found is None:
        raise InvalidArgument(
            f"table {tbl.name!r} has postgresql_partition_by={declared!r}; expected "
            "'LIST (column)', 'HASH (column, ...)' or 'RANGE (column, ...)'"
        )
    key = tuple(k.strip().strip('"') for k in found.group(2).split(",") if k.strip())
    return _Partitioning(found.group(1).upper(), key)


def _bound(
    tbl: sa.Table,
    parts: _Partitioning,
    *,
    values: Any,
    modulus: object,
    remainder: object,
    default: object,
) -> _Bound:
    given = [
        what
        for what, present in (
            ("values", values is not None),
            ("modulus/remainder", modulus is not None or remainder is not None),
            ("default", default is not False),
        )
        if present
    ]
    if len(given) != 1:
        raise InvalidArgument(
            "give exactly one of values=[...] (LIST), modulus= with remainder= (HASH) or "
            f"default=True; got {' and '.join(given) if given else 'none of them'}"
        )
    if parts.strategy == "RANGE":
        raise InvalidArgument(
            f"table {tbl.name!r} is partitioned by RANGE; add_partition() creates LIST and "
            "HASH partitions: write CREATE TABLE ... PARTITION OF ... FOR VALUES FROM (...) "
            "TO (...) yourself"
        )
    where = f"table {tbl.name!r} is partitioned by {parts.strategy} ({', '.join(parts.key)})"
    if given[0] == "default":
        if default is not True:
            raise InvalidArgument(f"default must be True or False, got {default!r}")
        if parts.strategy == "HASH":
            raise InvalidArgument(
                f"{where}; a hash-partitioned table cannot have a default partition: create "
                "all its partitions with hash_partitions()"
            )
        return _Bound(default=True)
    if given[0] == "modulus/remainder":
        if parts.strategy != "HASH":
            raise InvalidArgument(f"{where}; give values=[...] or default=True, not a modulus")
        if modulus is None or remainder is None:
            raise InvalidArgument("give both modulus= and remainder= for a hash partition")
        m = _check_modulus(modulus)
        if isinstance(remainder, bool) or not isinstance(remainder, int):
            raise InvalidArgument(f"remainder must be an integer, got {remainder!r}")
        if not 0 <= remainder < m:
            raise InvalidArgument(
                f"remainder must be from 0 to modulus - 1 ({m - 1}), got {remainder}"
            )
        return _Bound(modulus=m, remainder=remainder)
    if parts.strategy != "LIST":
        raise InvalidArgument(
            f"{where}; give modulus= and remainder= (or use hash_partitions()), not values"
        )
    return _Bound(values=_check_values(tbl, parts, values))


def _check_modulus(modulus: object) -> int:
    if isinstance(modulus, bool) or not isinstance(modulus, int) or modulus < 1:
        raise InvalidArgument(f"modulus must be a positive integer, got {modulus!r}")
    return modulus


def _check_values(tbl: sa.Table, parts: _Partitioning, values: Any) -> tuple[Any, ...]:
    if len(parts.key) != 1 or parts.key[0] not in tbl.c:
        raise InvalidArgument(
            f"table {tbl.name!r} is partitioned by LIST ({', '.join(parts.key)}); "
            "add_partition() needs the key to be one column of the table"
        )
    column = tbl.c[parts.key[0]]
    items: list[Any]
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        items = [values]
    else:
        items = list(values)
    if not items:
        raise InvalidArgument("values is empty; give the key value(s) the partition holds")
    try:
        python_type: type | None = column.type.python_type
    except NotImplementedError:
        python_type = None
    seen: set[Any] = set()
    out = []
    for value in items:
        _check_value(tbl, column, python_type, value)
        if value in seen:
            raise InvalidArgument(f"value {value!r} is given twice in values")
        seen.add(value)
        out.append(value)
    return tuple(out)


def _check_value(
    tbl: sa.Table, column: sa.Column[Any], python_type: type | None, value: Any
) -> None:
    if value is None:
        return
    what = f"partition value {value!r} for {tbl.name}.{column.name} ({column.type})"
    # bool is an int to Python but not to PostgreSQL; a type we cannot tell takes the
    # two kinds of value _literal() writes without help from the key's type.
    wanted: tuple[type, ...] = (python_type,) if python_type is not None else (str, int)
    ok = isinstance(value, wanted) and (python_type is bool) == isinstance(value, bool)
    if not ok:
        names = " or ".join(t.__name__ for t in wanted)
        raise InvalidArgument(f"{what} must be of type {names}, got {type(value).__name__}")
    if "\x00" in str(value):
        raise InvalidArgument(f"{what} contains a NUL character, which PostgreSQL cannot store")


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise InvalidArgument(
            f"partition name must be a plain identifier (letters, digits and underscores, "
            f"not starting with a digit), got {name!r}"
        )
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        raise InvalidArgument(
            f"partition name {name!r} is {len(name.encode())} bytes; PostgreSQL names are at "
            f"most {MAX_IDENTIFIER_BYTES}"
        )
    return name


def _default_name(tbl: sa.Table, bound: _Bound) -> str:
    if bound.default:
        return fit_identifier(f"{tbl.name}_default", None)
    if bound.modulus is not None:
        return fit_identifier(f"{tbl.name}_p{bound.remainder}", None)
    raw = "_".join("null" if v is None else str(v) for v in bound.values)
    clean = re.sub(r"[^a-z0-9]+", "_", raw.lower()).strip("_")
    # A value that had to change to become a name ("Acme", "o'brien") gets a hash of
    # itself, so "Acme" and "acme" do not share a name; a clash left over (["x", "y"]
    # and "x_y") is caught before the CREATE, as a table that exists.
    tag = None if clean and clean == raw else digest(raw)
    return fit_identifier(f"{tbl.name}_{clean}" if clean else tbl.name, tag)


# -- running the DDL ------------------------------------------------------------------


def _run(bind: object, create: Callable[[sa.Connection], list[str]]) -> list[str]:
    if isinstance(bind, sa.Engine):
        with bind.begin() as conn:
            return create(conn)
    if isinstance(bind, sa.Connection):
        with bind.begin_nested() if bind.in_transaction() else bind.begin():
            return create(bind)
    if isinstance(bind, (AsyncEngine, AsyncConnection)):
        raise InvalidArgument(
            "add_partition() takes a sync Engine or Connection; from async code call "
            "await conn.run_sync(add_partition, Doc, ...)"
        )
    raise InvalidArgument(
        f"bind must be a SQLAlchemy Engine or Connection, got {type(bind).__name__}; for a "
        "Session, pass session.connection()"
    )


def _create(
    conn: sa.Connection,
    tbl: sa.Table,
    parts: _Partitioning,
    planned: Sequence[tuple[str, _Bound]],
) -> list[str]:
    preparer = conn.dialect.identifier_preparer
    found = conn.execute(_CATALOG_SQL, {"table": preparer.format_table(tbl)}).first()
    if found is None:
        raise ConfigurationError(
            f"table {tbl.name!r} does not exist in the database; create it first "
            "(metadata.create_all(engine), or a migration)"
        )
    relkind, strategy = found
    if relkind != "p":
        raise InvalidArgument(
            f"table {tbl.name!r} exists but is not partitioned in the database, though its "
            "model declares postgresql_partition_by; it was created before that: recreate "
            "it (or migrate its rows into a new partitioned table)"
        )
    if _STRATEGIES.get(str(strategy)) != parts.strategy:
        raise ConfigurationError(
            f"table {tbl.name!r} is partitioned by {_STRATEGIES.get(str(strategy), strategy)} "
            f"in the database but by {parts.strategy} in its model; migrate the table or "
            "fix the model"
        )
    for name, _ in planned:
        qualified = preparer.quote(name)
        if tbl.schema:
            qualified = f"{preparer.quote_schema(tbl.schema)}.{qualified}"
        if conn.execute(_EXISTS_SQL, {"name": qualified}).scalar():
            raise InvalidArgument(
                f"a table named {name!r} already exists; pass another name= for the partition"
            )
    for name, bound in planned:
        conn.execute(_CreatePartition(tbl.schema, name, tbl, bound))
    return [name for name, _ in planned]
