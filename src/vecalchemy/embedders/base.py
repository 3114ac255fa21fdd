"""The :class:`Embedder` protocol: what vecalchemy needs from an embedding model.

An embedder turns texts into float32 vectors of a fixed dimension. Anything with these
members is an embedder; there is no base class to inherit from::

    >>> from vecalchemy.embedders import Embedder, HashingEmbedder
    >>> isinstance(HashingEmbedder(), Embedder)
    True

For writing a new embedder, :class:`BatchedEmbedder` supplies what every model needs
around its one batch call: checking the texts, splitting them into batches of
``batch_size``, checking what the model returned, and the async twins (a worker
thread). :func:`check_texts`, :func:`batches` and :func:`as_matrix` are the same
pieces for an embedder that cannot inherit from it.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
from collections.abc import Sequence
from typing import Any, Protocol, TypeGuard, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

from vecalchemy.embedders._checks import (
    as_matrix,
    batches,
    check_query,
    check_texts,
)

__all__ = ["BatchedEmbedder", "Embedder", "is_embedder"]

_T = TypeVar("_T")


@runtime_checkable
class Embedder(Protocol):
    """A model that embeds texts as float32 vectors of ``dim`` dimensions.

    ``name`` identifies the model *and* every setting that changes its output (a
    revision, a digest), so that vectors stored under one name can be trusted to be
    comparable with new vectors from an embedder of the same name.

    ``embed_documents`` returns an array of shape ``(len(texts), dim)``;
    ``embed_query`` returns shape ``(dim,)``. Symmetric models embed both the same
    way; asymmetric ones (query and passage prompts) may not. The async twins do the
    same without blocking the event loop.

    Implementations that call a model in batches take a keyword-only ``batch_size``
    (how many texts go to the model, or to a server, at once); it changes speed and
    memory, never the vectors, so it is not part of ``name`` nor of this protocol.

    Optional members, read with ``getattr(embedder, "max_tokens", None)`` (an embedder
    without them is still an embedder):

    * ``max_tokens: int | None`` -- the model's input window in tokens, the special
      tokens it adds included (256 for all-MiniLM-L6-v2); ``None`` means unknown or no
      window. The model ignores what lies past it.
    * ``token_spans(text) -> [(start, end), ...]`` -- the character spans of the tokens
      the model makes of ``text``, without special tokens and without truncation.
    * ``count_tokens(text) -> int`` -- how many tokens the model takes in for ``text``,
      special tokens included, before truncation (``count_tokens("")`` is the number of
      special tokens).

    With all three, a :class:`~vecalchemy.Collection` splits again every chunk longer
    than ``max_tokens - count_tokens("")`` tokens (for the splitter specs that size
    chunks), and counts the chunks the model would truncate otherwise. None of them may
    load a model when the embedder is constructed; they may on first use.

    Checking an object: before Python 3.12, ``isinstance(obj, Embedder)`` reads every
    member, properties included, and reading ``dim`` or ``name`` may load a model or
    ask a server; :func:`is_embedder` checks without reading them.

    Example::

        def index(embedder: Embedder, texts: list[str]) -> None:
            vectors = embedder.embed_documents(texts)
            assert vectors.shape == (len(texts), embedder.dim)
            print(f"embedded {len(texts)} texts with {embedder.name}")
    """

    @property
    def dim(self) -> int:
        """The number of dimensions of every vector, e.g. ``384``."""
        ...

    @property
    def name(self) -> str:
        """The model and its output-changing settings, e.g. ``"hashing-v1:dim=384:..."``."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` as a float32 array of shape ``(len(texts), dim)``."""
        ...

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one search query as a float32 array of shape ``(dim,)``."""
        ...

    async def aembed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Like :meth:`embed_documents`, without blocking the event loop."""
        ...

    async def aembed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Like :meth:`embed_query`, without blocking the event loop."""
        ...


_MEMBERS = ("dim", "name", "embed_documents", "embed_query", "aembed_documents", "aembed_query")
_MISSING = object()


def is_embedder(obj: object) -> TypeGuard[Embedder]:
    """Whether ``obj`` has every member of :class:`Embedder`, without reading any of them.

    This is ``isinstance(obj, Embedder)`` as Python 3.12 does it (with
    ``inspect.getattr_static``); older versions read the properties, and an embedder's
    ``dim`` or ``name`` may load its model, hash its weights or send a request.

    Example::

        >>> from vecalchemy.embedders import HashingEmbedder
        >>> is_embedder(HashingEmbedder()), is_embedder("hashing")
        (True, False)
    """
    return all(inspect.getattr_static(obj, member, _MISSING) is not _MISSING for member in _MEMBERS)


class BatchedEmbedder(abc.ABC):
    """A base class for embedders whose model embeds one batch of texts at a time.

    A subclass sets ``batch_size`` and implements :attr:`dim`, :attr:`name` and
    :meth:`_embed_batch`; it gets :meth:`embed_documents` (texts checked, split into
    batches, results checked and stacked), :meth:`embed_query`, and async twins that
    run them in a worker thread (``asyncio.to_thread``), which suits in-process models:
    they release the GIL while they compute, so the event loop keeps running.

    Example::

        class Lengths(BatchedEmbedder):
            batch_size = 100
            dim = 1
            name = "lengths-v1"

            def _embed_batch(self, texts, *, query):
                return [[float(len(t))] for t in texts]

        Lengths().embed_documents(["ab", "abc"])  # array([[2.], [3.]], dtype=float32)
    """

    batch_size: int

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """The number of dimensions of every vector."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The model and every setting that changes its output."""

    @abc.abstractmethod
    def _embed_batch(self, texts: list[str], *, query: bool) -> Any:
        """Embed at most :meth:`_texts_per_call` checked texts; return ``len(texts)`` vectors.

        ``query`` is true for :meth:`embed_query`: an asymmetric model applies its
        query prompt then.
        """

    def _source(self) -> str:
        """How errors name this embedder."""
        return type(self).__name__

    def _texts_per_call(self) -> int:
        """How many texts one :meth:`_embed_batch` call gets: ``batch_size`` by default.

        A model that batches by itself may take more at a time (and batch them its way).
        """
        return self.batch_size

    def _expected_dim(self) -> int | None:
        """The dimension to check results against (``None``: learn it from them)."""
        return self.dim

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` as a float32 array of shape ``(len(texts), dim)``, in batches.

        Example::

            vectors = embedder.embed_documents(["first text", "second text"])
        """
        checked = check_texts(texts)
        if not checked:
            return np.empty((0, self.dim), dtype=np.float32)
        parts = [
            as_matrix(
                self._embed_batch(list(batch), query=False),
                rows=len(batch),
                dim=self._expected_dim(),
                source=self._source(),
            )
            for batch in batches(checked, self._texts_per_call())
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one query as a float32 array of shape ``(dim,)``.

        Example::

            vector = embedder.embed_query("where is the config file?")
        """
        matrix = as_matrix(
            self._embed_batch([check_query(text)], query=True),
            rows=1,
            dim=self._expected_dim(),
            source=self._source(),
        )
        vector: npt.NDArray[np.float32] = matrix[0]
        return vector

    async def aembed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """:meth:`embed_documents` in a worker thread, so the event loop keeps running.

        Example::

            vectors = await embedder.aembed_documents(["first text", "second text"])
        """
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> npt.NDArray[np.float32]:
        """:meth:`embed_query` in a worker thread, so the event loop keeps running.

        Example::

            vector = await embedder.aembed_query("where is the config file?")
        """
        return await asyncio.to_thread(self.embed_query, text)
