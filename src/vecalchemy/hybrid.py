"""Run fused searches: hybrid (full text + vector, dense + sparse) and multi-vector.

:func:`hybrid_search` fuses a vector leg with a full-text leg (a
:func:`~vecalchemy.fulltext.FullText` column) or a sparse leg (a ``sparsevec`` column);
:func:`multi_search` fuses several vector columns of one table. Each runs ONE statement
built by :mod:`vecalchemy.fusion`, in which every leg is served by its own index, after
setting the index settings every vector leg needs with ``SET LOCAL`` semantics
(``hnsw.ef_search`` the largest any leg needs, so that each HNSW scan can return all its
candidates; iterative scans when filtered). The settings end with the transaction.

Example::

    from vecalchemy.fusion import RRF
    from vecalchemy.hybrid import hybrid_search, multi_search

    hits = hybrid_search(session, Doc.embedding, Doc.tsv, "error E1234 on start", q, k=5)
    for hit in hits:
        print(hit.row.title, round(hit.score, 4), hit.ranks)   # ranks: (vector, text)

    hits = multi_search(session, {Doc.title_embedding: 0.3, Doc.body_embedding: 0.7}, q)
"""

from __future__ import annotations

import math
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from vecalchemy.fusion import RRF, FusedQuery, Fusion, Weighted, Where, plan_hybrid, plan_multi
from vecalchemy.indexes import IVFFLAT_LISTS
from vecalchemy.search import (
    Step,
    apply_settings,
    arun_steps,
    database_key,
    index_settings,
    run_steps,
    settings_step,
)

__all__ = ["FusedHit", "ahybrid_search", "amulti_search", "hybrid_search", "multi_search"]

T = TypeVar("T")

# Settings several legs may need different values of: the largest serves them all.
_MAX_SETTINGS = ("hnsw.ef_search", "ivfflat.probes")


@dataclass(frozen=True, slots=True)
class FusedHit(Generic[T]):
    """One result of a fused search, best first.

    ``row``: the mapped object (ORM column, through a ``Session``) or the row (Core
    column, or a ``Connection``; it also holds the ``score``/``rank_<i>``/``distance_<i>``
    columns). ``score``: the fused score, higher is better (see :mod:`vecalchemy.fusion`).
    ``ranks``: the row's 1-based rank in each leg, in leg order (hybrid: vector, then
    text or sparse), ``None`` where that leg did not return it. ``distances``: the exact
    distance between the row and each vector leg's query vector (pgvector's raw
    distance, as in :class:`vecalchemy.Hit`), ``None`` for a full-text leg or a NULL
    vector.

    Example::

        hit = hybrid_search(session, Doc.embedding, Doc.tsv, "vacuum", q, k=1)[0]
        hit.row.title, hit.score, hit.ranks, hit.distances  # ..., (3, 1), (0.21, None)
    """

    row: T
    score: float
    ranks: tuple[int | None, ...]
    distances: tuple[float | None, ...]


@dataclass(frozen=True)
class _Plan:
    query: FusedQuery
    settings: dict[str, str]
    lists_lookups: tuple[str, ...]  # IVFFlat(lists=None) indexes whose lists set probes
    orm: bool


def _plan(fq: FusedQuery, *, orm_session: bool) -> _Plan:
    settings: dict[str, str] = {}
    lookups: list[str] = []
    for leg in fq.legs:
        if leg.spec is None:
            continue  # a full-text leg: the GIN index has no query-time settings
        wanted, lookup = index_settings(
            leg.spec, fq.candidates, filtered=fq.filtered, column_name=leg.column_name
        )
        for name, value in wanted.items():
            if name in _MAX_SETTINGS and name in settings:
                value = str(max(int(settings[name]), int(value)))
            settings[name] = value
        if lookup is not None and lookup not in lookups:
            lookups.append(lookup)
    return _Plan(
        query=fq,
        settings=settings,
        lists_lookups=tuple(lookups),
        orm=orm_session and fq.orm,
    )


