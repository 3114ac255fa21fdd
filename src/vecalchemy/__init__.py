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
from vecalchemy.fulltext import FullText, fulltext_column
from vecalchemy.indexes import IndexResult, build_indexes, drop_indexes
from vecalchemy.load import LoadResult, aload, load
from vecalchemy.metrics import Metric, Storage
from vecalchemy.partitions import add_partition, hash_partitions
from vecalchemy.query import (
    RRF,
    Explain,
    FusedQuery,
    NearestPlan,
    Weighted,
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
    IVFFlat,
    VectorSpec,
    defer_indexes,
    embedding_column,
    partial_index,
    resolve_spec,
)
from vecalchemy.search import (
    MMR,
    CrossEncoderReranker,
    FusedHit,
    Hit,
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
    "Explain",
    "ExtensionNotAvailable",
    "FilterError",
    "FullText",
    "FusedHit",
    "FusedQuery",
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
    "NearestPlan",
    "Reranker",
    "ScanOptions",
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
    "arun",
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
    "plan_hybrid",
    "plan_multi",
    "plan_nearest",
    "resolve_spec",
    "resolve_url",
    "run",
    "search",
    "setup",
]
