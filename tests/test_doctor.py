"""vecalchemy.doctor finds each pgvector mistake in a database built to have exactly it,
and nothing in a clean one; it runs read-only, also as a role with no rights on the
tables, and in a database without the extension."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import vecalchemy
from tests.test_engine import fresh_database, login_role
from vecalchemy import Embedding
from vecalchemy.cli import main


@pytest.fixture(scope="module")
def url(module_db_url: sa.URL, module_db: sa.Engine) -> sa.URL:
    with module_db.connect():  # creates the extension
        pass
    return module_db_url


@pytest.fixture
def plain(url: sa.URL) -> Iterator[sa.Engine]:
    """A plain SQLAlchemy engine (AUTOCOMMIT), as on a database vecalchemy did not create."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def table(plain: sa.Engine) -> Iterator[str]:
    name = f"doc_{uuid.uuid4().hex[:8]}"
    yield name
    with plain.connect() as conn:
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')


def codes(engine: sa.Engine, table: str) -> list[str]:
    return [f.code for f in vecalchemy.doctor(engine, table=table)]


def run(engine: sa.Engine, *statements: str) -> None:
    with engine.connect() as conn:
        for stmt in statements:
            conn.exec_driver_sql(stmt)


def fill(n: int, dim: int = 8) -> str:
    return (
        f"SELECT g, (SELECT array_agg(random())::real[] FROM generate_series(1, {dim})"
        " WHERE g > 0)::vector FROM generate_series(1, " + str(n) + ") g"
    )


def test_a_clean_table_has_no_findings(plain: sa.Engine, table: str) -> None:
    """A vector(8) column with one valid HNSW index: nothing to report."""
    run(
        plain,
        f'CREATE TABLE "{table}" (id int PRIMARY KEY, embedding vector(8))',
        f'INSERT INTO "{table}" {fill(100)}',
        f'CREATE INDEX ON "{table}" USING hnsw (embedding vector_cosine_ops)',
        f'ANALYZE "{table}"',
    )
    assert codes(plain, table) == []


def test_vector_without_dimensions(plain: sa.Engine, table: str) -> None:
    """VA201 for a vector column without (n), with the ALTER that fixes it."""
    run(plain, f'CREATE TABLE "{table}" (id int, embedding vector)')
    [f] = vecalchemy.doctor(plain, table=table)
    assert (f.code, f.severity, f.name) == ("VA201", "error", "vector-without-dimensions")
    assert f.object == f'"public"."{table}"."embedding"'
    assert f'ALTER TABLE "public"."{table}" ALTER COLUMN "embedding" TYPE vector(<dim>)' in f.fix


def test_too_many_dimensions_without_halfvec(plain: sa.Engine, table: str) -> None:
    """VA202 for vector(3072) with no index, gone once the halfvec expression index
    exists; its 12 KB values are also out of line (VA203, fixed by halfvec storage)."""
    run(plain, f'CREATE TABLE "{table}" (id int, embedding vector(3072))')
    found = {f.code: f for f in vecalchemy.doctor(plain, table=table)}
    assert sorted(found) == ["VA202", "VA203"]
    assert "halfvec(3072)) halfvec_cosine_ops" in found["VA202"].fix
    assert found["VA203"].fix.startswith("store it as halfvec(3072)")
    run(
        plain,
        f'CREATE INDEX ON "{table}" USING hnsw ((embedding::halfvec(3072)) halfvec_cosine_ops)',
    )
    assert codes(plain, table) == ["VA203"]


def test_duplicate_vector_index(plain: sa.Engine, table: str) -> None:
    """VA301 for a second index on the same expression; the first is not reported."""
    run(
        plain,
        f'CREATE TABLE "{table}" (id int, embedding vector(8))',
        f'CREATE INDEX "{table}_a" ON "{table}" USING hnsw (embedding vector_cosine_ops)',
        f'CREATE INDEX "{table}_b" ON "{table}" USING hnsw (embedding vector_cosine_ops)',
    )
    [f] = vecalchemy.doctor(plain, table=table)
    assert f.code == "VA301"
    assert f.object == f'"public"."{table}_b"'
    assert f.fix == f'DROP INDEX CONCURRENTLY "public"."{table}_b";'


def test_invalid_index_from_a_cancelled_concurrent_build(plain: sa.Engine, table: str) -> None:
    """VA302 for the index a cancelled CREATE INDEX CONCURRENTLY leaves behind."""
    run(
        plain,
        f'CREATE TABLE "{table}" (id int, embedding vector(8))',
        f'INSERT INTO "{table}" {fill(20_000)}',
    )
    with plain.connect() as conn:
        conn.exec_driver_sql("SET statement_timeout = '50ms'")
        with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
            conn.exec_driver_sql(
                f'CREATE INDEX CONCURRENTLY "{table}_x" ON "{table}" USING hnsw'
                " (embedding vector_l2_ops)"
            )
    [f] = vecalchemy.doctor(plain, table=table)
    assert (f.code, f.severity) == ("VA302", "error")
    assert "REINDEX INDEX CONCURRENTLY" in f.fix


