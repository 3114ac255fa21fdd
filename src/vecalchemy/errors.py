"""The exceptions vecalchemy raises.

Every error derives from :class:`VecalchemyError`; errors caused by a bad argument
are also :class:`ValueError` so that generic validation code catches them too.
Each subclass names something the caller can do about it::

    VecalchemyError
    ├── ConfigurationError          a setting or URL is wrong
    ├── ServerError                 the embedded server did not start or stop (names its log)
    ├── ExtensionNotAvailable       the server has no pgvector, or we may not create it
    ├── IndexBuildError             an index cannot be built now (IVFFlat on an empty table)
    ├── EmbedderError               an embedding model failed or is misconfigured
    ├── StaleEmbedding              a write would leave an embedding out of step with its text
    ├── SyncError                   the outbox (queue, triggers, workers) is not set up or broken
    ├── InvalidArgument (also TypeError)  an argument of the wrong kind (a table, a column)
    └── (also ValueError)
        ├── UnknownMetric           a metric or storage name vecalchemy does not know
        ├── UnsupportedIndex        a metric/storage/index combination pgvector cannot index
        ├── MetricMismatch          the query's metric differs from the column's or its index's
        ├── MetricRequired          a plain pgvector column was searched without metric=
        ├── DimensionMismatch       a vector of the wrong length
        ├── InvalidVector           NaN, infinity, an empty or unreadable vector
        ├── InvalidRows             rows to load that do not fit their columns
        ├── FilterError             a metadata filter outside the filter language
        ├── InvalidSplitter         a chunking size, overlap or spec that cannot work
        └── InvalidSearch           k, ef_search, probes or a threshold out of range

Example::

    try:
        vecalchemy.search(session, Doc.embedding, [0.1, 0.2], k=5)
    except vecalchemy.DimensionMismatch as exc:
        print(exc)  # query vector has 2 dimensions but Doc.embedding has 384 ...
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "DimensionMismatch",
    "EmbedderError",
    "ExtensionNotAvailable",
    "FilterError",
    "IndexBuildError",
    "InvalidArgument",
    "InvalidRows",
    "InvalidSearch",
    "InvalidSplitter",
    "InvalidVector",
    "MetricMismatch",
    "MetricRequired",
    "ServerError",
    "StaleEmbedding",
    "SyncError",
    "UnknownMetric",
    "UnsupportedIndex",
    "VecalchemyError",
]


class VecalchemyError(Exception):
    """Base class of every error vecalchemy raises."""


class ConfigurationError(VecalchemyError):
    """A setting, environment variable or database URL is wrong."""


class ServerError(VecalchemyError):
    """The embedded PostgreSQL server could not be started, stopped or reached.

    The message names the server's log file, where PostgreSQL says why.
    """


class ExtensionNotAvailable(VecalchemyError):
    """The ``vector`` extension is not installed on the server or cannot be created."""


class IndexBuildError(VecalchemyError):
    """A vector index cannot be built now (for example IVFFlat on an empty table)."""


class EmbedderError(VecalchemyError):
    """An embedding model failed, or its configuration is wrong."""


class StaleEmbedding(VecalchemyError):
    """A write would leave an embedding out of step with its source text."""


class SyncError(VecalchemyError):
    """The outbox of :mod:`vecalchemy.sync` is not installed, or cannot be used as asked."""


class InvalidArgument(VecalchemyError, TypeError):
    """An argument of the wrong kind: not a table, not a vector column, ..."""


class InvalidRows(VecalchemyError, ValueError):
    """Rows to load that do not fit their columns (width, names, lengths, batch size)."""


class FilterError(VecalchemyError, ValueError):
    """A metadata filter that is not in the filter language (see :mod:`vecalchemy.filters`)."""


class InvalidSplitter(VecalchemyError, ValueError):
    """A chunking size, overlap, tokenizer or spec that cannot work."""


class UnknownMetric(VecalchemyError, ValueError):
    """A metric or storage name that vecalchemy does not know."""


class UnsupportedIndex(VecalchemyError, ValueError):
    """pgvector cannot build this index: wrong metric for the storage, too many dimensions, ..."""


class MetricMismatch(VecalchemyError, ValueError):
    """The metric asked for differs from the one the column or its index was declared with."""


class MetricRequired(VecalchemyError, ValueError):
    """A column not declared with :func:`vecalchemy.Embedding` was searched without ``metric=``."""


class DimensionMismatch(VecalchemyError, ValueError):
    """A vector has a different number of dimensions than its column."""


class InvalidVector(VecalchemyError, ValueError):
    """A vector contains NaN or infinity, is empty, or cannot be read as numbers."""


class InvalidSearch(VecalchemyError, ValueError):
    """A search argument (k, ef_search, probes, a threshold) is out of range."""
