"""Embedders: the :class:`Embedder` protocol and the models that implement it.

==============================  =====================  ================================
embedder                        needs                  spec (:func:`get_embedder`)
==============================  =====================  ================================
:class:`HashingEmbedder`        nothing                ``hashing``, ``hashing:<dim>``
:class:`SentenceTransformerEmbedder`  extra ``local``  ``minilm``, ``st:<model>``
:class:`OnnxEmbedder`           extras ``local,onnx``  ``minilm-onnx``, ``minilm-onnx:int8``
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
from vecalchemy.embedders.fastembed import DEFAULT_FASTEMBED_MODEL, FastEmbedEmbedder
from vecalchemy.embedders.hashing import DEFAULT_STOP_WORDS, HashingEmbedder
from vecalchemy.embedders.onnx import OnnxEmbedder
from vecalchemy.embedders.openai import DEFAULT_BASE_URL, OpenAIEmbedder
from vecalchemy.embedders.sentence_transformers import (
    DEFAULT_MODEL,
    DEFAULT_MODEL_REVISION,
    DEFAULT_MODEL_SHA256,
    SentenceTransformerEmbedder,
)
from vecalchemy.embedders.spec import SPEC_FORMS, get_embedder

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_FASTEMBED_MODEL",
    "DEFAULT_MODEL",
    "DEFAULT_MODEL_REVISION",
    "DEFAULT_MODEL_SHA256",
    "DEFAULT_STOP_WORDS",
    "SPEC_FORMS",
    "BatchedEmbedder",
    "Embedder",
    "FastEmbedEmbedder",
    "HashingEmbedder",
    "OnnxEmbedder",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "get_embedder",
    "is_embedder",
]
