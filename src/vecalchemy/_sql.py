"""SQL constructs shared by the schema and the query builders.

* :class:`Distance`: ``<indexed expression> <op> <query>``, a SQLAlchemy expression that
  also carries the :class:`Scan` its index needs. When a statement containing it is
  compiled, the compiler records a :class:`ScanNeed` (the scan, the LIMIT of the SELECT it
  is compiled in, whether that SELECT filters) under :data:`NEEDS_ATTR`. The compiled
  object is cached, so the needs travel with every execution of the statement, however
  it is executed and wherever it is embedded (a subquery, a CTE, a UNION arm), and
  :mod:`vecalchemy.search._settings` applies the index settings they call for.
* the query-vector parameter types, which bind the pgvector object itself (binary) once
  the driver knows pgvector's types.

Private to vecalchemy: builders use :func:`vecalchemy.distance` and
:func:`vecalchemy.nearest`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgvector.sqlalchemy import BIT, HALFVEC, SPARSEVEC, VECTOR
from sqlalchemy import (
    BindParameter,
    Column,
    ColumnElement,
    Dialect,
    Float,
    Select,
    Table,
    inspect,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql import operators
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnClause, Grouping, TextClause
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeEngine

from vecalchemy._names import describe
from vecalchemy._vectors import bits_text
from vecalchemy.errors import InvalidArgument, UnknownMetric, UnsupportedIndex
from vecalchemy.metrics import Storage

if TYPE_CHECKING:
    from vecalchemy.metrics import IndexMethod, Metric

__all__ = [
    "BUILDING",
    "INFO_KEY",
    "NEEDS_ATTR",
    "PLAN_OPTION",
    "QUERY_PARAM",
    "REGISTERED_FLAG",
    "TOP_LIMIT_ATTR",
    "BitString",
    "Distance",
    "Scan",
    "ScanNeed",
    "building_indexes",
    "column_of",
    "dimensioned_storage",
    "is_vector_type",
    "plain_type",
    "storage_of",
    "table_of",
    "vector_param_type",
]

#: Name of the bind parameter holding the query vector in every built statement.
QUERY_PARAM = "query_vector"

#: Attribute set on a SQLAlchemy dialect by :func:`vecalchemy.setup` once every pooled
#: connection has pgvector's types registered; query vectors are then sent in binary.
REGISTERED_FLAG = "_vecalchemy_types_registered"

#: Execution option under which a built ``Select`` keeps the plan it came from, so that
#: :func:`vecalchemy.run` can run a ``nearest()`` statement you extended.
PLAN_OPTION = "vecalchemy_plan"

#: Key under which a column's :class:`~vecalchemy.VectorSpec` is kept in ``Column.info``.
INFO_KEY = "vecalchemy"

#: Set while :func:`vecalchemy.build_indexes` emits DDL that ``create_all`` would defer.
BUILDING: ContextVar[bool] = ContextVar("vecalchemy_building_indexes", default=False)

#: Attribute of a compiled statement listing the :class:`ScanNeed` s of its distances.
NEEDS_ATTR = "_vecalchemy_scans"

#: Attribute of a compiled SELECT holding its own LIMIT, when its own ORDER BY scans a
#: vector index (or its candidates subquery does): fewer rows than that means the index
#: came back short (see vecalchemy.search._settings).
TOP_LIMIT_ATTR = "_vecalchemy_top_limit"


@dataclass(frozen=True)
class Scan:
    """An index scan a distance expression may be served by, as execution must set it up.

    ``method`` is ``"hnsw"`` or ``"ivfflat"``, or ``None`` when vecalchemy cannot see the
    index (a plain pgvector column whose index is not declared in the metadata): then
    every setting either method reads is set. ``index`` is the schema-qualified index
    name (an ``IVFFlat(lists=None)`` index's ``lists`` are read from it to choose
    ``probes``); ``lists`` is the declared number of lists. ``table``, ``column``,
    ``metric`` and ``opclass`` let the first execution check the database's own indexes
    on the column (see :mod:`vecalchemy.search._settings`).
    """

    method: IndexMethod | None
    index: str | None
    lists: int | None
    table: str
    column: str
    metric: Metric
    opclass: str | None
    #: The column's own metric, which the index may differ from (a binary-quantized
    #: index is searched by Hamming distance, then re-ranked by the column's metric).
    column_metric: Metric | None = None

    @property
    def may_use_hnsw(self) -> bool:
        """True when an HNSW index may serve the scan."""
        return self.method != "ivfflat"

    @property
    def may_use_ivfflat(self) -> bool:
        """True when an IVFFlat index may serve the scan."""
        return self.method != "hnsw"


@dataclass(frozen=True)
class ScanNeed:
    """A :class:`Scan` as one SELECT of a compiled statement uses it.

    ``limit`` is that SELECT's LIMIT: an int, a bind parameter whose value is read at
    execution, or None (no LIMIT). ``filtered`` is True when the SELECT has a WHERE
    clause. ``offset``: its OFFSET, read the same way (the scan must reach past it).
    """

    scan: Scan
    limit: int | BindParameter[Any] | None
    filtered: bool
    offset: int | BindParameter[Any] | None = None


class Distance(ColumnElement[float]):
    """``left <op> right``, with the index scan that can serve it (or None: exact only).

    Behaves as a float expression (``.label()``, ``< 0.3``, ``+ 0``); compiling it
    records a :class:`ScanNeed` when it has a scan.
    """

    __visit_name__ = "vecalchemy_distance"
    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012 - SQLAlchemy's own convention
        ("left", InternalTraversal.dp_clauseelement),
        ("right", InternalTraversal.dp_clauseelement),
        ("operator", InternalTraversal.dp_string),
        ("scan", InternalTraversal.dp_plain_obj),
        ("candidates", InternalTraversal.dp_boolean),
    ]
    type = Float()

    def __init__(
        self,
        left: ColumnElement[Any],
        right: ColumnElement[Any],
        operator: str,
        scan: Scan | None,
        *,
        candidates: bool = False,
    ) -> None:
        self.left = left
        self.right = right
        self.operator = operator
        self.scan = scan
        #: The distance of a candidates subquery whose rows the enclosing SELECT re-ranks
        #: (a binary-quantized search): that SELECT's LIMIT is the one to check.
        self.candidates = candidates

    @property
    def _from_objects(self) -> list[Any]:
        return [*self.left._from_objects, *self.right._from_objects]

    def self_group(self, against: Any = None) -> ColumnElement[Any]:
        """Parenthesised inside another operator (``(a <=> b) + 0``): pgvector's
        operators bind looser than arithmetic."""
        if against is None or against in (operators.as_, operators.comma_op):
            return self
        return Grouping(self)


@compiles(Distance)
def _compile_distance(element: Distance, compiler: SQLCompiler, **kw: Any) -> str:
    if element.scan is not None:
        _record(compiler, element.scan, candidates=element.candidates)
    expr = element.left.op(element.operator, return_type=Float)(element.right)
    return compiler.process(expr, **kw)


def _limit_of(select: Any) -> int | BindParameter[Any] | None:
    clause = getattr(select, "_limit_clause", None)
    if clause is None:
        clause = getattr(select, "_fetch_clause", None)  # FETCH FIRST n ROWS
    return _count_of(clause)


def _offset_of(select: Any) -> int | BindParameter[Any] | None:
    return _count_of(getattr(select, "_offset_clause", None))


def _count_of(clause: Any) -> int | BindParameter[Any] | None:
    if isinstance(clause, BindParameter):
        return clause
    if isinstance(clause, (ColumnClause, TextClause)):
        text = clause.name if isinstance(clause, ColumnClause) else clause.text
        try:
            return int(text)
        except ValueError:
            return None
    return None


def _record(compiler: SQLCompiler, scan: Scan, *, candidates: bool = False) -> None:
    stack = getattr(compiler, "stack", None)
    select = stack[-1].get("selectable") if stack else None
    filtered = bool(getattr(select, "_where_criteria", ()))
    needs: list[ScanNeed] = compiler.__dict__.setdefault(NEEDS_ATTR, [])
    need = ScanNeed(scan, _limit_of(select), filtered, _offset_of(select))
    if need not in needs:
        needs.append(need)
    # A SELECT statement whose own rows are the nearest ones: the distance is in its own
    # ORDER BY (or in the candidates subquery right under it), not in a subquery of
    # the caller's, an EXPLAIN, an INSERT ... SELECT or a UNION. Its LIMIT says how many
    # rows it must return. Not a SELECT ... FOR UPDATE: running it again would lock
    # rows it does not return.
    statement = getattr(compiler, "statement", None)
    depth = len(stack) if stack else 0
    if (
        isinstance(statement, Select)
        and (depth == 1 or (candidates and depth == 2))
        and getattr(stack[0].get("selectable"), "_for_update_arg", None) is None  # type: ignore[index]
    ):
        compiler.__dict__[TOP_LIMIT_ATTR] = _limit_of(stack[0].get("selectable"))  # type: ignore[index]


# -- query-vector parameters ----------------------------------------------------------


class _BinaryWhenRegistered:
    """Bind the pgvector object itself when the driver knows the types, else its text."""

    def bind_processor(self, dialect: Dialect) -> Any:
        if getattr(dialect, REGISTERED_FLAG, False):
            return None
        return super().bind_processor(dialect)  # type: ignore[misc]


class _VectorParam(_BinaryWhenRegistered, VECTOR):
    cache_ok = True


class _HalfvecParam(_BinaryWhenRegistered, HALFVEC):
    cache_ok = True


class _SparsevecParam(_BinaryWhenRegistered, SPARSEVEC):
    cache_ok = True


def vector_param_type(storage: str, dim: int, fallback: TypeEngine[Any]) -> TypeEngine[Any]:
    """The bind type of a query vector of ``storage`` (``fallback`` for bit strings)."""
    if storage == "vector":
        return _VectorParam(dim)
    if storage == "halfvec":
        return _HalfvecParam(dim)
    if storage == "sparsevec":
        return _SparsevecParam(dim)
    return fallback


# -- column types ---------------------------------------------------------------------


class BitString(BIT):
    """pgvector-python's ``BIT`` that also takes numpy bool arrays and lists of 0/1.

    ``load()`` and ``search()`` accept those for bit columns, so ORM writes do too; they
    are sent as bit strings (``"0101"``).

    Example::

        session.add(Doc(bits=np.array([True, False, True, True])))
    """

    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        """Turn any bit-like value into a bit string, then let ``BIT`` bind it."""
        if value is not None and not isinstance(value, str):
            value = bits_text(value, what="bit value")
        return super().process_bind_param(value, dialect)


def plain_type(storage: Storage, dim: int) -> TypeEngine[Any]:
    """pgvector-python's type for ``storage`` (a :class:`BitString` for bit)."""
    if storage is Storage.VECTOR:
        return VECTOR(dim)
    if storage is Storage.HALFVEC:
        return HALFVEC(dim)
    if storage is Storage.SPARSEVEC:
        return SPARSEVEC(dim)
    return BitString(dim)


