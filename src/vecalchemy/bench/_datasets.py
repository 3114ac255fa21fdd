"""The datasets :func:`vecalchemy.run_bench` can load into a scratch schema, and the schema.

* ``synthetic[:ROWS[:DIM]]`` (default 10,000 x 128): a seeded Gaussian mixture made
  with numpy: ``max(1, min(64, ROWS // 100))`` centres drawn from N(0, 1), each row a
  random centre plus N(0, SPREAD^2) noise (``SPREAD`` = 1: clusters as wide as the
  spread of their centres, so they overlap, as clusters of real embeddings do); the
  queries are further draws from the same mixture (seed + 1), so none is a row of the
  table.
* ``beir:DIRECTORY``: a BEIR-format directory (``corpus.jsonl`` with ``_id``, ``title``,
  ``text``; ``queries.jsonl`` with ``_id``, ``text``), embedded with an embedder
  (``title + " " + text`` for a document, ``embed_query`` for a query). Relevance
  judgements (``qrels``) are not read: the bench measures the index against exact
  search, not the embedder against people.

The rows go into ``<schema>.vectors`` (``id bigint`` primary key, ``embedding
vector(DIM)``, for BEIR also ``doc_id text``) with binary COPY, then the HNSW index is
built and the table analysed. The schema is ``vecalchemy_bench_<random hex>``, created
for the run and dropped (``CASCADE``) when it ends, also when it fails.

Private to vecalchemy.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from pgvector.sqlalchemy import Vector

from vecalchemy._beir import json_lines, json_objects
from vecalchemy._progress import Progress, progress_reporter
from vecalchemy.embedders import Embedder, get_embedder
from vecalchemy.errors import ConfigurationError, InvalidArgument, UnsupportedIndex
from vecalchemy.load import load
from vecalchemy.metrics import Metric, Storage
from vecalchemy.schema import HNSW

__all__ = [
    "SCHEMA_PREFIX",
    "DatasetSpec",
    "ScratchTable",
    "parse_dataset",
    "read_queries",
    "scratch_table",
]

#: Every scratch schema's name starts with this (a run killed half-way leaves one behind).
SCHEMA_PREFIX = "vecalchemy_bench_"
SYNTHETIC_ROWS = 10_000
SYNTHETIC_DIM = 128
#: pgvector indexes ``vector`` columns of at most this many dimensions.
MAX_INDEX_DIM = 2_000
BATCH = 10_000
#: The standard deviation of a synthetic row around its centre (the centres' is 1).
SPREAD = 1.0
EMBED_BATCH = 256
FORMS = "synthetic[:ROWS[:DIM]] (e.g. synthetic:10000:128) or beir:DIRECTORY"

Vec = npt.NDArray[np.float32]


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed ``--dataset``: ``kind`` is ``synthetic`` (``rows``, ``dim``) or ``beir``
    (``path``)."""

    text: str
    kind: str
    rows: int = 0
    dim: int = 0
    path: Path | None = None


