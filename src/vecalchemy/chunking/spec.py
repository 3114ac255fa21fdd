"""Splitter specs (``"chars:1000:200"``, ``"markdown"``, ``"none"``) for the CLI and config."""

from __future__ import annotations

from collections.abc import Callable

from vecalchemy.chunking.base import Splitter
from vecalchemy.chunking.character import CharacterSplitter, WholeTextSplitter
from vecalchemy.chunking.markdown import MarkdownSplitter
from vecalchemy.chunking.tokens import TokenSplitter
from vecalchemy.errors import InvalidSplitter

__all__ = ["get_splitter"]

_FORMS = "chars[:SIZE[:OVERLAP]], tokens[:SIZE[:OVERLAP]], markdown[:SIZE[:OVERLAP]] or none"
_KINDS: dict[str, Callable[[int, int | None], Splitter]] = {
    "chars": lambda size, overlap: CharacterSplitter(size, overlap),
    "tokens": lambda size, overlap: TokenSplitter(size, overlap),
    "markdown": lambda size, overlap: MarkdownSplitter(size, overlap),
}
_DEFAULT_SIZES = {"chars": 1000, "tokens": 256, "markdown": 1000}


def get_splitter(spec: str | Splitter | None = None) -> Splitter:
    """The splitter a spec names, for the CLI and configuration files.

    ``spec`` is one of ``"chars[:SIZE[:OVERLAP]]"`` (:class:`CharacterSplitter`),
    ``"tokens[:SIZE[:OVERLAP]]"`` (:class:`TokenSplitter` with the built-in tokenizer),
    ``"markdown[:SIZE[:OVERLAP]]"`` (:class:`MarkdownSplitter`) or ``"none"``
    (:class:`WholeTextSplitter`). Omitted or empty parts take the class defaults. A
    :class:`Splitter` is returned as it is; ``None`` means ``"markdown"``.

    Example::

        >>> get_splitter("chars:500:50")
        CharacterSplitter(size=500, overlap=50, separators=('\\n\\n', '\\n', '. ', ' ', ''))
        >>> get_splitter("tokens:128").overlap  # the default overlap, scaled to the size
        16
        >>> get_splitter("markdown::0")
        MarkdownSplitter(size=1000, overlap=0)
    """
    if spec is None:
        return MarkdownSplitter()
    if not isinstance(spec, str):
        if isinstance(spec, Splitter):
            return spec
        raise InvalidSplitter(
            f"a splitter must be a spec string ({_FORMS}), a Splitter or None, "
            f"got {type(spec).__name__}"
        )
    name, *numbers = (part.strip() for part in spec.strip().split(":"))
    name = name.lower()
    if name == "none" and not numbers:
        return WholeTextSplitter()
    make = _KINDS.get(name)
    if make is None or len(numbers) > 2:
        raise InvalidSplitter(f"unknown splitter spec {spec!r}; use {_FORMS}")
    values: list[int | None] = []
    for part in numbers:
        if not part:
            values.append(None)
            continue
        try:
            values.append(int(part))
        except ValueError:
            raise InvalidSplitter(
                f"splitter spec {spec!r}: {part!r} is not a whole number; use {_FORMS}"
            ) from None
    values += [None] * (2 - len(values))
    size, overlap = values
    return make(_DEFAULT_SIZES[name] if size is None else size, overlap)
