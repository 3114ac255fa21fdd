"""run_bench and ``vecalchemy bench`` measure recall@k (as measure_recall does), latency
and QPS across ef_search or probes, on a table made by hand (reflected) or on a dataset
loaded into a scratch schema that is dropped afterwards; they write bench.json, a
Markdown report whose table is the JSON's steps, and a recall-QPS PNG."""

from __future__ import annotations

import itertools
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from PIL import Image
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import vecalchemy
from tests.test_engine import login_role
from vecalchemy import HNSW, ConfigurationError, Embedding, InvalidArgument, InvalidSearch
from vecalchemy.cli import main
from vecalchemy.load import load

DIM = 32
ROWS = 2_000
QUERIES = 25
SCRATCH = "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, 'vecalchemy_bench_')"


@pytest.fixture(scope="module")
def engine(module_db: sa.Engine) -> sa.Engine:
    """Tables as a user makes them, with plain SQL (vecalchemy declared nothing): points
    with a small HNSW graph (m=4, so recall grows visibly with ef_search), cells with
    an IVFFlat index, plain with no vector index."""
    data = np.random.default_rng(3).standard_normal((ROWS, DIM)).astype(np.float32)
    with module_db.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE points (id int PRIMARY KEY, grp int NOT NULL, embedding vector({DIM}));"
            f"CREATE TABLE cells (id int PRIMARY KEY, embedding vector({DIM}));"
            f"CREATE TABLE plain (id int PRIMARY KEY, embedding vector({DIM}))"
        )
        tables = {n: sa.Table(n, sa.MetaData(), autoload_with=conn) for n in ("points", "cells")}
    load(module_db, tables["points"], {"id": range(ROWS), "grp": [i % 4 for i in range(ROWS)],
                                       "embedding": data})  # fmt: skip
    load(module_db, tables["cells"], {"id": range(ROWS), "embedding": data})
    with module_db.begin() as conn:
        conn.exec_driver_sql(
            "CREATE INDEX points_hnsw ON points USING hnsw (embedding vector_l2_ops) "
            "WITH (m = 4, ef_construction = 8);"
            "CREATE INDEX cells_ivf ON cells USING ivfflat (embedding vector_l2_ops) "
            "WITH (lists = 20); ANALYZE points; ANALYZE cells"
        )
    return module_db


@pytest.fixture(scope="module")
def url(engine: sa.Engine, module_db_url: sa.URL) -> str:
    return module_db_url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def points(engine: sa.Engine) -> vecalchemy.BenchResult:
    return vecalchemy.run_bench(
        engine, table="points", column="embedding", queries=QUERIES, ef_search=[40, 10, 80, 20]
    )


def scratch_schemas(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.exec_driver_sql(SCRATCH).scalars())


def reflected(engine: sa.Engine, conn: sa.Connection, name: str) -> sa.Table:
    return sa.Table(name, sa.MetaData(), autoload_with=conn)


def test_bench_on_a_reflected_table(engine: sa.Engine, points: vecalchemy.BenchResult) -> None:
    """The sweep is sorted; each step's recall is in [0, 1], grows with ef_search (up to
    noise), and is what measure_recall reports for the same setting and sampled
    queries; latencies and QPS are positive; the index, the metric (from its opclass)
    and the server are described; the planner uses the index."""
    r = points
    assert (r.table, r.column, r.rows, r.dims) == ("points", "embedding", ROWS, DIM)
    assert (r.metric, r.storage, r.setting, r.k, r.queries) == ("l2", "vector", "ef_search", 10, 25)
    assert r.index["name"] == "points_hnsw"
    assert r.index["method"] == "hnsw"
    assert r.index["params"] == {"m": 4, "ef_construction": 8}
    assert r.index["used_by_planner"] is True
    assert r.warnings == ()
    assert [s.value for s in r.steps] == [10, 20, 40, 80]
    recalls = [s.recall for s in r.steps]
    assert all(0 <= x <= 1 for x in recalls)
    assert all(b >= a - 0.05 for a, b in itertools.pairwise(recalls))
    assert recalls[-1] > recalls[0] + 0.1  # a small graph: ef_search matters
    for s in [*r.steps, r.exact]:
        assert 0 < s.p50_ms <= s.p95_ms
        assert s.qps > 0
    assert (r.exact.setting, r.exact.value, r.exact.recall) == ("exact", None, 1.0)
    with engine.connect() as conn:
        col = reflected(engine, conn, "points").c.embedding
        for s in r.steps:
            m = vecalchemy.measure_recall(conn, col, sample=QUERIES, k=10, ef_search=s.value)
            assert s.recall == m.recall
        ext = "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        assert r.server["pgvector"] == conn.exec_driver_sql(ext).scalar()
        assert r.server["postgresql"] == conn.exec_driver_sql("SHOW server_version").scalar()
    assert r.reaches(0.0) == r.steps[0]
    assert r.reaches(1.01) is None


