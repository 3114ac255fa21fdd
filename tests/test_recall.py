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
    """tune's value reaches the target on the tuning and the held-out queries, smaller
    values do not reach it on the tuning ones, and the bisection refines the sweep."""
    queries = list(rng.normal(size=(40, DIM)).astype(np.float32))
    t = vecalchemy.tune(conn, Point.embedding, target=0.9, k=10, queries=queries)
    assert t.setting == "ef_search"
    assert t.reached
    assert t.recall >= 0.9
    values = [step.ef_search for step in t.steps]
    assert values == sorted(values)
    below = max((v for v in values if v < t.value), default=None)
    assert below is not None  # the graph is small enough that ef_search 10 falls short
    assert t.value - below <= max(1, t.value // 10)  # refined to a tenth of the value
    coarse = vecalchemy.tune(conn, Point.embedding, target=0.9, queries=queries, refine=False)
    assert coarse.value in (10, 20, 40, 60, 80, 120, 160, 240, 320, 480, 640, 1000)
    assert coarse.value >= t.value
    plain_means = vecalchemy.tune(
        conn, Point.embedding, target=0.9, queries=queries, confidence=0.5
    )
    assert plain_means.value <= t.value  # the confidence bound only ever asks for more
    assert t.holdout_recall >= 0.9  # the held-out half must reach it too
    again = vecalchemy.tune(conn, Point.embedding, target=0.9, k=10, queries=queries)
    assert (again.value, again.holdout_recall) == (t.value, t.holdout_recall)  # seeded split


def test_tune_sweeps_probes_for_ivfflat(conn: Connection) -> None:
    """For an IVFFlat index, tune sweeps probes."""
    queries = list(rng.normal(size=(20, DIM)).astype(np.float32))
    t = vecalchemy.tune(conn, Cell.embedding, target=0.8, k=10, queries=queries)
    assert t.setting == "probes"
    assert t.reached
    assert t.value in [step.probes for step in t.steps]


def test_bad_arguments(conn: Connection) -> None:
    """Out-of-range targets, holdouts and samples are InvalidSearch, before any query."""
    with pytest.raises(InvalidSearch, match="target must be a recall"):
        vecalchemy.tune(conn, Point.embedding, target=1.5)
    with pytest.raises(InvalidSearch, match="holdout must be a share"):
        vecalchemy.tune(conn, Point.embedding, holdout=1.0)
    with pytest.raises(InvalidSearch, match=r"confidence must be in \[0.5, 1\)"):
        vecalchemy.tune(conn, Point.embedding, confidence=1.0)
    q = list(rng.normal(size=(2, DIM)).astype(np.float32))
    with pytest.raises(InvalidSearch, match="query_keys has 1 keys for 2 queries"):
        vecalchemy.measure_recall(conn, Point.embedding, queries=q, query_keys=[(1,)])
    with pytest.raises(InvalidSearch, match="sample must be a positive integer"):
        vecalchemy.measure_recall(conn, Point.embedding, sample=0)
    conn.execute(sa.text("DELETE FROM recall_points"))
    with pytest.raises(InvalidSearch, match="no queries"):
        vecalchemy.measure_recall(conn, Point.embedding)


def test_cli_tune_on_a_table_vecalchemy_did_not_declare(
    engine: sa.Engine, observed: list[dict[str, str | None]], monkeypatch: pytest.MonkeyPatch
) -> None:
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
        assert result["value"] in [step["value"] for step in result["steps"]]
        out = runner.invoke(main, [*args, "--column", "nope"])
        assert out.exit_code == 1
        assert "table recall_plain has no column nope" in out.output

        # Stored by the CLI's own engine, committed, used by another engine's searches.
        out = runner.invoke(
            main, [*args, "--column", "v", "--target-recall", "0.5", "--store", "--json"]
        )
        assert out.exit_code == 0, out.output
        stored = json.loads(out.output)
        assert stored["stored"] is True
        out = runner.invoke(main, [*args, "--column", "v", "--show", "--json"])
        assert json.loads(out.output)["value"] == stored["value"]
        plain = sa.Table("recall_plain", sa.MetaData(), autoload_with=engine)
        q = rng.normal(size=DIM).astype(np.float32)
        with engine.connect() as conn:
            vecalchemy.search(conn, plain.c.v, q, k=1)
            assert observed[-1]["hnsw.ef_search"] == str(max(stored["value"], 1))
        out = runner.invoke(main, [*args, "--column", "v", "--clear"])
        assert out.exit_code == 0, out.output
        assert out.output.startswith(f"removed ef_search = {stored['value']}")
        monkeypatch.setattr("vecalchemy._engine_state.RECHECK_SECONDS", 0.0)
        with engine.connect() as conn:
            vecalchemy.search(conn, plain.c.v, q, k=1)
            assert observed[-1]["hnsw.ef_search"] == "40"
        out = runner.invoke(main, [*args, "--column", "v", "--show"])
        assert out.output.strip() == "no stored setting for recall_plain.v"
        out = runner.invoke(main, [*args, "--column", "v", "--show", "--clear"])
        assert out.exit_code == 1
        assert "exclude each other" in out.output
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE recall_plain")


# -- stored settings: tune(store=True) and the searches that use them ------------------


def _ef(seen: list[dict[str, str | None]]) -> str | None:
    return seen[-1]["hnsw.ef_search"]


def test_stored_ef_search_is_every_search_s_default(
    conn: Connection, observed: list[dict[str, str | None]]
) -> None:
    """tune(store=True) records its value on the index; search(), a Session, a
    cheatsheet-style select() and measure_recall then use it where no ef_search is
    given, never below the LIMIT, and an explicit ef_search still wins."""
    from sqlalchemy.orm import Session

    queries = list(rng.normal(size=(10, DIM)).astype(np.float32))
    t = vecalchemy.tune(
        conn, Point.embedding, target=0.5, k=10, queries=queries, sweep=[120], store=True
    )
    assert t.reached
    assert t.stored is not None
    assert (t.stored.setting, t.stored.value, t.stored.k) == ("ef_search", 120, 10)
    assert t.stored.recall == t.holdout_recall
    assert t.stored.rows == 4000
    assert vecalchemy.stored_tuning(conn, Point.embedding) == t.stored
    comment = conn.execute(
        sa.text("SELECT obj_description(CAST('ix_recall_points_embedding_hnsw' AS regclass))")
    ).scalar()
    assert '"value": 120' in comment

    q = queries[0]
    vecalchemy.search(conn, Point.embedding, q, k=5)
    assert _ef(observed) == "120"
    vecalchemy.search(conn, Point.embedding, q, k=300)
    assert _ef(observed) == "300"
    vecalchemy.search(conn, Point.embedding, q, k=5, ef_search=50)
    assert _ef(observed) == "50"
    with Session(bind=conn) as session:
        stmt = sa.select(Point).order_by(Point.embedding.l2_distance(q)).limit(10)
        assert len(session.scalars(stmt).all()) == 10
        assert _ef(observed) == "120"

    assert vecalchemy.clear_tuning(conn, Point.embedding) is True
    assert vecalchemy.stored_tuning(conn, Point.embedding) is None
    assert vecalchemy.clear_tuning(conn, Point.embedding) is False
    vecalchemy.search(conn, Point.embedding, q, k=5)
    assert _ef(observed) == "40"


def test_stored_probes_for_ivfflat(conn: Connection, observed: list[dict[str, str | None]]) -> None:
    """An IVFFlat column's stored probes replace sqrt(lists)."""
    queries = list(rng.normal(size=(10, DIM)).astype(np.float32))
    t = vecalchemy.tune(
        conn, Cell.embedding, target=0.1, k=10, queries=queries, sweep=[9], store=True
    )
    assert t.stored is not None
    assert (t.stored.setting, t.stored.value) == ("probes", 9)
    vecalchemy.search(conn, Cell.embedding, queries[0], k=5)
    assert observed[-1]["ivfflat.probes"] == "9"
    vecalchemy.clear_tuning(conn, Cell.embedding)
    vecalchemy.search(conn, Cell.embedding, queries[0], k=5)
    assert observed[-1]["ivfflat.probes"] == "6"  # round(sqrt(40 lists))


def test_nothing_is_stored_below_the_target_or_over_a_comment_of_yours(
    conn: Connection, observed: list[dict[str, str | None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A target not reached stores nothing; an index comment that is not vecalchemy's is
    never overwritten (InvalidArgument, the comment unchanged); a broken record is
    ignored by searches rather than breaking them."""
    queries = list(rng.normal(size=(10, DIM)).astype(np.float32))
    t = vecalchemy.tune(
        conn, Point.embedding, target=1.0, k=10, queries=queries, sweep=[10], store=True
    )
    assert not t.reached
    assert t.stored is None
    assert vecalchemy.stored_tuning(conn, Point.embedding) is None

    conn.exec_driver_sql(
        "COMMENT ON INDEX ix_recall_points_embedding_hnsw IS 'owned by search team'"
    )
    with pytest.raises(vecalchemy.InvalidArgument, match="has a comment of its own"):
        vecalchemy.tune(conn, Point.embedding, target=0.5, queries=queries, sweep=[120], store=True)
    comment = conn.execute(
        sa.text("SELECT obj_description(CAST('ix_recall_points_embedding_hnsw' AS regclass))")
    ).scalar()
    assert comment == "owned by search team"

    # Written by hand (not through this engine): read at the next recheck, here at once.
    monkeypatch.setattr("vecalchemy._engine_state.RECHECK_SECONDS", 0.0)
    conn.exec_driver_sql(
        "COMMENT ON INDEX ix_recall_points_embedding_hnsw IS "
        """'{"vecalchemy": {"tuned": {"setting": "ef_search", "value": "lots"}}}'"""
    )
    assert vecalchemy.stored_tuning(conn, Point.embedding) is None
    assert len(vecalchemy.search(conn, Point.embedding, queries[0], k=5)) == 5
    assert _ef(observed) == "40"


def test_no_index_no_stored_setting(connection: Connection) -> None:
    """stored_tuning on a column without an index in the database says to build one."""
    Base.metadata.create_all(connection)
    connection.exec_driver_sql("DROP INDEX ix_recall_points_embedding_hnsw")
    with pytest.raises(vecalchemy.InvalidArgument, match="has no vector index"):
        vecalchemy.stored_tuning(connection, Point.embedding)


async def test_stored_setting_reaches_async_searches(
    engine: sa.Engine, async_engine: sa.ext.asyncio.AsyncEngine
) -> None:
    """A value stored (and committed) through one engine is used by an async engine's
    asearch(), through either async driver."""
    from tests.conftest import read_settings
    from vecalchemy._sql import NEEDS_ATTR

    table = f"recall_async_{async_engine.dialect.driver}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        conn.exec_driver_sql(f"CREATE TABLE {table} (id int PRIMARY KEY, v vector({DIM}))")
        conn.execute(
            sa.text(f"INSERT INTO {table} VALUES (:i, :v)"),
            [
                {"i": i, "v": str(list(map(float, v)))}
                for i, v in enumerate(rng.normal(size=(300, DIM)))
            ],
        )
        conn.exec_driver_sql(f"CREATE INDEX ON {table} USING hnsw (v vector_l2_ops)")
    seen: list[dict[str, str | None]] = []

    def after(conn: sa.Connection, cursor: object, statement: str, *args: object) -> None:
        if getattr(getattr(args[1], "compiled", None), NEEDS_ATTR, None):
            seen.append(read_settings(conn.connection.dbapi_connection))

    plain = sa.Table(table, sa.MetaData(), autoload_with=engine)
    sa.event.listen(async_engine.sync_engine, "after_cursor_execute", after)
    try:
        with engine.connect() as conn:
            t = vecalchemy.tune(conn, plain.c.v, target=0.5, sample=10, sweep=[70], store=True)
        assert t.stored is not None
        async with async_engine.connect() as aconn:
            hits = await vecalchemy.asearch(aconn, plain.c.v, rng.normal(size=DIM), k=3)
        assert len(hits) == 3
        assert seen[-1]["hnsw.ef_search"] == "70"
    finally:
        sa.event.remove(async_engine.sync_engine, "after_cursor_execute", after)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {table}")


def test_a_sampled_row_does_not_count_finding_itself(
    connection: Connection, observed: list[dict[str, str | None]]
) -> None:
    """A sampled row's searches ask for k + 1 rows (ef_search raised to match) and drop
    the row itself; given queries ask for k. With every vector stored twice, recall@1
    then counts the twin, at distance 0."""
    Base.metadata.create_all(connection)
    data = rng.normal(size=(300, DIM)).astype(np.float32)
    rows = [{"id": i, "group": 0, "embedding": data[i // 2]} for i in range(600)]
    connection.execute(insert(Point), rows)
    connection.exec_driver_sql("ANALYZE recall_points")
    r = vecalchemy.measure_recall(connection, Point.embedding, sample=20, k=10, ef_search=10)
    assert r.queries == 20
    assert {s["hnsw.ef_search"] for s in observed} == {"11"}
    observed.clear()
    vecalchemy.measure_recall(
        connection, Point.embedding, queries=list(data[:5]), k=10, ef_search=10
    )
    assert {s["hnsw.ef_search"] for s in observed} == {"10"}
    twin = vecalchemy.measure_recall(connection, Point.embedding, sample=40, k=1, ef_search=200)
    assert twin.recall == 1.0


def test_recall_by_hand() -> None:
    """recall@k on hand-made results: ids found count, a row tied with the exact k-th
    distance counts, a farther one does not, and a sampled row (``me``) is left out of
    both lists."""
    from types import SimpleNamespace

    from vecalchemy import Hit
    from vecalchemy.search.recall import _recall

    def hits(*pairs: tuple[int, float]) -> list[Hit[SimpleNamespace]]:
        return [Hit(SimpleNamespace(id=i), d, 1 - d) for i, d in pairs]

    exact = hits((1, 0.1), (2, 0.2), (3, 0.3))
    assert _recall(exact, hits((1, 0.1), (2, 0.2), (3, 0.3)), ["id"], None, 3) == 1.0
    assert _recall(exact, hits((1, 0.1), (9, 0.3), (8, 0.5)), ["id"], None, 3) == 2 / 3
    assert _recall(exact, hits((8, 0.5), (7, 0.6)), ["id"], None, 3) == 0.0
    assert _recall(exact, hits((1, 0.1)), ["id"], None, 3) == 1 / 3  # a short result
    me = (1,)
    exact = hits((1, 0.0), (2, 0.1), (3, 0.2), (4, 0.3))
    assert _recall(exact, hits((1, 0.0), (2, 0.1), (3, 0.2), (5, 0.3)), ["id"], me, 3) == 1.0
    assert _recall(exact, hits((2, 0.1), (6, 0.4), (1, 0.0)), ["id"], me, 3) == 1 / 3
    assert _recall([], [], ["id"], None, 3) == 1.0  # nothing to find (a filter left no row)
