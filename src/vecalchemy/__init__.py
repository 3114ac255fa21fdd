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

from vecalchemy.collection import AddResult, Collection, CollectionHit, Record
from vecalchemy.doctor import Finding, doctor
from vecalchemy.embedders import Embedder, HashingEmbedder, get_embedder
from vecalchemy.engine import (
    DATABASE_URL_ENV,
    create_async_engine,
    create_engine,
    resolve_url,
    setup,
)
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
    StaleEmbedding,
    SyncError,
    UnknownMetric,
    UnsupportedIndex,
    VecalchemyError,
)
from vecalchemy.filters import compile_filter, parse_filter
from vecalchemy.fulltext import DEFAULT_LANGUAGE, FullText, FullTextSpec, fulltext_column
from vecalchemy.indexes import IndexResult, build_indexes, drop_indexes
from vecalchemy.load import ConflictMode, IndexMode, LoadResult, aload, load
from vecalchemy.metrics import (
    INDEX_DIM_LIMITS,
    MAX_EF_SEARCH,
    STORAGE_DIM_LIMITS,
    IndexMethod,
    Metric,
    Storage,
)
from vecalchemy.partitions import add_partition, hash_partitions
from vecalchemy.query import (
    DEFAULT_RRF_K,
    RRF,
    Explain,
    FusedQuery,
    Fusion,
    Leg,
    NearestPlan,
    Weighted,
    default_candidates,
    distance,
    hybrid_query,
    multi_query,
    nearest,
    plan_hybrid,
    plan_multi,
    plan_nearest,
)
from vecalchemy.schema import (
    HNSW,
    Embedding,
    EmbeddingBit,
    EmbeddingComparator,
    EmbeddingHalfvec,
    EmbeddingSparsevec,
    EmbeddingVector,
    IVFFlat,
    VectorSpec,
    defer_indexes,
    embedding_column,
    ivfflat_lists_for,
    partial_index,
    resolve_spec,
    vector_indexes,
)
from vecalchemy.search import (
    MMR,
    CrossEncoderReranker,
    FusedHit,
    Hit,
    NearestSearch,
    PairScorer,
    Reranker,
    ScanOptions,
    aexplain,
    ahybrid_search,
    amulti_search,
    apply_rerank,
    arun,
    asearch,
    explain,
    hybrid_search,
    index_used,
    mmr,
    multi_search,
    run,
    search,
)
from vecalchemy.server import (
    DATA_DIR_ENV,
    ConnectArgs,
    EmbeddedServer,
    ServerStatus,
    default_data_dir,
    embedded_url,
)

__version__ = "0.1.0"

# The sync package installs the ORM's re-embedding hook (vecalchemy.sync._inline).
from vecalchemy import sync

__all__ = [
    "DATABASE_URL_ENV",
    "DATA_DIR_ENV",
    "DEFAULT_LANGUAGE",
    "DEFAULT_RRF_K",
    "HNSW",
    "INDEX_DIM_LIMITS",
    "MAX_EF_SEARCH",
    "MMR",
    "RRF",
    "STORAGE_DIM_LIMITS",
    "AddResult",
    "Collection",
    "CollectionHit",
    "ConfigurationError",
    "ConflictMode",
    "ConnectArgs",
    "CrossEncoderReranker",
    "DimensionMismatch",
    "EmbeddedServer",
    "Embedder",
    "EmbedderError",
    "Embedding",
    "EmbeddingBit",
    "EmbeddingComparator",
    "EmbeddingHalfvec",
    "EmbeddingSparsevec",
    "EmbeddingVector",
    "Explain",
    "ExtensionNotAvailable",
    "FilterError",
    "Finding",
    "FullText",
    "FullTextSpec",
    "FusedHit",
    "FusedQuery",
    "Fusion",
    "HashingEmbedder",
    "Hit",
    "IVFFlat",
    "IndexBuildError",
    "IndexMethod",
    "IndexMode",
    "IndexResult",
    "InvalidArgument",
    "InvalidRows",
    "InvalidSearch",
    "InvalidSplitter",
    "InvalidVector",
    "Leg",
    "LoadResult",
    "Metric",
    "MetricMismatch",
    "MetricRequired",
    "NearestPlan",
    "NearestSearch",
    "PairScorer",
    "Record",
    "Reranker",
    "ScanOptions",
    "ServerError",
    "ServerStatus",
    "StaleEmbedding",
    "Storage",
    "SyncError",
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
    "arun",
    "asearch",
    "build_indexes",
    "compile_filter",
    "create_async_engine",
    "create_engine",
    "default_candidates",
    "default_data_dir",
    "defer_indexes",
    "distance",
    "doctor",
    "drop_indexes",
    "embedded_url",
    "embedding_column",
    "explain",
    "fulltext_column",
    "get_embedder",
    "hash_partitions",
    "hybrid_query",
    "hybrid_search",
    "index_used",
    "ivfflat_lists_for",
    "load",
    "mmr",
    "multi_query",
    "multi_search",
    "nearest",
    "parse_filter",
    "partial_index",
    "plan_hybrid",
    "plan_multi",
    "plan_nearest",
    "resolve_spec",
    "resolve_url",
    "run",
    "search",
    "setup",
    "sync",
    "vector_indexes",
]
