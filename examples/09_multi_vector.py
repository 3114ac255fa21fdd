"""Multi-vector rows: the cheatsheet's "Multi-vector (multiple embeddings per row)".

Cheatsheet pattern::

    class Doc(Base):
        title_embedding: Mapped[list[float]] = mapped_column(Vector(1024))
        body_embedding: Mapped[list[float]] = mapped_column(Vector(1024))
    # Two indexes. Combine in queries.

With vecalchemy each ``Embedding`` column brings its own index (named
``ix_<table>_<column>_hnsw``), so the "two indexes" need no extra code, and each may
have its own metric. Searching each column is an ordinary ``search()`` that its own
index serves. The two hit lists are combined here in Python with a weighted sum of
similarities (a document missing from one list scores 0 there); because ``similarity``
is higher-is-closer for every metric, the scores can be added.

A built-in ``multi_search`` (one call, combined ranking) comes with a later issue.

Run it: ``python examples/09_multi_vector.py``.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import Embedding, Hit
from vecalchemy.embedders import HashingEmbedder

embedder = HashingEmbedder(384)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "ex09_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    body: Mapped[str]
    title_embedding = Embedding(384, metric="cosine")  # ix_ex09_docs_title_embedding_hnsw
    body_embedding = Embedding(384, metric="cosine")  # ix_ex09_docs_body_embedding_hnsw


DOCS = [
    ("Postgres index tuning", "Notes from a conference talk, with slides and a recording."),
    ("Weekly notes", "A postgres index needs tuning: pick ef_search and lists for index tuning."),
    ("Tuning a postgres index", "Measure recall before tuning the index parameters."),
    ("Gardening tips", "Water tomatoes in the morning."),
]


def combine(weighted: list[tuple[float, list[Hit[Doc]]]], k: int) -> list[tuple[float, Doc]]:
    """Weighted sum of similarities per document, best first."""
    scores: dict[int, float] = defaultdict(float)
    docs: dict[int, Doc] = {}
    for weight, hits in weighted:
        for hit in hits:
            scores[hit.row.id] += weight * hit.similarity
            docs[hit.row.id] = hit.row
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)[:k]
    return [(score, docs[doc_id]) for doc_id, score in ranked]


def main() -> None:
    names = sorted(str(ix.name) for ix in Doc.__table__.indexes)
    print("indexes:", names)
    assert names == ["ix_ex09_docs_body_embedding_hnsw", "ix_ex09_docs_title_embedding_hnsw"]

    engine = vecalchemy.create_engine()
    Base.metadata.create_all(engine)
    try:
        with Session(engine) as session:
            titles = embedder.embed_documents([title for title, _ in DOCS])
            bodies = embedder.embed_documents([body for _, body in DOCS])
            for (title, body), t_vec, b_vec in zip(DOCS, titles, bodies, strict=True):
                session.add(
                    Doc(title=title, body=body, title_embedding=t_vec, body_embedding=b_vec)
                )
            session.commit()

        query = embedder.embed_query("postgres index tuning")
        with Session(engine) as session:
            by_title = vecalchemy.search(session, Doc.title_embedding, query, k=3)
            by_body = vecalchemy.search(session, Doc.body_embedding, query, k=3)
            print("title:", [(round(h.similarity, 3), h.row.title) for h in by_title])
            print("body: ", [(round(h.similarity, 3), h.row.title) for h in by_body])

            combined = combine([(0.4, by_title), (0.6, by_body)], k=3)
            for score, doc in combined:
                print(f"combined {score:.3f} {doc.title}")

            assert by_title[0].row.title == "Postgres index tuning"  # a title-only match
            assert by_body[0].row.title == "Weekly notes"  # a body-only match
            assert combined[0][1].title == "Tuning a postgres index"  # good on both columns
            title_sim = {h.row.id: h.similarity for h in by_title}
            body_sim = {h.row.id: h.similarity for h in by_body}
            best_score, best = combined[0]
            expected = 0.4 * title_sim.get(best.id, 0.0) + 0.6 * body_sim.get(best.id, 0.0)
            assert abs(best_score - expected) < 1e-9
            scores = [score for score, _ in combined]
            assert scores == sorted(scores, reverse=True)
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
