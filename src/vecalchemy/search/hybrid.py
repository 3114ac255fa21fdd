"""Run fused searches: hybrid (full text + vector, dense + sparse) and multi-vector.

:func:`hybrid_search` fuses a vector leg with a full-text leg (a
:func:`~vecalchemy.fulltext.FullText` column) or a sparse leg (a ``sparsevec`` column);
:func:`multi_search` fuses several vector columns of one table. Each runs ONE statement
built by :mod:`vecalchemy.query.fusion`, in which every leg is served by its own index
(and falls back to an exact scan inside the SQL when the index comes back short),
through :func:`vecalchemy.run`; the statement's index settings (``hnsw.ef_search``
the largest any leg needs, iterative scans) are applied for it alone.

Example::

    from vecalchemy.query.fusion import RRF
    from vecalchemy.search.hybrid import hybrid_search, multi_search

    hits = hybrid_search(session, Doc.embedding, Doc.tsv, "error E1234 on start", q, k=5)
    for hit in hits:
        print(hit.row.title, round(hit.score, 4), hit.ranks)   # ranks: (vector, text)

    hits = multi_search(session, {Doc.title_embedding: 0.3, Doc.body_embedding: 0.7}, q)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from vecalchemy._typing import Where
from vecalchemy.query.fusion import Fusion, Weighted, plan_hybrid, plan_multi
from vecalchemy.search.run import FusedHit, arun, run

__all__ = ["ahybrid_search", "amulti_search", "hybrid_search", "multi_search"]


def hybrid_search(
    session: Session | Connection,
    vector_column: Any,
    text_column: Any,
    query_text: Any,
    query_vector: Any,
    k: int = 10,
    *,
    where: Where = None,
    fusion: Fusion | None = None,
    language: str | None = None,
    candidates: int | None = None,
) -> list[FusedHit[Any]]:
    """The ``k`` best rows by a vector leg fused with a full-text or a sparse leg.

    ``text_column`` is a :func:`~vecalchemy.fulltext.FullText` column, and then
    ``query_text`` is the user's text (``websearch_to_tsquery`` syntax: words, "quoted
    phrases", ``or``, ``-excluded``), or a :func:`~vecalchemy.bm25.BM25` column (the
    text leg is then ranked by BM25; a query with no terms leaves the vector leg alone),
    or a ``sparsevec`` column, and then ``query_text``
    is the sparse query vector (a ``SparseVector`` or an ``{index: weight}`` dict).
    ``query_vector`` is the dense query vector. ``where``: a filter expression (or a
    list of them) applied inside both legs. ``fusion``: :class:`~vecalchemy.RRF` or
    :class:`~vecalchemy.Weighted`; by default ``Weighted((0.75, 0.25))`` for a BM25
    column and ``RRF()`` for the others (see :func:`~vecalchemy.query.fusion.default_fusion`).
    ``language``: defaults to the column's; another one raises
    :class:`~vecalchemy.InvalidSearch`. ``candidates``: how deep each leg's ranking is
    fused, default 100 (at most 1,000 for an HNSW index); each leg fetches
    ``max(k, candidates)`` rows, and rows no leg ranks within ``candidates`` come after
    the fused ones, so the first hits are the same for every ``k``.

    Every argument is checked before any SQL runs. Returns :class:`FusedHit` objects,
    best first.

    Example::

        hits = hybrid_search(session, Doc.embedding, Doc.tsv, "pg_stat_statements", q, k=5,
                             where=Doc.lang == "en")
        [(h.row.id, round(h.score, 4), h.ranks) for h in hits]
        # [(7, 0.0325, (1, 2)), (3, 0.0164, (None, 1)), ...]
    """
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
        cached=True,
    )
    hits: list[FusedHit[Any]] = run(session, fq)
    return hits


async def ahybrid_search(
    session: AsyncSession | AsyncConnection,
    vector_column: Any,
    text_column: Any,
    query_text: Any,
    query_vector: Any,
    k: int = 10,
    *,
    where: Where = None,
    fusion: Fusion | None = None,
    language: str | None = None,
    candidates: int | None = None,
) -> list[FusedHit[Any]]:
    """The async twin of :func:`hybrid_search`, for ``AsyncSession`` and ``AsyncConnection``.

    Example::

        async with AsyncSession(engine) as session:
            hits = await ahybrid_search(session, Doc.embedding, Doc.tsv, "vacuum", q, k=5)
    """
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
        cached=True,
    )
    hits: list[FusedHit[Any]] = await arun(session, fq)
    return hits


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
    With :class:`~vecalchemy.Weighted` (the default) ``score`` is
    ``sum(weight * similarity)`` of the row's exact similarity on EVERY column (also the
    columns whose leg did not return it; a NULL vector adds 0), computed for the union
    of the legs' candidates. With :class:`~vecalchemy.RRF` it is
    ``sum(weight / (k + rank))``. Each leg is served by its column's index;
    ``candidates`` (how deep each leg is fused) defaults to 100, as in :func:`hybrid_search`.

    Example::

        hits = multi_search(session, {Doc.title_embedding: 0.3, Doc.body_embedding: 0.7}, q)
        hits[0].row.title, hits[0].score, hits[0].distances
    """
    fq = plan_multi(columns, query, k, where=where, fusion=fusion, candidates=candidates)
    hits: list[FusedHit[Any]] = run(session, fq)
    return hits


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
    hits: list[FusedHit[Any]] = await arun(session, fq)
    return hits