def _settings_steps(
    settings: dict[str, str], lookups: Sequence[str], database: str | None
) -> Generator[Step, Any, None]:
    if len(lookups) <= 1 and not (lookups and "ivfflat.probes" in settings):
        yield from apply_settings(settings, lookups[0] if lookups else None, database)
        return
    # Several IVFFlat indexes share one ivfflat.probes: read each one's lists (cached per
    # database by apply_settings), then set the largest probes any of them needs.
    for name in lookups:
        yield from apply_settings({}, name, database)
    probes = [int(settings["ivfflat.probes"])] if "ivfflat.probes" in settings else []
    for name in lookups:
        lists = IVFFLAT_LISTS.get((database, name)) if database is not None else None
        if lists is not None:
            probes.append(max(1, min(lists, round(math.sqrt(lists)))))
    settings = dict(settings)
    if probes:
        settings["ivfflat.probes"] = str(max(probes))
    yield settings_step(settings)


def _hits(plan: _Plan, rows: Sequence[Any]) -> list[FusedHit[Any]]:
    legs = plan.query.legs
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
        out.append(
            FusedHit(
                row=row[0] if plan.orm else row,
                score=float(m["score"]),
                ranks=ranks,
                distances=distances,
            )
        )
    return out


def _steps(plan: _Plan, database: str | None) -> Generator[Step, Any, list[FusedHit[Any]]]:
    """The statements one fused search runs; written once for the sync and async runners."""
    yield from _settings_steps(plan.settings, plan.lists_lookups, database)
    rows = (yield plan.query.select, {}).all()
    return _hits(plan, rows)


def run_fused(session: Session | Connection, query: FusedQuery) -> list[FusedHit[Any]]:
    """Run a fused query built by :func:`~vecalchemy.fusion.plan_hybrid` or
    :func:`~vecalchemy.fusion.plan_multi`, with its index settings; for callers that
    build (and so check) the query before touching the database.

    Example::

        fq = plan_hybrid(Doc.embedding, Doc.tsv, "vacuum", q, k=5)   # raises on bad input
        hits = run_fused(session, fq)
    """
    plan = _plan(query, orm_session=isinstance(session, Session))
    return run_steps(session, _steps(plan, database_key(session)))


def _hybrid_plan(
    vector_column: Any,
    text_column: Any,
    query_text: Any,
    query_vector: Any,
    k: int,
    *,
    where: Where,
    fusion: Fusion,
    language: str | None,
    candidates: int | None,
    orm_session: bool,
) -> _Plan:
    fq = plan_hybrid(
        vector_column,
        text_column,
        query_text,
        query_vector,
        k,
        where=where,
        fusion=fusion,
        language=language,
        candidates=candidates,
    )
    return _plan(fq, orm_session=orm_session)


def hybrid_search(
    session: Session | Connection,
    vector_column: Any,
    text_column: Any,
    query_text: Any,
    query_vector: Any,
    k: int = 10,
    *,
    where: Where = None,
    fusion: Fusion = RRF(),  # noqa: B008 - frozen, immutable default
    language: str | None = None,
    candidates: int | None = None,
) -> list[FusedHit[Any]]:
    """The ``k`` best rows by a vector leg fused with a full-text or a sparse leg.

    ``text_column`` is a :func:`~vecalchemy.fulltext.FullText` column, and then
    ``query_text`` is the user's text (``websearch_to_tsquery`` syntax: words, "quoted
    phrases", ``or``, ``-excluded``), or a ``sparsevec`` column, and then ``query_text``
    is the sparse query vector (a ``SparseVector`` or an ``{index: weight}`` dict).
    ``query_vector`` is the dense query vector. ``where``: a filter expression (or a
    list of them) applied inside both legs. ``fusion``: :class:`~vecalchemy.fusion.RRF`
    (default) or :class:`~vecalchemy.fusion.Weighted`. ``language``: defaults to the
    column's; another one raises :class:`~vecalchemy.InvalidSearch`. ``candidates``: rows
    each leg fetches, default ``max(4 * k, 40)`` (at most 1,000 for an HNSW index).

    Every argument is checked before any SQL runs. Returns :class:`FusedHit` objects,
    best first.

    Example::

        hits = hybrid_search(session, Doc.embedding, Doc.tsv, "pg_stat_statements", q, k=5,
                             where=Doc.lang == "en")
        [(h.row.id, round(h.score, 4), h.ranks) for h in hits]
        # [(7, 0.0325, (1, 2)), (3, 0.0164, (None, 1)), ...]
    """
    plan = _hybrid_plan(
        vector_column,
        text_column,
        query_text,
        query_vector,
        k,
        where=where,
        fusion=fusion,
        language=language,
        candidates=candidates,
        orm_session=isinstance(session, Session),
    )
    return run_steps(session, _steps(plan, database_key(session)))


