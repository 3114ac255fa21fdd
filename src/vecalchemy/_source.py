"""What an embedding column is computed from: its source columns, embedder and sync mode.

``Embedding(384, source=("title", "body"), embedder="minilm")`` declares that the
column holds the embedding of the row's source text, and two companion columns record
what each stored vector was made from:

* ``<column>_source_hash``: the content hash (:func:`content_hash`) of the text the
  vector was embedded from. A row whose current text hashes to this value is current;
  any other row is stale.
* ``<column>_model``: the embedder's :attr:`~vecalchemy.Embedder.name` (model and
  revision) that produced the vector, so that vectors of two models are never mixed.

**The source text** of a row is its source columns' values that are not NULL, joined
by a blank line (``"\\n\\n"``), in the order declared. PostgreSQL computes the same text
as ``concat_ws(E'\\n\\n', title, body)`` (which skips NULLs the same way), so a trigger
and Python agree on every row's hash. A row whose source text is empty or blank has no
embedding (NULL): there is nothing to embed, and a stale vector must not stay behind.

Private to vecalchemy; :mod:`vecalchemy.sync` builds on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from vecalchemy.errors import ConfigurationError

__all__ = [
    "SOURCE_KEY",
    "SYNC_MODES",
    "SourceSpec",
    "content_hash",
    "hash_column_name",
    "model_column_name",
    "source_text",
    "sql_content_hash",
]

#: Where ``Column.info`` keeps a column's :class:`SourceSpec`.
SOURCE_KEY = "vecalchemy.source"

#: ``inline``: embedded in the same flush by the ORM; ``outbox``: queued by a trigger
#: in the same transaction and embedded by ``vecalchemy worker``.
SYNC_MODES = ("inline", "outbox")

#: How the values of several source columns are joined.
JOIN = "\n\n"


@dataclass(frozen=True)
class SourceSpec:
    """An embedding column's source columns, its embedder (a spec string or an
    :class:`~vecalchemy.Embedder`), and how it is kept in sync."""

    columns: tuple[str, ...]
    embedder: Any
    sync: str = "inline"
    #: Embed the start of a text longer than the model's window instead of refusing it.
    truncate: bool = False

    @classmethod
    def parse(
        cls, source: str | Sequence[str], embedder: Any, sync: str, truncate: bool = False
    ) -> SourceSpec:
        """Check a declaration's ``source=``, ``embedder=`` and ``sync=``."""
        columns = (source,) if isinstance(source, str) else tuple(source)
        if not columns or not all(isinstance(c, str) and c for c in columns):
            raise ConfigurationError(
                f"source must be a column name or a tuple of column names, got {source!r}"
            )
        if len(set(columns)) != len(columns):
            raise ConfigurationError(f"source names a column twice: {columns!r}")
        if sync not in SYNC_MODES:
            raise ConfigurationError(
                f"sync must be one of {', '.join(map(repr, SYNC_MODES))}, got {sync!r}"
            )
        if embedder is None:
            raise ConfigurationError(
                "an embedding with source= needs embedder= (a spec such as 'minilm' or "
                "'hashing', or an Embedder object) to compute it"
            )
        if not isinstance(truncate, bool):
            raise ConfigurationError(f"truncate must be True or False, got {truncate!r}")
        return cls(columns, embedder, sync, truncate)


def hash_column_name(column: str) -> str:
    """The companion column that holds the content hash of an embedding's text."""
    return f"{column}_source_hash"


def model_column_name(column: str) -> str:
    """The companion column that holds the name of the embedder that made the vector."""
    return f"{column}_model"


def source_text(values: Iterable[Any]) -> str:
    """A row's source text from its source columns' values (see the module docstring).

    Example::

        >>> source_text(["Title", None, "Body"])
        'Title\\n\\nBody'
    """
    return JOIN.join(str(v) for v in values if v is not None)


def content_hash(text: str) -> str:
    """The content hash of a source text: SHA-256 of its UTF-8 bytes, in hex.

    PostgreSQL computes the same with :func:`sql_content_hash`.

    Example::

        >>> content_hash("hello")[:16]
        '2cf24dba5fb0a30e'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sql_content_hash(quoted_columns: Sequence[str]) -> str:
    """The SQL of :func:`content_hash` over :func:`source_text` of ``quoted_columns``
    (already quoted and qualified, e.g. ``NEW."body"``)."""
    joined = f"concat_ws(E'\\n\\n', {', '.join(f'{c}::text' for c in quoted_columns)})"
    return f"encode(sha256(convert_to({joined}, 'UTF8')), 'hex')"
