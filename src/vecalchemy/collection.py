"""Collections: documents in, good hits out, without writing a model.

A :class:`Collection` owns one table. Each row is a chunk of a document::

    id            text     the document's id (yours, or a generated one)
    chunk         integer  the chunk's position in its document (0, 1, ...)
    text          text     the chunk's text
    start, "end"  integer  where the chunk lies in the document (character offsets)
    metadata      jsonb    the document's metadata (GIN index), filtered with the
                           language of :mod:`vecalchemy.filters`
    content_hash  text     SHA-256 of the whole document's text
    embedder      text     the embedder's name, model revision included
    embedding     vector   with the index derived from the metric (HNSW by default)
    tsv           tsvector generated from ``text`` in the collection's language (GIN
                           index), for ``search(..., mode="hybrid")``

Documents are split (:mod:`vecalchemy.chunking`), embedded in batches, and written with
binary COPY (:func:`vecalchemy.load.load`). ``search`` runs through
:func:`vecalchemy.search`, so the vector index is always used; ``mode="hybrid"`` fuses
it with full-text search through :func:`vecalchemy.hybrid.hybrid_search`. A collection
refuses to mix embedders: vectors from two models in one column are meaningless together.

Example::

    from vecalchemy import Collection

    docs = Collection("notes", embedder="hashing")
    docs.add(["PostgreSQL has extensions.", "pgvector adds vector search."],
             metadata=[{"lang": "en"}, {"lang": "en"}])
    for hit in docs.search("vector search in postgres", k=1, where={"lang": "en"}):
        print(hit.id, round(hit.similarity, 3), hit.text)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from vecalchemy._names import fit_identifier
from vecalchemy.chunking import Chunk, Splitter, get_splitter
from vecalchemy.embedders import Embedder, get_embedder
from vecalchemy.engine import create_engine
from vecalchemy.errors import (
    ConfigurationError,
    EmbedderError,
    InvalidArgument,
    InvalidRows,
    InvalidSearch,
)
from vecalchemy.filters import compile_filter
from vecalchemy.fulltext import (
    DEFAULT_LANGUAGE,
    FULLTEXT_INFO_KEY,
    check_language,
    check_query_text,
    fulltext_column,
    fulltext_index_name,
)
from vecalchemy.fusion import RRF, Fusion, plan_hybrid
from vecalchemy.hybrid import run_fused
from vecalchemy.load import load
from vecalchemy.metrics import Metric
from vecalchemy.schema import HNSW, IVFFlat, embedding_column
from vecalchemy.search import search as run_search

__all__ = ["Collection", "CollectionHit", "Record"]

#: Loads of at least this many chunks into a table no larger than the load rebuild the
#: vector index afterwards rather than maintain it row by row.
_DEFER_MIN_ROWS = 10_000

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

#: A progress callback: called with (stage, done, total) as work advances.
Progress = Callable[[str, int, int], None]

#: The ways :meth:`Collection.search` can search.
SEARCH_MODES = ("vector", "hybrid")

#: The generated full-text column of every collection table.
_TSV = "tsv"


@dataclass(frozen=True, slots=True)
class CollectionHit:
    """One search result: the chunk, where it lies in its document, and how close it is.

    ``distance`` is the vector distance between the chunk and the query's embedding.
    ``similarity`` is what hits are ordered by, higher first: in ``mode="vector"`` the
    metric's similarity (``1 - distance`` for cosine); in ``mode="hybrid"`` the fused
    score (RRF or Weighted, see :mod:`vecalchemy.fusion`), which is not a function of
    ``distance``: a chunk found by its words alone can be far from the query vector.

    Example::

        hit = docs.search("query")[0]
        hit.id, hit.chunk, hit.text, hit.metadata, hit.similarity
    """

    id: str
    chunk: int
    text: str
    metadata: dict[str, Any]
    start: int
    end: int
    distance: float
    similarity: float


@dataclass(frozen=True, slots=True)
class Record:
    """A stored chunk, as :meth:`Collection.get` returns it."""

    id: str
    chunk: int
    text: str
    metadata: dict[str, Any]
    start: int
    end: int
    content_hash: str
    embedder: str


@dataclass
class AddResult:
    """What :meth:`Collection.add` or :meth:`Collection.upsert` did."""

    ids: list[str]
    documents: int = 0
    chunks: int = 0
    skipped: int = 0  # upsert: documents whose text and embedder were unchanged
    seconds: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def _progress(progress: Progress | bool | None) -> Iterator[Progress | None]:
    """The callback to report progress to: the caller's, a rich bar (True), or none."""
    if not progress:
        yield None
        return
    if callable(progress):
        yield progress
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        console=Console(stderr=True),
    ) as bar:
        tasks: dict[str, Any] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, rate="")
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(tasks[stage], completed=done, total=total, rate=f"{rate:,.0f} rows/s")

        yield report


