"""Evaluate a collection's search on judged queries: :func:`evaluate` and its result.

Private to :mod:`vecalchemy.eval`.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa

from vecalchemy._beir import read_qrels, read_queries
from vecalchemy._fulltext import check_query_text
from vecalchemy._progress import Progress, progress_reporter
from vecalchemy.collection import Collection
from vecalchemy.collection._table import read_state
from vecalchemy.collection._writes import id_in
from vecalchemy.errors import ConfigurationError, InvalidArgument
from vecalchemy.eval._metrics import DEFAULT_CUTOFF, dedupe, metric_names, score_rankings
from vecalchemy.metrics import MAX_EF_SEARCH
from vecalchemy.query.fusion import Fusion

__all__ = ["EVAL_MODES", "EvalMode", "EvalResult", "evaluate", "load_qrels", "load_queries"]

#: How :func:`evaluate` searches: ``Collection.search``'s modes, and its text leg alone.
EvalMode = Literal["vector", "text", "hybrid"]
EVAL_MODES: tuple[EvalMode, ...] = ("vector", "text", "hybrid")

#: The most chunks one search may fetch (an HNSW scan returns at most ef_search rows).
_MAX_CHUNKS = MAX_EF_SEARCH


@dataclass
class EvalResult:
    """What :func:`evaluate` measured.

    ``metrics`` holds the mean of each metric over the ``queries`` evaluated (those
    ``qrels`` judges; see :mod:`vecalchemy.eval` for the definitions), ``per_query`` every
    query's values and ``latency_ms`` (per query, of all the searches it took), and
    ``rankings`` the document ids each query got, best first. ``p50_ms`` and ``p95_ms``
    are latency percentiles over the queries.

    ``without_relevant`` queries have judgements but none above 0: they score 0 and
    count in the means, as in BEIR. ``unjudged_queries`` of the queries file have no
    judgements and were not run. ``relevant`` documents are judged above 0 for some
    query; ``missing_relevant`` of them are not in the collection (they can never be
    found). ``documents`` and ``chunks``: what the collection holds.

    Example::

        result = vecalchemy.evaluate(docs, "queries.jsonl", "qrels/test.tsv", k=100)
        result.metrics["ndcg@10"], result.p50_ms
        result.per_query["q1"]["recall@100"]
    """

    collection: str
    mode: EvalMode
    k: int
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    rankings: dict[str, list[str]] = field(repr=False)
    p50_ms: float
    p95_ms: float
    queries: int
    without_relevant: int
    unjudged_queries: int
    relevant: int
    missing_relevant: int
    documents: int
    chunks: int

    def as_dict(self, *, rankings: bool = False) -> dict[str, Any]:
        """A JSON-ready dict of the result (with the rankings when asked).

        Example::

            json.dumps(result.as_dict(), indent=2)
        """
        out: dict[str, Any] = {
            "collection": self.collection,
            "mode": self.mode,
            "k": self.k,
            "metrics": {n: round(v, 6) for n, v in self.metrics.items()},
            "latency_ms": {"p50": round(self.p50_ms, 3), "p95": round(self.p95_ms, 3)},
            "queries": self.queries,
            "without_relevant": self.without_relevant,
            "unjudged_queries": self.unjudged_queries,
            "relevant": self.relevant,
            "missing_relevant": self.missing_relevant,
            "documents": self.documents,
            "chunks": self.chunks,
            "per_query": {
                q: {n: round(v, 6) for n, v in values.items()}
                for q, values in self.per_query.items()
            },
        }
        if rankings:
            out["rankings"] = self.rankings
        return out


def load_queries(queries: str | Path | Mapping[str, str]) -> dict[str, str]:
    if isinstance(queries, (str, Path)):
        return read_queries(queries)
    if not isinstance(queries, Mapping):
        raise InvalidArgument(
            "queries must be the path of a BEIR queries.jsonl or a {query id: text} dict, "
            f"got {type(queries).__name__}"
        )
    return {str(q): t for q, t in queries.items()}


def load_qrels(
    qrels: str | Path | Mapping[str, Mapping[str, int]],
) -> dict[str, dict[str, int]]:
    if isinstance(qrels, (str, Path)):
        return read_qrels(qrels)
    if not isinstance(qrels, Mapping):
        raise InvalidArgument(
            "qrels must be the path of a BEIR qrels .tsv or a {query id: {document id: "
            f"grade}} dict, got {type(qrels).__name__}"
        )
    out: dict[str, dict[str, int]] = {}
    for query_id, judged in qrels.items():
        if not isinstance(judged, Mapping) or not all(
            isinstance(g, int) and not isinstance(g, bool) for g in judged.values()
        ):
            raise InvalidArgument(
                f"qrels of query {query_id!r} must be a {{document id: integer grade}} dict"
            )
        out[str(query_id)] = {str(d): g for d, g in judged.items()}
    if not out:
        raise InvalidArgument("qrels judge no query; give at least one judgement")
    return out


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= _MAX_CHUNKS:
        raise InvalidArgument(
            f"k must be a whole number of documents from 1 to {_MAX_CHUNKS:,}, got {k!r}"
        )
    return k


def _searcher(
    collection: Collection,
    mode: EvalMode,
    where: Mapping[str, Any] | None,
    fusion: Fusion | None = None,
) -> Callable[[str, int], list[str]]:
    """``search(query, n) -> ids of the n best chunks``, best first, in ``mode``
    (``Collection.search``'s own modes: the text leg is the collection's ranking,
    PostgreSQL full text or BM25)."""
    if mode == "text":
        with collection.engine.connect() as conn:
            state = read_state(conn, collection.name)
            conn.rollback()
        if state.tsv is None:
            raise ConfigurationError(
                f"collection {collection.name!r} was made before full-text search and has "
                f"no full-text column; run Collection.open({collection.name!r}).upgrade() "
                "once, then evaluate it with mode='text'"
            )
    if mode == "hybrid":
        return lambda query, n: [
            h.id for h in collection.search(query, n, where=where, mode=mode, fusion=fusion)
        ]
    return lambda query, n: [h.id for h in collection.search(query, n, where=where, mode=mode)]


def _documents(
    search: Callable[[str, int], list[str]], query: str, k: int, per_doc: float
) -> list[str]:
    """The ``k`` best documents: each at its best chunk, asking for more chunks (twice as
    many each time, up to 1,000) while fewer than ``k`` distinct documents come back
    from a full page of chunks."""
    want = min(max(k, math.ceil(k * per_doc)), _MAX_CHUNKS)
    while True:
        chunk_ids = search(query, want)
        docs = dedupe(chunk_ids)
        if len(docs) >= k or len(chunk_ids) < want or want >= _MAX_CHUNKS:
            return docs[:k]
        want = min(want * 2, _MAX_CHUNKS)


def _present(collection: Collection, ids: Sequence[str]) -> set[str]:
    table = collection.table
    with collection.engine.connect() as conn:
        found = conn.execute(
            sa.select(table.c.id).where(id_in(table, list(ids))).where(table.c.chunk == 0)
        ).scalars()
        present = set(found)
        conn.rollback()
    return present


def _counts(collection: Collection) -> tuple[int, int]:
    """(documents, chunks); ``count()`` first checks that the collection can be read."""
    documents = collection.count()
    with collection.engine.connect() as conn:
        chunks = conn.execute(sa.select(sa.func.count()).select_from(collection.table)).scalar()
        conn.rollback()
    return documents, int(chunks or 0)


def evaluate(
    collection: Collection,
    queries: str | Path | Mapping[str, str],
    qrels: str | Path | Mapping[str, Mapping[str, int]],
    *,
    mode: EvalMode = "vector",
    k: int = 100,
    cutoff: int = DEFAULT_CUTOFF,
    where: Mapping[str, Any] | None = None,
    fusion: Fusion | None = None,
    progress: Progress | bool | None = None,
) -> EvalResult:
    """Search ``collection`` with every judged query and score the rankings.

    ``queries`` is a BEIR ``queries.jsonl`` (or ``{query id: text}``), ``qrels`` a BEIR
    qrels ``.tsv`` (or ``{query id: {document id: grade}}``). The collection's document
    ids (``Collection.add(ids=...)``) must be the corpus ids the qrels name. Each query
    judged in ``qrels`` is searched once (after one untimed warm-up search, which loads
    the model) for its ``k`` best *documents*: a document split into chunks is ranked
    once, at its best chunk, and more chunks are fetched while fewer than ``k``
    documents come back. Metrics: nDCG@``cutoff``, recall@``cutoff``, recall@``k`` and
    MRR@``cutoff`` (see :mod:`vecalchemy.eval`), means over the judged queries.
    Latency is the wall time of a query's searches, embedding the query included.

    ``mode``: ``"vector"`` or ``"hybrid"`` as :meth:`Collection.search`; ``"text"`` its
    full-text leg alone (PostgreSQL ``websearch_to_tsquery`` ranked by ``ts_rank_cd``).
    ``where``: a metadata filter for every search. ``fusion``: the hybrid fusion
    (default: the collection's, :meth:`Collection.hybrid_fusion`); ``mode="hybrid"``
    only. ``progress=True`` shows a bar.

    Raises :class:`~vecalchemy.InvalidArgument` for bad files or arguments, a judged
    query that has no text, or qrels none of whose relevant documents are in the
    collection (its ids are not the corpus ids), before any query is timed.

    Example::

        from vecalchemy import Collection, evaluate

        docs = Collection.open("scifact")
        result = evaluate(docs, "scifact/queries.jsonl", "scifact/qrels/test.tsv",
                          mode="hybrid", k=100)
        print(result.metrics)      # {'ndcg@10': 0.64, 'recall@10': ..., 'recall@100': ..., ...}
    """
    if not isinstance(collection, Collection):
        raise InvalidArgument(
            f"evaluate() needs a Collection, got {type(collection).__name__}; open one "
            "with Collection.open(name)"
        )
    if mode not in EVAL_MODES:
        raise InvalidArgument(f"unknown mode {mode!r}; use one of: {', '.join(EVAL_MODES)}")
    k = _check_k(k)
    if fusion is not None and mode != "hybrid":
        raise InvalidArgument(f"fusion= applies to mode='hybrid' only, not mode={mode!r}")
    names = metric_names(k, cutoff)
    texts = load_queries(queries)
    judged = load_qrels(qrels)
    missing_text = [q for q in judged if q not in texts]
    if missing_text:
        shown = ", ".join(repr(q) for q in missing_text[:5])
        raise InvalidArgument(
            f"{len(missing_text)} judged queries are not in the queries ({shown}); "
            "give the queries file of the same dataset"
        )
    for query_id in judged:
        check_query_text(texts[query_id])
    documents, chunks = _counts(collection)  # checks the collection exists and is usable
    relevant = sorted({d for j in judged.values() for d, g in j.items() if g > 0})
    present = _present(collection, relevant)
    if relevant and not present:
        raise InvalidArgument(
            f"none of the {len(relevant)} relevant documents of the qrels is in collection "
            f"{collection.name!r} (e.g. {relevant[0]!r}): its document ids must be the "
            "corpus ids the qrels name; add the corpus with Collection.add(texts, "
            "ids=corpus_ids)"
        )
    search = _searcher(collection, mode, where, fusion)
    per_doc = chunks / documents if documents else 1.0
    order = [q for q in texts if q in judged]
    rankings: dict[str, list[str]] = {}
    latency: dict[str, float] = {}
    with progress_reporter(progress, unit="queries") as report:
        search(texts[order[0]], k)  # warm-up: the model loads, the connection opens
        for done, query_id in enumerate(order, 1):
            started = time.perf_counter()
            rankings[query_id] = _documents(search, texts[query_id], k, per_doc)
            latency[query_id] = (time.perf_counter() - started) * 1000
            if report is not None:
                report("searching", done, len(order))
    scores = score_rankings(rankings, judged, k=k, cutoff=cutoff)
    per_query = {q: {**scores[q], "latency_ms": latency[q]} for q in order}
    times = list(latency.values())
    return EvalResult(
        collection=collection.name,
        mode=mode,
        k=k,
        metrics={n: statistics.fmean(scores[q][n] for q in order) for n in names},
        per_query=per_query,
        rankings=rankings,
        p50_ms=statistics.median(times),
        p95_ms=float(np.percentile(times, 95)),
        queries=len(order),
        without_relevant=sum(1 for q in order if not any(g > 0 for g in judged[q].values())),
        unjudged_queries=sum(1 for q in texts if q not in judged),
        relevant=len(relevant),
        missing_relevant=len(relevant) - len(present),
        documents=documents,
        chunks=chunks,
    )