def test_ivfflat_built_on_an_empty_table(plain: sa.Engine, table: str) -> None:
    """VA303 for an IVFFlat index built with 100 lists on an empty table that then got
    2,000 rows (the rule gives 2); none for one built with lists from the rule."""
    run(
        plain,
        f'CREATE TABLE "{table}" (id int, embedding vector(8))',
        f'CREATE INDEX "{table}_ivf" ON "{table}" USING ivfflat (embedding vector_l2_ops)',
        f'INSERT INTO "{table}" {fill(2_000)}',
        f'ANALYZE "{table}"',
    )
    [f] = vecalchemy.doctor(plain, table=table)
    assert f.code == "VA303"
    assert "100 lists for about 2,000 rows" in f.message
    assert "WITH (lists = 2)" in f.fix
    run(
        plain,
        f'DROP INDEX "{table}_ivf"',
        f'CREATE INDEX ON "{table}" USING ivfflat (embedding vector_l2_ops) WITH (lists = 2)',
    )
    assert codes(plain, table) == []


def test_dead_tuples(plain: sa.Engine, table: str) -> None:
    """VA304 after deleting most rows of an indexed table; none after VACUUM."""
    run(
        plain,
        f'CREATE TABLE "{table}" (id int, embedding vector(8)) WITH (autovacuum_enabled = false)',
        f'INSERT INTO "{table}" {fill(5_000)}',
        f'CREATE INDEX ON "{table}" USING hnsw (embedding vector_l2_ops)',
        f'DELETE FROM "{table}" WHERE id > 1000',
        "SELECT pg_stat_force_next_flush()",
    )
    [f] = vecalchemy.doctor(plain, table=table)
    assert f.code == "VA304"
    assert "4,000 dead rows against 1,000 live" in f.message
    run(plain, f'VACUUM (ANALYZE) "{table}"', "SELECT pg_stat_force_next_flush()")
    assert codes(plain, table) == []


def test_random_page_cost(server_url: sa.URL) -> None:
    """VA401 where random_page_cost is 1.1; none at the default 4."""
    with fresh_database(server_url) as url:
        engine = sa.create_engine(url)
        try:
            assert "VA401" not in [f.code for f in vecalchemy.doctor(engine)]
            with engine.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{url.database}" SET random_page_cost = 1.1')
                conn.commit()
            engine.dispose()
            found = {f.code: f for f in vecalchemy.doctor(engine)}
            assert found["VA401"].message == "random_page_cost = 1.1"
        finally:
            engine.dispose()


def test_extension_missing_and_old(server_url: sa.URL) -> None:
    """VA101 in a database without the extension (with the CREATE EXTENSION fix); VA102
    for pgvector 0.7.4, naming the features it lacks."""
    with fresh_database(server_url) as url:
        engine = sa.create_engine(url)
        try:
            [f] = vecalchemy.doctor(engine)
            assert (f.code, f.fix) == ("VA101", "CREATE EXTENSION vector;")
            with engine.connect() as conn:
                conn.exec_driver_sql("CREATE EXTENSION vector")
                conn.exec_driver_sql(
                    "UPDATE pg_extension SET extversion = '0.7.4' WHERE extname = 'vector'"
                )
                conn.commit()
            [f] = vecalchemy.doctor(engine)
            assert f.code == "VA102"
            assert "iterative index scans" in f.message
        finally:
            engine.dispose()


def test_runs_read_only_as_a_role_without_rights(url: sa.URL, plain: sa.Engine, table: str) -> None:
    """A role with no rights on the table gets the same findings, and doctor's
    transaction is READ ONLY (a write in it fails)."""
    run(plain, f'CREATE TABLE "{table}" (id int, embedding vector)')
    with login_role(url) as role:
        weak = sa.create_engine(url.set(username=role))
        try:
            assert codes(weak, table) == ["VA201"]
            with weak.connect() as conn:
                vecalchemy.doctor(conn, table=table)
                with pytest.raises(sa.exc.InternalError, match="read-only transaction"):
                    conn.exec_driver_sql("CREATE TEMP TABLE x (i int)")
        finally:
            weak.dispose()


