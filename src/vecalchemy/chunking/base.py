"""The chunk type and the splitter protocol every splitter follows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from vecalchemy.errors import InvalidSplitter

__all__ = ["Chunk", "Splitter"]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document and where it lies in it.

    ``text`` is exactly ``document[start:end]`` (character offsets into the original
    string); ``index`` is the chunk's position among its document's chunks (0, 1, ...);
    ``heading`` is the Markdown heading path above it (``"Install > Linux"``), set by
    :class:`MarkdownSplitter` only.

    Example::

        >>> doc = "Hello world. Goodbye."
        >>> chunk = Chunk(text="Goodbye.", start=13, end=21, index=1)
        >>> doc[chunk.start : chunk.end] == chunk.text
        True
    """

    text: str
    start: int
    end: int
    index: int
    heading: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end or self.end - self.start != len(self.text):
            raise InvalidSplitter(
                f"chunk offsets {self.start}:{self.end} do not match a text of "
                f"{len(self.text)} characters; end - start must equal len(text)"
            )
        if self.index < 0:
            raise InvalidSplitter(f"chunk index must be 0 or more, got {self.index}")


@runtime_checkable
class Splitter(Protocol):
    """Anything that splits a text into :class:`Chunk` objects.

    ``split(text)`` returns the chunks of one document (an empty list for empty or
    whitespace-only text); ``split_many(texts)`` returns one such list per text.

    Example::

        >>> isinstance(CharacterSplitter(), Splitter)
        True
        >>> [len(c) for c in CharacterSplitter(size=20).split_many(["a b", "", "c"])]
        [1, 0, 1]
    """

    def split(self, text: str) -> list[Chunk]:
        """The chunks of ``text``, in order."""
        ...

    def split_many(self, texts: Iterable[str]) -> list[list[Chunk]]:
        """The chunks of each text of ``texts``."""
        ...
