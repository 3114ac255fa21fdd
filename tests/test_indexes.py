"""build_indexes / drop_indexes against the server (DDL is transactional: all rolled back)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Column, Integer, MetaData, Table
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import vecalchemy
from vecalchemy import HNSW, Embedding, IndexBuildError, IndexResult, IVFFlat, embedding_column
from vecalchemy.indexes import table_of


class Base(DeclarativeBase):
    pass


class HnswDoc(Base):
    __tablename__ = "idx_hnsw_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(3, metric="l2", index=HNSW(m=8, ef_construction=32))


class WideDoc(Base):
    __tablename__ = "idx_wide_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(3072)


class IvfDoc(Base):
    __tablename__ = "idx_ivf_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(3, metric="inner_product", index=IVFFlat())


class FixedIvfDoc(Base):
    __tablename__ = "idx_fixed_ivf_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(3, index=IVFFlat(lists=100))


class TwoIndexDoc(Base):
    __tablename__ = "idx_two_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    a = Embedding(3, metric="l2", index=IVFFlat())
    b = Embedding(3)
    plain = Embedding(3, index=None)


def _indexes(conn: sa.Connection, table: str) -> dict[str, str]:
    rows = conn.execute(
        sa.text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = :t AND indexname NOT LIKE '%pkey'"
        ),
        {"t": table},
    )
    return dict(rows.all())


def _reloptions(conn: sa.Connection, index: str) -> list[str] | None:
    return conn.execute(
        sa.text("SELECT reloptions FROM pg_class WHERE relname = :n"), {"n": index}
    ).scalar_one()


def _create(conn: sa.Connection, *models: Any) -> None:
    with vecalchemy.defer_indexes():
        Base.metadata.create_all(conn, tables=[m.__table__ for m in models])


def _load(conn: sa.Connection, table: str, rows: int, *, column: str = "embedding") -> None:
    conn.execute(
        sa.text(
            f"INSERT INTO {table} ({column}) "
            "SELECT ARRAY[random(), random(), random()]::vector FROM generate_series(1, :n)"
        ),
        {"n": rows},
    )


def test_build_hnsw_after_defer_indexes(connection: sa.Connection) -> None:
    """build_indexes builds the HNSW index deferred by defer_indexes(), then reports 'exists'."""
    _create(connection, HnswDoc)
    assert _indexes(connection, "idx_hnsw_docs") == {}
    _load(connection, "idx_hnsw_docs", 10)

    (result,) = vecalchemy.build_indexes(connection, HnswDoc)
    assert isinstance(result, IndexResult)
    assert (result.name, result.action, result.rows) == (
        "ix_idx_hnsw_docs_embedding_hnsw",
        "built",
        10,
    )
    assert result.options == {"m": 8, "ef_construction": 32}
    assert result.seconds >= 0
    assert _indexes(connection, "idx_hnsw_docs") == {
        "ix_idx_hnsw_docs_embedding_hnsw": (
            "CREATE INDEX ix_idx_hnsw_docs_embedding_hnsw ON public.idx_hnsw_docs "
            "USING hnsw (embedding vector_l2_ops) WITH (m='8', ef_construction='32')"
        )
    }

    again = vecalchemy.build_indexes(connection, HnswDoc)
    assert [(r.name, r.action) for r in again] == [("ix_idx_hnsw_docs_embedding_hnsw", "exists")]


def test_build_hnsw_on_an_empty_table(connection: sa.Connection) -> None:
    """HNSW can be built on an empty table (0 rows), unlike IVFFlat."""
    _create(connection, HnswDoc)
    (result,) = vecalchemy.build_indexes(connection, HnswDoc.__table__)
    assert (result.action, result.rows) == ("built", 0)
    assert list(_indexes(connection, "idx_hnsw_docs")) == ["ix_idx_hnsw_docs_embedding_hnsw"]


def test_build_the_halfvec_expression_index(connection: sa.Connection) -> None:
    """A deferred 3,072-d index is built on the halfvec cast of the column."""
    _create(connection, WideDoc)
    (result,) = vecalchemy.build_indexes(connection, WideDoc)
    assert result.action == "built"
    assert (
        "(((embedding)::halfvec(3072)) halfvec_cosine_ops)"
        in _indexes(connection, "idx_wide_docs")[result.name]
    )


def test_ivfflat_on_an_empty_table_raises_and_creates_nothing(connection: sa.Connection) -> None:
    """IVFFlat(lists=None) on an empty table raises IndexBuildError telling to load rows
    first, and no index is created."""
    Base.metadata.create_all(connection, tables=[IvfDoc.__table__])
    with pytest.raises(IndexBuildError) as info:
        vecalchemy.build_indexes(connection, IvfDoc)
    message = str(info.value)
    assert "ix_idx_ivf_docs_embedding_ivfflat" in message
    assert "idx_ivf_docs has no rows" in message
    assert "load the data first" in message
    assert _indexes(connection, "idx_ivf_docs") == {}


def test_ivfflat_lists_from_the_row_count(connection: sa.Connection) -> None:
    """After loading 2,500 rows, IVFFlat(lists=None) is built with lists = 2 (rows / 1000)."""
    Base.metadata.create_all(connection, tables=[IvfDoc.__table__])
    _load(connection, "idx_ivf_docs", 2500)
    connection.execute(sa.text("INSERT INTO idx_ivf_docs (embedding) VALUES (NULL)"))

    (result,) = vecalchemy.build_indexes(connection, IvfDoc)
    assert (result.name, result.action) == ("ix_idx_ivf_docs_embedding_ivfflat", "built")
    assert result.rows == 2500  # NULL vectors are not indexed, and not counted
    assert _reloptions(connection, result.name) == ["lists=2"]
    assert (
        "USING ivfflat (embedding vector_ip_ops)"
        in _indexes(connection, "idx_ivf_docs")[result.name]
    )
    # the declaration is left as it was: lists is chosen again at the next build
    ix = next(iter(IvfDoc.__table__.indexes))
    assert ix.dialect_options["postgresql"]["with"] == {}


def test_ivfflat_result_reports_the_lists_it_chose(connection: sa.Connection) -> None:
    """The IndexResult of an IVFFlat(lists=None) build says which lists it used."""
    Base.metadata.create_all(connection, tables=[IvfDoc.__table__])
    _load(connection, "idx_ivf_docs", 2500)
    (result,) = vecalchemy.build_indexes(connection, IvfDoc)
    assert result.options == {"lists": 2}


def test_ivfflat_with_more_lists_than_rows_raises(connection: sa.Connection) -> None:
    """IVFFlat(lists=100) on 50 rows raises IndexBuildError and creates nothing."""
    Base.metadata.create_all(connection, tables=[FixedIvfDoc.__table__])
    _load(connection, "idx_fixed_ivf_docs", 50)
    with pytest.raises(IndexBuildError) as info:
        vecalchemy.build_indexes(connection, FixedIvfDoc)
    message = str(info.value)
    assert "lists=100 is more than the 50 rows in idx_fixed_ivf_docs" in message
    assert "IVFFlat(lists=None)" in message
    assert _indexes(connection, "idx_fixed_ivf_docs") == {}


def test_ivfflat_with_fixed_lists(connection: sa.Connection) -> None:
    """IVFFlat(lists=100) with 150 rows is built with lists=100."""
    Base.metadata.create_all(connection, tables=[FixedIvfDoc.__table__])
    _load(connection, "idx_fixed_ivf_docs", 150)
    (result,) = vecalchemy.build_indexes(connection, FixedIvfDoc)
    assert (result.action, result.rows, result.options) == ("built", 150, {"lists": 100})
    assert _reloptions(connection, result.name) == ["lists=100"]


def test_build_stops_at_the_first_ivfflat_error(connection: sa.Connection) -> None:
    """On an empty table with an IVFFlat and an HNSW index, build_indexes raises for the
    IVFFlat one and builds nothing after it."""
    _create(connection, TwoIndexDoc)
    with pytest.raises(IndexBuildError, match="ix_idx_two_docs_a_ivfflat"):
        vecalchemy.build_indexes(connection, TwoIndexDoc)
    assert _indexes(connection, "idx_two_docs") == {}


def test_build_and_drop_several_indexes(connection: sa.Connection) -> None:
    """Every declared vector index of a table is built and dropped; index=None has none."""
    _create(connection, TwoIndexDoc)
    _load(connection, "idx_two_docs", 1200, column="a")
    built = vecalchemy.build_indexes(connection, TwoIndexDoc)
    assert [(r.name, r.action) for r in built] == [
        ("ix_idx_two_docs_a_ivfflat", "built"),
        ("ix_idx_two_docs_b_hnsw", "built"),
    ]
    assert [r.rows for r in built] == [1200, 0]
    assert set(_indexes(connection, "idx_two_docs")) == {
        "ix_idx_two_docs_a_ivfflat",
        "ix_idx_two_docs_b_hnsw",
    }
    dropped = vecalchemy.drop_indexes(connection, TwoIndexDoc)
    assert [(r.name, r.action) for r in dropped] == [
        ("ix_idx_two_docs_a_ivfflat", "dropped"),
        ("ix_idx_two_docs_b_hnsw", "dropped"),
    ]
    assert _indexes(connection, "idx_two_docs") == {}


def test_drop_indexes_then_absent(connection: sa.Connection) -> None:
    """drop_indexes drops the index ('dropped'), and a second call reports 'absent'."""
    Base.metadata.create_all(connection, tables=[HnswDoc.__table__])
    assert list(_indexes(connection, "idx_hnsw_docs")) == ["ix_idx_hnsw_docs_embedding_hnsw"]

    (result,) = vecalchemy.drop_indexes(connection, HnswDoc)
    assert (result.name, result.action) == ("ix_idx_hnsw_docs_embedding_hnsw", "dropped")
    assert _indexes(connection, "idx_hnsw_docs") == {}

    (again,) = vecalchemy.drop_indexes(connection, HnswDoc)
    assert again.action == "absent"

    (rebuilt,) = vecalchemy.build_indexes(connection, HnswDoc)
    assert rebuilt.action == "built"
    assert list(_indexes(connection, "idx_hnsw_docs")) == ["ix_idx_hnsw_docs_embedding_hnsw"]


def test_build_indexes_on_a_core_table(connection: sa.Connection) -> None:
    """A Core Table with embedding_column() works with build_indexes and drop_indexes."""
    docs = Table(
        "idx_core_docs",
        MetaData(),
        Column("id", Integer, primary_key=True),
        embedding_column("embedding", 3, metric="l2"),
    )
    with vecalchemy.defer_indexes():
        docs.create(connection)
    assert [(r.name, r.action) for r in vecalchemy.build_indexes(connection, docs)] == [
        ("ix_idx_core_docs_embedding_hnsw", "built")
    ]
    assert [r.action for r in vecalchemy.drop_indexes(connection, docs)] == ["dropped"]


def test_table_of_refuses_other_objects() -> None:
    """build_indexes needs a mapped class or a Table."""
    assert table_of(HnswDoc) is HnswDoc.__table__
    with pytest.raises(vecalchemy.InvalidArgument, match="expected a mapped class or a Table"):
        table_of("idx_hnsw_docs")
