"""``vecalchemy eval``: nDCG@10, recall@k and MRR of a collection's search on judged queries."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from vecalchemy.cli._group import URL_OPTION, main

__all__: list[str] = []

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@main.command(name="eval")
@click.option("--collection", "-c", "name", required=True, help="Collection (table) name.")
@click.option("--queries", "queries", required=True, type=_FILE, help="BEIR queries.jsonl.")
@click.option(
    "--qrels",
    required=True,
    type=_FILE,
    help="BEIR qrels .tsv (query-id, corpus-id, score; header line) or TREC qrels.",
)
@click.option(
    "--mode",
    type=click.Choice(["vector", "text", "hybrid"]),
    default="vector",
    show_default=True,
    help="How to search: by vector, by the words alone (full text), or both fused.",
)
@click.option(
    "-k",
    "k",
    default=100,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Documents retrieved per query (recall@k).",
)
@click.option("--where", "where_json", help='Metadata filter as JSON, e.g. \'{"lang": "en"}\'.')
@click.option("--embedder", help="Embedder spec (default: the one the collection was built with).")
@URL_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the result (per query too) as JSON.")
def eval_command(
    name: str,
    queries: Path,
    qrels: Path,
    mode: str,
    k: int,
    where_json: str | None,
    embedder: str | None,
    url: str | None,
    as_json: bool,
) -> None:
    """Measure search quality on judged queries: nDCG@10, recall@10, recall@k, MRR@10.

    The collection's document ids must be the corpus ids of the qrels (add the corpus
    with Collection.add(texts, ids=corpus_ids)); a document split into chunks counts
    once, at its best chunk. Every query the qrels judge is searched once; queries
    without a relevant document score 0, as in BEIR. Latency includes embedding the
    query.

    \b
    Example:
      vecalchemy eval -c scifact --queries scifact/queries.jsonl \\
          --qrels scifact/qrels/test.tsv --mode hybrid -k 100
    """
    from rich.console import Console
    from rich.table import Table

    from vecalchemy.collection import Collection
    from vecalchemy.engine import create_engine
    from vecalchemy.errors import FilterError
    from vecalchemy.eval import evaluate
    from vecalchemy.filters import parse_filter

    where = None
    if where_json is not None:
        try:
            where = parse_filter(where_json)
        except FilterError as exc:
            raise click.BadParameter(f"{exc}; for no filter, leave out --where") from exc
    engine = create_engine(url)
    try:
        overrides: dict[str, Any] = {"embedder": embedder} if embedder else {}
        collection = Collection.open(name, engine=engine, **overrides)
        result = evaluate(
            collection,
            queries,
            qrels,
            mode=mode,  # type: ignore[arg-type]  # click.Choice
            k=k,
            where=where,
            progress=not as_json,
        )
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(f"{name}, mode={mode}, k={k}: {result.queries} queries")
    table = Table()
    table.add_column("metric")
    table.add_column("mean", justify="right")
    for metric, value in result.metrics.items():
        table.add_row(metric, f"{value:.4f}")
    table.add_row("p50 latency", f"{result.p50_ms:.1f} ms")
    table.add_row("p95 latency", f"{result.p95_ms:.1f} ms")
    Console(width=None if sys.stdout.isatty() else 100).print(table)
    notes = [
        f"{result.documents:,} documents in {result.chunks:,} chunks",
    ]
    if result.without_relevant:
        notes.append(f"{result.without_relevant} queries have no relevant document (score 0)")
    if result.unjudged_queries:
        notes.append(f"{result.unjudged_queries} queries without judgements were not run")
    click.echo("; ".join(notes))
    if result.missing_relevant:
        click.echo(
            f"warning: {result.missing_relevant} of the {result.relevant} relevant documents "
            f"are not in {name}: they can never be found, so recall cannot reach 1",
            err=True,
        )
