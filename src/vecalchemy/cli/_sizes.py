"""``vecalchemy doctor --sizes``: the storage report, as tables or JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from vecalchemy.cli._group import CliError

if TYPE_CHECKING:
    from vecalchemy.doctor import ColumnStorage, StorageOption

__all__ = ["human_bytes", "sizes_command"]


def sizes_command(
    url: str | None, table: str | None, sample: int, measure_indexes: bool, as_json: bool
) -> None:
    """Run :func:`vecalchemy.storage_report` on a plain engine and print it."""
    import sqlalchemy as sa

    from vecalchemy.doctor import storage_report
    from vecalchemy.engine import resolve_url

    # A plain engine: no CREATE EXTENSION, nothing written.
    engine = sa.create_engine(resolve_url(url))
    try:
        report = storage_report(engine, table=table, sample=sample, measure_indexes=measure_indexes)
    except sa.exc.OperationalError as exc:
        raise CliError(f"cannot connect: {exc.orig}") from exc
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps([col.as_dict() for col in report], indent=2))
    elif not report:
        click.echo("no vector columns" + (f" in {table}" if table else ""))
    else:
        _print(report, measure_indexes)


def human_bytes(n: float | None) -> str:
    """A size as PostgreSQL's ``pg_size_pretty`` writes it (1024-based): ``2.4 MB``."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _print(report: Sequence[ColumnStorage], measured: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    storage = Table(
        "column",
        "type",
        "rows",
        "bytes/value\ncomputed",
        "bytes/value\nmeasured",
        "out of line\n(sampled)",
        "heap",
        "TOAST\n(+ its index)",
        "indexes",
        title="storage",
        show_lines=True,
    )
    for col in report:
        storage.add_row(
            _name(col),
            f"{col.options[0].type}\n{col.storage}",
            _rows(col),
            _per_value(col.computed_bytes),
            _per_value(col.measured_bytes) + (f"\n(n={col.sampled:,})" if col.sampled else ""),
            "-" if col.out_of_line is None else f"{col.out_of_line:,} of {col.sampled:,}",
            human_bytes(col.heap_bytes),
            f"{human_bytes(col.toast_bytes)}\n(+ {human_bytes(col.toast_index_bytes)})",
            "\n".join(
                f"{ix.name}: {ix.method} {ix.opclass}, {human_bytes(ix.bytes)}"
                + ("" if ix.valid else " (invalid)")
                for ix in col.indexes
            )
            or "-",
        )
    console.print(storage)
    options = Table(
        "column",
        "stored as",
        "bytes/value\ncomputed",
        "bytes/value\nmeasured on sample",
        "saving\nper value",
        *(("table\nprojected", "index\nprojected") if measured else ()),
        title="what halfvec or binary quantization would save",
        show_lines=True,
    )
    for col in report:
        for i, opt in enumerate(col.options):
            row = [
                _name(col) if i == 0 else "",
                opt.type + (" (now)" if i == 0 else ""),
                _per_value(opt.computed_bytes),
                _per_value(opt.measured_bytes),
                _pct(opt.saving.value_pct if opt.saving else None),
            ]
            if measured:
                row += _projected(opt, i == 0)
            options.add_row(*row)
    if any(len(col.options) > 1 for col in report):
        console.print(options)
    if not measured:
        click.echo(
            "table and index savings: add --measure-indexes (copies a sample into "
            "temporary tables, builds the column's index on each, and drops them)"
        )
    for col in report:
        for note in col.notes:
            click.echo(f"{_name(col)}: {note}")


def _name(col: ColumnStorage) -> str:
    return f"{col.schema}.{col.table}.{col.column}"


def _rows(col: ColumnStorage) -> str:
    if col.rows is None:
        return "unknown"
    how = "counted" if col.rows_counted else "estimated"
    values = "" if col.values is None or col.values == col.rows else f"\n{col.values:,} non-null"
    return f"{col.rows:,}\n({how}){values}"


def _per_value(n: float | None) -> str:
    return "-" if n is None else f"{n:,.0f}"


def _pct(p: float | None) -> str:
    return "-" if p is None else f"{p:.1f}%"


def _projected(opt: StorageOption, now: bool) -> list[str]:
    table = human_bytes(opt.table_bytes)
    index = human_bytes(opt.index_bytes) if opt.index_bytes is not None else (opt.index or "-")
    if now:
        return [f"{table}\n(actual)", index]
    saving = opt.saving
    if saving is not None and saving.table_pct is not None:
        table += f"\n({-saving.table_pct:+.1f}%)"
    if saving is not None and saving.index_pct is not None:
        index += f"\n({-saving.index_pct:+.1f}%)"
    return [table, index]
