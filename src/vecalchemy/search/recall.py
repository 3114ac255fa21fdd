"""Recall of a vector index, measured, and the smallest setting that reaches a target.

:func:`measure_recall` runs the same queries through the index (``strategy="index"``,
the way :func:`vecalchemy.search` walks it, without the exact fallback) and exactly
(``strategy="exact"``), and reports recall@k: the share of the exact top ``k`` that
the index found. :func:`tune` sweeps ``hnsw.ef_search`` (or ``ivfflat.probes``) on
tuning queries, takes the smallest value whose recall reaches the target, and checks it
on held-out queries it did not tune on.

Queries are given, or sampled from the column's own rows (``sample``). A sampled row
does not count finding itself (both searches ask for one row more and drop it), but
rows are still easier queries than an application's: real queries (text embedded as
a query, other sources) lie off the rows' distribution, where the graph is sparser.
Pass real queries when you have them (``vecalchemy tune --queries FILE``);
``benchmarks/tune.py`` measures the difference.

Stored settings
---------------
``tune(..., store=True)`` (``vecalchemy tune --store``) records the value it found in
the **comment of the index it measured** (``COMMENT ON INDEX``, as JSON under the key
``"vecalchemy"``), so it lives with the index in the database, is seen by every
process, and goes away with the index (a rebuilt index must be tuned again). Every
search of that column through vecalchemy then uses it where no ``ef_search=`` /
``probes=`` is given: ``ef_search = max(stored value, LIMIT)``, ``probes = stored
value``. An engine reads it on its first search of the column and again every
:data:`~vecalchemy._engine_state.RECHECK_SECONDS` (60 s), so a value stored from
another process is picked up within a minute (at once by the engine that stored it).
Read it with :func:`stored_tuning`; remove it with :func:`clear_tuning` (``vecalchemy
tune --clear``) or ``COMMENT ON INDEX <index> IS NULL``.

Example::

    with engine.connect() as conn:
        r = vecalchemy.measure_recall(conn, Doc.embedding, k=10, ef_search=40)
        print(r.recall, r.index_ms, r.exact_ms)
        t = vecalchemy.tune(conn, Doc.embedding, target=0.95, k=10)
        print(t.value, t.holdout_recall)    # e.g. 80, 0.962
"""

from __future__ import annotations

import datetime
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import Connection

from vecalchemy._catalog import (
    IndexInfo,
    Tuning,
    check_metric,
    comment_record,
    indexes_sql,
    parse_indexes,
)
from vecalchemy._engine_state import engine_state
from vecalchemy._names import describe, qualified
from vecalchemy._sql import column_of
from vecalchemy._typing import Where
from vecalchemy.errors import InvalidArgument, InvalidSearch
from vecalchemy.metrics import MAX_EF_SEARCH
from vecalchemy.schema import IVFFlat, resolve_spec
from vecalchemy.search._sample import key_columns, sample_rows
from vecalchemy.search.vector import search

__all__ = [
    "RecallResult",
    "TuneResult",
    "Tuning",
    "clear_tuning",
    "measure_recall",
    "stored_tuning",
    "tune",
]

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
    #: What ``store=True`` recorded on the index (None: not asked, or target not reached).
    stored: Tuning | None = None


def _ids(hits: Sequence[Any], keys: Sequence[str]) -> list[tuple[Any, ...]]:
    out = []
    for h in hits:
        mapping = h.row._mapping if hasattr(h.row, "_mapping") else None
        if mapping is not None:
            out.append(tuple(mapping[k] for k in keys))
        else:
            out.append(tuple(getattr(h.row, k) for k in keys))
    return out


