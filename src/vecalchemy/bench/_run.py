""":func:`run_bench`: recall@k, latency and QPS of a vector index across its search setting.

Private to vecalchemy; the names are re-exported by :mod:`vecalchemy.bench`.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import re
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from vecalchemy._catalog import IndexInfo, check_metric, indexes_sql, on_column, parse_indexes
from vecalchemy._names import qualified
from vecalchemy._progress import Progress, progress_reporter
from vecalchemy._sql import column_of, storage_of
from vecalchemy._typing import Where
from vecalchemy.bench._datasets import DatasetSpec, parse_dataset, scratch_table
from vecalchemy.bench._report import render_markdown, render_plot
from vecalchemy.embedders import Embedder
from vecalchemy.errors import InvalidArgument, InvalidSearch
from vecalchemy.metrics import MAX_EF_SEARCH, Metric
from vecalchemy.query import nearest
from vecalchemy.query._nearest import check_clauses
from vecalchemy.schema import HNSW, resolve_spec
from vecalchemy.search import index_used, measure_recall
from vecalchemy.search._sample import sample_rows

__all__ = ["BenchFiles", "BenchResult", "BenchStep", "run_bench"]

#: The ef_search values swept by default (HNSW); those below k are left out.
EF_SEARCH_SWEEP = (10, 20, 40, 80, 160, 320)
#: The probes values swept by default (IVFFlat); those above the index's lists are left out.
PROBES_SWEEP = (1, 2, 4, 8, 16, 32, 64)
#: The recall targets the report names the smallest setting for.
TARGETS = (0.90, 0.95, 0.99)
MAX_PROBES = 32_768
#: Untimed queries run first, so that the first step does not pay for a cold cache.
WARM_UP = 10
FORMAT = 1


@dataclass(frozen=True)
class BenchStep:
    """One step of the sweep: the ``setting`` (``ef_search``, ``probes``, or ``exact``
    for the sequential-scan baseline) and its ``value``, recall@k against exact search,
    the median and 95th-percentile latency per query, and single-client queries per
    second (queries / wall time of the searches).

    Example::

        step = result.steps[0]
        print(step.setting, step.value, step.recall, step.p50_ms, step.qps)
    """

    setting: str
    value: int | None
    recall: float
    p50_ms: float
    p95_ms: float
    qps: float

    def as_dict(self) -> dict[str, Any]:
        """The step as JSON-ready values."""
        return {
            "setting": self.setting,
            "value": self.value,
            "recall": self.recall,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "qps": self.qps,
        }


@dataclass(frozen=True)
class BenchFiles:
    """The files :meth:`BenchResult.save` wrote; ``plot`` is None without matplotlib.

    Example::

        files = result.save("out")
        print(files.json, files.markdown, files.plot)
    """

    json: Path
    markdown: Path
    plot: Path | None


@dataclass(frozen=True)
class BenchResult:
    """What :func:`run_bench` measured: the table, its index, the machine and server,
    every step of the sweep and the exact-scan baseline.

    Example::

        result = vecalchemy.run_bench(engine, table="docs", column="embedding")
        print(result.reaches(0.95))      # the first step with recall >= 0.95, or None
        result.save("bench-out")         # bench.json, report.md, recall_qps.png
    """

    table: str
    column: str
    rows: int
    dims: int
    metric: str
    storage: str
    index: dict[str, Any]
    k: int
    queries: int
    query_source: str
    where: str | None
    setting: str
    steps: tuple[BenchStep, ...]
    exact: BenchStep
    dataset: dict[str, Any] | None
    machine: dict[str, Any]
    server: dict[str, Any]
    created: str
    seconds: float
    warnings: tuple[str, ...] = field(default=())

    def reaches(self, target: float) -> BenchStep | None:
        """The first step (smallest setting) whose recall is at least ``target``."""
        return next((s for s in self.steps if s.recall >= target), None)

    def as_dict(self) -> dict[str, Any]:
        """Everything measured, as JSON-ready values (the content of ``bench.json``)."""
        reached = {f"{t:.2f}": getattr(self.reaches(t), "value", None) for t in TARGETS}
        return {
            "format": FORMAT,
            "created": self.created,
            "seconds": self.seconds,
            "machine": self.machine,
            "server": self.server,
            "dataset": self.dataset,
            "table": self.table,
            "column": self.column,
            "rows": self.rows,
            "dims": self.dims,
            "metric": self.metric,
            "storage": self.storage,
            "index": self.index,
            "k": self.k,
            "queries": self.queries,
            "query_source": self.query_source,
            "where": self.where,
            "setting": self.setting,
            "steps": [s.as_dict() for s in self.steps],
            "exact": self.exact.as_dict(),
            "reaches": reached,
            "warnings": list(self.warnings),
        }

    def markdown(self, plot: str | None = "recall_qps.png") -> str:
        """The Markdown report: the steps as a table, the settings that reach recall 0.90,
        0.95 and 0.99, and a link to ``plot`` (or how to get one, if None)."""
        return render_markdown(self.as_dict(), plot)

    def save(self, directory: str | Path) -> BenchFiles:
        """Write ``bench.json``, ``recall_qps.png`` (if matplotlib is installed: the
        ``bench`` extra) and ``report.md`` into ``directory`` (created if needed)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        data = self.as_dict()
        json_path = out / "bench.json"
        json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        plot: Path | None = out / "recall_qps.png"
        assert plot is not None
        if not render_plot(data, plot):
            plot = None
        md = out / "report.md"
        md.write_text(render_markdown(data, plot.name if plot else None), encoding="utf-8")
        return BenchFiles(json_path, md, plot)


