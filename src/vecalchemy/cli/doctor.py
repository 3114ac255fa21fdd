"""``vecalchemy doctor``: the pgvector mistakes of any database, read-only."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from vecalchemy.cli._group import URL_OPTION, CliError, main

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
