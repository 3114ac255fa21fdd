"""Full-text search columns: a generated ``tsvector`` with its GIN index.

:func:`FullText` declares a ``tsvector`` column that PostgreSQL computes from text
columns of the same row (``GENERATED ALWAYS AS (...) STORED``), so it can never be
stale, and attaches a GIN index on it. The text search configuration (the language:
stemming and stop words) is fixed at declaration and kept on the column
(:class:`FullTextSpec`), so queries use the same one by construction.

Example::

    from vecalchemy.fulltext import FullText

    class Doc(Base):
        __tablename__ = "docs"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]
        body: Mapped[str]
        tsv = FullText("title", "body", language="english")
"""

from __future__ import annotations

from vecalchemy._fulltext import DEFAULT_LANGUAGE, FullText, FullTextSpec, fulltext_column

__all__ = ["DEFAULT_LANGUAGE", "FullText", "FullTextSpec", "fulltext_column"]