# -- checking the arguments ------------------------------------------------------------


def _positive(name: str, value: object, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{name} must be a positive integer, got {value!r}")
    if hi is not None and value > hi:
        raise InvalidArgument(f"{name} must be at most {hi:,}, got {value!r}")
    return value


def _sweep(
    method: str,
    k: int,
    ef_search: Sequence[int] | None,
    probes: Sequence[int] | None,
    lists: int | None,
    index_label: str,
) -> tuple[str, list[int]]:
    """The setting to sweep and its values, checked."""
    if method == "hnsw":
        if probes is not None:
            raise InvalidSearch(
                f"probes applies to IVFFlat indexes; {index_label} is HNSW: sweep ef_search"
            )
        if ef_search is None:
            return "ef_search", [v for v in EF_SEARCH_SWEEP if v >= k] or [k]
        name, given, lo, hi = "ef_search", ef_search, k, MAX_EF_SEARCH
        why = " (an HNSW scan returns at most ef_search rows, so fewer than k)"
    else:
        if ef_search is not None:
            raise InvalidSearch(
                f"ef_search applies to HNSW indexes; {index_label} is IVFFlat: sweep probes"
            )
        if probes is None:
            top = lists or max(PROBES_SWEEP)
            return "probes", [v for v in PROBES_SWEEP if v <= top] or [1]
        name, given, lo, hi = "probes", probes, 1, MAX_PROBES
        why = ""
    if isinstance(given, (str, bytes)) or not isinstance(given, Sequence) or not given:
        raise InvalidSearch(f"{name} must be a non-empty list of integers, got {given!r}")
    for v in given:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise InvalidSearch(
                f"{name} values must be integers from {lo} to {hi:,}{why}, got {v!r}"
            )
    return name, sorted(set(given))


def _where(where: Where | Mapping[str, Any], table: sa.Table) -> tuple[Any, ...]:
    """``where`` as clauses; a mapping is column = value, the value cast to the column's
    type by PostgreSQL (so that text from a command line compares with any column)."""
    if not isinstance(where, Mapping):
        return check_clauses(where)
    if not where:
        raise InvalidArgument("where={} filters nothing; pass None for no filter")
    clauses = []
    for name, value in where.items():
        if name not in table.c:
            raise InvalidArgument(
                f"where= names column {name!r}, which table {table.name} does not have; its "
                f"columns: {', '.join(table.c.keys())}"
            )
        col = table.c[name]
        clauses.append(col == sa.cast(value, col.type) if isinstance(value, str) else col == value)
    return tuple(clauses)


def _describe_where(clauses: Sequence[Any]) -> str | None:
    if not clauses:
        return None
    parts = []
    for c in clauses:
        try:
            parts.append(str(c.compile(compile_kwargs={"literal_binds": True})))
        except Exception:  # a value with no literal form: show the bound form
            parts.append(str(c))
    return " AND ".join(parts)


def _target(table: str | sa.Table | None, column: Any, conn: sa.Connection) -> sa.Column[Any]:
    """The column to bench: an SQLAlchemy column, or one of a table reflected by name."""
    if column is None:
        raise InvalidArgument("give column= (with table= if it is a name), or dataset=")
    if not isinstance(column, str):
        if table is not None:
            raise InvalidArgument("column= is an SQLAlchemy column; drop table=")
        return column_of(column)
    if table is None:
        raise InvalidArgument(
            f"column={column!r} is a name: pass table= too, or an SQLAlchemy column (Doc.embedding)"
        )
    if isinstance(table, sa.Table):
        reflected = table
    else:
        schema, _, name = table.rpartition(".")
        try:
            reflected = sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=conn)
        except sa.exc.NoSuchTableError:
            raise InvalidArgument(f"no table {table}; check the name (schema.table)") from None
    if column not in reflected.c:
        raise InvalidArgument(
            f"table {reflected.name} has no column {column}; its columns: "
            f"{', '.join(reflected.c.keys())}"
        )
    return reflected.c[column]


