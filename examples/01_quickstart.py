"""Quickstart: the cheatsheet's "Setup", "Column", "Insert" and cosine "Distance queries".

Cheatsheet pattern::

    CREATE EXTENSION vector;
    embedding: Mapped[list[float]] = mapped_column(Vector(1024))
    session.add(Doc(body="...", embedding=embed_function(text)))
    select(Doc, Doc.embedding.cosine_distance(q_emb).label("dist")).order_by("dist").limit(10)

With vecalchemy:

* ``vecalchemy.create_engine()`` creates the ``vector`` extension if it is missing and
  registers pgvector's types on every pooled connection (no ``CREATE EXTENSION`` step).
* ``Embedding(384, metric="cosine", index=HNSW(...))`` declares the metric once: the
  index gets ``vector_cosine_ops`` and every query uses ``<=>``, so the common mistake
  "HNSW index with the wrong opclass, index unused" cannot be written.
* ``search()`` returns ``Hit(row, distance, similarity)``, nearest first, where
  ``similarity`` is always "higher is closer" (for cosine, ``1 - distance``).

Run it: ``python examples/01_quickstart.py`` (the embedded PostgreSQL, or the server
named by ``$VECALCHEMY_DATABASE_URL``).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import HNSW, Embedding
from vecalchemy.embedders import HashingEmbedder

embedder = HashingEmbedder(384)  # deterministic and offline: shared words make vectors close


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "ex01_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    # The whole index declaration: opclass vector_cosine_ops follows from metric="cosine".
    embedding = Embedding(384, metric="cosine", index=HNSW(m=16, ef_construction=64))


DOCS = [
    "PostgreSQL is a relational database with many extensions",
    "pgvector adds vector similarity search to PostgreSQL",
    "HNSW indexes make approximate nearest neighbour search fast",
    "The cat sleeps on the sofa all afternoon",
    "Bake the bread for forty minutes until golden",
]


def main() -> None:
    engine = vecalchemy.create_engine()
    Base.metadata.create_all(engine)  # the table and its HNSW index
    try:
        with engine.connect() as conn:
            indexdef = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"),
                {"name": "ix_ex01_docs_embedding_hnsw"},
            ).scalar_one()
        print("index:", indexdef)
        assert "USING hnsw (embedding vector_cosine_ops)" in indexdef

        # Insert: the cheatsheet's session.add(), with vectors from a real embedder.
        with Session(engine) as session:
            for body, vector in zip(DOCS, embedder.embed_documents(DOCS), strict=True):
                session.add(Doc(body=body, embedding=vector))
            session.commit()

        # Search: nearest first; the query vector is checked before any SQL runs.
        with Session(engine) as session:
            query = embedder.embed_query("vector search in PostgreSQL")
            hits = vecalchemy.search(session, Doc.embedding, query, k=3)
            for hit in hits:
                print(f"similarity={hit.similarity:.3f} distance={hit.distance:.3f} {hit.row.body}")

            assert len(hits) == 3
            assert hits[0].row.body == DOCS[1]  # the pgvector sentence
            for hit in hits:
                assert isinstance(hit.row, Doc)
                assert abs(hit.similarity - (1 - hit.distance)) < 1e-9  # cosine similarity
            similarities = [hit.similarity for hit in hits]
            assert similarities == sorted(similarities, reverse=True)  # nearest first
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
