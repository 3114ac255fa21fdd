"""The one runner: every plan (nearest, hybrid, multi-vector, your own ``nearest()``) runs here.

:func:`run` and :func:`arun` execute a plan through its step generator (see
:mod:`vecalchemy._steps`), so the strategy, the guarantee of ``k`` rows and the way
hits are built exist once for the sync and async paths. The index settings themselves
belong to the statements and are applied by :mod:`vecalchemy.search._settings` however
they are executed; the runner only passes per-call overrides (:class:`ScanOptions`) as
execution options.

What a plan gets here:

* a :class:`~vecalchemy.query.nearest.NearestPlan` (from :func:`~vecalchemy.plan_nearest`,
  or a ``Select`` built by :func:`~vecalchemy.nearest` and extended by you): with a
  filter and ``strategy="auto"``, the planner's estimate chooses between an exact scan and
  the index; an index scan that returns fewer than ``k`` rows (a selective filter, or
  dead index entries left by updates and deletes) is followed by an exact scan, so a
  search returns ``k`` rows whenever ``k`` rows match. Iterative scans run in relaxed
  order (better recall) and the hits are re-sorted.
* a fused plan (:func:`~vecalchemy.plan_hybrid`, :func:`~vecalchemy.plan_multi`): one
  statement, whose vector legs fall back to exact scans inside the SQL.

Example::

    plan = vecalchemy.plan_nearest(Doc.embedding, q, k=10, where=Doc.lang == "en")
    hits = vecalchemy.run(session, plan)
    hits = vecalchemy.run(session, vecalchemy.nearest(Doc.embedding, q, k=10).where(...))
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import operator
import typing
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Select, literal_column
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql import visitors

from vecalchemy._records import slot_constructor
from vecalchemy._sql import PLAN_OPTION, Distance
from vecalchemy._steps import Execute, Step, arun_steps, run_steps
from vecalchemy._typing import Strategy
from vecalchemy.errors import InvalidArgument, InvalidSearch
from vecalchemy.query._nearest import NearestPlan
from vecalchemy.query.fusion import FusedQuery
from vecalchemy.search._direct import DirectRows
from vecalchemy.search._settings import DEFAULT_EF_SEARCH, OPTION, ScanOptions
from vecalchemy.search._strategy import filter_estimate, prefers_exact_scan
from vecalchemy.search.rerank import MMR, apply_rerank

__all__ = ["FusedHit", "Hit", "NearestSearch", "arun", "run"]

T = TypeVar("T")

#: How :func:`vecalchemy.search` may find the nearest rows (see its ``strategy``).
STRATEGIES: tuple[Strategy, ...] = ("auto", "index", "exact")

_RELAXED = ScanOptions(order="relaxed")


@dataclass(frozen=True, slots=True)
class Hit(Generic[T]):
    """One search result.

    ``row``: the mapped object (ORM column, through a ``Session``) or the row (Core
    column, or a ``Connection``).
    ``distance``: pgvector's raw distance (for inner product, the NEGATIVE inner product).
    ``similarity``: higher is more similar, whatever the metric (see :mod:`vecalchemy.metrics`).

    Example::

        hit = vecalchemy.search(session, Doc.embedding, q, k=1)[0]
        hit.row.title, hit.distance, hit.similarity
    """

    row: T
    distance: float
    similarity: float
    #: The reranker's score when ``search(..., rerank=...)`` reordered the hits, else None.
    score: float | None = None


@dataclass(frozen=True, slots=True)
class FusedHit(Generic[T]):
    """One result of a fused search, best first.

    ``row``: the mapped object (ORM column, through a ``Session``) or the row (Core
    column, or a ``Connection``; it also holds the ``score``/``rank_<i>``/``distance_<i>``
    columns). ``score``: the fused score, higher is better (see
    :mod:`vecalchemy.query.fusion`). ``ranks``: the row's 1-based rank in each leg, in leg
    order (hybrid: vector, then text or sparse), ``None`` where that leg did not return
    it. ``distances``: the exact distance between the row and each vector leg's query
    vector (pgvector's raw distance, as in :class:`Hit`), ``None`` for a full-text leg
    or a NULL vector.

    Example::

        hit = hybrid_search(session, Doc.embedding, Doc.tsv, "vacuum", q, k=1)[0]
        hit.row.title, hit.score, hit.ranks, hit.distances  # ..., (3, 1), (0.21, None)
    """

    row: T
    score: float
    ranks: tuple[int | None, ...]
    distances: tuple[float | None, ...]


@dataclass(frozen=True)
class NearestSearch:
    """A nearest-neighbour plan and how to run it: one frozen object for every option.

    ``k`` is the number of hits kept (the plan fetches more for ``diversify`` or
    ``rerank``); ``query`` the checked query vector (MMR compares with it);
    ``rerank_query`` what the reranker is given (the caller's query unless told).
    """

    plan: NearestPlan
    scan: ScanOptions = _RELAXED
    strategy: Strategy = "auto"
    k: int | None = None
    max_distance: float | None = None
    diversify: MMR | None = None
    rerank: Callable[[Any, Sequence[Any]], Any] | None = None
    rerank_query: Any = None
    query: Any = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InvalidSearch(
                f"strategy must be one of {', '.join(map(repr, STRATEGIES))}, got {self.strategy!r}"
            )


Plan = NearestSearch | NearestPlan | FusedQuery | Select[Any]


def _as_search(plan: Any) -> NearestSearch | FusedQuery:
    if isinstance(plan, (NearestSearch, FusedQuery)):
        return plan
    if isinstance(plan, NearestPlan):
        return NearestSearch(plan)
    if isinstance(plan, Select):
        found = plan.get_execution_options().get(PLAN_OPTION)
        if isinstance(found, FusedQuery):
            return found
        if isinstance(found, NearestPlan):
            # Your statement (with your filters, joins, options) is the index statement;
            # its exact twin is the same statement answered without a vector index.
            return NearestSearch(
                dataclasses.replace(found, select=plan, exact=exact_twin(plan), rebuild=None)
            )
    raise InvalidArgument(
        "run() takes a plan from plan_nearest(), plan_hybrid() or plan_multi(), or a Select "
        f"built by nearest(), hybrid_query() or multi_query(); got {type(plan).__name__}"
    )


def exact_twin(stmt: Select[Any]) -> Select[Any]:
    """``stmt`` answered without a vector index: its distances carry no index scan and
    its ORDER BY is ``distance + 0``, which no index serves."""

    def replace(element: Any, **kw: Any) -> Any:
        if isinstance(element, Distance) and element.scan is not None:
            return Distance(element.left, element.right, element.operator, None)
        return None

    exact = visitors.replacement_traverse(
        typing.cast(visitors.ExternallyTraversible, stmt), {}, replace
    )
    assert isinstance(exact, Select)
    label = exact.selected_columns["distance"]
    element = getattr(label, "element", label)
    return exact.order_by(None).order_by(element + literal_column("0"))


# -- nearest ------------------------------------------------------------------------------


def _nearest_steps(search: NearestSearch, orm: bool) -> Generator[Step, Any, list[Hit[Any]]]:
    plan = search.plan
    # The statement's own fallback (see vecalchemy.search._settings) answers it exactly
    # when the index returns fewer than k rows; strategy="index" keeps the index's rows.
    scan = _with_fallback(search.scan, search.strategy == "auto")
    options = {OPTION: scan}
    exact = search.strategy == "exact"
    if search.strategy == "auto" and plan.clauses and plan.table is not None:
        found = yield Execute(filter_estimate(plan.table, plan.clauses))
        ef = search.scan.ef_search or max(DEFAULT_EF_SEARCH, plan.scan_size)
        exact = prefers_exact_scan(found.scalar(), ef_search=ef)
    if exact:
        # No settings are sent: no vector index serves the exact statement.
        rows = (yield Execute(plan.exact, plan.params)).all()
    elif plan.params and not plan.clauses and not plan.orm:
        # A cached template of a Core column with its query vector bound: the same
        # statement every time, run directly on a Connection's cursor where that changes
        # nothing (_direct). ORM statements keep the ORM's compilation (deferred columns).
        rows = yield DirectRows(plan.select, plan.params, scan)
    else:
        rows = (yield Execute(plan.select, plan.params, options)).all()
    return _hits(search, rows, orm)


@functools.lru_cache(maxsize=256)
def _with_fallback(scan: ScanOptions, fallback: bool) -> ScanOptions:
    return scan if scan.fallback == fallback else dataclasses.replace(scan, fallback=fallback)


def _hits(search: NearestSearch, rows: Sequence[Any], orm: bool) -> list[Hit[Any]]:
    spec = search.plan.spec
    similarity = spec.metric.similarity
    cutoff = search.max_distance
    out: list[Hit[Any]] = []
    at = -1 if orm or not rows else rows[0]._fields.index("distance")
    for row in rows:
        d = row[at]
        if d is None:
            continue  # NULL embeddings have no distance
        d = float(d)
        if cutoff is not None and d > cutoff:
            continue
        out.append(_hit(row[0] if orm else row, d, similarity(d, dim=spec.dim), None))
    out.sort(key=_DISTANCE)  # relaxed iterative scans: slightly out of order
    return out


_DISTANCE = operator.attrgetter("distance")
#: ``Hit(row, distance, similarity, score)``, without the frozen ``__init__`` (_records).
_hit = slot_constructor(Hit)
#: ``FusedHit(row, score, ranks, distances)``, the same way.
_fused_hit = slot_constructor(FusedHit)


def _vector_of(search: NearestSearch, hit: Hit[Any], orm: bool) -> Any:
    key = search.plan.vector_key
    if orm:
        return getattr(hit.row, key)
    return hit.row._mapping[key]


def _finish(search: NearestSearch, hits: list[Hit[Any]], orm: bool) -> list[Hit[Any]]:
    """Diversify (MMR) or apply the reranker's scores to the fetched candidates; keep k."""
    k = search.k if search.k is not None else search.plan.k
    if search.diversify is not None and hits:
        vectors = [_vector_of(search, h, orm) for h in hits]
        picks = search.diversify.select(search.query, vectors, k, metric=search.plan.spec.metric)
        return [hits[i] for i in picks]
    if search.rerank is not None:
        best = apply_rerank(search.rerank, search.rerank_query, hits, k)
        return [dataclasses.replace(hit, score=score) for hit, score in best]
    return hits[:k]


# -- fused --------------------------------------------------------------------------------


def _fused_steps(fq: FusedQuery, orm: bool) -> Generator[Step, Any, list[FusedHit[Any]]]:
    if fq.params and not fq.orm:
        # A reused statement (plan_hybrid(cached=True)) with its values bound: run
        # directly on a Connection's cursor where that changes nothing (_direct).
        rows = yield DirectRows(fq.select, fq.params, _RELAXED)
    else:
        rows = (yield Execute(fq.select, dict(fq.params), {OPTION: _RELAXED})).all()
    legs = fq.legs
    out: list[FusedHit[Any]] = []
    for row in rows:
        m = row._mapping
        ranks = tuple(
            int(m[f"rank_{i}"]) if m[f"rank_{i}"] is not None else None for i in range(len(legs))
        )
        distances = tuple(
            float(m[f"distance_{i}"])
            if leg.distance is not None and m[f"distance_{i}"] is not None
            else None
            for i, leg in enumerate(legs)
        )
        out.append(_fused_hit(row[0] if orm else row, float(m["score"]), ranks, distances))
    return out


# -- the runners --------------------------------------------------------------------------


def _orm_bind(bind: Any) -> bool:
    return isinstance(bind, (Session, AsyncSession))


def _check_bind(bind: Any, *, async_: bool) -> None:
    sync_kinds = (Session, Connection)
    async_kinds = (AsyncSession, AsyncConnection)
    if isinstance(bind, async_kinds if async_ else sync_kinds):
        return
    if isinstance(bind, sync_kinds if async_ else async_kinds):
        other = "run()" if async_ else "await arun()"
        raise InvalidArgument(
            f"{'arun' if async_ else 'run'}() got a {type(bind).__name__}; use {other}"
        )
    raise InvalidArgument(
        "the first argument must be a Session or Connection (AsyncSession or "
        f"AsyncConnection for arun), got {type(bind).__name__}"
    )


def run(session: Session | Connection, plan: Plan) -> list[Any]:
    """Run a plan and return its hits: :class:`Hit` objects for a nearest-neighbour plan,
    :class:`FusedHit` objects for a fused one, best first.

    Example::

        hits = vecalchemy.run(session, vecalchemy.plan_nearest(Doc.embedding, q, k=5))
    """
    _check_bind(session, async_=False)
    search = _as_search(plan)
    if isinstance(search, FusedQuery):
        return run_steps(session, _fused_steps(search, _orm_bind(session) and search.orm))
    orm = _orm_bind(session) and search.plan.orm
    return _finish(search, run_steps(session, _nearest_steps(search, orm)), orm)


async def arun(session: AsyncSession | AsyncConnection, plan: Plan) -> list[Any]:
    """The async twin of :func:`run`; a reranker runs in a worker thread, so a
    cross-encoder does not block the event loop.

    Example::

        hits = await vecalchemy.arun(async_session, vecalchemy.plan_nearest(Doc.embedding, q))
    """
    _check_bind(session, async_=True)
    search = _as_search(plan)
    if isinstance(search, FusedQuery):
        return await arun_steps(session, _fused_steps(search, _orm_bind(session) and search.orm))
    orm = _orm_bind(session) and search.plan.orm
    hits = await arun_steps(session, _nearest_steps(search, orm))
    if search.rerank is not None:  # a model may take a while: keep the event loop free
        return await asyncio.to_thread(_finish, search, hits, orm)
    return _finish(search, hits, orm)
