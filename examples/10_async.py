"""Async: the cheatsheet's ``await session.commit()`` / ``await session.execute(...)`` patterns.

Cheatsheet pattern::

    session.add(doc)
    await session.commit()
    await session.execute(text("SET LOCAL hnsw.ef_search = 100"))

With vecalchemy, ``create_async_engine()`` works with asyncpg (shown here) and with
psycopg 3's async mode. The driver-specific trap is type registration: asyncpg needs
pgvector's codecs on every pooled connection (``register_vector`` in the engine's
``connect`` event, through ``run_async``), and it fails if the extension does not exist
yet. vecalchemy's set-up does both on each new connection, for every driver, and its
codecs accept what SQLAlchemy's pgvector types send, so ORM writes work too.

``asearch()`` is ``search()`` for ``AsyncSession``: same checks before any SQL, same
per-query ``ef_search`` that ends with the transaction, same ``Hit`` results. Several
searches can run at once, each on its own session.

Run it: ``python examples/10_async.py``.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import vecalchemy
from vecalchemy import Embedding
from vecalchemy.embedders import HashingEmbedder

embedder = HashingEmbedder(384)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "ex10_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    embedding = Embedding(384, metric="cosine")


DOCS = [
    "asyncio runs coroutines on an event loop",
    "asyncpg is a fast PostgreSQL driver for asyncio",
    "Threads share memory and need locks",
    "The garden needs water every morning",
]


async def main() -> None:
    # The same database as create_engine() would use, through the asyncpg driver.
    engine = vecalchemy.create_async_engine(driver="asyncpg")
    print("driver:", engine.dialect.driver)
    assert engine.dialect.driver == "asyncpg"
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        vectors = await embedder.aembed_documents(DOCS)
        async with AsyncSession(engine) as session:
            session.add_all(
                Doc(body=body, embedding=vec) for body, vec in zip(DOCS, vectors, strict=True)
            )
            await session.commit()

        async with AsyncSession(engine) as session:
            query = await embedder.aembed_query("PostgreSQL driver for asyncio")
            hits = await vecalchemy.asearch(session, Doc.embedding, query, k=2, ef_search=100)
            for hit in hits:
                print(f"similarity={hit.similarity:.3f} {hit.row.body}")
            assert hits[0].row.body == DOCS[1]
            # ef_search=100 held for the search's own statement, not for the transaction.
            ef_search = (await session.execute(text("SHOW hnsw.ef_search"))).scalar_one()
            print("ef_search after the search, same transaction:", ef_search)
            assert ef_search == "40"
            await session.commit()

        # Concurrent searches, one session each.
        sessions = async_sessionmaker(engine)

        async def top(question: str) -> str:
            async with sessions() as session:
                q = await embedder.aembed_query(question)
                return (await vecalchemy.asearch(session, Doc.embedding, q, k=1))[0].row.body

        questions = ["event loop coroutines", "locks and threads", "water the garden"]
        answers = await asyncio.gather(*(top(q) for q in questions))
        for question, answer in zip(questions, answers, strict=True):
            print(f"{question!r} -> {answer!r}")
        assert answers == [DOCS[0], DOCS[2], DOCS[3]]
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
