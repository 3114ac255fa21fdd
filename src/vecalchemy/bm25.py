"""BM25 ranking inside PostgreSQL, with no extension.

:func:`BM25` declares a ``jsonb`` column holding each row's analysed terms
(``{term: frequency, "": length}``); ``create_all()`` installs a postings table and an
append-only corpus table that statement-level triggers keep exact, and
:func:`bm25_query` scores the rows that share a term with the query by real BM25
(bm25s's default ``lucene`` variant, ``k1=1.5``, ``b=0.75``) from the live statistics.
The :class:`Analyzer` (lower-case, ``(?u)\\b\\w\\w+\\b`` tokens, English stop words,
Snowball stemmer of PyStemmer) is the same for documents and queries.

Example::

    from vecalchemy.bm25 import BM25, bm25_query

    class Doc(Base):
        __tablename__ = "docs"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str]
        body_bm25 = BM25("body")

    Base.metadata.create_all(engine)
    hits = session.execute(bm25_query(Doc.body_bm25, "autovacuum tuning", k=10)).all()
"""

from __future__ import annotations

from vecalchemy._bm25 import (
    BM25,
    Analyzer,
    BM25Spec,
    BM25Statistics,
    bm25_column,
    bm25_document,
    bm25_query,
    bm25_scores,
    bm25_statistics,
    compact_bm25,
    install_bm25,
    uninstall_bm25,
)

__all__ = [
    "BM25",
    "Analyzer",
    "BM25Spec",
    "BM25Statistics",
    "bm25_column",
    "bm25_document",
    "bm25_query",
    "bm25_scores",
    "bm25_statistics",
    "compact_bm25",
    "install_bm25",
    "uninstall_bm25",
]
