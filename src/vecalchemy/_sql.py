"""SQL constructs shared by the schema and the query builders.

* :class:`Distance`: ``<indexed expression> <op> <query>``, a SQLAlchemy expression that
  also carries the :class:`Scan` its index needs. When a statement containing it is
  compiled, the compiler records a :class:`ScanNeed` (the scan, the LIMIT of the SELECT it
  is compiled in, whether that SELECT filters) under :data:`NEEDS_ATTR`. The compiled
  object is cached, so the needs travel with every execution of the statement, however
  it is executed and wherever it is embedded (a subquery, a CTE, a UNION arm), and
  :mod:`vecalchemy.search.settings` applies the index settings they call for.
* the query-vector parameter types, which bind the pgvector object itself (binary) once
  the driver knows pgvector's types.

Private to vecalchemy: builders use :func:`vecalchemy.distance` and
:func:`vecalchemy.nearest`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgvector.sqlalchemy import HALFVEC, SPARSEVEC, VECTOR
from sqlalchemy import BindParameter, ColumnElement, Dialect, Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnClause, Grouping, TextClause
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeEngine

if TYPE_CHECKING:
    from vecalchemy.metrics import IndexMethod, Metric

__all__ = [
    "NEEDS_ATTR",
    "QUERY_PARAM",
    "REGISTERED_FLAG",
    "Distance",
    "Scan",
    "ScanNeed",
    "divide",
    "vector_param_type",
]

#: Name of the bind parameter holding the query vector in every built statement.
QUERY_PARAM = "query_vector"

#: Attribute set on a SQLAlchemy dialect by :func:`vecalchemy.setup` once every pooled
#: connection has pgvector's types registered; query vectors are then sent in binary.
REGISTERED_FLAG = "_vecalchemy_types_registered"

#: Attribute of a compiled statement listing the :class:`ScanNeed` s of its distances.
NEEDS_ATTR = "_vecalchemy_scans"


@dataclass(frozen=True)
class Scan:
    """An index scan a distance expression may be served by, as execution must set it up.

    ``method`` is ``"hnsw"`` or ``"ivfflat"``, or ``None`` when vecalchemy cannot see the
    index (a plain pgvector column whose index is not declared in the metadata): then
    every setting either method reads is set. ``index`` is the schema-qualified index
    name (an ``IVFFlat(lists=None)`` index's ``lists`` are read from it to choose
    ``probes``); ``lists`` is the declared number of lists. ``table``, ``column``,
    ``metric`` and ``opclass`` let the first execution check the database's own indexes
    on the column (see :mod:`vecalchemy.search.settings`).
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
    clause.
    """

    scan: Scan
    limit: int | BindParameter[Any] | None
    filtered: bool


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
    ]
    type = Float()

    def __init__(
        self,
        left: ColumnElement[Any],
        right: ColumnElement[Any],
        operator: str,
        scan: Scan | None,
    ) -> None:
        self.left = left
        self.right = right
        self.operator = operator
        self.scan = scan

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
        _record(compiler, element.scan)
    expr = element.left.op(element.operator, return_type=Float)(element.right)
    return compiler.process(expr, **kw)


def _record(compiler: SQLCompiler, scan: Scan) -> None:
    stack = getattr(compiler, "stack", None)
    select = stack[-1].get("selectable") if stack else None
    limit: int | BindParameter[Any] | None = None
    clause = getattr(select, "_limit_clause", None)
    if isinstance(clause, BindParameter):
        limit = clause
    elif isinstance(clause, (ColumnClause, TextClause)):
        text = clause.name if isinstance(clause, ColumnClause) else clause.text
        try:
            limit = int(text)
        except ValueError:
            limit = None
    filtered = bool(getattr(select, "_where_criteria", ()))
    needs: list[ScanNeed] = compiler.__dict__.setdefault(NEEDS_ATTR, [])
    need = ScanNeed(scan, limit, filtered)
    if need not in needs:
        needs.append(need)


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


# Division binds like SQL's "/" (tighter than + and -), so operands get parentheses.
_DIV_PRECEDENCE = 8


def divide(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[float]:
    """``a / b`` in double precision, without SQLAlchemy's true-division casts."""
    return a.op("/", precedence=_DIV_PRECEDENCE, return_type=Float)(b)
