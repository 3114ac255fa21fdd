"""``vecalchemy doctor``: the pgvector mistakes of any database, read-only."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from vecalchemy.cli._group import URL_OPTION, CliError, main, reflect_column
from vecalchemy.cli._sizes import sizes_command

__all__: list[str] = []


@main.command(name="doctor")
@URL_OPTION
@click.option("--table", help="Only this table.")
@click.option(
    "--metadata",
    "metadata_ref",
    help="Your models' metadata as module:attribute (e.g. myapp.models:Base.metadata), to "
    "check the database's indexes against the declared metrics.",
)
@click.option(
    "--query-file",
    type=click.Path(exists=True, dir_okay=False, path_type=str),
    help="A SQL file of your application's queries (separated by semicolons, with $1, %s "
    "or :name parameters): each is planned with EXPLAIN, never run, and checked.",
)
@click.option(
    "--limit",
    default=10,
    show_default=True,
    type=click.IntRange(1),
    help="The LIMIT to plan a query with when its LIMIT is a parameter.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings (or --sizes) as JSON.")
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning", "never"]),
    default="error",
    show_default=True,
    help="Exit 1 when a finding of this severity (or worse) is found.",
)
@click.option(
    "--sizes",
    is_flag=True,
    help="Print the storage report instead of the findings: per vector column, bytes per "
    "value (computed and measured on a sample), heap, TOAST and index sizes, and what "
    "halfvec or binary quantization would save.",
)
@click.option(
    "--sample",
    default=1000,
    show_default=True,
    type=click.IntRange(1),
    help="With --sizes: the values measured per column.",
)
@click.option(
    "--measure-indexes",
    is_flag=True,
    help="With --sizes: copy the sample into temporary tables (as it is, halfvec, bit), "
    "build the column's index on each and project the sizes to the table (not read-only; "
    "the temporary tables are dropped).",
)
def doctor_command(
    url: str | None,
    table: str | None,
    metadata_ref: str | None,
    query_file: str | None,
    limit: int,
    as_json: bool,
    fail_on: str,
    sizes: bool,
    sample: int,
    measure_indexes: bool,
) -> None:
    """Find pgvector mistakes in any PostgreSQL database: indexes, columns, settings.

    Read-only (catalog and statistics queries in a READ ONLY transaction); needs no
    rights on the tables and no object vecalchemy created. Each finding gives the SQL
    that fixes it. With --sizes, the storage report instead (exit code 0).
    """
    if sizes:
        if metadata_ref:
            raise CliError("--metadata checks the findings; it does not go with --sizes")
        if query_file:
            raise CliError("--query-file checks the findings; it does not go with --sizes")
        sizes_command(url, table, sample, measure_indexes, as_json)
        return
    if measure_indexes:
        raise CliError("--measure-indexes goes with --sizes")
    import sqlalchemy as sa
    from rich.console import Console
    from rich.table import Table

    from vecalchemy.doctor import doctor, split_queries
    from vecalchemy.engine import resolve_url

    metadata = _load(metadata_ref) if metadata_ref else None
    queries = None
    if query_file is not None:
        try:
            with open(query_file, encoding="utf-8") as handle:
                queries = split_queries(handle.read())
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read {query_file}: {exc}") from exc
        if not queries:
            raise CliError(f"{query_file} holds no SQL statements")
    # A plain engine: no CREATE EXTENSION, no version check, nothing written.
    engine = sa.create_engine(resolve_url(url))
    try:
        findings = doctor(engine, table=table, metadata=metadata, queries=queries, limit=limit)
    except sa.exc.OperationalError as exc:
        raise CliError(f"cannot connect: {exc.orig}") from exc
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps([f.as_dict() for f in findings], indent=2))
    elif not findings:
        click.echo("no pgvector mistakes found")
    else:
        out = Table("code", "severity", "object", "finding", "fix", show_lines=True)
        for f in findings:
            out.add_row(
                f"{f.code}\n{f.name}", f.severity, f.object, f"{f.message}\n({f.why})", f.fix
            )
        Console(width=None if sys.stdout.isatty() else 200).print(out)
    worst = {"error": ("error",), "warning": ("error", "warning"), "never": ()}[fail_on]
    if any(f.severity in worst for f in findings):
        sys.exit(1)


def _load(ref: str) -> Any:
    """``module:attr.attr`` -> the object (a ``MetaData``)."""
    import importlib

    import sqlalchemy as sa

    module_name, _, attrs = ref.partition(":")
    if not module_name or not attrs:
        raise CliError(f"--metadata must look like module:attribute, got {ref!r}")
    sys.path.insert(0, ".")
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"cannot import {module_name}: {exc}") from exc
    for attr in attrs.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise CliError(f"{module_name} has no {attrs}") from None
    if not isinstance(obj, sa.MetaData):
        raise CliError(f"{ref} is a {type(obj).__name__}, not a sqlalchemy MetaData")
    return obj


@main.command(name="tune")
@URL_OPTION
@click.option("--table", required=True, help="The table (schema.table or table).")
@click.option("--column", required=True, help="Its vector column.")
@click.option("--target-recall", default=0.95, show_default=True, type=click.FloatRange(0, 1))
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--metric", help="The metric, if the column's index does not tell it.")
@click.option(
    "--sample",
    default=200,
    show_default=True,
    type=click.IntRange(2),
    help="Queries sampled from the table's rows when no --queries-file is given.",
)
@click.option(
    "--queries-file",
    type=click.Path(exists=True, dir_okay=False, path_type=str),
    help="Real query vectors (.npy 2-D, or JSON lines of arrays): sampled rows are easier "
    "queries than an application's, and tune then picks too small a value.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the sweep as JSON.")
@click.option(
    "--store",
    is_flag=True,
    help="Record the value on the index (its comment) when it reaches the target on the "
    "held-out queries, so that vecalchemy searches of the column use it by default.",
)
@click.option("--show", is_flag=True, help="Print the stored value and exit.")
@click.option("--clear", is_flag=True, help="Remove the stored value and exit.")
def tune_command(
    url: str | None,
    table: str,
    column: str,
    target_recall: float,
    k: int,
    metric: str | None,
    sample: int,
    queries_file: str | None,
    as_json: bool,
    store: bool,
    show: bool,
    clear: bool,
) -> None:
    """Find the smallest ef_search (HNSW) or probes (IVFFlat) whose recall@k reaches the
    target on sampled queries, checked on held-out ones, with the latency of each step.

    With --store, the value is recorded in the index's comment and every vecalchemy
    search of the column uses it where no ef_search/probes is given (engines re-read it
    within a minute); --show prints it, --clear removes it.
    """
    import dataclasses

    from rich.console import Console
    from rich.table import Table

    from vecalchemy.engine import create_engine
    from vecalchemy.search import clear_tuning, stored_tuning, tune

    if show + clear + store > 1:
        raise CliError("--store, --show and --clear exclude each other")
    from vecalchemy.bench._datasets import read_queries

    queries = read_queries(queries_file) if queries_file is not None else None
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            col = reflect_column(conn, table, column)
            if show or clear:
                found = stored_tuning(conn, col, metric=metric)
                if clear:
                    clear_tuning(conn, col, metric=metric)
            else:
                result = tune(
                    conn,
                    col,
                    target=target_recall,
                    k=k,
                    queries=queries,
                    sample=sample,
                    metric=metric,
                    store=store,
                )
    finally:
        engine.dispose()
    if show or clear:
        if as_json:
            click.echo(json.dumps(dataclasses.asdict(found) if found else None, indent=2))
        elif found is None:
            click.echo(f"no stored setting for {table}.{column}")
        else:
            done = "removed " if clear else ""
            click.echo(
                f"{done}{found.setting} = {found.value} (recall@{found.k} {found.recall:.3f} "
                f"for target {found.target}, {found.rows:,} rows, tuned {found.at})"
            )
        return
    if as_json:
        steps = [
            {"value": s.ef_search or s.probes, "recall": s.recall, "index_ms": s.index_ms}
            for s in result.steps
        ]
        click.echo(
            json.dumps(
                {
                    "setting": result.setting,
                    "value": result.value,
                    "reached": result.reached,
                    "recall": result.recall,
                    "holdout_recall": result.holdout_recall,
                    "k": k,
                    "stored": result.stored is not None,
                    "steps": steps,
                },
                indent=2,
            )
        )
        return
    out = Table(result.setting, f"recall@{k}", "p50 ms")
    for s in result.steps:
        out.add_row(str(s.ef_search or s.probes), f"{s.recall:.3f}", f"{s.index_ms:.2f}")
    Console(width=None if sys.stdout.isatty() else 200).print(out)
    if queries is None:
        click.echo(
            "note: queries were sampled from the table's rows, which are easier than real "
            "queries; pass --queries-file with real query vectors for a value you can trust",
            err=True,
        )
    verdict = "reaches" if result.reached else "does not reach"
    click.echo(
        f"{result.setting} = {result.value} {verdict} {target_recall} "
        f"(held-out recall {result.holdout_recall:.3f})"
    )
    if store:
        click.echo(
            "stored on the index: vecalchemy searches of this column now use it by default"
            if result.stored
            else "not stored: the target was not reached on the held-out queries"
        )
