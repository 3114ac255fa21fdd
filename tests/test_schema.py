"""Embedding columns, the indexes derived from them, declaration-time limits, resolve_spec."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy as sa
from pgvector.sqlalchemy import HALFVEC, Vector
from sqlalchemy import Column, Index, Integer, MetaData, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import CreateIndex, CreateTable

import vecalchemy
from vecalchemy import (
    HNSW,
    Embedding,
    IVFFlat,
    Metric,
    MetricMismatch,
    MetricRequired,
    Storage,
    UnknownMetric,
    UnsupportedIndex,
    VecalchemyError,
    VectorSpec,
    embedding_column,
    resolve_spec,
)
from vecalchemy.schema import vector_indexes

PG = postgresql.dialect()


class Base(DeclarativeBase):
    pass


# A plain pgvector-python column, indexed the way pgvector's README shows.
class CheatsheetItem(Base):
    __tablename__ = "schema_cheatsheet_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding: Mapped[Any] = mapped_column(Vector(3))


Index(
    "ix_cheatsheet_hnsw",
    CheatsheetItem.embedding,
    postgresql_using="hnsw",
    postgresql_with={"m": 16, "ef_construction": 64},
    postgresql_ops={"embedding": "vector_l2_ops"},
)


class IvfCheatsheetItem(Base):
    __tablename__ = "schema_ivf_cheatsheet_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding: Mapped[Any] = mapped_column(HALFVEC(3))
    __table_args__ = (
        Index(
            "ix_ivf_cheatsheet",
            "embedding",
            postgresql_using="ivfflat",
            postgresql_with={"lists": 100},
            postgresql_ops={"embedding": "halfvec_ip_ops"},
        ),
    )


class PlainItem(Base):
    __tablename__ = "schema_plain_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding: Mapped[Any] = mapped_column(Vector(3))
    name: Mapped[str]


class NoDimItem(Base):
    __tablename__ = "schema_nodim_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding: Mapped[Any] = mapped_column(Vector())


class Doc(Base):
    __tablename__ = "schema_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(3, metric="l2", index=HNSW(m=8, ef_construction=32))
    exact = Embedding(3, metric="inner_product", index=None)


class EmbeddingMixin:
    embedding = Embedding(3, metric="l2")


class MixedA(EmbeddingMixin, Base):
    __tablename__ = "schema_mixed_a"
    id: Mapped[int] = mapped_column(primary_key=True)


class MixedB(EmbeddingMixin, Base):
    __tablename__ = "schema_mixed_b"
    id: Mapped[int] = mapped_column(primary_key=True)


def _model(table: str = "docs", **kwargs: Any) -> Any:
    """A mapped class ``table`` with one ``embedding = Embedding(**kwargs)`` column."""

    class _Base(DeclarativeBase):
        pass

    class Model(_Base):
        __tablename__ = table
        id: Mapped[int] = mapped_column(primary_key=True)
        embedding = Embedding(**kwargs)

    return Model


def _index_sql(model: Any) -> list[str]:
    return [str(CreateIndex(ix).compile(dialect=PG)) for ix in vector_indexes(model.__table__)]


def _indexdefs(conn: sa.Connection, table: str) -> dict[str, str]:
    rows = conn.execute(
        sa.text(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = current_schema() AND tablename = :t AND indexname NOT LIKE '%pkey'"
        ),
        {"t": table},
    )
    return dict(rows.all())


def _table_exists(conn: sa.Connection, table: str) -> bool:
    return conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}).scalar_one()


# -- the DDL -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("embedding", "sql"),
    [
        (
            {"dim": 3},
            "CREATE INDEX ix_docs_embedding_hnsw ON docs USING hnsw "
            "(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)",
        ),
        (
            {"dim": 3, "metric": "l2", "index": HNSW(m=8, ef_construction=32)},
            "CREATE INDEX ix_docs_embedding_hnsw ON docs USING hnsw "
            "(embedding vector_l2_ops) WITH (m = 8, ef_construction = 32)",
        ),
        (
            {"dim": 1536, "metric": "inner_product", "storage": "halfvec"},
            "CREATE INDEX ix_docs_embedding_hnsw ON docs USING hnsw "
            "(embedding halfvec_ip_ops) WITH (m = 16, ef_construction = 64)",
        ),
        (
            {"dim": 3000, "storage": "halfvec"},
            "CREATE INDEX ix_docs_embedding_hnsw ON docs USING hnsw "
            "(embedding halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)",
        ),
        (
            {"dim": 30_000, "metric": "l1", "storage": "sparsevec"},
            "CREATE INDEX ix_docs_embedding_hnsw ON docs USING hnsw "
            "(embedding sparsevec_l1_ops) WITH (m = 16, ef_construction = 64)",
        ),
        (
            {"dim": 64, "metric": "hamming", "storage": "bit"},
            "CREATE INDEX ix_docs_embedding_hnsw ON docs USING hnsw "
            "(embedding bit_hamming_ops) WITH (m = 16, ef_construction = 64)",
        ),
        (
            {"dim": 64, "metric": "jaccard", "storage": "bit"},
            "CREATE INDEX ix_docs_embedding_hnsw ON docs USING hnsw "
            "(embedding bit_jaccard_ops) WITH (m = 16, ef_construction = 64)",
        ),
        (
            {"dim": 3, "metric": "l2", "index": IVFFlat(lists=10)},
            "CREATE INDEX ix_docs_embedding_ivfflat ON docs USING ivfflat "
            "(embedding vector_l2_ops) WITH (lists = 10)",
        ),
        (
            {"dim": 3, "index": IVFFlat()},
            "CREATE INDEX ix_docs_embedding_ivfflat ON docs USING ivfflat "
            "(embedding vector_cosine_ops)",
        ),
        (
            {"dim": 64, "metric": "hamming", "storage": "bit", "index": IVFFlat(lists=2)},
            "CREATE INDEX ix_docs_embedding_ivfflat ON docs USING ivfflat "
            "(embedding bit_hamming_ops) WITH (lists = 2)",
        ),
        (
            {"dim": 2000},
            "CREATE INDEX ix_docs_embedding_hnsw ON docs USING hnsw "
            "(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)",
        ),
        (
            {"dim": 2001, "metric": "l2"},
            "CREATE INDEX ix_docs_embedding_hnsw ON docs USING hnsw "
            "(CAST(embedding AS HALFVEC(2001)) halfvec_l2_ops) WITH (m = 16, ef_construction = 64)",
        ),
        (
            {"dim": 3072},
            "CREATE INDEX ix_docs_embedding_hnsw ON docs USING hnsw "
            "(CAST(embedding AS HALFVEC(3072)) halfvec_cosine_ops) "
            "WITH (m = 16, ef_construction = 64)",
        ),
        (
            {"dim": 3, "index": HNSW(name="my_vectors")},
            "CREATE INDEX my_vectors ON docs USING hnsw "
            "(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)",
        ),
    ],
)
def test_index_ddl(embedding: dict[str, Any], sql: str) -> None:
    """The index's opclass follows from metric and storage, with the method and WITH options."""
    assert _index_sql(_model(**embedding)) == [sql]


