"""Full-text search columns: a generated ``tsvector`` with its GIN index, and its queries.

:func:`FullText` declares a ``tsvector`` column that PostgreSQL computes from text
columns of the same row (``GENERATED ALWAYS AS (...) STORED``), so it can never be
stale, and attaches a GIN index on it, so ``metadata.create_all()`` and Alembic create
the index the full-text leg of :func:`vecalchemy.hybrid.hybrid_search` uses. The text
search configuration (the language: stemming and stop words) is fixed at declaration
and kept on the column, so queries use the same one by construction: a query parsed
with another configuration would stem differently and silently miss rows.

Example::

    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
    from vecalchemy import Embedding
    from vecalchemy.fulltext import FullText

    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = "docs"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]
        body: Mapped[str]
        embedding = Embedding(384)
        tsv = FullText("title", "body", language="english")

    # tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('english'::regconfig,
    #     coalesce(title, '') || ' ' || coalesce(body, ''))) STORED
    # CREATE INDEX ix_docs_tsv_gin ON docs USING gin (tsv)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    Column,
    ColumnElement,
    Computed,
    Float,
    Index,
    Table,
    Text,
    bindparam,
    event,
    literal_column,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import REGCONFIG, TSVECTOR
from sqlalchemy.dialects.postgresql.ext import websearch_to_tsquery
from sqlalchemy.orm import InstrumentedAttribute, MappedColumn, mapped_column
from sqlalchemy.sql.functions import GenericFunction

from vecalchemy._names import fit_identifier
from vecalchemy.errors import InvalidArgument, InvalidSearch

__all__ = [
    "DEFAULT_LANGUAGE",
    "FULLTEXT_INFO_KEY",
    "QUERY_TEXT_PARAM",
    "FullText",
    "FullTextSpec",
    "check_language",
    "check_query_text",
    "fulltext_column",
    "fulltext_index_name",
    "is_fulltext_type",
    "resolve_fulltext",
    "ts_rank_cd",
]

#: Key under which a column's :class:`FullTextSpec` is kept in ``Column.info``.
FULLTEXT_INFO_KEY = "vecalchemy_fulltext"

#: The text search configuration used when none is given.
DEFAULT_LANGUAGE = "english"

#: Name of the bind parameter holding the query text in every built statement.
QUERY_TEXT_PARAM = "query_text"

# The configuration and the source column names are written into the column's DDL (a
# generated column's expression cannot take parameters), so both are checked strictly.
_LANGUAGE = re.compile(r"^[a-z_]{1,63}$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_PREPARER = postgresql.dialect().identifier_preparer  # type: ignore[no-untyped-call]


def check_language(language: object) -> str:
    """Return ``language`` if it is a valid text search configuration name, else raise.

    A configuration name (``regconfig``) is written into SQL, so only lower-case
    letters and underscores are accepted: ``english``, ``simple``, ``german``, ...

    Example::

        >>> check_language("english")
        'english'
    """
    if not isinstance(language, str) or not _LANGUAGE.match(language):
        raise InvalidArgument(
            f"full-text language {language!r} must be the name of a text search "
            "configuration in lower-case letters and underscores, such as 'english' or "
            "'simple' (see SELECT cfgname FROM pg_ts_config)"
        )
    return language


def _check_source(name: object) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise InvalidArgument(
            f"full-text source column {name!r} must be a column name of letters, digits "
            "and underscores (at most 63), not starting with a digit; name the text "
            "columns of the same table, e.g. FullText('title', 'body')"
        )
    return name


def check_query_text(query_text: object) -> str:
    """Return ``query_text`` if it can be searched, else raise :class:`InvalidSearch`.

    Example::

        >>> check_query_text("vacuum tuning")
        'vacuum tuning'
    """
    if not isinstance(query_text, str):
        raise InvalidSearch(
            f"query text must be a string, got {type(query_text).__name__}; pass the text "
            "the user typed (it is parsed with websearch_to_tsquery)"
        )
    if not query_text.strip():
        raise InvalidSearch("query text is empty; pass the words to search for")
    if "\x00" in query_text:
        raise InvalidSearch("query text contains a NUL character; remove it")
    return query_text


@dataclass(frozen=True)
class FullTextSpec:
    """What vecalchemy knows about a full-text column: its source columns and language.

    Stored in ``Column.info["vecalchemy_fulltext"]`` by :func:`FullText`.

    Example::

        spec = Doc.tsv.property.columns[0].info["vecalchemy_fulltext"]
        spec.language, spec.sources     # ('english', ('title', 'body'))
    """

    sources: tuple[str, ...]
    language: str = DEFAULT_LANGUAGE

    def __post_init__(self) -> None:
        check_language(self.language)
        if not self.sources:
            raise InvalidArgument(
                "FullText needs at least one source column, e.g. FullText('body')"
            )
        for name in self.sources:
            _check_source(name)

    @property
    def regconfig(self) -> ColumnElement[Any]:
        """The configuration as a SQL constant: ``'english'::regconfig``."""
        return literal_column(f"'{self.language}'::regconfig", type_=REGCONFIG)

    @property
    def expression(self) -> str:
        """The SQL the column is generated from.

        ``to_tsvector('english'::regconfig, coalesce(title, '') || ' ' || coalesce(body, ''))``
        """
        # coalesce: one NULL source would make the whole concatenation NULL.
        text = " || ' ' || ".join(f"coalesce({_PREPARER.quote(c)}, '')" for c in self.sources)
        return f"to_tsvector('{self.language}'::regconfig, {text})"

    def tsquery(self, query_text: BindParameter[str] | str) -> ColumnElement[Any]:
        """``websearch_to_tsquery('english'::regconfig, :query_text)``.

        websearch syntax forgives anything a user types: quoted phrases, ``or``,
        ``-word``; it never raises a syntax error as ``to_tsquery`` does.
        """
        param = (
            query_text
            if isinstance(query_text, BindParameter)
            else bindparam(QUERY_TEXT_PARAM, query_text, type_=Text)
        )
        # SQLAlchemy's own function class: its PostgreSQL compiler accepts no other.
        query: ColumnElement[Any] = websearch_to_tsquery(  # type: ignore[no-untyped-call]
            self.regconfig, param
        )
        return query


class ts_rank_cd(GenericFunction[float]):
    """PostgreSQL's ``ts_rank_cd(tsvector, tsquery)``: cover density ranking, higher is better.

    Example::

        score = ts_rank_cd(Doc.tsv, spec.tsquery("vacuum"))
        select(Doc.id, score).order_by(score.desc())
    """

    type = Float()
    name = "ts_rank_cd"
    # A distinct registry key: another module may register its own ts_rank_cd.
    identifier = "vecalchemy_ts_rank_cd"
    inherit_cache = True


def is_fulltext_type(type_: Any) -> bool:
    """True for PostgreSQL's ``tsvector`` type.

    Example::

        >>> from sqlalchemy.dialects.postgresql import TSVECTOR
        >>> is_fulltext_type(TSVECTOR())
        True
    """
    return isinstance(type_, TSVECTOR)


def FullText(
    *source_columns: str,
    language: str = DEFAULT_LANGUAGE,
    **kw: Any,
) -> MappedColumn[Any]:
    """Declare a generated ``tsvector`` column over ``source_columns``, with a GIN index.

    The column is ``GENERATED ALWAYS AS (to_tsvector('<language>'::regconfig, ...)) STORED``:
    PostgreSQL keeps it up to date on every insert and update. The GIN index
    ``ix_<table>_<column>_gin`` is attached to the table, so ``create_all()`` creates it.
    ``language`` is a text search configuration (``english``, ``simple``, ...); it is
    stored on the column and used by every query on it. Other keyword arguments go to
    :func:`sqlalchemy.orm.mapped_column`.

    Raises :class:`~vecalchemy.errors.InvalidArgument` for a language or column name
    that is not a plain identifier.

    Example::

        class Doc(Base):
            __tablename__ = "docs"
            id: Mapped[int] = mapped_column(primary_key=True)
            title: Mapped[str]
            body: Mapped[str]
            tsv = FullText("title", "body", language="english")
    """
    spec = FullTextSpec(tuple(source_columns), language)
    info = dict(kw.pop("info", None) or {})
    info[FULLTEXT_INFO_KEY] = spec
    return mapped_column(TSVECTOR, Computed(spec.expression, persisted=True), info=info, **kw)


def fulltext_column(
    name: str,
    *source_columns: str,
    language: str = DEFAULT_LANGUAGE,
    **kw: Any,
) -> Column[Any]:
    """The Core twin of :func:`FullText`: a ``Column`` for a ``sqlalchemy.Table``.

    Example::

        docs = Table("docs", metadata, Column("id", Integer, primary_key=True),
                     Column("body", Text), fulltext_column("tsv", "body"))
    """
    spec = FullTextSpec(tuple(source_columns), language)
    info = dict(kw.pop("info", None) or {})
    info[FULLTEXT_INFO_KEY] = spec
    return Column(name, TSVECTOR, Computed(spec.expression, persisted=True), info=info, **kw)


def fulltext_index_name(table: Table, column: Column[Any]) -> str:
    """The generated name of a full-text column's GIN index: ``ix_<table>_<column>_gin``.

    Names longer than PostgreSQL's 63 bytes are shortened with a hash suffix.

    Example::

        fulltext_index_name(Doc.__table__, Doc.__table__.c.tsv)   # 'ix_docs_tsv_gin'
    """
    return fit_identifier(f"ix_{table.name}_{column.name}_gin")


@event.listens_for(Column, "after_parent_attach")
def _attach_index(column: Column[Any], parent: Any) -> None:
    spec = column.info.get(FULLTEXT_INFO_KEY)
    if not isinstance(spec, FullTextSpec) or not isinstance(parent, Table):
        return
    name = fulltext_index_name(parent, column)
    if any(ix.name == name for ix in parent.indexes):
        return  # Table.to_metadata() copies the index already
    Index(
        name,
        column,
        postgresql_using="gin",
        info={FULLTEXT_INFO_KEY: spec},
        # As for vector indexes: Table.to_metadata() skips flagged indexes, and this
        # listener builds a correctly named one for the copy.
        _column_flag=True,
    )


def resolve_fulltext(column: Any, language: str | None = None) -> tuple[Column[Any], FullTextSpec]:
    """The ``tsvector`` column behind ``column`` and the spec its queries must use.

    For a :func:`FullText` column that is its declaration; ``language``, if given, must
    be the declared one (:class:`InvalidSearch` otherwise: the query would stem words
    differently from the stored vectors and miss rows). For a plain ``TSVECTOR``
    column, ``language`` is required.

    Example::

        col, spec = resolve_fulltext(Doc.tsv)
        spec.language       # 'english'
    """
    col = _as_column(column)
    if language is not None:
        check_language(language)
    declared = col.info.get(FULLTEXT_INFO_KEY)
    if isinstance(declared, FullTextSpec):
        if language is not None and language != declared.language:
            raise InvalidSearch(
                f"{_describe(col)} is built with language {declared.language!r}; a query "
                f"parsed as {language!r} would stem words differently and miss matches. "
                "Drop language= (the column's language is used)"
            )
        return col, declared
    if not is_fulltext_type(col.type):
        raise InvalidArgument(
            f"{_describe(col)} is not a tsvector column; declare one with "
            "vecalchemy.fulltext.FullText('title', 'body')"
        )
    if language is None:
        raise InvalidSearch(
            f"{_describe(col)} was not declared with FullText, so its text search "
            "configuration is unknown; pass language= (the one its to_tsvector uses)"
        )
    return col, FullTextSpec((col.name,), language)


def _as_column(column: Any) -> Column[Any]:
    if isinstance(column, InstrumentedAttribute):
        cols = getattr(column.property, "columns", None)
        if cols and isinstance(cols[0], Column):
            return cols[0]
    if isinstance(column, Column):
        return column
    raise InvalidArgument(f"expected a full-text column (Doc.tsv or table.c.tsv), got {column!r}")


def _describe(col: Column[Any]) -> str:
    table = getattr(col.table, "name", None) if col.table is not None else None
    return f"column {table}.{col.name}" if table else f"column {col.name}"