async def ahybrid_search(
    session: AsyncSession | AsyncConnection,
    vector_column: Any,
    text_column: Any,
    query_text: Any,
    query_vector: Any,
    k: int = 10,
    *,
    where: Where = None,
    fusion: Fusion = RRF(),  # noqa: B008 - frozen, immutable default
    language: str | None = None,
    candidates: int | None = None,
) -> list[FusedHit[Any]]:
    """The async twin of :func:`hybrid_search`, for ``AsyncSession`` and ``AsyncConnection``.

    Example::

        async with AsyncSession(engine) as session:
            hits = await ahybrid_search(session, Doc.embedding, Doc.tsv, "vacuum", q, k=5)
    """
    plan = _hybrid_plan(
        vector_column,
        text_column,
        query_text,
        query_vector,
        k,
        where=where,
        fusion=fusion,
        language=language,
        candidates=candidates,
        orm_session=isinstance(session, AsyncSession),
    )
    return await arun_steps(session, _steps(plan, database_key(session)))


def multi_search(
    session: Session | Connection,
    columns: Mapping[Any, float],
    query: Any,
    k: int = 10,
    *,
    where: Where = None,
    fusion: Fusion = Weighted(),  # noqa: B008 - frozen, immutable default
    candidates: int | None = None,
) -> list[FusedHit[Any]]:
    """The ``k`` best rows by several vector columns of one table, in one statement.

    ``columns`` maps each vector column to its weight (positive).
    ``query`` is one vector used for every column, or a mapping of column to vector.
    With :class:`~vecalchemy.fusion.Weighted` (the default) ``score`` is
    ``sum(weight * similarity)`` of the row's exact similarity on EVERY column (also the
    columns whose leg did not return it; a NULL vector adds 0), computed for the union
    of the legs' candidates. With :class:`~vecalchemy.fusion.RRF` it is
    ``sum(weight / (k + rank))``. Each leg is served by its column's index;
    ``candidates`` (rows per leg) defaults to ``max(4 * k, 40)``.

    Example::

        hits = multi_search(session, {Doc.title_embedding: 0.3, Doc.body_embedding: 0.7}, q)
        hits[0].row.title, hits[0].score, hits[0].distances
    """
    fq = plan_multi(columns, query, k, where=where, fusion=fusion, candidates=candidates)
    plan = _plan(fq, orm_session=isinstance(session, Session))
    return run_steps(session, _steps(plan, database_key(session)))


async def amulti_search(
    session: AsyncSession | AsyncConnection,
    columns: Mapping[Any, float],
    query: Any,
    k: int = 10,
    *,
    where: Where = None,
    fusion: Fusion = Weighted(),  # noqa: B008 - frozen, immutable default
    candidates: int | None = None,
) -> list[FusedHit[Any]]:
    """The async twin of :func:`multi_search`.

    Example::

        hits = await amulti_search(session, {Doc.title_embedding: 1, Doc.body_embedding: 2}, q)
    """
    fq = plan_multi(columns, query, k, where=where, fusion=fusion, candidates=candidates)
    plan = _plan(fq, orm_session=isinstance(session, AsyncSession))
    return await arun_steps(session, _steps(plan, database_key(session)))
