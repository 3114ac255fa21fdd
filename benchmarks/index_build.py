"""Index build on 200,000 vectors: ``vecalchemy.build_index`` against a plain ``CREATE INDEX``
with the server's defaults (issue 10).

What is measured
----------------
The wall-clock time of building one HNSW index (cosine, m=16, ef_construction=64) on
``--rows`` (200,000) vectors of ``--dim`` (384) dimensions, two ways, in one run:

* ``default``: ``CREATE INDEX ... USING hnsw (embedding vector_cosine_ops) WITH (m = 16,
  ef_construction = 64)`` on a fresh psycopg connection, with the server's settings as
  they are. The benchmark's own embedded server is started with PostgreSQL's stock
  values for the two settings that matter, ``maintenance_work_mem = 64MB`` and
  ``max_parallel_maintenance_workers = 2`` (vecalchemy's embedded server would
  otherwise write its own tuned values, 1GB and 1, into postgresql.conf), so this is the
  build a stock server gives.
* ``tuned``: ``vecalchemy.build_index(engine, table.c.embedding, metric="cosine",
  index=HNSW(m=16, ef_construction=64))`` on a fresh engine: it sizes
  ``maintenance_work_mem`` for the graph and ``max_parallel_maintenance_workers`` for the
  cores, for the build only. The settings it chose are recorded.
* ``tuned, serial``: the same with ``parallel_workers=0``, to split the gain between
  memory (default -> tuned, serial) and parallelism (tuned, serial -> tuned).

They alternate (default, tuned, tuned serial, default, ...; ``--rounds`` of each), each on a
fresh session after the previous index is dropped and a ``CHECKPOINT``. Reported: the
median time of each, the ratio tuned/default, whether pgvector said the graph no longer
fitted in ``maintenance_work_mem`` (its NOTICE, and after how many tuples), the index
size, and the recall@10 of each index on ``--queries`` (100) queries at the default
``hnsw.ef_search`` (40) against exact results computed with numpy, to show the faster
build is not a worse index.

Data: a Gaussian mixture (64 random unit centres, each vector its centre plus isotropic
noise, L2-normalised), made with numpy from a fixed seed; the queries come from the same
mixture with another seed. Loaded once with :func:`vecalchemy.load` (binary COPY) into
the server kept in ``--data-dir`` (default ``data/bench-index-build/``, gitignored) and
reused by later runs with the same rows and dimensions.

Outputs: ``benchmarks/results/index_build.json`` and the generated part of the "Index
build (issue 10)" section of ``docs/benchmarks.md``. Run from the repository::

    .venv/bin/python benchmarks/index_build.py                 # 200,000 x 384, 2 rounds
    .venv/bin/python benchmarks/index_build.py --rows 20000 --rounds 1   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import sqlalchemy as sa
from pgvector.psycopg import register_vector
from pgvector.sqlalchemy import VECTOR

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import vecalchemy  # noqa: E402
from vecalchemy import HNSW  # noqa: E402
from vecalchemy.server import EmbeddedServer  # noqa: E402

TABLE = "bench_index_build"
INDEX = "bench_index_build_hnsw"
M, EF_CONSTRUCTION, EF_SEARCH, K = 16, 64, 40, 10
CLUSTERS, NOISE, SEED = 64, 0.6, 0
#: PostgreSQL's stock values of the settings build_index chooses: the "server defaults".
STOCK = {"maintenance_work_mem": "64MB", "max_parallel_maintenance_workers": "2"}
DATA_VERSION = "index-build-mixture-v1"
CONTENDERS = ("default", "tuned", "tuned_serial")
RESULTS = REPO / "benchmarks" / "results" / "index_build.json"
DOC = REPO / "docs" / "benchmarks.md"
START, END = "<!-- index_build:start -->", "<!-- index_build:end -->"

Vec = npt.NDArray[np.float32]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def mixture(n: int, dim: int, seed: int) -> Vec:
    """``n`` unit vectors from a mixture of CLUSTERS Gaussians around random unit centres."""
    centres = np.random.default_rng(SEED).standard_normal((CLUSTERS, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    which = rng.integers(0, CLUSTERS, n)
    noise = rng.standard_normal((n, dim)).astype(np.float32) * (NOISE / np.sqrt(dim))
    out = centres[which] + noise
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float32)


def exact_top(vectors: Vec, queries: Vec, k: int) -> npt.NDArray[np.int64]:
    """Exact top-k ids by cosine distance (unit vectors: the largest dot products)."""
    sims = queries @ vectors.T
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def ensure_data(engine: sa.Engine, vectors: Vec) -> None:
    """Create and load the table unless it holds this data already (its comment says)."""
    mark = f"{DATA_VERSION} rows={len(vectors)} dim={vectors.shape[1]}"
    with engine.connect() as conn:
        comment = conn.execute(
            sa.text("SELECT obj_description(to_regclass(:t), 'pg_class')"), {"t": TABLE}
        ).scalar()
    if comment == mark:
        log(f"table {TABLE} holds the data already")
        return
    log(f"loading {len(vectors):,} vectors into {TABLE}")
    table = _table(vectors.shape[1])
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
        table.create(conn)
    started = time.perf_counter()
    ids = np.arange(len(vectors), dtype=np.int64)
    vecalchemy.load(engine, table, {"id": ids, "embedding": vectors})
    with engine.begin() as conn:
        conn.exec_driver_sql(f"COMMENT ON TABLE {TABLE} IS '{mark}'")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"VACUUM (ANALYZE) {TABLE}")
    log(f"loaded in {time.perf_counter() - started:.0f} s")


def _table(dim: int) -> sa.Table:
    return sa.Table(
        TABLE,
        sa.MetaData(),
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("embedding", VECTOR(dim), nullable=False),
    )


def _drop_index(conninfo: dict[str, Any]) -> None:
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute(f"DROP INDEX IF EXISTS {INDEX}")
        conn.execute("CHECKPOINT")


def build_default(conninfo: dict[str, Any]) -> dict[str, Any]:
    """A plain CREATE INDEX on a fresh connection with the server's settings."""
    notices: list[str] = []
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(str(d.message_primary)))
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("maintenance_work_mem", "max_parallel_maintenance_workers")
        }
        started = time.perf_counter()
        conn.execute(
            f"CREATE INDEX {INDEX} ON {TABLE} USING hnsw (embedding vector_cosine_ops) "
            f"WITH (m = {M}, ef_construction = {EF_CONSTRUCTION})"
        )
        seconds = time.perf_counter() - started
    spill = next((n for n in notices if "no longer fits" in n), None)
    return {"seconds": seconds, "settings": settings, "spill_notice": spill}


