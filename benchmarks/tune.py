"""Does ``vecalchemy.tune`` pick the setting an exhaustive sweep would? (issue 10)

On the real-embedding dataset of the search benchmark (``_dataset.build_real``: MiniLM
vectors of 20,187 standard-library docstring chunks, and 200 queries embedded from
held-out documents), with an HNSW index (m=16, ef_construction=64, cosine):

1. ``tune()`` runs on the first 100 queries (it tunes on half of them and checks on the
   other half), for several recall targets at k=10; also without given queries (the
   column's own rows, as ``vecalchemy tune`` does by default) and without refinement.
2. An exhaustive sweep measures, on the other 100 queries (held out from every tune
   run; the 200 are split at random), the recall@10 (against exact numpy search) and
   the median latency of every ef_search from 10 to 400.
3. For each target, the best setting is the smallest ef_search of the sweep whose
   held-out recall reaches the target (an HNSW scan does more work at a larger
   ef_search; the fastest measured one is also recorded); tune's choice and the best
   are then timed head to head (interleaved rounds, medians), and the ratio is
   reported.

Writes ``benchmarks/results/tune.json`` and ``tune.png`` and the section between the
``tune`` markers of ``docs/benchmarks.md``.

Usage: ``python benchmarks/tune.py [--url URL] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from _dataset import bench_dir, build_real, exact_topk, log
from _doc import replace_section
from search import database
from sqlalchemy import BigInteger
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import vecalchemy
from vecalchemy import HNSW, Embedding
from vecalchemy.load import load

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DOC = REPO / "docs" / "benchmarks.md"
K = 10
TARGETS = (0.90, 0.95, 0.98, 0.99)
SWEEP = (*range(10, 200, 5), *range(200, 401, 20))
TABLE = "bench_tune"


class Base(DeclarativeBase):
    pass


class Chunk(Base):
    __tablename__ = TABLE
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    embedding = Embedding(384, metric="cosine", index=HNSW(m=16, ef_construction=64))


def prepare(engine: sa.Engine, vectors: np.ndarray) -> None:
    with engine.connect() as conn:
        exists = sa.inspect(conn).has_table(TABLE)
        rows = conn.execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar() if exists else None
    if rows == len(vectors):
        log(f"table {TABLE} already holds {rows:,} rows")
        return
    Base.metadata.drop_all(engine)
    with vecalchemy.defer_indexes():
        Base.metadata.create_all(engine)
    load(engine, Chunk, {"id": np.arange(len(vectors)), "embedding": vectors})
    started = time.perf_counter()
    vecalchemy.build_indexes(engine, Chunk)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ANALYZE {TABLE}")
    log(f"HNSW index built in {time.perf_counter() - started:.0f} s")


def run_queries(
    conn: sa.Connection, queries: np.ndarray, ef: int
) -> tuple[list[list[tuple[int, float]]], list[float]]:
    """(id, distance) hits and the latency (ms) of ``search()`` at ``ef``, per query."""
    found: list[list[tuple[int, float]]] = []
    times: list[float] = []
    for q in queries:
        t0 = time.perf_counter()
        hits = vecalchemy.search(conn, Chunk.embedding, q, k=K, ef_search=ef, strategy="index")
        times.append((time.perf_counter() - t0) * 1000)
        found.append([(h.row.id, h.distance) for h in hits])
    return found, times


def per_query_recall(
    found: list[list[tuple[int, float]]], ids: np.ndarray, dists: np.ndarray
) -> np.ndarray:
    """recall@K per query against exact numpy search; a hit tied with the K-th exact
    distance counts (the same rule as vecalchemy.measure_recall)."""
    out = []
    for hits, t_ids, t_d in zip(found, ids, dists, strict=True):
        truth = set(t_ids.tolist())
        last = float(t_d[-1]) + 1e-5
        out.append(min(K, sum(1 for i, d in hits if i in truth or d <= last)) / K)
    return np.asarray(out)


def head_to_head(
    conn: sa.Connection, queries: np.ndarray, a: int, b: int, rounds: int
) -> tuple[float, float]:
    """Median latency (ms) of ``a`` and ``b`` over interleaved rounds."""
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(rounds):
        ta.append(statistics.median(run_queries(conn, queries, a)[1]))
        tb.append(statistics.median(run_queries(conn, queries, b)[1]))
    return statistics.median(ta), statistics.median(tb)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--passes", type=int, default=3, help="sweep passes (latency medians)")
    parser.add_argument("--splits", type=int, default=5, help="random tuning/held-out splits")
    parser.add_argument("--confidence", type=float, help="tune's confidence (default: its own)")
    parser.add_argument("--out", default="tune.json", help="results file in benchmarks/results")
    parser.add_argument(
        "--doc-only", action="store_true", help="redraw the plot and the doc from tune.json"
    )
    args = parser.parse_args()
    if args.doc_only:
        out = json.loads((RESULTS / "tune.json").read_text())
        plot(out)
        replace_section(DOC, "tune", render(out))
        return
    data = build_real(bench_dir())
    queries = data.queries.astype(np.float32)
    ids, dists = exact_topk(data.vectors, queries, K)
    with database(args.url, bench_dir() / "pg-tune") as db:
        engine = vecalchemy.create_engine(db.url)
        prepare(engine, data.vectors)
        with engine.connect() as conn:
            log("warming up")
            run_queries(conn, queries, 400)
            log(f"exhaustive sweep: {len(SWEEP)} ef_search values x {len(queries)} queries")
            recall_at: dict[int, np.ndarray] = {}
            ms_at: dict[int, list[float]] = {}
            for p in range(args.passes):
                for ef in SWEEP:
                    found, times = run_queries(conn, queries, ef)
                    recall_at[ef] = per_query_recall(found, ids, dists)
                    ms_at.setdefault(ef, []).append(statistics.median(times))
                log(f"pass {p + 1}/{args.passes} done")

            def recall_of(ef: int, rows: np.ndarray) -> float:
                if ef not in recall_at:
                    found, _ = run_queries(conn, queries, ef)
                    recall_at[ef] = per_query_recall(found, ids, dists)
                return float(recall_at[ef][rows].mean())

            results = []
            for target in TARGETS:
                row: dict[str, Any] = {"target": target, "splits": []}
                for split in range(args.splits):
                    order = np.random.default_rng(100 + split).permutation(len(queries))
                    tune_rows, held_rows = order[:100], order[100:]
                    reaching = [ef for ef in SWEEP if recall_of(ef, held_rows) >= target]
                    best = min(reaching) if reaching else None
                    main_kw: dict[str, Any] = {"queries": list(queries[tune_rows])}
                    if args.confidence is not None:
                        main_kw["confidence"] = args.confidence
                    variants = [("tune", main_kw)]
                    if split == 0:
                        variants += [
                            ("tune_sampled", {"sample": 200}),
                            ("tune_coarse", {"queries": list(queries[tune_rows]), "refine": False}),
                            (
                                "tune_plain_means",
                                {"queries": list(queries[tune_rows]), "confidence": 0.5},
                            ),
                        ]
                    entry: dict[str, Any] = {"split": split, "best": best}
                    for name, kw in variants:
                        started = time.perf_counter()
                        t = vecalchemy.tune(conn, Chunk.embedding, target=target, k=K, **kw)
                        got: dict[str, Any] = {
                            "value": t.value,
                            "reached": t.reached,
                            "tune_recall": t.recall,
                            "tune_holdout_recall": t.holdout_recall,
                            "heldout_recall": round(recall_of(t.value, held_rows), 4),
                            "steps": len(t.steps),
                            "seconds": round(time.perf_counter() - started, 1),
                        }
                        if best is not None:
                            mine, theirs = head_to_head(
                                conn, queries[held_rows], t.value, best, args.rounds
                            )
                            got["latency_ratio"] = round(mine / theirs, 3)
                        entry[name] = got
                    log(f"target {target} split {split}: {json.dumps(entry)}")
                    row["splits"].append(entry)
                tuned = [e["tune"] for e in row["splits"]]
                row["reached_heldout"] = sum(g["heldout_recall"] >= target for g in tuned)
                ratios = [g["latency_ratio"] for g in tuned if "latency_ratio" in g]
                row["median_latency_ratio"] = (
                    round(statistics.median(ratios), 3) if ratios else None
                )
                row["within_10pct"] = sum(r <= 1.10 for r in ratios)
                results.append(row)
        engine.dispose()
    out = {
        "dataset": {
            "rows": data.rows,
            "dim": 384,
            "queries": len(queries),
            **{k: v for k, v in data.meta.items() if k in ("corpus", "chunk_size", "version")},
        },
        "index": {"method": "hnsw", "m": 16, "ef_construction": 64, "metric": "cosine"},
        "k": K,
        "sweep": {
            str(ef): {
                "recall_all_queries": round(float(recall_at[ef].mean()), 4),
                "p50_ms": round(statistics.median(ms_at[ef]), 3),
            }
            for ef in SWEEP
        },
        "targets": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out["confidence"] = args.confidence
    (RESULTS / args.out).write_text(json.dumps(out, indent=2) + "\n")
    if args.out == "tune.json":
        plot(out)
        replace_section(DOC, "tune", render(out))
    log("wrote benchmarks/results/tune.json, tune.png and docs/benchmarks.md")


def plot(out: dict[str, Any]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is missing: no plot (pip install 'vecalchemy[bench]')")
        return
    efs = [int(e) for e in out["sweep"]]
    rec = [out["sweep"][str(e)]["recall_all_queries"] for e in efs]
    ms = [out["sweep"][str(e)]["p50_ms"] for e in efs]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(efs, rec, "-", color="tab:blue", label="recall@10 (all 200 queries)")
    ax.set_xlabel("hnsw.ef_search")
    ax.set_ylabel("recall@10")
    ax2 = ax.twinx()
    ax2.plot(efs, ms, ":", color="tab:gray", label="p50 latency")
    ax2.set_ylabel("p50 latency (ms)")
    for row in out["targets"]:
        ax.axhline(row["target"], color="tab:red", lw=0.5, alpha=0.4)
        for e in row["splits"]:
            t = e["tune"]
            ax.plot([t["value"]], [t["heldout_recall"]], "o", color="tab:red", ms=3)
        first = row["splits"][0]["tune"]
        ax.annotate(
            f"tune {row['target']}",
            (first["value"], first["heldout_recall"]),
            fontsize=7,
            xytext=(4, -10),
            textcoords="offset points",
        )
    ax.set_title("vecalchemy.tune's choices on the exhaustive sweep (20k MiniLM chunks)")
    fig.tight_layout()
    fig.savefig(RESULTS / "tune.png", dpi=110)


def render(out: dict[str, Any]) -> str:
    n = len(out["targets"][0]["splits"])
    lines = [
        f"Real MiniLM vectors ({out['dataset']['rows']:,} rows x 384, HNSW m=16, "
        f"ef_construction=64, cosine), k=10, {out['dataset']['queries']} real queries split "
        f"at random {n} times into 100 given to `tune` (it tunes on 50 and checks on 50) and "
        "100 held out from it. *best* is the smallest ef_search of an exhaustive sweep "
        "(10-400) whose recall on the held-out 100 reaches the target; latency ratios are "
        "medians of interleaved head-to-head rounds on the held-out queries. "
        "Plot: `benchmarks/results/tune.png`.",
        "",
        "| target | tune's value (per split) | best (per split) | held-out recall of tune's value "
        "| reaches target | latency vs best (median) | within 10% |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in out["targets"]:
        values = ", ".join(str(e["tune"]["value"]) for e in r["splits"])
        bests = ", ".join(str(e["best"]) for e in r["splits"])
        recalls = ", ".join(f"{e['tune']['heldout_recall']:.3f}" for e in r["splits"])
        ratio = r["median_latency_ratio"]
        lines.append(
            f"| {r['target']} | {values} | {bests} | {recalls} | {r['reached_heldout']}/{n} | "
            f"{'n/a' if ratio is None else f'{ratio:.2f}x'} | {r['within_10pct']}/{n} |"
        )
    lines += [
        "",
        "Variants on split 0 (value, held-out recall, latency vs best):",
        "",
        "| target | tune | rows of the table as queries (`vecalchemy tune` without "
        "`--queries-file`) | no bisection | plain means (confidence 0.5) |",
        "|---|---|---|---|---|",
    ]
    for r in out["targets"]:
        e = r["splits"][0]
        cells = []
        for name in ("tune", "tune_sampled", "tune_coarse", "tune_plain_means"):
            g = e[name]
            ratio = g.get("latency_ratio")
            cells.append(
                f"{g['value']}, {g['heldout_recall']:.3f}, "
                f"{'n/a' if ratio is None else f'{ratio:.2f}x'}"
            )
        lines.append(f"| {r['target']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