@pytest.mark.parametrize(
    ("embedding", "column"),
    [
        ({"dim": 3}, "embedding VECTOR(3)"),
        ({"dim": 3072}, "embedding VECTOR(3072)"),
        ({"dim": 16_000, "index": None}, "embedding VECTOR(16000)"),
        ({"dim": 768, "storage": "halfvec"}, "embedding HALFVEC(768)"),
        ({"dim": 30_000, "storage": "sparsevec"}, "embedding SPARSEVEC(30000)"),
        ({"dim": 64, "storage": "bit", "metric": "hamming"}, "embedding BIT(64)"),
        ({"dim": 3, "nullable": False}, "embedding VECTOR(3) NOT NULL"),
    ],
)
def test_column_ddl(embedding: dict[str, Any], column: str) -> None:
    """The column's type is the storage type with its dimension; a 3,072-d vector stays vector."""
    sql = str(CreateTable(_model(**embedding).__table__).compile(dialect=PG))
    assert f"\t{column}, \n" in sql


def test_index_none_creates_no_index_and_allows_large_dimensions() -> None:
    """index=None declares no index, so a vector may have up to 16,000 dimensions."""
    model = _model(dim=16_000, index=None)
    assert list(model.__table__.indexes) == []
    assert vector_indexes(model.__table__) == []
    halfvec = _model(dim=10_000, storage="halfvec", index=None)
    assert list(halfvec.__table__.indexes) == []


