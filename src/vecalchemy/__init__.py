"""vecalchemy: semantic search on PostgreSQL + pgvector through SQLAlchemy 2.x."""

from __future__ import annotations

from vecalchemy.errors import (
    ConfigurationError,
    DimensionMismatch,
    EmbedderError,
    ExtensionNotAvailable,
    IndexBuildError,
    InvalidSearch,
    InvalidVector,
    MetricMismatch,
    MetricRequired,
    ServerError,
    UnknownMetric,
    UnsupportedIndex,
    VecalchemyError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "DimensionMismatch",
    "EmbedderError",
    "ExtensionNotAvailable",
    "IndexBuildError",
    "InvalidSearch",
    "InvalidVector",
    "MetricMismatch",
    "MetricRequired",
    "ServerError",
    "UnknownMetric",
    "UnsupportedIndex",
    "VecalchemyError",
    "__version__",
]
