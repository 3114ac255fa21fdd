"""``vecalchemy demo``, ``ingest`` and ``search``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    pass

from vecalchemy.cli._group import URL_OPTION, CliError, main, tail

__all__: list[str] = []


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

    from vecalchemy.cli._demo import run_demo

    console = Console(quiet=as_json)
    report = run_demo(url, limit=limit, k=k, console=console, embedder=embedder)
    if as_json:
        click.echo(json.dumps({**asdict(report), "recall": report.recall}, indent=2))


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
@URL_OPTION
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

    from vecalchemy.cli._sources import read_documents
    from vecalchemy.collection import Collection
    from vecalchemy.engine import create_engine
    from vecalchemy.errors import ConfigurationError

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
@URL_OPTION
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
    from vecalchemy.errors import FilterError
    from vecalchemy.filters import parse_filter

    where = None
    if where_json is not None:  # --where '' and --where null are errors, not "no filter"
        try:
            where = parse_filter(where_json)
        except FilterError as exc:
            hint = "; for no filter, leave out --where"
            raise click.BadParameter(f"{exc}{hint}", param_hint="--where") from exc
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
        cells = [str(i), tail(f"{h.id}#{h.chunk}", 36), f"{h.similarity:.3f}"]
        if show_source:
            cells.append(tail(src, 24))
        table.add_row(*cells, snippet)
    console.print(table)
