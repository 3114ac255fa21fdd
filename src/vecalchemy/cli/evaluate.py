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
@click.option(
    "--fusion",
    "fusion_spec",
    help="Hybrid fusion: 'rrf', 'rrf:K' or 'weighted:A' (A: the dense weight, 0-1 exclusive). "
    "Default: the collection's (see --tune-fusion).",
)
@click.option(
    "--tune-fusion",
    is_flag=True,
    help="Evaluate RRF and the convex combinations 0.05/0.95 ... 0.95/0.05 (hybrid mode), "
    "choose the best by nDCG@10, cross-validated over 5 folds.",
)
@click.option(
    "--store", is_flag=True, help="With --tune-fusion: record the choice in the collection."
)
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
    fusion_spec: str | None,
    tune_fusion: bool,
    store: bool,
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

    With --tune-fusion, every fusion of a grid is evaluated in hybrid mode and the best
    is reported with its cross-validated (held-out) score and both legs alone; --store
    records it, so that the collection's hybrid searches use it.

    \b
    Example:
      vecalchemy eval -c scifact --queries scifact/queries.jsonl \\
          --qrels scifact/qrels/test.tsv --mode hybrid -k 100
      vecalchemy eval -c scifact --queries Q.jsonl --qrels Q.tsv --tune-fusion --store
    """
    from rich.console import Console
    from rich.table import Table

    from vecalchemy.collection import Collection
    from vecalchemy.engine import create_engine
    from vecalchemy.errors import FilterError
    from vecalchemy.eval import evaluate
    from vecalchemy.eval import tune_fusion as tune_fusion_fn
    from vecalchemy.filters import parse_filter

    if store and not tune_fusion:
        raise click.UsageError("--store records what --tune-fusion chose; add --tune-fusion")
    if tune_fusion and fusion_spec is not None:
        raise click.UsageError("--tune-fusion chooses the fusion; drop --fusion")
    if (tune_fusion or fusion_spec is not None) and mode != "hybrid":
        if mode != "vector":  # the default mode: --tune-fusion implies hybrid
            raise click.UsageError("--fusion and --tune-fusion apply to --mode hybrid")
        mode = "hybrid"
    fusion = _parse_fusion(fusion_spec) if fusion_spec is not None else None
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
        if tune_fusion:
            tuning = tune_fusion_fn(
                collection, queries, qrels, k=k, where=where, store=store, progress=not as_json
            )
            _print_tuning(name, tuning, as_json=as_json)
            return
        result = evaluate(
            collection,
            queries,
            qrels,
            mode=mode,  # type: ignore[arg-type]  # click.Choice
            k=k,
            where=where,
            fusion=fusion,
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


def _parse_fusion(spec: str) -> Any:
    """``rrf``, ``rrf:K`` or ``weighted:A`` as a fusion."""
    from vecalchemy.errors import InvalidSearch
    from vecalchemy.query.fusion import RRF, Weighted

    kind, _, value = spec.partition(":")
    try:
        if kind == "rrf":
            return RRF(k=int(value)) if value else RRF()
        if kind == "weighted" and value:
            a = float(value)
            if not 0.0 < a < 1.0:
                raise ValueError
            return Weighted((a, round(1.0 - a, 12)))
    except (ValueError, InvalidSearch):
        pass
    raise click.BadParameter(
        f"{spec!r} is not a fusion; use 'rrf', 'rrf:60' or 'weighted:0.75' (the dense weight, "
        "between 0 and 1)",
        param_hint="--fusion",
    )


def _print_tuning(name: str, tuning: Any, *, as_json: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from vecalchemy.eval import fusion_label

    if as_json:
        click.echo(json.dumps(tuning.as_dict(), indent=2, ensure_ascii=False))
        return
    chosen = fusion_label(tuning.fusion)
    click.echo(f"{name}: {tuning.queries} queries, {tuning.metric} per fusion (hybrid mode)")
    table = Table()
    table.add_column("fusion")
    table.add_column(tuning.metric, justify="right")
    table.add_row("vector leg alone", f"{tuning.vector:.4f}")
    table.add_row("text leg alone", f"{tuning.text:.4f}")
    for label, value in tuning.scores.items():
        table.add_row(f"{label}{'  <- best' if label == chosen else ''}", f"{value:.4f}")
    Console(width=None if sys.stdout.isatty() else 100).print(table)
    verdict = "above" if tuning.beats_both_legs else "NOT above"
    click.echo(
        f"best: {chosen}, {tuning.score:.4f} on all queries; held out ({tuning.folds}-fold "
        f"cross-validation): {tuning.heldout:.4f}, {verdict} both legs alone"
    )
    if tuning.stored:
        click.echo(f"stored: {name}'s hybrid searches now use {chosen}")
