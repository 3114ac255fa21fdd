"""Splitting with the budget counted in tokens of any tokenizer."""

from __future__ import annotations

import operator
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Protocol

from vecalchemy.chunking._split import (
    DEFAULT_SEPARATORS,
    WORD_SPLIT,
    CutRule,
    Level,
    OverlapRule,
    SplitMany,
    TokenSpace,
    check_budget,
    check_text,
    make_chunks,
    separator_rules,
    spans,
)
from vecalchemy.chunking.base import Chunk, Splitter
from vecalchemy.errors import InvalidSplitter

__all__ = ["TokenLimitSplitter", "TokenSpans", "TokenSplitter", "Tokenizer"]

#: A tokenizer as :class:`TokenSplitter` accepts it directly: text -> token spans.
TokenSpans = Callable[[str], Sequence[tuple[int, int]]]


class _EncodesOffsets(Protocol):
    def encode(self, text: str, /) -> Any: ...


Tokenizer = TokenSpans | _EncodesOffsets


def _word_tokens(text: str) -> tuple[list[int], list[int]]:
    """Starts and ends of the built-in tokens (words and punctuation marks)."""
    # split() alternates gaps and tokens; summing lengths in C is twice as fast as
    # collecting match objects.
    offsets = list(accumulate(map(len, WORD_SPLIT.split(text))))
    return offsets[0::2][:-1], offsets[1::2]


def _spans_function(tok: Tokenizer | None) -> Callable[[str], Any] | None:
    """``text -> token spans`` for a tokenizer (``None`` for the built-in tokens)."""
    if tok is None:
        return None  # the built-in tokens take a faster path
    if callable(getattr(tok, "encode", None)):

        def spans_of(text: str) -> Any:
            encoding = tok.encode(text)  # type: ignore[union-attr]
            offsets = getattr(encoding, "offsets", None)
            if offsets is None:
                raise InvalidSplitter(
                    f"{type(tok).__name__}.encode() returned no .offsets; pass a "
                    "tokenizers.Tokenizer, or a callable returning (start, end) spans"
                )
            return offsets

        return spans_of
    if callable(tok):
        return tok
    raise InvalidSplitter(
        "tokenizer must be None, a callable returning (start, end) token spans, "
        f"or an object with encode(text).offsets, got {tok!r}"
    )


def _units(text: str, spans: Iterable[Any]) -> tuple[list[int], list[int], list[int]]:
    """Token spans as sorted, non-overlapping units with cumulative token counts.

    Empty spans (special tokens) count for nothing; whitespace around a token is left
    out of its span, and a whitespace-only token counts with the unit after it.
    """
    n = len(text)
    stripped: list[tuple[int, int]] = []
    blank: list[int] = []
    for span in spans:
        try:
            a, b = span
            if isinstance(a, bool) or isinstance(b, bool):
                raise TypeError
            a, b = operator.index(a), operator.index(b)
        except (TypeError, ValueError):
            raise InvalidSplitter(
                f"the tokenizer returned {span!r}; expected (start, end) character offsets"
            ) from None
        if not 0 <= a <= b <= n:
            raise InvalidSplitter(
                f"the tokenizer returned offsets {span!r} outside a text of {n} characters"
            )
        if a == b:
            continue
        piece = text[a:b]
        core = piece.strip()
        if not core:
            blank.append(a)
            continue
        a += len(piece) - len(piece.lstrip())
        stripped.append((a, a + len(core)))
    stripped.sort()
    blank.sort()
    starts: list[int] = []
    ends: list[int] = []
    cum = [0]
    k = 0  # blank tokens counted so far
    for a, b in stripped:
        extra = 1
        while k < len(blank) and blank[k] < a:
            extra += 1
            k += 1
        if ends and a < ends[-1]:  # shares characters with the previous unit: merge
            ends[-1] = max(ends[-1], b)
            cum[-1] += extra
        else:
            starts.append(a)
            ends.append(b)
            cum.append(cum[-1] + extra)
    if ends:
        cum[-1] += len(blank) - k
    return starts, ends, cum


@dataclass(frozen=True, slots=True)
class TokenSplitter(SplitMany):
    """Recursive splitting with the budget counted in tokens: at most ``size`` per chunk.

    Chunks are spans of whole tokens (from the start of the first to the end of the
    last) and end at ``separators`` as :class:`CharacterSplitter` does (by default
    paragraph breaks, lines, sentence ends, spaces, then any token boundary), never
    inside a token. Consecutive chunks share at most ``overlap`` tokens.

    ``tokenizer`` is one of:

    * ``None``: words and punctuation (``\\w+|[^\\w\\s]``), no extra package needed;
    * a callable ``text -> [(start, end), ...]`` of token character spans;
    * an object whose ``encode(text)`` returns something with ``.offsets``, such as a
      HuggingFace ``tokenizers.Tokenizer`` (special tokens, whose offsets are empty,
      are not counted).

    Tokens that share characters (several byte-level tokens of one emoji) are never
    split apart, so such a group alone can exceed a very small ``size``.

    ``overlap`` defaults to 32, or an eighth of ``size`` when ``size`` is below 256.

    Example::

        >>> splitter = TokenSplitter(size=4, overlap=1)
        >>> [c.text for c in splitter.split("Alpha beta, gamma delta epsilon.")]
        ['Alpha beta, gamma', 'gamma delta epsilon.']
    """

    size: int = 256
    overlap: int | None = None
    tokenizer: Tokenizer | None = field(default=None, kw_only=True)
    separators: tuple[str, ...] = field(default=DEFAULT_SEPARATORS, kw_only=True)
    _spans_of: Callable[[str], Any] | None = field(init=False, repr=False, compare=False)
    _rules: tuple[CutRule, OverlapRule] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "overlap", check_budget(self.size, self.overlap, 256, 32))
        seps, cut_rule, overlap_rule = separator_rules(self.separators)
        object.__setattr__(self, "separators", seps)
        object.__setattr__(self, "_rules", (cut_rule, overlap_rule))
        object.__setattr__(self, "_spans_of", _spans_function(self.tokenizer))

    def split(self, text: str) -> list[Chunk]:
        """The chunks of ``text``; see the class for how it is cut.

        Example::

            >>> [c.text for c in TokenSplitter(size=2, overlap=0).split("a b c")]
            ['a b', 'c']
        """
        text = check_text(text)
        return make_chunks(text, self._spans(text, self._units_of(text)))

    def _units_of(self, text: str) -> tuple[list[int], list[int], Sequence[int]]:
        if self._spans_of is None:
            starts, ends = _word_tokens(text)
            return starts, ends, range(len(starts) + 1)
        return _units(text, self._spans_of(text))

    def _spans(
        self, text: str, units: tuple[list[int], list[int], Sequence[int]]
    ) -> list[tuple[int, int]]:
        assert self.overlap is not None
        starts, ends, cum = units
        if not starts:
            return []
        space = TokenSpace(text, starts, ends, cum, self.size, self.overlap)
        return spans(text, space, 0, *self._rules)