def test_long_table_names_get_a_63_character_index_name(connection: sa.Connection) -> None:
    """Generated names longer than PostgreSQL's 63 characters are shortened with a digest,
    so the name PostgreSQL stores is the name vecalchemy knows."""
    table = "t" * 60
    model = _model(table=table, dim=3)
    (ix,) = vector_indexes(model.__table__)
    assert len(ix.name) == 63
    other = _model(table="t" * 59 + "u", dim=3)
    assert vector_indexes(other.__table__)[0].name != ix.name
    model.metadata.create_all(connection)
    assert list(_indexdefs(connection, table)) == [ix.name]


# -- declaration-time errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"dim": 0}, UnsupportedIndex, "dimension must be a positive integer, got 0"),
        ({"dim": -3}, UnsupportedIndex, "dimension must be a positive integer, got -3"),
        ({"dim": 3.0}, UnsupportedIndex, "dimension must be a positive integer, got 3.0"),
        ({"dim": "384"}, UnsupportedIndex, "dimension must be a positive integer, got '384'"),
        ({"dim": True}, UnsupportedIndex, "dimension must be a positive integer, got True"),
        ({"dim": None}, UnsupportedIndex, "dimension must be a positive integer, got None"),
        (
            {"dim": 16_001, "index": None},
            UnsupportedIndex,
            "vector columns hold at most 16,000 dimensions, got 16,001",
        ),
        (
            {"dim": 16_001, "storage": "halfvec", "index": None},
            UnsupportedIndex,
            "halfvec columns hold at most 16,000 dimensions, got 16,001",
        ),
        (
            {"dim": 4001, "storage": "halfvec"},
            UnsupportedIndex,
            "pgvector indexes halfvec of at most 4,000 dimensions, got 4,001",
        ),
        (
            {"dim": 4001},
            UnsupportedIndex,
            "pgvector indexes halfvec of at most 4,000 dimensions, got 4,001 "
            "(a vector above 2,000 dimensions is indexed as halfvec)",
        ),
        (
            {"dim": 64_001, "storage": "bit", "metric": "hamming"},
            UnsupportedIndex,
            "pgvector indexes bit of at most 64,000 dimensions, got 64,001",
        ),
        (
            {"dim": 3, "metric": "l1", "index": IVFFlat()},
            UnsupportedIndex,
            "pgvector has no ivfflat index for l1 on vector; use HNSW(...) instead",
        ),
        (
            {"dim": 3, "metric": "l1", "storage": "halfvec", "index": IVFFlat(lists=5)},
            UnsupportedIndex,
            "pgvector has no ivfflat index for l1 on halfvec; use HNSW(...) instead",
        ),
        (
            {"dim": 64, "metric": "jaccard", "storage": "bit", "index": IVFFlat()},
            UnsupportedIndex,
            "pgvector has no ivfflat index for jaccard on bit; use HNSW(...) instead",
        ),
        (
            {"dim": 100, "storage": "sparsevec", "index": IVFFlat()},
            UnsupportedIndex,
            "pgvector has no ivfflat index for cosine on sparsevec; use HNSW(...) instead",
        ),
        (
            {"dim": 64, "metric": "hamming"},
            UnsupportedIndex,
            "metric 'hamming' does not apply to vector columns; "
            "vector supports: cosine, inner_product, l1, l2",
        ),
        (
            {"dim": 64, "metric": "hamming", "index": None},
            UnsupportedIndex,
            "metric 'hamming' does not apply to vector columns",
        ),
        (
            {"dim": 64, "storage": "bit"},
            UnsupportedIndex,
            "metric 'cosine' does not apply to bit columns; bit supports: hamming, jaccard",
        ),
        (
            {"dim": 3, "metric": "cosinus"},
            UnknownMetric,
            "unknown metric 'cosinus'; use one of: cosine, l2, inner_product, l1, hamming, jaccard",
        ),
        (
            {"dim": 3, "storage": "float16"},
            UnknownMetric,
            "unknown storage 'float16'; use one of: vector, halfvec, sparsevec, bit",
        ),
        (
            {"dim": 3, "index": "hnsw"},
            UnsupportedIndex,
            "index must be vecalchemy.HNSW(...), vecalchemy.IVFFlat(...) or None, got 'hnsw'",
        ),
    ],
)
def test_declaration_errors(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    """pgvector's limits are checked when the column is declared, with a message that says
    what is wrong; the errors are ValueErrors."""
    for declare in (Embedding, lambda **kw: embedding_column("embedding", **kw)):
        with pytest.raises(error) as info:
            declare(**kwargs)
        assert message in str(info.value)
        assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: HNSW(m=1), "HNSW m must be an integer from 2 to 100, got 1"),
        (lambda: HNSW(m=101), "HNSW m must be an integer from 2 to 100, got 101"),
        (lambda: HNSW(m=4.0), "HNSW m must be an integer from 2 to 100, got 4.0"),
        (
            lambda: HNSW(ef_construction=3),
            "HNSW ef_construction must be an integer from 4 to 1000, got 3",
        ),
        (
            lambda: HNSW(m=16, ef_construction=1001),
            "HNSW ef_construction must be an integer from 4 to 1000, got 1001",
        ),
        (
            lambda: HNSW(m=16, ef_construction=31),
            "HNSW ef_construction (31) must be at least 2 * m (32); "
            "raise ef_construction or lower m",
        ),
        (lambda: IVFFlat(lists=0), "IVFFlat lists must be an integer from 1 to 32768, got 0"),
        (
            lambda: IVFFlat(lists=32769),
            "IVFFlat lists must be an integer from 1 to 32768, got 32769",
        ),
        (
            lambda: IVFFlat(lists=True),
            "IVFFlat lists must be an integer from 1 to 32768, got True",
        ),
    ],
)
def test_index_option_errors(make: Any, message: str) -> None:
    """HNSW and IVFFlat options outside pgvector's ranges raise UnsupportedIndex at once."""
    with pytest.raises(UnsupportedIndex) as info:
        make()
    assert str(info.value) == message


