"""search(..., diversify=MMR()) and search(..., rerank=fn): post-processing of candidates.

Both fetch more rows than ``k`` through the same indexed query, then pick ``k``: MMR by
relevance minus redundancy among the candidates' vectors, a reranker by its own scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Connection, Integer, String, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import HNSW, Embedding, search
from vecalchemy.search import asearch
from vecalchemy.search.rerank import MMR, mmr

DIM = 8


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "rerank_docs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(String(40))
    embedding = Embedding(DIM, metric="cosine", index=HNSW())


# Near-duplicates of one direction (ids 0-4), then distinct directions (5-9) at 45 degrees.
# With the first pick ~ the query, a candidate's redundancy ~ its relevance, so MMR
# prefers the distinct rows when lambda_ < 0.5: (2*lambda_ - 1) * similarity is larger.
BASE = np.eye(DIM, dtype=np.float32)
VECS = np.vstack(
    [BASE[0] + 0.01 * i * BASE[1] for i in range(5)]
    + [BASE[0] * 0.7 + BASE[j] * 0.7 for j in range(2, 7)]
).astype(np.float32)
ROWS = [{"id": i, "body": f"doc {i}", "embedding": v} for i, v in enumerate(VECS)]
Q = BASE[0]


@pytest.fixture
def docs(session: Session) -> Session:
    Base.metadata.create_all(session.connection())
    session.execute(insert(Doc), ROWS)
    return session


def test_mmr_skips_near_duplicates(docs: Session) -> None:
    """Plain search returns the five near-duplicates; MMR keeps one and adds distinct rows."""
    plain = search(docs, Doc.embedding, Q, k=4)
    assert {h.row.id for h in plain} <= {0, 1, 2, 3, 4}
    diverse = search(docs, Doc.embedding, Q, k=4, diversify=MMR(lambda_=0.3))
    ids = [h.row.id for h in diverse]
    assert ids[0] == 0  # the most relevant is always picked first
    assert len(set(ids) & {0, 1, 2, 3, 4}) == 1
    assert len(ids) == 4


def test_mmr_matches_the_pure_function(docs: Session) -> None:
    """The picks equal mmr() over the same candidates, in the same order."""
    hits = search(docs, Doc.embedding, Q, k=3, diversify=MMR(lambda_=0.3, fetch_k=10))
    cands = search(docs, Doc.embedding, Q, k=10)
    picks = mmr(Q, VECS[[h.row.id for h in cands]], 3, lambda_=0.3)
    assert [h.row.id for h in hits] == [cands[i].row.id for i in picks]


def test_mmr_lambda_one_is_plain_order(docs: Session) -> None:
    hits = search(docs, Doc.embedding, Q, k=5, diversify=MMR(lambda_=1.0))
    assert [h.row.id for h in hits] == [h.row.id for h in search(docs, Doc.embedding, Q, k=5)]


def test_mmr_on_a_core_connection(connection: Connection) -> None:
    """Core rows carry the vector under the column: MMR works there too."""
    Base.metadata.create_all(connection)
    connection.execute(insert(Doc), ROWS)
    table = Doc.__table__
    hits = search(connection, table.c.embedding, Q, k=4, diversify=MMR(lambda_=0.3))
    assert len({h.row.id for h in hits} & {0, 1, 2, 3, 4}) == 1


def test_rerank_reorders_and_scores(docs: Session) -> None:
    """The reranker sees the candidates once and its scores decide the order."""
    calls: list[tuple[Any, int]] = []

    def by_id(query: Any, hits: Sequence[Any]) -> list[float]:
        calls.append((query, len(hits)))
        return [float(h.row.id) for h in hits]  # prefer high ids

    hits = search(docs, Doc.embedding, Q, k=3, rerank=by_id, rerank_query="north", candidates=10)
    assert [h.row.id for h in hits] == [9, 8, 7]
    assert [h.score for h in hits] == [9.0, 8.0, 7.0]
    assert calls == [("north", 10)]


def test_rerank_gets_the_query_vector_by_default(docs: Session) -> None:
    seen: list[Any] = []

    def spy(query: Any, hits: Sequence[Any]) -> list[float]:
        seen.append(query)
        return [0.0] * len(hits)

    search(docs, Doc.embedding, Q, k=2, rerank=spy)
    assert np.allclose(np.asarray(seen[0]), Q)


def test_bad_reranker_output_is_refused(docs: Session) -> None:
    with pytest.raises(vecalchemy.InvalidSearch, match="returned 1 scores for"):
        search(docs, Doc.embedding, Q, k=2, rerank=lambda q, hits: [1.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"diversify": MMR(), "rerank": lambda q, h: []}, "not both"),
        ({"diversify": 0.5}, "diversify must be vecalchemy.MMR"),
        ({"rerank": "cross-encoder"}, "rerank must be callable"),
        ({"rerank": lambda q, h: [], "candidates": 1}, "below k=2"),
        ({"rerank": lambda q, h: [], "candidates": 5000}, "candidates must be an integer"),
        ({"candidates": 10}, "candidates applies to rerank="),
        ({"diversify": MMR(fetch_k=1)}, "fetch_k=1 is below k=2"),
    ],
)
def test_post_processing_arguments_checked_before_sql(
    docs: Session, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(vecalchemy.InvalidSearch, match=message):
        search(docs, Doc.embedding, Q, k=2, **kwargs)


async def test_async_rerank_and_mmr(async_session: AsyncSession) -> None:
    await async_session.run_sync(lambda s: Base.metadata.create_all(s.connection()))
    await async_session.execute(insert(Doc), ROWS)
    hits = await asearch(
        async_session, Doc.embedding, Q, k=3, rerank=lambda q, h: [-x.row.id for x in h]
    )
    assert [h.row.id for h in hits] == [0, 1, 2]
    diverse = await asearch(async_session, Doc.embedding, Q, k=4, diversify=MMR(lambda_=0.3))
    assert len({h.row.id for h in diverse} & {0, 1, 2, 3, 4}) == 1
