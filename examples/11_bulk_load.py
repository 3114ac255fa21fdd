"""Bulk loading: the cheatsheet's "Storage size" / "HNSW build memory" notes, done fast.

Cheatsheet pattern: rows go in one ``session.add()`` at a time, into a table whose HNSW
index already exists, so every insert also updates the graph ("For really large
indexes: HNSW build memory matters"; "Build AFTER inserting some data").

With vecalchemy:

* ``with vecalchemy.defer_indexes(): create_all()`` creates the tables without their
  vector indexes;
* ``load(engine, Doc, {"id": ..., "embedding": array})`` writes the rows with one binary
  ``COPY``, a 2-D float32 numpy array going straight to the wire; every vector is
  checked first (dimension, NaN, infinity), and a bad row stops the load with an error
  naming the row, leaving the table as it was;
* ``build_indexes(engine, Doc)`` then builds each declared index once, over all rows
  (and derives IVFFlat ``lists`` from the row count). Running it again is harmless.

Run it: ``python examples/11_bulk_load.py``.
"""

from __future__ import annotations

import random
import time

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import Embedding
from vecalchemy.embedders import HashingEmbedder
from vecalchemy.load import load

ROWS = 20_000
embedder = HashingEmbedder(384)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "ex11_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    embedding = Embedding(384, metric="cosine")  # HNSW(m=16, ef_construction=64)


def synthetic_texts(n: int) -> list[str]:
    rng = random.Random(11)
    words = ["postgres", "vector", "index", "search", "query", "bulk", "copy", "graph"]
    words += ["layer", "recall", "latency", "memory", "build", "worker", "batch", "row"]
    return [f"{' '.join(rng.sample(words, 6))} item {i}" for i in range(n)]


def vector_indexes(session: Session) -> list[str]:
    return list(
        session.execute(
            text(
                "SELECT indexname FROM pg_indexes "
                "WHERE tablename = 'ex11_docs' AND indexdef LIKE '%USING hnsw%'"
            )
        ).scalars()
    )


def main() -> None:
    engine = vecalchemy.create_engine()
    with vecalchemy.defer_indexes():
        Base.metadata.create_all(engine)  # the table, without its HNSW index
    try:
        with Session(engine) as session:
            assert vector_indexes(session) == []

        started = time.perf_counter()
        texts = synthetic_texts(ROWS)
        vectors = embedder.embed_documents(texts)  # (20000, 384) float32
        embed_s = time.perf_counter() - started
        print(f"embedded {ROWS:,} texts in {embed_s:.2f} s: {vectors.shape} {vectors.dtype}")

        started = time.perf_counter()
        written = load(engine, Doc, {"id": np.arange(ROWS), "body": texts, "embedding": vectors})
        load_s = time.perf_counter() - started
        print(
            f"load():          {written:,} rows in {load_s:.2f} s ({written / load_s:,.0f} rows/s)"
        )
        assert written == ROWS

        started = time.perf_counter()
        results = vecalchemy.build_indexes(engine, Doc)
        build_s = time.perf_counter() - started
        for result in results:
            print(
                f"build_indexes(): {result.name} {result.action} "
                f"on {result.rows:,} rows in {build_s:.2f} s"
            )
        assert [(r.action, r.rows) for r in results] == [("built", ROWS)]
        again = vecalchemy.build_indexes(engine, Doc)
        print("build_indexes() again:", [(r.name, r.action) for r in again])
        assert [r.action for r in again] == ["exists"]

        # A NaN in any row stops the load before anything is written.
        bad = embedder.embed_documents(["one", "two", "three"])
        bad[1, 7] = np.nan
        try:
            load(
                engine,
                Doc,
                {"id": [ROWS, ROWS + 1, ROWS + 2], "body": ["a", "b", "c"], "embedding": bad},
            )
            raise AssertionError("a NaN vector was loaded")
        except vecalchemy.InvalidVector as exc:
            print("InvalidVector:", exc)

        with Session(engine) as session:
            count = session.execute(select(func.count()).select_from(Doc)).scalar_one()
            assert count == ROWS  # nothing of the failed load was written
            assert vector_indexes(session) == ["ix_ex11_docs_embedding_hnsw"]

            target = 12_345
            hits = vecalchemy.search(
                session, Doc.embedding, embedder.embed_query(texts[target]), k=3
            )
            print(
                f"search for row {target}'s text:",
                [(h.row.id, round(h.similarity, 3)) for h in hits],
            )
            assert hits[0].row.id == target
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
