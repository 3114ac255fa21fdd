"""``vecalchemy index build``: build or rebuild one vector index of any table."""

from __future__ import annotations

import json
from typing import Any

import click

from vecalchemy.cli._group import URL_OPTION, CliError, main, reflect_column

__all__: list[str] = []


@main.group(name="index")
def index_group() -> None:
    """Build and rebuild the vector indexes of any table."""


@index_group.command(name="build")
@URL_OPTION
@click.option("--table", required=True, help="The table (schema.table or table).")
@click.option("--column", required=True, help="Its vector column.")
@click.option(
    "--method",
    type=click.Choice(["hnsw", "ivfflat"]),
    help="Index method (default: the column's index's, else hnsw).",
)
@click.option(
    "--metric",
    help="cosine, l2, inner_product, l1, hamming or jaccard (default: the operator class "
    "of the column's index; required when it has none).",
)
@click.option("--m", "m", type=click.IntRange(2, 100), help="HNSW links per node.")
@click.option("--ef-construction", type=click.IntRange(4, 1000), help="HNSW candidate list.")
@click.option(
    "--lists", type=click.IntRange(1, 32768), help="IVFFlat lists (default: from the rows)."
)
@click.option("--name", help="Index name (default: the column's index's, else generated).")
@click.option("--concurrently", is_flag=True, help="CREATE INDEX CONCURRENTLY: writes go on.")
@click.option(
    "--rebuild",
    is_flag=True,
    help="Build a new index, then swap it in under the old one's name (IVFFlat: lists "
    "from the current row count).",
)
@click.option(
    "--max-memory",
    default="4GB",
    show_default=True,
    help="The most maintenance_work_mem to ask for.",
)
@click.option("--maintenance-work-mem", help="Set maintenance_work_mem outright (e.g. 2GB).")
@click.option(
    "--workers",
    "parallel_workers",
    type=click.IntRange(0, 1024),
    help="Set max_parallel_maintenance_workers outright (default: cores less one).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def build_command(
    url: str | None,
    table: str,
    column: str,
    method: str | None,
    metric: str | None,
    m: int | None,
    ef_construction: int | None,
    lists: int | None,
    name: str | None,
    concurrently: bool,
    rebuild: bool,
    max_memory: str,
    maintenance_work_mem: str | None,
    parallel_workers: int | None,
    as_json: bool,
) -> None:
    """Build (or --rebuild) the vector index of TABLE.COLUMN, with maintenance_work_mem
    sized for its graph and parallel workers for the cores, a progress bar on stderr, and
    the settings chosen and the time printed."""
    from vecalchemy.engine import create_engine
    from vecalchemy.indexes import build_index

    index = _index(method, m, ef_construction, lists, name)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            col = reflect_column(conn, table, column)
        result = build_index(
            engine,
            col,
            metric=metric,
            index=index,
            concurrently=concurrently,
            rebuild=rebuild,
            max_memory=max_memory,
            maintenance_work_mem=maintenance_work_mem,
            parallel_workers=parallel_workers,
            progress=True,
        )
    finally:
        engine.dispose()
    settings = result.settings.as_dict() if result.settings is not None else None
    if as_json:
        out = {
            "table": table,
            "column": column,
            "name": result.name,
            "action": result.action,
            "rows": result.rows,
            "seconds": result.seconds,
            "options": result.options,
            "settings": settings,
        }
        click.echo(json.dumps(out, indent=2))
        return
    if result.action == "exists":
        click.echo(
            f"{result.name} already indexes {table}.{column}; nothing built (--rebuild builds "
            "it again)"
        )
        return
    with_ = ", ".join(f"{k}={v}" for k, v in (result.options or {}).items())
    click.echo(
        f"{result.action} {result.name} on {table}.{column} ({result.rows:,} rows"
        f"{', ' + with_ if with_ else ''}) in {result.seconds:.1f} s"
    )
    if settings is not None:
        estimate = settings["estimate"]
        fit = "fits" if settings["fits"] else "does not fit"
        click.echo(
            f"maintenance_work_mem = {settings['maintenance_work_mem']}"
            + (f" (needs about {estimate}: {fit})" if estimate else "")
        )
        click.echo(
            f"max_parallel_maintenance_workers = {settings['max_parallel_maintenance_workers']}"
        )
        if settings["spilled_after"] is not None:
            click.echo(
                f"warning: the graph no longer fitted after {settings['spilled_after']:,} "
                "tuples; raise --max-memory",
                err=True,
            )
        for note in settings["notes"]:
            click.echo(f"note: {note}", err=True)


def _index(
    method: str | None, m: int | None, ef: int | None, lists: int | None, name: str | None
) -> Any:
    """The HNSW/IVFFlat spec the options ask for, or None (the column's index decides)."""
    from vecalchemy.schema import HNSW, IVFFlat

    hnsw_options = m is not None or ef is not None
    if method == "ivfflat" and hnsw_options:
        raise CliError("--m and --ef-construction are HNSW options; drop them or use --method hnsw")
    if method == "hnsw" and lists is not None:
        raise CliError("--lists is an IVFFlat option; drop it or use --method ivfflat")
    if hnsw_options and lists is not None:
        raise CliError("--lists (IVFFlat) and --m/--ef-construction (HNSW) exclude each other")
    if method == "ivfflat" or lists is not None:
        return IVFFlat(lists=lists, name=name)
    if method == "hnsw" or hnsw_options:
        mm = m if m is not None else 16
        return HNSW(m=mm, ef_construction=ef if ef is not None else max(64, 2 * mm), name=name)
    if name is not None:
        raise CliError("--name needs --method (the column's index keeps its own name)")
    return None
