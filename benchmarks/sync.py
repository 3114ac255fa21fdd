"""Outbox workers against the embedder's own throughput, and in-process re-embedding (issue 9).

Texts: the first N documents of ``../shared/data/dbpedia-entity-5k/corpus.jsonl``
(BEIR: title + text, DBpedia abstracts), in tables ``(id, title, body, embedding
vector(384), embedding_source_hash, embedding_model)`` declared with
``Embedding(384, source=("title", "body"), embedder=SPEC, sync=...)`` and no vector
index, one set per embedder: ``minilm`` (all-MiniLM-L6-v2 on the CPU, the real one)
and ``hashing`` (fast, so that the queue's own cost shows).

Per round, for each worker count k in ``--workers`` (order rotated by round):

1. k worker processes (``_sync_worker.py worker``: ``vecalchemy.sync.Worker`` with the
   embedder built and warmed up first) are started and wait on LISTEN.
2. **Trigger cost**: the same ``UPDATE t SET body = <new revision>`` of all N rows, one
   statement, one transaction, on the outbox table (trigger installed) and on a twin
   table without it; (outbox - twin) / N is the trigger's cost per row.
3. **Catch-up**: from the outbox UPDATE's COMMIT until the queue of the target is empty
   (polled every 20 ms), then every row is checked to be current (its
   ``embedding_source_hash`` is the hash of its text, its vector is not NULL, its model
   is the embedder's). rows/s = N / that time.
4. The workers are stopped (SIGTERM); each reports its stats and the split of its busy
   time (claim, read, embed, write, ``_vector_text``).

Once per round, **the limit**: ``embed_documents`` of the same N texts in batches of the
worker's batch size, in a process of the same kind with the threads of one worker.
Ratios are paired (a run over its round's limit), and the medians over rounds reported.

**Queue overhead per row** (from the 1-worker runs): (catch-up wall time - the worker's
own ``embed_seconds``) / N, and (catch-up wall time - N / limit) / N.

**Inline** (``_sync_worker.py inline``): a flush of N changed ORM objects whose
embedding is re-embedded in the flush, against the same flush with vectors computed
before and assigned. Overhead = (inline flush - plain flush - embedder time inside the
inline flush) / (plain flush + embedder time inside the inline flush).

Threads: ``minilm`` runs with torch threads = max(1, cores // k) per worker (2 for one
worker and the limit on 2 cores, 1 each for 2 and 4 workers); ``OMP_NUM_THREADS`` is
set to the same. Run from the repository::

    .venv/bin/python benchmarks/sync.py                      # about 20 minutes on 2 cores
    .venv/bin/python benchmarks/sync.py --embedders hashing --rounds-hashing 1   # ~1 min
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import vecalchemy
import vecalchemy.sync
from vecalchemy.server import EmbeddedServer

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from _sync_worker import models  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
DOC = REPO / "docs" / "benchmarks.md"
DOC_HEADING = "## Sync: outbox workers and in-process re-embedding (issue 9)"
CORPUS = REPO.parent / "shared" / "data" / "dbpedia-entity-5k" / "corpus.jsonl"
DATABASE = "bench_sync"
SPECS = {"minilm": "minilm", "hashing": "hashing"}


def load_corpus(n: int) -> list[tuple[int, str, str]]:
    docs = []
    with CORPUS.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= n:
                break
            d = json.loads(line)
            docs.append((i, d["title"], d["text"]))
    if len(docs) < n:
        raise SystemExit(f"{CORPUS} has only {len(docs)} documents")
    return docs


#: ``--minilm-threads``: torch threads per process for every worker count (0: cores // k).
FIXED_THREADS = 0


def threads_for(key: str, k: int) -> int:
    if key != "minilm":
        return 1
    return FIXED_THREADS or max(1, (os.cpu_count() or 1) // k)


def helper(role: str, url: str, key: str, threads: int, *extra: str) -> subprocess.Popen[str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env["TOKENIZERS_PARALLELISM"] = "false"
    cmd = [
        sys.executable,
        str(HERE / "_sync_worker.py"),
        role,
        "--url",
        url,
        "--spec",
        SPECS[key],
        "--key",
        key,
        "--threads",
        str(threads),
        *extra,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)


def answer(proc: subprocess.Popen[str], timeout: float = 3600) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"helper failed with {proc.returncode}: {out[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def wait_ready(procs: list[subprocess.Popen[str]], timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    for p in procs:
        assert p.stdout is not None
        while True:
            left = end - time.monotonic()
            if left <= 0 or p.poll() is not None:
                raise RuntimeError("a worker did not get ready")
            r, _, _ = select.select([p.stdout], [], [], left)
            if r and '"ready"' in p.stdout.readline():
                break


def current_sql(table: str, model: str) -> str:
    h = "encode(sha256(convert_to(concat_ws(E'\\n\\n', title::text, body::text), 'UTF8')), 'hex')"
    return (
        f"SELECT count(*) FROM {table} WHERE embedding IS NOT NULL AND "
        f"embedding_source_hash = {h} AND embedding_model = '{model}'"
    )


class Bench:
    def __init__(self, url: str, args: argparse.Namespace) -> None:
        self.url = url
        self.args = args
        self.engine = vecalchemy.create_engine(url)
        self.rev = 0

    def setup(self, key: str, n: int) -> dict[str, Any]:
        m = models(key, SPECS[key])
        base = m["base"]
        with self.engine.begin() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
            for t in ("outbox", "plain", "inline"):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS bench_sync_{key}_{t}")
            base.metadata.create_all(conn)
        target = vecalchemy.sync.install(self.engine, m["outbox"].embedding)
        rows = [{"id": i, "title": t, "body": b} for i, t, b in load_corpus(n)]
        with self.engine.begin() as conn:
            for t in ("outbox", "plain", "inline"):
                conn.execute(sa.insert(m[t].__table__), rows)
            conn.execute(
                sa.text("DELETE FROM vecalchemy.sync_queue WHERE target = :t"), {"t": target.name}
            )
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for t in ("outbox", "plain", "inline"):
                conn.exec_driver_sql(f"VACUUM ANALYZE bench_sync_{key}_{t}")
        return {"target": target.name, "model": target.embedder_name, "models": m}

    def update(self, table: str) -> tuple[float, float]:
        """UPDATE every row's body to a new revision; (seconds incl. commit, commit start)."""
        with self.engine.connect() as conn:
            t = time.perf_counter()
            conn.execute(
                sa.text(f"UPDATE {table} SET body = split_part(body, ' ~rev', 1) || :tag"),
                {"tag": f" ~rev{self.rev}"},
            )
            committing = time.perf_counter()
            conn.commit()
            return time.perf_counter() - t, committing

    def queued(self, conn: sa.Connection, target: str) -> int:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM vecalchemy.sync_queue WHERE target = :t"),
                {"t": target},
            ).scalar_one()
        )

    def outbox_run(self, key: str, st: dict[str, Any], k: int, n: int) -> dict[str, Any]:
        table = f"bench_sync_{key}_outbox"
        threads = threads_for(key, k)
        extra = [
            "--target",
            st["target"],
            "--batch-size",
            str(self.args.batch_size),
            "--poll-interval",
            str(self.args.poll_interval),
        ]
        procs = [helper("worker", self.url, key, threads, *extra) for _ in range(k)]
        try:
            wait_ready(procs)
            time.sleep(0.3)
            self.rev += 1
            plain_s, _ = self.update(f"bench_sync_{key}_plain")
            outbox_s, t0 = self.update(table)
            with self.engine.connect() as conn:
                while True:
                    left = self.queued(conn, st["target"])
                    conn.commit()
                    if left == 0:
                        break
                    time.sleep(self.args.watch_interval)
                t1 = time.perf_counter()
                current = int(conn.execute(sa.text(current_sql(table, st["model"]))).scalar_one())
            for p in procs:
                p.send_signal(signal.SIGTERM)
            stats = [answer(p, timeout=120) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        wall = t1 - t0
        return {
            "workers": k,
            "torch_threads_per_worker": threads if key == "minilm" else None,
            "rows": n,
            "current_after": current,
            "catch_up_seconds": wall,
            "rows_per_second": n / wall,
            "update_seconds_outbox": outbox_s,
            "update_seconds_plain": plain_s,
            "trigger_ms_per_row": 1000 * (outbox_s - plain_s) / n,
            "worker_stats": stats,
        }

    def limit(self, key: str, n: int) -> dict[str, Any]:
        p = helper(
            "limit",
            self.url,
            key,
            threads_for(key, 1),
            "--table",
            f"bench_sync_{key}_outbox",
            "--batch-size",
            str(self.args.batch_size),
        )
        return answer(p)

    def inline(self, key: str, rounds: int) -> dict[str, Any]:
        p = helper("inline", self.url, key, threads_for(key, 1), "--rounds", str(rounds))
        return answer(p)


def med(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def summarize(
    key: str,
    runs: list[dict[str, Any]],
    limits: list[dict[str, Any]],
    inline: dict[str, Any] | None,
    n: int,
) -> dict[str, Any]:
    by_k: dict[int, list[dict[str, Any]]] = {}
    for r in runs:
        by_k.setdefault(r["workers"], []).append(r)
    lim = [x["per_second"] for x in limits]
    out: dict[str, Any] = {
        "rows": n,
        "limit_rows_per_second": med(lim),
        "limit_runs": lim,
        "workers": {},
    }
    for k, rs in sorted(by_k.items()):
        ratios = [r["rows_per_second"] / limits[r["round"]]["per_second"] for r in rs]
        busy = {}
        for part in ("claim", "process", "embed", "write", "vector_text"):
            busy[part] = med([sum(w["seconds"][part] for w in r["worker_stats"]) / n for r in rs])
        busy["read"] = busy.pop("process") - busy["embed"] - busy["write"]
        entry = {
            "rows_per_second": med([r["rows_per_second"] for r in rs]),
            "runs_rows_per_second": [r["rows_per_second"] for r in rs],
            "ratio_to_limit": med(ratios),
            "ratios": ratios,
            "catch_up_seconds": med([r["catch_up_seconds"] for r in rs]),
            "torch_threads_per_worker": rs[0]["torch_threads_per_worker"],
            "all_current": all(r["current_after"] == n for r in rs),
            "worker_seconds_per_row": {p: 1000 * v for p, v in busy.items()},
            "batches": med([sum(w["batches"] for w in r["worker_stats"]) for r in rs]),
        }
        if k == 1:
            entry["queue_overhead_ms_per_row"] = med(
                [
                    1000 * (r["catch_up_seconds"] - r["worker_stats"][0]["embed_seconds"]) / n
                    for r in rs
                ]
            )
            entry["queue_overhead_ms_per_row_vs_limit"] = med(
                [
                    1000 * (r["catch_up_seconds"] - n / limits[r["round"]]["per_second"]) / n
                    for r in rs
                ]
            )
        out["workers"][str(k)] = entry
    out["trigger_ms_per_row"] = med([r["trigger_ms_per_row"] for r in runs])
    out["update_ms_per_row_plain"] = med([1000 * r["update_seconds_plain"] / n for r in runs])
    out["update_ms_per_row_outbox"] = med([1000 * r["update_seconds_outbox"] / n for r in runs])
    if inline is None:
        return out
    rounds = inline["rounds"]
    over = [
        (r["inline"] - r["plain"] - r["embed_in_flush"]) / (r["plain"] + r["embed_in_flush"])
        for r in rounds
    ]
    out["inline"] = {
        "rows": inline["rows"],
        "all_current": inline["current_after"] == inline["rows"],
        "inline_flush_seconds": med([r["inline"] for r in rounds]),
        "plain_flush_seconds": med([r["plain"] for r in rounds]),
        "embed_in_flush_seconds": med([r["embed_in_flush"] for r in rounds]),
        "embed_separate_seconds": med([r["embed_separate"] for r in rounds]),
        "hook_ms_per_row": med(
            [
                1000 * (r["inline"] - r["plain"] - r["embed_in_flush"]) / inline["rows"]
                for r in rounds
            ]
        ),
        "overhead": med(over),
        "overheads": over,
        "rounds": rounds,
    }
    return out


def pkg(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine(engine: sa.Engine) -> dict[str, Any]:
    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    with engine.connect() as conn:
        pg = conn.exec_driver_sql("SHOW server_version").scalar()
        ext = conn.exec_driver_sql(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).scalar()
    return {
        "cpu_count": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "postgresql": pg,
        "pgvector_extension": ext,
        "packages": {
            p: pkg(p) for p in ("sqlalchemy", "psycopg", "torch", "sentence-transformers", "numpy")
        },
        "load_average_at_end": os.getloadavg(),
    }


def markdown(res: dict[str, Any]) -> str:
    lines = [
        "| embedder | N | workers (torch threads each) | rows/s (median) | runs | x limit"
        " (median of paired) | catch-up (s) |",
        "|---|--:|---|--:|---|--:|--:|",
    ]
    for key, r in res["embedders"].items():
        lines.append(
            f"| {key} | {r['rows']:,} | the limit: `embed_documents` alone, batches of "
            f"{res['batch_size']} | {r['limit_rows_per_second']:,.1f} | "
            + ", ".join(f"{x:,.1f}" for x in r["limit_runs"])
            + " | 1.00 | |"
        )
        for k, w in r["workers"].items():
            th = w["torch_threads_per_worker"]
            lines.append(
                f"| {key} | {r['rows']:,} | {k}"
                + (f" ({th})" if th else "")
                + f" | {w['rows_per_second']:,.1f} | "
                + ", ".join(f"{x:,.1f}" for x in w["runs_rows_per_second"])
                + f" | **{w['ratio_to_limit']:.2f}** | {w['catch_up_seconds']:.1f} |"
            )
    lines += [
        "",
        "| embedder | queue overhead per row, 1 worker (wall - embed_seconds) | (wall - N/limit)"
        " | trigger cost per row | UPDATE per row, no trigger | one worker's busy time per"
        " row: claim / read / embed / write (of which `_vector_text`) |",
        "|---|--:|--:|--:|--:|---|",
    ]
    for key, r in res["embedders"].items():
        w = r["workers"].get("1")
        if w is None:
            continue
        b = w["worker_seconds_per_row"]
        lines.append(
            f"| {key} | {w['queue_overhead_ms_per_row']:.3f} ms | "
            f"{w['queue_overhead_ms_per_row_vs_limit']:.3f} ms | "
            f"{r['trigger_ms_per_row']:.3f} ms | {r['update_ms_per_row_plain']:.3f} ms | "
            f"{b['claim']:.3f} / {b['read']:.3f} / {b['embed']:.3f} / {b['write']:.3f} "
            f"({b['vector_text']:.3f}) ms |"
        )
    lines += [
        "",
        "| embedder | N objects | plain flush (vectors assigned) | embedder inside the inline "
        "flush | inline flush | overhead (median) | per row | embed_documents separately |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for key, r in res["embedders"].items():
        if "inline" not in r:
            continue
        i = r["inline"]
        lines.append(
            f"| {key} | {i['rows']:,} | {i['plain_flush_seconds']:.3f} s | "
            f"{i['embed_in_flush_seconds']:.3f} s | {i['inline_flush_seconds']:.3f} s | "
            f"**{100 * i['overhead']:+.1f}%** | {i['hook_ms_per_row']:+.3f} ms | "
            f"{i['embed_separate_seconds']:.3f} s |"
        )
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no PNG (pip install -e '.[bench]')")
        return False
    keys = list(res["embedders"])
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        r = res["embedders"][key]
        ks = [int(k) for k in r["workers"]]
        ys = [r["workers"][str(k)]["rows_per_second"] for k in ks]
        for k in ks:
            runs = r["workers"][str(k)]["runs_rows_per_second"]
            ax.scatter([k] * len(runs), runs, color="tab:blue", alpha=0.35, s=14)
        ax.plot(ks, ys, "o-", color="tab:blue", label="outbox workers (median)")
        lim = r["limit_rows_per_second"]
        ax.axhline(lim, color="black", ls="--", label=f"limit: embedder alone ({lim:,.0f}/s)")
        ax.axhline(0.85 * lim, color="grey", ls=":", label="0.85 x limit (target, 1 worker)")
        ax.set_xticks(ks)
        ax.set_xlabel("worker processes (2 cores)")
        ax.set_ylabel("rows/s until all embeddings current")
        ax.set_title(f"{key}, N = {r['rows']:,}")
        ax.set_ylim(0, max(max(ys), lim) * 1.25)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def refresh_doc(table: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    start, end = "<!-- sync:start -->", "<!-- sync:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        DOC.write_text(f"{head}{start}\n{table}\n{end}{tail}", encoding="utf-8")
    else:
        print(f"docs/benchmarks.md has no {start} ... {end} markers; table not written there")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--embedders", nargs="*", default=["hashing", "minilm"], choices=list(SPECS))
    p.add_argument("--rows-minilm", type=int, default=1000)
    p.add_argument("--rows-hashing", type=int, default=5000)
    p.add_argument("--rounds-minilm", type=int, default=2)
    p.add_argument("--rounds-hashing", type=int, default=3)
    p.add_argument("--workers", type=int, nargs="*", default=[1, 2, 4])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--poll-interval", type=float, default=1.0, help="the workers' polling")
    p.add_argument(
        "--watch-interval", type=float, default=0.02, help="seconds between the driver's checks"
    )
    p.add_argument("--minilm-threads", type=int, default=0, help="torch threads per process")
    p.add_argument("--no-inline", action="store_true", help="skip the inline flushes")
    p.add_argument("--url", help="use this server (any database) instead of the embedded one")
    p.add_argument("--data-dir", default=str(REPO / "data" / "bench-pg"))
    p.add_argument("--out", default=str(RESULTS / "sync.json"))
    p.add_argument("--no-doc", action="store_true", help="do not refresh docs/benchmarks.md")
    args = p.parse_args(argv)
    global FIXED_THREADS
    FIXED_THREADS = args.minilm_threads

    server = None
    started = False
    url = args.url
    if url is None:
        server = EmbeddedServer(args.data_dir)
        if not server.status().running:
            server.start()
            started = True
        admin = vecalchemy.create_engine(server.url())
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            conn.exec_driver_sql(f"CREATE DATABASE {DATABASE}")
        admin.dispose()
        url = server.url(database=DATABASE)
    bench = Bench(url, args)
    try:
        res: dict[str, Any] = {
            "benchmark": "sync: outbox workers and in-process re-embedding (issue 9)",
            "corpus": "dbpedia-entity-5k corpus.jsonl (first N documents), title + text",
            "batch_size": args.batch_size,
            "poll_interval": args.poll_interval,
            "vector_index": None,
            "embedders": {},
        }
        raw: dict[str, Any] = {}
        for key in args.embedders:
            n = args.rows_minilm if key == "minilm" else args.rows_hashing
            rounds = args.rounds_minilm if key == "minilm" else args.rounds_hashing
            st = bench.setup(key, n)
            runs, limits = [], []
            for r in range(rounds):
                shift = r % len(args.workers)
                order = args.workers[shift:] + args.workers[:shift]
                if r % 2 == 0:
                    limits.append(bench.limit(key, n))
                    print(
                        f"{key} round {r + 1}: limit {limits[-1]['per_second']:.1f}/s", flush=True
                    )
                for k in order:
                    run = bench.outbox_run(key, st, k, n)
                    run["round"] = r
                    runs.append(run)
                    print(
                        f"{key} round {r + 1}: {k} workers {run['rows_per_second']:.1f} rows/s "
                        f"({run['catch_up_seconds']:.2f} s), trigger "
                        f"{run['trigger_ms_per_row']:.3f} ms/row, current "
                        f"{run['current_after']}/{n}",
                        flush=True,
                    )
                if r % 2 == 1:
                    limits.append(bench.limit(key, n))
                    print(
                        f"{key} round {r + 1}: limit {limits[-1]['per_second']:.1f}/s", flush=True
                    )
            inline = None if args.no_inline else bench.inline(key, rounds)
            raw[key] = {"runs": runs, "limits": limits, "inline": inline}
            res["embedders"][key] = summarize(key, runs, limits, inline, n)
            res["embedders"][key]["embedder"] = st["model"]
            res["embedders"][key]["rounds"] = rounds
            if inline is not None:
                over = res["embedders"][key]["inline"]["overhead"]
                print(f"{key} inline overhead {100 * over:+.1f}%", flush=True)
        res["machine"] = machine(bench.engine)
        res["raw"] = raw
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2) + "\n")
        table = markdown(res)
        print()
        print(table)
        if plot(res, out.with_suffix(".png")):
            print(f"wrote {out.with_suffix('.png')}")
        if not args.no_doc and out.resolve() == (RESULTS / "sync.json").resolve():
            refresh_doc(table)
    finally:
        bench.engine.dispose()
        if server is not None and started:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
