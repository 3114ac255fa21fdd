"""The ``vecalchemy`` command line.

Each command parses its arguments, calls one library function and formats the result. A
:class:`~vecalchemy.errors.VecalchemyError` becomes ``error: <message>`` on stderr and exit
code 1 (see :class:`VecalchemyGroup`), never a traceback. Heavy modules are imported inside
the commands so that ``vecalchemy --help`` stays fast.

Example::

    $ vecalchemy db up
    embedded postgresql 18.6 is running in /home/me/.local/share/vecalchemy (pid 4012, port 46547)
    $ vecalchemy db psql -c "select 1"
    $ vecalchemy db url --driver asyncpg
    postgresql+asyncpg://postgres@/postgres?host=/home/me/.local/share/vecalchemy&port=46547
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from vecalchemy.server import EmbeddedServer, ServerStatus

__all__ = ["CliError", "VecalchemyGroup", "main"]

_DATA_DIR_ENV = "VECALCHEMY_DATA_DIR"  # vecalchemy.server.DATA_DIR_ENV, without the import


class CliError(click.ClickException):
    """A failure reported as ``error: <message>`` on stderr with exit code 1.

    Example::

        raise CliError("nothing to do")
    """

    def show(self, file: Any = None) -> None:
        """Print the message (its first line is the summary, the rest are details)."""
        click.echo(f"error: {self.format_message()}", err=True)


class VecalchemyGroup(click.Group):
    """A click group that turns a :class:`~vecalchemy.errors.VecalchemyError` raised by any
    of its commands into a :class:`CliError`; its subgroups are of this class too.

    Example::

        @click.group(cls=VecalchemyGroup)
        def main() -> None: ...
    """

    group_class = type  # subgroups made with @group.group() are VecalchemyGroups

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, mapping vecalchemy's errors to a clean message and exit code 1."""
        from vecalchemy.errors import VecalchemyError

        try:
            return super().invoke(ctx)
        except VecalchemyError as exc:
            raise CliError(str(exc)) from exc


@click.group(cls=VecalchemyGroup)
@click.version_option(package_name="vecalchemy", prog_name="vecalchemy")
def main() -> None:
    """vecalchemy: semantic search on PostgreSQL + pgvector through SQLAlchemy."""


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


@db.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show whether the embedded server runs, and where."""
    info = _server(ctx).status()
    fields: dict[str, Any] = {
        "running": info.running,
        "pid": info.pid,
        "port": info.port,
        "url": info.url,
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
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


@main.command()
@click.option(
    "--url",
    envvar="VECALCHEMY_DATABASE_URL",
    help="Database URL (default: the embedded server, started if needed).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Use at most this many documents.")
@click.option(
    "-k", "k", default=5, show_default=True, type=click.IntRange(1, 50), help="Hits per query."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of tables.")
@click.option(
    "--embedder",
    help="Embedder spec (default: minilm when vecalchemy[local] is installed, else hashing).",
)
def demo(url: str | None, limit: int | None, k: int, as_json: bool, embedder: str | None) -> None:
    """Search the standard library's docstrings: corpus, embedding, COPY, HNSW, queries.

    Builds a corpus from the docstrings of the Python standard library installed with
    this interpreter, embeds it (MiniLM when installed, the hashing embedder otherwise),
    bulk-loads it with binary COPY, builds the HNSW index and runs example queries,
    printing timings and the index's recall@k against exact search.
    """
    from dataclasses import asdict

    from rich.console import Console

    from vecalchemy.demo import run_demo

    console = Console(quiet=as_json)
    report = run_demo(url, limit=limit, k=k, console=console, embedder=embedder)
    if as_json:
        click.echo(json.dumps({**asdict(report), "recall": report.recall}, indent=2))


def _tail(text: str, width: int) -> str:
    """``text`` cut from the left to ``width`` characters: a path's end says the most."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]


