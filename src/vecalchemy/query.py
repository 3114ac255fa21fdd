"""Pure query builders: they return a SQLAlchemy ``Select`` and do no I/O.

Every builder emits the one shape pgvector can serve from its index::

    SELECT ..., <indexed expression> <op> CAST(:query AS <type>) AS distance
    FROM docs ORDER BY distance LIMIT :k

ascending, on exactly the expression the index was built on (``embedding`` or
``CAST(embedding AS HALFVEC(3072))``), with the operator that matches the index's
operator class, and with the query vector as a parameter rather than a subquery.
The result is an ordinary ``Select``: add ``.where(...)`` filters, joins or options.

Example::

    from sqlalchemy.orm import Session
    from vecalchemy import nearest

    stmt = nearest(Doc.embedding, query_vector, k=5).where(Doc.lang == "en")
    for doc, distance in session.execute(stmt):
        print(doc.id, distance)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pgvector.sqlalchemy import HALFVEC, SPARSEVEC, VECTOR
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Dialect,
    Float,
    Select,
    bindparam,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.orm import InstrumentedAttribute, defer
from sqlalchemy.types import TypeEngine

from vecalchemy.errors import InvalidSearch
from vecalchemy.fulltext import is_fulltext_type
from vecalchemy.metrics import MAX_EF_SEARCH, Metric, Storage
from vecalchemy.schema import HNSW, IVFFlat, VectorSpec, _describe, is_vector_type, resolve_spec
from vecalchemy.vectors import as_query_value

__all__ = [
    "QUERY_PARAM",
    "REGISTERED_FLAG",
    "NearestQuery",
    "distance",
    "nearest",
    "nearest_template",
    "plan_nearest",
    "query_value",
]

#: Name of the bind parameter holding the query vector in every built statement.
QUERY_PARAM = "query_vector"

#: Attribute set on a SQLAlchemy dialect by :func:`vecalchemy.setup` once every pooled
#: connection has pgvector's types registered; query vectors are then sent in binary.
REGISTERED_FLAG = "_vecalchemy_types_registered"


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


def _param_type(spec: VectorSpec) -> TypeEngine[Any]:
    storage = spec.query_storage
    if storage is Storage.VECTOR:
        return _VectorParam(spec.dim)
    if storage is Storage.HALFVEC:
        return _HalfvecParam(spec.dim)
    if storage is Storage.SPARSEVEC:
        return _SparsevecParam(spec.dim)
    return spec.query_sql_type()


#: Candidates fetched from a binary-quantized index per row returned, unless overridden.
DEFAULT_OVERSAMPLE = 4

#: Name of the literal LIMIT of the candidate subquery of a binary-quantized search.
CANDIDATES_PARAM = "candidates"


@dataclass(frozen=True)
class NearestQuery:
    """A built nearest-neighbour query and what the runner needs to know about it.

    ``filtered`` adds filters where they belong: on the query itself, or, for a
    binary-quantized index, on the candidate subquery (so the candidates all match).
    """

    select: Select[Any]
    spec: VectorSpec
    k: int
    column_name: str
    rebuild: Callable[[Sequence[ColumnElement[bool]]], Select[Any]] | None = None
    #: The same query for an exact scan: ordered by an expression no vector index can
    #: serve (``distance + 0``), so PostgreSQL computes the distance of every row that
    #: passes the filter (found through the filter's own index, if any), and without a
    #: binary-quantized index's candidate subquery.
    exact: Select[Any] | None = None

    def filtered(self, clauses: Sequence[ColumnElement[bool]]) -> NearestQuery:
        """This query with ``clauses`` added to its filter."""
        stmt = self.select.where(*clauses) if self.rebuild is None else self.rebuild(clauses)
        exact = self.exact.where(*clauses) if self.exact is not None else None
        return dataclasses.replace(self, select=stmt, exact=exact)

    @property
    def exact_select(self) -> Select[Any]:
        """The statement an exact (sequential or filter-index) scan runs."""
        return self.exact if self.exact is not None else self.select


def _check_k(k: object, spec: VectorSpec) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidSearch(f"k must be a positive integer, got {k!r}")
    exact_only = spec.declared and spec.index is None
    if k > MAX_EF_SEARCH and not exact_only and not isinstance(spec.index, IVFFlat):
        raise InvalidSearch(
            f"k={k} is above {MAX_EF_SEARCH:,}, the most rows an HNSW index scan can return "
            "(hnsw.ef_search caps at 1,000); page through results with a distance cursor, or "
            "search a column declared with index=None for exact results"
        )
    return k


def query_value(spec: VectorSpec, query: Any, *, column: str = "the column") -> Any:
    """The checked query vector, as the object the driver sends for the indexed type."""
    return as_query_value(
        query,
        dim=spec.dim,
        storage=spec.query_storage,
        column=column,
        zero_ok=spec.metric is not Metric.COSINE,
    )


def query_param(spec: VectorSpec, query: Any, *, column: str = "the column") -> BindParameter[Any]:
    """The checked query vector as a bind parameter of the indexed expression's type."""
    return bindparam(QUERY_PARAM, query_value(spec, query, column=column), type_=_param_type(spec))


