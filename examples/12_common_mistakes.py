"""Common mistakes: each one from the cheatsheet, attempted, and what vecalchemy does.

Cheatsheet "Common mistakes", and the ones its patterns invite:

1. Storing huge vectors (">4096-dim"): pgvector indexes ``vector`` up to 2,000 and
   ``halfvec`` up to 4,000 dimensions. Up to 4,000, a ``vector`` column gets a halfvec
   expression index (``06_halfvec_and_big_dims.py``); beyond, or for a combination
   pgvector has no index for (IVFFlat with L1), ``Embedding(...)`` raises
   ``UnsupportedIndex`` when the class is defined, not when ``CREATE INDEX`` fails.
2. HNSW index with the wrong opclass (``vector_cosine_ops``) but querying with L2: the
   index is silently unused (``03_indexes.py`` shows the plan). vecalchemy derives
   opclass and operator from one ``metric=``; asking for another metric raises
   ``MetricMismatch``, for ``Embedding`` columns and for plain pgvector columns with a
   hand-written cheatsheet index alike.
3. A plain ``Vector`` column says nothing about its metric. Searching it without
   ``metric=`` (and without a vector index in the metadata to read it from) raises
   ``MetricRequired`` instead of guessing; a ``Vector()`` without dimensions cannot be
   indexed and is refused.
4. Forgetting to set ef_search: with ``hnsw.ef_search`` below the LIMIT an HNSW scan
   silently returns fewer rows (here: a session-level ``SET`` that leaked onto the
   pooled connection). ``search()`` always sets ``ef_search >= k`` for its transaction.
5. A query vector of the wrong dimension, with NaN or infinity, all zeros (for cosine),
   or a string instead of a vector: ``DimensionMismatch`` / ``InvalidVector`` before
   any SQL runs (this script counts the statements sent to check).

Filter pushdown (the cheatsheet's remaining mistake) is covered by a later issue on
filtered search with iterative scans; see ``05_filters_and_thresholds.py``.

Run it: ``python examples/12_common_mistakes.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import Index, event, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import Embedding, IVFFlat
from vecalchemy.embedders import HashingEmbedder
from vecalchemy.load import load

embedder = HashingEmbedder(384)
ROWS = 300


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "ex12_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(384, metric="cosine")


class CheatsheetDoc(Base):
    """Declared exactly as the cheatsheet does: pgvector-python type, hand-written index."""

    __tablename__ = "ex12_cheatsheet_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding: Mapped[list[float]] = mapped_column(Vector(384))
    __table_args__ = (
        Index(
            "ix_ex12_cheatsheet_docs_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_ops={"embedding": "vector_cosine_ops"},
            postgresql_with={"m": 16, "ef_construction": 64},
        ),
    )


class PlainDoc(Base):
    """A pgvector-python column and no vector index: nothing says which metric to use."""

    __tablename__ = "ex12_plain_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding: Mapped[list[float]] = mapped_column(Vector(384))
    no_dims: Mapped[list[float] | None] = mapped_column(Vector())


def expect(error: type[Exception], action: Callable[[], Any]) -> None:
    try:
        action()
    except error as exc:
        print(f"  {error.__name__}: {exc}")
        return
    raise AssertionError(f"expected {error.__name__}")


def main() -> None:
    print("1. huge vectors and impossible indexes, refused at declaration:")
    expect(vecalchemy.UnsupportedIndex, lambda: Embedding(4096))
    expect(vecalchemy.UnsupportedIndex, lambda: Embedding(4096, storage="halfvec"))
    expect(vecalchemy.UnsupportedIndex, lambda: Embedding(384, metric="l1", index=IVFFlat()))
    Embedding(3072)  # fine: halfvec expression index
    Embedding(4096, index=None)  # fine: exact search only, nothing to index

    engine = vecalchemy.create_engine()
    Base.metadata.create_all(engine)
    try:
        vectors = embedder.embed_documents([f"note {i} on mistake {i % 5}" for i in range(ROWS)])
        for model in (Doc, CheatsheetDoc, PlainDoc):
            load(engine, model, {"id": range(ROWS), "embedding": vectors})
        query = embedder.embed_query("note on mistake 3")

        with Session(engine) as session:
            print("2. a metric other than the index's:")
            expect(
                vecalchemy.MetricMismatch,
                lambda: vecalchemy.search(session, Doc.embedding, query, k=5, metric="l2"),
            )
            expect(
                vecalchemy.MetricMismatch,
                lambda: vecalchemy.search(
                    session, CheatsheetDoc.embedding, query, k=5, metric="l2"
                ),
            )
            # Without metric=, the hand-written index's opclass says cosine.
            hits = vecalchemy.search(session, CheatsheetDoc.embedding, query, k=5)
            assert abs(hits[0].similarity - (1 - hits[0].distance)) < 1e-9

            print("3. a plain Vector column without metric=:")
            expect(
                vecalchemy.MetricRequired,
                lambda: vecalchemy.search(session, PlainDoc.embedding, query, k=5),
            )
            hits = vecalchemy.search(session, PlainDoc.embedding, query, k=5, metric="cosine")
            print(f"  with metric='cosine': {len(hits)} hits")
            assert len(hits) == 5
            expect(
                vecalchemy.UnsupportedIndex,
                lambda: vecalchemy.search(session, PlainDoc.no_dims, query, k=5, metric="cosine"),
            )

        print("4. forgetting ef_search:")
        with engine.connect() as conn:
            # The mistake: SET (not SET LOCAL) leaves the setting on the pooled connection.
            conn.execute(text("SET hnsw.ef_search = 5"))
            conn.commit()
            # The cheatsheet's query in a later transaction on that connection. (Sequential
            # scans discouraged: on a big table the planner picks the index by itself.)
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            cheatsheet = select(CheatsheetDoc.id).order_by(
                CheatsheetDoc.embedding.cosine_distance(query)
            )
            rows = conn.execute(cheatsheet.limit(20)).all()
            print(f"  select ... order_by(cosine_distance).limit(20) returned {len(rows)} rows")
            assert len(rows) < 20  # silently fewer than asked for
            hits = vecalchemy.search(conn, CheatsheetDoc.embedding, query, k=20)
            print(f"  vecalchemy.search(k=20) returned {len(hits)} hits (ef_search set to 40)")
            assert len(hits) == 20
            conn.commit()
            conn.execute(text("RESET hnsw.ef_search"))  # undo the leaked setting
            conn.commit()

        print("5. bad query vectors, refused before any SQL:")
        statements: list[str] = []

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        with Session(engine) as session:
            for bad, error in (
                (query[:100], vecalchemy.DimensionMismatch),  # another model's size
                ([math.nan] * 384, vecalchemy.InvalidVector),
                (np.full(384, np.inf), vecalchemy.InvalidVector),
                ([0.0] * 384, vecalchemy.InvalidVector),  # no direction: cosine undefined
                ("note on mistake 3", vecalchemy.InvalidVector),  # text, not yet embedded
            ):
                expect(error, lambda bad=bad: vecalchemy.search(session, Doc.embedding, bad, k=5))
                assert issubclass(error, ValueError)  # generic validation code catches it too
        event.remove(engine, "before_cursor_execute", count)
        print(f"  SQL statements sent: {len(statements)}")
        assert statements == []
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