def test_vector_above_halfvec_limit_is_not_told_to_use_halfvec() -> None:
    """A 4,001-d vector cannot be indexed even as halfvec: the message must not advise
    halfvec storage (which fails the same way) but index=None or fewer dimensions."""
    with pytest.raises(UnsupportedIndex) as info:
        Embedding(4001)
    message = str(info.value)
    assert "index=None" in message
    assert "reduce the dimension" in message
    with pytest.raises(UnsupportedIndex):
        Embedding(4001, storage="halfvec")  # what "store it as halfvec" would lead to
    assert "store it as halfvec" not in message


def test_bad_declaration_adds_no_table() -> None:
    """A class whose Embedding is invalid is never mapped: its metadata stays empty."""

    class _Base(DeclarativeBase):
        pass

    with pytest.raises(UnsupportedIndex):

        class Bad(_Base):
            __tablename__ = "bad"
            id: Mapped[int] = mapped_column(primary_key=True)
            embedding = Embedding(3, metric="l1", index=IVFFlat())

    assert _Base.metadata.tables == {}


# -- limits agree with the server ---------------------------------------------------------------

_SERVER_LIMITS = [
    # (Embedding kwargs, CREATE TABLE column type, CREATE INDEX key and options)
    ({"dim": 2000, "metric": "l2"}, "vector(2000)", "USING hnsw (e vector_l2_ops)"),
    (
        {"dim": 4000, "metric": "l2"},
        "vector(4000)",
        "USING hnsw ((e::halfvec(4000)) halfvec_l2_ops)",
    ),
    (
        {"dim": 4001, "metric": "l2"},
        "vector(4001)",
        "USING hnsw ((e::halfvec(4001)) halfvec_l2_ops)",
    ),
    (
        {"dim": 4000, "storage": "halfvec"},
        "halfvec(4000)",
        "USING hnsw (e halfvec_cosine_ops)",
    ),
    (
        {"dim": 4001, "storage": "halfvec"},
        "halfvec(4001)",
        "USING hnsw (e halfvec_cosine_ops)",
    ),
    (
        {"dim": 64_000, "storage": "bit", "metric": "hamming"},
        "bit(64000)",
        "USING hnsw (e bit_hamming_ops)",
    ),
    (
        {"dim": 64_001, "storage": "bit", "metric": "hamming"},
        "bit(64001)",
        "USING hnsw (e bit_hamming_ops)",
    ),
    (
        {"dim": 3, "index": HNSW(m=100, ef_construction=1000)},
        "vector(3)",
        "USING hnsw (e vector_cosine_ops) WITH (m = 100, ef_construction = 1000)",
    ),
    (
        {"dim": 3, "index": HNSW(m=16, ef_construction=32)},
        "vector(3)",
        "USING hnsw (e vector_cosine_ops) WITH (m = 16, ef_construction = 32)",
    ),
    (
        {"dim": 3, "index": lambda: HNSW(m=16, ef_construction=31)},
        "vector(3)",
        "USING hnsw (e vector_cosine_ops) WITH (m = 16, ef_construction = 31)",
    ),
    (
        {"dim": 3, "index": lambda: HNSW(m=1, ef_construction=4)},
        "vector(3)",
        "USING hnsw (e vector_cosine_ops) WITH (m = 1, ef_construction = 4)",
    ),
    (
        {"dim": 3, "index": lambda: IVFFlat(lists=0)},
        "vector(3)",
        "USING ivfflat (e vector_cosine_ops) WITH (lists = 0)",
    ),
    (
        {"dim": 3, "metric": "l1", "index": IVFFlat(lists=1)},
        "vector(3)",
        "USING ivfflat (e vector_l1_ops) WITH (lists = 1)",
    ),
    (
        {"dim": 64, "storage": "bit", "metric": "jaccard", "index": IVFFlat(lists=1)},
        "bit(64)",
        "USING ivfflat (e bit_jaccard_ops) WITH (lists = 1)",
    ),
    (
        {"dim": 3, "storage": "sparsevec", "index": IVFFlat(lists=1)},
        "sparsevec(3)",
        "USING ivfflat (e sparsevec_cosine_ops) WITH (lists = 1)",
    ),
    ({"dim": 3, "metric": "hamming"}, "vector(3)", "USING hnsw (e bit_hamming_ops)"),
    ({"dim": 3, "storage": "bit"}, "bit(3)", "USING hnsw (e vector_cosine_ops)"),
    ({"dim": 16_000, "index": None}, "vector(16000)", None),
    ({"dim": 16_001, "index": None}, "vector(16001)", None),
]