def column_of(column: Any) -> Column[Any]:
    """The ``Column`` behind an ORM attribute or a Core column, or InvalidArgument."""
    if isinstance(column, InstrumentedAttribute):
        prop = column.property
        cols = getattr(prop, "columns", None)
        if not cols or not isinstance(cols[0], Column):
            raise InvalidArgument(f"{column} is not a column attribute")
        return cols[0]
    if isinstance(column, Column):
        return column
    raise InvalidArgument(
        f"expected a vector column (Doc.embedding or table.c.embedding), got {column!r}"
    )


@contextlib.contextmanager
def building_indexes() -> Iterator[None]:
    """Internal: let :func:`vecalchemy.build_indexes` emit DDL that create_all would defer."""
    token = BUILDING.set(True)
    try:
        yield
    finally:
        BUILDING.reset(token)


def storage_of(type_: TypeEngine[Any]) -> tuple[Storage, int | None] | None:
    """The storage and dimension of a pgvector column type, or None for other types."""
    if isinstance(type_, VECTOR):
        return Storage.VECTOR, type_.dim
    if isinstance(type_, HALFVEC):
        return Storage.HALFVEC, type_.dim
    if isinstance(type_, SPARSEVEC):
        return Storage.SPARSEVEC, type_.dim
    if isinstance(type_, BIT):
        length = getattr(type_.impl, "length", None)
        return Storage.BIT, length
    return None