def test_cli(url: sa.URL, plain: sa.Engine, table: str) -> None:
    """vecalchemy doctor --json lists the findings and exits 1 on an error; --fail-on
    never exits 0; a clean table prints that nothing was found."""
    run(plain, f'CREATE TABLE "{table}" (id int, embedding vector)')
    text = url.render_as_string(hide_password=False)
    runner = CliRunner()
    out = runner.invoke(main, ["doctor", "--url", text, "--table", table, "--json"])
    assert out.exit_code == 1
    [f] = json.loads(out.output)
    assert f["code"] == "VA201"
    assert f["name"] == "vector-without-dimensions"
    out = runner.invoke(main, ["doctor", "--url", text, "--table", table, "--fail-on", "never"])
    assert out.exit_code == 0
    assert "VA201" in out.output
    out = runner.invoke(main, ["doctor", "--url", text, "--table", "no_such_table"])
    assert out.exit_code == 0
    assert out.output.strip() == "no pgvector mistakes found"


def test_toasted_vectors(plain: sa.Engine, table: str) -> None:
    """VA203 for vector(1000) (4 KB values, stored out of line); none once it is PLAIN."""
    run(plain, f'CREATE TABLE "{table}" (id int, embedding vector(1000))')
    [f] = vecalchemy.doctor(plain, table=table)
    assert f.code == "VA203"
    assert "4,008 bytes" in f.message
    assert f.fix.endswith('ALTER COLUMN "embedding" SET STORAGE PLAIN;')
    run(plain, f'ALTER TABLE "{table}" ALTER COLUMN embedding SET STORAGE PLAIN')
    assert codes(plain, table) == []


def test_vectors_toasted_by_wide_rows(plain: sa.Engine, table: str) -> None:
    """VA203 for vector(384) (1.5 KB, under the threshold) moved out of line by a wide
    text column beside it, seen in the statistics; none once the vectors are MAIN and
    the table is rewritten."""
    run(
        plain,
        f'CREATE TABLE "{table}" (id int, body text, embedding vector(384))',
        f'ALTER TABLE "{table}" ALTER COLUMN body SET STORAGE EXTERNAL',  # not compressed
        f'INSERT INTO "{table}" SELECT i, repeat(md5(i::text), 40), '
        "(SELECT array_agg(random())::vector(384) FROM generate_series(1, 384) WHERE i > 0) "
        "FROM generate_series(1, 50) i",
    )
    assert codes(plain, table) == []  # no statistics yet: nothing is claimed
    run(plain, f'ANALYZE "{table}"')
    [f] = vecalchemy.doctor(plain, table=table)
    assert f.code == "VA203"
    assert "average 18 bytes" in f.message
    assert 'ALTER COLUMN "embedding" SET STORAGE MAIN;' in f.fix
    run(plain, f'ALTER TABLE "{table}" ALTER COLUMN embedding SET STORAGE MAIN')
    run(plain, f'VACUUM FULL "{table}"')
    run(plain, f'ANALYZE "{table}"')
    assert codes(plain, table) == []


def test_hnsw_graph_over_maintenance_work_mem(plain: sa.Engine, table: str) -> None:
    """VA305 (info) when the HNSW graph of 3,000 rows would not fit in a 1 MB
    maintenance_work_mem; none at the server's setting."""
    run(
        plain,
        f'CREATE TABLE "{table}" (id int, embedding vector(64))',
        f'INSERT INTO "{table}" {fill(3_000, 64)}',
        f'CREATE INDEX "{table}_h" ON "{table}" USING hnsw (embedding vector_l2_ops)',
        f'ANALYZE "{table}"',
    )
    assert codes(plain, table) == []
    with plain.connect() as conn:
        conn.exec_driver_sql("SET maintenance_work_mem = '1MB'")
        [f] = vecalchemy.doctor(conn, table=table)
    assert (f.code, f.severity) == ("VA305", "info")
    assert "more than maintenance_work_mem (1 MB)" in f.message
    assert f.fix.startswith("SET maintenance_work_mem = '8MB'")


def test_index_against_the_declared_metric(plain: sa.Engine, table: str) -> None:
    """With the models' metadata: VA306 when the database's index serves another metric
    than the model declares, VA307 when the declared index is missing, none when the
    index matches (also for a 3,072-d halfvec expression index)."""

    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = table
        id: Mapped[int] = mapped_column(primary_key=True)
        embedding = Embedding(8, metric="cosine")
        big = Embedding(3072, metric="l2")

    run(
        plain,
        f'CREATE TABLE "{table}" (id int PRIMARY KEY, embedding vector(8),'
        " big vector(3072) STORAGE PLAIN)",
        f'CREATE INDEX "{table}_l2" ON "{table}" USING hnsw (embedding vector_l2_ops)',
    )
    found = {f.code: f for f in vecalchemy.doctor(plain, table=table, metadata=Base.metadata)}
    assert sorted(found) == ["VA202", "VA306", "VA307"]
    assert "uses vector_l2_ops, but the model declares" in found["VA306"].message
    assert "metric 'cosine' (vector_cosine_ops)" in found["VA306"].message
    assert found["VA307"].object == f'"public"."{table}"."big"'
    run(
        plain,
        f'DROP INDEX "{table}_l2"',
        f'CREATE INDEX ON "{table}" USING hnsw (embedding vector_cosine_ops)',
        f'CREATE INDEX ON "{table}" USING hnsw ((big::halfvec(3072)) halfvec_l2_ops)',
    )
    assert vecalchemy.doctor(plain, table=table, metadata=Base.metadata) == []


