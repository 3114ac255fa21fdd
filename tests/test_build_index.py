"""build_index: the session sized for the build and put back afterwards, CONCURRENTLY and
its failures, progress from pg_stat_progress_create_index, IVFFlat rebuilt in place, any
table's column, and ``vecalchemy index build``.

The module's database lowers ``maintenance_work_mem`` to 4MB and
``max_parallel_maintenance_workers`` to 0 for every new session, so that what
build_index chooses differs from what a session has, and a leak would show.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import vecalchemy
from vecalchemy import (
    HNSW,
    Embedding,
    IndexBuildError,
    InvalidArgument,
    IVFFlat,
    MetricRequired,
    Storage,
    _build_session,
)
from vecalchemy._build_session import BuildOptions, Server, failure_hint, plan
from vecalchemy._index_memory import (
    format_bytes,
    hnsw_graph_bytes,
    ivfflat_build_bytes,
    memory_for,
    parse_bytes,
)
from vecalchemy.cli import main
from vecalchemy.schema import resolve_spec

DIM = 64
ROWS = 8_000  # a build of a second or so: long enough to be seen in progress
SMALL = 3_000  # a graph of about 2MB: more than the 4MB default with headroom


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "bi_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(DIM, metric="l2", index=HNSW(m=8, ef_construction=32))


class IvfDoc(Base):
    __tablename__ = "bi_ivf_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(8, metric="l2", index=IVFFlat())


DOC_INDEX = "ix_bi_docs_embedding_hnsw"
IVF_INDEX = "ix_bi_ivf_docs_embedding_ivfflat"


@pytest.fixture(scope="module")
def url(module_db_url: sa.URL) -> sa.URL:
    admin = sa.create_engine(module_db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        db = module_db_url.database
        conn.exec_driver_sql(f"ALTER DATABASE \"{db}\" SET maintenance_work_mem = '4MB'")
        conn.exec_driver_sql(f'ALTER DATABASE "{db}" SET max_parallel_maintenance_workers = 0')
    admin.dispose()
    return module_db_url


@pytest.fixture
def engine(url: sa.URL) -> Iterator[sa.Engine]:
    """An engine of ONE pooled connection: every checkout is the connection the build used."""
    eng = vecalchemy.create_engine(url, pool_size=1, max_overflow=0)
    with vecalchemy.defer_indexes():
        Base.metadata.create_all(eng)
    try:
        yield eng
    finally:
        with eng.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.exec_driver_sql("DROP TABLE IF EXISTS bi_plain")
        eng.dispose()


def fill(engine: sa.Engine, table: str, rows: int, dim: int = DIM) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"INSERT INTO {table} (embedding) SELECT (SELECT array_agg(random()::real) "
            f"FROM generate_series(1, {dim}) WHERE g > 0)::vector FROM generate_series(1, {rows}) g"
        )


def session_state(engine: sa.Engine) -> tuple[int, str, str]:
    """(backend pid, maintenance_work_mem, max_parallel_maintenance_workers) of the pool's
    connection."""
    with engine.connect() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        mem = conn.execute(sa.text("SHOW maintenance_work_mem")).scalar_one()
        workers = conn.execute(sa.text("SHOW max_parallel_maintenance_workers")).scalar_one()
    return pid, mem, workers


def indexes(engine: sa.Engine, table: str) -> dict[str, tuple[bool, str]]:
    """The table's indexes other than its primary key: name -> (valid, definition)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT i.relname, x.indisvalid, pg_get_indexdef(x.indexrelid) FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = to_regclass(:t) "
                "AND NOT x.indisprimary"
            ),
            {"t": table},
        ).all()
    return {r[0]: (r[1], r[2]) for r in rows}


def cores() -> int:
    return len(os.sched_getaffinity(0))


# -- the settings ---------------------------------------------------------------------


def test_settings_sized_for_the_graph_and_put_back(engine: sa.Engine) -> None:
    """maintenance_work_mem is sized for the graph (above the session's 4MB), workers for
    the cores; the build does not spill; the pooled connection goes back with 4MB and 0."""
    fill(engine, "bi_docs", SMALL)
    before = session_state(engine)
    assert before[1:] == ("4MB", "0")

    result = vecalchemy.build_index(engine, Doc.embedding)

    assert (result.name, result.action, result.rows) == (DOC_INDEX, "built", SMALL)
    s = result.settings
    assert s is not None
    assert s.estimate == hnsw_graph_bytes(SMALL, DIM, Storage.VECTOR, 8)
    assert s.maintenance_work_mem == memory_for(s.estimate) > 4 * 2**20
    assert s.parallel_workers == cores() - 1
    assert (s.fits, s.spilled_after, s.notes) == (True, None, ())
    assert session_state(engine) == before  # the same connection, as it was
    assert indexes(engine, "bi_docs")[DOC_INDEX][0] is True


