"""``vecalchemy doctor``: the pgvector mistakes of any database, read-only."""

from __future__ import annotations

import json
import sys

import click

from vecalchemy.cli._group import URL_OPTION, CliError, main

__all__: list[str] = []


@main.command(name="doctor")
@URL_OPTION
@click.option("--table", help="Only this table.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning", "never"]),
    default="error",
    show_default=True,
    help="Exit 1 when a finding of this severity (or worse) is found.",
)
def doctor_command(url: str | None, table: str | None, as_json: bool, fail_on: str) -> None:
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

    # A plain engine: no CREATE EXTENSION, no version check, nothing written.
    engine = sa.create_engine(resolve_url(url))
    try:
        findings = doctor(engine, table=table)
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
