"""Multi-vector rows: the cheatsheet's "Multi-vector (multiple embeddings per row)".

Cheatsheet pattern::

    class Doc(Base):
        title_embedding: Mapped[list[float]] = mapped_column(Vector(1024))
        body_embedding: Mapped[list[float]] = mapped_column(Vector(1024))
    # Two indexes. Combine in queries.

With vecalchemy each ``Embedding`` column brings its own index (named
``ix_<table>_<column>_hnsw``), so the "two indexes" need no extra code, and each may
have its own metric. ``multi_search(session, {Doc.title_embedding: 0.4,
Doc.body_embedding: 0.6}, query)`` combines them in ONE statement: each column's leg is
served by its own index (a row good on both columns but top on neither is still among
the candidates), and the default ``Weighted()`` fusion scores every candidate by
``0.4 * title similarity + 0.6 * body similarity``, computed exactly on both columns,
also for a row that only one leg returned (treating a missing similarity as 0 would
rank it too low). ``similarity`` is higher-is-closer for every metric, so the scores
can be added. ``fusion=RRF()`` fuses ranks instead (the mapping's values are then the
RRF weights). Each hit says where each leg ranked it (``hit.ranks``).

The script checks each fused score against single-column ``search()`` results.

Run it: ``python examples/09_multi_vector.py``.
"""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import RRF, Embedding, multi_search
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
            assert by_title[0].row.title == "Postgres index tuning"  # a title-only match
            assert by_body[0].row.title == "Weekly notes"  # a body-only match

            weights = {Doc.title_embedding: 0.4, Doc.body_embedding: 0.6}
            hits = multi_search(session, weights, query, k=3)
            for hit in hits:
                print(f"combined {hit.score:.3f} ranks={hit.ranks} {hit.row.title}")
            assert hits[0].row.title == "Tuning a postgres index"  # good on both columns
            scores = [hit.score for hit in hits]
            assert scores == sorted(scores, reverse=True)

            # Each score is the weighted sum of the row's exact similarities on both columns.
            every = len(DOCS)
            title_sim = {
                h.row.id: h.similarity
                for h in vecalchemy.search(session, Doc.title_embedding, query, k=every)
            }
            body_sim = {
                h.row.id: h.similarity
                for h in vecalchemy.search(session, Doc.body_embedding, query, k=every)
            }
            for hit in hits:
                expected = 0.4 * title_sim[hit.row.id] + 0.6 * body_sim[hit.row.id]
                assert abs(hit.score - expected) < 1e-6, (hit.score, expected)

            ranked = multi_search(session, weights, query, k=3, fusion=RRF())
            print("rrf:", [(round(h.score, 4), h.row.title) for h in ranked])
            best = ranked[0]
            assert best.ranks[0] is not None
            assert best.ranks[1] is not None
            assert (
                abs(best.score - (0.4 / (60 + best.ranks[0]) + 0.6 / (60 + best.ranks[1]))) < 1e-12
            )
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