def parse_dataset(text: str) -> DatasetSpec:
    """``synthetic:2000:32`` -> DatasetSpec(kind="synthetic", rows=2000, dim=32), checked
    (the BEIR directory must hold ``corpus.jsonl`` and ``queries.jsonl``)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument(f"dataset must be {FORMS}, got {text!r}")
    kind, _, rest = text.strip().partition(":")
    kind = kind.lower()
    if kind == "synthetic":
        parts = rest.split(":") if rest else []
        if len(parts) > 2 or not all(p.strip().isdigit() for p in parts):
            raise InvalidArgument(f"dataset must be {FORMS}, got {text!r}")
        rows = int(parts[0]) if parts else SYNTHETIC_ROWS
        dim = int(parts[1]) if len(parts) > 1 else SYNTHETIC_DIM
        if rows < 1:
            raise InvalidArgument(f"a synthetic dataset needs at least one row, got {text!r}")
        if not 1 <= dim <= MAX_INDEX_DIM:
            raise InvalidArgument(
                f"a synthetic dataset's dimension must be from 1 to {MAX_INDEX_DIM:,} (the "
                f"most pgvector indexes in a vector column), got {dim}"
            )
        return DatasetSpec(text, "synthetic", rows=rows, dim=dim)
    if kind == "beir" and rest:
        path = Path(rest).expanduser()
        missing = [n for n in ("corpus.jsonl", "queries.jsonl") if not (path / n).is_file()]
        if missing:
            raise InvalidArgument(
                f"{path} is not a BEIR dataset directory: it has no {' or '.join(missing)}"
            )
        return DatasetSpec(text, "beir", path=path)
    raise InvalidArgument(f"dataset must be {FORMS}, got {text!r}")


@dataclass
class ScratchTable:
    """A dataset loaded into a scratch schema: the table, its index, the queries."""

    schema: str
    table: sa.Table
    index: sa.Index
    queries: list[Vec]
    query_source: str
    rows: int
    dim: int
    details: dict[str, Any] = field(default_factory=dict)


def _mixture(rows: int, dim: int, seed: int) -> tuple[Vec, Iterator[Vec]]:
    """The mixture's centres, and its rows in batches of :data:`BATCH` (memory stays flat
    however many rows there are; the same seed gives the same rows)."""
    rng = np.random.default_rng(seed)
    clusters = max(1, min(64, rows // 100))
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)

    def batches() -> Iterator[Vec]:
        for start in range(0, rows, BATCH):
            n = min(BATCH, rows - start)
            labels = rng.integers(clusters, size=n)
            noise = rng.standard_normal((n, dim)).astype(np.float32)
            yield (centres[labels] + SPREAD * noise).astype(np.float32)

    return centres, batches()


def _mixture_queries(centres: Vec, n: int, seed: int) -> list[Vec]:
    rng = np.random.default_rng(seed + 1)
    labels = rng.integers(len(centres), size=n)
    noise = rng.standard_normal((n, centres.shape[1])).astype(np.float32)
    return list((centres[labels] + SPREAD * noise).astype(np.float32))


def read_queries(path: str | Path) -> list[Any]:
    """Query vectors from a ``.npy`` file (a 2-D array, one query per row) or JSON lines
    (an array per line, or an object with a ``vector`` or ``embedding`` array)."""
    path = Path(path)
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise InvalidArgument(f"{path} is not a numpy array file: {exc}") from None
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
            raise InvalidArgument(f"{path} must hold a 2-D array of numbers, one query per row")
        return list(array.astype(np.float32))
    vectors: list[Any] = []
    for number, item in json_lines(path):
        if isinstance(item, dict):
            item = item.get("vector", item.get("embedding"))
        if not isinstance(item, list) or not item:
            raise InvalidArgument(
                f"{path}:{number} must be a JSON array of numbers, or an object with a "
                "'vector' or 'embedding' array"
            )
        vectors.append(item)
    if not vectors:
        raise InvalidArgument(f"{path} holds no query vectors")
    return vectors


def _beir_texts(path: Path) -> tuple[list[str], list[str], list[str]]:
    """(document ids, document texts, query texts); blank ones are left out."""
    ids: list[str] = []
    texts: list[str] = []
    for _, item in json_objects(path / "corpus.jsonl"):
        text = f"{item.get('title') or ''} {item.get('text') or ''}".strip()
        if text:
            ids.append(str(item.get("_id", len(ids))))
            texts.append(text)
    queries = [
        str(item["text"]).strip()
        for _, item in json_objects(path / "queries.jsonl")
        if str(item.get("text") or "").strip()
    ]
    if not texts or not queries:
        raise InvalidArgument(
            f"the BEIR dataset in {path} has no {'documents' if not texts else 'queries'} with text"
        )
    return ids, texts, queries


def _embed(embedder: Embedder, texts: Sequence[str], progress: Progress | None) -> Vec:
    out = np.empty((len(texts), embedder.dim), dtype=np.float32)
    for start in range(0, len(texts), EMBED_BATCH):
        batch = texts[start : start + EMBED_BATCH]
        out[start : start + len(batch)] = embedder.embed_documents(list(batch))
        if progress is not None:
            progress("embed", start + len(batch), len(texts))
    return out


def _table(schema: str, dim: int, *, doc_ids: bool) -> sa.Table:
    columns = [
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("embedding", Vector(dim), nullable=False),
    ]
    if doc_ids:
        columns.append(sa.Column("doc_id", sa.Text, nullable=False))
    return sa.Table("vectors", sa.MetaData(schema=schema), *columns)


def _create_schema(engine: sa.Engine, schema: str) -> None:
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.ProgrammingError as exc:
        raise ConfigurationError(
            f"cannot create the scratch schema {schema} for the dataset ({exc.orig}); bench "
            "a dataset as a role that may CREATE SCHEMA in this database, or bench one of "
            "your tables with table= and column="
        ) from None


@contextlib.contextmanager
def scratch_table(
    engine: sa.Engine,
    spec: DatasetSpec,
    *,
    metric: Metric,
    hnsw: HNSW,
    queries: int,
    embedder: str | Embedder,
    seed: int,
    progress: Progress | bool | None,
) -> Iterator[ScratchTable]:
    """``spec`` loaded into a new schema and indexed with HNSW; the schema is dropped at
    the end (also on an error)."""
    metric.check_storage(Storage.VECTOR)
    opclass = metric.opclass(Storage.VECTOR)
    details: dict[str, Any] = {}
    beir: tuple[list[str], Vec, list[Vec]] | None = None
    if spec.kind == "beir":
        assert spec.path is not None
        model = get_embedder(embedder)
        if model.dim > MAX_INDEX_DIM:
            raise UnsupportedIndex(
                f"embedder {model.name} makes {model.dim:,}-dimension vectors; pgvector "
                f"indexes vector columns of at most {MAX_INDEX_DIM:,}: pick a smaller model"
            )
        ids, texts, query_texts = _beir_texts(spec.path)
        started = time.perf_counter()
        with progress_reporter(progress, unit="texts") as report:
            vectors = _embed(model, texts, report)
        query_vectors = [model.embed_query(t) for t in query_texts[:queries]]
        details.update(embedder=model.name, embed_seconds=round(time.perf_counter() - started, 3))
        details["documents"] = len(texts)
        beir = (ids, vectors, query_vectors)
        rows, dim = len(texts), model.dim
        source = f"the first {len(query_vectors)} queries of queries.jsonl, embedded"
    else:
        rows, dim = spec.rows, spec.dim
        source = f"drawn from the same Gaussian mixture (seed {seed + 1}), not rows of the table"
    schema = f"{SCHEMA_PREFIX}{uuid.uuid4().hex[:12]}"
    _create_schema(engine, schema)
    try:
        table = _table(schema, dim, doc_ids=beir is not None)
        with engine.begin() as conn:
            table.create(conn)
        started = time.perf_counter()
        with progress_reporter(progress, unit="rows") as report:
            if beir is not None:
                ids, vectors, query_vectors = beir
                for start in range(0, rows, BATCH):
                    stop = min(rows, start + BATCH)
                    columns = {
                        "id": range(start, stop),
                        "embedding": vectors[start:stop],
                        "doc_id": ids[start:stop],
                    }
                    load(engine, table, columns)
                    if report is not None:
                        report("load", stop, rows)
                qs = query_vectors
            else:
                centres, batches = _mixture(rows, dim, seed)
                done = 0
                for batch in batches:
                    load(engine, table, {"id": range(done, done + len(batch)), "embedding": batch})
                    done += len(batch)
                    if report is not None:
                        report("load", done, rows)
                qs = _mixture_queries(centres, queries, seed)
        details["load_seconds"] = round(time.perf_counter() - started, 3)
        index = sa.Index(
            "vectors_embedding_hnsw",
            table.c.embedding,
            postgresql_using="hnsw",
            postgresql_with={"m": hnsw.m, "ef_construction": hnsw.ef_construction},
            postgresql_ops={"embedding": opclass},
        )
        started = time.perf_counter()
        with engine.begin() as conn:
            index.create(conn)
            conn.exec_driver_sql(f'ANALYZE "{schema}".vectors')
        details["index_build_seconds"] = round(time.perf_counter() - started, 3)
        yield ScratchTable(schema, table, index, qs, source, rows, dim, details)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