def _id_in(table: sa.Table, ids: Sequence[str]) -> sa.ColumnElement[bool]:
    """``id = ANY(:ids)``: one array parameter, however many ids (IN would bind one each,
    and PostgreSQL takes at most 65,535 parameters per statement)."""
    return table.c.id == sa.any_(sa.bindparam(None, list(ids), type_=ARRAY(sa.Text)))


def _collection_hit(row: Any, distance: float, similarity: float) -> CollectionHit:
    return CollectionHit(
        id=row.id,
        chunk=row.chunk,
        text=row.text,
        metadata=row.metadata,
        start=row.start,
        end=row.end,
        distance=distance,
        similarity=similarity,
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Collection:
    """A table of embedded, chunked documents with add / upsert / delete / get / search.

    ``name`` is the table's name (lower-case letters, digits, underscores). ``embedder``
    is a spec (``"minilm"``, ``"hashing"``, ``"st:<model>"``, ``"openai:<model>@<url>"``;
    see :func:`vecalchemy.embedders.get_embedder`) or an embedder object. ``metric`` and
    ``index`` declare the embedding column as :func:`vecalchemy.Embedding` does.
    ``splitter`` chooses the chunking (:func:`vecalchemy.chunking.get_splitter`; default
    ``"markdown"``). ``engine`` defaults to :func:`vecalchemy.create_engine` (the
    embedded server unless configured). ``language`` is the text search configuration
    of the full-text column (``"english"``, ``"simple"``, ...; see ``mode="hybrid"``).

    The table is created on first use; an existing table must match the embedder's
    dimension, and rows embedded by another embedder are refused.

    Example::

        docs = Collection("kb", embedder="minilm", metric="cosine")
        docs.add(texts, metadata=[{"source": p} for p in paths])
        hits = docs.search("how do I reset my password", k=5, where={"source": {"$ne": "faq"}})
    """

    def __init__(
        self,
        name: str,
        *,
        embedder: str | Embedder = "minilm",
        metric: str | Metric = "cosine",
        engine: Engine | None = None,
        splitter: str | Splitter | None = "markdown",
        index: HNSW | IVFFlat | None = HNSW(),  # noqa: B008 - frozen, immutable default
        language: str = DEFAULT_LANGUAGE,
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidArgument(
                f"collection name {name!r} must be 1-63 lower-case letters, digits or "
                "underscores, starting with a letter or underscore"
            )
        self.name = name
        self.metric = Metric.parse(metric)
        self.embedder = get_embedder(embedder)
        self.splitter = get_splitter(splitter)
        self.language = check_language(language)
        # Recorded in the table's comment so that open() can rebuild the collection.
        self._config = {
            "embedder": embedder if isinstance(embedder, str) else None,
            "metric": self.metric.value,
            "splitter": splitter if isinstance(splitter, str) or splitter is None else None,
            "language": self.language,
        }
        self._engine = engine
        self._index = index
        self._table: sa.Table | None = None
        self._ready = False

    def __repr__(self) -> str:
        return (
            f"Collection({self.name!r}, embedder={self.embedder.name!r}, "
            f"metric={self.metric.value!r})"
        )

    # -- the table ---------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The engine the collection uses (created on first use when none was given)."""
        if self._engine is None:
            self._engine = create_engine()
        return self._engine

    @property
    def table(self) -> sa.Table:
        """The collection's ``sqlalchemy.Table`` (for your own queries)."""
        if self._table is None:
            md = sa.MetaData()
            self._table = sa.Table(
                self.name,
                md,
                sa.Column("id", sa.Text, primary_key=True),
                sa.Column("chunk", sa.Integer, primary_key=True),
                sa.Column("text", sa.Text, nullable=False),
                sa.Column("start", sa.Integer, nullable=False),
                sa.Column("end", sa.Integer, nullable=False),
                sa.Column("metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
                sa.Column("content_hash", sa.Text, nullable=False),
                sa.Column("embedder", sa.Text, nullable=False),
                embedding_column(
                    "embedding",
                    self.embedder.dim,
                    metric=self.metric,
                    index=self._index,
                    nullable=False,
                ),
                fulltext_column(_TSV, "text", language=self.language),
                sa.Index(
                    fit_identifier(f"ix_{self.name}_metadata"), "metadata", postgresql_using="gin"
                ),
            )
        return self._table

    @classmethod
    def open(cls, name: str, *, engine: Engine | None = None, **overrides: Any) -> Collection:
        """The existing collection ``name``, with the embedder, metric and splitter it was
        created with (read from its table's comment); ``overrides`` replace any of them.

        Example::

            docs = Collection.open("kb")          # no need to repeat embedder="minilm"
        """
        eng = engine or create_engine()
        with eng.connect() as conn:
            comment = conn.execute(
                sa.text("SELECT obj_description(to_regclass(:t), 'pg_class')"), {"t": name}
            ).scalar()
        if comment is None:
            raise ConfigurationError(
                f"there is no collection {name!r} in this database; create it with "
                "Collection(name, embedder=...) or `vecalchemy ingest`"
            )
        try:
            config = json.loads(comment).get("vecalchemy", {})
        except (ValueError, AttributeError):
            config = {}
        if not config.get("embedder") and "embedder" not in overrides:
            raise ConfigurationError(
                f"collection {name!r} does not record its embedder; pass embedder=..."
            )
        kwargs: dict[str, Any] = {
            "embedder": config.get("embedder"),
            "metric": config.get("metric", "cosine"),
            "splitter": config.get("splitter", "markdown"),
            # Collections made before hybrid search record no language: they get the default.
            "language": config.get("language", DEFAULT_LANGUAGE),
        }
        kwargs.update(overrides)
        return cls(name, engine=eng, **kwargs)

    def create(self) -> None:
        """Create the table and its indexes if they do not exist, and check an existing one.

        Called by every other method; call it yourself to fail early.
        """
        if self._ready:
            return
        table = self.table
        with self.engine.begin() as conn:
            new = conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": self.name}).scalar() is None
            table.metadata.create_all(conn)
            if new:
                self._write_comment(conn, self._config)
            else:
                self._ensure_fulltext(conn)
            dim = conn.execute(
                sa.text(
                    "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass(:t) "
                    "AND attname = 'embedding'"
                ),
                {"t": self.name},
            ).scalar()
            if dim is not None and dim > 0 and dim != self.embedder.dim:
                raise ConfigurationError(
                    f"collection {self.name!r} stores {dim}-dimension vectors but embedder "
                    f"{self.embedder.name} makes {self.embedder.dim}; use the embedder it "
                    "was built with, or another collection name"
                )
        self._ready = True

    def _write_comment(self, conn: sa.Connection, config: Mapping[str, Any]) -> None:
        # COMMENT takes no parameters; the name is checked against _NAME and the
        # comment is quoted as a standard SQL string (quotes doubled).
        comment = json.dumps({"vecalchemy": dict(config)}).replace("'", "''")
        # The driver's own connection (same transaction): without parameters
        # psycopg reads no placeholders, so a % in the comment is just a %.
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.execute(f"COMMENT ON TABLE \"{self.name}\" IS '{comment}'")

    def _ensure_fulltext(self, conn: sa.Connection) -> None:
        """Give a table made before hybrid search its ``tsv`` column and GIN index.

        ``create_all`` leaves existing tables alone. Adding a stored generated column
        rewrites the table under an exclusive lock, once; later calls find the column
        and only check that it was built in this collection's language.
        """
        found = conn.execute(
            sa.text(
                "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
                "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                "WHERE a.attrelid = to_regclass(:t) AND a.attname = :c AND NOT a.attisdropped"
            ),
            {"t": self.name, "c": _TSV},
        ).first()
        column = self.table.c[_TSV]
        if found is None:
            spec = column.info[FULLTEXT_INFO_KEY]
            # The name is checked against _NAME and the expression is built from a
            # checked language: no user text reaches this DDL unchecked.
            conn.exec_driver_sql(
                f'ALTER TABLE "{self.name}" ADD COLUMN IF NOT EXISTS {_TSV} tsvector '
                f"GENERATED ALWAYS AS ({spec.expression}) STORED"
            )
            comment = conn.execute(
                sa.text("SELECT obj_description(to_regclass(:t), 'pg_class')"), {"t": self.name}
            ).scalar()
            try:
                config = dict(json.loads(comment or "{}").get("vecalchemy", {}))
            except (ValueError, AttributeError, TypeError):
                config = {}
            config["language"] = self.language  # so that open() queries in this language
            self._write_comment(conn, config)
        else:
            built = re.search(r"'([a-z_]+)'::regconfig", str(found[0] or ""))
            if built is not None and built.group(1) != self.language:
                raise ConfigurationError(
                    f"collection {self.name!r} indexes its text in language "
                    f"{built.group(1)!r}, not {self.language!r}; open it with "
                    f"language={built.group(1)!r}"
                )
        index = fulltext_index_name(self.table, column)
        exists = conn.execute(sa.text("SELECT to_regclass(:i)"), {"i": index}).scalar()
        if exists is None:
            conn.exec_driver_sql(
                f'CREATE INDEX IF NOT EXISTS "{index}" ON "{self.name}" USING gin ({_TSV})'
            )

    def _check_embedder(self, conn: sa.Connection) -> None:
        other = conn.execute(
            select(self.table.c.embedder)
            .where(self.table.c.embedder != self.embedder.name)
            .limit(1)
        ).scalar()
        if other is not None:
            raise EmbedderError(
                f"collection {self.name!r} holds vectors from {other}, not from "
                f"{self.embedder.name}; vectors of two models cannot be compared. Use "
                f"embedder={other!r}, or re-embed into a new collection"
            )

    # -- writing -----------------------------------------------------------------------

    def _documents(
        self,
        texts: Sequence[str],
        metadata: Sequence[Mapping[str, Any] | None] | None,
        ids: Sequence[str] | None,
        *,
        ids_required: bool,
    ) -> list[tuple[str, str, dict[str, Any]]]:
        if isinstance(texts, str):
            raise InvalidArgument("texts must be a list of strings, not one string")
        texts = list(texts)
        if ids is None:
            if ids_required:
                raise InvalidArgument("upsert needs ids= to know which documents to replace")
            ids = [uuid.uuid4().hex for _ in texts]
        ids = [str(i) for i in ids]
        metas = list(metadata) if metadata is not None else [None] * len(texts)
        if not len(ids) == len(metas) == len(texts):
            raise InvalidRows(
                f"got {len(texts)} texts, {len(ids)} ids and {len(metas)} metadata objects; "
                "give one of each per document"
            )
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise InvalidRows(f"document id {dup!r} is given twice")
        docs = []
        for n, (doc_id, text, meta) in enumerate(zip(ids, texts, metas, strict=True)):
            if not isinstance(text, str) or not text.strip():
                raise InvalidRows(f"document {n} (id {doc_id!r}) has no text")
            if "\x00" in text:
                raise InvalidRows(f"document {n} (id {doc_id!r}) contains a NUL character")
            if meta is not None and not isinstance(meta, Mapping):
                raise InvalidRows(
                    f"metadata of document {n} must be a dict, got {type(meta).__name__}"
                )
            docs.append((doc_id, text, dict(meta or {})))
        return docs

    def _chunk(self, docs: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[int, Chunk]]:
        out: list[tuple[int, Chunk]] = []
        for n, (_, text, _) in enumerate(docs):
            out.extend((n, c) for c in self.splitter.split(text))
        return out

    def _embed(
        self, texts: list[str], batch_size: int, progress: Progress | None
    ) -> npt.NDArray[np.float32]:
        vectors = np.empty((len(texts), self.embedder.dim), dtype=np.float32)
        for i in range(0, len(texts), batch_size):
            batch = texts[i : i + batch_size]
            vectors[i : i + len(batch)] = self.embedder.embed_documents(batch)
            if progress is not None:
                progress("embedding", i + len(batch), len(texts))
        return vectors

    def _write(
        self,
        docs: list[tuple[str, str, dict[str, Any]]],
        *,
        replace: bool,
        batch_size: int,
        progress: Progress | None,
    ) -> AddResult:
        self.create()
        result = AddResult(ids=[d[0] for d in docs])
        table = self.table
        hashes = [_digest(text) for _, text, _ in docs]
        todo = list(range(len(docs)))
        retag: list[int] = []  # unchanged documents whose metadata changed
        with self.engine.connect() as conn:
            self._check_embedder(conn)
            if not replace:
                existing = conn.execute(
                    select(table.c.id).where(_id_in(table, [d[0] for d in docs])).limit(1)
                ).scalar()
                if existing is not None:
                    raise InvalidRows(
                        f"document id {existing!r} is already in collection {self.name!r}; "
                        "use upsert() to replace documents"
                    )
            elif docs:
                stored = {
                    row.id: (row.content_hash, row.metadata)
                    for row in conn.execute(
                        select(table.c.id, table.c.content_hash, table.c.metadata)
                        .where(_id_in(table, [d[0] for d in docs]))
                        .where(table.c.chunk == 0)
                        .where(table.c.embedder == self.embedder.name)
                    )
                }
                unchanged = {
                    n for n, d in enumerate(docs) if stored.get(d[0], ("",))[0] == hashes[n]
                }
                retag = [n for n in unchanged if stored[docs[n][0]][1] != docs[n][2]]
                todo = [n for n in todo if n not in unchanged]
                result.skipped = len(unchanged)
            conn.rollback()
        started = time.perf_counter()
        pieces = self._chunk([docs[n] for n in todo])
        result.seconds["chunk"] = time.perf_counter() - started
        started = time.perf_counter()
        vectors = self._embed([c.text for _, c in pieces], batch_size, progress)
        result.seconds["embed"] = time.perf_counter() - started
        started = time.perf_counter()
        with self.engine.begin() as conn:
            if replace:
                # Unchanged texts: write only the metadata that differs.
                for n in retag:
                    conn.execute(
                        sa.update(table).where(table.c.id == docs[n][0]).values(metadata=docs[n][2])
                    )
                changed = [docs[n][0] for n in todo]
                if changed:
                    conn.execute(delete(table).where(_id_in(table, changed)))
            which = [todo[i] for i, _ in pieces]
            load(
                conn,
                table,
                {
                    "id": [docs[n][0] for n in which],
                    "chunk": [c.index for _, c in pieces],
                    "text": [c.text for _, c in pieces],
                    "start": [c.start for _, c in pieces],
                    "end": [c.end for _, c in pieces],
                    "metadata": [docs[n][2] for n in which],
                    "content_hash": [hashes[n] for n in which],
                    "embedder": [self.embedder.name] * len(pieces),
                    "embedding": vectors,
                },
                indexes=self._index_mode(conn, len(pieces)),
            )
        result.seconds["load"] = time.perf_counter() - started
        if progress is not None:
            progress("loading", len(pieces), len(pieces))
        result.documents = len(todo)
        result.chunks = len(pieces)
        return result

    def _index_mode(self, conn: sa.Connection, new_rows: int) -> Any:
        """Rebuild the vector index after the load instead of maintaining it row by row
        when the new rows are many (HNSW inserts are slow) and at least as many as the
        table already holds (a rebuild costs the whole table)."""
        if self._index is None or new_rows < _DEFER_MIN_ROWS:
            return "keep"
        estimate = conn.execute(
            sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": self.name}
        ).scalar()
        return "defer" if new_rows >= max(0.0, float(estimate or 0)) else "keep"

    def add(
        self,
        texts: Sequence[str],
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str] | None = None,
        *,
        batch_size: int = 256,
        progress: Progress | bool | None = None,
    ) -> AddResult:
        """Split, embed and store new documents; return their ids and what was done.

        ``ids`` default to random hex ids. An id that is already stored is an error
        (use :meth:`upsert` to replace). ``progress=True`` shows a progress bar with
        rows/s on stderr; a callable is called as ``(stage, done, total)`` instead.

        Example::

            result = docs.add(["first text", "second text"], metadata=[{"n": 1}, {"n": 2}])
            result.ids, result.chunks
        """
        docs = self._documents(texts, metadata, ids, ids_required=False)
        with _progress(progress) as report:
            return self._write(docs, replace=False, batch_size=batch_size, progress=report)

    def upsert(
        self,
        texts: Sequence[str],
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str] | None = None,
        *,
        batch_size: int = 256,
        progress: Progress | bool | None = None,
    ) -> AddResult:
        """Insert or replace documents by id, re-embedding only those whose text changed.

        A document whose text (content hash) and embedder are unchanged keeps its
        vectors; only its metadata is updated.

        Example::

            docs.upsert(["new text"], ids=["doc-1"])
        """
        docs = self._documents(texts, metadata, ids, ids_required=True)
        with _progress(progress) as report:
            return self._write(docs, replace=True, batch_size=batch_size, progress=report)

    def delete(
        self, ids: Sequence[str] | None = None, *, where: Mapping[str, Any] | None = None
    ) -> int:
        """Delete documents by id and/or metadata filter; return the number of chunks deleted.

        Example::

            docs.delete(["doc-1"])
            docs.delete(where={"source": "old-wiki"})
        """
        if ids is None and where is None:
            raise InvalidArgument(
                "delete() needs ids= or where=; to empty the collection use drop()"
            )
        self.create()
        stmt = delete(self.table)
        if ids is not None:
            if isinstance(ids, str):
                raise InvalidArgument("ids must be a list of ids, not one string")
            stmt = stmt.where(_id_in(self.table, [str(i) for i in ids]))
        if where is not None:
            stmt = stmt.where(compile_filter(self.table.c.metadata, where))
        with self.engine.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def get(self, ids: Sequence[str]) -> list[Record]:
        """The stored chunks of the given documents, in id and chunk order.

        Example::

            [r.text for r in docs.get(["doc-1"])]
        """
        if isinstance(ids, str):
            raise InvalidArgument("ids must be a list of ids, not one string")
        self.create()
        t = self.table
        cols = [
            t.c.id,
            t.c.chunk,
            t.c.text,
            t.c.metadata,
            t.c.start,
            t.c.end,
            t.c.content_hash,
            t.c.embedder,
        ]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*cols).where(_id_in(t, [str(i) for i in ids])).order_by(t.c.id, t.c.chunk)
            ).all()
        return [Record(*row) for row in rows]

    def count(self, *, where: Mapping[str, Any] | None = None) -> int:
        """The number of documents (not chunks), optionally matching a metadata filter."""
        self.create()
        stmt = select(func.count(func.distinct(self.table.c.id)))
        if where is not None:
            stmt = stmt.where(compile_filter(self.table.c.metadata, where))
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def drop(self) -> None:
        """Drop the collection's table (and everything in it)."""
        with self.engine.begin() as conn:
            self.table.drop(conn, checkfirst=True)
        self._ready = False

    # -- reading -----------------------------------------------------------------------

    def search(
        self,
        query: str | Sequence[float] | npt.NDArray[Any],
        k: int = 10,
        *,
        where: Mapping[str, Any] | None = None,
        mode: str = "vector",
        fusion: Fusion | None = None,
        candidates: int | None = None,
        min_similarity: float | None = None,
        max_distance: float | None = None,
        ef_search: int | None = None,
        probes: int | None = None,
    ) -> list[CollectionHit]:
        """The ``k`` chunks best matching ``query``, best first.

        ``mode="vector"`` (default): the chunks nearest to ``query`` (a text, embedded
        here, or a vector), through :func:`vecalchemy.search`, so the index is used and
        the settings are per query.

        ``mode="hybrid"``: ``query`` must be a text; it is embedded once and searched both
        by vector and by its words (``websearch_to_tsquery`` in the collection's
        language), and the two rankings are fused with ``fusion`` (default
        :class:`~vecalchemy.fusion.RRF`; or :class:`~vecalchemy.fusion.Weighted`) by
        :func:`vecalchemy.hybrid.hybrid_search`. A chunk holding a rare word the
        embedding misses (a product code, an error number) is found this way. Each hit's
        ``similarity`` is then the fused score, and ``distance`` still the vector distance
        (see :class:`CollectionHit`). ``candidates`` is how many chunks each leg fetches.
        ``min_similarity``, ``max_distance``, ``ef_search`` and ``probes`` apply to
        ``mode="vector"`` only.

        ``where`` is a metadata filter (see :mod:`vecalchemy.filters`), applied in both
        modes (in both legs of a hybrid search).

        Example::

            for hit in docs.search("reset a password", k=3, where={"lang": "en"}):
                print(hit.id, hit.chunk, round(hit.similarity, 3), hit.text[:60])
            docs.search("error E1234 on login", k=5, mode="hybrid")
        """
        if mode not in SEARCH_MODES:
            raise InvalidSearch(
                f"unknown search mode {mode!r}; use one of: {', '.join(SEARCH_MODES)}"
            )
        if mode == "hybrid":
            vector_only = {
                "min_similarity": min_similarity,
                "max_distance": max_distance,
                "ef_search": ef_search,
                "probes": probes,
            }
            given = [name for name, value in vector_only.items() if value is not None]
            if given:
                raise InvalidSearch(
                    f"{', '.join(given)} apply to mode='vector' only; drop them for a hybrid search"
                )
            if not isinstance(query, str):
                raise InvalidSearch(
                    "mode='hybrid' searches the query's words too, so it needs the query "
                    "text; pass a string, or use mode='vector' to search by a vector"
                )
            return self._hybrid(query, k, where, fusion or RRF(), candidates)
        if fusion is not None or candidates is not None:
            raise InvalidSearch("fusion= and candidates= apply to mode='hybrid' only")
        vector = self.embedder.embed_query(query) if isinstance(query, str) else query
        self.create()
        clause = compile_filter(self.table.c.metadata, where) if where else None
        with self.engine.connect() as conn:
            hits = run_search(
                conn,
                self.table.c.embedding,
                vector,
                k,
                where=clause,
                min_similarity=min_similarity,
                max_distance=max_distance,
                ef_search=ef_search,
                probes=probes,
            )
            conn.rollback()
        return [_collection_hit(h.row, h.distance, h.similarity) for h in hits]

    def _hybrid(
        self,
        query: str,
        k: int,
        where: Mapping[str, Any] | None,
        fusion: Fusion,
        candidates: int | None,
    ) -> list[CollectionHit]:
        query = check_query_text(query)
        table = self.table
        clause = compile_filter(table.c.metadata, where) if where else None
        vector = self.embedder.embed_query(query)
        # Built (and so checked) before the table is touched, then run as it is.
        fused = plan_hybrid(
            table.c.embedding,
            table.c[_TSV],
            query,
            vector,
            k,
            where=clause,
            fusion=fusion,
            candidates=candidates,
        )
        self.create()
        with self.engine.connect() as conn:
            hits = run_fused(conn, fused)
            conn.rollback()
        return [
            _collection_hit(
                h.row, h.distances[0] if h.distances[0] is not None else math.nan, h.score
            )
            for h in hits
        ]
