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
    terms         jsonb    (``text_ranking="bm25"`` only) the chunk's BM25 terms, with
                           the postings and corpus tables of :mod:`vecalchemy.bm25`

Documents are split (:mod:`vecalchemy.chunking`), embedded in batches, and written with
binary COPY (:func:`vecalchemy.load.load`). ``search`` runs through
:func:`vecalchemy.search`, so the vector index is always used; ``mode="hybrid"`` fuses
it with full-text search through :func:`vecalchemy.hybrid_search`.

What a collection refuses, before touching anything:

* a table of that name that vecalchemy did not create (its comment says so);
* vectors from a second embedder, in writes and in searches: vectors of two models in one
  column are meaningless together; the same for a metric or a language other than the
  table's;
* DDL on a read path: ``search``, ``get`` and ``count`` only read. Writes create a missing
  table; a table made by an older vecalchemy is brought up to date by :meth:`upgrade`.

Concurrent writers of the same documents are serialised per document (see
:mod:`vecalchemy.collection._writes`): the last writer wins, and searches never wait.

Example::

    from vecalchemy import Collection

    docs = Collection("notes", embedder="hashing")
    docs.add(["PostgreSQL has extensions.", "pgvector adds vector search."],
             metadata=[{"lang": "en"}, {"lang": "en"}])
    for hit in docs.search("vector search in postgres", k=1, where={"lang": "en"}):
        print(hit.id, round(hit.similarity, 3), hit.text)
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy import Engine, delete, func, select

from vecalchemy._bm25 import Analyzer, bm25_query, compact_bm25
from vecalchemy._engine_state import RECHECK_SECONDS
from vecalchemy._fulltext import (
    DEFAULT_LANGUAGE,
    FULLTEXT_INFO_KEY,
    check_language,
    check_query_text,
    ts_rank_cd,
)
from vecalchemy._progress import Progress, progress_reporter
from vecalchemy._records import slot_constructor
from vecalchemy._typing import SearchMode
from vecalchemy.chunking import (
    Splitter,
    TokenLimitSplitter,
    WholeTextSplitter,
    get_splitter,
)
from vecalchemy.collection._table import (
    RANKINGS,
    TERMS,
    TSV,
    TableState,
    add_bm25,
    add_fulltext,
    collection_table,
    fusion_config,
    keep_vectors_inline,
    read_state,
    stored_fusion,
    write_comment,
)
from vecalchemy.collection._writes import id_in, lock_documents, stored_documents
from vecalchemy.embedders import Embedder, get_embedder
from vecalchemy.engine import create_engine
from vecalchemy.errors import (
    ConfigurationError,
    EmbedderError,
    InvalidArgument,
    InvalidRows,
    InvalidSearch,
    MetricMismatch,
)
from vecalchemy.filters import compile_filter
from vecalchemy.load import load
from vecalchemy.metrics import Metric
from vecalchemy.query.fusion import (
    RRF,
    FusedQuery,
    Fusion,
    Weighted,
    default_fusion,
    plan_hybrid,
)
from vecalchemy.schema import HNSW, IVFFlat
from vecalchemy.search.run import run as run_plan
from vecalchemy.search.vector import search as run_search

__all__ = ["AddResult", "Collection", "CollectionHit", "Record"]

#: Loads of at least this many chunks into a new or empty table build the vector index
#: afterwards rather than maintain it row by row.
_DEFER_MIN_ROWS = 10_000

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

#: The ways :meth:`Collection.search` can search.
SEARCH_MODES: tuple[SearchMode, ...] = ("vector", "hybrid", "text")


@dataclass(frozen=True, slots=True)
class CollectionHit:
    """One search result: the chunk, where it lies in its document, and how close it is.

    ``distance`` is the vector distance between the chunk and the query's embedding.
    ``similarity`` is what hits are ordered by, higher first: in ``mode="vector"`` the
    metric's similarity (``1 - distance`` for cosine); in ``mode="hybrid"`` the fused
    score (RRF or Weighted, see :mod:`vecalchemy.query.fusion`), which is not a function
    of ``distance``: a chunk found by its words alone can be far from the query vector.

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
    """What :meth:`Collection.add` or :meth:`Collection.upsert` did.

    ``documents`` were embedded as ``chunks``; ``skipped`` (upsert) kept their vectors,
    their text and embedder being unchanged. ``truncated_chunks`` chunks are longer than
    the embedder's window (``max_tokens``), so the model ignored their last
    ``truncated_tokens`` tokens in all: only a splitter that does not size chunks by
    the embedder's tokens (``"none"``, or a :class:`~vecalchemy.chunking.Splitter`
    object) can make them, and a warning says so.

    Example::

        result = docs.upsert(texts, ids=ids)
        result.documents, result.chunks, result.skipped, result.truncated_chunks
    """

    ids: list[str]
    documents: int = 0
    chunks: int = 0
    skipped: int = 0  # upsert: documents whose text and embedder were unchanged
    seconds: dict[str, float] = field(default_factory=dict)
    truncated_chunks: int = 0
    truncated_tokens: int = 0


#: ``CollectionHit(id, chunk, text, metadata, start, end, distance, similarity)``, without
#: the frozen ``__init__`` (see vecalchemy._records).
_make_hit = slot_constructor(CollectionHit)


def _collection_hit(row: Any, distance: float, similarity: float) -> CollectionHit:
    return _make_hit(
        row.id, row.chunk, row.text, row.metadata, row.start, row.end, distance, similarity
    )


def _digests(texts: list[str]) -> list[str]:
    """The SHA-256 (hex) of each document's text, its ``content_hash``."""
    sha256 = hashlib.sha256
    return [sha256(text.encode("utf-8")).hexdigest() for text in texts]


