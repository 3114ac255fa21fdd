"""Identifiers that fit PostgreSQL, and how columns and tables are named in messages.

PostgreSQL truncates identifiers to 63 *bytes* (``NAMEDATALEN - 1``), not characters:
``ix_dokumente_größe_embedding_hnsw`` is longer in bytes than in characters. Every name
vecalchemy generates (index, partition, staging table names) goes through
:func:`fit_identifier`, which cuts on a character boundary and appends a hash of the
full name when it had to cut, so that two long names never collide after truncation.

Private to vecalchemy.

Example::

    >>> fit_identifier("ix_docs_embedding_hnsw")
    'ix_docs_embedding_hnsw'
    >>> len(fit_identifier("ix_" + "ä" * 40).encode())
    63
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = [
    "MAX_IDENTIFIER_BYTES",
    "describe",
    "digest",
    "fit_identifier",
    "identifier_bytes",
    "qualified",
]

#: PostgreSQL's longest identifier, in bytes.
MAX_IDENTIFIER_BYTES = 63


def digest(text: str, length: int = 8) -> str:
    """A short stable hash of ``text`` (hex), for names derived from long or odd text."""
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def fit_identifier(base: str, suffix: str | None = None) -> str:
    """``base`` (plus ``_suffix``) within 63 bytes; a hash of the whole is appended if cut.

    ``suffix`` is kept whole (a hash that must survive, say); ``base`` is cut on a
    character boundary so that no multi-byte character is split.
    """
    full = base if suffix is None else f"{base}_{suffix}"
    if len(full.encode()) <= MAX_IDENTIFIER_BYTES:
        return full
    tail = suffix if suffix is not None else digest(base)
    room = MAX_IDENTIFIER_BYTES - len(tail.encode()) - 1
    cut = base.encode()[: max(room, 0)].decode(errors="ignore").rstrip("_")
    return f"{cut}_{tail}"


def identifier_bytes(name: str) -> int:
    """How many bytes PostgreSQL counts for ``name``."""
    return len(name.encode())


def qualified(schema: str | None, name: str) -> str:
    """``schema.name`` (or ``name``) with each part quoted as PostgreSQL needs it.

    Suitable for ``to_regclass()``: every part is double-quoted, inner quotes doubled.

    Example::

        >>> qualified("public", "My Table")
        '"public"."My Table"'
    """
    parts = [schema, name] if schema else [name]
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)


def describe(column: Any) -> str:
    """``column docs.embedding`` (or ``column embedding``), for messages."""
    table = getattr(getattr(column, "table", None), "name", None)
    return f"column {table}.{column.name}" if table else f"column {column.name}"
