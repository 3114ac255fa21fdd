"""``vecalchemy db``: the embedded PostgreSQL server."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from vecalchemy.server import EmbeddedServer, ServerStatus

from vecalchemy.cli._group import main

__all__: list[str] = []

_DATA_DIR_ENV = "VECALCHEMY_DATA_DIR"  # vecalchemy.server.DATA_DIR_ENV, without the import


@main.group()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=_DATA_DIR_ENV,
    default=None,
    show_envvar=True,
    help="Data directory of the embedded server (default: the per-user data directory).",
)
@click.pass_context
def db(ctx: click.Context, data_dir: Path | None) -> None:
    """Manage the embedded PostgreSQL server (with pgvector) that vecalchemy uses when no
    database URL is configured."""
    ctx.ensure_object(dict)["data_dir"] = data_dir


def _server(ctx: click.Context, settings: dict[str, str] | None = None) -> EmbeddedServer:
    from vecalchemy.server import EmbeddedServer

    data_dir = ctx.find_object(dict) or {}
    return EmbeddedServer(data_dir.get("data_dir"), settings=settings)


def _start(server: EmbeddedServer, timeout: float) -> ServerStatus:
    from rich.console import Console

    with Console(stderr=True).status("starting the embedded postgresql server ..."):
        return server.start(timeout=timeout)


def _parse_settings(values: tuple[str, ...]) -> dict[str, str]:
    settings: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--set")
        settings[name.strip()] = value
    return settings


@db.command()
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="A server setting for this start, e.g. --set shared_buffers=1GB (repeatable).",
)
@click.option(
    "--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for it."
)
@click.pass_context
def up(ctx: click.Context, settings: tuple[str, ...], timeout: float) -> None:
    """Start the embedded server, creating its cluster on first use (harmless if it runs)."""
    server = _server(ctx, _parse_settings(settings))
    was_running = server.status().running
    status = _start(server, timeout)
    verb = "was already running" if was_running else "is running"
    click.echo(
        f"embedded postgresql {status.version} {verb} in {status.data_dir} "
        f"(pid {status.pid}, port {status.port})"
    )


@db.command()
@click.option(
    "--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for it."
)
@click.pass_context
def down(ctx: click.Context, timeout: float) -> None:
    """Stop the embedded server (fast shutdown; harmless if it is not running)."""
    server = _server(ctx)
    if server.stop(timeout=timeout):
        click.echo(f"embedded postgresql stopped in {server.data_dir}")
    else:
        click.echo(f"embedded postgresql was not running in {server.data_dir}")


def _masked(url: str | None) -> str | None:
    """Return ``url`` with its password replaced by ``***``."""
    if url is None:
        return None
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@db.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show whether the embedded server runs, and where. The URL's password is masked
    (status output ends up in bug reports); vecalchemy db url prints it, and the
    password file holds it."""
    server = _server(ctx)
    info = server.status()
    fields: dict[str, Any] = {
        "running": info.running,
        "pid": info.pid,
        "port": info.port,
        "url": _masked(info.url),
        "password_file": str(server.password_file),
        "data_dir": str(info.data_dir),
        "log_file": str(info.log_file),
        "version": info.version,
    }
    if as_json:
        click.echo(json.dumps(fields, indent=2))
        return

    from rich.console import Console
    from rich.table import Table

    table = Table(title="embedded postgresql", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in fields.items():
        if name == "running":
            text = "[green]running[/]" if value else "[red]stopped[/]"
        else:
            text = "-" if value is None else str(value)
        table.add_row(name, text)
    Console(soft_wrap=False).print(table)


@db.command()
@click.option(
    "--driver",
    type=click.Choice(["psycopg", "asyncpg", "libpq"]),
    default="psycopg",
    show_default=True,
    help="psycopg and asyncpg give SQLAlchemy URLs; libpq a plain postgresql:// URL.",
)
@click.option("--database", default="postgres", show_default=True, help="Database name.")
@click.option("--start", is_flag=True, help="Start the server first if it is not running.")
@click.pass_context
def url(ctx: click.Context, driver: str, database: str, start: bool) -> None:
    """Print the URL of the running embedded server (through its Unix socket)."""
    server = _server(ctx)
    if start:
        _start(server, 60.0)
    click.echo(server.url(driver=driver, database=database))


@db.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def psql(ctx: click.Context, psql_args: tuple[str, ...]) -> None:
    """Run psql against the embedded server, starting it first if needed; extra arguments
    go to psql, e.g. vecalchemy db psql -c "select 1"."""
    server = _server(ctx)
    if not server.status().running:
        _start(server, 60.0)
    argv = server.psql_argv(*psql_args)
    env = server.psql_env()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)