@dataclass(slots=True)
class _Pieces:
    """A write's chunks, column by column: their document (a position in the list being
    written), their index in it, their text and offsets."""

    doc: list[int] = field(default_factory=list)
    chunk: list[int] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    start: list[int] = field(default_factory=list)
    end: list[int] = field(default_factory=list)

    def append(self, doc: int, chunk: int, text: str, start: int, end: int) -> None:
        self.doc.append(doc)
        self.chunk.append(chunk)
        self.text.append(text)
        self.start.append(start)
        self.end.append(end)

    def extend(self, other: _Pieces, offset: int) -> None:
        """Add ``other``'s chunks, their document positions shifted by ``offset``."""
        self.doc.extend(n + offset for n in other.doc)
        self.chunk.extend(other.chunk)
        self.text.extend(other.text)
        self.start.extend(other.start)
        self.end.extend(other.end)


class Collection:
    """A table of embedded, chunked documents with add / upsert / delete / get / search.

    ``name`` is the table's name (lower-case letters, digits, underscores). ``embedder``
    is a spec (``"minilm"``, ``"hashing"``, ``"st:<model>"``, ``"openai:<model>@<url>"``;
    see :func:`vecalchemy.embedders.get_embedder`) or an embedder object. ``metric`` and
    ``index`` declare the embedding column as :func:`vecalchemy.Embedding` does.
    ``splitter`` chooses the chunking (:func:`vecalchemy.chunking.get_splitter`; default
    ``"markdown"``). With a spec that sizes chunks (``"markdown..."``, ``"chars..."``,
    ``"tokens..."``) and an embedder that has a token window and a tokenizer
    (``max_tokens``, ``token_spans``, ``count_tokens``: MiniLM and other
    sentence-transformers models), every chunk longer than the window is split again
    with the embedder's tokenizer (:class:`~vecalchemy.chunking.TokenLimitSplitter`), so
    the model sees all of the text; ``"none"`` and splitter objects are used as they
    are, and chunks past the window are counted in :class:`AddResult` with a warning.
    ``engine`` defaults to :func:`vecalchemy.create_engine` (the
    embedded server unless configured). ``language`` is the text search configuration
    of the full-text column (``"english"``, ``"simple"``, ...; see ``mode="hybrid"``).
    ``text_ranking`` ranks the text leg (``mode="text"`` and ``mode="hybrid"``):
    ``"tsvector"`` (default: PostgreSQL's ``ts_rank_cd``, what collections always did)
    or ``"bm25"`` (real BM25, :mod:`vecalchemy.bm25`: the analyser stems with the Snowball
    stemmer of ``language``, none for ``"simple"``). It is fixed when the table is made.

    The table is created by the first write (or :meth:`create`). An existing table must
    have been made by vecalchemy, with this embedder's dimension, metric and language;
    rows embedded by another embedder are refused, in writes and in searches.

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
        text_ranking: str = "tsvector",
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
        # Specs that size chunks are vecalchemy's choice, and fit the embedder's window;
        # "none" and splitter objects are the caller's, used as they are.
        self._fit_window = (splitter is None or isinstance(splitter, str)) and not isinstance(
            self.splitter, WholeTextSplitter
        )
        self._chunker: tuple[Splitter, int | None, Callable[[str], int] | None] | None = None
        self.language = check_language(language)
        if text_ranking not in RANKINGS:
            raise InvalidArgument(
                f"text_ranking {text_ranking!r} is not one of {', '.join(RANKINGS)}; use "
                "'bm25' for BM25 ranking or 'tsvector' for ts_rank_cd"
            )
        self.text_ranking = text_ranking
        self._analyzer: Analyzer | None = None
        if text_ranking == "bm25":
            self._analyzer = Analyzer(language=None if language == "simple" else language)
        # Recorded in the table's comment so that open() can rebuild the collection.
        self._config = {
            "embedder": embedder if isinstance(embedder, str) else None,
            "metric": self.metric.value,
            "splitter": splitter if isinstance(splitter, str) or splitter is None else None,
            "language": self.language,
            "text_ranking": self.text_ranking,
        }
        self._engine = engine
        self._index = index
        self._table: sa.Table | None = None
        self._state: TableState | None = None  # the table as last checked (reads reuse it)
        self._state_at = 0.0  # when a read path last checked it (time.monotonic())

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
            self._table = collection_table(
                self.name,
                self.embedder.dim,
                self.metric,
                self._index,
                self.language,
                self._analyzer,
            )
        return self._table

    @classmethod
    def open(cls, name: str, *, engine: Engine | None = None, **overrides: Any) -> Collection:
        """The existing collection ``name``, with the embedder, metric and splitter it was
        created with (read from its table's comment); ``overrides`` replace any of them
        (an embedder, metric or language other than the table's is refused on first use).

        Example::

            docs = Collection.open("kb")          # no need to repeat embedder="minilm"
        """
        eng = engine or create_engine()
        with eng.connect() as conn:
            state = read_state(conn, name)
        if not state.exists:
            raise ConfigurationError(
                f"there is no collection {name!r} in this database; create it with "
                "Collection(name, embedder=...) or `vecalchemy ingest`"
            )
        if state.config is None:
            raise ConfigurationError(_not_ours(name))
        config = state.config
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
            "text_ranking": config.get("text_ranking", "tsvector"),
        }
        kwargs.update(overrides)
        return cls(name, engine=eng, **kwargs)

    def _check_state(self, state: TableState, *, upgrading: bool = False) -> None:
        """Refuse a table vecalchemy did not make, or one this collection cannot use."""
        if not state.ours:
            raise ConfigurationError(_not_ours(self.name))
        config = state.config or {}
        if state.dim is not None and state.dim != self.embedder.dim:
            built_with = config.get("embedder")
            which = f" ({built_with})" if built_with else ""
            raise ConfigurationError(
                f"collection {self.name!r} stores {state.dim}-dimension vectors but embedder "
                f"{self.embedder.name} makes {self.embedder.dim}; use the embedder it "
                f"was built with{which}, or another collection name"
            )
        stored_metric = config.get("metric")
        if stored_metric is not None and stored_metric != self.metric.value:
            raise MetricMismatch(
                f"collection {self.name!r} was created with metric {stored_metric!r}, not "
                f"{self.metric.value!r}: its index serves {stored_metric!r} queries only; "
                f"open it with Collection.open({self.name!r}) or metric={stored_metric!r}"
            )
        ranking = config.get("text_ranking", "tsvector")
        if ranking != self.text_ranking and not (upgrading and self.text_ranking == "bm25"):
            switch = (
                f", or switch it to BM25 once with Collection.open({self.name!r}, "
                "text_ranking='bm25').upgrade()"
                if self.text_ranking == "bm25"
                else ""
            )
            raise ConfigurationError(
                f"collection {self.name!r} ranks its text with {ranking!r}, not "
                f"{self.text_ranking!r}; open it with Collection.open({self.name!r}) or "
                f"text_ranking={ranking!r}{switch}"
            )
        built = state.language
        if built is not None and built != self.language:
            raise ConfigurationError(
                f"collection {self.name!r} indexes its text in language {built!r}, not "
                f"{self.language!r}; open it with language={built!r}"
            )

    def _check_embedder(self, conn: sa.Connection) -> None:
        # One row tells: writes never mix embedders, so every row has the same one.
        other = conn.execute(select(self.table.c.embedder).limit(1)).scalar()
        if other is not None and other != self.embedder.name:
            raise EmbedderError(
                f"collection {self.name!r} holds vectors from {other}, not from "
                f"{self.embedder.name}; vectors of two models cannot be compared. Use "
                f"embedder={other!r}, or re-embed into a new collection"
            )

    def _for_reading(self) -> TableState:
        """Check the table for a read path (no DDL, ever); again after
        :data:`RECHECK_SECONDS`, so a fusion stored by another process is picked up."""
        fresh = self._fresh_state()
        if fresh is not None:
            return fresh
        with self.engine.connect() as conn:
            state = read_state(conn, self.name)
            if not state.exists:
                raise ConfigurationError(
                    f"there is no collection {self.name!r} in this database yet; add "
                    "documents (or call create()) first"
                )
            self._check_state(state)
            self._check_embedder(conn)
            conn.rollback()
        self._state, self._state_at = state, time.monotonic()
        return state

    def _fresh_state(self) -> TableState | None:
        """The table as last checked, if that was less than :data:`RECHECK_SECONDS` ago."""
        if self._state is not None and time.monotonic() - self._state_at < RECHECK_SECONDS:
            return self._state
        return None

    def create(self) -> None:
        """Create the table and its indexes if they do not exist, and check an existing one.

        Raises :class:`~vecalchemy.ConfigurationError` (and changes nothing) when a table
        of that name exists that vecalchemy did not create, or that this collection
        cannot use. A table made by an older vecalchemy is not changed: see
        :meth:`upgrade`.
        """
        self._ensure()

    def _ensure(self) -> bool:
        """Create the table if it is missing (True), else check it (False)."""
        table = self.table
        with self.engine.begin() as conn:
            state = read_state(conn, self.name)
            if state.exists:
                self._check_state(state)
                self._check_embedder(conn)
                self._state, self._state_at = state, time.monotonic()
                return False
            table.metadata.create_all(conn)
            write_comment(conn, self.name, self._config)
            self._state, self._state_at = read_state(conn, self.name), time.monotonic()
        return True

    def upgrade(self) -> bool:
        """Bring a table made by an older vecalchemy up to date; return whether it changed.

        That is the ``tsv`` full-text column (and its GIN index) that collections made
        before hybrid search lack; and, for a collection opened with
        ``text_ranking="bm25"`` whose table ranks with ``"tsvector"``, the switch to
        BM25: the ``terms`` column is added and filled for every stored chunk (the
        analyser runs here, in batches), the postings and corpus tables and their
        triggers are installed (:mod:`vecalchemy.bm25`), and the table's comment records
        the new ranking, so :meth:`open` and ``search(mode="text"/"hybrid")`` use BM25
        from then on. It all happens in one transaction: a failure leaves the collection
        as it was. Adding a column takes an exclusive lock until the upgrade commits
        (and adding ``tsv`` rewrites the table): run it when nothing else uses the table.
        There is no way back to ``"tsvector"``. Vectors of tables made before they were
        kept in the row (``STORAGE MAIN``, see doctor's VA203) are kept there from then
        on; ``VACUUM FULL <table>`` moves the vectors already written back into rows.

        Example::

            docs = Collection.open("kb")
            docs.upgrade()          # True the first time, False afterwards

            Collection.open("kb", text_ranking="bm25").upgrade()   # tsvector -> BM25
        """
        with self.engine.begin() as conn:
            state = read_state(conn, self.name)
            if not state.exists:
                raise ConfigurationError(f"there is no collection {self.name!r} to upgrade")
            self._check_state(state, upgrading=True)
            config = dict(state.config or {})
            changed = add_fulltext(conn, self.table, state)
            if changed:
                config["language"] = self.language  # so that open() queries in this language
            if self._analyzer is not None and config.get("text_ranking", "tsvector") != "bm25":
                add_bm25(conn, self.table, self._analyzer)
                config["text_ranking"] = "bm25"
                changed = True
            changed = keep_vectors_inline(conn, self.name) or changed
            if changed:
                write_comment(conn, self.name, config)
        self._state = None
        return changed

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
        if isinstance(ids, str):
            raise InvalidArgument("ids must be a list of ids, not one string")
        ids = list(map(str, ids))
        metas = list(metadata) if metadata is not None else [None] * len(texts)
        if not len(ids) == len(metas) == len(texts):
            raise InvalidRows(
                f"got {len(texts)} texts, {len(ids)} ids and {len(metas)} metadata objects; "
                "give one of each per document"
            )
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise InvalidRows(f"document id {dup!r} is given twice")
        try:
            blank = not all(map(str.strip, texts))
        except TypeError:  # not all strings
            blank = True
        if blank:
            for n, text in enumerate(texts):
                if not isinstance(text, str) or not text.strip():
                    raise InvalidRows(f"document {n} (id {ids[n]!r}) has no text")
        if not _storable(ids) or not _storable(texts):
            # Rare: find the first culprit, for its message.
            for n, (doc_id, text) in enumerate(zip(ids, texts, strict=True)):
                _check_text(f"id of document {n}", doc_id)
                _check_text(f"document {n} (id {doc_id!r})", text)
        if metadata is None:
            none: dict[str, Any] = {}  # one object for all: nothing writes to it
            return [(doc_id, text, none) for doc_id, text in zip(ids, texts, strict=True)]
        for n, meta in enumerate(metas):
            if meta is not None and not isinstance(meta, Mapping):
                raise InvalidRows(
                    f"metadata of document {n} must be a dict, got {type(meta).__name__}"
                )
        docs = [
            (doc_id, text, {} if meta is None else dict(meta))
            for doc_id, text, meta in zip(ids, texts, metas, strict=True)
        ]
        _check_metadata([d[2] for d in docs])
        return docs

    def _chunking(self) -> tuple[Splitter, int | None, Callable[[str], int] | None]:
        """The splitter to use, and the window and token counter to check chunks against
        (``None`` when the splitter already fits chunks to the window, or there is none)."""
        if self._chunker is None:
            embedder = self.embedder
            window = getattr(embedder, "max_tokens", None)
            spans = getattr(embedder, "token_spans", None)
            count = getattr(embedder, "count_tokens", None)
            if not isinstance(window, int) or window < 1 or not callable(count):
                self._chunker = (self.splitter, None, None)
            elif self._fit_window and callable(spans):
                budget = max(window - int(count("")), 1)  # less [CLS] and [SEP], or others
                fitted = TokenLimitSplitter(self.splitter, budget, tokenizer=spans)
                self._chunker = (fitted, None, None)
            else:
                self._chunker = (self.splitter, window, count)
        return self._chunker

    def _chunk(self, docs: list[tuple[str, str, dict[str, Any]]], result: AddResult) -> _Pieces:
        splitter, window, count = self._chunking()
        texts = [text for _, text, _ in docs]
        if type(splitter) is WholeTextSplitter and all(t.strip() == t for t in texts):
            # Nothing to split or trim: each text is its only chunk, as the splitter says.
            n = len(texts)
            out = _Pieces(list(range(n)), [0] * n, texts, [0] * n, list(map(len, texts)))
        else:
            out = _Pieces()
            for n, text in enumerate(texts):
                for c in splitter.split(text):
                    out.append(n, c.index, c.text, c.start, c.end)
        if window is not None and count is not None:
            for text in out.text:
                over = int(count(text)) - window
                if over > 0:
                    result.truncated_chunks += 1
                    result.truncated_tokens += over
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

    def _unchanged(
        self,
        docs: list[tuple[str, str, dict[str, Any]]],
        hashes: list[str],
        stored: Mapping[str, tuple[str, dict[str, Any], str]],
    ) -> set[int]:
        name = self.embedder.name
        return {
            n
            for n, (doc_id, _, _) in enumerate(docs)
            if doc_id in stored and stored[doc_id][0] == hashes[n] and stored[doc_id][2] == name
        }

    def _write(
        self,
        docs: list[tuple[str, str, dict[str, Any]]],
        *,
        replace: bool,
        batch_size: int,
        progress: Progress | None,
        defer_index: bool | None,
    ) -> AddResult:
        created = self._ensure()
        result = AddResult(ids=[d[0] for d in docs])
        table = self.table
        ids = [d[0] for d in docs]
        hashes = _digests([text for _, text, _ in docs])
        # A first look without locks, to fail fast and to embed only what changed.
        with self.engine.connect() as conn:
            stored = stored_documents(conn, table, ids)
            conn.rollback()
        if not replace and stored:
            raise _exists(next(iter(stored)), self.name)
        unchanged = self._unchanged(docs, hashes, stored) if replace else set()
        todo = [n for n in range(len(docs)) if n not in unchanged]
        started = time.perf_counter()
        pieces = self._chunk([docs[n] for n in todo], result)
        result.seconds["chunk"] = time.perf_counter() - started
        started = time.perf_counter()
        vectors = self._embed(pieces.text, batch_size, progress)
        result.seconds["embed"] = time.perf_counter() - started
        started = time.perf_counter()
        with self.engine.begin() as conn:
            lock_documents(conn, self.name, ids)
            # Under the locks: what another writer committed meanwhile is visible now.
            stored = stored_documents(conn, table, ids)
            if not replace:
                if stored:
                    raise _exists(next(iter(stored)), self.name)
            else:
                self._check_embedder(conn)
                still = self._unchanged(docs, hashes, stored)
                late = sorted(unchanged - still)  # changed by another writer since the look
                if late:
                    # Rare: embed them now, holding their locks, so that this write wins.
                    extra = self._chunk([docs[n] for n in late], result)
                    pieces.extend(extra, len(todo))
                    vectors = np.vstack([vectors, self._embed(extra.text, batch_size, None)])
                    todo += late
                unchanged = still
                # Unchanged texts: write only the metadata that differs.
                for n in sorted(unchanged):
                    if stored[docs[n][0]][1] != docs[n][2]:
                        conn.execute(
                            sa.update(table)
                            .where(table.c.id == docs[n][0])
                            .values(metadata=docs[n][2])
                        )
                changed = [docs[n][0] for n in todo]
                if changed:
                    conn.execute(delete(table).where(id_in(table, changed)))
            result.skipped = len(unchanged)
            which = [todo[i] for i in pieces.doc]
            load(
                conn,
                table,
                {
                    "id": [ids[n] for n in which],
                    "chunk": pieces.chunk,
                    "text": pieces.text,
                    "start": pieces.start,
                    "end": pieces.end,
                    # The chunks of a document share its metadata object: encoded once.
                    "metadata": [docs[n][2] for n in which],
                    "content_hash": [hashes[n] for n in which],
                    "embedder": [self.embedder.name] * len(which),
                    "embedding": vectors,
                    **(
                        {TERMS: [self._analyzer.document(t) for t in pieces.text]}
                        if self._analyzer is not None
                        else {}
                    ),
                },
                indexes=self._index_mode(conn, len(which), created, defer_index),
            )
        self._compact()
        result.seconds["load"] = time.perf_counter() - started
        if progress is not None:
            progress("loading", len(pieces.doc), len(pieces.doc))
        result.documents = len(todo)
        result.chunks = len(pieces.doc)
        if result.truncated_chunks:
            _, window, _ = self._chunking()
            warnings.warn(
                f"{result.truncated_chunks} of {len(pieces.doc)} chunks are longer than the "
                f"{window}-token window of {self.embedder.name}: the model ignored their "
                f"last {result.truncated_tokens} tokens in all, so that text cannot be "
                "found; use a splitter spec that sizes chunks (e.g. splitter='markdown', "
                "which fits them to the window) or shorter chunks",
                UserWarning,
                stacklevel=3,
            )
        return result

    def _index_mode(
        self, conn: sa.Connection, new_rows: int, created: bool, defer_index: bool | None
    ) -> Any:
        """Rebuild the vector index after the load, instead of maintaining it row by row,
        only where no one can be reading: a table this write created, or one with no
        rows; or when asked (``defer_index=True``, which locks out readers until the
        write commits). Dropping an index takes an ACCESS EXCLUSIVE lock."""
        if self._index is None or defer_index is False:
            return "keep"
        if defer_index:
            return "defer"
        if new_rows < _DEFER_MIN_ROWS:
            return "keep"
        if created:
            return "defer"
        empty = conn.execute(select(sa.literal(1)).select_from(self.table).limit(1)).first()
        return "defer" if empty is None else "keep"

    def add(
        self,
        texts: Sequence[str],
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str] | None = None,
        *,
        batch_size: int = 256,
        progress: Progress | bool | None = None,
        defer_index: bool | None = None,
    ) -> AddResult:
        """Split, embed and store new documents; return their ids and what was done.

        ``ids`` default to random hex ids. An id that is already stored is an error
        (use :meth:`upsert` to replace), also when another writer stores it meanwhile.
        ``progress=True`` shows a progress bar with rows/s on stderr; a callable is called
        as ``(stage, done, total)`` instead.

        ``defer_index``: ``None`` (default) builds the vector index after the load
        instead of row by row only for a large load into a new or empty table, where no
        search can be waiting; ``True`` does it into any table (faster for a bulk load,
        but searches wait until the write commits); ``False`` never.

        Example::

            result = docs.add(["first text", "second text"], metadata=[{"n": 1}, {"n": 2}])
            result.ids, result.chunks
        """
        docs = self._documents(texts, metadata, ids, ids_required=False)
        with progress_reporter(progress) as report:
            return self._write(
                docs, replace=False, batch_size=batch_size, progress=report,
                defer_index=defer_index,
            )  # fmt: skip

    def upsert(
        self,
        texts: Sequence[str],
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str] | None = None,
        *,
        batch_size: int = 256,
        progress: Progress | bool | None = None,
        defer_index: bool | None = None,
    ) -> AddResult:
        """Insert or replace documents by id, re-embedding only those whose text changed.

        A document whose text (content hash) and embedder are unchanged keeps its
        vectors; only its metadata is updated. Concurrent upserts of the same document
        all succeed, one after the other: the last one wins. ``defer_index`` as for
        :meth:`add`.

        Example::

            docs.upsert(["new text"], ids=["doc-1"])
        """
        docs = self._documents(texts, metadata, ids, ids_required=True)
        with progress_reporter(progress) as report:
            return self._write(
                docs, replace=True, batch_size=batch_size, progress=report,
                defer_index=defer_index,
            )  # fmt: skip

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
        stmt = delete(self.table)
        clean: list[str] = []
        if ids is not None:
            if isinstance(ids, str):
                raise InvalidArgument("ids must be a list of ids, not one string")
            clean = [str(i) for i in ids]
            stmt = stmt.where(id_in(self.table, clean))
        if where is not None:
            stmt = stmt.where(compile_filter(self.table.c.metadata, where))
        self._for_reading()
        with self.engine.begin() as conn:
            if clean:
                lock_documents(conn, self.name, clean)
            deleted = int(conn.execute(stmt).rowcount)
        self._compact()
        return deleted

    def _compact(self) -> None:
        """Fold the corpus delta of a BM25 collection's write, in a short transaction of
        its own (concurrent writers never wait for each other; skipped while another
        fold runs)."""
        if self._analyzer is not None:
            with self.engine.begin() as conn:
                compact_bm25(conn, self.table.c[TERMS], wait=False)

    def get(self, ids: Sequence[str]) -> list[Record]:
        """The stored chunks of the given documents, in id and chunk order.

        Example::

            [r.text for r in docs.get(["doc-1"])]
        """
        if isinstance(ids, str):
            raise InvalidArgument("ids must be a list of ids, not one string")
        self._for_reading()
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
                select(*cols).where(id_in(t, [str(i) for i in ids])).order_by(t.c.id, t.c.chunk)
            ).all()
        return [Record(*row) for row in rows]

    def count(self, *, where: Mapping[str, Any] | None = None) -> int:
        """The number of documents (not chunks), optionally matching a metadata filter."""
        stmt = select(func.count(func.distinct(self.table.c.id)))
        if where is not None:
            stmt = stmt.where(compile_filter(self.table.c.metadata, where))
        self._for_reading()
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def drop(self) -> None:
        """Drop the collection's table (and everything in it); a table vecalchemy did not
        create is refused, not dropped."""
        with self.engine.begin() as conn:
            state = read_state(conn, self.name)
            if state.exists and not state.ours:
                raise ConfigurationError(_not_ours(self.name))
            if state.exists:
                self.table.drop(conn)  # and, for BM25, its postings (a before_drop hook)
        self._state = None

    # -- reading -----------------------------------------------------------------------

    def search(
        self,
        query: str | Sequence[float] | npt.NDArray[Any],
        k: int = 10,
        *,
        where: Mapping[str, Any] | None = None,
        mode: SearchMode = "vector",
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
        language, or BM25 with ``text_ranking="bm25"``), and the two rankings are fused
        with ``fusion`` (:class:`~vecalchemy.RRF` or :class:`~vecalchemy.Weighted`; by
        default :meth:`hybrid_fusion`: the one :meth:`set_fusion` or
        :func:`vecalchemy.tune_fusion` recorded, else ``Weighted((0.75, 0.25))`` for BM25
        and ``RRF()`` for ``ts_rank_cd``) by :func:`vecalchemy.hybrid_search`. A chunk
        holding a rare word the embedding misses (a product code, an error number) is
        found this way. Each hit's ``similarity`` is then the fused score, and
        ``distance`` still the vector distance (see :class:`CollectionHit`).
        ``candidates`` is how deep each leg's ranking is fused (default 100; the first
        hits are the same for every ``k``).
        ``min_similarity``, ``max_distance``, ``ef_search`` and ``probes`` apply to
        ``mode="vector"`` only.

        ``where`` is a metadata filter (see :mod:`vecalchemy.filters`), applied in both
        modes (in both legs of a hybrid search).

        Searches only read: the table must exist (and have been made by vecalchemy), its
        rows must come from this collection's embedder, and its metric and language must
        be this collection's. A collection made before hybrid search needs
        :meth:`upgrade` for ``mode="hybrid"``.

        Example::

            for hit in docs.search("reset a password", k=3, where={"lang": "en"}):
                print(hit.id, hit.chunk, round(hit.similarity, 3), hit.text[:60])
            docs.search("error E1234 on login", k=5, mode="hybrid")
        """
        if mode not in SEARCH_MODES:
            raise InvalidSearch(
                f"unknown search mode {mode!r}; use one of: {', '.join(SEARCH_MODES)}"
            )
        clause = compile_filter(self.table.c.metadata, where) if where is not None else None
        if mode in ("hybrid", "text"):
            vector_only = {
                "min_similarity": min_similarity,
                "max_distance": max_distance,
                "ef_search": ef_search,
                "probes": probes,
            }
            given = [name for name, value in vector_only.items() if value is not None]
            if given:
                raise InvalidSearch(
                    f"{', '.join(given)} apply to mode='vector' only; drop them for a {mode} search"
                )
            if not isinstance(query, str):
                raise InvalidSearch(
                    f"mode={mode!r} searches the query's words, so it needs the query "
                    "text; pass a string, or use mode='vector' to search by a vector"
                )
            if mode == "text":
                if fusion is not None or candidates is not None:
                    raise InvalidSearch("fusion= and candidates= apply to mode='hybrid' only")
                return self._text(query, k, clause)
            return self._hybrid(query, k, clause, fusion, candidates)
        if fusion is not None or candidates is not None:
            raise InvalidSearch("fusion= and candidates= apply to mode='hybrid' only")
        vector = self.embedder.embed_query(query) if isinstance(query, str) else query
        self._for_reading()
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
            # It only read, so commit and rollback end it alike; psycopg's rollback also
            # forgets the statements it prepared on the server, its commit keeps them.
            conn.commit()
        return [_collection_hit(h.row, h.distance, h.similarity) for h in hits]

    def _hybrid(
        self,
        query: str,
        k: int,
        clause: sa.ColumnElement[bool] | None,
        fusion: Fusion | None,
        candidates: int | None,
    ) -> list[CollectionHit]:
        query = check_query_text(query)
        table = self.table
        text_column = table.c[TERMS] if self._analyzer is not None else table.c[TSV]
        vector = self.embedder.embed_query(query)

        def plan(chosen: Fusion | None) -> FusedQuery:
            return plan_hybrid(
                table.c.embedding,
                text_column,
                query,
                vector,
                k,
                where=clause,
                fusion=chosen,
                candidates=candidates,
                cached=True,
            )

        # Built (and so checked) before the table is touched, then run as it is: with the
        # fusion the table recorded when it was checked lately, so it is built once.
        known = self._fresh_state()
        fused = plan(
            fusion
            if fusion is not None or known is None
            else stored_fusion(self.name, known.config)
        )
        state = self._for_reading()
        if state.tsv is None:
            self._state = None  # check again after an upgrade
            raise ConfigurationError(
                f"collection {self.name!r} was made before hybrid search and has no "
                f"full-text column; run Collection.open({self.name!r}).upgrade() once, "
                "then search it with mode='hybrid'"
            )
        if fusion is None:
            stored = stored_fusion(self.name, state.config)
            if stored is not None and stored != fused.fusion:
                fused = plan(stored)
        with self.engine.connect() as conn:
            hits = run_plan(conn, fused)
            conn.rollback()
        return [
            _collection_hit(
                h.row, h.distances[0] if h.distances[0] is not None else math.nan, h.score
            )
            for h in hits
        ]

    def hybrid_fusion(self) -> Fusion:
        """The fusion ``search(mode="hybrid")`` uses when given none: the one recorded by
        :meth:`set_fusion` (or :func:`vecalchemy.tune_fusion` with ``store=True``), else
        the default of the collection's text ranking (``Weighted((0.75, 0.25))`` for
        BM25, ``RRF()`` for ``ts_rank_cd``; see docs/design.md, "Hybrid fusion").

        Example::

            Collection.open("kb").hybrid_fusion()    # Weighted(weights=(0.8, 0.2))
        """
        stored = stored_fusion(self.name, self._for_reading().config)
        if stored is not None:
            return stored
        return default_fusion(self.table.c[TERMS] if self._analyzer is not None else None)

    def set_fusion(self, fusion: Fusion | None, *, tuned: Mapping[str, Any] | None = None) -> None:
        """Record ``fusion`` in the table as the collection's hybrid fusion (None: back to
        the default). Every :class:`Collection` of this table, in any process, searches
        with it from its next check of the table (at most a minute later).

        ``tuned``: what :func:`vecalchemy.tune_fusion` measured, kept alongside.

        Example::

            docs.set_fusion(Weighted((0.8, 0.2)))
            docs.search("reset a password", mode="hybrid")   # fused 0.8 / 0.2
        """
        if fusion is not None:
            if not isinstance(fusion, (RRF, Weighted)):
                raise InvalidArgument(
                    f"fusion must be RRF(...), Weighted(...) or None, got {fusion!r}"
                )
            weights = fusion.weights if isinstance(fusion, Weighted) else None
            if weights is not None and len(weights) != 2:
                raise InvalidArgument(
                    f"Weighted has {len(weights)} weights but hybrid search has 2 legs "
                    "(vector, then text); give two weights"
                )
        with self.engine.begin() as conn:
            if not read_state(conn, self.name).exists:
                raise ConfigurationError(
                    f"there is no collection {self.name!r} in this database yet; add "
                    "documents (or call create()) first"
                )
            # COMMENT is a read-modify-write of the whole configuration: one writer at a
            # time (this lock conflicts with itself, not with reads or row writes).
            conn.exec_driver_sql(f'LOCK TABLE "{self.name}" IN SHARE UPDATE EXCLUSIVE MODE')
            state = read_state(conn, self.name)
            self._check_state(state)
            write_comment(conn, self.name, fusion_config(state.config or {}, fusion, tuned))
        self._state = None

    def _text(
        self, query: str, k: int, clause: sa.ColumnElement[bool] | None
    ) -> list[CollectionHit]:
        """Rank by the words alone: BM25 (``text_ranking="bm25"``) or ``ts_rank_cd``."""
        table = self.table
        hit_columns = [table.c[n] for n in ("id", "chunk", "text", "metadata", "start", "end")]
        if self._analyzer is not None:
            found = bm25_query(table.c[TERMS], query, _check_text_k(k), where=clause)
            stmt = found.with_only_columns(*hit_columns, found.selected_columns.score)
        else:
            query = check_query_text(query)
            spec = table.c[TSV].info[FULLTEXT_INFO_KEY]
            tsq = spec.tsquery(query)
            score = ts_rank_cd(table.c[TSV], tsq).label("score")
            stmt = (
                select(*hit_columns, score)
                .where(table.c[TSV].bool_op("@@")(tsq))
                .where(*([] if clause is None else [clause]))
                .order_by(score.desc(), table.c.id, table.c.chunk)
                .limit(_check_text_k(k))
            )
        if self._for_reading().tsv is None and self._analyzer is None:
            self._state = None
            raise ConfigurationError(
                f"collection {self.name!r} was made before full-text search and has no "
                f"full-text column; run Collection.open({self.name!r}).upgrade() once"
            )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
            conn.rollback()
        return [_collection_hit(r, math.nan, float(r.score)) for r in rows]


def _check_text_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidSearch(f"k must be a positive integer, got {k!r}")
    return k


def _not_ours(name: str) -> str:
    return (
        f"a table named {name!r} exists that vecalchemy did not create (its comment does "
        "not record a collection); a collection would change it, so it was left alone: "
        "choose another collection name"
    )


def _exists(doc_id: str, name: str) -> InvalidRows:
    return InvalidRows(
        f"document id {doc_id!r} is already in collection {name!r}; use upsert() to replace "
        "documents; nothing was written"
    )


def _check_metadata(metas: list[dict[str, Any]]) -> None:
    """Refuse metadata that jsonb cannot hold, before anything is written: values JSON
    has no notation for (NaN, infinities, sets, dates, ...), NUL characters and lone
    surrogates.

    One ``json.dumps`` of the whole list checks them all at once; only a suspect list is
    walked document by document, for the message."""
    try:
        dumped = json.dumps(metas, allow_nan=False, ensure_ascii=False)
        dumped.encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        pass  # ValueError includes UnicodeEncodeError
    else:
        if "\\u0000" not in dumped:  # how JSON writes a NUL (or a string holding "\\u0000")
            return
    for n, meta in enumerate(metas):
        try:
            json.dumps(meta, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidRows(
                f"metadata of document {n} cannot be stored as JSON ({exc}); use strings, "
                "finite numbers, booleans, None, lists and dicts with string keys; "
                "nothing was written"
            ) from None
        bad = _bad_string(meta)
        if bad is not None:
            raise InvalidRows(
                f"metadata of document {n} has a string with {bad}, which PostgreSQL "
                "cannot store; nothing was written"
            )


def _bad_string(value: Any) -> str | None:
    """What makes a string in ``value`` (keys too) unstorable, or None if nothing does."""
    if isinstance(value, str):
        if "\x00" in value:
            return "a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "a lone surrogate (not valid Unicode)"
        return None
    if isinstance(value, Mapping):
        items: Any = [*value.keys(), *value.values()]
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return None
    for item in items:
        bad = _bad_string(item)
        if bad is not None:
            return bad
    return None


def _storable(texts: list[str]) -> bool:
    """Whether PostgreSQL can store every one of ``texts`` (checked at once)."""
    joined = "".join(texts)
    if "\x00" in joined:
        return False
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_text(what: str, text: str) -> None:
    """Refuse text PostgreSQL cannot store: NUL characters and lone surrogates."""
    if "\x00" in text:
        raise InvalidRows(f"{what} contains a NUL character, which PostgreSQL cannot store")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRows(
            f"{what} is not valid Unicode text ({exc.reason} at position {exc.start}); "
            "decode it properly before adding it"
        ) from None