@pytest.mark.parametrize(("kwargs", "column", "index"), _SERVER_LIMITS)
def test_declaration_accepts_exactly_what_the_server_accepts(
    connection: sa.Connection, kwargs: dict[str, Any], column: str, index: str | None
) -> None:
    """Embedding(...) succeeds exactly when PostgreSQL + pgvector can create the column and
    its index (checked with hand-written DDL on an empty table)."""
    try:
        spec = kwargs.get("index", HNSW())
        Embedding(**{**kwargs, "index": spec() if callable(spec) else spec})
    except UnsupportedIndex:
        declared_ok = False
    else:
        declared_ok = True
    server_ok = True
    try:
        with connection.begin_nested():
            connection.exec_driver_sql(f"CREATE TABLE limits (e {column})")
            if index is not None:
                connection.exec_driver_sql(f"CREATE INDEX ON limits {index}")
    except sa.exc.DBAPIError:
        server_ok = False
    assert declared_ok == server_ok


# -- create_all against the server ----------------------------------------------------------------


def test_create_all_creates_the_hnsw_index(connection: sa.Connection) -> None:
    """create_all creates the HNSW index with the opclass derived from the metric."""
    Base.metadata.create_all(connection, tables=[Doc.__table__])
    assert _indexdefs(connection, "schema_docs") == {
        "ix_schema_docs_embedding_hnsw": (
            "CREATE INDEX ix_schema_docs_embedding_hnsw ON public.schema_docs USING hnsw "
            "(embedding vector_l2_ops) WITH (m='8', ef_construction='32')"
        )
    }


