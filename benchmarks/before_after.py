"""Query overhead of two versions of vecalchemy, OLD and NEW, measured in one run.

What is measured
----------------
The per-query latency of the contenders of ``benchmarks/query_overhead.py`` that exist
in both versions, on one table, on one server, in one run, so that both versions see
the same machine state:

* ``raw psycopg``: ``set_config('hnsw.ef_search', '40', true)`` then the query, the
  vector bound in binary, one transaction per query (the limit: every ratio is against
  this contender *of the same worker*);
* ``vecalchemy.search()`` with a ``Session`` per query; on a Core ``Connection``;
* ``vecalchemy.asearch()`` on asyncpg and on psycopg (async), an ``AsyncSession`` per query;
* ``session.execute(vecalchemy.nearest(...))``: the bare SELECT, no settings of its own
  (in OLD: no ``ef_search`` at all; NEW sets the ones the statement needs).

Method
------
The table is :func:`query_overhead.prepare_data`'s: the standard library's docstrings
through ``HashingEmbedder(384)``, repeated with noise to ``--rows`` (100,000) rows,
HNSW (m=16, ef_construction=64), cosine; ``--queries`` (500) docstring titles as
queries, k=10, ef_search=40. It is built once, by this script, with the NEW code.

Each version runs in a worker process of its own (``benchmarks/_overhead_worker.py``,
started with ``PYTHONPATH`` set to that version's ``src``) that holds its contenders'
connections for the whole run and answers the driver over stdin/stdout. One warm-up
pass (its hits give recall@10 against the same worker's raw psycopg), then
``--rounds`` rounds: in each round one worker runs all its contenders over all queries,
then the other; OLD goes first in even rounds, NEW in odd ones, and within a worker the
contenders' order rotates each round. Only one worker runs at a time. Latencies and
client CPU times are the median over the rounds of each round's median. Ratios are
paired, so that the drifts of a shared machine (often +-30% from one round to the next)
cancel out: ``/ raw`` is the median over the rounds of the contender's median divided
by raw psycopg's median in the same round and worker; ``NEW / OLD`` the median over the
rounds of NEW's median divided by OLD's in the same round (the two turns are adjacent
in time), with the interquartile range of those per-round ratios.

Round trips: afterwards each worker builds its contenders again, connected through a
byte-level proxy on a Unix socket (:class:`_overhead_worker.CountingProxy`), warms
them up on 10 queries and counts, over ``--roundtrip-queries`` (50) queries, the bursts
the client sends after the server spoke (round trips) and the ``Query``/``Execute``
messages (statements). The timed rounds never go through the proxy.

Outputs ``benchmarks/results/before_after.json`` and prints a markdown table::

    .venv/bin/python benchmarks/before_after.py                  # about 4 minutes
    .venv/bin/python benchmarks/before_after.py --rows 20000 --queries 100 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
WORKER = HERE / "_overhead_worker.py"
# The driver prepares the data with this checkout's code, whatever the venv has installed.
sys.path[:0] = [str(REPO / "src"), str(HERE)]

import query_overhead as qo  # noqa: E402  (the data preparation is reused as is)

import vecalchemy  # noqa: E402
from vecalchemy.server import EmbeddedServer  # noqa: E402

VERSIONS = ("old", "new")


class WorkerProcess:
    """A worker subprocess running one version; ``call`` sends a request, returns the answer."""

    def __init__(self, name: str, src: Path) -> None:
        self.name = name
        self.src = src
        env = dict(os.environ, PYTHONPATH=str(src), PYTHONHASHSEED="0")
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            bufsize=1,
            cwd=str(REPO),
        )

    def call(self, op: str, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} worker exited (code {self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if not answer.pop("ok"):
            raise RuntimeError(f"{self.name} worker: {answer['error']}\n{answer['traceback']}")
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            with suppress(RuntimeError, OSError):
                self.call("close")
            self.proc.wait(timeout=30)


@contextmanager
def database(url: str | None, data_dir: Path) -> Iterator[qo.Database]:
    """``url``, or the embedded server in ``data_dir`` (fsync off), stopped only if started here."""
    server = None
    started = False
    if url is None:
        server = EmbeddedServer(data_dir, settings={"fsync": "off"})
        if not server.status().running:
            print(f"starting the embedded PostgreSQL in {data_dir}", flush=True)
            server.start()
            started = True
        url = server.url()
    resolved = vecalchemy.resolve_url(url)
    try:
        yield qo.Database(url=resolved, params=qo.connection_params(resolved))
    finally:
        if server is not None and started:
            server.stop()


def git_describe(src: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True)
        return out.stdout.strip()

    return {
        "src": str(src),
        "commit": git("rev-parse", "HEAD"),
        "subject": git("log", "-1", "--format=%s")[:120],
        "dirty": bool(git("status", "--porcelain", "--", ".")),
    }


def recall(reference: list[list[int]], hits: list[list[int]]) -> float:
    overlap = [len(set(r) & set(h)) / max(1, len(r)) for r, h in zip(reference, hits, strict=True)]
    return float(np.mean(overlap))


def markdown_table(report: dict[str, Any]) -> str:
    lines = [
        "| contender | OLD median ms | NEW median ms | OLD / raw | NEW / raw "
        "| NEW / OLD (IQR) | client CPU ms OLD → NEW | recall@10 OLD / NEW "
        "| round trips OLD | round trips NEW |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for c in report["contenders"].values():
        old, new = c["old"], c["new"]

        def trips(v: dict[str, Any]) -> str:
            rt = v.get("round_trips_per_query")
            st = v.get("statements_per_query")
            return "?" if rt is None else f"{rt:.2f} ({st:.2f} stmts)"

        lo, hi = c["new_over_old_iqr"]
        lines.append(
            f"| {c['label']} | {old['median_ms']:.3f} | {new['median_ms']:.3f} "
            f"| {old['ratio_to_raw_psycopg']:.2f}x | {new['ratio_to_raw_psycopg']:.2f}x "
            f"| {c['new_over_old']:.3f} ({lo:.2f}-{hi:.2f}) "
            f"| {old['client_cpu_ms_per_query']:.3f} → {new['client_cpu_ms_per_query']:.3f} "
            f"| {old['recall_vs_raw_psycopg']:.3f} / {new['recall_vs_raw_psycopg']:.3f} "
            f"| {trips(old)} | {trips(new)} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the table")
    parser.add_argument("--queries", type=int, default=500, help="query vectors per pass")
    parser.add_argument("--rounds", type=int, default=12, help="measured rounds (even: fair)")
    parser.add_argument(
        "--roundtrip-queries", type=int, default=50, help="queries counted through the proxy"
    )
    parser.add_argument("--url", help="use this server instead of the embedded one")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=REPO / "data" / "bench-pg",
        help="embedded server's data directory (default: ./data/bench-pg)",
    )
    parser.add_argument(
        "--old", type=Path, default=Path("/work/wt-old/src"), help="OLD version's src directory"
    )
    parser.add_argument(
        "--new", type=Path, default=REPO / "src", help="NEW version's src (default: this checkout)"
    )
    parser.add_argument("--reload", action="store_true", help="reload the table")
    parser.add_argument("--output", type=Path, default=RESULTS / "before_after.json")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.queries < 10 or args.rounds < 1 or args.roundtrip_queries < 1:
        parser.error("--rows >= 1, --queries >= 10, --rounds >= 1, --roundtrip-queries >= 1")
    args.roundtrip_queries = min(args.roundtrip_queries, args.queries)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    srcs = {"old": args.old.resolve(), "new": args.new.resolve()}
    with database(args.url, args.data_dir) as db, tempfile.TemporaryDirectory() as tmp:
        data = qo.prepare_data(db, args.rows, args.queries, reload=args.reload)
        server = qo.server_info(db)
        queries_file = Path(tmp) / "queries.npy"
        np.save(queries_file, np.stack(data.queries).astype(np.float32))
        workers = {v: WorkerProcess(v, srcs[v]) for v in VERSIONS}
        try:
            info = {}
            for v, w in workers.items():
                info[v] = w.call(
                    "init",
                    url=db.url.render_as_string(hide_password=False),
                    queries=str(queries_file),
                    table=qo.TABLE,
                    dim=qo.DIM,
                    k=qo.K,
                    ef_search=qo.EF_SEARCH,
                )
                if not info[v]["vecalchemy"].startswith(str(srcs[v])):
                    raise RuntimeError(f"{v} worker imported {info[v]['vecalchemy']}")
                print(f"{v}: {info[v]['vecalchemy']} (pid {info[v]['pid']})", flush=True)
            labels = dict(info["new"]["contenders"])
            keys = [k for k, _ in info["new"]["contenders"]]
            print("warm-up pass (recall)", flush=True)
            hits = {v: w.call("warmup")["hits"] for v, w in workers.items()}
            rounds: dict[str, list[dict[str, Any]]] = {v: [] for v in VERSIONS}
            orders = []
            for r in range(args.rounds):
                order = VERSIONS if r % 2 == 0 else VERSIONS[::-1]
                orders.append(list(order))
                t0 = time.perf_counter()
                for v in order:
                    rounds[v].append(workers[v].call("round", first=r)["stats"])
                line = "; ".join(
                    f"{v} " + ", ".join(f"{k} {rounds[v][-1][k]['median_ms']:.3f}" for k in keys)
                    for v in order
                )
                print(
                    f"round {r + 1}/{args.rounds} ({time.perf_counter() - t0:.0f} s): {line}",
                    flush=True,
                )
            print("counting round trips through a proxy", flush=True)
            counts = {}
            for v, w in workers.items():
                try:
                    counts[v] = w.call("roundtrips", n=args.roundtrip_queries)["counts"]
                except RuntimeError as exc:
                    print(f"round trips of {v} not counted: {exc}", flush=True)
                    counts[v] = {}
        finally:
            for w in workers.values():
                w.close()

    def med(v: str, key: str, stat: str) -> float:
        return float(statistics.median(r[key][stat] for r in rounds[v]))

    contenders: dict[str, Any] = {}
    for key in keys:
        per: dict[str, Any] = {}
        for v in VERSIONS:
            per[v] = {
                "median_ms": med(v, key, "median_ms"),
                "p95_ms": med(v, key, "p95_ms"),
                "qps": med(v, key, "qps"),
                "client_cpu_ms_per_query": med(v, key, "cpu_ms"),
                "ratio_to_raw_psycopg": float(
                    statistics.median(
                        r[key]["median_ms"] / r["raw_psycopg"]["median_ms"] for r in rounds[v]
                    )
                ),
                "recall_vs_raw_psycopg": recall(hits[v]["raw_psycopg"], hits[v][key]),
                **counts[v].get(key, {}),
                "rounds": [r[key] for r in rounds[v]],
            }
        paired = [
            n[key]["median_ms"] / o[key]["median_ms"]
            for o, n in zip(rounds["old"], rounds["new"], strict=True)
        ]
        q1, _, q3 = np.percentile(paired, [25, 50, 75]).tolist()
        contenders[key] = {
            "label": labels[key],
            **per,
            "new_over_old": float(statistics.median(paired)),
            "new_over_old_iqr": [q1, q3],
            "new_over_old_per_round": paired,
        }
    report = {
        "benchmark": "before_after",
        "versions": {
            v: {**git_describe(srcs[v]), "module": info[v]["vecalchemy"]} for v in VERSIONS
        },
        "machine": {
            **qo.machine_info(),
            "load_average_at_end": os.getloadavg(),
            "platform": platform.platform(),
        },
        "server": server,
        "data": {
            "rows": data.rows,
            "version": data.version,
            "documents": data.documents,
            "embedder": f"HashingEmbedder({qo.DIM})",
            "index": "hnsw (m=16, ef_construction=64), vector_cosine_ops",
        },
        "settings": {
            "queries": len(data.queries),
            "k": qo.K,
            "ef_search": qo.EF_SEARCH,
            "rounds": args.rounds,
            "round_order": orders,
            "roundtrip_queries": args.roundtrip_queries,
            "round_trips_counted_by": (
                "a byte-level proxy on a Unix socket: a round trip is a burst of bytes from "
                "the client after bytes from the server; statements are Query ('Q') and "
                "Execute ('E') messages; measured after 10 warm-up queries"
            ),
        },
        "raw_psycopg_same_hits_old_new": hits["old"]["raw_psycopg"] == hits["new"]["raw_psycopg"],
        "contenders": contenders,
        "seconds": time.perf_counter() - started,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(
        f"{data.rows:,} rows x {qo.DIM}, HNSW m=16 ef_construction=64, k={qo.K}, "
        f"ef_search={qo.EF_SEARCH}, {len(data.queries)} queries, median of {args.rounds} "
        f"alternating rounds; OLD {report['versions']['old']['commit'][:7]}, "
        f"NEW {report['versions']['new']['commit'][:7]}"
        + (" (dirty)" if report["versions"]["new"]["dirty"] else "")
    )
    print()
    print(markdown_table(report))
    print(f"\nwrote {args.output} in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
