"""Recall of a vector index, measured, and the smallest setting that reaches a target.

:func:`measure_recall` runs the same queries through the index (``strategy="index"``,
the way :func:`vecalchemy.search` walks it, without the exact fallback) and exactly
(``strategy="exact"``), and reports recall@k: the share of the exact top ``k`` that
the index found. :func:`tune` sweeps ``hnsw.ef_search`` (or ``ivfflat.probes``) on
tuning queries, takes the smallest value whose recall reaches the target, and checks it
on held-out queries it did not tune on.

Queries are given, or sampled from the column's own rows (``sample``): each then finds
itself, as an application's query rarely does, so recall is a little optimistic;
pass real queries when you have them.

Example::

    with engine.connect() as conn:
        r = vecalchemy.measure_recall(conn, Doc.embedding, k=10, ef_search=40)
        print(r.recall, r.index_ms, r.exact_ms)
        t = vecalchemy.tune(conn, Doc.embedding, target=0.95, k=10)
        print(t.value, t.holdout_recall)    # e.g. 80, 0.962
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection

from vecalchemy._sql import column_of
from vecalchemy._typing import Where
from vecalchemy.errors import InvalidSearch
from vecalchemy.metrics import MAX_EF_SEARCH
from vecalchemy.schema import IVFFlat, resolve_spec
from vecalchemy.search._sample import sample_vectors
from vecalchemy.search.vector import search

__all__ = ["RecallResult", "TuneResult", "measure_recall", "tune"]

#: The ef_search values :func:`tune` tries by default (HNSW).
EF_SWEEP = (10, 20, 40, 60, 80, 120, 160, 240, 320, 480, 640, 1000)
#: The probes values :func:`tune` tries by default (IVFFlat).
PROBES_SWEEP = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128)


@dataclass(frozen=True)
class RecallResult:
    """Recall@k of the index on ``queries`` queries (mean, and per query), with the
    setting used and the median latency of the index and the exact searches (each
    query's latencies, in milliseconds, are in ``index_times_ms`` and ``exact_times_ms``)."""

    k: int
    queries: int
    recall: float
    per_query: tuple[float, ...] = field(repr=False)
    ef_search: int | None
    probes: int | None
    index_ms: float
    exact_ms: float
    index_times_ms: tuple[float, ...] = field(default=(), repr=False)
    exact_times_ms: tuple[float, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class TuneResult:
    """What :func:`tune` found: the setting (``ef_search`` or ``probes``) and its
    ``value``, the recall it reached on the tuning queries and on the held-out ones, and
    every step of the sweep (:class:`RecallResult`, with latencies)."""

    setting: str
    value: int
    target: float
    k: int
    recall: float
    holdout_recall: float
    steps: tuple[RecallResult, ...]
    reached: bool


def _ids(hits: Sequence[Any], keys: Sequence[str]) -> list[tuple[Any, ...]]:
    out = []
    for h in hits:
        mapping = h.row._mapping if hasattr(h.row, "_mapping") else None
        if mapping is not None:
            out.append(tuple(mapping[k] for k in keys))
        else:
            out.append(tuple(getattr(h.row, k) for k in keys))
    return out


def measure_recall(
    conn: Connection,
    column: Any,
    *,
    queries: Sequence[Any] | None = None,
    sample: int = 100,
    k: int = 10,
    where: Where = None,
    ef_search: int | None = None,
    probes: int | None = None,
    metric: str | None = None,
    seed: int = 0,
) -> RecallResult:
    """Recall@k of ``column``'s index against exact search, on ``queries`` (or
    ``sample`` of the column's own vectors), with ``where`` applied to both.

    Example::

        r = vecalchemy.measure_recall(conn, Doc.embedding, k=10, where=Doc.lang == "en")
        assert r.recall > 0.9
    """
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        raise InvalidSearch(f"sample must be a positive integer, got {sample!r}")
    qs = list(queries) if queries is not None else sample_vectors(conn, column, sample, seed)
    if not qs:
        raise InvalidSearch("no queries: pass queries=, or measure a column that has vectors")
    col = column_of(column)
    keys = [c.name for c in col.table.primary_key.columns] or [col.name]
    per: list[float] = []
    index_t: list[float] = []
    exact_t: list[float] = []
    for q in qs:
        t0 = time.perf_counter()
        exact = search(conn, column, q, k, where=where, strategy="exact", metric=metric)
        t1 = time.perf_counter()
        found = search(
            conn,
            column,
            q,
            k,
            where=where,
            strategy="index",
            ef_search=ef_search,
            probes=probes,
            metric=metric,
        )
        t2 = time.perf_counter()
        truth = set(_ids(exact, keys))
        got = set(_ids(found, keys))
        per.append(len(truth & got) / len(truth) if truth else 1.0)
        exact_t.append((t1 - t0) * 1000)
        index_t.append((t2 - t1) * 1000)
    return RecallResult(
        k=k,
        queries=len(qs),
        recall=round(float(np.mean(per)), 4),
        per_query=tuple(per),
        ef_search=ef_search,
        probes=probes,
        index_ms=round(statistics.median(index_t), 3),
        exact_ms=round(statistics.median(exact_t), 3),
        index_times_ms=tuple(index_t),
        exact_times_ms=tuple(exact_t),
    )


def tune(
    conn: Connection,
    column: Any,
    *,
    target: float = 0.95,
    k: int = 10,
    queries: Sequence[Any] | None = None,
    sample: int = 200,
    holdout: float = 0.5,
    where: Where = None,
    sweep: Sequence[int] | None = None,
    metric: str | None = None,
    seed: int = 0,
) -> TuneResult:
    """The smallest ``ef_search`` (HNSW) or ``probes`` (IVFFlat) whose recall@k reaches
    ``target`` on tuning queries, checked on held-out ones (the last ``holdout`` share of
    the queries). If no value reaches it, the best one is returned with
    ``reached=False``.

    Example::

        t = vecalchemy.tune(conn, Doc.embedding, target=0.95, k=10)
        hits = vecalchemy.search(conn, Doc.embedding, q, k=10, ef_search=t.value)
    """
    if not 0 < target <= 1:
        raise InvalidSearch(f"target must be a recall in (0, 1], got {target!r}")
    if not 0 < holdout < 1:
        raise InvalidSearch(f"holdout must be a share in (0, 1), got {holdout!r}")
    _, spec = resolve_spec(column, metric)
    ivf = isinstance(spec.index, IVFFlat)
    setting = "probes" if ivf else "ef_search"
    values = sorted(set(sweep or (PROBES_SWEEP if ivf else EF_SWEEP)))
    if not ivf:
        values = [v for v in values if k <= v <= MAX_EF_SEARCH] or [max(k, values[-1])]
    qs = list(queries) if queries is not None else sample_vectors(conn, column, sample, seed)
    if len(qs) < 2:
        raise InvalidSearch("tune needs at least 2 queries (tuning and held-out)")
    cut = max(1, min(len(qs) - 1, round(len(qs) * (1 - holdout))))
    tuning, held = qs[:cut], qs[cut:]
    steps: list[RecallResult] = []
    chosen: RecallResult | None = None
    for v in values:
        kw = {setting: v}
        r = measure_recall(conn, column, queries=tuning, k=k, where=where, metric=metric, **kw)
        steps.append(r)
        if r.recall >= target:
            chosen = r
            break
    reached = chosen is not None
    if chosen is None:
        chosen = max(steps, key=lambda r: (r.recall, -r.index_ms))
    value = chosen.probes if ivf else chosen.ef_search
    assert value is not None
    check = measure_recall(
        conn, column, queries=held, k=k, where=where, metric=metric, **{setting: value}
    )
    return TuneResult(
        setting=setting,
        value=value,
        target=target,
        k=k,
        recall=chosen.recall,
        holdout_recall=check.recall,
        steps=tuple(steps),
        reached=reached,
    )