def _index_params(info: IndexInfo) -> dict[str, int]:
    """The build options of ``info`` (pgvector's defaults where the definition has none)."""
    found = re.search(r"\sWITH \((.*)\)", info.definition)
    params = {"m": 16, "ef_construction": 64} if info.method == "hnsw" else {"lists": 100}
    for part in found.group(1).split(",") if found else ():
        key, _, value = part.partition("=")
        value = value.strip().strip("'")
        if value.isdigit():
            params[key.strip()] = int(value)
    return params


def _database_index(
    conn: sa.Connection, col: sa.Column[Any], metric: str | Metric | None
) -> tuple[Any, IndexInfo, str | Metric | None]:
    """The column's spec, the database's index its searches use, and the metric to pass
    to them (``metric``, or the index's), or a clear error."""
    table = col.table
    assert isinstance(table, sa.Table)
    where = qualified(table.schema, table.name)
    rows = conn.execute(sa.text(indexes_sql(":t")), {"t": where}).all()
    indexes = parse_indexes(rows)
    label = f"column {table.name}.{col.name}"
    found_type = storage_of(col.type)
    if found_type is None:
        raise InvalidArgument(
            f"{label} is not a pgvector column (type {col.type}); pass the vector column"
        )
    mine = [ix for ix in indexes if ix.valid and on_column(ix, col.name)]
    if not mine:
        storage = found_type[0]
        example = Metric.parse(metric) if metric is not None else Metric.COSINE
        if storage not in example.storages:
            example = Metric.HAMMING
        raise InvalidArgument(
            f"{label} has no vector index, so there is nothing to measure against exact "
            f"search; build one first, e.g. CREATE INDEX ON {where} USING hnsw "
            f"({col.name} {example.opclass(storage)}) (the opclass of your metric), or "
            "vecalchemy.build_indexes(engine, Model) for a declared model, then rerun"
        )
    served = {ix.metric for ix in mine if ix.metric is not None}
    if metric is None and len(served) == 1:
        # The metric of the database's index: a reflected table's metadata may not say it
        # (SQLAlchemy leaves out a default operator class, such as IVFFlat's vector_l2_ops).
        metric = served.pop()
    _, spec = resolve_spec(col, metric)
    found = check_metric(label, col.name, spec.opclass, spec.metric, indexes)
    assert found is not None  # the column has an index: check_metric raised if it is not this
    return spec, found, metric


# -- facts about the machine and the server -------------------------------------------


def _package(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {p: _package(p) for p in ("vecalchemy", "sqlalchemy", "psycopg", "numpy")},
    }


def _server(conn: sa.Connection) -> dict[str, Any]:
    settings = ("shared_buffers", "work_mem", "maintenance_work_mem", "jit")
    return {
        "postgresql": conn.exec_driver_sql("SHOW server_version").scalar(),
        "pgvector": conn.exec_driver_sql(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).scalar(),
        "settings": {s: conn.exec_driver_sql(f"SHOW {s}").scalar() for s in settings},
    }


# -- measuring -------------------------------------------------------------------------


def _step(setting: str, value: int | None, recall: float, times_ms: Sequence[float]) -> BenchStep:
    return BenchStep(
        setting=setting,
        value=value,
        recall=recall,
        p50_ms=round(statistics.median(times_ms), 3),
        p95_ms=round(float(np.percentile(times_ms, 95)), 3),
        qps=round(len(times_ms) / (sum(times_ms) / 1000), 1),
    )


@dataclass
class _Plan:
    """What one bench measures, resolved and checked."""

    column: sa.Column[Any]
    metric: str | Metric | None
    setting: str
    values: list[int]
    queries: list[Any]
    query_source: str
    clauses: tuple[Any, ...]
    #: The primary keys of sampled queries' rows (None for given queries).
    query_keys: list[tuple[Any, ...] | None] | None = None


