"""Embedders: the :class:`Embedder` protocol and the models that implement it.

Example::

    >>> from vecalchemy.embedders import Embedder, HashingEmbedder
    >>> embedder: Embedder = HashingEmbedder(dim=384)
    >>> embedder.embed_query("hello world").shape
    (384,)
"""

from __future__ import annotations

from vecalchemy.embedders.base import Embedder
from vecalchemy.embedders.hashing import HashingEmbedder

__all__ = ["Embedder", "HashingEmbedder"]
