"""FullText columns: generated tsvector DDL, the GIN index that follows, checked declarations."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.schema import CreateIndex, CreateTable

import vecalchemy
from vecalchemy._fulltext import (
    FULLTEXT_INFO_KEY,
    FullText,
    FullTextSpec,
    fulltext_column,
    resolve_fulltext,
    ts_rank_cd,
)

DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


class Base(DeclarativeBase):
    pass


class Article(Base):
    __tablename__ = "ft_articles"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    body: Mapped[str | None]
    tsv = FullText("title", "body")
    tsv_simple = FullText("body", language="simple")


def _ddl(table: sa.Table) -> str:
    return str(CreateTable(table).compile(dialect=DIALECT))


def test_generated_column_ddl() -> None:
    """The column is GENERATED ALWAYS AS (to_tsvector('<lang>'::regconfig, ...)) STORED."""
    ddl = _ddl(Article.__table__)  # type: ignore[arg-type]
    assert (
        "tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('english'::regconfig, "
        "coalesce(title, '') || ' ' || coalesce(body, ''))) STORED"
    ) in ddl
    assert "tsv_simple TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, " in ddl


def test_gin_index_is_attached() -> None:
    """Each FullText column brings a GIN index named ix_<table>_<column>_gin."""
    indexes = {str(ix.name): ix for ix in Article.__table__.indexes}
    assert set(indexes) == {"ix_ft_articles_tsv_gin", "ix_ft_articles_tsv_simple_gin"}
    ddl = str(CreateIndex(indexes["ix_ft_articles_tsv_gin"]).compile(dialect=DIALECT))
    assert ddl == "CREATE INDEX ix_ft_articles_tsv_gin ON ft_articles USING gin (tsv)"


def test_language_is_kept_on_the_column() -> None:
    """The language can be read back from the column, so queries use the same one."""
    col, spec = resolve_fulltext(Article.tsv)
    assert col is Article.__table__.c.tsv
    assert spec == FullTextSpec(("title", "body"), "english")
    assert Article.__table__.c.tsv_simple.info[FULLTEXT_INFO_KEY].language == "simple"
    assert resolve_fulltext(Article.tsv, "english")[1].language == "english"
    with pytest.raises(vecalchemy.InvalidSearch, match="built with language 'english'"):
        resolve_fulltext(Article.tsv, "simple")


def test_core_twin_and_quoted_names() -> None:
    """fulltext_column() is the Core twin; reserved or mixed-case names are quoted."""
    md = sa.MetaData()
    t = sa.Table(
        "ft_core",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("end", sa.Text),
        sa.Column("Body", sa.Text),
        fulltext_column("search", "end", "Body", language="german"),
    )
    ddl = _ddl(t)
    assert (
        "search TSVECTOR GENERATED ALWAYS AS (to_tsvector('german'::regconfig, "
        """coalesce("end", '') || ' ' || coalesce("Body", ''))) STORED"""
    ) in ddl
    assert [ix.name for ix in t.indexes] == ["ix_ft_core_search_gin"]
    copy = t.to_metadata(sa.MetaData(), name="ft_core_copy")
    assert [ix.name for ix in copy.indexes] == ["ix_ft_core_copy_search_gin"]


BAD_DECLARATIONS = [
    ((), {}, "at least one source column"),
    (("body",), {"language": "English"}, "lower-case letters and underscores"),
    (("body",), {"language": "english'; drop table x; --"}, "text search configuration"),
    (("body",), {"language": ""}, "full-text language ''"),
    (("body; drop table x",), {}, "full-text source column"),
    (("1body",), {}, "not starting with a digit"),
    ((3,), {}, "full-text source column 3"),
]


@pytest.mark.parametrize(("sources", "kwargs", "message"), BAD_DECLARATIONS)
def test_bad_declarations_are_refused(
    sources: tuple[object, ...], kwargs: dict[str, object], message: str
) -> None:
    """A language or column name that is not a plain identifier is refused at declaration."""
    with pytest.raises(vecalchemy.InvalidArgument, match=message):
        FullText(*sources, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(vecalchemy.InvalidArgument, match=message):
        fulltext_column("tsv", *sources, **kwargs)  # type: ignore[arg-type]


def test_plain_tsvector_columns_need_a_language() -> None:
    """A tsvector column not declared with FullText is searchable only with language=."""
    md = sa.MetaData()
    t = sa.Table("ft_plain", md, sa.Column("id", sa.Integer, primary_key=True))
    t.append_column(sa.Column("tsv", TSVECTOR))
    t.append_column(sa.Column("body", sa.Text))
    with pytest.raises(vecalchemy.InvalidSearch, match="pass language="):
        resolve_fulltext(t.c.tsv)
    assert resolve_fulltext(t.c.tsv, "simple")[1].language == "simple"
    with pytest.raises(vecalchemy.InvalidArgument, match="not a tsvector column"):
        resolve_fulltext(t.c.body)
    with pytest.raises(vecalchemy.InvalidArgument, match="expected a full-text column"):
        resolve_fulltext("tsv")


def test_create_all_builds_column_and_index(session: Session) -> None:
    """create_all creates the generated column and its GIN index; PostgreSQL keeps it fresh."""
    conn = session.connection()
    Base.metadata.create_all(conn)
    indexes = dict(
        conn.execute(
            sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ft_articles'")
        ).all()
    )
    assert "USING gin (tsv)" in indexes["ix_ft_articles_tsv_gin"]
    session.add(Article(id=1, title="Tuning autovacuum", body=None))
    session.flush()
    q = resolve_fulltext(Article.tsv)[1].tsquery("tuned")
    found = session.scalars(select(Article.id).where(Article.tsv.bool_op("@@")(q))).all()
    assert found == [1]  # 'tuned' and 'Tuning' stem to the same lexeme; NULL body is fine
    session.execute(update(Article).where(Article.id == 1).values(title="Gardening"))
    assert session.scalars(select(Article.id).where(Article.tsv.bool_op("@@")(q))).all() == []


def test_ts_rank_cd_orders_by_relevance(connection: Connection) -> None:
    """ts_rank_cd is a typed function; denser matches rank higher."""
    Base.metadata.create_all(connection)
    connection.execute(
        insert(Article),
        [
            {"id": 1, "title": "vacuum", "body": "vacuum vacuum vacuum full"},
            {"id": 2, "title": "notes", "body": "a note on vacuum"},
        ],
    )
    spec = resolve_fulltext(Article.tsv)[1]
    score = ts_rank_cd(Article.tsv, spec.tsquery("vacuum")).label("score")
    rows = connection.execute(select(Article.id, score).order_by(score.desc())).all()
    assert [r.id for r in rows] == [1, 2]
    assert isinstance(rows[0].score, float)
    assert rows[0].score > rows[1].score > 0
