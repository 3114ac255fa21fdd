"""vecalchemy: semantic search on PostgreSQL + pgvector through SQLAlchemy 2.x.

Declare the metric once, and the index and the query follow from it::

    import vecalchemy
    from vecalchemy import Embedding, HNSW

    class Doc(Base):
        __tablename__ = "docs"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str]
        embedding = Embedding(384, metric="cosine", index=HNSW())

    engine = vecalchemy.create_engine()          # embedded PostgreSQL unless configured
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        hits = vecalchemy.search(session, Doc.embedding, query_vector, k=5)
"""

from __future__ import annotations

from vecalchemy.collection import Collection, CollectionHit
from vecalchemy.embedders import Embedder, HashingEmbedder, get_embedder
from vecalchemy.engine import create_async_engine, create_engine, resolve_url, setup
from vecalchemy.errors import (
    ConfigurationError,
    DimensionMismatch,
    EmbedderError,
    ExtensionNotAvailable,
    FilterError,
    IndexBuildError,
    InvalidArgument,
    InvalidRows,
    InvalidSearch,
    InvalidSplitter,
    InvalidVector,
    MetricMismatch,
    MetricRequired,
    ServerError,
    UnknownMetric,
    UnsupportedIndex,
    VecalchemyError,
)
from vecalchemy.explain import aexplain, explain, index_used
from vecalchemy.fulltext import FullText, fulltext_column
from vecalchemy.fusion import RRF, Weighted, hybrid_query, multi_query
from vecalchemy.hybrid import (
    FusedHit,
    ahybrid_search,
    amulti_search,
    hybrid_search,
    multi_search,
)
from vecalchemy.indexes import IndexResult, build_indexes, drop_indexes
from vecalchemy.load import LoadResult, aload, load
from vecalchemy.metrics import Metric, Storage
from vecalchemy.partitions import add_partition, hash_partitions
from vecalchemy.query import distance, nearest
from vecalchemy.rerank import MMR, CrossEncoderReranker, Reranker, apply_rerank, mmr
from vecalchemy.schema import (
    HNSW,
    Embedding,
    IVFFlat,
    VectorSpec,
    defer_indexes,
    embedding_column,
    partial_index,
    resolve_spec,
)
from vecalchemy.search import Hit, asearch, search

__version__ = "0.1.0"

__all__ = [
    "HNSW",
    "MMR",
    "RRF",
    "Collection",
    "CollectionHit",
    "ConfigurationError",
    "CrossEncoderReranker",
    "DimensionMismatch",
    "Embedder",
    "EmbedderError",
    "Embedding",
    "ExtensionNotAvailable",
    "FilterError",
    "FullText",
    "FusedHit",
    "HashingEmbedder",
    "Hit",
    "IVFFlat",
    "IndexBuildError",
    "IndexResult",
    "InvalidArgument",
    "InvalidRows",
    "InvalidSearch",
    "InvalidSplitter",
    "InvalidVector",
    "LoadResult",
    "Metric",
    "MetricMismatch",
    "MetricRequired",
    "Reranker",
    "ServerError",
    "Storage",
    "UnknownMetric",
    "UnsupportedIndex",
    "VecalchemyError",
    "VectorSpec",
    "Weighted",
    "__version__",
    "add_partition",
    "aexplain",
    "ahybrid_search",
    "aload",
    "amulti_search",
    "apply_rerank",
    "asearch",
    "build_indexes",
    "create_async_engine",
    "create_engine",
    "defer_indexes",
    "distance",
    "drop_indexes",
    "embedding_column",
    "explain",
    "fulltext_column",
    "get_embedder",
    "hash_partitions",
    "hybrid_query",
    "hybrid_search",
    "index_used",
    "load",
    "mmr",
    "multi_query",
    "multi_search",
    "nearest",
    "partial_index",
    "resolve_spec",
    "resolve_url",
    "search",
    "setup",
]
