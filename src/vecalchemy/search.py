"""Run nearest-neighbour queries with per-query index settings; return :class:`Hit` objects.

:func:`search` (and :func:`asearch` for ``AsyncSession``) builds the query with
:func:`vecalchemy.nearest`, applies the index's query-time settings with ``SET LOCAL``
semantics (``set_config(name, value, true)``: they end with the transaction and never
reach the pooled connection), runs it, and returns hits whose ``similarity`` points the
right way for the metric.

Settings, set explicitly on every call so that one search never inherits another's:

* ``hnsw.ef_search``: ``ef_search`` if given, else ``max(40, k)``; never below ``k``,
  because an HNSW scan returns at most ``ef_search`` rows.
* ``ivfflat.probes``: ``probes`` if given, else ``sqrt(lists)`` of the index.
* ``hnsw.iterative_scan`` / ``ivfflat.iterative_scan``: ``relaxed_order`` when ``where``
  is given (pgvector 0.8 then keeps scanning until k rows pass the filter, so a
  selective filter still returns k rows when k rows match; hits are re-sorted), ``off``
  otherwise.

Thresholds have two names so their direction cannot be confused: ``min_similarity``
(keep hits at least this similar) and ``max_distance`` (keep hits at most this far).
They are applied to the ordered top-k, so they never change the query plan and never
make pgvector walk the index looking for rows that cannot exist.

Example::

    with Session(engine) as session:
        for hit in vecalchemy.search(session, Doc.embedding, q, k=5, min_similarity=0.3):
            print(hit.row.title, round(hit.similarity, 3))
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Select,
    String,
    bindparam,
    func,
    literal,
    literal_column,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Session

from vecalchemy.errors import InvalidSearch
from vecalchemy.explain import Explain
from vecalchemy.indexes import IVFFLAT_LISTS
from vecalchemy.metrics import MAX_EF_SEARCH, Metric
from vecalchemy.query import (
    CANDIDATES_PARAM,
    DEFAULT_OVERSAMPLE,
    QUERY_PARAM,
    NearestQuery,
    may_use_hnsw,
    nearest_template,
    query_value,
)
from vecalchemy.rerank import MMR, apply_rerank
from vecalchemy.schema import HNSW, IVFFlat, VectorSpec, resolve_spec

__all__ = ["DEFAULT_EF_SEARCH", "Hit", "asearch", "search"]

T = TypeVar("T")
R = TypeVar("R")

#: pgvector's default ``hnsw.ef_search``; vecalchemy never sets less than ``max(this, k)``.
DEFAULT_EF_SEARCH = 40

#: How :func:`search` may find the nearest rows (see its ``strategy`` argument).
STRATEGIES = ("auto", "index", "exact")

Where = ColumnElement[bool] | Sequence[ColumnElement[bool]] | None


@dataclass(frozen=True, slots=True)
class Hit(Generic[T]):
    """One search result.

    ``row``: the mapped object (ORM column) or the row (Core column).
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


@dataclass(frozen=True)
class _Plan:
    query: NearestQuery
    value: Any  # the query vector, bound at execution
    settings: dict[str, str]
    max_distance: float | None
    orm: bool
    lists_lookup: str | None  # index whose lists must be read to choose probes
    strategy: str  # "index", "exact", or "auto" (estimate the filter's matches first)
    estimate: Executable | None  # EXPLAIN of the filter alone, for strategy="auto"
    params: dict[str, Any]  # bound at execution: the query vector, candidate limit
    ef_search: int  # what an index scan would use (the strategy weighs it)
    k: int  # hits wanted; the query fetches more when they are diversified or reranked
    diversify: MMR | None
    rerank: Callable[[Any, Sequence[Any]], Any] | None
    rerank_query: Any
    vector_key: Any  # how to read the searched vector from a fetched row (for MMR)


