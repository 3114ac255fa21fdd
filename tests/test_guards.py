"""Mistakes that cannot be made, or are detected: on every path, and against a database
vecalchemy did not create.

* a distance method of another metric on an Embedding column;
* a model whose metric disagrees with the database's index;
* build_indexes() next to an index that already serves the column;
* ORM and Core writes of a wrong dimension, NaN or (cosine) a zero vector.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import numpy as np
import pytest
import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import HNSW, Embedding

DIM = 8
rng = np.random.default_rng(8)
VECS = rng.normal(size=(200, DIM)).astype(np.float32)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "guard_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(DIM, metric="cosine", index=HNSW())


def _count(session: Session, table: str) -> int:
    return int(session.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


# -- distance methods follow the declared metric -------------------------------------------


def test_a_distance_method_of_another_metric_raises() -> None:
    """select(Doc).order_by(Doc.embedding.l2_distance(q)) on a cosine column: no index of the
    column could serve it, so it is refused, naming the declared metric and the way out."""
    with pytest.raises(vecalchemy.MetricMismatch, match="declared with metric 'cosine'") as info:
        select(Doc).order_by(Doc.embedding.l2_distance(VECS[0])).limit(5)
    assert "exact_distance(q, metric='l2')" in str(info.value)
    for method in ("max_inner_product", "l1_distance"):
        with pytest.raises(vecalchemy.MetricMismatch):
            getattr(Doc.embedding, method)(VECS[0])
    with pytest.raises(vecalchemy.MetricMismatch):
        Doc.__table__.c.embedding.l2_distance(VECS[0])  # the Core column too


def test_the_declared_metric_uses_the_index(session: Session) -> None:
    """The declared metric's method is the indexed distance (and checks the query vector)."""
    Base.metadata.create_all(session.connection())
    session.execute(insert(Doc), [{"id": i, "embedding": v} for i, v in enumerate(VECS)])
    session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    stmt = select(Doc.id).order_by(Doc.embedding.cosine_distance(VECS[3])).limit(5)
    assert vecalchemy.index_used(session, stmt) == "ix_guard_docs_embedding_hnsw"
    assert session.execute(stmt).scalars().first() == 3
    with pytest.raises(vecalchemy.DimensionMismatch):
        Doc.embedding.cosine_distance([0.1, 0.2])
    with pytest.raises(vecalchemy.InvalidVector, match="all zeros"):
        Doc.embedding.cosine_distance([0.0] * DIM)


def test_exact_distance_is_the_explicit_unindexed_way(session: Session) -> None:
    """exact_distance(q, metric=...) computes any supported metric exactly, on purpose."""
    Base.metadata.create_all(session.connection())
    session.execute(insert(Doc), [{"id": i, "embedding": v} for i, v in enumerate(VECS)])
    d = Doc.embedding.exact_distance(VECS[4], metric="l2")
    rows = session.execute(select(Doc.id, d.label("d")).order_by(d).limit(3)).all()
    want = np.argsort(np.linalg.norm(VECS - VECS[4], axis=1))[:3]
    assert [r.id for r in rows] == [int(i) for i in want]
    assert rows[0].d == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(vecalchemy.UnsupportedIndex, match="does not apply"):
        Doc.embedding.exact_distance(VECS[4], metric="hamming")
    with pytest.raises(vecalchemy.UnknownMetric):
        Doc.embedding.exact_distance(VECS[4], metric="manhattanish")


# -- the model against the database -------------------------------------------------------------


class L2Model(DeclarativeBase):
    pass


class WrongDoc(L2Model):
    """The same table, declared with metric='l2': the database's index is cosine."""

    __tablename__ = "guard_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(DIM, metric="l2", index=HNSW())


@pytest.fixture
def cosine_table(engine: Engine) -> Iterator[None]:
    """guard_docs with its cosine index, committed, as another application made it."""
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(Doc), [{"id": i, "embedding": v} for i, v in enumerate(VECS)])
    yield
    Base.metadata.drop_all(engine)


def test_a_model_that_disagrees_with_the_database_is_detected(
    server_url: sa.URL, cosine_table: None
) -> None:
    """The database has vector_cosine_ops, the model says l2: the first search through an
    engine raises MetricMismatch with the fix, instead of a silent sequential scan."""
    eng = vecalchemy.create_engine(server_url)
    try:
        with Session(eng) as s:
            with pytest.raises(vecalchemy.MetricMismatch) as info:
                vecalchemy.search(s, WrongDoc.embedding, VECS[0], k=5)
            message = str(info.value)
            assert "ix_guard_docs_embedding_hnsw" in message
            assert "vector_cosine_ops" in message
            assert "metric='cosine'" in message
            assert "DROP INDEX ix_guard_docs_embedding_hnsw" in message
            s.rollback()
            with pytest.raises(vecalchemy.MetricMismatch):  # bare statements too
                s.execute(vecalchemy.nearest(WrongDoc.embedding, VECS[0], k=5))
            s.rollback()
            # The right model works on the same engine.
            assert vecalchemy.search(s, Doc.embedding, VECS[1], k=1)[0].row.id == 1
    finally:
        eng.dispose()