def _measure(
    conn: sa.Connection, plan: _Plan, k: int, progress: Progress | bool | None
) -> tuple[list[BenchStep], BenchStep, str | None]:
    where = list(plan.clauses) or None
    qs = plan.queries
    probe = nearest(plan.column, qs[0], k, metric=plan.metric, where=where)
    used = index_used(conn, probe)
    settle: dict[str, Any] = {plan.setting: plan.values[0]}
    warm = qs[:WARM_UP]
    measure_recall(conn, plan.column, queries=warm, k=k, where=where, metric=plan.metric, **settle)
    keys = list(plan.query_keys) if plan.query_keys is not None else None
    steps: list[BenchStep] = []
    exact_ms: list[float] = []
    with progress_reporter(progress, unit="queries") as report:
        for i, value in enumerate(plan.values):
            r = measure_recall(
                conn,
                plan.column,
                queries=qs,
                query_keys=keys,
                k=k,
                where=where,
                metric=plan.metric,
                **{plan.setting: value},
            )
            steps.append(_step(plan.setting, value, r.recall, r.index_times_ms))
            exact_ms.extend(r.exact_times_ms)
            if report is not None:
                report("queries", (i + 1) * len(qs), len(plan.values) * len(qs))
    return steps, _step("exact", None, 1.0, exact_ms), used


def _query_list(query_vectors: Any, n: int) -> list[Any] | None:
    if query_vectors is None:
        return None
    qs = list(query_vectors)[:n]
    if not qs:
        raise InvalidArgument("query_vectors is empty; pass some vectors, or None to sample")
    return qs


def run_bench(
    engine: sa.Engine,
    *,
    column: Any = None,
    table: str | sa.Table | None = None,
    dataset: str | None = None,
    k: int = 10,
    queries: int = 100,
    query_vectors: Any = None,
    ef_search: Sequence[int] | None = None,
    probes: Sequence[int] | None = None,
    where: Where | Mapping[str, Any] = None,
    metric: str | Metric | None = None,
    index: HNSW | None = None,
    embedder: str | Embedder = "hashing",
    seed: int = 0,
    progress: Progress | bool | None = None,
) -> BenchResult:
    """Sweep ``ef_search`` (HNSW) or ``probes`` (IVFFlat) of a vector index and measure,
    at each value, recall@k against exact search (:func:`vecalchemy.measure_recall`),
    the p50 and p95 latency of :func:`vecalchemy.search` and its single-client QPS; plus
    the exact scan itself as the baseline.

    The index is either yours, ``column=`` (``Doc.embedding``, or a name with
    ``table="schema.table"``, reflected: any table with a vector index; the metric is
    the index's operator class, or ``metric=``), searched read-only with ``queries``
    vectors sampled from its rows (seeded) or the first ``queries`` of
    ``query_vectors``, and filtered by ``where`` (SQLAlchemy expressions, or a mapping
    of column name to value: equality); or a ``dataset=``, ``"synthetic[:ROWS[:DIM]]"``
    or ``"beir:DIRECTORY"`` (embedded with ``embedder``), loaded into a scratch schema
    that is dropped at the end, indexed with ``index`` (HNSW, m=16 and
    ef_construction=64 by default), by ``metric`` (cosine by default).

    ``engine`` comes from :func:`vecalchemy.create_engine`. ``progress`` is a callback
    ``(stage, done, total)``, True for a bar on stderr, or None.

    Example::

        result = vecalchemy.run_bench(engine, table="docs", column="embedding", k=10)
        for step in result.steps:
            print(step.value, step.recall, step.p50_ms, step.qps)
        result.save("bench-out")

        synthetic = vecalchemy.run_bench(engine, dataset="synthetic:20000:64")
    """
    started = time.perf_counter()
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    k = _positive("k", k, MAX_EF_SEARCH)
    queries = _positive("queries", queries)
    given = _query_list(query_vectors, queries)
    if dataset is not None:
        if column is not None or table is not None:
            raise InvalidArgument("give table= and column= (your table) or dataset=, not both")
        if where is not None:
            raise InvalidArgument(
                "where= filters a table of yours; a dataset's table has no columns to filter"
            )
        spec = parse_dataset(dataset)
        hnsw = index if index is not None else HNSW()
        if not isinstance(hnsw, HNSW):
            raise InvalidArgument(f"index= takes vecalchemy.HNSW(...), got {index!r}")
        wanted = Metric.parse(metric) if metric is not None else Metric.COSINE
        setting, values = _sweep("hnsw", k, ef_search, probes, None, "the dataset's index")
        return _run_dataset(
            engine,
            spec,
            hnsw=hnsw,
            metric=wanted,
            k=k,
            queries=queries,
            given=given,
            setting=setting,
            values=values,
            embedder=embedder,
            seed=seed,
            progress=progress,
            started=started,
            created=created,
        )
    if index is not None:
        raise InvalidArgument("index= sets how a dataset is indexed; your table has its own")
    with engine.connect() as conn:
        col = _target(table, column, conn)
        assert isinstance(col.table, sa.Table)
        clauses = _where(where, col.table) if where is not None else ()
        spec, info, metric = _database_index(conn, col, metric)
        params = _index_params(info)
        setting, values = _sweep(
            info.method, k, ef_search, probes, params.get("lists"), f"index {info.name}"
        )
        keys: list[tuple[Any, ...] | None] | None = None
        if given is not None:
            qs, source = given, "given"
        else:
            sampled_keys, qs = sample_rows(conn, col, queries, seed)
            keys = list(sampled_keys)
            source = f"sampled from the table's rows (seed {seed}), not counting themselves"
            if not qs:
                raise InvalidArgument(
                    f"column {col.table.name}.{col.name} has no vectors to sample queries "
                    "from; pass query vectors"
                )
        name = qualified(col.table.schema, col.table.name).replace('"', "")
        rows = int(conn.execute(sa.select(sa.func.count()).select_from(col.table)).scalar_one())
        plan = _Plan(col, metric, setting, values, qs, source, clauses, keys)
        steps, exact, used = _measure(conn, plan, k, progress)
        server = _server(conn)
        conn.rollback()
    return _result(
        plan,
        k=k,
        table=name,
        rows=rows,
        spec=spec,
        info=info,
        params=params,
        steps=steps,
        exact=exact,
        used=used,
        dataset=None,
        server=server,
        created=created,
        started=started,
    )