# How many times a piece is re-tokenized and split again when, tokenized on its own, it
# still has more tokens than the budget (a cut inside a word can change its tokens).
_REFITS = 4


@dataclass(frozen=True, slots=True)
class TokenLimitSplitter(SplitMany):
    """The chunks of ``splitter``, with every chunk of more than ``size`` tokens split again.

    Each chunk of ``splitter`` is tokenized on its own with ``tokenizer`` (as for
    :class:`TokenSplitter`); one with more than ``size`` tokens is split as
    :class:`TokenSplitter` splits a text (``overlap`` tokens shared, default 32, or an
    eighth of ``size`` below 256), and every piece is checked again the same way. So no
    chunk has more than ``size`` tokens of ``tokenizer``, nothing of the text is lost, and
    chunks that fit are the chunks of ``splitter`` (same offsets and headings).

    :class:`~vecalchemy.Collection` wraps its splitter in one for an embedder with a
    token window (``max_tokens``) and a tokenizer (``token_spans``): ``size`` is the
    window less the special tokens the model adds (254 for all-MiniLM-L6-v2).

    Example::

        >>> from vecalchemy.chunking import CharacterSplitter
        >>> fit = TokenLimitSplitter(CharacterSplitter(size=1000), size=3, overlap=0)
        >>> [c.text for c in fit.split("one two three four five. six")]
        ['one two three', 'four five.', 'six']
    """

    splitter: Splitter
    size: int = 256
    overlap: int | None = None
    tokenizer: Tokenizer | None = field(default=None, kw_only=True)
    _tokens: TokenSplitter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.splitter, Splitter):
            raise InvalidSplitter(f"splitter must be a Splitter, got {self.splitter!r}")
        tokens = TokenSplitter(self.size, self.overlap, tokenizer=self.tokenizer)
        object.__setattr__(self, "overlap", tokens.overlap)
        object.__setattr__(self, "_tokens", tokens)

    def split(self, text: str) -> list[Chunk]:
        """The chunks of ``text``: ``splitter``'s, those over ``size`` tokens split again.

        Example::

            >>> from vecalchemy.chunking import WholeTextSplitter
            >>> fit = TokenLimitSplitter(WholeTextSplitter(), size=2, overlap=0)
            >>> [(c.start, c.text) for c in fit.split("a b c")]
            [(0, 'a b'), (4, 'c')]
        """
        text = check_text(text)
        pieces: list[tuple[int, int, str | None]] = []
        for chunk in self.splitter.split(text):
            for s, e in self._fit(chunk.text, 0, _REFITS):
                pieces.append((chunk.start + s, chunk.start + e, chunk.heading))
        # Pieces of two overlapping chunks can interleave, or one can lie inside another
        # (a short tail within the next chunk's overlap): in start order, drop those.
        pieces.sort(key=lambda p: (p[0], -p[1]))
        out: list[Chunk] = []
        for a, b, heading in pieces:
            if not out or b > out[-1].end:
                out.append(Chunk(text[a:b], a, b, len(out), heading))
        return out

    def _fit(self, text: str, offset: int, refits: int) -> list[tuple[int, int]]:
        """Spans (offset by ``offset``) of ``text`` with at most ``size`` tokens each."""
        assert self.overlap is not None
        starts, ends, cum = self._tokens._units_of(text)
        if not starts or cum[-1] <= self.size or refits == 0:
            return [(offset, offset + len(text))]
        cut_rule, overlap_rule = self._tokens._rules
        half = max(self.size // 2, 1)

        def at_least_half_full(p: int) -> list[tuple[Sequence[Level], int]]:
            # A cut at a paragraph break right after a heading would leave the heading
            # alone: prefer cuts that fill half the budget, at any level, first.
            i = bisect_left(starts, p)
            j = bisect_right(cum, cum[i] + half) - 2
            after = ends[max(i, j)]
            plans = cut_rule(p)
            return [*((levels, max(a, after)) for levels, a in plans), *plans]

        space = TokenSpace(text, starts, ends, cum, self.size, self.overlap)
        out: list[tuple[int, int]] = []
        for s, e in spans(text, space, 0, at_least_half_full, overlap_rule):
            out += self._fit(text[s:e], offset + s, refits - 1)
        return out