def test_an_explicit_small_memory_reaches_the_server(engine: sa.Engine) -> None:
    """maintenance_work_mem='1MB' is what the build runs with: pgvector reports that the
    graph no longer fits (recorded in spilled_after), and the setting is put back."""
    fill(engine, "bi_docs", SMALL)
    before = session_state(engine)
    result = vecalchemy.build_index(
        engine, Doc.embedding, maintenance_work_mem="1MB", parallel_workers=0
    )
    s = result.settings
    assert s is not None
    assert (s.maintenance_work_mem, s.parallel_workers, s.fits) == (2**20, 0, False)
    assert s.spilled_after is not None
    assert 0 < s.spilled_after < SMALL
    assert session_state(engine) == before


def test_max_memory_caps_the_choice_and_says_so(engine: sa.Engine) -> None:
    """A max_memory below the graph's need: the session's own setting is kept (never
    lowered), and a note says the build will spill."""
    fill(engine, "bi_docs", SMALL)
    result = vecalchemy.build_index(engine, Doc.embedding, max_memory="2MB")
    s = result.settings
    assert s is not None
    assert s.maintenance_work_mem == 4 * 2**20
    assert s.fits is False
    assert "more than max_memory=2MB" in s.notes[0]
    assert session_state(engine)[1:] == ("4MB", "0")


def test_build_indexes_sizes_each_build_with_set_local(engine: sa.Engine) -> None:
    """build_indexes gets the same sizing, with SET LOCAL put back within the caller's
    transaction (its later statements see 4MB again)."""
    fill(engine, "bi_docs", SMALL)
    with engine.begin() as conn:
        (result,) = vecalchemy.build_indexes(conn, Doc)
        assert conn.execute(sa.text("SHOW maintenance_work_mem")).scalar_one() == "4MB"
    s = result.settings
    assert s is not None
    assert result.action == "built"
    assert s.maintenance_work_mem == memory_for(hnsw_graph_bytes(SMALL, DIM, Storage.VECTOR, 8))
    assert s.maintenance_work_mem > 4 * 2**20
    assert session_state(engine)[1:] == ("4MB", "0")


# -- CONCURRENTLY ---------------------------------------------------------------------


def test_concurrently_builds_a_valid_index_and_restores_the_session(engine: sa.Engine) -> None:
    """CONCURRENTLY on an AUTOCOMMIT connection: a valid index; the database's defaults
    come back (RESET), and a caller's own session-level SET is kept."""
    fill(engine, "bi_docs", 2_000)
    before = session_state(engine)
    result = vecalchemy.build_index(engine, Doc.embedding, concurrently=True)
    assert result.action == "built"
    assert indexes(engine, "bi_docs")[DOC_INDEX][0] is True
    assert session_state(engine) == before

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("SET maintenance_work_mem = '12MB'")
        again = vecalchemy.build_index(conn, Doc.embedding, concurrently=True, rebuild=True)
        assert conn.execute(sa.text("SHOW maintenance_work_mem")).scalar_one() == "12MB"
    assert again.action == "rebuilt"
    assert list(indexes(engine, "bi_docs")) == [DOC_INDEX]