_URL_OPTION = click.option(
    "--url",
    envvar="VECALCHEMY_DATABASE_URL",
    help="Database URL (default: the embedded server, started if needed).",
)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--collection", "-c", "name", required=True, help="Collection (table) name.")
@click.option(
    "--embedder",
    help="Embedder spec: minilm, hashing, st:<model>, openai:<model>@<url>, ... "
    "(default: the collection's own, or minilm for a new one).",
)
@click.option("--glob", help="Only files matching this pattern, e.g. '**/*.md'.")
@click.option("--splitter", help="Chunking: markdown[:size:overlap], chars:..., tokens:..., none.")
@_URL_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def ingest(
    paths: tuple[Path, ...],
    name: str,
    embedder: str | None,
    glob: str | None,
    splitter: str | None,
    url: str | None,
    as_json: bool,
) -> None:
    """Add text, Markdown, reStructuredText and HTML files to a collection.

    Directories are searched recursively. Each file is one document whose id is its
    path; ingesting again re-embeds only the files whose text changed.
    """
    import time

    from rich.console import Console

    from vecalchemy.collection import Collection
    from vecalchemy.engine import create_engine
    from vecalchemy.errors import ConfigurationError
    from vecalchemy.sources import read_documents

    console = Console(stderr=True, quiet=as_json)
    engine = create_engine(url)
    try:
        overrides: dict[str, Any] = {}
        if embedder:
            overrides["embedder"] = embedder
        if splitter:
            overrides["splitter"] = splitter
        try:
            collection = Collection.open(name, engine=engine, **overrides)
        except ConfigurationError:
            collection = Collection(
                name,
                engine=engine,
                embedder=embedder or "minilm",
                splitter=splitter or "markdown",
            )
        docs = list(read_documents(paths, glob=glob))
        if not docs:
            raise CliError("no readable text, Markdown, reStructuredText or HTML files found")
        started = time.perf_counter()
        result = collection.upsert(
            [d.text for d in docs],
            metadata=[d.metadata for d in docs],
            ids=[d.id for d in docs],
            progress=not as_json,  # a bar with rows/s on stderr
        )
        seconds = time.perf_counter() - started
        summary = {
            "collection": name,
            "embedder": collection.embedder.name,
            "files": len(docs),
            "documents_embedded": result.documents,
            "documents_unchanged": result.skipped,
            "chunks": result.chunks,
            "seconds": round(seconds, 3),
            "chunks_per_second": round(result.chunks / seconds, 1) if seconds else None,
        }
        if as_json:
            click.echo(json.dumps(summary, indent=2))
        else:
            console.print(
                f"[bold]{name}[/]: {result.documents} files embedded as {result.chunks} chunks, "
                f"{result.skipped} unchanged, in {seconds:.1f} s with {collection.embedder.name}"
            )
    finally:
        engine.dispose()


@main.command(name="search")
@click.argument("query")
@click.option("--collection", "-c", "name", required=True, help="Collection (table) name.")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 1000), help="Hits.")
@click.option(
    "--where", "where_json", help='Metadata filter as JSON, e.g. \'{"type": "markdown"}\'.'
)
@click.option("--embedder", help="Embedder spec (default: the one the collection was built with).")
@click.option("--min-similarity", type=float, help="Drop hits less similar than this.")
@_URL_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON.")
def search_command(
    query: str,
    name: str,
    k: int,
    where_json: str | None,
    embedder: str | None,
    min_similarity: float | None,
    url: str | None,
    as_json: bool,
) -> None:
    """Search a collection and print the hits (id, similarity, source, snippet)."""
    from rich.console import Console
    from rich.table import Table

    from vecalchemy.collection import Collection
    from vecalchemy.engine import create_engine

    where = None
    if where_json:
        try:
            where = json.loads(where_json)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--where") from exc
    engine = create_engine(url)
    try:
        overrides: dict[str, Any] = {"embedder": embedder} if embedder else {}
        collection = Collection.open(name, engine=engine, **overrides)
        hits = collection.search(query, k, where=where, min_similarity=min_similarity)
    finally:
        engine.dispose()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": h.id,
                        "chunk": h.chunk,
                        "similarity": h.similarity,
                        "distance": h.distance,
                        "start": h.start,
                        "end": h.end,
                        "metadata": h.metadata,
                        "text": h.text,
                    }
                    for h in hits
                ],
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    console = Console()
    table = Table(title=f"{len(hits)} hits for “{query}” in {name}", title_justify="left")
    # Files ingested by path have source == id: a second column would say it again.
    sources = [str(h.metadata.get("source", "")) for h in hits]
    show_source = any(src and src != h.id for src, h in zip(sources, hits, strict=True))
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("id", no_wrap=True)
    table.add_column("similarity", justify="right", no_wrap=True)
    if show_source:
        table.add_column("source", no_wrap=True)
    table.add_column("snippet")
    for i, (h, src) in enumerate(zip(hits, sources, strict=True), 1):
        snippet = " ".join(h.text.split())
        snippet = snippet if len(snippet) <= 160 else snippet[:159] + "…"
        cells = [str(i), _tail(f"{h.id}#{h.chunk}", 36), f"{h.similarity:.3f}"]
        if show_source:
            cells.append(_tail(src, 24))
        table.add_row(*cells, snippet)
    console.print(table)
