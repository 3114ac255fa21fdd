"""One parser for the strings that select an embedder: in the CLI, in config, in Collection.

=====================================  ==========================================================
spec                                   embedder
=====================================  ==========================================================
``hashing``                            ``HashingEmbedder(384)``: no dependencies, no model
``hashing:<dim>``                      ``HashingEmbedder(dim)``
``minilm``                             ``SentenceTransformerEmbedder()``: all-MiniLM-L6-v2, 384
``minilm-onnx``                        ``OnnxEmbedder()``: the same model on ONNX Runtime
``minilm-onnx:int8``                   ``OnnxEmbedder(precision="int8")``: quantized, faster
``st:<model>``                         ``SentenceTransformerEmbedder(model)``: hub id or directory
``fastembed:<model>``                  ``FastEmbedEmbedder(model)``
``openai:<model>``                     ``OpenAIEmbedder(model)``: OpenAI's API
``openai:<model>@<base_url>``          ``OpenAIEmbedder(model, base_url=base_url)``
=====================================  ==========================================================

Making an embedder loads nothing and sends nothing: models load on first use.

Example::

    >>> from vecalchemy.embedders import get_embedder
    >>> get_embedder("hashing:128").dim
    128
    >>> get_embedder("openai:nomic-embed-text@http://localhost:11434/v1").name
    'openai:nomic-embed-text@http://localhost:11434/v1'
"""

from __future__ import annotations

from vecalchemy.embedders.base import Embedder, is_embedder
from vecalchemy.embedders.fastembed import FastEmbedEmbedder
from vecalchemy.embedders.hashing import HashingEmbedder
from vecalchemy.embedders.onnx import OnnxEmbedder
from vecalchemy.embedders.openai import OpenAIEmbedder
from vecalchemy.embedders.sentence_transformers import SentenceTransformerEmbedder
from vecalchemy.errors import EmbedderError

__all__ = ["SPEC_FORMS", "get_embedder"]

#: The accepted forms of a spec, as error messages list them.
SPEC_FORMS = (
    "hashing",
    "hashing:<dim>",
    "minilm",
    "minilm-onnx",
    "minilm-onnx:int8",
    "st:<model>",
    "fastembed:<model>",
    "openai:<model>",
    "openai:<model>@<base_url>",
)


def _bad(spec: str, why: str) -> EmbedderError:
    forms = ", ".join(repr(f) for f in SPEC_FORMS)
    return EmbedderError(f"bad embedder spec {spec!r}: {why}; use one of {forms}")


def get_embedder(spec: str | Embedder) -> Embedder:
    """Return the embedder that ``spec`` names, or ``spec`` itself if it is an Embedder.

    See the module docstring for the forms; the kind before the first ``:`` is
    case-insensitive, the rest is passed on as written (model names are not). A model
    name may itself contain ``:`` (Ollama's ``nomic-embed-text:latest``); in
    ``openai:`` specs the first ``@`` separates the model from the base URL.
    An unknown or malformed spec raises :class:`~vecalchemy.errors.EmbedderError`
    listing the accepted forms.

    Example::

        >>> get_embedder("hashing").name
        'hashing-v1:dim=384:ngrams=1-2:char=3-5:stop=en:seed=0'
        >>> get_embedder("minilm").name
        'st:sentence-transformers/all-MiniLM-L6-v2@1110a243'
        >>> get_embedder("openai:text-embedding-3-small").name
        'openai:text-embedding-3-small'
    """
    if not isinstance(spec, str):
        # Not isinstance(spec, Embedder): before Python 3.12 it reads the properties,
        # which can load a model or send a request.
        if is_embedder(spec):
            return spec
        raise EmbedderError(
            f"an embedder spec is a str or an Embedder, got {type(spec).__name__}; "
            f"use one of {', '.join(repr(f) for f in SPEC_FORMS)}"
        )
    text = spec.strip()
    kind, colon, rest = text.partition(":")
    kind = kind.lower()
    if not colon:
        if kind == "hashing":
            return HashingEmbedder(384)
        if kind == "minilm":
            return SentenceTransformerEmbedder()
        if kind == "minilm-onnx":
            return OnnxEmbedder()
        if kind in ("st", "fastembed", "openai"):
            raise _bad(spec, f"{kind!r} needs a model after a colon")
        raise _bad(spec, "unknown embedder")
    if not rest.strip():
        raise _bad(spec, f"nothing after {kind + ':'!r}")
    if kind == "hashing":
        if not rest.isascii() or not rest.isdigit():
            raise _bad(spec, f"the dimension {rest!r} is not a whole number")
        try:
            return HashingEmbedder(int(rest))
        except EmbedderError as exc:
            raise _bad(spec, str(exc)) from exc
    if kind == "st":
        return SentenceTransformerEmbedder(rest)
    if kind == "fastembed":
        return FastEmbedEmbedder(rest)
    if kind == "openai":
        model, at, base_url = rest.partition("@")
        if not model.strip():
            raise _bad(spec, "no model name before '@'")
        if not at:
            return OpenAIEmbedder(model)
        if not base_url:
            raise _bad(spec, "no base URL after '@'")
        try:
            return OpenAIEmbedder(model, base_url=base_url)
        except EmbedderError as exc:
            raise _bad(spec, str(exc)) from exc
    if kind == "minilm-onnx":
        precision = rest.strip().lower()
        if precision not in ("fp32", "int8"):
            raise _bad(spec, f"the precision {rest!r} is not 'fp32' or 'int8'")
        return OnnxEmbedder(precision=precision)
    if kind in ("minilm",):
        raise _bad(spec, "'minilm' takes no argument; for another model use 'st:<model>'")
    raise _bad(spec, f"unknown embedder {kind!r}")