def _bad_plain_table(engine: sa.Engine) -> sa.Table:
    """A table whose vectors cannot all be cast to halfvec (1e6 > 65504)."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE bi_plain (id bigserial PRIMARY KEY, embedding vector(8))"
        )
    fill(engine, "bi_plain", 500, dim=8)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE bi_plain SET embedding = array_fill(1e6::real, ARRAY[8])::vector WHERE id = 400"
        )
    return sa.Table("bi_plain", sa.MetaData(), autoload_with=engine)


def test_a_failed_concurrent_build_leaves_no_invalid_index(engine: sa.Engine) -> None:
    """CREATE INDEX CONCURRENTLY failing mid-build (a vector out of halfvec's range) leaves
    an INVALID index; build_index drops it and says why; the session is put back."""
    table = _bad_plain_table(engine)
    before = session_state(engine)
    with pytest.raises(IndexBuildError) as info:
        vecalchemy.build_index(
            engine,
            table.c.embedding,
            metric="l2",
            index=HNSW(quantize="halfvec"),
            concurrently=True,
        )
    message = str(info.value)
    assert "CREATE INDEX CONCURRENTLY ix_bi_plain_embedding_hnsw_hv failed" in message
    assert "out of range for type halfvec" in message
    assert "the invalid index it left was dropped" in message
    assert indexes(engine, "bi_plain") == {}
    assert session_state(engine) == before


def test_an_invalid_index_of_the_name_is_refused_then_rebuilt(engine: sa.Engine) -> None:
    """An INVALID index left under the index's name (by a hand-run CONCURRENTLY) is not
    silently kept: build_index refuses, saying how; rebuild=True replaces it."""
    table = _bad_plain_table(engine)
    name = "ix_bi_plain_embedding_hnsw"
    with (
        engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
        pytest.raises(sa.exc.DataError),
    ):
        conn.exec_driver_sql(
            f"CREATE INDEX CONCURRENTLY {name} ON bi_plain USING hnsw "
            "((embedding::halfvec(8)) halfvec_l2_ops)"
        )
    assert indexes(engine, "bi_plain")[name][0] is False
    with pytest.raises(IndexBuildError, match="an INVALID index of that name exists"):
        vecalchemy.build_index(engine, table.c.embedding, metric="l2")
    assert indexes(engine, "bi_plain")[name][0] is False

    result = vecalchemy.build_index(engine, table.c.embedding, metric="l2", rebuild=True)
    assert (result.name, result.action) == (name, "rebuilt")
    [(valid, definition)] = indexes(engine, "bi_plain").values()
    assert valid is True
    assert "(embedding vector_l2_ops)" in definition


# -- progress -------------------------------------------------------------------------


def test_progress_callback_gets_the_build_phases(engine: sa.Engine) -> None:
    """The callback receives pg_stat_progress_create_index's phase with tuples done out of
    the rows, ending at all of them (polled from a pool of its own: the engine's one
    connection is busy building)."""
    fill(engine, "bi_docs", ROWS)
    seen: list[tuple[str, int, int]] = []
    result = vecalchemy.build_index(
        engine, Doc.embedding, progress=lambda phase, done, total: seen.append((phase, done, total))
    )
    assert result.action == "built"
    assert any(phase == "building index: loading tuples" for phase, _, _ in seen), seen
    assert all(0 <= done <= total for _, done, total in seen)
    assert seen[-1] == ("building index: loading tuples", ROWS, ROWS)


# -- IVFFlat rebuilt in place ---------------------------------------------------------


def test_ivfflat_rebuild_takes_new_lists_and_keeps_the_name(engine: sa.Engine) -> None:
    """After the table grows, rebuild=True (CONCURRENTLY) derives lists from the new row
    count, swaps the new index in under the old name, and leaves one index."""
    fill(engine, "bi_ivf_docs", 2_000, dim=8)
    (first,) = vecalchemy.build_indexes(engine, IvfDoc)
    assert first.options == {"lists": 2}
    fill(engine, "bi_ivf_docs", 3_000, dim=8)

    result = vecalchemy.build_index(engine, IvfDoc.embedding, rebuild=True, concurrently=True)

    assert (result.name, result.action, result.rows, result.options) == (
        IVF_INDEX,
        "rebuilt",
        5_000,
        {"lists": 5},
    )
    [(valid, definition)] = indexes(engine, "bi_ivf_docs").values()
    assert valid is True
    assert list(indexes(engine, "bi_ivf_docs")) == [IVF_INDEX]
    assert "WITH (lists='5')" in definition


def test_rebuild_refuses_an_empty_table(engine: sa.Engine) -> None:
    """IVFFlat on a table without rows: IndexBuildError before anything is written."""
    with pytest.raises(IndexBuildError) as info:
        vecalchemy.build_index(engine, IvfDoc.embedding, rebuild=True)
    assert "bi_ivf_docs has no rows with a vector" in str(info.value)
    assert "load the data first" in str(info.value)
    assert indexes(engine, "bi_ivf_docs") == {}


# -- any table's column ---------------------------------------------------------------


def test_a_plain_column_needs_a_metric_then_keeps_its_index(engine: sa.Engine) -> None:
    """A reflected column without a vector index needs metric=; once built, its index
    tells the metric and the parameters, and a rebuild keeps its name."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE bi_plain (id bigserial PRIMARY KEY, embedding vector(8))"
        )
    fill(engine, "bi_plain", 300, dim=8)
    table = sa.Table("bi_plain", sa.MetaData(), autoload_with=engine)
    with pytest.raises(MetricRequired, match="pass metric='cosine'"):
        vecalchemy.build_index(engine, table.c.embedding)
    assert indexes(engine, "bi_plain") == {}

    built = vecalchemy.build_index(engine, table.c.embedding, metric="cosine", index=HNSW(m=12))
    assert (built.name, built.options) == (
        "ix_bi_plain_embedding_hnsw",
        {"m": 12, "ef_construction": 64},
    )
    exists = vecalchemy.build_index(engine, table.c.embedding)
    assert (exists.name, exists.action) == ("ix_bi_plain_embedding_hnsw", "exists")
    rebuilt = vecalchemy.build_index(engine, table.c.embedding, rebuild=True)
    assert (rebuilt.action, rebuilt.options) == ("rebuilt", {"m": 12, "ef_construction": 64})
    [(_, definition)] = indexes(engine, "bi_plain").values()
    assert "(embedding vector_cosine_ops) WITH (m='12', ef_construction='64')" in definition


