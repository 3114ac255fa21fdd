"""Recursive character splitting, and the one-chunk-per-document splitter."""

from __future__ import annotations

from dataclasses import dataclass, field

from vecalchemy.chunking._split import (
    DEFAULT_SEPARATORS,
    NONSPACE,
    CharSpace,
    CutRule,
    OverlapRule,
    SplitMany,
    check_budget,
    check_text,
    make_chunks,
    separator_rules,
    spans,
)
from vecalchemy.chunking.base import Chunk

__all__ = ["CharacterSplitter", "WholeTextSplitter"]


@dataclass(frozen=True, slots=True)
class CharacterSplitter(SplitMany):
    """Recursive character splitting: at most ``size`` characters per chunk.

    A chunk ends at the last separator in its budget, trying ``separators`` in order
    (paragraph breaks, then line breaks, sentence ends, spaces, and finally anywhere);
    a ``"\\n"`` in a separator also matches ``"\\r\\n"``. The next chunk repeats up to
    ``overlap`` characters of the previous one, starting on the coarsest separator found
    in that stretch. Whitespace at either end of a chunk is left out (offsets adjusted).
    A hard cut at ``size`` is always the last resort, so no chunk is ever longer, even
    when ``separators`` does not end with ``""``.

    ``overlap`` defaults to 200, or a fifth of ``size`` when ``size`` is below 1000.

    Example::

        >>> splitter = CharacterSplitter(size=30, overlap=10)
        >>> doc = "One sentence here. Another one there. And a third one."
        >>> [c.text for c in splitter.split(doc)]
        ['One sentence here.', 'here. Another one there.', 'one there. And a third one.']
    """

    size: int = 1000
    overlap: int | None = None
    separators: tuple[str, ...] = field(default=DEFAULT_SEPARATORS, kw_only=True)
    _rules: tuple[CutRule, OverlapRule] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "overlap", check_budget(self.size, self.overlap, 1000, 200))
        seps, cut_rule, overlap_rule = separator_rules(self.separators)
        object.__setattr__(self, "separators", seps)
        object.__setattr__(self, "_rules", (cut_rule, overlap_rule))

    def split(self, text: str) -> list[Chunk]:
        """The chunks of ``text``; see the class for how it is cut.

        Example::

            >>> [c.text for c in CharacterSplitter(size=5, overlap=0).split("abcdefgh")]
            ['abcde', 'fgh']
        """
        text = check_text(text)
        assert self.overlap is not None
        space = CharSpace(text, 0, len(text), self.size, self.overlap)
        return make_chunks(text, spans(text, space, 0, *self._rules))


@dataclass(frozen=True, slots=True)
class WholeTextSplitter(SplitMany):
    """One chunk per document: the whole text without surrounding whitespace.

    This is the spec ``"none"``, for documents that are already short enough.

    Example::

        >>> [(c.start, c.end, c.text) for c in WholeTextSplitter().split("  Short note. ")]
        [(2, 13, 'Short note.')]
        >>> WholeTextSplitter().split(" \\n ")
        []
    """

    def split(self, text: str) -> list[Chunk]:
        """``text`` as one chunk, trimmed (no chunk if it is empty or blank).

        Example::

            >>> WholeTextSplitter().split("abc")[0].end
            3
        """
        text = check_text(text)
        m = NONSPACE.search(text)
        if m is None:
            return []
        s, e = m.start(), len(text.rstrip())
        return [Chunk(text[s:e], s, e, 0)]