def _distance_expr(
    column: Any, spec: VectorSpec, param: BindParameter[Any]
) -> ColumnElement[float]:
    lhs: ColumnElement[Any] = column
    typ = spec.query_sql_type()
    if spec.uses_expression_index and not spec.binary_quantized:
        lhs = cast(column, typ)
    # A CAST of a parameter is still a constant to the planner, so the index is usable,
    # and it fixes the parameter's type for drivers that infer it (asyncpg).
    rhs = cast(param, typ)
    return lhs.op(spec.metric.operator, return_type=Float)(rhs)


def distance(
    column: Any, query: Any, *, metric: str | Metric | None = None
) -> ColumnElement[float]:
    """The indexable distance expression between ``column`` and ``query``.

    Use it to build your own ``ORDER BY ... LIMIT`` query; :func:`nearest` is usually
    simpler.

    Example::

        d = distance(Doc.embedding, q)
        stmt = select(Doc.id, d.label("d")).order_by(d).limit(5)
    """
    col, spec = resolve_spec(column, metric)
    return _distance_expr(column, spec, query_param(spec, query, column=_describe(col)))


_TEMPLATES: dict[tuple[int, str | None, int, bool], tuple[Any, NearestQuery]] = {}
_TEMPLATES_MAX = 1024


def nearest_template(
    column: Any,
    k: int = 10,
    *,
    metric: str | Metric | None = None,
    load_embedding: bool = False,
) -> NearestQuery:
    """:func:`nearest`'s query with the query vector left as the parameter ``query_vector``.

    Built once per (column, k, metric, load_embedding) and cached, so that a search only
    binds its vector (see :func:`query_value`) when it executes the statement:
    ``session.execute(t.select, {"query_vector": value})``.
    """
    cacheable = type(k) is int and (metric is None or isinstance(metric, str))
    key = (id(column), str(metric) if metric is not None else None, k, load_embedding)
    if cacheable:
        hit = _TEMPLATES.get(key)
        if hit is not None and hit[0] is column:
            return hit[1]
    col, spec = resolve_spec(column, metric)
    k = _check_k(k, spec)
    name = _describe(col)
    param = bindparam(QUERY_PARAM, None, type_=_param_type(spec))
    template = _nearest_query(column, col, spec, k, load_embedding, param, name, template=True)
    if cacheable:
        if len(_TEMPLATES) >= _TEMPLATES_MAX:
            _TEMPLATES.clear()
        _TEMPLATES[key] = (column, template)
    return template


def _build(
    column: Any,
    col: Any,
    spec: VectorSpec,
    k: int,
    load_embedding: bool,
    param: BindParameter[Any],
    *,
    literal_limit: bool = False,
    filters: Sequence[ColumnElement[bool]] = (),
    exact: bool = False,
) -> Select[Any]:
    dist = _distance_expr(column, spec, param).label("distance")
    if isinstance(column, InstrumentedAttribute):
        entity = column.parent.entity
        stmt = select(entity, dist)
        if not load_embedding:
            # Vectors are large and rarely needed in results: defer every vector
            # attribute of the entity, not only the one searched.
            deferred = [attr for attr in column.parent.column_attrs if _bulky(attr.columns[0].type)]
            stmt = stmt.options(*(defer(getattr(entity, a.key)) for a in deferred))
    else:
        table = col.table
        cols = [c for c in table.c if load_embedding or not _bulky(c.type)]
        stmt = select(*cols, dist)
    if spec.binary_quantized and not exact:
        stmt = stmt.where(_bq_candidates(col, spec, param, k, literal_limit, filters))
    order: ColumnElement[Any] = dist
    if exact:
        order = dist.element + literal_column("0")
    if literal_limit:
        # LIMIT written into the SQL at execution (still one cache entry for every k): a
        # LIMIT parameter makes PostgreSQL re-plan the driver's prepared statement each
        # time. Only for search()'s own statements: it shows as __[POSTCOMPILE_k] when a
        # user compiles the statement to a string.
        return stmt.order_by(order).limit(bindparam("k", k, literal_execute=True))
    return stmt.order_by(order).limit(k)


def _bulky(type_: TypeEngine[Any]) -> bool:
    """Vectors and tsvectors: large, and rarely wanted in results (deferred unless asked)."""
    return is_vector_type(type_) or is_fulltext_type(type_)


