"""vecalchemy.doctor(queries=...) plans an application's own queries with EXPLAIN (never
runs them) and finds each query mistake (VA500-VA505) in a query written to have exactly
it, and nothing in the same query written correctly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import vecalchemy
from tests.test_engine import login_role
from vecalchemy.cli import main
from vecalchemy.doctor import split_queries

ROWS = 20_000


@pytest.fixture(scope="module")
def url(module_db_url: sa.URL, module_db: sa.Engine) -> sa.URL:
    """Tables vecalchemy did not create: qd (HNSW l2 on embedding, a B-tree on cat, none
    on tag, jsonb meta) and qh (a halfvec expression index only)."""
    with module_db.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE qd (id int PRIMARY KEY, cat text, tag text, meta jsonb, "
            "embedding vector(3))"
        )
        conn.exec_driver_sql(
            "INSERT INTO qd SELECT g, 'c' || (g %% 10), 't' || (g %% 10), "
            "jsonb_build_object('k', g %% 10), "
            f"ARRAY[random(), random(), random()]::vector FROM generate_series(1, {ROWS}) g"
        )
        conn.exec_driver_sql("CREATE INDEX qd_embedding ON qd USING hnsw (embedding vector_l2_ops)")
        conn.exec_driver_sql("CREATE INDEX qd_cat ON qd (cat)")
        conn.exec_driver_sql("CREATE TABLE qh (id int PRIMARY KEY, embedding vector(3))")
        conn.exec_driver_sql(
            "INSERT INTO qh SELECT g, ARRAY[random(), random(), random()]::vector "
            f"FROM generate_series(1, {ROWS}) g"
        )
        conn.exec_driver_sql(
            "CREATE INDEX qh_half ON qh USING hnsw ((embedding::halfvec(3)) halfvec_l2_ops)"
        )
        conn.exec_driver_sql("ANALYZE qd")
        conn.exec_driver_sql("ANALYZE qh")
    return module_db_url


@pytest.fixture
def plain(url: sa.URL) -> Iterator[sa.Engine]:
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()


def found(engine: sa.Engine | sa.Connection, *queries: str, limit: int = 10) -> list[str]:
    """The codes of the query findings (VA5xx) for ``queries``."""
    return [
        f.code
        for f in vecalchemy.doctor(engine, queries=list(queries), limit=limit)
        if f.code.startswith("VA5")
    ]


def test_a_correct_query_has_no_findings(plain: sa.Engine) -> None:
    """The cheatsheet's query: the index's operator, a LIMIT within ef_search."""
    assert found(plain, "SELECT id FROM qd ORDER BY embedding <-> $1 LIMIT 10") == []


def test_operator_the_index_does_not_serve(plain: sa.Engine) -> None:
    """VA501: <=> on an l2 index scans the table; the fix names the opclass to build."""
    [f] = vecalchemy.doctor(plain, queries=["SELECT id FROM qd ORDER BY embedding <=> $1 LIMIT 5"])
    assert (f.code, f.severity, f.name) == ("VA501", "error", "query-operator-not-indexed")
    assert f.object == '"public"."qd"."embedding"'
    assert "orders by <=> (cosine), but index qd_embedding uses vector_l2_ops" in f.message
    assert 'USING hnsw ("embedding" vector_cosine_ops)' in f.fix


def test_expression_index_needs_the_same_expression(plain: sa.Engine) -> None:
    """VA501 for ORDER BY embedding <-> on a table indexed on embedding::halfvec(3); the
    ORDER BY on the indexed expression is clean."""
    [f] = vecalchemy.doctor(plain, queries=["SELECT id FROM qh ORDER BY embedding <-> $1 LIMIT 5"])
    assert f.code == "VA501"
    assert "its index qh_half is on" in f.message
    assert "halfvec(3)" in f.fix
    ok = "SELECT id FROM qh ORDER BY embedding::halfvec(3) <-> $1::halfvec(3) LIMIT 5"
    assert found(plain, ok) == []


def test_distance_order_without_limit(plain: sa.Engine) -> None:
    """VA502: a warning while the table is scanned and sorted, an error once the planner
    serves it from the index (enable_seqscan off here; random_page_cost does the same),
    where the result is cut to ef_search rows."""
    query = "SELECT id FROM qd ORDER BY embedding <-> $1"
    [f] = vecalchemy.doctor(plain, queries=[query])
    assert (f.code, f.severity) == ("VA502", "warning")
    assert "without a LIMIT" in f.message
    with plain.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        conn.commit()
        [f] = [f for f in vecalchemy.doctor(conn, queries=[query]) if f.code.startswith("VA5")]
    assert (f.code, f.severity) == ("VA502", "error")
    assert "through the vector index" in f.message
    assert found(plain, query + " LIMIT 10") == []


def test_limit_above_ef_search(plain: sa.Engine) -> None:
    """VA503 for LIMIT 100 with ef_search 40 and iterative scans off; none for LIMIT 40, a
    parameter LIMIT is planned at ``limit``, and iterative scans clear it."""
    [f] = vecalchemy.doctor(
        plain, queries=["SELECT id FROM qd ORDER BY embedding <-> $1 LIMIT 100"]
    )
    assert (f.code, f.severity) == ("VA503", "error")
    assert "asks for 100 rows" in f.message
    assert "hnsw.ef_search is 40" in f.message
    assert "SET hnsw.ef_search = 100" in f.fix
    assert found(plain, "SELECT id FROM qd ORDER BY embedding <-> $1 LIMIT 40") == []
    param = "SELECT id FROM qd ORDER BY embedding <-> $1 LIMIT $2"
    assert found(plain, param) == []
    assert found(plain, param, limit=200) == ["VA503"]
    with plain.connect() as conn:
        conn.exec_driver_sql("SET hnsw.iterative_scan = strict_order")
        conn.commit()
        assert found(conn, param, limit=200) == []


def test_filter_without_iterative_scan_and_without_an_index(plain: sa.Engine) -> None:
    """A filter on tag (no index) through the HNSW scan: VA504 (iterative scans off) and
    VA505 (no index leads with tag). Filtering on cat (a B-tree) is no VA505, iterative
    scans on clear VA504."""
    query = "SELECT id FROM qd WHERE tag = $2 ORDER BY embedding <-> $1 LIMIT 10"
    findings = {f.code: f for f in vecalchemy.doctor(plain, queries=[query])}
    assert set(findings) == {"VA504", "VA505"}
    assert "with hnsw.iterative_scan off" in findings["VA504"].message
    assert "SET hnsw.iterative_scan = strict_order" in findings["VA504"].fix
    assert findings["VA505"].object == '"public"."qd"."tag"'
    assert findings["VA505"].fix == 'CREATE INDEX CONCURRENTLY ON "public"."qd" ("tag");'
    with plain.connect() as conn:
        conn.exec_driver_sql("SET hnsw.iterative_scan = strict_order")
        conn.commit()
        assert found(conn, query) == ["VA505"]
        on_cat = "SELECT id FROM qd WHERE cat = $2 ORDER BY embedding <-> $1 LIMIT 10"
        assert found(conn, on_cat) == []


def test_jsonb_filter_asks_for_a_gin_index(plain: sa.Engine, url: sa.URL) -> None:
    """A metadata filter without an index on meta: VA505 with a GIN fix; none with it."""
    query = "SELECT id FROM qd WHERE meta @> $2 ORDER BY embedding <-> $1 LIMIT 10"
    [f] = [f for f in vecalchemy.doctor(plain, queries=[query]) if f.code == "VA505"]
    assert f.fix == 'CREATE INDEX CONCURRENTLY ON "public"."qd" USING gin ("meta" jsonb_path_ops);'
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE INDEX qd_meta ON qd USING gin (meta jsonb_path_ops)")
        assert "VA505" not in found(plain, query)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX qd_meta")
        engine.dispose()


def test_placeholder_styles_and_files(plain: sa.Engine) -> None:
    """%s, %(name)s, :name and ? parameters plan like $1; a SQL file is split at
    semicolons outside quotes, dollar quotes and comments."""
    for query in (
        "SELECT id FROM qd ORDER BY embedding <=> %s LIMIT 5",
        "SELECT id FROM qd ORDER BY embedding <=> %(q)s LIMIT 5",
        "SELECT id FROM qd ORDER BY embedding <=> :q LIMIT 5",
        "SELECT id FROM qd ORDER BY embedding <=> ? LIMIT 5",
        "SELECT id FROM qd ORDER BY embedding::vector(3) <=> CAST(:q AS vector) LIMIT 5",
    ):
        assert found(plain, query) == ["VA501"], query
    text = """
    -- the search; with a ; in a comment
    SELECT id FROM qd WHERE cat = 'a;b' ORDER BY embedding <-> $1 LIMIT 10;
    /* block; comment */ SELECT $tag$ ; $tag$ AS s;
    SELECT "odd;name" FROM (SELECT 1 AS "odd;name") t
    """
    assert split_queries(text) == [
        "SELECT id FROM qd WHERE cat = 'a;b' ORDER BY embedding <-> $1 LIMIT 10",
        "SELECT $tag$ ; $tag$ AS s",
        'SELECT "odd;name" FROM (SELECT 1 AS "odd;name") t',
    ]


def test_unplannable_queries_are_reported_and_nothing_runs(plain: sa.Engine, url: sa.URL) -> None:
    """VA500 for a missing table, a syntax error and a table the role may not read; the
    queries after them are still checked; an INSERT is planned, never run."""
    with login_role(url) as role:
        engine = sa.create_engine(url.set(username=role))
        try:
            findings = vecalchemy.doctor(
                engine,
                queries=[
                    "SELECT id FROM nope ORDER BY embedding <-> $1 LIMIT 5",
                    "SELEC 1",
                    "SELECT id FROM qd ORDER BY embedding <-> $1 LIMIT 5",
                ],
            )
        finally:
            engine.dispose()
    va500 = [f for f in findings if f.code == "VA500"]
    assert [f.object for f in va500] == ["query 1", "query 2", "query 3"]
    assert 'relation "nope" does not exist' in va500[0].message
    assert "syntax error" in va500[1].message
    assert "permission denied for table qd" in va500[2].message
    with plain.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM qd")).scalar()
    insert = "INSERT INTO qd (id, embedding) VALUES (-1, '[1,2,3]')"
    assert found(plain, insert, "SELECT id FROM qd ORDER BY embedding <=> $1 LIMIT 5") == ["VA501"]
    with plain.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM qd")).scalar() == before


def test_bad_arguments(plain: sa.Engine) -> None:
    with pytest.raises(vecalchemy.InvalidArgument, match="not one string"):
        vecalchemy.doctor(plain, queries="SELECT 1")  # type: ignore[arg-type]
    with pytest.raises(vecalchemy.InvalidArgument, match="limit must be a positive integer"):
        vecalchemy.doctor(plain, queries=["SELECT 1"], limit=0)


def test_cli_query_file(url: sa.URL, tmp_path: Path) -> None:
    """vecalchemy doctor --query-file: findings as JSON and exit 1 on an error; a missing
    or empty file is a clear error."""
    queries = tmp_path / "queries.sql"
    queries.write_text(
        "SELECT id FROM qd ORDER BY embedding <-> $1 LIMIT 10;\n"
        "SELECT id FROM qd ORDER BY embedding <=> $1 LIMIT 10;\n"
    )
    runner = CliRunner()
    base = ["doctor", "--url", url.render_as_string(hide_password=False), "--table", "qd"]
    out = runner.invoke(main, [*base, "--query-file", str(queries), "--json"])
    assert out.exit_code == 1, out.output
    codes = [f["code"] for f in json.loads(out.output)]
    assert codes == ["VA501"]
    out = runner.invoke(main, [*base, "--query-file", str(queries)])
    assert out.exit_code == 1
    assert "VA501" in out.output
    assert "query-operator-not-indexed" in out.output
    empty = tmp_path / "empty.sql"
    empty.write_text("-- nothing\n")
    out = runner.invoke(main, [*base, "--query-file", str(empty)])
    assert out.exit_code == 1
    assert "holds no SQL statements" in out.output
    out = runner.invoke(main, [*base, "--query-file", str(tmp_path / "missing.sql")])
    assert out.exit_code == 2
    assert "does not exist" in out.output