def dimensioned_storage(col: Column[Any]) -> tuple[Storage, int]:
    """The storage and dimension of a pgvector column; :class:`UnknownMetric` for another
    type, :class:`UnsupportedIndex` for one without a dimension."""
    found = storage_of(col.type)
    if found is None:
        raise UnknownMetric(
            f"{describe(col)} is not a pgvector column (type {col.type!r}); declare it "
            "with vecalchemy.Embedding(dim, ...) or pgvector.sqlalchemy.Vector(dim)"
        )
    storage, dim = found
    if not dim:
        raise UnsupportedIndex(
            f"{describe(col)} has no dimension; declare it as Vector(dim) (pgvector cannot "
            "index a column without dimensions)"
        )
    return storage, dim


def is_vector_type(type_: TypeEngine[Any]) -> bool:
    """True for pgvector's column types (vector, halfvec, sparsevec, bit)."""
    return storage_of(type_) is not None


def table_of(target: Any) -> Table:
    """The ``Table`` of a mapped class, or a ``Table`` itself; InvalidArgument otherwise."""
    if isinstance(target, Table):
        return target
    try:
        table = inspect(target).local_table
    except Exception as exc:
        raise InvalidArgument(f"expected a mapped class or a Table, got {target!r}") from exc
    if not isinstance(table, Table):
        raise InvalidArgument(f"{target!r} is not mapped to a single table")
    return table