def _recall(
    exact: Sequence[Any], found: Sequence[Any], keys: Sequence[str], me: Any, k: int
) -> float:
    """The share of the exact top ``k`` the index found (``me``, a sampled row, left out
    of both). A found row at the same distance as the exact k-th one is as near as it,
    so it counts too: ties at the boundary are listed in any order."""
    truth = [(i, h.distance) for i, h in zip(_ids(exact, keys), exact, strict=True) if i != me]
    got = [(i, h.distance) for i, h in zip(_ids(found, keys), found, strict=True) if i != me]
    truth, got = truth[:k], got[:k]
    if not truth:
        return 1.0
    ids = {i for i, _ in truth}
    last = truth[-1][1]
    tolerance = 1e-6 * max(1.0, abs(last))
    hits = sum(1 for i, d in got if i in ids or d <= last + tolerance)
    return min(hits, len(truth)) / len(truth)


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
    query_keys: Sequence[tuple[Any, ...] | None] | None = None,
) -> RecallResult:
    """Recall@k of ``column``'s index against exact search, on ``queries`` (or
    ``sample`` of the column's own vectors), with ``where`` applied to both.

    ``query_keys``: for queries taken from the table's own rows, each one's primary key
    (a tuple), so that it does not count finding itself (sampled queries never do).

    Example::

        r = vecalchemy.measure_recall(conn, Doc.embedding, k=10, where=Doc.lang == "en")
        assert r.recall > 0.9
    """
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        raise InvalidSearch(f"sample must be a positive integer, got {sample!r}")
    selves: list[tuple[Any, ...] | None]
    if queries is not None:
        qs = list(queries)
        selves = list(query_keys) if query_keys is not None else [None] * len(qs)
        if len(selves) != len(qs):
            raise InvalidSearch(
                f"query_keys has {len(selves)} keys for {len(qs)} queries; give one per query"
            )
    else:
        found_keys, qs = sample_rows(conn, column, sample, seed)
        selves = list(found_keys)
    return _measure(conn, column, qs, selves, k, where, ef_search, probes, metric)


