"""``vecalchemy demo``, ``ingest`` and ``search``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    pass

from vecalchemy.cli._group import URL_OPTION, main, tail

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
    this interpreter, embeds it (MiniLM, on ONNX Runtime when installed; else the hashing embedder),
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
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory that ids are relative to (default: the current directory).",
)
@click.option(
    "--prune",
    is_flag=True,
    help="Delete the documents this command stored from these paths whose files are gone.",
)
@click.option(
    "--encoding",
    default="utf-8",
    show_default=True,
    help="Encoding of the text files, e.g. latin-1 or cp1252.",
)
@URL_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def ingest(
    paths: tuple[Path, ...],
    name: str,
    embedder: str | None,
    glob: str | None,
    splitter: str | None,
    root: Path | None,
    prune: bool,
    encoding: str,
    url: str | None,
    as_json: bool,
) -> None:
    """Add text, Markdown, reStructuredText and HTML files to a collection.

    Directories are searched recursively. Each file is one document; ingesting again
    re-embeds only the files whose text changed. A document's id is the file's resolved
    path (symlinks followed) relative to --root, which defaults to the current
    directory, or its absolute path when it lies outside: `docs`, `./docs`, `/abs/docs`
    and `.` in the parent directory give the same ids (docs/guide.md), and a file
    reached twice is one document. Pass --root where the command may run from another
    directory.

    Files that are binary, not valid text in --encoding, empty, unreadable, or named
    explicitly with an unsupported suffix are skipped and listed with the reason.
    Documents stored by an earlier ingest of these paths whose files are gone are
    counted as stale; --prune deletes them (never documents from other paths, nor ones
    added through the Python API).

    \b
    Example:
      vecalchemy ingest docs README.md -c kb --prune
    """
    import warnings

    from rich.console import Console
    from rich.markup import escape

    from vecalchemy.cli._ingest import ingest_files
    from vecalchemy.cli._sources import check_encoding
    from vecalchemy.collection import Collection
    from vecalchemy.engine import create_engine
    from vecalchemy.errors import ConfigurationError, InvalidArgument

    try:
        check_encoding(encoding)
    except InvalidArgument as exc:
        raise click.BadParameter(str(exc), param_hint="--encoding") from exc
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
        with warnings.catch_warnings():
            # Truncated chunks are in the summary below, said once and in its words.
            warnings.simplefilter("ignore", UserWarning)
            report = ingest_files(
                collection,
                paths,
                glob=glob,
                encoding=encoding,
                root=root,
                prune=prune,
                progress=not as_json,
            )
        result, seconds = report.result, report.seconds
        summary = {
            "collection": name,
            "embedder": collection.embedder.name,
            "files": report.files,
            "documents_embedded": result.documents,
            "documents_unchanged": result.skipped,
            "chunks": result.chunks,
            "skipped": [{"path": s.path, "reason": s.reason} for s in report.skipped],
            "pruned": len(report.pruned),
            "stale": len(report.stale),
            "truncated_chunks": result.truncated_chunks,
            "truncated_tokens": result.truncated_tokens,
            "seconds": round(seconds, 3),
            "chunks_per_second": round(result.chunks / seconds, 1) if seconds else None,
        }
        if as_json:
            click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
            return
        console.print(
            f"[bold]{escape(name)}[/]: {result.documents} files embedded as {result.chunks} "
            f"chunks, {result.skipped} unchanged, in {seconds:.1f} s with "
            f"{escape(collection.embedder.name)}"
        )
        if report.skipped:
            console.print(f"skipped {len(report.skipped)} files:")
            for s in report.skipped[:_SHOWN]:
                console.print(
                    f"  {escape(s.path)}: {escape(s.reason)}", highlight=False, soft_wrap=True
                )
            if len(report.skipped) > _SHOWN:
                console.print(f"  ... and {len(report.skipped) - _SHOWN} more (--json lists all)")
        if report.pruned:
            console.print(f"pruned {len(report.pruned)} documents whose files are gone")
        if report.stale:
            console.print(
                f"{len(report.stale)} documents whose files are gone are still in {name}; "
                "pass --prune to delete them"
            )
        if result.truncated_chunks:
            console.print(
                f"[yellow]warning:[/] {result.truncated_chunks} chunks are longer than the "
                f"model's window: it ignored their last {result.truncated_tokens} tokens in "
                "all; use --splitter markdown (which fits chunks to the window) or a smaller "
                "size",
                highlight=False,
            )
    finally:
        engine.dispose()


#: Skipped files listed in the human summary (--json lists all).
_SHOWN = 20


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