def test_bad_arguments_are_refused_before_anything_is_built(engine: sa.Engine) -> None:
    """A model instead of a column, out-of-range workers, an unreadable size, metric= on a
    declared column, CONCURRENTLY inside a transaction: clear errors, no index."""
    fill(engine, "bi_docs", 100)
    with pytest.raises(InvalidArgument, match="build_index builds one index"):
        vecalchemy.build_index(engine, Doc)
    with pytest.raises(InvalidArgument, match="parallel_workers must be an integer from 0"):
        vecalchemy.build_index(engine, Doc.embedding, parallel_workers=-1)
    with pytest.raises(InvalidArgument, match="max_memory must be a size such as '4GB'"):
        vecalchemy.build_index(engine, Doc.embedding, max_memory="lots")
    with pytest.raises(InvalidArgument, match="its metric and parameters come from"):
        vecalchemy.build_index(engine, Doc.embedding, metric="cosine")
    with (
        engine.begin() as conn,
        pytest.raises(IndexBuildError, match="cannot run inside a transaction"),
    ):
        vecalchemy.build_index(conn, Doc.embedding, concurrently=True)
    assert indexes(engine, "bi_docs") == {}


# -- the memory estimate --------------------------------------------------------------


def test_the_estimate_follows_storage_m_and_rows() -> None:
    """Per element: more for vector than halfvec than bit, more for a larger m, linear in
    rows; sizes read and written as PostgreSQL writes them."""
    vec = hnsw_graph_bytes(10_000, 384, Storage.VECTOR, 16)
    assert vec > hnsw_graph_bytes(10_000, 384, Storage.HALFVEC, 16)
    assert hnsw_graph_bytes(10_000, 384, Storage.HALFVEC, 16) > hnsw_graph_bytes(
        10_000, 384, Storage.BIT, 16
    )
    assert hnsw_graph_bytes(10_000, 384, Storage.VECTOR, 32) > vec
    assert abs(hnsw_graph_bytes(20_000, 384, Storage.VECTOR, 16) - 2 * vec) <= 1
    # k-means bounds grow with samples x lists: 50 samples a list
    assert ivfflat_build_bytes(10**6, 384, Storage.VECTOR, 1000) > 200 * 2**20
    assert parse_bytes("4GB") == 4 * 2**30
    assert parse_bytes("640kB") == 640 * 1024
    assert format_bytes(memory_for(vec)) == "30MB"
    with pytest.raises(InvalidArgument, match="must be positive"):
        parse_bytes(0)


MB = 2**20


def _server(**changes: object) -> Server:
    facts: dict[str, object] = {
        "work_mem": 64 * MB,
        "work_mem_max": 2**31 * 1024,
        "workers": 2,
        "max_parallel_workers": 8,
        "dsm": "posix",
        "local": True,
    }
    facts.update(changes)
    return Server(**facts)  # type: ignore[arg-type]


