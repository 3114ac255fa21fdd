"""Distance queries: the cheatsheet's cosine, L2 and inner-product queries (and L1).

Cheatsheet pattern::

    select(Doc, Doc.embedding.cosine_distance(q_emb).label("dist")).order_by("dist").limit(10)
    select(Doc).order_by(Doc.embedding.l2_distance(q_emb)).limit(10)
    select(Doc).order_by(Doc.embedding.max_inner_product(q_emb)).limit(10)
    # Operators in raw SQL: <=> cosine, <-> L2, <#> negative inner product.

With vecalchemy each column declares its metric (``Embedding(..., metric="l2")``), and
``nearest(column, q, k)`` returns a plain ``Select`` of ``(row, distance)`` in the one
shape pgvector can serve from the column's index: ``ORDER BY <col> <op> :q LIMIT k``,
ascending, with the operator that matches the index's operator class. Add ``.where()``,
joins or options to it as to any ``Select``.

The common confusion is ``<#>``: pgvector returns the NEGATIVE inner product, so the
best match has the most negative "distance" and a threshold such as ``> 0.3`` keeps the
wrong rows. ``search()`` returns both the raw ``distance`` and a ``similarity`` that is
higher-is-closer for every metric: for inner product it is the inner product itself.

Run it: ``python examples/02_distance_queries.py``.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import Embedding, nearest
from vecalchemy.embedders import HashingEmbedder

embedder = HashingEmbedder(384)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "ex02_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    popularity: Mapped[float]
    # One column per metric, each with its own HNSW index and matching opclass.
    cosine = Embedding(384, metric="cosine")  # <=>  vector_cosine_ops
    l2 = Embedding(384, metric="l2")  # <->  vector_l2_ops
    ip = Embedding(384, metric="inner_product")  # <#>  vector_ip_ops (unnormalised vectors)
    l1 = Embedding(384, metric="l1")  # <+>  vector_l1_ops


DOCS = [
    ("Parse a JSON document into Python objects", 1.0),
    ("Write Python objects as a JSON string", 3.0),
    ("Open a TCP socket and send bytes", 1.0),
    ("Read a CSV file row by row", 1.0),
    ("Compress a file with gzip", 1.0),
]


def main() -> None:
    engine = vecalchemy.create_engine()
    Base.metadata.create_all(engine)
    try:
        vectors = embedder.embed_documents([body for body, _ in DOCS])
        with Session(engine) as session:
            for (body, popularity), vec in zip(DOCS, vectors, strict=True):
                session.add(
                    Doc(
                        body=body,
                        popularity=popularity,
                        cosine=vec,
                        l2=vec,
                        # Inner product ranks by length too: popular documents score higher.
                        ip=vec * popularity,
                        l1=vec,
                    )
                )
            session.commit()

        query = embedder.embed_query("parsing JSON documents")

        # nearest() only builds a Select; print it to see the indexable shape.
        stmt = nearest(Doc.cosine, query, k=3)
        sql = str(stmt.compile(dialect=postgresql.dialect()))
        print(sql)
        assert "ex02_docs.cosine <=> CAST(%(query_vector)s AS VECTOR(384)) AS distance" in sql
        assert "ORDER BY distance" in sql
        assert "DESC" not in sql

        with Session(engine) as session:
            print("\nnearest() rows are (Doc, distance); .where() adds a filter:")
            rows = session.execute(stmt.where(Doc.popularity < 2)).all()
            for doc, distance in rows:
                print(f"  cosine distance={distance:.3f} {doc.body}")
            assert rows[0][0].body == DOCS[0][0]
            assert all(doc.popularity < 2 for doc, _ in rows)

            print("\nsearch() on each metric:")
            for column in (Doc.cosine, Doc.l2, Doc.ip, Doc.l1):
                hits = vecalchemy.search(session, column, query, k=2)
                for hit in hits:
                    print(
                        f"  {column.key:<6} distance={hit.distance:+.3f} "
                        f"similarity={hit.similarity:.3f} {hit.row.body}"
                    )
                sims = [hit.similarity for hit in hits]
                assert sims == sorted(sims, reverse=True), column.key  # higher is closer
                # Normalised vectors: cosine, l2 and l1 agree; inner product also weighs
                # the popularity folded into the vector's length.
                expected = DOCS[1][0] if column is Doc.ip else DOCS[0][0]
                assert hits[0].row.body == expected, column.key

            # The <#> confusion, on the raw pgvector-python comparator: values are negative.
            raw = session.execute(
                select(Doc.body, Doc.ip.max_inner_product(query).label("d")).order_by("d").limit(2)
            ).all()
            print("\nraw <#> values (negative inner product):", [round(d, 3) for _, d in raw])
            assert all(d < 0 for _, d in raw)

            ip_hits = vecalchemy.search(session, Doc.ip, query, k=2)
            best = ip_hits[0]
            expected_ip = float(np.dot(query, vectors[1] * 3.0))  # the popular JSON document
            print(
                f"vecalchemy: distance={best.distance:.3f} similarity={best.similarity:.3f} "
                f"(numpy inner product {expected_ip:.3f})"
            )
            assert best.row.body == DOCS[1][0]
            assert best.distance == -best.similarity
            assert abs(best.similarity - expected_ip) < 1e-4

            # l2: similarity = 1 / (1 + distance); the distance is the Euclidean one.
            l2_hit = vecalchemy.search(session, Doc.l2, query, k=1)[0]
            l2_numpy = min(float(np.linalg.norm(query - v)) for v in vectors)
            assert abs(l2_hit.distance - l2_numpy) < 1e-4
            assert abs(l2_hit.similarity - 1 / (1 + l2_hit.distance)) < 1e-9
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
