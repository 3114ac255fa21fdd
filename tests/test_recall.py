"""measure_recall compares the index with exact search on the same queries; tune finds
the smallest ef_search (or probes) that reaches a recall target and checks it on
held-out queries."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import Connection, insert
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import vecalchemy
from vecalchemy import HNSW, Embedding, InvalidSearch, IVFFlat

DIM = 24
rng = np.random.default_rng(7)


class Base(DeclarativeBase):
    pass


class Point(Base):
    __tablename__ = "recall_points"
    id: Mapped[int] = mapped_column(primary_key=True)
    group: Mapped[int]
    embedding = Embedding(DIM, metric="l2", index=HNSW(m=8, ef_construction=32))


class Cell(Base):
    __tablename__ = "recall_cells"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(DIM, metric="l2", index=IVFFlat(lists=40))


@pytest.fixture
def conn(connection: Connection) -> Connection:
    Base.metadata.create_all(connection)
    data = rng.normal(size=(4000, DIM)).astype(np.float32)
    rows = [{"id": i, "group": i % 4, "embedding": v} for i, v in enumerate(data)]
    connection.execute(insert(Point), rows)
    connection.execute(insert(Cell), [{"id": r["id"], "embedding": r["embedding"]} for r in rows])
    vecalchemy.build_indexes(connection, Cell)
    connection.exec_driver_sql("ANALYZE recall_points; ANALYZE recall_cells")
    return connection


def test_recall_grows_with_ef_search_and_is_exact_with_a_large_one(conn: Connection) -> None:
    """A small graph (m=8, ef_construction=32) misses neighbours at ef_search 10 and finds
    nearly all at 400; the exact latency and the per-query recalls are reported."""
    queries = list(rng.normal(size=(30, DIM)).astype(np.float32))
    low = vecalchemy.measure_recall(conn, Point.embedding, queries=queries, k=10, ef_search=10)
    high = vecalchemy.measure_recall(conn, Point.embedding, queries=queries, k=10, ef_search=400)
    assert low.recall < high.recall
    assert high.recall >= 0.95
    assert len(low.per_query) == 30
    assert low.queries == 30
    assert low.exact_ms > 0
    assert low.index_ms > 0


def test_recall_with_a_filter_and_sampled_queries(conn: Connection) -> None:
    """Sampled queries (the column's own vectors) and a filter applied to both sides."""
    r = vecalchemy.measure_recall(
        conn, Point.embedding, sample=20, k=5, where=Point.group == 1, ef_search=200
    )
    assert r.queries == 20
    assert 0.5 < r.recall <= 1.0


def test_tune_finds_the_smallest_setting_that_reaches_the_target(conn: Connection) -> None:
    """tune's value reaches the target on the tuning queries, the value before it in the
    sweep does not, and the held-out recall is measured at the chosen value."""
    queries = list(rng.normal(size=(40, DIM)).astype(np.float32))
    t = vecalchemy.tune(conn, Point.embedding, target=0.9, k=10, queries=queries)
    assert t.setting == "ef_search"
    assert t.reached
    assert t.recall >= 0.9
    assert t.steps[-1].ef_search == t.value
    assert all(step.recall < 0.9 for step in t.steps[:-1])
    again = vecalchemy.measure_recall(
        conn, Point.embedding, queries=queries[20:], k=10, ef_search=t.value
    )
    assert again.recall == t.holdout_recall


def test_tune_sweeps_probes_for_ivfflat(conn: Connection) -> None:
    """For an IVFFlat index, tune sweeps probes."""
    queries = list(rng.normal(size=(20, DIM)).astype(np.float32))
    t = vecalchemy.tune(conn, Cell.embedding, target=0.8, k=10, queries=queries)
    assert t.setting == "probes"
    assert t.reached
    assert t.steps[-1].probes == t.value


def test_bad_arguments(conn: Connection) -> None:
    """Out-of-range targets, holdouts and samples are InvalidSearch, before any query."""
    with pytest.raises(InvalidSearch, match="target must be a recall"):
        vecalchemy.tune(conn, Point.embedding, target=1.5)
    with pytest.raises(InvalidSearch, match="holdout must be a share"):
        vecalchemy.tune(conn, Point.embedding, holdout=1.0)
    with pytest.raises(InvalidSearch, match="sample must be a positive integer"):
        vecalchemy.measure_recall(conn, Point.embedding, sample=0)
    conn.execute(sa.text("DELETE FROM recall_points"))
    with pytest.raises(InvalidSearch, match="no queries"):
        vecalchemy.measure_recall(conn, Point.embedding)


def test_cli_tune_on_a_table_vecalchemy_did_not_declare(engine: sa.Engine) -> None:
    """vecalchemy tune --table --column on a plain table (metric from its index's
    operator class) prints the sweep as JSON; an unknown column is a clear error."""
    import json

    from click.testing import CliRunner

    from vecalchemy.cli import main

    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS recall_plain")
        conn.exec_driver_sql(f"CREATE TABLE recall_plain (id int PRIMARY KEY, v vector({DIM}))")
        data = rng.normal(size=(1500, DIM)).astype(np.float32)
        conn.execute(
            sa.text("INSERT INTO recall_plain VALUES (:i, :v)"),
            [{"i": i, "v": str(list(map(float, v)))} for i, v in enumerate(data)],
        )
        conn.exec_driver_sql(
            "CREATE INDEX ON recall_plain USING hnsw (v vector_l2_ops) WITH (m = 8)"
        )
    try:
        url = engine.url.render_as_string(hide_password=False)
        runner = CliRunner()
        args = ["tune", "--url", url, "--table", "recall_plain", "--sample", "20"]
        out = runner.invoke(main, [*args, "--column", "v", "--target-recall", "0.9", "--json"])
        assert out.exit_code == 0, out.output
        result = json.loads(out.output)
        assert result["setting"] == "ef_search"
        assert result["reached"] is True
        assert result["steps"][-1]["value"] == result["value"]
        out = runner.invoke(main, [*args, "--column", "nope"])
        assert out.exit_code == 1
        assert "table recall_plain has no column nope" in out.output
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE recall_plain")
