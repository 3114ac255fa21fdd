"""The query builders emit pgvector's indexable shape, and PostgreSQL uses the index for it.

Index use is checked with EXPLAIN for every metric/storage pair pgvector can index, for
HNSW and IVFFlat, including a vector above 2,000 dimensions (halfvec expression index).
Small test tables make a sequential scan cheaper than any index, so EXPLAIN runs with
``enable_seqscan = off``, as pgvector's own tests do: a query shape that cannot use the
index still gets a sequential scan then. One test uses a table large enough that the
planner picks the index unprompted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy import Connection, Index, Integer, String, event, insert
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from tests.conftest import explain
from vecalchemy import HNSW, Embedding, IVFFlat, nearest
from vecalchemy.metrics import Metric, Storage

rng = np.random.default_rng(7)


@dataclass(frozen=True)
class Case:
    metric: str
    storage: str
    index: str
    dim: int

    @property
    def id(self) -> str:
        return f"{self.metric}-{self.storage}-{self.dim}-{self.index}"


def _cases() -> list[Case]:
    out = []
    for metric in Metric:
        for storage in Storage:
            for method in metric.index_methods(storage):
                dim = {Storage.BIT: 64, Storage.SPARSEVEC: 50}.get(storage, 8)
                out.append(Case(metric.value, storage.value, method.value, dim))
                if storage is Storage.VECTOR:  # above 2,000 dims: halfvec expression index
                    out.append(Case(metric.value, storage.value, method.value, 2048))
    return out


CASES = _cases()


def test_every_indexable_pair_is_covered() -> None:
    """The EXPLAIN matrix covers all 14 metric/storage pairs pgvector can index, + halfvec expr."""
    pairs = {(c.metric, c.storage) for c in CASES}
    assert pairs == {
        *((m, s) for m in ("cosine", "l2", "inner_product", "l1") for s in ("vector", "halfvec")),
        *((m, "sparsevec") for m in ("cosine", "l2", "inner_product", "l1")),
        ("hamming", "bit"),
        ("jaccard", "bit"),
    }
    assert sum(c.index == "ivfflat" for c in CASES) == 3 * 2 + 3 + 1  # + the 3 expr cases
    assert any(c.dim > 2000 and c.index == "ivfflat" for c in CASES)


def _value(case: Case) -> Any:
    if case.storage == "bit":
        return "".join(rng.choice(["0", "1"], size=case.dim))
    v = rng.normal(size=case.dim).astype(np.float32)
    if case.storage == "sparsevec":
        v[rng.random(case.dim) < 0.7] = 0.0
        v[0] = 1.0  # never all zeros
    return v


def _table(case: Case) -> sa.Table:
    md = sa.MetaData()
    index = HNSW(m=4, ef_construction=8) if case.index == "hnsw" else IVFFlat()
    return sa.Table(
        "items",
        md,
        sa.Column("id", Integer, primary_key=True),
        sa.Column("tag", String),
        vecalchemy.embedding_column(
            "embedding", case.dim, metric=case.metric, storage=case.storage, index=index
        ),
    )


def _insert(conn: Connection, table: sa.Table, case: Case, n: int = 120) -> None:
    rows = [{"id": i, "tag": "ab"[i % 2], "embedding": _value(case)} for i in range(n)]
    if case.storage == "sparsevec":
        from pgvector import SparseVector

        for r in rows:
            r["embedding"] = SparseVector(r["embedding"])
    conn.execute(insert(table), rows)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_nearest_uses_the_index(connection: Connection, case: Case) -> None:
    """nearest() (and the same query with a filter added) is served by the vector index."""
    table = _table(case)
    table.metadata.create_all(connection)
    _insert(connection, table, case)
    results = vecalchemy.build_indexes(connection, table)
    assert [r.action for r in results] in (["built"], ["exists"])
    (ix,) = vecalchemy.schema.vector_indexes(table)

    stmt = nearest(table.c.embedding, _value(case), k=5)
    plan = explain(connection, stmt)
    assert f"Index Scan using {ix.name}" in plan, plan
    assert "Sort" not in plan.split("Index Scan")[0], plan  # no re-sort above the scan

    filtered = explain(connection, stmt.where(table.c.tag == "a"))
    assert f"Index Scan using {ix.name}" in filtered, filtered

    rows = connection.execute(stmt).all()
    assert len(rows) == 5
    distances = [r.distance for r in rows]
    assert distances == sorted(distances)


@pytest.mark.parametrize("case", [c for c in CASES if c.index == "hnsw"], ids=lambda c: c.id)
def test_search_runs_the_indexed_shape(connection: Connection, case: Case) -> None:
    """The statement search() actually sends is the indexable one (captured, then EXPLAINed)."""
    table = _table(case)
    table.metadata.create_all(connection)
    _insert(connection, table, case)
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *a: Any) -> None:
        if "ORDER BY" in statement:
            sent.append((statement, params))

    engine = connection.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        hits = vecalchemy.search(connection, table.c.embedding, _value(case), k=3)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert len(hits) == 3
    (statement, params) = sent[0]
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    plan = "\n".join(r[0] for r in connection.exec_driver_sql("EXPLAIN " + statement, params))
    assert "Index Scan using ix_items_embedding_hnsw" in plan, plan


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "query_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    lang: Mapped[str] = mapped_column(String(2))
    embedding = Embedding(32, metric="cosine")
    big = Embedding(3072, metric="inner_product", index=HNSW())


def test_sql_shape_is_order_by_operator_limit() -> None:
    """The compiled SQL orders ascending by the operator on the indexed expression."""
    sql = str(
        nearest(Doc.embedding, np.ones(32), k=7).compile(
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": False}
        )
    )
    assert "query_docs.embedding <=> CAST(%(query_vector)s AS VECTOR(32)) AS distance" in sql
    assert "ORDER BY distance" in sql
    assert "DESC" not in sql
    assert "LIMIT" in sql
    big = str(nearest(Doc.big, np.ones(3072)).compile(dialect=postgresql.dialect()))
    assert (
        "CAST(query_docs.big AS HALFVEC(3072)) <#> CAST(%(query_vector)s AS HALFVEC(3072))" in big
    )


def test_nearest_is_composable(session: Session) -> None:
    """The Select can be extended with where/options and still returns (row, distance)."""
    Base.metadata.create_all(session.connection())
    vecs = rng.normal(size=(40, 32)).astype(np.float32)
    session.add_all(Doc(id=i, lang="en" if i % 2 else "de", embedding=vecs[i]) for i in range(40))
    session.flush()
    stmt = nearest(Doc.embedding, vecs[3], k=4).where(Doc.lang == "en")
    rows = session.execute(stmt).all()
    assert rows[0][0].id == 3
    assert all(doc.lang == "en" for doc, _ in rows)
    assert rows[0].distance == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_large_table_uses_index_without_hints(connection: Connection) -> None:
    """On a realistically sized table the planner picks the HNSW index on its own."""
    md = sa.MetaData()
    t = sa.Table(
        "many",
        md,
        sa.Column("id", Integer, primary_key=True),
        vecalchemy.embedding_column("embedding", 16, index=HNSW(m=8, ef_construction=16)),
    )
    md.create_all(connection)
    vecs = rng.normal(size=(20_000, 16)).astype(np.float32)
    connection.execute(insert(t), [{"id": i, "embedding": v} for i, v in enumerate(vecs)])
    connection.exec_driver_sql("ANALYZE many")
    stmt = nearest(t.c.embedding, vecs[0], k=10)
    compiled = stmt.compile(dialect=connection.dialect)
    plan = "\n".join(
        r[0] for r in connection.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params)
    )
    assert "Index Scan using ix_many_embedding_hnsw" in plan, plan


def test_cheatsheet_plain_column_with_hand_written_index(connection: Connection) -> None:
    """A plain pgvector column with the cheatsheet's Index is searched by that index's metric."""

    class B(DeclarativeBase):
        pass

    class Item(B):
        __tablename__ = "cheat_items"
        id: Mapped[int] = mapped_column(primary_key=True)
        embedding: Mapped[Any] = mapped_column(Vector(8))
        __table_args__ = (
            Index(
                "ix_cheat_items_hnsw",
                "embedding",
                postgresql_using="hnsw",
                postgresql_ops={"embedding": "vector_l2_ops"},
                postgresql_with={"m": 16, "ef_construction": 64},
            ),
        )

    B.metadata.create_all(connection)
    vecs = rng.normal(size=(50, 8)).astype(np.float32)
    connection.execute(
        insert(Item.__table__), [{"id": i, "embedding": v} for i, v in enumerate(vecs)]
    )
    stmt = nearest(Item.embedding, vecs[5], k=3)  # metric inferred from vector_l2_ops
    assert "<->" in str(stmt.compile(dialect=postgresql.dialect()))
    plan = explain(connection, stmt)
    assert "Index Scan using ix_cheat_items_hnsw" in plan, plan
    with pytest.raises(vecalchemy.MetricMismatch, match="vector_l2_ops"):
        nearest(Item.embedding, vecs[5], metric="cosine")


def test_plain_column_without_index_needs_metric() -> None:
    """Without Embedding() or an index to read it from, metric= is required."""

    class B(DeclarativeBase):
        pass

    class Plain(B):
        __tablename__ = "plain"
        id: Mapped[int] = mapped_column(primary_key=True)
        embedding: Mapped[Any] = mapped_column(Vector(3))

    with pytest.raises(vecalchemy.MetricRequired, match="pass metric="):
        nearest(Plain.embedding, [1, 2, 3])
    sql = str(
        nearest(Plain.embedding, [1, 2, 3], metric="l2").compile(dialect=postgresql.dialect())
    )
    assert "plain.embedding <-> CAST(%(query_vector)s AS VECTOR(3))" in sql


def test_core_column_leaves_out_vectors() -> None:
    """A Core column search selects the table's other columns, vectors only on request."""
    t = Doc.__table__
    cols = nearest(t.c.embedding, np.ones(32)).selected_columns.keys()
    assert list(cols) == ["id", "lang", "distance"]
    cols = nearest(t.c.embedding, np.ones(32), load_embedding=True).selected_columns.keys()
    assert list(cols) == ["id", "lang", "embedding", "big", "distance"]
