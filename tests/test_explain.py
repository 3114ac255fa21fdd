"""explain() / index_used(): the plan for a built query, with its bound query vector."""

from __future__ import annotations

import re

import numpy as np
import sqlalchemy as sa
from sqlalchemy import String, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import Embedding, nearest


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "explain_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    tag: Mapped[str] = mapped_column(String(1))
    embedding = Embedding(8, metric="l2")


VECS = np.random.default_rng(3).normal(size=(50, 8)).astype(np.float32)


def _fill(session: Session) -> None:
    Base.metadata.create_all(session.connection())
    session.execute(
        insert(Item), [{"id": i, "tag": "ab"[i % 2], "embedding": v} for i, v in enumerate(VECS)]
    )


def test_index_used_names_the_vector_index(session: Session) -> None:
    """index_used() finds the HNSW index for nearest(), and None for a shape that cannot use it."""
    _fill(session)
    session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    stmt = nearest(Item.embedding, VECS[0], k=5)
    assert vecalchemy.index_used(session, stmt) == "ix_explain_items_embedding_hnsw"
    # A cosine order on the l2 column can only be asked for explicitly; no index serves it.
    exact = Item.embedding.exact_distance(VECS[0], metric="cosine")
    assert vecalchemy.index_used(session, sa.select(Item).order_by(exact).limit(5)) is None


def test_explain_analyze_runs_the_query(session: Session) -> None:
    """explain(analyze=True) reports actual rows."""
    _fill(session)
    plan = vecalchemy.explain(session, nearest(Item.embedding, VECS[1], k=3), analyze=True)
    # The Limit node ran and returned the three rows asked for.
    limit = next(line for line in plan.splitlines() if "Limit" in line)
    assert re.search(r"actual time=[\d.]+\.\.[\d.]+ rows=3(\.00)? loops=1", limit), limit


async def test_aexplain(async_session: AsyncSession) -> None:
    """aexplain() works on both async drivers."""
    conn = await async_session.connection()
    await conn.run_sync(lambda c: Base.metadata.create_all(c))
    await async_session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    plan = await vecalchemy.aexplain(async_session, nearest(Item.embedding, VECS[2], k=3))
    assert "Index Scan using ix_explain_items_embedding_hnsw" in plan


async def test_create_async_engine_driver_choice(server_url: sa.URL) -> None:
    """driver='asyncpg' picks asyncpg whatever the configured URL says."""
    eng = vecalchemy.create_async_engine(server_url, driver="asyncpg")
    try:
        assert eng.dialect.driver == "asyncpg"
        async with eng.connect() as conn:
            assert (await conn.execute(sa.text("SELECT '[1,2]'::vector"))).scalar() is not None
    finally:
        await eng.dispose()