def _measure(
    conn: Connection,
    column: Any,
    qs: Sequence[Any],
    selves: Sequence[tuple[Any, ...] | None],
    k: int,
    where: Where,
    ef_search: int | None,
    probes: int | None,
    metric: str | None,
) -> RecallResult:
    """Recall@k on ``qs``; a query that is a row of the table (its key in ``selves``)
    does not count finding itself: both searches ask for one row more and drop it, so
    the recall is that of its k nearest other rows."""
    if not qs:
        raise InvalidSearch("no queries: pass queries=, or measure a column that has vectors")
    keys = key_columns(column)
    per: list[float] = []
    index_t: list[float] = []
    exact_t: list[float] = []
    for q, me in zip(qs, selves, strict=True):
        n = k if me is None else k + 1
        ef = max(ef_search, n) if ef_search is not None else None  # never below the LIMIT
        t0 = time.perf_counter()
        exact = search(conn, column, q, n, where=where, strategy="exact", metric=metric)
        t1 = time.perf_counter()
        found = search(
            conn,
            column,
            q,
            n,
            where=where,
            strategy="index",
            ef_search=ef,
            probes=probes,
            metric=metric,
        )
        t2 = time.perf_counter()
        per.append(_recall(exact, found, keys, me, k))
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
    store: bool = False,
    refine: bool = True,
    confidence: float = 0.75,
) -> TuneResult:
    """The smallest ``ef_search`` (HNSW) or ``probes`` (IVFFlat) whose recall@k reaches
    ``target`` on the tuning queries and on the held-out ones (a random ``holdout`` share
    of the queries, measured for each value that passes the tuning queries). If no value
    reaches it, the best one is returned with ``reached=False``.

    A value must reach the target with ``confidence`` on the tuning queries: the lower
    one-sided confidence bound of their mean recall (mean - z * standard error) must be
    at or above it, because the smallest of many noisy means is biased low and plain
    means (``confidence=0.5``) pick a value that falls short on new queries. The
    held-out queries then check it: a value whose held-out recall is significantly
    below the target (its upper bound is) is rejected, and the sweep goes on. With ``refine`` (the
    default), the step of the sweep that first reaches the target is bisected against
    the one before it, to within a tenth of the value (``steps`` lists the tuning
    queries' recall at every value measured, in order).

    ``store=True`` records the value on the index (see "Stored settings" above) when it
    reached the target on the held-out queries too, so that searches of the column use
    it by default; nothing is stored otherwise (``TuneResult.stored`` is None). The
    record is committed at once in a transaction of its own (in ``conn``'s own
    transaction only when the index exists nowhere else yet).

    Example::

        t = vecalchemy.tune(conn, Doc.embedding, target=0.95, k=10)
        hits = vecalchemy.search(conn, Doc.embedding, q, k=10, ef_search=t.value)
    """
    if not 0 < target <= 1:
        raise InvalidSearch(f"target must be a recall in (0, 1], got {target!r}")
    if not 0 < holdout < 1:
        raise InvalidSearch(f"holdout must be a share in (0, 1), got {holdout!r}")
    if not 0.5 <= confidence < 1:
        raise InvalidSearch(f"confidence must be in [0.5, 1), got {confidence!r}")
    _, spec = resolve_spec(column, metric)
    ivf = isinstance(spec.index, IVFFlat)
    setting = "probes" if ivf else "ef_search"
    values = sorted(set(sweep or (PROBES_SWEEP if ivf else EF_SWEEP)))
    if not ivf:
        values = [v for v in values if k <= v <= MAX_EF_SEARCH] or [max(k, values[-1])]
    selves: list[tuple[Any, ...] | None]
    if queries is not None:
        qs = list(queries)
        selves = [None] * len(qs)
    else:
        found_keys, qs = sample_rows(conn, column, sample, seed)
        selves = list(found_keys)
    if len(qs) < 2:
        raise InvalidSearch("tune needs at least 2 queries (tuning and held-out)")
    # Given queries may come in some order (by topic, by time): split them at random.
    order = np.random.default_rng(seed).permutation(len(qs))
    qs, selves = [qs[i] for i in order], [selves[i] for i in order]
    cut = max(1, min(len(qs) - 1, round(len(qs) * (1 - holdout))))
    tuning, held = (qs[:cut], selves[:cut]), (qs[cut:], selves[cut:])
    steps: list[RecallResult] = []
    checks: dict[int, RecallResult] = {}

    z = statistics.NormalDist().inv_cdf(confidence)

    def bound(r: RecallResult, sign: int) -> float:
        """A one-sided confidence bound of ``r``'s mean recall (-1 lower, +1 upper)."""
        spread = statistics.stdev(r.per_query) if len(r.per_query) > 1 else 0.0
        return float(r.recall + sign * z * spread / len(r.per_query) ** 0.5)

    def measure(part: tuple[list[Any], list[tuple[Any, ...] | None]], v: int) -> RecallResult:
        ef, pr = (None, v) if ivf else (v, None)
        return _measure(conn, column, part[0], part[1], k, where, ef, pr, metric)

    def passes(v: int) -> bool:
        """Whether ``v`` reaches the target on the tuning queries with ``confidence``
        (the lower bound of their mean recall) and the held-out queries do not refute it
        (the upper bound of theirs; measured only when the tuning queries pass)."""
        r = measure(tuning, v)
        steps.append(r)
        if bound(r, -1) < target:
            return False
        checks[v] = measure(held, v)
        return bound(checks[v], +1) >= target

    def value_of(r: RecallResult) -> int:
        found = r.probes if ivf else r.ef_search
        assert found is not None
        return found

    chosen: int | None = None
    below: int | None = None
    for v in values:
        if passes(v):
            chosen = v
            break
        below = v
    if chosen is not None and below is not None and refine:
        # Bisect between the last value that fell short and the first that reached the
        # target, to within a tenth of the value: the sweep's steps are coarse.
        while chosen - below > max(1, chosen // 10):
            mid = (below + chosen) // 2
            if passes(mid):
                chosen = mid
            else:
                below = mid
    steps.sort(key=value_of)
    reached = chosen is not None
    if chosen is None:
        chosen = value_of(max(steps, key=lambda r: (r.recall, -r.index_ms)))
    value = chosen
    by_value = {value_of(r): r for r in steps}
    check = checks.get(value) or measure(held, value)
    chosen_step = by_value[value]
    stored = None
    if store and reached:
        stored = _store(conn, column, metric, setting, value, k, target, check.recall)
    return TuneResult(
        setting=setting,
        value=value,
        target=target,
        k=k,
        recall=chosen_step.recall,
        holdout_recall=check.recall,
        steps=tuple(steps),
        reached=reached,
        stored=stored,
    )


def _serving_index(conn: Connection, column: Any, metric: str | None) -> IndexInfo:
    """The valid vector index of the database that searches of ``column`` use."""
    col, spec = resolve_spec(column, metric)
    rows = conn.execute(sa.text(indexes_sql(":t")), {"t": _table_name(column)}).all()
    found = check_metric(
        describe(col), col.name, spec.opclass, spec.index_metric, parse_indexes(rows)
    )
    if found is None:
        raise InvalidArgument(
            f"{describe(col)} has no vector index for {spec.opclass} in the database, so "
            "there is no setting to store; build one (vecalchemy.build_indexes)"
        )
    return found


def _table_name(column: Any) -> str:
    table = column_of(column).table
    return qualified(getattr(table, "schema", None), getattr(table, "name", ""))


def _comment(conn: Connection, table: str, index: IndexInfo, comment: str | None) -> None:
    # COMMENT takes no parameters: format() quotes the index (in its table's schema) and
    # the text server-side.
    sql = conn.execute(
        sa.text(
            "SELECT format('COMMENT ON INDEX %I.%I IS %L', n.nspname, i.relname, CAST(:c AS text))"
            " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " JOIN pg_namespace n ON n.oid = i.relnamespace"
            " WHERE x.indrelid = to_regclass(:t) AND i.relname = CAST(:ix AS text)"
        ),
        {"ix": index.name, "c": comment, "t": table},
    ).scalar()
    if sql is None:
        raise LookupError(index.name)
    conn.exec_driver_sql(sql, execution_options={"no_parameters": True})


def _write(conn: Connection, column: Any, index: IndexInfo, comment: str | None) -> None:
    """Record ``comment`` on ``index`` in a transaction of its own, committed at once, so
    that no caller's later rollback (or forgotten commit) loses it; on ``conn`` itself
    when the index exists only in ``conn``'s uncommitted transaction, or is locked by it.
    This engine reads the new value at once, others within RECHECK_SECONDS."""
    table = _table_name(column)
    try:
        with conn.engine.connect() as own, own.begin():
            own.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
            _comment(own, table, index, comment)
    except (LookupError, sa.exc.OperationalError):
        _comment(conn, table, index, comment)
    engine_state(conn.engine).forget(table)


def _store(
    conn: Connection,
    column: Any,
    metric: str | None,
    setting: str,
    value: int,
    k: int,
    target: float,
    recall: float,
) -> Tuning:
    index = _serving_index(conn, column, metric)
    record = comment_record(index.comment)
    if record is None:
        raise InvalidArgument(
            f"index {index.name} has a comment of its own ({index.comment!r}); vecalchemy "
            "stores its tuning in the index comment and will not overwrite yours. Nothing "
            "was stored: pass ef_search= / probes= to search() instead"
        )
    rows = conn.execute(
        sa.text(
            "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = CAST(:t AS regclass)"
        ),
        {"t": _table_name(column)},
    ).scalar_one()
    tuning = Tuning(
        setting=setting,
        value=value,
        k=k,
        target=target,
        recall=recall,
        rows=int(rows),
        at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    _write(conn, column, index, tuning.as_comment(record))
    return tuning


def stored_tuning(conn: Connection, column: Any, *, metric: str | None = None) -> Tuning | None:
    """The setting :func:`tune` stored for ``column``'s index, or None.

    Example::

        t = vecalchemy.stored_tuning(conn, Doc.embedding)
        print(t.setting, t.value, t.recall) if t else print("not tuned")
    """
    return _serving_index(conn, column, metric).tuning


def clear_tuning(conn: Connection, column: Any, *, metric: str | None = None) -> bool:
    """Remove the setting :func:`tune` stored for ``column``'s index (searches go back
    to pgvector's defaults); True if there was one. Committed at once, like ``store``.

    Example::

        vecalchemy.clear_tuning(conn, Doc.embedding)
    """
    index = _serving_index(conn, column, metric)
    record = comment_record(index.comment)
    if not record or "tuned" not in record:
        return False
    record.pop("tuned")
    comment = Tuning.record_comment(record) if record else None
    _write(conn, column, index, comment)
    return True
