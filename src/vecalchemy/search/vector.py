"""``search()`` and ``asearch()``: the ``k`` nearest rows as :class:`~vecalchemy.Hit` objects.

They build a :class:`~vecalchemy.query.nearest.NearestPlan` (a statement cached per
column and ``k``; only the checked query vector changes from call to call) and run it
through :func:`vecalchemy.run`: with the index settings of the statement, the
strategy, the exact fallback, thresholds, and MMR or a reranker over over-fetched
candidates.

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

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from vecalchemy._distance import query_value
from vecalchemy._typing import Strategy, Where
from vecalchemy.errors import InvalidSearch
from vecalchemy.metrics import MAX_EF_SEARCH, Metric
from vecalchemy.query._nearest import check_clauses, plan_template
from vecalchemy.schema import HNSW, IVFFlat
from vecalchemy.search._settings import ScanOptions
from vecalchemy.search.rerank import MMR
from vecalchemy.search.run import Hit, NearestSearch, arun, run

__all__ = ["asearch", "search"]


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidSearch(f"{name} must be an integer from {lo} to {hi:,}, got {value!r}")
    return value


@functools.lru_cache(maxsize=256)
def _relaxed(ef_search: int | None, probes: int | None) -> ScanOptions:
    """The scan options of a search (checked values: a small set, made once each)."""
    return ScanOptions(ef_search=ef_search, probes=probes, order="relaxed")


def _cutoff(
    metric: Metric, dim: int, min_similarity: float | None, max_distance: float | None
) -> float | None:
    if min_similarity is not None and max_distance is not None:
        raise InvalidSearch("give min_similarity or max_distance, not both")
    if max_distance is not None:
        if isinstance(max_distance, bool) or not isinstance(max_distance, (int, float)):
            raise InvalidSearch(f"max_distance must be a number, got {max_distance!r}")
        if not math.isfinite(max_distance):
            raise InvalidSearch(f"max_distance must be finite, got {max_distance!r}")
        return float(max_distance)
    if min_similarity is not None:
        if isinstance(min_similarity, bool) or not isinstance(min_similarity, (int, float)):
            raise InvalidSearch(f"min_similarity must be a number, got {min_similarity!r}")
        return metric.max_distance_for(min_similarity, dim=dim)
    return None


def _request(
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
    strategy: Strategy,
    oversample: int | None,
    diversify: MMR | None,
    rerank: Callable[[Any, Sequence[Any]], Any] | None,
    rerank_query: Any,
    candidates: int | None,
) -> NearestSearch:
    """Everything :func:`search` needs, checked before any SQL runs."""
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
        _check_int("candidates", fetch, 1, MAX_EF_SEARCH)
        if fetch < k:
            raise InvalidSearch(
                f"candidates={fetch} is below k={k}: the reranker picks k of the candidates"
            )
    elif candidates is not None:
        raise InvalidSearch("candidates applies to rerank=; pass a reranker or drop it")
    # A cached statement; only the checked query vector changes from call to call.
    plan = plan_template(
        column, fetch, metric=metric, load_embedding=load_embedding, oversample=oversample
    )
    spec = plan.spec
    value = query_value(spec, query, column=plan.column_name)
    if ef_search is not None:
        if isinstance(spec.index, IVFFlat):
            raise InvalidSearch(
                f"ef_search applies to HNSW indexes; {plan.column_name} has an IVFFlat index, "
                "tune it with probes="
            )
        _check_int("ef_search", ef_search, 1, MAX_EF_SEARCH)
        if ef_search < plan.scan_size:
            raise InvalidSearch(
                f"ef_search={ef_search} is below k={plan.scan_size}: an HNSW scan returns at most "
                "ef_search rows, so you would silently get fewer than k; raise ef_search "
                "or leave it unset"
            )
    if probes is not None:
        if isinstance(spec.index, HNSW):
            raise InvalidSearch(
                f"probes applies to IVFFlat indexes; {plan.column_name} has an HNSW index, "
                "tune it with ef_search="
            )
        _check_int("probes", probes, 1, 32_768)
    cutoff = _cutoff(spec.metric, spec.dim, min_similarity, max_distance)
    clauses = check_clauses(where)
    return NearestSearch(
        plan=plan.bind(value).filtered(clauses),
        scan=_relaxed(ef_search, probes),
        strategy=strategy,
        k=k,
        max_distance=cutoff,
        diversify=diversify,
        rerank=rerank,
        rerank_query=query if rerank_query is None else rerank_query,
        query=value,
    )


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
    strategy: Strategy = "auto",
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
    than ``k`` rows (a selective filter, or dead index entries after updates and
    deletes), an exact scan follows, so a search returns ``k`` rows whenever ``k`` rows
    match. ``"index"`` always uses the vector index, without the fallback; ``"exact"``
    never does (true top-k, e.g. to measure recall).

    ``ef_search`` / ``probes`` override the index's query-time setting for this search
    only (they are never left behind on the connection). ``oversample``: for a
    binary-quantized index (``HNSW(quantize="binary")``), how many candidates per hit to
    fetch by Hamming distance before re-ranking by the exact distance (default 4; at
    most 1,000 candidates in all).

    ``diversify=MMR(lambda_=0.5)`` fetches more rows and picks ``k`` of them by maximal
    marginal relevance. ``rerank=fn`` fetches ``candidates`` rows (default
    ``max(4k, 20)``), calls ``fn(rerank_query or query, hits)`` once for one score per
    hit (higher is better: a cross-encoder, see :mod:`vecalchemy.search.rerank`) and
    keeps the ``k`` best, with ``Hit.score`` set.

    Raises :class:`~vecalchemy.DimensionMismatch`, :class:`~vecalchemy.InvalidVector`,
    :class:`~vecalchemy.InvalidSearch`, :class:`~vecalchemy.MetricMismatch` or
    :class:`~vecalchemy.MetricRequired` before touching the database.

    Example::

        hits = vecalchemy.search(session, Doc.embedding, q, k=3, where=Doc.lang == "en")
        [(h.row.id, round(h.similarity, 2)) for h in hits]   # [(7, 0.91), (3, 0.88), (12, 0.8)]
    """
    request = _request(
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
        strategy=strategy,
        oversample=oversample,
        diversify=diversify,
        rerank=rerank,
        rerank_query=rerank_query,
        candidates=candidates,
    )
    hits: list[Hit[Any]] = run(session, request)
    return hits


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
    strategy: Strategy = "auto",
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
    request = _request(
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
        strategy=strategy,
        oversample=oversample,
        diversify=diversify,
        rerank=rerank,
        rerank_query=rerank_query,
        candidates=candidates,
    )
    hits: list[Hit[Any]] = await arun(session, request)
    return hits