@pytest.mark.parametrize(
    ("embedding", "key"),
    [
        ({"dim": 3072}, "(((embedding)::halfvec(3072)) halfvec_cosine_ops)"),
        ({"dim": 8, "metric": "l1", "storage": "halfvec"}, "(embedding halfvec_l1_ops)"),
        (
            {"dim": 8, "metric": "inner_product", "storage": "sparsevec"},
            "(embedding sparsevec_ip_ops)",
        ),
        ({"dim": 64, "metric": "jaccard", "storage": "bit"}, "(embedding bit_jaccard_ops)"),
    ],
)
def test_create_all_index_on_the_server(
    connection: sa.Connection, embedding: dict[str, Any], key: str
) -> None:
    """The index PostgreSQL stores has the expected key and opclass (halfvec cast above 2,000)."""
    model = _model(table="served", **embedding)
    model.metadata.create_all(connection)
    assert _indexdefs(connection, "served") == {
        "ix_served_embedding_hnsw": (
            f"CREATE INDEX ix_served_embedding_hnsw ON public.served USING hnsw {key} "
            "WITH (m='16', ef_construction='64')"
        )
    }


@pytest.mark.parametrize("ivf", [IVFFlat(), IVFFlat(lists=10)], ids=["lists-none", "lists-10"])
def test_create_all_creates_no_ivfflat_index(
    connection: sa.Connection, ivf: IVFFlat, caplog: pytest.LogCaptureFixture
) -> None:
    """create_all creates the table but not its IVFFlat index (it would train on no rows),
    and logs that build_indexes() builds it later."""
    model = _model(table="ivf_docs", dim=3, index=ivf)
    with caplog.at_level(logging.INFO, logger="vecalchemy.schema"):
        model.metadata.create_all(connection)
    assert _table_exists(connection, "ivf_docs")
    assert _indexdefs(connection, "ivf_docs") == {}
    assert "ix_ivf_docs_embedding_ivfflat" in caplog.text
    assert "build_indexes" in caplog.text


def test_defer_indexes_creates_the_table_without_its_hnsw_index(
    connection: sa.Connection,
) -> None:
    """Inside defer_indexes() create_all creates tables only; outside it indexes again."""
    with vecalchemy.defer_indexes():
        Base.metadata.create_all(connection, tables=[Doc.__table__])
    assert _table_exists(connection, "schema_docs")
    assert _indexdefs(connection, "schema_docs") == {}
    other = _model(table="after_defer", dim=3)
    other.metadata.create_all(connection)
    assert list(_indexdefs(connection, "after_defer")) == ["ix_after_defer_embedding_hnsw"]


def test_embedding_column_for_core_tables(connection: sa.Connection) -> None:
    """embedding_column() gives a Core Column with the same index as Embedding()."""
    metadata = MetaData()
    docs = Table(
        "core_docs",
        metadata,
        Column("id", Integer, primary_key=True),
        embedding_column("embedding", 3, metric="l2", index=HNSW(m=4, ef_construction=8)),
    )
    assert [str(CreateIndex(ix).compile(dialect=PG)) for ix in docs.indexes] == [
        "CREATE INDEX ix_core_docs_embedding_hnsw ON core_docs USING hnsw "
        "(embedding vector_l2_ops) WITH (m = 4, ef_construction = 8)"
    ]
    col, spec = resolve_spec(docs.c.embedding)
    assert col is docs.c.embedding
    assert (spec.dim, spec.metric, spec.storage) == (3, Metric.L2, Storage.VECTOR)
    assert spec.index_name == "ix_core_docs_embedding_hnsw"
    metadata.create_all(connection)
    assert list(_indexdefs(connection, "core_docs")) == ["ix_core_docs_embedding_hnsw"]


