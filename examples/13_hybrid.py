"""Hybrid search: the cheatsheet's "Hybrid search (full-text + vector)" pattern.

Cheatsheet pattern::

    # tsvector column + GIN index; combine ts_rank and vector distance
    # (e.g. reciprocal rank fusion) in application code or in SQL.

With vecalchemy the full-text side is one more column declaration:
``tsv = FullText("title", "body")`` is a ``tsvector`` that PostgreSQL generates from the
text columns (``GENERATED ALWAYS AS (to_tsvector('english'::regconfig, ...)) STORED``,
so it is never stale), with its GIN index. ``hybrid_search(session, Doc.embedding,
Doc.tsv, text, vector)`` runs ONE statement: a vector leg served by the HNSW index, a
full-text leg (``websearch_to_tsquery`` in the column's language, ranked by
``ts_rank_cd``) served by the GIN index, each cut to ``candidates`` rows, fused in SQL
with reciprocal rank fusion (``RRF``, the default) or a weighted sum of min-max
normalised scores (``Weighted``). Filters (``where=``) go into both legs. Each hit
says where each leg ranked it (``hit.ranks``: vector, text).

Why both: an embedding is an average over a text. Long release notes that mention the
error code ``QX-7781`` once are far, as a vector, from the query "QX-7781 crash"; short
texts about crashes are near. Full-text search finds the code exactly. Here the vector
search alone misses the release notes in its top 3; hybrid search puts them first.

A ``Collection`` does the same with ``search(query, mode="hybrid")``.

Run it: ``python examples/13_hybrid.py``.
"""

from __future__ import annotations

import uuid

from sqlalchemy import String, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.schema import CreateIndex, CreateTable

import vecalchemy
from vecalchemy import Collection, Embedding, Weighted, hybrid_query, hybrid_search
from vecalchemy.embedders import HashingEmbedder
from vecalchemy.fulltext import FullText

embedder = HashingEmbedder(384)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "ex13_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    lang: Mapped[str] = mapped_column(String(2))
    title: Mapped[str]
    body: Mapped[str]
    embedding = Embedding(384, metric="cosine")  # ix_ex13_docs_embedding_hnsw
    tsv = FullText("title", "body", language="english")  # ix_ex13_docs_tsv_gin


RELEASE_NOTES = (
    "This release brings a new dashboard, faster exports, smaller backups, a dark theme, "
    "keyboard shortcuts, better search, audit logs and many translation updates. It also "
    "fixes QX-7781, a crash of the scheduler when a job had no owner, together with small "
    "bugs in the importer, the mailer and the calendar."
)
DOCS = [
    ("en", "Crash reports", "How to read a crash report."),
    ("en", "Crash course", "A crash course in joins."),
    ("en", "Release notes 4.2", RELEASE_NOTES),
    ("en", "Crash barriers", "Road crash barriers save lives."),
    ("de", "Versionshinweise 4.2", "Behebt QX-7781, einen Crash des Schedulers."),
    ("en", "Gardening", "Water tomatoes in the morning."),
]
QUERY = "QX-7781 crash"


def main() -> None:
    dialect = postgresql.dialect()
    ddl = str(CreateTable(Doc.__table__).compile(dialect=dialect))
    print(next(line.strip() for line in ddl.splitlines() if line.strip().startswith("tsv")))
    for index in Doc.__table__.indexes:
        print(CreateIndex(index).compile(dialect=dialect))
    print()

    engine = vecalchemy.create_engine()
    Base.metadata.create_all(engine)
    try:
        with Session(engine) as session:
            vectors = embedder.embed_documents([f"{t}\n{b}" for _, t, b in DOCS])
            for (lang, title, body), vec in zip(DOCS, vectors, strict=True):
                session.add(Doc(lang=lang, title=title, body=body, embedding=vec))
            session.commit()

        q = embedder.embed_query(QUERY)
        english = Doc.lang == "en"
        with Session(engine) as session:
            vector_only = vecalchemy.search(session, Doc.embedding, q, k=3, where=english)
            print("vector only:", [h.row.title for h in vector_only])
            assert "Release notes 4.2" not in [h.row.title for h in vector_only]

            hits = hybrid_search(session, Doc.embedding, Doc.tsv, QUERY, q, k=3, where=english)
            print("hybrid (RRF, k=60), ranks are (vector, text):")
            for hit in hits:
                print(f"  {hit.score:.4f} ranks={hit.ranks} {hit.row.title}")
            best = hits[0]
            assert best.row.title == "Release notes 4.2"
            vector_rank, text_rank = best.ranks
            assert vector_rank is not None
            assert vector_rank > 3  # found late by the vector...
            assert text_rank == 1  # ...and first by its words
            assert abs(best.score - (1 / (60 + vector_rank) + 1 / (60 + text_rank))) < 1e-12

            unfiltered = hybrid_search(session, Doc.embedding, Doc.tsv, QUERY, q, k=3)
            print("without where=:", [h.row.title for h in unfiltered])
            assert "Versionshinweise 4.2" in [h.row.title for h in unfiltered]
            assert "Versionshinweise 4.2" not in [
                h.row.title for h in hits
            ]  # filtered in both legs

            weighted = hybrid_search(
                session, Doc.embedding, Doc.tsv, QUERY, q, k=3, where=english,
                fusion=Weighted([0.3, 0.7]),
            )  # fmt: skip
            print(
                "weighted 0.3 vector + 0.7 text:",
                [(round(h.score, 3), h.row.title) for h in weighted],
            )
            assert weighted[0].row.title == "Release notes 4.2"
            assert all(0 <= h.score <= 1 for h in weighted)

            # Six rows: a sequential scan is cheaper than any index. Forbid it, as a big
            # table would, to see which index serves each leg.
            session.execute(text("SET LOCAL enable_seqscan = off"))
            stmt = hybrid_query(Doc.embedding, Doc.tsv, QUERY, q, k=3, where=english)
            plan = vecalchemy.explain(session, stmt)
            for line in plan.splitlines():
                if "Index Scan" in line:
                    print(line.strip().split("  (cost")[0])
            assert "Index Scan using ix_ex13_docs_embedding_hnsw" in plan
            assert "Bitmap Index Scan on ix_ex13_docs_tsv_gin" in plan

        notes = Collection(f"ex13_notes_{uuid.uuid4().hex[:6]}", embedder="hashing", engine=engine)
        try:
            notes.add([b for _, _, b in DOCS], metadata=[{"lang": lang} for lang, _, _ in DOCS])
            found = notes.search(QUERY, k=2, mode="hybrid", where={"lang": "en"})
            print("collection, mode='hybrid':", [h.text[:40] for h in found])
            assert found[0].text.startswith("This release brings")
        finally:
            notes.drop()
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
