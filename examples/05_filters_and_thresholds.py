"""Filters and thresholds: the cheatsheet's "Hybrid (filter + ANN)" and "Similarity threshold".

Cheatsheet pattern::

    select(Doc).where(Doc.user_id == user_id, Doc.deleted_at == None)
        .order_by(Doc.embedding.cosine_distance(q_emb)).limit(10)

    threshold = 0.3
    select(Doc, Doc.embedding.cosine_distance(q_emb).label("d"))
        .where(Doc.embedding.cosine_distance(q_emb) < threshold).order_by("d").limit(10)

With vecalchemy a filter is ``search(..., where=Doc.lang == "en")`` (or a list of
conditions), added to the same indexable ``ORDER BY distance LIMIT k`` query; a B-tree
index on the filter column, as the cheatsheet advises, is an ordinary
``mapped_column(index=True)``. ``nearest(...).where(...)`` builds the same query for you
to run yourself.

The threshold's common mistake is its direction: is 0.3 a distance (lower is closer) or
a similarity (higher is closer)? And for inner product, ``<#>`` is negative. vecalchemy
names the two thresholds ``min_similarity`` and ``max_distance`` and converts one to the
other exactly for each metric. They are applied to the ordered top k, so the query keeps
the shape the index serves and pgvector never walks the index looking for rows that
cannot match. A ``min_similarity`` no row could reach (1.5 for cosine) or both
thresholds at once raise ``InvalidSearch``.

Not done here: with a very selective filter an HNSW scan can return fewer than k rows
(filters apply after the index scan). Filtered search with iterative index scans comes
with a later issue.

Run it: ``python examples/05_filters_and_thresholds.py``.
"""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import Embedding, Metric, nearest
from vecalchemy.embedders import HashingEmbedder

embedder = HashingEmbedder(384)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "ex05_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(20), index=True)  # B-tree for the filter
    lang: Mapped[str] = mapped_column(String(2))
    body: Mapped[str]
    embedding = Embedding(384, metric="cosine")


DOCS = [
    ("ada", "en", "How to reset a forgotten password"),
    ("ada", "en", "Password rules: length and special characters"),
    ("bob", "en", "Reset your password from the login page"),
    ("bob", "de", "Passwort zurücksetzen auf der Anmeldeseite"),
    ("ada", "en", "Holiday photos from the mountains"),
    ("bob", "en", "Quarterly sales report for the board"),
]


def main() -> None:
    engine = vecalchemy.create_engine()
    Base.metadata.create_all(engine)
    try:
        with Session(engine) as session:
            vectors = embedder.embed_documents([body for _, _, body in DOCS])
            for (owner, lang, body), vec in zip(DOCS, vectors, strict=True):
                session.add(Doc(owner=owner, lang=lang, body=body, embedding=vec))
            session.commit()

        query = embedder.embed_query("reset password")
        with Session(engine) as session:
            everyone = vecalchemy.search(session, Doc.embedding, query, k=3)
            ada = vecalchemy.search(
                session, Doc.embedding, query, k=3, where=[Doc.owner == "ada", Doc.lang == "en"]
            )
            print("all owners:", [(h.row.owner, h.row.body) for h in everyone])
            print("ada, en:   ", [(h.row.owner, h.row.body) for h in ada])
            assert everyone[0].row.owner == "bob"  # "Reset your password..." is nearest
            assert ada
            assert all(h.row.owner == "ada" and h.row.lang == "en" for h in ada)
            assert ada[0].row.body == "How to reset a forgotten password"

            stmt = nearest(Doc.embedding, query, k=3).where(Doc.owner == "ada")
            sql = str(stmt.compile(dialect=postgresql.dialect()))
            print(" ".join(sql.split()))
            assert "WHERE ex05_docs.owner = " in sql
            assert "ORDER BY distance" in sql

            # Thresholds: named by direction. For cosine, similarity = 1 - distance.
            close = vecalchemy.search(session, Doc.embedding, query, k=10, min_similarity=0.3)
            near = vecalchemy.search(session, Doc.embedding, query, k=10, max_distance=0.7)
            print("min_similarity=0.3:", [(round(h.similarity, 3), h.row.body) for h in close])
            print("max_distance=0.7:  ", [(round(h.distance, 3), h.row.body) for h in near])
            assert [h.row.id for h in close] == [h.row.id for h in near]
            assert close
            assert all(h.similarity >= 0.3 for h in close)
            assert len(close) < len(DOCS)  # unrelated documents are cut off

            # The same conversion for every metric: what max_distance a similarity means.
            for metric in (Metric.COSINE, Metric.L2, Metric.INNER_PRODUCT):
                cutoff = metric.max_distance_for(0.5)
                print(f"{metric.value:>13}: min_similarity=0.5 is max_distance={cutoff:g}")
            assert Metric.INNER_PRODUCT.max_distance_for(0.5) == -0.5  # <#> is negative

            for bad in ({"min_similarity": 1.5}, {"min_similarity": 0.3, "max_distance": 0.7}):
                try:
                    vecalchemy.search(session, Doc.embedding, query, k=3, **bad)
                    raise AssertionError(f"{bad} was accepted")
                except vecalchemy.InvalidSearch as exc:
                    print(f"InvalidSearch {bad}: {exc}")
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