def build_tuned(url: str, workers: int | None = None) -> dict[str, Any]:
    """vecalchemy.build_index on a fresh engine (``workers``: parallel_workers)."""
    engine = vecalchemy.create_engine(url, poolclass=sa.NullPool)
    try:
        table = sa.Table(TABLE, sa.MetaData(), autoload_with=engine)
        started = time.perf_counter()
        result = vecalchemy.build_index(
            engine,
            table.c.embedding,
            metric="cosine",
            index=HNSW(m=M, ef_construction=EF_CONSTRUCTION, name=INDEX),
            parallel_workers=workers,
        )
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    assert result.action == "built", result
    assert result.settings is not None
    return {
        "seconds": seconds,
        "build_seconds": result.seconds,
        "settings": result.settings.as_dict(),
    }


def measure_index(
    conninfo: dict[str, Any], queries: Vec, truth: npt.NDArray[np.int64]
) -> dict[str, Any]:
    """Recall@K of the index at the default ef_search, its size, and that it is used."""
    hits = 0
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        register_vector(conn)
        conn.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                f"EXPLAIN SELECT id FROM {TABLE} ORDER BY embedding <=> %s LIMIT {K}",
                (queries[0],),
            ).fetchall()
        )
        for q, want in zip(queries, truth, strict=True):
            got = [
                r[0]
                for r in conn.execute(
                    f"SELECT id FROM {TABLE} ORDER BY embedding <=> %s LIMIT {K}", (q,)
                ).fetchall()
            ]
            hits += len(set(got) & set(want.tolist()))
        size = conn.execute(f"SELECT pg_relation_size('{INDEX}')").fetchone()[0]  # type: ignore[index]
    return {
        "recall": hits / (len(queries) * K),
        "index_bytes": int(size),
        "uses_index": INDEX in plan,
    }


