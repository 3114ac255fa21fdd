"""Embedders: the :class:`Embedder` protocol and the models that implement it.

==============================  =====================  ================================
embedder                        needs                  spec (:func:`get_embedder`)
==============================  =====================  ================================
:class:`HashingEmbedder`        nothing                ``hashing``, ``hashing:<dim>``
:class:`SentenceTransformerEmbedder`  extra ``local``  ``minilm``, ``st:<model>``
:class:`FastEmbedEmbedder`      extra ``fastembed``    ``fastembed:<model>``
:class:`OpenAIEmbedder`         an HTTP server         ``openai:<model>[@<base_url>]``
==============================  =====================  ================================

Importing this package imports none of the optional libraries; each model is imported
and loaded when it first embeds something.

Example::

    >>> from vecalchemy.embedders import Embedder, HashingEmbedder, get_embedder
    >>> embedder: Embedder = HashingEmbedder(dim=384)
    >>> embedder.embed_query("hello world").shape
    (384,)
    >>> get_embedder("hashing:64").dim
    64
"""

from __future__ import annotations

from vecalchemy.embedders.base import BatchedEmbedder, Embedder, is_embedder
from vecalchemy.embedders.fastembed import FastEmbedEmbedder
from vecalchemy.embedders.hashing import HashingEmbedder
from vecalchemy.embedders.openai import OpenAIEmbedder
from vecalchemy.embedders.sentence_transformers import SentenceTransformerEmbedder
from vecalchemy.embedders.spec import get_embedder

__all__ = [
    "BatchedEmbedder",
    "Embedder",
    "FastEmbedEmbedder",
    "HashingEmbedder",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "get_embedder",
    "is_embedder",
]
