"""``vecalchemy doctor``: the pgvector mistakes of any database, read-only."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from vecalchemy.cli._group import URL_OPTION, CliError, main, reflect_column

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
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning", "never"]),
    default="error",
    show_default=True,
    help="Exit 1 when a finding of this severity (or worse) is found.",
)
def doctor_command(
    url: str | None, table: str | None, metadata_ref: str | None, as_json: bool, fail_on: str
) -> None:
    """Find pgvector mistakes in any PostgreSQL database: indexes, columns, settings.

    Read-only (catalog and statistics queries in a READ ONLY transaction); needs no
    rights on the tables and no object vecalchemy created. Each finding gives the SQL
    that fixes it.
    """
    import sqlalchemy as sa
    from rich.console import Console
    from rich.table import Table

    from vecalchemy.doctor import doctor
    from vecalchemy.engine import resolve_url

    metadata = _load(metadata_ref) if metadata_ref else None
    # A plain engine: no CREATE EXTENSION, no version check, nothing written.
    engine = sa.create_engine(resolve_url(url))
    try:
        findings = doctor(engine, table=table, metadata=metadata)
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
@click.option("--sample", default=200, show_default=True, type=click.IntRange(2))
@click.option("--json", "as_json", is_flag=True, help="Print the sweep as JSON.")
def tune_command(
    url: str | None,
    table: str,
    column: str,
    target_recall: float,
    k: int,
    metric: str | None,
    sample: int,
    as_json: bool,
) -> None:
    """Find the smallest ef_search (HNSW) or probes (IVFFlat) whose recall@k reaches the
    target on sampled queries, checked on held-out ones, with the latency of each step."""
    from rich.console import Console
    from rich.table import Table

    from vecalchemy.engine import create_engine
    from vecalchemy.search import tune

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            col = reflect_column(conn, table, column)
            result = tune(conn, col, target=target_recall, k=k, sample=sample, metric=metric)
    finally:
        engine.dispose()
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
    verdict = "reaches" if result.reached else "does not reach"
    click.echo(
        f"{result.setting} = {result.value} {verdict} {target_recall} "
        f"(held-out recall {result.holdout_recall:.3f})"
    )