def test_embedding_keeps_other_info_and_column_options() -> None:
    """info= and other mapped_column options pass through; the spec lives beside them."""
    model = _model(dim=3, info={"owner": "search"}, comment="sentence embedding")
    col = model.__table__.c.embedding
    assert col.info["owner"] == "search"
    assert isinstance(col.info["vecalchemy"], VectorSpec)
    assert col.comment == "sentence embedding"


# -- no duplicated indexes -------------------------------------------------------------------


def test_mixin_gives_each_table_exactly_one_index(connection: sa.Connection) -> None:
    """An Embedding on a mixin gives each table its own single index."""
    assert [ix.name for ix in MixedA.__table__.indexes] == ["ix_schema_mixed_a_embedding_hnsw"]
    assert [ix.name for ix in MixedB.__table__.indexes] == ["ix_schema_mixed_b_embedding_hnsw"]
    Base.metadata.create_all(connection, tables=[MixedA.__table__, MixedB.__table__])
    assert list(_indexdefs(connection, "schema_mixed_a")) == ["ix_schema_mixed_a_embedding_hnsw"]
    assert list(_indexdefs(connection, "schema_mixed_b")) == ["ix_schema_mixed_b_embedding_hnsw"]


def test_to_metadata_does_not_duplicate_the_index(connection: sa.Connection) -> None:
    """Table.to_metadata() copies the vector index once, still a vecalchemy index, and
    create_all on the copy succeeds."""
    copy = Doc.__table__.to_metadata(MetaData())
    assert [ix.name for ix in copy.indexes] == ["ix_schema_docs_embedding_hnsw"]
    assert [ix.name for ix in vector_indexes(copy)] == ["ix_schema_docs_embedding_hnsw"]
    copy.metadata.create_all(connection)
    assert list(_indexdefs(connection, "schema_docs")) == ["ix_schema_docs_embedding_hnsw"]


def test_to_metadata_copy_of_ivfflat_is_still_deferred(connection: sa.Connection) -> None:
    """A copied IVFFlat index is still skipped by create_all."""
    model = _model(table="ivf_copy", dim=3, index=IVFFlat(lists=4))
    copy = model.__table__.to_metadata(MetaData())
    copy.metadata.create_all(connection)
    assert _table_exists(connection, "ivf_copy")
    assert _indexdefs(connection, "ivf_copy") == {}


def test_to_metadata_with_a_new_name_renames_the_index() -> None:
    """Copying a table under a new name gives only the index named after the new table."""
    copy = Doc.__table__.to_metadata(MetaData(), name="docs_archive")
    assert [ix.name for ix in copy.indexes] == ["ix_docs_archive_embedding_hnsw"]


# -- resolve_spec ------------------------------------------------------------------------------


def test_resolve_spec_of_an_embedding_column() -> None:
    """An Embedding column resolves to its declaration and its index's name."""
    col, spec = resolve_spec(Doc.embedding)
    assert col is Doc.__table__.c.embedding
    assert spec == VectorSpec(3, Metric.L2, Storage.VECTOR, HNSW(m=8, ef_construction=32))
    assert spec.declared
    assert spec.index_name == "ix_schema_docs_embedding_hnsw"
    assert spec.opclass == "vector_l2_ops"
    for same in ("l2", "euclidean", Metric.L2):
        assert resolve_spec(Doc.embedding, same)[1] == spec


def test_resolve_spec_of_a_3072_dimension_column_uses_halfvec() -> None:
    """A 3,072-d vector column is searched as halfvec, like its index."""
    _, spec = resolve_spec(_model(dim=3072).embedding)
    assert spec.storage is Storage.VECTOR
    assert spec.index_storage is Storage.HALFVEC
    assert spec.uses_expression_index
    assert spec.opclass == "halfvec_cosine_ops"


def test_resolve_spec_embedding_searched_with_another_metric() -> None:
    """Searching an Embedding column by another metric raises MetricMismatch naming both."""
    with pytest.raises(MetricMismatch) as info:
        resolve_spec(Doc.embedding, "cosine")
    message = str(info.value)
    assert "column schema_docs.embedding" in message
    assert "'l2'" in message
    assert "vector_l2_ops" in message
    assert "'cosine'" in message