def _check_setting(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidSearch(f"{name} must be an integer from {lo} to {hi:,}, got {value!r}")
    return value


def _plan(
    column: Any,
    query: Any,
    k: int,
    *,
    where: Where,
    min_similarity: float | None,
    max_distance: float | None,
    metric: str | Metric | None,
    ef_search: int | None,
    probes: int | None,
    load_embedding: bool,
    orm_session: bool,
    strategy: str = "auto",
    oversample: int | None = None,
    diversify: MMR | None = None,
    rerank: Callable[[Any, Sequence[Any]], Any] | None = None,
    rerank_query: Any = None,
    candidates: int | None = None,
) -> _Plan:
    fetch = k
    if diversify is not None and rerank is not None:
        raise InvalidSearch("give diversify= or rerank=, not both")
    if diversify is not None:
        if not isinstance(diversify, MMR):
            raise InvalidSearch(f"diversify must be vecalchemy.MMR(...), got {diversify!r}")
        fetch = diversify.fetch_for(k)
        load_embedding = True  # MMR compares the candidates with each other
    elif rerank is not None:
        if not callable(rerank):
            raise InvalidSearch(
                f"rerank must be callable as rerank(query, hits), got {type(rerank).__name__}"
            )
        fetch = max(4 * k, 20) if candidates is None else candidates
        _check_setting("candidates", fetch, 1, MAX_EF_SEARCH)
        if fetch < k:
            raise InvalidSearch(
                f"candidates={fetch} is below k={k}: the reranker picks k of the candidates"
            )
    elif candidates is not None:
        raise InvalidSearch("candidates applies to rerank=; pass a reranker or drop it")
    # A cached statement; only the checked query vector changes from call to call.
    nq = nearest_template(column, fetch, metric=metric, load_embedding=load_embedding)
    spec = nq.spec
    value = query_value(spec, query, column=nq.column_name)
    if strategy not in STRATEGIES:
        raise InvalidSearch(
            f"strategy must be one of {', '.join(map(repr, STRATEGIES))}, got {strategy!r}"
        )
    params: dict[str, Any] = {QUERY_PARAM: value}
    candidates = nq.k
    if spec.binary_quantized:
        factor = DEFAULT_OVERSAMPLE if oversample is None else oversample
        _check_setting("oversample", factor, 1, MAX_EF_SEARCH)
        candidates = min(nq.k * factor, MAX_EF_SEARCH)
        params[CANDIDATES_PARAM] = candidates
    elif oversample is not None:
        raise InvalidSearch(
            f"oversample applies to binary-quantized indexes; {nq.column_name} has none "
            "(declare it with index=HNSW(quantize='binary'))"
        )
    clauses: list[ColumnElement[bool]] = []
    if where is not None:
        clauses = [where] if isinstance(where, ColumnElement) else list(where)
        nq = nq.filtered(clauses)

    settings, lists_lookup = index_settings(
        spec,
        candidates,
        filtered=bool(clauses),
        ef_search=ef_search,
        probes=probes,
        column_name=nq.column_name,
    )
    estimate = None
    if clauses and strategy == "auto":
        table = resolve_spec(column, metric)[0].table
        table = resolve_spec(column, metric)[0].table
        # The filter's plan, and beside it the whole table's (for its row count).
        matching: Select[Any] = select(literal_column("1")).select_from(table).where(*clauses)
        estimate = Explain(
            union_all(matching, select(literal_column("1")).select_from(table)), fmt="json"
        )

    if min_similarity is not None and max_distance is not None:
        raise InvalidSearch("give min_similarity or max_distance, not both")
    cutoff: float | None = None
    if max_distance is not None:
        if isinstance(max_distance, bool) or not isinstance(max_distance, (int, float)):
            raise InvalidSearch(f"max_distance must be a number, got {max_distance!r}")
        if not math.isfinite(max_distance):
            raise InvalidSearch(f"max_distance must be finite, got {max_distance!r}")
        cutoff = float(max_distance)
    elif min_similarity is not None:
        if isinstance(min_similarity, bool) or not isinstance(min_similarity, (int, float)):
            raise InvalidSearch(f"min_similarity must be a number, got {min_similarity!r}")
        cutoff = spec.metric.max_distance_for(min_similarity, dim=spec.dim)
    return _Plan(
        query=nq,
        value=value,
        settings=settings,
        max_distance=cutoff,
        # Only a Session turns rows into mapped objects; a Connection returns flat rows.
        orm=orm_session and isinstance(column, InstrumentedAttribute),
        lists_lookup=lists_lookup,
        strategy=strategy if clauses or strategy == "exact" else "index",
        estimate=estimate,
        params=params,
        ef_search=int(settings.get("hnsw.ef_search", DEFAULT_EF_SEARCH)),
        k=k,
        diversify=diversify,
        rerank=rerank,
        rerank_query=query if rerank_query is None else rerank_query,
        vector_key=_vector_key(column),
    )


def _vector_key(column: Any) -> Any:
    return column.key if isinstance(column, InstrumentedAttribute) else column


def _vector_of(plan: _Plan, hit: Hit[Any]) -> Any:
    if plan.orm:
        return getattr(hit.row, plan.vector_key)
    return hit.row._mapping[plan.vector_key]


def _finish(plan: _Plan, hits: list[Hit[Any]]) -> list[Hit[Any]]:
    """Diversify (MMR) or apply the reranker's scores to the fetched candidates; keep k."""
    if plan.diversify is not None and hits:
        vectors = [_vector_of(plan, h) for h in hits]
        picks = plan.diversify.select(
            plan.params[QUERY_PARAM], vectors, plan.k, metric=plan.query.spec.metric
        )
        return [hits[i] for i in picks]
    if plan.rerank is not None:
        best = apply_rerank(plan.rerank, plan.rerank_query, hits, plan.k)
        return [dataclasses.replace(hit, score=score) for hit, score in best]
    return hits[: plan.k]


def index_settings(
    spec: VectorSpec,
    candidates: int,
    *,
    filtered: bool,
    ef_search: int | None = None,
    probes: int | None = None,
    column_name: str = "the column",
) -> tuple[dict[str, str], str | None]:
    """The query-time settings a scan of ``spec``'s index for ``candidates`` rows needs.

    Returns the settings and, for an ``IVFFlat(lists=None)`` index, the index name whose
    ``lists`` must be read to choose ``probes`` (``None`` otherwise). Every setting the
    scan depends on is present, so no search inherits another's. Raises
    :class:`~vecalchemy.InvalidSearch` for a setting that does not apply to the index.
    """
    settings: dict[str, str] = {}
    if ef_search is not None:
        if isinstance(spec.index, IVFFlat):
            raise InvalidSearch(
                f"ef_search applies to HNSW indexes; {column_name} has an IVFFlat index, "
                "tune it with probes="
            )
        _check_setting("ef_search", ef_search, 1, MAX_EF_SEARCH)
        if ef_search < candidates:
            raise InvalidSearch(
                f"ef_search={ef_search} is below k={candidates}: an HNSW scan returns at most "
                "ef_search rows, so you would silently get fewer than k; raise ef_search "
                "or leave it unset"
            )
    # With a filter, pgvector 0.8's iterative scans keep walking the index until k rows
    # pass it (up to hnsw.max_scan_tuples / ivfflat.max_probes), instead of filtering one
    # ef_search-sized batch and silently returning fewer. relaxed_order results are
    # re-sorted in _hits. Set explicitly either way, so no search inherits the mode.
    scan = "relaxed_order" if filtered else "off"
    if filtered:
        # Plan each filtered query with its actual values: the planner then sees the
        # filter's real selectivity, and a partial index whose predicate the filter
        # implies (partial_index, HNSW(where=...)) becomes usable. A generic plan of a
        # prepared statement can use neither.
        settings["plan_cache_mode"] = "force_custom_plan"
    if may_use_hnsw(spec):
        ef = ef_search if ef_search is not None else max(DEFAULT_EF_SEARCH, candidates)
        settings["hnsw.ef_search"] = str(min(ef, MAX_EF_SEARCH))
        settings["hnsw.iterative_scan"] = scan
    if isinstance(spec.index, IVFFlat) or (spec.index is None and not spec.declared):
        settings["ivfflat.iterative_scan"] = scan

    lists_lookup = None
    if probes is not None:
        if isinstance(spec.index, HNSW):
            raise InvalidSearch(
                f"probes applies to IVFFlat indexes; {column_name} has an HNSW index, "
                "tune it with ef_search="
            )
        _check_setting("probes", probes, 1, 32768)
        settings["ivfflat.probes"] = str(probes)
    elif isinstance(spec.index, IVFFlat):
        if spec.index.lists is not None:
            settings["ivfflat.probes"] = str(_default_probes(spec.index.lists))
        else:
            lists_lookup = spec.index_name

    return settings, lists_lookup


def _default_probes(lists: int) -> int:
    return max(1, min(lists, round(math.sqrt(lists))))


@functools.lru_cache(maxsize=64)
def _settings_stmt(names: tuple[str, ...]) -> Select[Any]:
    """``SELECT set_config(name, :v0, true), ...``, built once per tuple of names."""
    return select(
        *(
            func.set_config(literal(name), bindparam(f"v{i}", type_=String), True)
            for i, name in enumerate(names)
        )
    )


_LISTS_SQL = text(
    "SELECT option_value FROM pg_class c, pg_options_to_table(c.reloptions) "
    "WHERE c.relname = :name AND c.relkind = 'i' AND option_name = 'lists'"
)


def _hits(plan: _Plan, rows: Sequence[Any]) -> list[Hit[Any]]:
    spec: VectorSpec = plan.query.spec
    cutoff = plan.max_distance
    out: list[Hit[Any]] = []
    for row in rows:
        d = row[-1]
        if d is None:
            continue  # NULL embeddings have no distance
        d = float(d)
        if cutoff is not None and d > cutoff:
            continue
        out.append(
            Hit(
                row=row[0] if plan.orm else row,
                distance=d,
                similarity=spec.metric.similarity(d, dim=spec.dim),
            )
        )
    out.sort(key=lambda hit: hit.distance)  # iterative scans return relaxed order
    return out


Step = tuple[Executable, dict[str, Any]]


def database_key(session: Any) -> str | None:
    """A key for the database behind ``session``, or None when it cannot be told."""
    try:
        bind = session.get_bind() if hasattr(session, "get_bind") else session
        return str(bind.engine.url)
    except Exception:
        return None


def apply_settings(
    settings: dict[str, str], lists_lookup: str | None, database: str | None
) -> Generator[Step, Any, None]:
    """The steps that apply ``settings`` (see :func:`index_settings`) for one search.

    When ``lists_lookup`` names an ``IVFFlat(lists=None)`` index, its ``lists`` are read
    once per database (then cached) to set ``ivfflat.probes`` to ``sqrt(lists)``.
    """
    settings = dict(settings)
    if lists_lookup is not None:
        key = (database, lists_lookup) if database is not None else None
        lists = IVFFLAT_LISTS.get(key) if key is not None else None
        if lists is None:
            found = yield _LISTS_SQL, {"name": lists_lookup}
            value = found.scalar()
            lists = int(value) if value is not None else None
            if lists is not None and key is not None:
                IVFFLAT_LISTS[key] = lists
        if lists is not None:
            settings["ivfflat.probes"] = str(_default_probes(lists))
    if settings:
        yield settings_step(settings)


def _steps(plan: _Plan, database: str | None) -> Generator[Step, Any, list[Hit[Any]]]:
    """The statements one search runs, in order; the runner sends back each result.

    Written once for :func:`search` and :func:`asearch`, which only differ in how they
    execute a statement.
    """
    exact = plan.strategy == "exact"
    if plan.estimate is not None:
        found = yield plan.estimate, {}
        exact = prefers_exact_scan(found.scalar(), ef_search=plan.ef_search)
    if exact:
        # No settings: the exact statement uses no vector index, and PostgreSQL prunes
        # partitions at run time even under a generic plan.
        rows = (yield plan.query.exact_select, plan.params).all()
        return _hits(plan, rows)
    yield from apply_settings(plan.settings, plan.lists_lookup, database)
    rows = (yield plan.query.select, plan.params).all()
    if plan.strategy == "auto" and len(rows) < plan.query.k:
        # The index scan ran out (hnsw.max_scan_tuples, ivfflat.max_probes) before k rows
        # passed the filter, or fewer than k rows match: an exact scan tells which, and
        # returns every match either way.
        rows = (yield plan.query.exact_select, plan.params).all()
    return _hits(plan, rows)


#: ``strategy="auto"`` scans exactly when the planner expects the filter to match at most
#: ``sqrt(EXACT_SCAN_FACTOR * ef_search * table rows)`` rows (an exact scan costs about
#: one distance per match; an iterative index scan visits about ef_search / selectivity
#: tuples; the factor is fitted to docs/benchmarks.md: 1,450 rows of 20,000, 4,600 of
#: 200,000 at ef_search 40)...
EXACT_SCAN_FACTOR = 2.6
#: ...and finding them costs at most this much (planner cost units), or at most half a
#: sequential scan of the table: a filter served by an index.
EXACT_SCAN_COST = 10_000.0


def prefers_exact_scan(plan: Any, *, ef_search: int = DEFAULT_EF_SEARCH) -> bool:
    """Whether ``EXPLAIN (FORMAT JSON)`` of ``<filter> UNION ALL <whole table>`` says an
    exact scan beats an iterative index scan.

    An exact scan computes the distance of every matching row; an iterative index scan
    visits about ``ef_search / selectivity`` rows. Few matches, found cheaply: the exact
    scan is faster, and its recall is 1. An unreadable plan means the index.

    Example::

        prefers_exact_scan(plan_json)   # True for 200 matches of 200,000 via a B-tree
    """
    if isinstance(plan, (str, bytes)):
        plan = json.loads(plan)
    try:
        filtered, whole = plan[0]["Plan"]["Plans"][:2]
        rows, cost = float(filtered["Plan Rows"]), float(filtered["Total Cost"])
        total_rows, scan_cost = float(whole["Plan Rows"]), float(whole["Total Cost"])
    except (LookupError, TypeError, ValueError):
        return False
    limit = math.sqrt(EXACT_SCAN_FACTOR * ef_search * max(total_rows, 1.0))
    return rows <= limit and cost <= max(EXACT_SCAN_COST, 0.5 * scan_cost)


def run_steps(session: Session | Connection, steps: Generator[Step, Any, R]) -> R:
    """Drive a step generator (see :func:`_steps`) on a sync session or connection.

    Each yielded ``(statement, params)`` is executed and its result sent back; the
    generator's return value is returned. Searches are written once as generators, and
    this and :func:`arun_steps` are the only places that differ between sync and async.
    """
    result: Any = None
    try:
        while True:
            result = session.execute(*steps.send(result))
    except StopIteration as done:
        value: R = done.value
        return value


async def arun_steps(session: AsyncSession | AsyncConnection, steps: Generator[Step, Any, R]) -> R:
    """The async twin of :func:`run_steps`."""
    result: Any = None
    try:
        while True:
            result = await session.execute(*steps.send(result))
    except StopIteration as done:
        value: R = done.value
        return value


def settings_step(settings: dict[str, str]) -> Step:
    """The one statement that applies ``settings`` with ``SET LOCAL`` semantics."""
    values = {f"v{i}": value for i, value in enumerate(settings.values())}
    return _settings_stmt(tuple(settings)), values


def search(
    session: Session | Connection,
    column: Any,
    query: Any,
    k: int = 10,
    *,
    where: Where = None,
    min_similarity: float | None = None,
    max_distance: float | None = None,
    metric: str | Metric | None = None,
    ef_search: int | None = None,
    probes: int | None = None,
    load_embedding: bool = False,
    strategy: str = "auto",
    oversample: int | None = None,
    diversify: MMR | None = None,
    rerank: Callable[[Any, Sequence[Any]], Any] | None = None,
    rerank_query: Any = None,
    candidates: int | None = None,
) -> list[Hit[Any]]:
    """The ``k`` rows nearest to ``query``, as :class:`Hit` objects, nearest first.

    ``session``: a ``Session`` (hits carry mapped objects) or a ``Connection``.
    ``column``: ``Doc.embedding`` or ``docs.c.embedding``; ``query``: a list, numpy
    array or pgvector object, checked before any SQL runs. ``where``: a filter
    expression (or a list of them). ``metric`` is needed only for plain pgvector columns
    without a vector index in their metadata. ``load_embedding=True`` loads the vectors
    too (they are deferred otherwise).

    ``strategy``: ``"auto"`` (default) asks the planner how many rows a filter matches
    and scans them exactly when they are few and cheap to find (an index on the filter
    column), else walks the vector index with iterative scans; if that returns fewer
    than ``k`` rows, an exact scan follows, so a filter matching ``k`` rows returns
    ``k``. ``"index"`` always uses the vector index; ``"exact"`` never does (true
    top-k, e.g. to measure recall).

    ``oversample``: for a binary-quantized index (``HNSW(quantize="binary")``), how many
    candidates per hit to fetch by Hamming distance before re-ranking by the exact
    distance (default 4; at most 1,000 candidates in all).

    ``diversify=MMR(lambda_=0.5)`` fetches more rows and picks ``k`` of them by maximal
    marginal relevance. ``rerank=fn`` fetches ``candidates`` rows (default
    ``max(4k, 20)``), calls ``fn(rerank_query or query, hits)`` once for one score per
    hit (higher is better: a cross-encoder, see :mod:`vecalchemy.rerank`) and keeps the
    ``k`` best, with ``Hit.score`` set.

    Raises :class:`~vecalchemy.DimensionMismatch`, :class:`~vecalchemy.InvalidVector`,
    :class:`~vecalchemy.InvalidSearch`, :class:`~vecalchemy.MetricMismatch` or
    :class:`~vecalchemy.MetricRequired` before touching the database.

    Example::

        hits = vecalchemy.search(session, Doc.embedding, q, k=3, where=Doc.lang == "en")
        [(h.row.id, round(h.similarity, 2)) for h in hits]   # [(7, 0.91), (3, 0.88), (12, 0.8)]
    """
    plan = _plan(
        column,
        query,
        k,
        where=where,
        min_similarity=min_similarity,
        max_distance=max_distance,
        metric=metric,
        ef_search=ef_search,
        probes=probes,
        load_embedding=load_embedding,
        orm_session=isinstance(session, Session),
        strategy=strategy,
        oversample=oversample,
        diversify=diversify,
        rerank=rerank,
        rerank_query=rerank_query,
        candidates=candidates,
    )
    return _finish(plan, run_steps(session, _steps(plan, database_key(session))))


async def asearch(
    session: AsyncSession | AsyncConnection,
    column: Any,
    query: Any,
    k: int = 10,
    *,
    where: Where = None,
    min_similarity: float | None = None,
    max_distance: float | None = None,
    metric: str | Metric | None = None,
    ef_search: int | None = None,
    probes: int | None = None,
    load_embedding: bool = False,
    strategy: str = "auto",
    oversample: int | None = None,
    diversify: MMR | None = None,
    rerank: Callable[[Any, Sequence[Any]], Any] | None = None,
    rerank_query: Any = None,
    candidates: int | None = None,
) -> list[Hit[Any]]:
    """The async twin of :func:`search`, for ``AsyncSession`` and ``AsyncConnection``.

    Example::

        async with AsyncSession(engine) as session:
            hits = await vecalchemy.asearch(session, Doc.embedding, q, k=5)
    """
    plan = _plan(
        column,
        query,
        k,
        where=where,
        min_similarity=min_similarity,
        max_distance=max_distance,
        metric=metric,
        ef_search=ef_search,
        probes=probes,
        load_embedding=load_embedding,
        orm_session=isinstance(session, AsyncSession),
        strategy=strategy,
        oversample=oversample,
        diversify=diversify,
        rerank=rerank,
        rerank_query=rerank_query,
        candidates=candidates,
    )
    hits = await arun_steps(session, _steps(plan, database_key(session)))
    if plan.rerank is not None:  # a model may take a while: keep the event loop free
        return await asyncio.to_thread(_finish, plan, hits)
    return _finish(plan, hits)