def _bq_candidates(
    col: Any,
    spec: VectorSpec,
    param: BindParameter[Any],
    k: int,
    literal_limit: bool,
    filters: Sequence[ColumnElement[bool]],
) -> ColumnElement[bool]:
    """``pk IN (the candidates nearest by Hamming distance on the binary-quantized index)``.

    The subquery orders by exactly the indexed expression, so the bit index serves it;
    the outer query re-ranks its few rows by the exact distance. Filters go inside, so
    every candidate matches them. The subquery is not correlated: its own FROM of the
    same table is the one its filters (written against the table) refer to.
    """
    table = col.table
    pk = list(table.primary_key.columns)
    if len(pk) != 1:
        raise InvalidSearch(
            f"searching a binary-quantized index on {_describe(col)} re-ranks candidates by "
            "primary key, so the table needs a single-column primary key"
        )
    codes = cast(func.binary_quantize(col), spec.index_sql_type())
    query_codes = func.binary_quantize(cast(param, spec.query_sql_type()))
    hamming = codes.op(Metric.HAMMING.operator, return_type=Float)(query_codes)
    limit: Any = k * DEFAULT_OVERSAMPLE
    if literal_limit:
        limit = bindparam(CANDIDATES_PARAM, limit, literal_execute=True)
    key: ColumnElement[Any] = pk[0]
    inner = select(key).where(*filters).order_by(hamming).limit(limit).correlate(None)
    member: ColumnElement[bool] = key.in_(inner)
    return member


def plan_nearest(
    column: Any,
    query: Any,
    k: int = 10,
    *,
    metric: str | Metric | None = None,
    load_embedding: bool = False,
) -> NearestQuery:
    """Build :func:`nearest`'s query, with the query vector bound, and its column's spec."""
    col, spec = resolve_spec(column, metric)
    k = _check_k(k, spec)
    name = _describe(col)
    param = query_param(spec, query, column=name)
    return _nearest_query(column, col, spec, k, load_embedding, param, name, template=False)


def _nearest_query(
    column: Any,
    col: Any,
    spec: VectorSpec,
    k: int,
    load_embedding: bool,
    param: BindParameter[Any],
    name: str,
    *,
    template: bool,
) -> NearestQuery:
    def build(clauses: Sequence[ColumnElement[bool]]) -> Select[Any]:
        return _build(
            column, col, spec, k, load_embedding, param, literal_limit=template, filters=clauses
        )

    bq = spec.binary_quantized
    return NearestQuery(
        select=build(()),
        spec=spec,
        k=k,
        column_name=name,
        rebuild=build if bq else None,
        exact=_build(
            column, col, spec, k, load_embedding, param, literal_limit=template, exact=True
        ),
    )


def nearest(
    column: Any,
    query: Any,
    k: int = 10,
    *,
    metric: str | Metric | None = None,
    load_embedding: bool = False,
    where: ColumnElement[bool] | Sequence[ColumnElement[bool]] | None = None,
) -> Select[Any]:
    """A ``Select`` of ``(row, distance)`` for the ``k`` rows nearest to ``query``.

    ``column`` is an ORM attribute (``Doc.embedding``: rows are ``Doc`` objects, with
    the embedding deferred unless ``load_embedding=True``) or a Core column
    (``docs.c.embedding``: rows are the table's other columns). ``metric`` is needed
    only for plain pgvector columns that have no vector index in their metadata.
    ``where`` filters like ``.where(...)`` does; for a column with a binary-quantized
    index it filters the candidates, so prefer it there (``.where()`` on the result
    would filter the re-ranked candidates and could return fewer than ``k`` rows).

    The query vector is checked here, before any SQL runs: a wrong dimension raises
    :class:`~vecalchemy.DimensionMismatch`, NaN or infinity
    :class:`~vecalchemy.InvalidVector`, and ``k`` above 1,000 on an HNSW-indexed column
    :class:`~vecalchemy.InvalidSearch`.

    Example::

        stmt = nearest(Doc.embedding, [0.1, 0.2, 0.3], k=3).where(Doc.lang == "en")
        rows = session.execute(stmt).all()   # [(Doc, 0.02), (Doc, 0.11), (Doc, 0.3)]
    """
    nq = plan_nearest(column, query, k, metric=metric, load_embedding=load_embedding)
    if where is not None:
        nq = nq.filtered([where] if isinstance(where, ColumnElement) else list(where))
    return nq.select


def may_use_hnsw(spec: VectorSpec) -> bool:
    """True when an HNSW index may serve the column, so ``hnsw.ef_search`` matters.

    That is a column whose index is HNSW, or a plain column whose index we cannot see.
    """
    return isinstance(spec.index, HNSW) or (spec.index is None and not spec.declared)