def test_resolve_spec_of_an_exact_only_embedding_column() -> None:
    """An Embedding column with index=None resolves without an index name."""
    col, spec = resolve_spec(Doc.exact)
    assert spec.index is None
    assert spec.index_name is None
    assert spec.metric is Metric.INNER_PRODUCT
    assert col is Doc.__table__.c.exact


def test_resolve_spec_plain_column_with_metric() -> None:
    """A plain mapped_column(Vector(3)) with metric= resolves to an undeclared spec."""
    col, spec = resolve_spec(PlainItem.embedding, metric="cosine")
    assert col is PlainItem.__table__.c.embedding
    assert spec == VectorSpec(3, Metric.COSINE, Storage.VECTOR, None)
    assert not spec.declared
    assert spec.index_name is None


def test_resolve_spec_plain_column_without_metric_requires_one() -> None:
    """A plain column without metric= nor an index raises MetricRequired saying what to pass."""
    with pytest.raises(MetricRequired) as info:
        resolve_spec(PlainItem.embedding)
    message = str(info.value)
    assert "column schema_plain_items.embedding" in message
    assert "metric='cosine'" in message


def test_resolve_spec_plain_column_with_a_metric_it_cannot_use() -> None:
    """A plain vector column searched by hamming raises UnsupportedIndex."""
    with pytest.raises(UnsupportedIndex, match="metric 'hamming' does not apply to vector"):
        resolve_spec(PlainItem.embedding, metric="hamming")


def test_resolve_spec_infers_the_metric_from_a_cheatsheet_index() -> None:
    """A hand-written hnsw index with vector_l2_ops says the column is searched by l2."""
    col, spec = resolve_spec(CheatsheetItem.embedding)
    assert col is CheatsheetItem.__table__.c.embedding
    assert spec.metric is Metric.L2
    assert spec.storage is Storage.VECTOR
    assert spec.dim == 3
    assert spec.index == HNSW(m=16, ef_construction=64)
    assert spec.index_name == "ix_cheatsheet_hnsw"
    assert resolve_spec(CheatsheetItem.embedding, metric="l2")[1] == spec


def test_resolve_spec_infers_ivfflat_from_table_args() -> None:
    """A hand-written ivfflat index in __table_args__ gives metric, storage and lists."""
    _, spec = resolve_spec(IvfCheatsheetItem.embedding)
    assert spec.metric is Metric.INNER_PRODUCT
    assert spec.storage is Storage.HALFVEC
    assert spec.index == IVFFlat(lists=100)
    assert spec.index_name == "ix_ivf_cheatsheet"


def test_resolve_spec_cheatsheet_index_with_conflicting_metric() -> None:
    """metric= that differs from the hand-written index's opclass raises MetricMismatch."""
    with pytest.raises(MetricMismatch) as info:
        resolve_spec(CheatsheetItem.embedding, metric="cosine")
    message = str(info.value)
    assert "ix_cheatsheet_hnsw" in message
    assert "vector_l2_ops" in message
    assert "'cosine'" in message


def test_resolve_spec_vector_without_dimension() -> None:
    """Vector() without a dimension raises a clear error, with or without metric=."""
    for metric in (None, "l2"):
        with pytest.raises(UnsupportedIndex) as info:
            resolve_spec(NoDimItem.embedding, metric)
        message = str(info.value)
        assert "column schema_nodim_items.embedding has no dimension" in message
        assert "Vector(dim)" in message


def test_resolve_spec_of_a_non_vector_column() -> None:
    """A column that is not a pgvector type is refused with a message saying so."""
    with pytest.raises(VecalchemyError, match="is not a pgvector column") as info:
        resolve_spec(PlainItem.name, metric="cosine")
    assert isinstance(info.value, ValueError)
    with pytest.raises(vecalchemy.InvalidArgument, match="expected a vector column"):
        resolve_spec("embedding", metric="cosine")