def test_the_plan_stays_within_what_the_server_allows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The choice for a 1.4 GB graph on an 8-core machine, then each limit in turn: the
    server's max_parallel_workers, an unknown (remote) machine, a small /dev/shm, half
    the machine's memory, the setting's maximum; each says so in a note."""
    monkeypatch.setattr(_build_session, "_cores", lambda: 8)
    monkeypatch.setattr(_build_session, "_free_shm", lambda: None)
    monkeypatch.setattr(_build_session, "_physical_memory", lambda: None)
    spec = resolve_spec(Doc.embedding)[1]
    with_ = {"m": 8, "ef_construction": 32}
    opts = BuildOptions.make()
    rows = 2_000_000

    s = plan(_server(), spec, rows, with_, opts)
    assert (s.maintenance_work_mem, s.parallel_workers, s.fits, s.notes) == (
        memory_for(hnsw_graph_bytes(rows, DIM, Storage.VECTOR, 8)),
        7,
        True,
        (),
    )
    s = plan(_server(max_parallel_workers=3), spec, rows, with_, opts)
    assert s.parallel_workers == 3
    assert s.notes == ("parallel workers capped by max_parallel_workers (3)",)
    assert plan(_server(local=False), spec, rows, with_, opts).parallel_workers == 2

    monkeypatch.setattr(_build_session, "_free_shm", lambda: 64 * MB)
    s = plan(_server(), spec, rows, with_, opts)
    assert s.parallel_workers == 0
    assert s.notes[0].startswith("serial build: /dev/shm has 64MB free")

    monkeypatch.setattr(_build_session, "_free_shm", lambda: None)
    monkeypatch.setattr(_build_session, "_physical_memory", lambda: 1024 * MB)
    s = plan(_server(), spec, rows, with_, opts)
    assert (s.maintenance_work_mem, s.fits) == (512 * MB, False)
    assert "capped at half the server's memory (512MB)" in s.notes[0]

    monkeypatch.setattr(_build_session, "_physical_memory", lambda: None)
    s = plan(_server(work_mem_max=256 * MB), spec, rows, with_, opts)
    assert s.maintenance_work_mem == 256 * MB
    assert "capped at the server's maximum (256MB)" in s.notes[0]


def test_failure_hints_follow_the_sqlstate() -> None:
    """A cancelled or timed-out build, a lock timeout, memory: each hint says what to do."""

    def failed(sqlstate: str, message: str) -> sa.exc.DBAPIError:
        orig = type("DriverError", (Exception,), {"sqlstate": sqlstate})(message)
        return sa.exc.DBAPIError("CREATE INDEX", None, orig)

    assert "larger statement_timeout" in failure_hint(failed("57014", "canceling statement"))
    assert "lock_timeout" in failure_hint(failed("55P03", "lock timeout"))
    assert "parallel_workers=0" in failure_hint(failed("53100", "could not resize shared memory"))
    assert failure_hint(failed("XX000", "other")) == "fix the cause and call build_index again"


# -- the command line -----------------------------------------------------------------


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, ["index", "build", *args], catch_exceptions=False)


def test_cli_builds_and_rebuilds_any_table(engine: sa.Engine, url: sa.URL) -> None:
    """``vecalchemy index build`` on a table vecalchemy did not create: JSON with the
    settings chosen; then --rebuild in text, with the time and settings printed and the
    progress bar on stderr."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE bi_plain (id bigserial PRIMARY KEY, embedding vector(64))"
        )
    fill(engine, "bi_plain", SMALL)
    link = url.render_as_string(hide_password=False)
    base = ("--url", link, "--table", "bi_plain", "--column", "embedding")

    result = cli(*base, "--metric", "cosine", "--m", "8", "--ef-construction", "32", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["name"], out["action"], out["rows"]) == (
        "ix_bi_plain_embedding_hnsw",
        "built",
        SMALL,
    )
    assert out["options"] == {"m": 8, "ef_construction": 32}
    want = memory_for(hnsw_graph_bytes(SMALL, DIM, Storage.VECTOR, 8))
    assert out["settings"]["maintenance_work_mem"] == format_bytes(want)
    assert out["settings"]["max_parallel_maintenance_workers"] == cores() - 1

    result = cli(*base, "--rebuild")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        f"rebuilt ix_bi_plain_embedding_hnsw on bi_plain.embedding ({SMALL:,} rows"
    )
    assert f"maintenance_work_mem = {format_bytes(want)} (needs about" in result.stdout
    assert "max_parallel_maintenance_workers = " in result.stdout
    assert "loading tuples" in result.stderr
    assert list(indexes(engine, "bi_plain")) == ["ix_bi_plain_embedding_hnsw"]


def test_cli_errors(engine: sa.Engine, url: sa.URL) -> None:
    """No metric for a column without an index, options of the other method, an unknown
    column: exit 1 with the reason, and nothing built."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE bi_plain (id bigserial PRIMARY KEY, embedding vector(8))"
        )
    fill(engine, "bi_plain", 50, dim=8)
    base = ("--url", url.render_as_string(hide_password=False), "--table", "bi_plain")

    result = cli(*base, "--column", "embedding")
    assert result.exit_code == 1
    assert "error: column bi_plain.embedding has no vector index to read the metric from" in (
        result.stderr
    )
    result = cli(*base, "--column", "embedding", "--method", "hnsw", "--lists", "5")
    assert result.exit_code == 1
    assert "--lists is an IVFFlat option" in result.stderr
    result = cli(*base, "--column", "nope", "--metric", "l2")
    assert result.exit_code == 1
    assert "table bi_plain has no column nope" in result.stderr
    assert indexes(engine, "bi_plain") == {}
