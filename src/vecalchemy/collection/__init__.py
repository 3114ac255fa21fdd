"""Collections: documents in, hits out, without writing a model (see :class:`Collection`)."""

from __future__ import annotations

from vecalchemy.collection.collection import AddResult, Collection, CollectionHit, Record

__all__ = ["AddResult", "Collection", "CollectionHit", "Record"]