def test_measure_recall_keeps_each_query_latency(engine: sa.Engine) -> None:
    """measure_recall's per-query latencies (what bench takes p95 and QPS from) have one
    entry per query, and the medians it reports are theirs."""
    with engine.connect() as conn:
        col = reflected(engine, conn, "points").c.embedding
        m = vecalchemy.measure_recall(conn, col, sample=9, k=10, ef_search=20)
    assert len(m.index_times_ms) == len(m.exact_times_ms) == 9
    assert m.index_ms == round(float(np.median(m.index_times_ms)), 3)
    assert m.exact_ms == round(float(np.median(m.exact_times_ms)), 3)


def _markdown_rows(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if re.match(r"^\| (\d+|exact) \|", line)]
    return [[c.strip() for c in line.strip("|").split("|")] for line in rows]


def test_save_writes_json_markdown_and_png(points: vecalchemy.BenchResult, tmp_path: Path) -> None:
    """bench.json is as_dict(); report.md's table rows are the JSON's steps and the exact
    baseline, it names the setting reaching each target and links the PNG; the PNG is
    a real image."""
    files = points.save(tmp_path / "out")
    data = json.loads(files.json.read_text())
    assert data == json.loads(json.dumps(points.as_dict()))
    assert (data["rows"], data["dims"], data["k"]) == (ROWS, DIM, 10)
    assert data["machine"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert set(data["reaches"]) == {"0.90", "0.95", "0.99"}
    rows = _markdown_rows(files.markdown.read_text())
    expected = [
        [str(s["value"] if s["value"] is not None else "exact"), f"{s['recall']:.4f}",
         f"{s['p50_ms']:.3f}", f"{s['p95_ms']:.3f}", f"{s['qps']:.1f}"]
        for s in [*data["steps"], data["exact"]]
    ]  # fmt: skip
    assert rows == expected
    assert [float(r[1]) for r in rows[:-1]] == [s["recall"] for s in data["steps"]]
    text = files.markdown.read_text()
    assert "![recall vs QPS](recall_qps.png)" in text
    for target, value in data["reaches"].items():
        line = f"recall >= {target}: " + (f"ef_search = {value}" if value else "not reached")
        assert line in text
    assert files.plot == tmp_path / "out" / "recall_qps.png"
    assert files.plot.stat().st_size > 0
    with Image.open(files.plot) as image:
        assert image.format == "PNG"
        assert min(image.size) > 100


def test_without_matplotlib_json_and_markdown_still_written(
    points: vecalchemy.BenchResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No matplotlib: no PNG, and the report says how to get one."""
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    files = points.save(tmp_path)
    assert files.plot is None
    assert not (tmp_path / "recall_qps.png").exists()
    assert files.json.exists()
    assert "pip install 'vecalchemy[bench]'" in files.markdown.read_text()
    assert "![" not in files.markdown.read_text()


def test_a_filter_applies_to_both_sides(engine: sa.Engine) -> None:
    """where= as column=text (as the command line gives it) is cast to the column's type
    and applied to the index and the exact search alike, as measure_recall does."""
    r = vecalchemy.run_bench(
        engine, table="points", column="embedding", queries=10, ef_search=[20], where={"grp": "1"}
    )
    assert r.where == "points.grp = CAST(1 AS INTEGER)"
    with engine.connect() as conn:
        t = reflected(engine, conn, "points")
        m = vecalchemy.measure_recall(
            conn, t.c.embedding, sample=10, k=10, ef_search=20, where=t.c.grp == 1
        )
    assert r.steps[0].recall == m.recall
    with pytest.raises(InvalidArgument, match="names column 'nope', which table points does not"):
        vecalchemy.run_bench(engine, table="points", column="embedding", where={"nope": "1"})


def test_a_declared_model_column(engine: sa.Engine) -> None:
    """An ORM attribute declared with Embedding is benched as declared (its metric, the
    index build_indexes made), with a SQLAlchemy filter."""

    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = "bench_docs"
        id: Mapped[int] = mapped_column(primary_key=True)
        grp: Mapped[int]
        embedding = Embedding(DIM, metric="cosine", index=HNSW(m=8, ef_construction=16))

    Base.metadata.create_all(engine)
    data = np.random.default_rng(5).standard_normal((500, DIM)).astype(np.float32)
    load(engine, Doc, {"id": range(500), "grp": [i % 2 for i in range(500)], "embedding": data})
    vecalchemy.build_indexes(engine, Doc)
    r = vecalchemy.run_bench(
        engine, column=Doc.embedding, queries=5, ef_search=[20], where=Doc.grp == 1
    )
    assert (r.table, r.metric, r.rows) == ("bench_docs", "cosine", 500)
    assert r.index["opclass"] == "vector_cosine_ops"
    assert r.index["params"] == {"m": 8, "ef_construction": 16}
    assert r.where == "bench_docs.grp = 1"
    with engine.connect() as conn:
        m = vecalchemy.measure_recall(
            conn, Doc.embedding, sample=5, k=10, ef_search=20, where=Doc.grp == 1
        )
    assert r.steps[0].recall == m.recall
    with pytest.raises(InvalidArgument, match="column= is an SQLAlchemy column; drop table="):
        vecalchemy.run_bench(engine, column=Doc.embedding, table="bench_docs")


def test_ivfflat_sweeps_probes_up_to_lists(engine: sa.Engine) -> None:
    """An IVFFlat index is swept by probes, by default up to its lists (20); more probes
    find more; ef_search is refused for it."""
    r = vecalchemy.run_bench(engine, table="cells", column="embedding", queries=10)
    assert r.setting == "probes"
    assert [s.value for s in r.steps] == [1, 2, 4, 8, 16]
    assert r.index["params"] == {"lists": 20}
    assert r.steps[-1].recall > r.steps[0].recall
    with pytest.raises(InvalidSearch, match="ef_search applies to HNSW indexes; index cells_ivf"):
        vecalchemy.run_bench(engine, table="cells", column="embedding", ef_search=[40])


def test_given_query_vectors(engine: sa.Engine) -> None:
    """query_vectors replaces the sample; queries= caps how many are used."""
    qs = np.random.default_rng(9).standard_normal((8, DIM)).astype(np.float32)
    r = vecalchemy.run_bench(
        engine, table="points", column="embedding", query_vectors=qs, queries=5, ef_search=[40]
    )
    assert (r.queries, r.query_source) == (5, "given")
    with engine.connect() as conn:
        col = reflected(engine, conn, "points").c.embedding
        m = vecalchemy.measure_recall(conn, col, queries=list(qs[:5]), k=10, ef_search=40)
    assert r.steps[0].recall == m.recall


def test_synthetic_dataset_creates_and_drops_its_schema(engine: sa.Engine) -> None:
    """The dataset is loaded into a scratch schema that exists while the bench runs and
    is gone afterwards; the seeded data give the same recall twice."""
    seen: list[list[str]] = []

    def progress(stage: str, done: int, total: int) -> None:
        seen.append(scratch_schemas(engine))

    r = vecalchemy.run_bench(
        engine, dataset="synthetic:1500:16", queries=15, ef_search=[10, 40], progress=progress
    )
    assert seen
    assert all(len(s) == 1 for s in seen)
    assert r.table == f"{seen[0][0]}.vectors (dropped)"
    assert scratch_schemas(engine) == []
    assert (r.rows, r.dims, r.metric) == (1500, 16, "cosine")
    assert r.dataset is not None
    assert (r.dataset["kind"], r.dataset["spec"]) == ("synthetic", "synthetic:1500:16")
    assert r.index["params"] == {"m": 16, "ef_construction": 64}
    assert "not rows of the table" in r.query_source
    assert all(0 <= s.recall <= 1 for s in r.steps)
    again = vecalchemy.run_bench(
        engine,
        dataset="synthetic:1500:16",
        queries=15,
        ef_search=[10, 40],
        metric="l2",
        index=HNSW(m=8, ef_construction=16),
    )
    assert (again.metric, again.index["params"]) == ("l2", {"m": 8, "ef_construction": 16})
    assert scratch_schemas(engine) == []


def test_a_failing_bench_still_drops_its_schema(engine: sa.Engine) -> None:
    """An error in the middle of the sweep (here raised by the progress callback) still
    drops the scratch schema."""

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "queries":
            assert scratch_schemas(engine)
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        vecalchemy.run_bench(
            engine, dataset="synthetic:300:8", queries=5, ef_search=[10], progress=progress
        )
    assert scratch_schemas(engine) == []


def _beir(path: Path) -> Path:
    path.mkdir()
    words = ["postgres", "vector", "index", "search", "python", "graph", "table", "query"]
    docs = [{"_id": f"d{i}", "title": words[i % 8], "text": f"{words[(i * 3) % 8]} doc {i}"}
            for i in range(40)]  # fmt: skip
    docs.append({"_id": "blank", "title": "", "text": "  "})
    (path / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    queries = [{"_id": f"q{i}", "text": f"{w} search"} for i, w in enumerate(words)]
    (path / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    return path


def test_beir_dataset_embedded_with_an_embedder(engine: sa.Engine, tmp_path: Path) -> None:
    """A BEIR directory is embedded (hashing here), blank documents left out, the first
    `queries` queries used; its schema is dropped afterwards."""
    directory = _beir(tmp_path / "tiny")
    r = vecalchemy.run_bench(
        engine, dataset=f"beir:{directory}", embedder="hashing:64", queries=5, ef_search=[10]
    )
    assert (r.rows, r.dims, r.queries) == (40, 64, 5)
    assert r.dataset is not None
    assert r.dataset["embedder"].startswith("hashing-v1:dim=64")
    assert r.dataset["path"] == str(directory)
    assert scratch_schemas(engine) == []


def test_cli_on_a_table(url: str, tmp_path: Path) -> None:
    """--json prints bench.json; the files are written to --out; the table output shows
    each step and where the files went."""
    out = tmp_path / "cli"
    args = ["bench", "--url", url, "--table", "points", "--column", "embedding", "--queries",
            "10", "--ef-search", "10,40", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data == json.loads((out / "bench.json").read_text())
    assert [s["value"] for s in data["steps"]] == [10, 40]
    assert (out / "report.md").exists()
    assert (out / "recall_qps.png").exists()
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0
    assert re.search(r"│ 40 +│ \d\.\d{4}", result.stdout)
    assert "│ exact" in result.stdout
    assert f"wrote {out / 'bench.json'}, {out / 'report.md'}, {out / 'recall_qps.png'}" in (
        result.stdout.replace("\n", "")
    )


def test_cli_dataset_and_queries_file(url: str, engine: sa.Engine, tmp_path: Path) -> None:
    """--dataset synthetic:... benches a scratch table (dropped after); --queries-file
    reads .npy and JSON lines."""
    out = tmp_path / "syn"
    args = ["bench", "--url", url, "--dataset", "synthetic:400:8", "--queries", "5",
            "--ef-search", "10", "--m", "8", "--out", str(out), "--json"]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["rows"], data["dims"]) == (400, 8)
    assert data["index"]["params"] == {"m": 8, "ef_construction": 64}
    assert scratch_schemas(engine) == []
    npy = tmp_path / "q.npy"
    np.save(npy, np.random.default_rng(1).standard_normal((4, DIM)).astype(np.float32))
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text(json.dumps([0.5] * DIM) + "\n" + json.dumps({"vector": [1.0] * DIM}) + "\n")
    for path, n in ((npy, 4), (jsonl, 2)):
        args = ["bench", "--url", url, "--table", "points", "--column", "embedding",
                "--queries-file", str(path), "--ef-search", "20",
                "--out", str(tmp_path / path.stem), "--json"]  # fmt: skip
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert (data["queries"], data["query_source"]) == (n, "given")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--table", "nope", "--column", "embedding"], "error: no table nope"),
        (["--table", "points", "--column", "nope"],
         "table points has no column nope; its columns: id, grp, embedding"),
        (["--table", "points", "--column", "id"], "column points.id is not a pgvector column"),
        (
            ["--table", "plain", "--column", "embedding"],
            'column plain.embedding has no vector index, so there is nothing to measure against '
            'exact search; build one first, e.g. CREATE INDEX ON "plain" USING hnsw '
            "(embedding vector_cosine_ops)",
        ),
        (["--table", "points", "--column", "embedding", "--ef-search", "5"],
         "ef_search values must be integers from 10 to 1,000"),
        (["--table", "points", "--column", "embedding", "--probes", "4"],
         "probes applies to IVFFlat indexes; index points_hnsw is HNSW: sweep ef_search"),
        (["--table", "points", "--column", "embedding", "--m", "8"],
         "index= sets how a dataset is indexed"),
        (["--dataset", "synthetic:abc"], "dataset must be synthetic[:ROWS[:DIM]]"),
        (["--dataset", "synthetic:10:3000"], "dimension must be from 1 to 2,000"),
        (["--dataset", "beir:/no/such/dir"],
         "is not a BEIR dataset directory: it has no corpus.jsonl or queries.jsonl"),
        (["--dataset", "synthetic:100:8", "--table", "points", "--column", "embedding"],
         "give table= and column= (your table) or dataset=, not both"),
        (["--dataset", "synthetic:100:8", "--where", "grp=1"], "a dataset's table has no columns"),
        (["--dataset", "synthetic:100:8", "--metric", "hamming"], "hamming"),
    ],
)  # fmt: skip
def test_cli_errors(
    url: str, engine: sa.Engine, tmp_path: Path, extra: list[str], message: str
) -> None:
    """Each bad input exits 1 with a message saying what to do; no output directory and
    no scratch schema are left."""
    out = tmp_path / "never"
    args = ["bench", "--url", url, "--out", str(out), *extra]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ")
    assert message in result.stderr.replace("\n", " ")
    assert not out.exists()
    assert scratch_schemas(engine) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--table", "points", "--column", "embedding", "--ef-search", "10,x"],
         "expected comma-separated positive integers such as 10,20,40, got '10,x'"),
        (["--table", "points", "--column", "embedding", "--ef-search", "10,,20"], "got '10,,20'"),
        (["--table", "points", "--column", "embedding", "--where", "grp"], "expected COLUMN=VALUE"),
        (["--table", "points"], "give --table and --column (your table), or --dataset"),
    ],
)  # fmt: skip
def test_cli_usage_errors(url: str, tmp_path: Path, extra: list[str], message: str) -> None:
    """Malformed options are usage errors (exit 2), found before anything runs."""
    out = tmp_path / "never"
    result = CliRunner().invoke(main, ["bench", "--url", url, "--out", str(out), *extra])
    assert result.exit_code == 2
    assert message in result.stderr
    assert not out.exists()


def test_cli_bad_queries_file(url: str, tmp_path: Path) -> None:
    """A queries file that holds no vectors is refused with its line number."""
    bad = tmp_path / "q.jsonl"
    bad.write_text('[1.0, 2.0]\n{"text": "no vector"}\n')
    args = ["bench", "--url", url, "--table", "points", "--column", "embedding",
            "--queries-file", str(bad), "--out", str(tmp_path / "never")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert f"error: {bad}:2 must be a JSON array of numbers" in result.stderr
    assert not (tmp_path / "never").exists()


def test_library_argument_errors(engine: sa.Engine) -> None:
    """Arguments that cannot work are refused before any SQL runs."""
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "give column="),
        ({"column": "embedding"}, "is a name: pass table= too"),
        ({"table": "points", "column": "embedding", "k": 0}, "k must be a positive integer"),
        ({"table": "points", "column": "embedding", "queries": -1}, "queries must be a positive"),
        ({"dataset": "synthetic", "query_vectors": []}, "query_vectors is empty"),
        ({"dataset": "synthetic", "index": "hnsw"}, "index= takes vecalchemy.HNSW"),
        ({"table": "points", "column": "embedding", "where": {}}, "where={} filters nothing"),
        ({"table": "points", "column": "embedding", "ef_search": []}, "non-empty list"),
        ({"dataset": "nope:1"}, "dataset must be"),
    ]
    for kwargs, message in cases:
        with pytest.raises((InvalidArgument, InvalidSearch), match=re.escape(message)):
            vecalchemy.run_bench(engine, **kwargs)
    assert scratch_schemas(engine) == []


def test_a_role_that_may_not_create_a_schema(engine: sa.Engine, module_db_url: sa.URL) -> None:
    """A dataset needs CREATE SCHEMA; without that right the error says so and what to
    do instead, and nothing is created."""
    with login_role(module_db_url) as role:
        weak = vecalchemy.create_engine(module_db_url.set(username=role))
        try:
            with pytest.raises(ConfigurationError, match="cannot create the scratch schema"):
                vecalchemy.run_bench(weak, dataset="synthetic:100:8", ef_search=[10])
        finally:
            weak.dispose()
    assert scratch_schemas(engine) == []


def test_an_empty_table_has_no_queries_to_sample(engine: sa.Engine) -> None:
    """An indexed table without vectors cannot give sampled queries; the error says to
    pass some."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE empty_points (id int PRIMARY KEY, embedding vector({DIM}));"
            "CREATE INDEX ON empty_points USING hnsw (embedding vector_cosine_ops)"
        )
    with pytest.raises(InvalidArgument, match="has no vectors to sample queries from; pass"):
        vecalchemy.run_bench(engine, table="empty_points", column="embedding")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("one.npy", None, "must hold a 2-D array of numbers, one query per row"),
        ("text.npy", "not numpy", "is not a numpy array file"),
        ("empty.jsonl", "\n\n", "holds no query vectors"),
        ("broken.jsonl", "[1.0,\n", "broken.jsonl:1 is not JSON"),
    ],
)
def test_cli_unreadable_queries_files(
    url: str, tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    """Query files that hold no 2-D vectors are refused, saying what the file must hold."""
    path = tmp_path / name
    if content is None:
        np.save(path, np.zeros(DIM, dtype=np.float32))  # one vector, not a 2-D array
    else:
        path.write_text(content)
    args = ["bench", "--url", url, "--table", "points", "--column", "embedding",
            "--queries-file", str(path), "--out", str(tmp_path / "never")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert message in result.stderr.replace("\n", " ")
    assert not (tmp_path / "never").exists()


def test_unusable_beir_datasets(engine: sa.Engine, tmp_path: Path) -> None:
    """A corpus line that is not an object, a corpus without text, or an embedder whose
    vectors pgvector cannot index are refused before a schema is made."""
    _beir(tmp_path / "ok")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "corpus.jsonl").write_text('["not", "an", "object"]\n')
    (tmp_path / "bad" / "queries.jsonl").write_text('{"_id": "q", "text": "query"}\n')
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "corpus.jsonl").write_text('{"_id": "d", "title": "", "text": " "}\n')
    (tmp_path / "blank" / "queries.jsonl").write_text('{"_id": "q", "text": "query"}\n')
    cases: list[tuple[str, str, type[Exception], str]] = [
        ("bad", "hashing:64", InvalidArgument, "corpus.jsonl:1 is not a JSON object"),
        ("blank", "hashing:64", InvalidArgument, "has no documents with text"),
        ("ok", "hashing:3000", vecalchemy.UnsupportedIndex, "makes 3,000-dimension vectors"),
    ]
    for sub, embedder, error, message in cases:
        with pytest.raises(error, match=re.escape(message)):
            vecalchemy.run_bench(engine, dataset=f"beir:{tmp_path / sub}", embedder=embedder)
    assert scratch_schemas(engine) == []
