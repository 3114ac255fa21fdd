"""``vecalchemy demo``: the whole job end to end on a real corpus, in well under a minute.

1. start the embedded PostgreSQL (or use the configured server);
2. build a corpus from the docstrings of the Python standard library installed with this
   interpreter (several thousand real documents, nothing downloaded);
3. embed them with all-MiniLM-L6-v2 (on ONNX Runtime when installed), or the
   built-in :class:`~vecalchemy.embedders.HashingEmbedder` without the model;
4. bulk-load them with binary COPY into a table created without its vector index;
5. build the HNSW index;
6. run example queries through :func:`vecalchemy.search` and print the hits.

Example::

    report = run_demo(limit=500, console=Console(quiet=True))
    report.results[0].hits[0].title      # 'json.loads' (or another json function)
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from vecalchemy.cli._corpus import CorpusDocument, stdlib_corpus
from vecalchemy.embedders import Embedder, HashingEmbedder, OnnxEmbedder, get_embedder
from vecalchemy.engine import create_engine
from vecalchemy.errors import ConfigurationError
from vecalchemy.indexes import build_indexes
from vecalchemy.load import load
from vecalchemy.schema import HNSW, Embedding, defer_indexes
from vecalchemy.search.vector import search

__all__ = ["DEFAULT_QUERIES", "DemoReport", "QueryResult", "run_demo"]

DIM = 384
RECALL_AT = 10
BATCH = 500

DEFAULT_QUERIES: tuple[str, ...] = (
    "parse a JSON document into Python objects",
    "compute a cryptographic hash digest of bytes",
    "run a subprocess and capture its output",
    "read a CSV file row by row",
    "send an email message over SMTP",
    "compress data with gzip",
)


class _Base(DeclarativeBase):
    pass


class DemoDoc(_Base):
    """A standard-library docstring, as the demo stores it."""

    __tablename__ = "vecalchemy_demo_docs"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    embedding = Embedding(DIM, metric="cosine", index=HNSW(m=16, ef_construction=64))


@dataclass(frozen=True)
class DemoHit:
    """One hit of an example query."""

    title: str
    source: str
    similarity: float
    snippet: str


@dataclass(frozen=True)
class QueryResult:
    """The hits of one example query, how long the search took, and its recall@k."""

    query: str
    hits: list[DemoHit]
    seconds: float
    recall: float  # recall@10 of the HNSW hits against exact search over the same vectors


@dataclass
class DemoReport:
    """What the demo did and how long each step took (seconds)."""

    documents: int = 0
    embedder: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    results: list[QueryResult] = field(default_factory=list)

    @property
    def recall(self) -> float:
        """Mean recall@10 of the HNSW index against exact search, over the queries."""
        return float(np.mean([r.recall for r in self.results])) if self.results else 0.0


def summary(doc: CorpusDocument, limit: int = 400) -> str:
    """What the demo embeds for a docstring: its name and first paragraph.

    The summary is what a search should match, and short texts keep a neural model
    on a 2-core CPU well inside the demo's one-minute budget.
    """
    first = doc.text.strip().split("\n\n", 1)[0]
    return f"{doc.title}: {' '.join(first.split())}"[:limit]


def _snippet(text: str, width: int = 90) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def default_embedder(console: Console) -> Embedder:
    """MiniLM: on ONNX Runtime when the ``onnx`` extra is installed (the same vectors,
    faster), else on sentence-transformers (the ``local`` extra), else the hashing
    embedder (with a notice)."""
    onnx = OnnxEmbedder()
    if importlib.util.find_spec("onnxruntime") is not None and (
        # Exporting the model needs torch; a cached export does not.
        importlib.util.find_spec("torch") is not None or onnx.model_path.is_file()
    ):
        return onnx
    if importlib.util.find_spec("sentence_transformers") is not None:
        return get_embedder("minilm")
    console.print(
        "[yellow]notice:[/] sentence-transformers is not installed, so the demo uses the "
        "hashing embedder; `pip install vecalchemy[local,onnx]` (or `make demo`) for MiniLM"
    )
    return HashingEmbedder(DIM)


def run_demo(
    url: str | None = None,
    *,
    limit: int | None = None,
    embedder: Embedder | str | None = None,
    queries: Sequence[str] = DEFAULT_QUERIES,
    k: int = 5,
    console: Console | None = None,
    engine: Engine | None = None,
) -> DemoReport:
    """Run the demo and return its report; prints progress and results to ``console``.

    ``limit`` caps the number of documents (all of them by default); ``embedder``
    defaults to :func:`default_embedder`; ``engine`` overrides ``url`` (tests pass
    their own).
    """
    console = console or Console()
    report = DemoReport()
    t = report.timings

    started = time.perf_counter()
    with console.status("starting the database"):
        eng = engine or create_engine(url)
        with eng.connect() as conn:
            server = conn.exec_driver_sql("SHOW server_version").scalar()
            ext = conn.exec_driver_sql(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).scalar()
    t["database"] = time.perf_counter() - started
    console.print(f"[bold]PostgreSQL[/] {server}, pgvector {ext} ({t['database']:.1f} s)")

    started = time.perf_counter()
    with console.status("reading standard-library docstrings"):
        docs = stdlib_corpus(limit)
    t["corpus"] = time.perf_counter() - started
    report.documents = len(docs)
    console.print(
        f"[bold]corpus[/] {len(docs):,} docstrings of the standard library ({t['corpus']:.1f} s)"
    )

    model = get_embedder(embedder) if embedder is not None else default_embedder(console)
    report.embedder = model.name
    if model.dim != DIM:
        raise ConfigurationError(
            f"the demo stores {DIM}-dimension vectors; {model.name} makes {model.dim}"
        )
    console.print(f"[bold]embedder[/] {model.name}")
    vectors = np.empty((len(docs), DIM), dtype=np.float32)
    started = time.perf_counter()
    if isinstance(model, OnnxEmbedder) and not model.loaded:
        # The first run exports the model into the cache: say so, not a stuck bar.
        with console.status("loading the ONNX model (exported once, on the first run)"):
            model.load()
    with _progress(console) as progress:
        task = progress.add_task("embedding", total=len(docs), rate="")
        for i in range(0, len(docs), BATCH):
            chunk = docs[i : i + BATCH]
            vectors[i : i + len(chunk)] = model.embed_documents([summary(d) for d in chunk])
            rate = (i + len(chunk)) / (time.perf_counter() - started)
            progress.update(task, advance=len(chunk), rate=f"{rate:,.0f} docs/s")
        t["embed"] = time.perf_counter() - started

        task = progress.add_task("loading", total=len(docs), rate="")
        started = time.perf_counter()
        with eng.begin() as conn:
            _Base.metadata.drop_all(conn)
            with defer_indexes():  # load first, index after: much faster
                _Base.metadata.create_all(conn)
            for i in range(0, len(docs), BATCH):
                chunk = docs[i : i + BATCH]
                load(
                    conn,
                    DemoDoc,
                    {
                        "id": list(range(i, i + len(chunk))),
                        "title": [d.title[:300] for d in chunk],
                        "source": [d.source[:300] for d in chunk],
                        "body": [d.text for d in chunk],
                        "embedding": vectors[i : i + len(chunk)],
                    },
                )
                rate = (i + len(chunk)) / (time.perf_counter() - started)
                progress.update(task, advance=len(chunk), rate=f"{rate:,.0f} rows/s")
        t["load"] = time.perf_counter() - started

    started = time.perf_counter()
    with console.status("building the HNSW index"):
        build_indexes(eng, DemoDoc)
        with eng.begin() as conn:
            conn.exec_driver_sql(f"ANALYZE {DemoDoc.__tablename__}")
    t["index"] = time.perf_counter() - started
    console.print(f"[bold]index[/] HNSW (m=16, ef_construction=64) built in {t['index']:.1f} s")

    # Exact cosine top-k over the same vectors, to measure the HNSW index's recall.
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    started_all = time.perf_counter()
    with Session(eng) as session:
        for query in queries:
            q = model.embed_query(query)
            started = time.perf_counter()
            # recall@10 is measured on the top 10 whatever k is shown
            hits = search(session, DemoDoc.embedding, q, k=max(k, RECALL_AT))
            took = time.perf_counter() - started
            depth = min(RECALL_AT, len(docs))
            exact = set(np.argsort(-(unit @ (q / np.linalg.norm(q))))[:depth].tolist())
            found = {h.row.id for h in hits[:depth]}
            hits = hits[:k]
            report.results.append(
                QueryResult(
                    query=query,
                    hits=[
                        DemoHit(h.row.title, h.row.source, h.similarity, _snippet(h.row.body))
                        for h in hits
                    ],
                    seconds=took,
                    recall=len(found & exact) / depth,
                )
            )
    t["queries"] = time.perf_counter() - started_all
    for result in report.results:
        console.print(_results_table(result, console.width))
    console.print(_timings_table(report))
    console.print(
        f"[bold]recall@{RECALL_AT}[/] of the HNSW index against exact search: {report.recall:.3f} "
        f"(mean over {len(report.results)} queries, {report.embedder})"
    )
    if engine is None:
        eng.dispose()
    return report


def _results_table(result: QueryResult, width: int) -> Table:
    titles = max((len(h.title) for h in result.hits), default=12)
    title_width = min(40, max(12, titles))
    # What is left of the console for the text once the other columns and borders are in.
    text_width = max(20, width - title_width - 2 - 10 - 13)
    title = f"“{result.query}”  ({result.seconds * 1000:.1f} ms, recall@10 {result.recall:.2f})"
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("docstring of", no_wrap=True, max_width=title_width)
    table.add_column("similarity", justify="right", no_wrap=True)
    table.add_column("text", no_wrap=True)
    for i, hit in enumerate(result.hits, 1):
        table.add_row(str(i), hit.title, f"{hit.similarity:.3f}", _snippet(hit.snippet, text_width))
    return table


def _timings_table(report: DemoReport) -> Table:
    table = Table(title="timings", title_justify="left")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("rate", justify="right")
    n = report.documents
    rates: dict[str, Any] = {
        "embed": f"{n / report.timings['embed']:,.0f} docs/s"
        if report.timings.get("embed")
        else "",
        "load": f"{n / report.timings['load']:,.0f} rows/s" if report.timings.get("load") else "",
        "queries": (
            f"{report.timings['queries'] / max(1, len(report.results)) * 1000:.1f} ms/query"
        ),
    }
    for step, seconds in report.timings.items():
        table.add_row(step, f"{seconds:.2f}", rates.get(step, ""))
    table.add_row("total", f"{sum(report.timings.values()):.2f}", "")
    return table