def test_cli_metadata(
    url: sa.URL, plain: sa.Engine, table: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vecalchemy doctor --metadata module:Base.metadata checks the declared metric; a
    bad reference is a clear error."""
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    (tmp_path / "doctor_models.py").write_text(
        "from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column\n"
        "from vecalchemy import Embedding\n\n\n"
        "class Base(DeclarativeBase):\n    pass\n\n\n"
        "class Doc(Base):\n"
        f"    __tablename__ = {table!r}\n"
        "    id: Mapped[int] = mapped_column(primary_key=True)\n"
        "    embedding = Embedding(8, metric='cosine')\n"
    )
    monkeypatch.chdir(tmp_path)
    run(
        plain,
        f'CREATE TABLE "{table}" (id int PRIMARY KEY, embedding vector(8))',
        f'CREATE INDEX ON "{table}" USING hnsw (embedding vector_ip_ops)',
    )
    text = url.render_as_string(hide_password=False)
    runner = CliRunner()
    args = ["doctor", "--url", text, "--table", table, "--json"]
    out = runner.invoke(main, [*args, "--metadata", "doctor_models:Base.metadata"])
    assert out.exit_code == 1
    assert [f["code"] for f in json.loads(out.output)] == ["VA306"]
    out = runner.invoke(main, [*args, "--metadata", "doctor_models:Nope"])
    assert out.exit_code == 1
    assert "doctor_models has no Nope" in out.output


def test_collection_index_against_its_recorded_metric(url: sa.URL, plain: sa.Engine) -> None:
    """A Collection records its metric in its table's comment; an index rebuilt by hand
    for another metric is VA306 without any metadata, and the collection's own index
    (the clean case) is not."""
    name = f"coll_{uuid.uuid4().hex[:8]}"
    engine = vecalchemy.create_engine(url)
    try:
        c = vecalchemy.Collection(name, embedder=vecalchemy.HashingEmbedder(16), engine=engine)
        c.create()
        c.add(["one text", "another text"])
        assert codes(plain, name) == []
        with plain.connect() as conn:
            [ix] = conn.execute(
                sa.text(
                    "SELECT indexname FROM pg_indexes WHERE tablename = :t"
                    " AND indexdef LIKE '%hnsw%'"
                ),
                {"t": name},
            ).scalars()
            conn.exec_driver_sql(f'DROP INDEX "{ix}"')
            conn.exec_driver_sql(
                f'CREATE INDEX "{ix}" ON "{name}" USING hnsw (embedding vector_l2_ops)'
            )
        [f] = vecalchemy.doctor(plain, table=name)
        assert (f.code, f.severity) == ("VA306", "error")
        assert f"collection {name!r} declares" in f.message
        assert "vector_cosine_ops" in f.message
        assert "USING hnsw (embedding vector_cosine_ops)" in f.fix
    finally:
        with plain.connect() as conn:
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')
        engine.dispose()


def test_read_only_also_on_an_autocommit_engine(plain: sa.Engine, table: str) -> None:
    """On an AUTOCOMMIT engine (where SET TRANSACTION READ ONLY alone would do nothing)
    every statement doctor runs, its EXPLAINs included, runs in a read-only transaction."""
    run(plain, f'CREATE TABLE "{table}" (id int, embedding vector(3))')
    seen: list[str] = []

    def after(conn: sa.Connection, cursor: object, statement: str, *args: object) -> None:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        check = raw.cursor()
        check.execute("SELECT current_setting('transaction_read_only')")
        seen.append(check.fetchone()[0])

    sa.event.listen(plain, "after_cursor_execute", after)
    try:
        vecalchemy.doctor(
            plain, table=table, queries=[f'SELECT id FROM "{table}" ORDER BY embedding <-> $1']
        )
    finally:
        sa.event.remove(plain, "after_cursor_execute", after)
    assert len(seen) > 5
    assert set(seen[1:]) == {"on"}  # the first is SET TRANSACTION READ ONLY itself