def _run_dataset(
    engine: sa.Engine,
    spec: DatasetSpec,
    *,
    hnsw: HNSW,
    metric: Metric,
    k: int,
    queries: int,
    given: list[Any] | None,
    setting: str,
    values: list[int],
    embedder: str | Embedder,
    seed: int,
    progress: Progress | bool | None,
    started: float,
    created: str,
) -> BenchResult:
    with scratch_table(
        engine,
        spec,
        metric=metric,
        hnsw=hnsw,
        queries=queries,
        embedder=embedder,
        seed=seed,
        progress=progress,
    ) as scratch:
        col = scratch.table.c.embedding
        qs, source = (scratch.queries, scratch.query_source) if given is None else (given, "given")
        with engine.connect() as conn:
            vspec, info, _ = _database_index(conn, col, None)
            plan = _Plan(col, None, setting, values, qs, source, ())
            steps, exact, used = _measure(conn, plan, k, progress)
            server = _server(conn)
            conn.rollback()
    dataset = {"spec": spec.text, "kind": spec.kind, "seed": seed, **scratch.details}
    if spec.path is not None:
        dataset["path"] = str(spec.path)
    return _result(
        plan,
        k=k,
        table=f"{scratch.schema}.vectors (dropped)",
        rows=scratch.rows,
        spec=vspec,
        info=info,
        params=_index_params(info),
        steps=steps,
        exact=exact,
        used=used,
        dataset=dataset,
        server=server,
        created=created,
        started=started,
    )


def _result(
    plan: _Plan,
    *,
    k: int,
    table: str,
    rows: int,
    spec: Any,
    info: IndexInfo,
    params: dict[str, int],
    steps: list[BenchStep],
    exact: BenchStep,
    used: str | None,
    dataset: dict[str, Any] | None,
    server: dict[str, Any],
    created: str,
    started: float,
) -> BenchResult:
    warnings = []
    if used is None:
        warnings.append(
            f"the planner does not use index {info.name} for these queries (EXPLAIN shows "
            "no index scan), so the steps measure a sequential scan; on a small table "
            "that is expected, on a large one run ANALYZE and check random_page_cost"
        )
    return BenchResult(
        table=table,
        column=plan.column.name,
        rows=rows,
        dims=spec.dim,
        metric=spec.metric.value,
        storage=spec.storage.value,
        index={
            "name": info.name,
            "method": info.method,
            "opclass": info.opclass,
            "params": params,
            "definition": info.definition,
            "used_by_planner": used == info.name,
        },
        k=k,
        queries=len(plan.queries),
        query_source=plan.query_source,
        where=_describe_where(plan.clauses),
        setting=plan.setting,
        steps=tuple(steps),
        exact=exact,
        dataset=dataset,
        machine=_machine(),
        server=server,
        created=created,
        seconds=round(time.perf_counter() - started, 3),
        warnings=tuple(warnings),
    )
