"""The :class:`Embedder` protocol: what vecalchemy needs from an embedding model.

An embedder turns texts into float32 vectors of a fixed dimension. Anything with these
members is an embedder; there is no base class to inherit from::

    >>> from vecalchemy.embedders import Embedder, HashingEmbedder
    >>> isinstance(HashingEmbedder(), Embedder)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["Embedder"]


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
