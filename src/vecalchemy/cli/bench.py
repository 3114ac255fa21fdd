"""``vecalchemy bench``: recall@k, latency and QPS of a vector index across its setting."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from vecalchemy.cli._group import URL_OPTION, CliError, main

__all__: list[str] = []


def _int_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    """``"10,20,40"`` -> ``[10, 20, 40]``."""
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    if not all(p.isdigit() for p in parts):
        raise click.BadParameter(
            f"expected comma-separated positive integers such as 10,20,40, got {value!r}"
        )
    return [int(p) for p in parts]


def _filters(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    """``("lang=en", "year=2024")`` -> ``{"lang": "en", "year": "2024"}``."""
    out: dict[str, str] = {}
    for item in value:
        name, eq, text = item.partition("=")
        if not eq or not name.strip():
            raise click.BadParameter(f"expected COLUMN=VALUE, got {item!r}")
        out[name.strip()] = text
    return out


@main.command(name="bench")
@URL_OPTION
@click.option("--table", help="Your table (schema.table or table); needs --column.")
@click.option("--column", help="Its vector column, which must have a vector index.")
@click.option(
    "--dataset",
    help="Instead of a table: synthetic[:ROWS[:DIM]] (a seeded Gaussian mixture, default "
    "10000 x 128) or beir:DIRECTORY (corpus.jsonl, queries.jsonl), loaded into a scratch "
    "schema that is dropped afterwards.",
)
@click.option(
    "-k",
    "k",
    default=10,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Rows per query whose recall is measured (recall@k).",
)
@click.option(
    "--queries",
    default=100,
    show_default=True,
    type=click.IntRange(1),
    help="How many queries: sampled from the table's rows, or the first of --queries-file.",
)
@click.option(
    "--queries-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Query vectors: .npy (2-D) or JSON lines (an array, or an object with 'vector').",
)
@click.option(
    "--ef-search",
    callback=_int_list,
    help="ef_search values to sweep (HNSW), comma-separated [default: 10,20,40,80,160,320].",
)
@click.option(
    "--probes",
    callback=_int_list,
    help="probes values to sweep (IVFFlat), comma-separated [default: 1,2,4,...,64].",
)
@click.option("--metric", help="The metric, if the column's index does not tell it.")
@click.option(
    "--where",
    "where",
    multiple=True,
    callback=_filters,
    metavar="COLUMN=VALUE",
    help="Only rows whose column equals the value (--table only; repeat for AND).",
)
@click.option(
    "--embedder", default="hashing", show_default=True, help="Embedder of a beir: dataset."
)
@click.option("--m", type=click.IntRange(2, 100), help="HNSW m of a dataset's index [16].")
@click.option(
    "--ef-construction",
    type=click.IntRange(4, 1000),
    help="HNSW ef_construction of a dataset's index [64].",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the sample or dataset.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for bench.json, report.md, recall_qps.png [./vecalchemy-bench-<time>].",
)
@click.option("--json", "as_json", is_flag=True, help="Print bench.json to stdout.")
def bench_command(
    url: str | None,
    table: str | None,
    column: str | None,
    dataset: str | None,
    k: int,
    queries: int,
    queries_file: Path | None,
    ef_search: list[int] | None,
    probes: list[int] | None,
    metric: str | None,
    where: dict[str, str],
    embedder: str,
    m: int | None,
    ef_construction: int | None,
    seed: int,
    out: Path | None,
    as_json: bool,
) -> None:
    """Benchmark a vector index: recall@k against exact search, p50/p95 latency and QPS
    at each ef_search (HNSW) or probes (IVFFlat), plus the exact scan.

    On your table (--table, --column: read-only, queries sampled from its rows) or on a
    dataset (--dataset). Writes bench.json, report.md and recall_qps.png (the plot needs
    matplotlib: pip install 'vecalchemy[bench]').
    """
    import sqlalchemy as sa
    from rich.console import Console
    from rich.table import Table

    from vecalchemy.bench import run_bench
    from vecalchemy.bench._datasets import read_queries
    from vecalchemy.bench._report import PLOT_HINT
    from vecalchemy.engine import create_engine
    from vecalchemy.schema import HNSW

    if dataset is None and (table is None or column is None):
        raise click.UsageError("give --table and --column (your table), or --dataset")
    given = read_queries(queries_file) if queries_file is not None else None
    index = None
    if m is not None or ef_construction is not None:
        index = HNSW(m=m or 16, ef_construction=ef_construction or 64)
    engine = create_engine(url)
    try:
        result = run_bench(
            engine,
            table=table,
            column=column,
            dataset=dataset,
            k=k,
            queries=queries,
            query_vectors=given,
            ef_search=ef_search,
            probes=probes,
            where=where or None,
            metric=metric,
            index=index,
            embedder=embedder,
            seed=seed,
            progress=not as_json,
        )
    except sa.exc.OperationalError as exc:
        raise CliError(f"cannot connect: {exc.orig}") from exc
    finally:
        engine.dispose()
    files = result.save(out or Path(f"vecalchemy-bench-{time.strftime('%Y%m%d-%H%M%S')}"))
    if files.plot is None:
        click.echo(f"no plot: {PLOT_HINT}", err=True)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    shown = Table(result.setting, f"recall@{k}", "p50 ms", "p95 ms", "QPS")
    for s in [*result.steps, result.exact]:
        value = "exact" if s.value is None else str(s.value)
        figures = (f"{s.recall:.4f}", f"{s.p50_ms:.3f}", f"{s.p95_ms:.3f}", f"{s.qps:.1f}")
        shown.add_row(value, *figures)
    Console(width=None if sys.stdout.isatty() else 200).print(shown)
    for target in (0.90, 0.95, 0.99):
        step = result.reaches(target)
        found = f"{result.setting} = {step.value}" if step else "not reached"
        click.echo(f"recall >= {target:.2f}: {found}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    written = [files.json, files.markdown, *([files.plot] if files.plot else [])]
    click.echo(f"wrote {', '.join(str(p) for p in written)}")
