"""Benchmark a vector index: recall@k, latency and QPS across its search setting.

:func:`run_bench` sweeps ``hnsw.ef_search`` (or ``ivfflat.probes``) of a column's index,
on one of your tables or on a dataset it loads into a scratch schema (a seeded
synthetic Gaussian mixture, or a BEIR directory), and returns a :class:`BenchResult`:
one :class:`BenchStep` per setting (recall against exact search, p50/p95 latency,
QPS) and the exact-scan baseline. :meth:`BenchResult.save` writes ``bench.json``,
``report.md`` and ``recall_qps.png`` (the plot needs the ``bench`` extra, matplotlib).
``vecalchemy bench`` is the command line for it.

Example::

    result = vecalchemy.run_bench(engine, table="docs", column="embedding", k=10)
    print(result.reaches(0.95))                  # BenchStep(setting='ef_search', value=40, ...)
    files = result.save("bench-out")             # BenchFiles(json=..., markdown=..., plot=...)
"""

from __future__ import annotations

from vecalchemy.bench._run import BenchFiles, BenchResult, BenchStep, run_bench

__all__ = ["BenchFiles", "BenchResult", "BenchStep", "run_bench"]
