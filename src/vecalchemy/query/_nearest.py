"""Nearest-neighbour queries: pure builders returning a SQLAlchemy ``Select``, no I/O.

Every builder emits the one shape pgvector can serve from its index::

    SELECT ..., <indexed expression> <op> CAST(:query_vector AS <type>) AS distance
    FROM docs ORDER BY distance LIMIT k

ascending, on exactly the expression the index was built on (``embedding`` or
``CAST(embedding AS HALFVEC(3072))``), with the operator that matches the index's
operator class, and with the query vector as a parameter rather than a subquery. The
result is an ordinary ``Select``: add ``.where(...)`` filters, joins or options.

The distance expression also carries what its index scan needs at execution
(``hnsw.ef_search`` at least the LIMIT, iterative scans, ``ivfflat.probes``, a custom
plan when filtered): however the statement is executed, and wherever it is embedded,
:mod:`vecalchemy.search._settings` applies those settings for that statement only.

Example::

    from sqlalchemy.orm import Session
    from vecalchemy import nearest

    stmt = nearest(Doc.embedding, query_vector, k=5).where(Doc.lang == "en")
    for doc, distance in session.execute(stmt):
        print(doc.id, distance)
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    Column,
    ColumnElement,
    Integer,
    Select,
    literal_column,
    select,
)
from sqlalchemy.orm import InstrumentedAttribute, defer
from sqlalchemy.types import TypeEngine

from vecalchemy._distance import (
    hamming_candidates_distance,
    indexed_distance,
    query_param,
    template_param,
)
from vecalchemy._fulltext import is_fulltext_type
from vecalchemy._names import describe
from vecalchemy._sql import PLAN_OPTION, QUERY_PARAM, Distance, is_vector_type
from vecalchemy._typing import Where
from vecalchemy.errors import InvalidArgument, InvalidSearch
from vecalchemy.metrics import MAX_EF_SEARCH, Metric
from vecalchemy.schema import IVFFlat, VectorSpec, resolve_spec

__all__ = [
    "NearestPlan",
    "check_clauses",
    "check_k",
    "distance",
    "nearest",
    "plan_nearest",
    "plan_template",
]

#: Candidates fetched from a binary-quantized index per row returned, unless overridden.
DEFAULT_OVERSAMPLE = 4

#: Where the cached templates of a column live in its ``Column.info``.
_TEMPLATES_KEY = "vecalchemy_templates"
_TEMPLATES_MAX = 64


@dataclass(frozen=True)
class NearestPlan:
    """A nearest-neighbour query, built and checked, and what running it needs.

    ``select`` is the index statement (rows: the entity or the table's columns, then
    ``distance``), ``exact`` the same query answered without any vector index (ordered
    by ``distance + 0``, which no index serves, and without a binary-quantized index's
    candidate subquery): the true top ``k``. ``params`` are bound at execution (a
    template's query vector). Extend the filter with :meth:`filtered`, which puts the
    clauses where they belong (inside a binary-quantized index's candidate subquery).

    Example::

        plan = plan_nearest(Doc.embedding, q, k=10).filtered([Doc.lang == "en"])
        hits = vecalchemy.run(session, plan)
    """

    select: Select[Any]
    exact: Select[Any]
    spec: VectorSpec
    k: int
    column_name: str
    #: True when the rows carry mapped objects (an ORM attribute was searched).
    orm: bool
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: How to read the searched vector from a row, for MMR: an attribute name or a column.
    vector_key: Any = None
    #: The table searched, for the strategy's estimate of a filter.
    table: Any = None
    clauses: tuple[ColumnElement[bool], ...] = ()
    #: Rows the index scan fetches: ``k``, or a binary-quantized index's candidates.
    scan_size: int = 0
    rebuild: Callable[[Sequence[ColumnElement[bool]]], Select[Any]] | None = None

    def filtered(self, clauses: Sequence[ColumnElement[bool]]) -> NearestPlan:
        """This plan with ``clauses`` added to its filter (none: the plan itself)."""
        clauses = tuple(clauses)
        if not clauses:
            return self
        check_clauses(clauses)
        every = (*self.clauses, *clauses)
        stmt = self.select.where(*clauses) if self.rebuild is None else self.rebuild(every)
        return dataclasses.replace(
            self, select=stmt, exact=self.exact.where(*clauses), clauses=every
        )

    def bind(self, value: Any) -> NearestPlan:
        """This template plan with its query vector (already checked) bound at execution."""
        bound = copy.copy(self)  # a frozen dataclass: replace() would re-run __init__
        object.__setattr__(bound, "params", {**self.params, QUERY_PARAM: value})
        return bound


def check_clauses(where: Where) -> tuple[ColumnElement[bool], ...]:
    """``where`` as a tuple of boolean expressions; None is no filter, an empty list is
    refused (it reads as a filter but filters nothing)."""
    if where is None:
        return ()
    if isinstance(where, ColumnElement):
        return (where,)
    if isinstance(where, (str, bytes, dict)) or not isinstance(where, Sequence):
        raise InvalidArgument(
            f"where= takes a SQLAlchemy expression or a list of them, got {where!r}; for "
            "a metadata filter use vecalchemy.filters.compile_filter"
        )
    if not where:
        raise InvalidArgument(
            "where=[] is an empty filter, which would silently search every row; pass "
            "where=None for no filter"
        )
    for clause in where:
        if not isinstance(clause, ColumnElement):
            raise InvalidArgument(
                f"where= takes SQLAlchemy expressions (Doc.lang == 'en'), got {clause!r}"
            )
    return tuple(where)


def check_k(k: object, spec: VectorSpec) -> int:
    """``k`` if it is a row count the column's index can return, else InvalidSearch."""
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


def _limit(n: int) -> ColumnElement[Any]:
    # A literal LIMIT: a LIMIT parameter makes PostgreSQL re-plan the driver's prepared
    # statement on every execution, and the literal is also what the compiled statement
    # records as the scan's size (see vecalchemy._sql).
    return literal_column(str(int(n)), Integer)


def _bulky(type_: TypeEngine[Any]) -> bool:
    """Vectors and tsvectors: large, and rarely wanted in results (deferred unless asked)."""
    return is_vector_type(type_) or is_fulltext_type(type_)


def _target(column: Any, col: Column[Any], load_embedding: bool) -> tuple[list[Any], list[Any]]:
    """What the query returns: the entity (its vectors deferred) or the table's columns."""
    if isinstance(column, InstrumentedAttribute):
        entity = column.parent.entity
        options = []
        if not load_embedding:
            # Vectors are large and rarely needed in results: defer every vector
            # attribute of the entity, not only the one searched.
            bulky = [a for a in column.parent.column_attrs if _bulky(a.columns[0].type)]
            options = [defer(getattr(entity, a.key)) for a in bulky]
        return [entity], options
    table = col.table
    return [c for c in table.c if load_embedding or not _bulky(c.type)], []


def _build(
    column: Any,
    col: Column[Any],
    spec: VectorSpec,
    k: int,
    load_embedding: bool,
    param: BindParameter[Any],
    *,
    filters: Sequence[ColumnElement[bool]] = (),
    exact: bool = False,
    candidates: int | None = None,
) -> Select[Any]:
    dist = indexed_distance(column, spec, param, scan=not exact).label("distance")
    target, options = _target(column, col, load_embedding)
    stmt = select(*target, dist).options(*options)
    if spec.binary_quantized and not exact:
        stmt = stmt.where(_bq_candidates(col, spec, param, candidates or k, filters))
    order: ColumnElement[Any] = dist
    if exact:
        # No vector index can serve an expression, so PostgreSQL computes the distance of
        # every row that passes the filter (found through the filter's own index, if any).
        order = dist.element + literal_column("0")
    return stmt.order_by(order).limit(_limit(k))


def _bq_candidates(
    col: Column[Any],
    spec: VectorSpec,
    param: BindParameter[Any],
    candidates: int,
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
            f"searching a binary-quantized index on {describe(col)} re-ranks candidates by "
            "primary key, so the table needs a single-column primary key"
        )
    hamming = hamming_candidates_distance(col, spec, param)
    key: ColumnElement[Any] = pk[0]
    inner = select(key).where(*filters).order_by(hamming).limit(_limit(candidates)).correlate(None)
    member: ColumnElement[bool] = key.in_(inner)
    return member


def _plan(
    column: Any,
    col: Column[Any],
    spec: VectorSpec,
    k: int,
    load_embedding: bool,
    param: BindParameter[Any],
    candidates: int | None,
) -> NearestPlan:
    def build(clauses: Sequence[ColumnElement[bool]]) -> Select[Any]:
        return _build(
            column, col, spec, k, load_embedding, param, filters=clauses, candidates=candidates
        )

    return NearestPlan(
        select=build(()),
        exact=_build(column, col, spec, k, load_embedding, param, exact=True),
        spec=spec,
        k=k,
        column_name=describe(col),
        orm=isinstance(column, InstrumentedAttribute),
        vector_key=column.key if isinstance(column, InstrumentedAttribute) else col,
        table=col.table,
        scan_size=candidates or k,
        rebuild=build if spec.binary_quantized else None,
    )


def candidates_for(spec: VectorSpec, k: int, oversample: int | None) -> int | None:
    """How many candidates a binary-quantized index hands to the exact re-ranking."""
    if not spec.binary_quantized:
        if oversample is not None:
            raise InvalidSearch(
                "oversample applies to binary-quantized indexes; the column has none "
                "(declare it with index=HNSW(quantize='binary'))"
            )
        return None
    factor = DEFAULT_OVERSAMPLE if oversample is None else oversample
    if isinstance(factor, bool) or not isinstance(factor, int) or not 1 <= factor <= MAX_EF_SEARCH:
        raise InvalidSearch(
            f"oversample must be an integer from 1 to {MAX_EF_SEARCH:,}, got {factor!r}"
        )
    return min(k * factor, MAX_EF_SEARCH)


def plan_nearest(
    column: Any,
    query: Any,
    k: int = 10,
    *,
    metric: str | Metric | None = None,
    load_embedding: bool = False,
    where: Where = None,
    oversample: int | None = None,
) -> NearestPlan:
    """Build :func:`nearest`'s query as a :class:`NearestPlan`, for :func:`vecalchemy.run`.

    Everything is checked here, before any SQL runs.

    Example::

        plan = plan_nearest(Doc.embedding, q, k=5, where=Doc.lang == "en")
        hits = vecalchemy.run(session, plan)     # k hits whenever k rows match
    """
    col, spec = resolve_spec(column, metric)
    k = check_k(k, spec)
    param = query_param(spec, query, column=describe(col))
    plan = _plan(column, col, spec, k, load_embedding, param, candidates_for(spec, k, oversample))
    return plan.filtered(check_clauses(where))


def plan_template(
    column: Any,
    k: int,
    *,
    metric: str | Metric | None = None,
    load_embedding: bool = False,
    oversample: int | None = None,
) -> NearestPlan:
    """:func:`plan_nearest` without the query vector, which is bound at execution.

    Built once per (k, metric, load_embedding, oversample) and kept in the column's
    ``info``, so that a search only checks and binds its vector (see
    :meth:`NearestPlan.bind`).
    """
    col = _column_of(column)
    key = (
        "orm" if isinstance(column, InstrumentedAttribute) else "core",
        k,
        None if metric is None else str(metric),
        load_embedding,
        oversample,
    )
    cacheable = type(k) is int and (metric is None or isinstance(metric, str))
    cache: dict[Any, NearestPlan] = (
        col.info.setdefault(_TEMPLATES_KEY, {}) if col is not None else {}
    )
    if cacheable and key in cache:
        return cache[key]
    col, spec = resolve_spec(column, metric)
    k = check_k(k, spec)
    plan = _plan(
        column,
        col,
        spec,
        k,
        load_embedding,
        template_param(spec),
        candidates_for(spec, k, oversample),
    )
    if cacheable:
        if len(cache) >= _TEMPLATES_MAX:
            cache.clear()
        cache[key] = plan
    return plan


def _column_of(column: Any) -> Column[Any] | None:
    if isinstance(column, InstrumentedAttribute):
        cols = getattr(column.property, "columns", None)
        return cols[0] if cols and isinstance(cols[0], Column) else None
    return column if isinstance(column, Column) else None


def nearest(
    column: Any,
    query: Any,
    k: int = 10,
    *,
    metric: str | Metric | None = None,
    load_embedding: bool = False,
    where: Where = None,
    oversample: int | None = None,
) -> Select[Any]:
    """A ``Select`` of ``(row, distance)`` for the ``k`` rows nearest to ``query``.

    ``column`` is an ORM attribute (``Doc.embedding``: rows are ``Doc`` objects, with
    the embedding deferred unless ``load_embedding=True``) or a Core column
    (``docs.c.embedding``: rows are the table's other columns). ``metric`` is needed
    only for plain pgvector columns that have no vector index in their metadata.
    ``where`` filters like ``.where(...)`` does; for a column with a binary-quantized
    index it filters the candidates, so prefer it there (``.where()`` on the result
    would filter the re-ranked candidates and could return fewer than ``k`` rows).

    The statement carries the index settings it needs, applied for this statement only
    however it is executed (``Session.execute``, ``Connection.execute``, async, streamed,
    in AUTOCOMMIT, or embedded in your own query as a subquery or CTE): ``hnsw.ef_search``
    of at least its LIMIT, strictly ordered iterative scans so that a filter or dead
    index entries do not cut the result short, ``ivfflat.probes``. For the guarantee of
    ``k`` rows whenever ``k`` rows match (an exact scan when the index still comes back
    short), run it with :func:`vecalchemy.run` or use :func:`vecalchemy.search`.

    The query vector is checked here, before any SQL runs: a wrong dimension raises
    :class:`~vecalchemy.DimensionMismatch`, NaN or infinity
    :class:`~vecalchemy.InvalidVector`, and ``k`` above 1,000 on an HNSW-indexed column
    :class:`~vecalchemy.InvalidSearch`.

    Example::

        stmt = nearest(Doc.embedding, [0.1, 0.2, 0.3], k=3).where(Doc.lang == "en")
        rows = session.execute(stmt).all()   # [(Doc, 0.02), (Doc, 0.11), (Doc, 0.3)]
    """
    plan = plan_nearest(
        column,
        query,
        k,
        metric=metric,
        load_embedding=load_embedding,
        where=where,
        oversample=oversample,
    )
    return plan.select.execution_options(**{PLAN_OPTION: plan})


def distance(column: Any, query: Any, *, metric: str | Metric | None = None) -> Distance:
    """The indexable distance expression between ``column`` and ``query``.

    Use it to build your own ``ORDER BY ... LIMIT`` query (it carries its index settings
    like :func:`nearest`); :func:`nearest` is usually simpler.

    Example::

        d = distance(Doc.embedding, q)
        stmt = select(Doc.id, d.label("d")).order_by(d).limit(5)
    """
    col, spec = resolve_spec(column, metric)
    return indexed_distance(column, spec, query_param(spec, query, column=describe(col)))