def versions(conninfo: dict[str, Any]) -> dict[str, str]:
    with psycopg.connect(**conninfo) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        vec = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()[0]  # type: ignore[index]
    return {"postgresql": str(pg), "pgvector": str(vec), "python": platform.python_version()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=REPO / "data" / "bench-index-build")
    parser.add_argument("--no-doc", action="store_true", help="Do not rewrite docs/benchmarks.md.")
    parser.add_argument(
        "--doc-only", action="store_true", help="Only rewrite the doc from the last results."
    )
    args = parser.parse_args()
    if args.doc_only:
        write_doc(json.loads(RESULTS.read_text()))
        return

    server = EmbeddedServer(args.data_dir, settings={"fsync": "off", **STOCK})
    server.start()
    url = server.url()
    conninfo: dict[str, Any] = {**server.connect_args(), "dbname": "postgres"}
    engine = vecalchemy.create_engine(url)
    vectors = mixture(args.rows, args.dim, SEED + 1)
    queries = mixture(args.queries, args.dim, SEED + 2)
    ensure_data(engine, vectors)
    engine.dispose()
    truth = exact_top(vectors, queries, K)

    runs: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        for contender in CONTENDERS:
            _drop_index(conninfo)
            log(f"round {round_ + 1}: {contender} build")
            if contender == "default":
                run = build_default(conninfo)
            else:
                run = build_tuned(url, 0 if contender == "tuned_serial" else None)
            run.update(contender=contender, round=round_ + 1)
            run.update(measure_index(conninfo, queries, truth))
            log(
                f"  {run['seconds']:.1f} s, recall@{K} {run['recall']:.3f}, "
                f"settings {run['settings']}, spill {run.get('spill_notice')}"
            )
            runs.append(run)
    _drop_index(conninfo)

    def median(contender: str) -> float:
        return statistics.median(r["seconds"] for r in runs if r["contender"] == contender)

    default_s, tuned_s, serial_s = median("default"), median("tuned"), median("tuned_serial")
    tuned_runs = [r for r in runs if r["contender"] == "tuned"]
    default_runs = [r for r in runs if r["contender"] == "default"]
    summary = {
        "rows": args.rows,
        "dim": args.dim,
        "index": f"hnsw vector_cosine_ops m={M} ef_construction={EF_CONSTRUCTION}",
        "queries": args.queries,
        "ef_search": EF_SEARCH,
        "rounds": args.rounds,
        "default_median_s": default_s,
        "tuned_median_s": tuned_s,
        "tuned_serial_median_s": serial_s,
        "ratio": tuned_s / default_s,
        "ratio_serial": serial_s / default_s,
        "parallel_speedup": serial_s / tuned_s,
        "target_ratio": 0.6,
        "default_settings": default_runs[0]["settings"],
        "default_spill": default_runs[0]["spill_notice"],
        "tuned_settings": tuned_runs[0]["settings"],
        "default_recall": statistics.median(r["recall"] for r in default_runs),
        "tuned_recall": statistics.median(r["recall"] for r in tuned_runs),
    }
    out = {
        "benchmark": "index_build",
        "machine": {
            "cores": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
            "platform": platform.platform(),
            "note": "2 cores shared with other sessions: timings are noisy; medians quoted",
        },
        "versions": versions(conninfo),
        "server_settings": {"fsync": "off", **STOCK},
        "summary": summary,
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    log(f"wrote {RESULTS.relative_to(REPO)}: ratio {summary['ratio']:.2f}")
    if not args.no_doc:
        write_doc(out)


def write_doc(out: dict[str, Any]) -> None:
    s = out["summary"]
    t = s["tuned_settings"]
    d = s["default_settings"]
    rows = [
        "| contender | settings | median build (s) | runs (s) | recall@10 | index size |",
        "|---|---|---|---|---|---|",
    ]
    labels = (
        ("default", "plain `CREATE INDEX`"),
        ("tuned", "`build_index`"),
        ("tuned_serial", "`build_index(parallel_workers=0)`"),
    )
    for name, label in labels:
        mine = [r for r in out["runs"] if r["contender"] == name]
        if name == "default":
            setting = (
                f"maintenance_work_mem={d['maintenance_work_mem']}, "
                f"max_parallel_maintenance_workers={d['max_parallel_maintenance_workers']}"
            )
        else:
            mine_settings = mine[0]["settings"]
            setting = (
                f"maintenance_work_mem={mine_settings['maintenance_work_mem']} (estimate "
                f"{mine_settings['estimate']}), max_parallel_maintenance_workers="
                f"{mine_settings['max_parallel_maintenance_workers']}"
            )
        rows.append(
            f"| {label} | {setting} | {statistics.median(r['seconds'] for r in mine):.1f} | "
            + ", ".join(f"{r['seconds']:.1f}" for r in mine)
            + f" | {statistics.median(r['recall'] for r in mine):.3f} | "
            f"{mine[0]['index_bytes'] / 2**20:.0f} MB |"
        )
    spill = s["default_spill"] or "none"
    text = "\n".join(
        [
            START,
            "",
            f"{s['rows']:,} vectors of {s['dim']} dimensions, {s['index']}; "
            f"{s['rounds']} builds of each, alternating, each on a fresh session "
            f"(PostgreSQL {out['versions']['postgresql']}, pgvector "
            f"{out['versions']['pgvector']}, {out['machine']['cores']} cores). The machine's "
            "2 cores are shared with other sessions: the numbers are noisy, medians are "
            "quoted.",
            "",
            *rows,
            "",
            f"**Ratio build_index / default: {s['ratio']:.2f}** (target: at most "
            f"{s['target_ratio']}). Split: memory alone (serial, graph in memory) "
            f"{s['ratio_serial']:.2f} of the default's time; one parallel worker on top: "
            f"{s['parallel_speedup']:.2f}x (serial time / parallel time). pgvector's notice "
            "during "
            "the default build: "
            f'"{spill}". build_index\'s graph estimate was {t["estimate"]}; '
            f"spilled: {t['spilled_after'] or 'no'}.",
            "",
            END,
        ]
    )
    doc = DOC.read_text()
    if START in doc and END in doc:
        before, rest = doc.split(START, 1)
        after = rest.split(END, 1)[1]
        doc = before + text + after
    else:
        doc = doc.rstrip("\n") + "\n\n## Index build (issue 10)\n\n" + text + "\n"
    DOC.write_text(doc)
    log(f"updated {DOC}")


if __name__ == "__main__":
    main()
