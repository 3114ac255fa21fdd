"""Splitting with the budget counted in tokens of any tokenizer."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Protocol

from vecalchemy.chunking._split import (
    DEFAULT_SEPARATORS,
    WORD_SPLIT,
    CutRule,
    OverlapRule,
    SplitMany,
    TokenSpace,
    check_budget,
    check_text,
    make_chunks,
    separator_rules,
    spans,
)
from vecalchemy.chunking.base import Chunk
from vecalchemy.errors import InvalidSplitter

__all__ = ["TokenSpans", "TokenSplitter", "Tokenizer"]

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
        tok = self.tokenizer
        spans_of: Callable[[str], Any] | None
        if tok is None:
            spans_of = None  # the built-in tokens take a faster path in split()
        elif callable(getattr(tok, "encode", None)):

            def spans_of(text: str) -> Any:
                encoding = tok.encode(text)  # type: ignore[union-attr]
                offsets = getattr(encoding, "offsets", None)
                if offsets is None:
                    raise InvalidSplitter(
                        f"{type(tok).__name__}.encode() returned no .offsets; pass a "
                        "tokenizers.Tokenizer, or a callable returning (start, end) spans"
                    )
                return offsets

        elif callable(tok):
            spans_of = tok
        else:
            raise InvalidSplitter(
                "tokenizer must be None, a callable returning (start, end) token spans, "
                f"or an object with encode(text).offsets, got {tok!r}"
            )
        object.__setattr__(self, "_spans_of", spans_of)

    def split(self, text: str) -> list[Chunk]:
        """The chunks of ``text``; see the class for how it is cut.

        Example::

            >>> [c.text for c in TokenSplitter(size=2, overlap=0).split("a b c")]
            ['a b', 'c']
        """
        text = check_text(text)
        assert self.overlap is not None
        cum: Sequence[int]
        if self._spans_of is None:
            starts, ends = _word_tokens(text)
            cum = range(len(starts) + 1)
        else:
            starts, ends, cum = _units(text, self._spans_of(text))
        if not starts:
            return []
        space = TokenSpace(text, starts, ends, cum, self.size, self.overlap)
        return make_chunks(text, spans(text, space, 0, *self._rules))