def test_a_disagreeing_model_is_detected_on_a_core_connection(
    server_url: sa.URL, cosine_table: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The same check on the direct path of a Core Connection: MetricMismatch before the
    query runs, the connection still usable, the right column found."""
    caplog.set_level(logging.DEBUG, logger="vecalchemy.search.direct")
    eng = vecalchemy.create_engine(server_url)
    wrong = WrongDoc.__table__.c.embedding  # type: ignore[attr-defined]
    right = Doc.__table__.c.embedding  # type: ignore[attr-defined]
    try:
        with eng.connect() as conn:
            with pytest.raises(vecalchemy.MetricMismatch, match="vector_cosine_ops"):
                vecalchemy.search(conn, wrong, VECS[0], k=5)
            assert any(r.getMessage().startswith("ran directly") for r in caplog.records)
            conn.rollback()
            assert vecalchemy.search(conn, right, VECS[2], k=1)[0].row.id == 2
    finally:
        eng.dispose()


def test_build_indexes_refuses_to_add_a_second_index(engine: Engine, cosine_table: None) -> None:
    """build_indexes() for the l2 model next to the cosine index: MetricMismatch, and no
    index is created."""
    with pytest.raises(vecalchemy.MetricMismatch, match="vector_cosine_ops"):
        vecalchemy.build_indexes(engine, WrongDoc)
    with engine.connect() as conn:
        names = conn.execute(
            sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'guard_docs'")
        ).scalars()
        assert sorted(names) == ["guard_docs_pkey", "ix_guard_docs_embedding_hnsw"]


def test_build_indexes_does_not_duplicate_an_index_under_another_name(session: Session) -> None:
    """A hand-made index with the same operator class already serves the column: it is
    reported as existing, and nothing is built."""

    class B(DeclarativeBase):
        pass

    class Hand(B):
        __tablename__ = "guard_hand"
        id: Mapped[int] = mapped_column(primary_key=True)
        embedding = Embedding(DIM, metric="l2", index=HNSW())

    conn = session.connection()
    with vecalchemy.defer_indexes():
        B.metadata.create_all(conn)
    conn.exec_driver_sql(
        "CREATE INDEX my_own_index ON guard_hand USING hnsw (embedding vector_l2_ops)"
    )
    (result,) = vecalchemy.build_indexes(conn, Hand)
    assert (result.name, result.action) == ("my_own_index", "exists")
    count = conn.execute(
        sa.text("SELECT count(*) FROM pg_indexes WHERE tablename = 'guard_hand'")
    ).scalar()
    assert count == 2  # the primary key and my_own_index


def test_a_plain_pgvector_table_with_a_hand_made_index(session: Session) -> None:
    """A table vecalchemy did not create, queried through a plain Vector column with
    metric=: a metric that its index cannot serve is refused on first use."""
    conn = session.connection()
    conn.exec_driver_sql(f"CREATE TABLE guard_plain (id int PRIMARY KEY, embedding vector({DIM}))")
    conn.exec_driver_sql(
        "CREATE INDEX guard_plain_ip ON guard_plain USING hnsw (embedding vector_ip_ops)"
    )
    t = sa.Table(
        "guard_plain",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("embedding", Vector(DIM)),
    )
    conn.execute(insert(t), [{"id": i, "embedding": v} for i, v in enumerate(VECS[:20])])
    with pytest.raises(vecalchemy.MetricMismatch, match="vector_ip_ops"):
        vecalchemy.search(session, t.c.embedding, VECS[0], k=3, metric="l2")
    session.rollback()


# -- writes are checked before SQL runs ---------------------------------------------------


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """The statements sent through the engine while the test runs."""
    sent: list[str] = []

    def capture(conn: object, cursor: object, statement: str, *args: object) -> None:
        sent.append(statement)

    sa.event.listen(engine, "before_cursor_execute", capture)
    yield sent
    sa.event.remove(engine, "before_cursor_execute", capture)


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (
            [0.1, 0.2],
            vecalchemy.DimensionMismatch,
            "^a value for column guard_docs.embedding has 2 dimensions but the column has 8",
        ),
        ([math.nan] * DIM, vecalchemy.InvalidVector, "non-finite value"),
        ([0.0] * DIM, vecalchemy.InvalidVector, "all zeros"),
        ("not a vector", vecalchemy.InvalidVector, "not a string"),
    ],
)
def test_orm_writes_are_checked(
    session: Session, statements: list[str], value: object, error: type[Exception], match: str
) -> None:
    """session.add(Doc(embedding=bad)); flush: vecalchemy's error (not the driver's, not
    SQLAlchemy's StatementError) before any INSERT is sent."""
    Base.metadata.create_all(session.connection())
    session.add(Doc(id=1, embedding=VECS[0]))
    session.flush()
    nested = session.begin_nested()
    session.add(Doc(id=2, embedding=value))
    statements.clear()
    with pytest.raises(error, match=match):
        session.flush()
    assert not [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    nested.rollback()
    assert _count(session, "guard_docs") == 1


def test_core_writes_are_checked(session: Session, statements: list[str]) -> None:
    """conn.execute(insert(...)) with a bad vector among good ones: the error comes before
    anything is sent, so the transaction is intact and holds no row."""
    conn = session.connection()
    Base.metadata.create_all(conn)
    rows = [{"id": i, "embedding": v} for i, v in enumerate(VECS[:5])]
    rows.append({"id": 99, "embedding": [1.0] * (DIM + 1)})
    statements.clear()
    with pytest.raises(
        vecalchemy.DimensionMismatch,
        match=r"^a value for column guard_docs\.embedding has 9 dimensions but the column has 8;",
    ):
        conn.execute(insert(Doc.__table__), rows)
    assert statements == []
    assert _count(session, "guard_docs") == 0  # and the transaction still works


def test_a_zero_vector_is_fine_outside_cosine(session: Session) -> None:
    """Only cosine refuses zero vectors (no direction); l2 stores them."""

    class B(DeclarativeBase):
        pass

    class Origin(B):
        __tablename__ = "guard_origin"
        id: Mapped[int] = mapped_column(primary_key=True)
        embedding = Embedding(DIM, metric="l2")

    B.metadata.create_all(session.connection())
    session.add(Origin(id=1, embedding=[0.0] * DIM))
    session.flush()
    assert session.execute(select(func.count()).select_from(Origin)).scalar() == 1
