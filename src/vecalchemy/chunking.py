"""Splitting documents into chunks for embedding, with source offsets kept.

Every :class:`Chunk` knows where it came from: ``document[chunk.start:chunk.end] ==
chunk.text`` always holds, with character offsets into the original string (nothing
is normalised, so CRLF text, emoji and combining characters keep their positions). A
search hit can therefore point back into its document.

Four splitters share one :class:`Splitter` protocol (``split`` and ``split_many``):

* :class:`CharacterSplitter` -- recursive splitting in the style of LangChain's
  ``RecursiveCharacterTextSplitter``: paragraph breaks first, then lines, sentences,
  words, characters; at most ``size`` characters per chunk, ``overlap`` characters
  shared by consecutive chunks.
* :class:`TokenSplitter` -- the same, with the budget counted in tokens of any tokenizer
  (a callable returning character spans, a HuggingFace ``tokenizers.Tokenizer``, or a
  built-in words-and-punctuation tokenizer).
* :class:`MarkdownSplitter` -- sections under headings, fenced code blocks kept whole,
  paragraphs and list items kept together where they fit, the heading path recorded in
  :attr:`Chunk.heading`.
* :class:`WholeTextSplitter` -- one chunk per document (the spec ``"none"``).

:func:`get_splitter` turns a short spec (``"chars:1000:200"``, ``"tokens:256:32"``,
``"markdown"``, ``"none"``) into a splitter, for the CLI and configuration files.

Chunks never start or end with whitespace, never consist only of whitespace, and
together cover every non-whitespace character of the document.

Example::

    >>> from vecalchemy.chunking import CharacterSplitter
    >>> doc = "First paragraph.\\n\\nSecond paragraph, a little longer."
    >>> for c in CharacterSplitter(size=40, overlap=0).split(doc):
    ...     print(c.index, c.start, c.end, repr(c.text))
    0 0 16 'First paragraph.'
    1 18 52 'Second paragraph, a little longer.'
"""

from __future__ import annotations

import operator
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Protocol, runtime_checkable

from vecalchemy.errors import InvalidSplitter

__all__ = [
    "CharacterSplitter",
    "Chunk",
    "MarkdownSplitter",
    "Splitter",
    "TokenSplitter",
    "WholeTextSplitter",
    "get_splitter",
]

#: The separators :class:`CharacterSplitter` tries, coarsest first.
DEFAULT_SEPARATORS: tuple[str, ...] = ("\n\n", "\n", ". ", " ", "")
# Inside an oversize fenced code block: blank lines, lines, then words and characters.
_CODE_SEPARATORS: tuple[str, ...] = ("\n\n", "\n", " ", "")

_NONSPACE = re.compile(r"\S")
_WORD_SPLIT = re.compile(r"(\w+|[^\w\s])")


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


# --- validation ----------------------------------------------------------------------


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSplitter(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise InvalidSplitter(f"{name} must be {minimum} or more, got {value}")
    return value


def _check_budget(size: object, overlap: object, default_size: int, default_overlap: int) -> int:
    """Validate ``size`` and ``overlap``; return the overlap (resolving the default)."""
    size = _check_int("size", size, 1)
    if overlap is None:
        # The default overlap keeps its ratio to the default size for smaller sizes.
        return min(default_overlap, default_overlap * size // default_size)
    overlap = _check_int("overlap", overlap, 0)
    if overlap >= size:
        raise InvalidSplitter(
            f"overlap must be smaller than size, got size={size} and overlap={overlap}; "
            "lower the overlap or raise the size"
        )
    return overlap


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidSplitter(f"split() takes a str, got {type(text).__name__}")
    return text


# --- boundary levels: where a chunk may end, and where an overlap may begin -----------


class _Level:
    """One kind of boundary (a separator, or precomputed positions)."""

    __slots__ = ()
    #: How far past the size budget a separator match may reach (its own length).
    slack = 0

    def cuts(self, text: str, lo: int, hi: int) -> Iterator[int]:
        """Boundary positions in (lo, hi], last first (where a piece ends)."""
        raise NotImplementedError

    def first(self, text: str, lo: int, hi: int) -> int | None:
        """The first boundary position in [lo, hi) (where a piece begins), if any."""
        raise NotImplementedError


class _Literal(_Level):
    """A literal separator; the separator stays with the piece before it."""

    __slots__ = ("sep", "slack")

    def __init__(self, sep: str) -> None:
        self.sep = sep
        self.slack = len(sep)

    def cuts(self, text: str, lo: int, hi: int) -> Iterator[int]:
        sep, n = self.sep, len(self.sep)
        end = hi
        while True:
            p = text.rfind(sep, lo, end)
            if p < 0:
                return
            yield p + n
            end = p + n - 1

    def first(self, text: str, lo: int, hi: int) -> int | None:
        n = len(self.sep)
        p = text.find(self.sep, max(lo - n, 0), hi)
        if p < 0 or p + n >= hi:
            return None
        return p + n


class _Pattern(_Level):
    """A regular expression; pieces end where a match ends.

    ``slack`` is the longest match (plus what a lookahead needs to see).
    """

    __slots__ = ("pattern", "slack")

    def __init__(self, pattern: re.Pattern[str], slack: int) -> None:
        self.pattern = pattern
        self.slack = slack

    @classmethod
    def separator(cls, sep: str) -> _Pattern:
        """A separator containing line breaks: each ``\\n`` also matches ``\\r\\n``."""
        pattern = re.compile("\r?\n".join(re.escape(part) for part in sep.split("\n")))
        return cls(pattern, len(sep) + sep.count("\n"))

    def cuts(self, text: str, lo: int, hi: int) -> Iterator[int]:
        ends = [m.end() for m in self.pattern.finditer(text, lo, hi)]
        return reversed(ends)

    def first(self, text: str, lo: int, hi: int) -> int | None:
        pos = max(lo - self.slack, 0)
        while True:
            m = self.pattern.search(text, pos, hi)
            if m is None:
                return None
            if m.end() >= lo:
                return m.end() if m.end() < hi else None
            pos = m.start() + 1


class _Anywhere(_Level):
    """The empty separator: any position (a hard cut at the budget)."""

    __slots__ = ()

    def cuts(self, text: str, lo: int, hi: int) -> Iterator[int]:
        return iter((hi,) if hi > lo else ())

    def first(self, text: str, lo: int, hi: int) -> int | None:
        return lo if lo < hi else None


class _Positions(_Level):
    """Precomputed block boundaries: pieces end at ``ends`` and begin at ``starts``."""

    __slots__ = ("ends", "starts")

    def __init__(self, starts: list[int], ends: list[int]) -> None:
        self.starts = starts
        self.ends = ends

    def cuts(self, text: str, lo: int, hi: int) -> Iterator[int]:
        ends = self.ends
        i = bisect_right(ends, hi) - 1
        while i >= 0 and ends[i] > lo:
            yield ends[i]
            i -= 1

    def first(self, text: str, lo: int, hi: int) -> int | None:
        i = bisect_left(self.starts, lo)
        if i < len(self.starts) and self.starts[i] < hi:
            return self.starts[i]
        return None


_ANYWHERE = _Anywhere()


def _levels(separators: Sequence[str]) -> tuple[_Level, ...]:
    out: list[_Level] = []
    for sep in separators:
        if sep == "":
            out.append(_ANYWHERE)
            break  # nothing finer exists
        out.append(_Pattern.separator(sep) if "\n" in sep else _Literal(sep))
    return tuple(out)


# The end of a sentence: closing punctuation (and quotes or brackets) before whitespace,
# or a CJK full stop.
_SENTENCE = _Pattern(
    re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s)|[\u3002\uff01\uff1f]+"), 8
)
# Markdown prose is often hard-wrapped: a sentence end matters more than a line break.
_PARAGRAPH_LEVELS = (*_levels(("\n\n",)), _SENTENCE, *_levels(("\n", " ", "")))
_CODE_LEVELS = _levels(_CODE_SEPARATORS)


# --- the geometry of chunks: budget, valid starts and ends ----------------------------


class _Space:
    """Where chunks may start and end in a range of a text, and what they cost."""

    __slots__ = ("content_end", "overlap", "size", "text")

    text: str
    size: int
    overlap: int
    content_end: int

    def first_start(self, p: int) -> int | None:
        """The first valid chunk start at or after ``p``."""
        raise NotImplementedError

    def snap_end(self, c: int, s: int) -> int:
        """The last valid end at or before ``c`` of a chunk starting at ``s`` (``s`` if none)."""
        raise NotImplementedError

    def limit(self, s: int) -> int:
        """The furthest end a chunk starting at ``s`` may have within the budget."""
        raise NotImplementedError

    def overlap_floor(self, s: int, e: int) -> int:
        """The earliest start after ``s`` whose overlap with ``[s, e)`` fits the budget."""
        raise NotImplementedError


class _CharSpace(_Space):
    """Budget in characters; chunks start and end on non-whitespace characters."""

    __slots__ = ("hi",)

    def __init__(self, text: str, lo: int, hi: int, size: int, overlap: int) -> None:
        self.text, self.hi, self.size, self.overlap = text, hi, size, overlap
        self.content_end = lo + len(text[lo:hi].rstrip())

    def first_start(self, p: int) -> int | None:
        m = _NONSPACE.search(self.text, p, self.hi)
        return None if m is None else m.start()

    def snap_end(self, c: int, s: int) -> int:
        return s + len(self.text[s : min(c, self.hi)].rstrip())

    def limit(self, s: int) -> int:
        return s + self.size

    def overlap_floor(self, s: int, e: int) -> int:
        return max(e - self.overlap, s + 1)


class _TokenSpace(_Space):
    """Budget in tokens; chunks start and end on token boundaries.

    ``starts``/``ends`` are the spans of "units" (tokens, with tokens whose spans overlap
    merged) in order; ``cum[i]`` is the number of tokens in the units before unit ``i``.
    """

    __slots__ = ("cum", "ends", "starts")

    def __init__(
        self,
        text: str,
        starts: list[int],
        ends: list[int],
        cum: Sequence[int],
        size: int,
        overlap: int,
    ) -> None:
        self.text, self.size, self.overlap = text, size, overlap
        self.starts, self.ends, self.cum = starts, ends, cum
        self.content_end = ends[-1] if ends else 0

    def first_start(self, p: int) -> int | None:
        i = bisect_left(self.starts, p)
        return self.starts[i] if i < len(self.starts) else None

    def snap_end(self, c: int, s: int) -> int:
        i = bisect_right(self.ends, c) - 1
        return self.ends[i] if i >= 0 and self.ends[i] > s else s

    def limit(self, s: int) -> int:
        i = bisect_left(self.starts, s)
        j = bisect_right(self.cum, self.cum[i] + self.size) - 2
        # A single unit over the budget (tokens sharing characters) is still one chunk.
        return self.ends[max(i, j)]

    def overlap_floor(self, s: int, e: int) -> int:
        j = bisect_left(self.ends, e)
        p = bisect_left(self.cum, self.cum[j + 1] - self.overlap)
        p = max(p, bisect_left(self.starts, s) + 1)
        return self.starts[p] if p <= j else e


# --- the splitting loop shared by every splitter ----------------------------------------

#: How to cut a chunk whose new text begins at a position: levels to try, each with a
#: position the chunk must end after.
_CutRule = Callable[[int], Sequence[tuple[Sequence[_Level], int]]]
#: The levels at which an overlap may begin, given its earliest start and the chunk's end.
_OverlapRule = Callable[[int, int], Sequence[_Level]]


def _separator_rules(separators: object) -> tuple[tuple[str, ...], _CutRule, _OverlapRule]:
    """Validated separators, and the rules that cut and overlap at them."""
    if isinstance(separators, str) or not (
        isinstance(separators, Iterable) and all(isinstance(s, str) for s in separators)
    ):
        raise InvalidSplitter(f"separators must be a sequence of str, got {separators!r}")
    seps = tuple(separators)
    overlap_levels = _levels(seps)
    # A hard cut is always the last resort, so that no chunk exceeds the budget.
    plans = (
        ((*overlap_levels, _ANYWHERE) if _ANYWHERE not in overlap_levels else overlap_levels, 0),
    )
    return seps, (lambda _: plans), (lambda _lo, _e: overlap_levels)


def _find_cut(
    text: str, space: _Space, levels: Sequence[_Level], s: int, floor: int, limit: int
) -> int | None:
    """The end of a chunk starting at ``s``: at the last boundary of the coarsest level
    that ends the chunk after ``floor`` and within ``limit``."""
    for level in levels:
        for c in level.cuts(text, s, limit + level.slack):
            e = space.snap_end(c, s)
            if e > limit:
                continue
            if e <= floor:
                break  # earlier boundaries only end earlier
            return e
    return None


def _spans(
    text: str,
    space: _Space,
    lo: int,
    cut_rule: _CutRule,
    overlap_rule: _OverlapRule,
) -> list[tuple[int, int]]:
    """The (start, end) spans of the chunks of ``text`` from ``lo`` to the space's end."""
    out: list[tuple[int, int]] = []
    s = space.first_start(lo)
    if s is None:
        return out
    end = space.content_end
    floor = s  # a chunk must end after the previous one
    overlapping = False
    while True:
        limit = space.limit(s)
        if end <= limit:
            out.append((s, end))
            return out
        new = space.first_start(floor) if overlapping else s
        assert new is not None  # there is text after floor: end > limit
        e: int | None = None
        for levels, after in cut_rule(new):
            e = _find_cut(text, space, levels, s, max(floor, after), limit)
            if e is not None:
                break
        if e is None:
            if overlapping:  # the overlap leaves no room for a good cut: drop it
                s, overlapping = new, False
                continue
            e = space.snap_end(limit, s)  # cannot happen with a hard-cut level; be safe
        out.append((s, e))
        floor = e
        s, overlapping = _next_start(text, space, overlap_rule, s, e)


def _next_start(
    text: str, space: _Space, overlap_rule: _OverlapRule, s: int, e: int
) -> tuple[int, bool]:
    """Where the chunk after ``[s, e)`` starts, and whether it overlaps ``[s, e)``."""
    if space.overlap:
        lo = space.overlap_floor(s, e)
        if lo < e:
            for level in overlap_rule(lo, e):
                b = level.first(text, lo, e)
                if b is not None:
                    start = space.first_start(b)
                    if start is not None and start < e:
                        return start, True
    start = space.first_start(e)
    assert start is not None
    return start, False


def _chunks(text: str, spans: Iterable[tuple[int, int]], heading: str | None = None) -> list[Chunk]:
    return [Chunk(text[s:e], s, e, i, heading) for i, (s, e) in enumerate(spans)]


class _SplitMany:
    """``split_many`` for splitters that define ``split``."""

    __slots__ = ()

    def split(self, text: str) -> list[Chunk]:
        raise NotImplementedError

    def split_many(self, texts: Iterable[str]) -> list[list[Chunk]]:
        """The chunks of each text of ``texts``, in order.

        Example::

            >>> [len(cs) for cs in WholeTextSplitter().split_many(["a", " ", "b c"])]
            [1, 0, 1]
        """
        if isinstance(texts, str):
            raise InvalidSplitter("split_many() takes an iterable of str, not one str")
        return [self.split(t) for t in texts]


# --- the splitters ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CharacterSplitter(_SplitMany):
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
    _rules: tuple[_CutRule, _OverlapRule] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "overlap", _check_budget(self.size, self.overlap, 1000, 200))
        seps, cut_rule, overlap_rule = _separator_rules(self.separators)
        object.__setattr__(self, "separators", seps)
        object.__setattr__(self, "_rules", (cut_rule, overlap_rule))

    def split(self, text: str) -> list[Chunk]:
        """The chunks of ``text``; see the class for how it is cut.

        Example::

            >>> [c.text for c in CharacterSplitter(size=5, overlap=0).split("abcdefgh")]
            ['abcde', 'fgh']
        """
        text = _check_text(text)
        assert self.overlap is not None
        space = _CharSpace(text, 0, len(text), self.size, self.overlap)
        return _chunks(text, _spans(text, space, 0, *self._rules))


#: A tokenizer as :class:`TokenSplitter` accepts it directly: text -> token spans.
TokenSpans = Callable[[str], Sequence[tuple[int, int]]]


class _EncodesOffsets(Protocol):
    def encode(self, text: str, /) -> Any: ...


Tokenizer = TokenSpans | _EncodesOffsets


def _word_tokens(text: str) -> tuple[list[int], list[int]]:
    """Starts and ends of the built-in tokens (words and punctuation marks)."""
    # split() alternates gaps and tokens; summing lengths in C is twice as fast as
    # collecting match objects.
    offsets = list(accumulate(map(len, _WORD_SPLIT.split(text))))
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
class TokenSplitter(_SplitMany):
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
    _rules: tuple[_CutRule, _OverlapRule] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "overlap", _check_budget(self.size, self.overlap, 256, 32))
        seps, cut_rule, overlap_rule = _separator_rules(self.separators)
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
        text = _check_text(text)
        assert self.overlap is not None
        cum: Sequence[int]
        if self._spans_of is None:
            starts, ends = _word_tokens(text)
            cum = range(len(starts) + 1)
        else:
            starts, ends, cum = _units(text, self._spans_of(text))
        if not starts:
            return []
        space = _TokenSpace(text, starts, ends, cum, self.size, self.overlap)
        return _chunks(text, _spans(text, space, 0, *self._rules))


# --- Markdown -----------------------------------------------------------------------------

_FENCE = re.compile(r"( {0,3})(`{3,}|~{3,})(.*)")
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*))?")
_ATX_CLOSE = re.compile(r"(?:^|[ \t]+)#+$")
_SETEXT = re.compile(r" {0,3}(?:=+|-+)")
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)")
_FENCE_CLOSE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\S\n]*$", re.M)
_RULE = re.compile(r" {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})")
# A blank line, or a line starting with a character that may begin markup.
_MAYBE_MARKUP = re.compile(r"^[^\S\n]*(?:[#`~=*+_|0-9-]|$)", re.M)

_TEXT, _ITEM, _CODE, _HEADING = 0, 1, 2, 3


@dataclass(slots=True)
class _Block:
    start: int  # first non-whitespace character
    end: int  # after the last non-whitespace character
    kind: int
    level: int = 0  # heading level
    title: str = ""


@dataclass(slots=True)
class _Section:
    start: int
    level: int
    path: str | None
    blocks: list[_Block]


def _closing_fence(text: str, pos: int, fence: str) -> re.Match[str] | None:
    """The line that closes ``fence`` (same character, at least as long), if any."""
    while True:
        m = _FENCE_CLOSE.search(text, pos)
        if m is None or (m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence)):
            return m
        pos = m.end()


def _md_blocks(text: str) -> list[_Block]:
    """Headings, fenced code blocks, tables, list items and paragraphs, in order.

    Lines end at ``\\n`` (``\\r\\n`` included). Only blank lines and lines that may
    be markup are looked at one by one; runs of plain lines between them are taken
    whole, which keeps this fast on prose.
    """
    blocks: list[_Block] = []
    cur: _Block | None = None  # the open paragraph, table or list item
    n = len(text)
    pos = 0  # the start of the first line not yet read
    while pos < n:
        m = _MAYBE_MARKUP.search(text, pos)
        here = n if m is None else m.start()
        if here > pos:  # plain lines: they continue the open block or start a paragraph
            run = text[pos:here]
            content = run.rstrip()
            if content:
                if cur is None:
                    start = pos + len(run) - len(run.lstrip())
                    # A table (rows starting with "|") is kept whole or split at rows.
                    cur = _Block(start, pos + len(content), _CODE if text[start] == "|" else _TEXT)
                    blocks.append(cur)
                else:
                    cur.end = pos + len(content)
        if m is None:
            break
        line_end = text.find("\n", here)
        if line_end < 0:
            line_end = n
        pos = line_end + 1
        s = text[here:line_end].rstrip()
        body = s.lstrip()
        if not body:
            cur = None
            continue
        start = here + len(s) - len(body)
        end = here + len(s)
        fm = _FENCE.match(s)
        if fm and not (fm.group(2)[0] == "`" and "`" in fm.group(3)):
            cur = None
            close = _closing_fence(text, pos, fm.group(2))
            if close is None:  # an unclosed fence runs to the end of the document
                end = max(end, len(text.rstrip()))
                pos = n
            else:
                end = close.start() + len(close.group().rstrip())
                pos = close.end() + 1
            blocks.append(_Block(start, end, _CODE))
            continue
        am = _ATX.fullmatch(s)
        if am:
            cur = None
            title = _ATX_CLOSE.sub("", (am.group(2) or "").strip()).strip()
            blocks.append(_Block(start, end, _HEADING, len(am.group(1)), title))
            continue
        if cur is not None and cur.kind == _TEXT and _SETEXT.fullmatch(s):
            title = " ".join(x.strip() for x in text[cur.start : cur.end].splitlines())
            cur.kind, cur.end, cur.title = _HEADING, end, title
            cur.level = 1 if body[0] == "=" else 2
            cur = None
            continue
        if _RULE.fullmatch(s):
            cur = None
            blocks.append(_Block(start, end, _TEXT))
            continue
        if _LIST_ITEM.match(s):
            cur = _Block(start, end, _ITEM)
            blocks.append(cur)
            continue
        if cur is None:
            cur = _Block(start, end, _CODE if body[0] == "|" else _TEXT)
            blocks.append(cur)
        else:
            cur.end = end
    return blocks


def _md_sections(blocks: list[_Block]) -> list[_Section]:
    """Blocks grouped under their headings, with each section's heading path."""
    sections: list[_Section] = []
    current = _Section(0, 0, None, [])
    stack: list[tuple[int, str]] = []
    for block in blocks:
        if block.kind == _HEADING:
            if current.blocks:
                sections.append(current)
            while stack and stack[-1][0] >= block.level:
                stack.pop()
            stack.append((block.level, block.title))
            path = " > ".join(t for _, t in stack if t) or None
            current = _Section(block.start, block.level, path, [block])
        else:
            current.blocks.append(block)
    if current.blocks:
        sections.append(current)
    # A heading directly followed by a deeper one joins that section ("# A" + "## B").
    for i in range(len(sections) - 2, -1, -1):
        sec, nxt = sections[i], sections[i + 1]
        if len(sec.blocks) == 1 and sec.level and nxt.level > sec.level:
            nxt.start = sec.start
            nxt.blocks[:0] = sec.blocks
            del sections[i]
    return sections


@dataclass(frozen=True, slots=True)
class MarkdownSplitter(_SplitMany):
    """Markdown-aware splitting: sections, code blocks, paragraphs and list items.

    The document is first cut into sections at its headings (ATX ``#`` .. ``######``
    and setext ``===``/``---`` underlines; a heading directly followed by a deeper one
    stays with it); no chunk spans two sections. Within a section, chunks are runs of
    whole blocks -- paragraphs, lists, list items, tables, code blocks fenced with three
    or more backticks or tildes -- as many as fit in ``size`` characters, ending between
    paragraphs or lists before ending between list items. Only a block longer than
    ``size`` is split inside: a code block or table at blank lines, then lines; a
    paragraph at sentence ends, then lines, words, characters. A heading is not left
    alone in a chunk when what follows it has to be split anyway. Consecutive chunks of
    a section share up to ``overlap`` characters (short blocks or list items, or the
    end of a paragraph; never a part of a heading, nor of a code block kept whole). Each
    chunk's :attr:`~Chunk.heading` is the path of headings above it, such as
    ``"Install > Linux"`` (``None`` before the first heading). Plain text works too: its
    paragraphs are the blocks.

    ``overlap`` defaults to 100, or a tenth of ``size`` when ``size`` is below 1000.

    Example::

        >>> doc = "# Install\\n\\nRun pip.\\n\\n## Linux\\n\\n```sh\\napt install x\\n```\\n"
        >>> for c in MarkdownSplitter(size=40).split(doc):
        ...     print(repr(c.heading), repr(c.text))
        'Install' '# Install\\n\\nRun pip.'
        'Install > Linux' '## Linux\\n\\n```sh\\napt install x\\n```'
    """

    size: int = 1000
    overlap: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "overlap", _check_budget(self.size, self.overlap, 1000, 100))

    def split(self, text: str) -> list[Chunk]:
        """The chunks of ``text``; see the class for how it is cut.

        Example::

            >>> doc = "Title\\n=====\\n\\nSome text.\\n"
            >>> [(c.heading, c.text) for c in MarkdownSplitter(size=100).split(doc)]
            [('Title', 'Title\\n=====\\n\\nSome text.')]
        """
        text = _check_text(text)
        assert self.overlap is not None
        sections = _md_sections(_md_blocks(text))
        out: list[Chunk] = []
        for i, sec in enumerate(sections):
            hi = sections[i + 1].start if i + 1 < len(sections) else len(text)
            for s, e in self._section_spans(text, sec, hi):
                out.append(Chunk(text[s:e], s, e, len(out), sec.path))
        return out

    def _section_spans(self, text: str, sec: _Section, hi: int) -> list[tuple[int, int]]:
        assert self.overlap is not None
        size = self.size
        blocks = sec.blocks
        starts = [b.start for b in blocks]
        ends = [b.end for b in blocks]
        # Groups: a run of list items is one group (one list), any other block is alone.
        # Chunks end between groups where they can, between list items next.
        group_starts: list[int] = []
        group_ends: list[int] = []
        group_of: list[int] = []
        for i, b in enumerate(blocks):
            if b.kind == _ITEM and i and blocks[i - 1].kind == _ITEM:
                group_ends[-1] = b.end
            else:
                group_starts.append(b.start)
                group_ends.append(b.end)
            group_of.append(len(group_starts) - 1)
        groups = _Positions(group_starts, group_ends)
        item_blocks = [b for b in blocks if b.kind == _ITEM]
        items = _Positions([b.start for b in item_blocks], [b.end for b in item_blocks])

        def levels_in(i: int) -> tuple[_Level, ...]:
            # Inside a list or a block only when it cannot fit in a chunk by itself.
            b, g = blocks[i], group_of[i]
            levels: tuple[_Level, ...] = (groups,)
            if b.kind == _ITEM and group_ends[g] - group_starts[g] > size:
                levels += (items,)
            if b.end - b.start > size:
                levels += _CODE_LEVELS if b.kind == _CODE else _PARAGRAPH_LEVELS
            return levels

        def cut_rule(p: int) -> list[tuple[Sequence[_Level], int]]:
            i = bisect_right(starts, p) - 1
            plans: list[tuple[Sequence[_Level], int]] = [(levels_in(i), 0)]
            if blocks[i].kind == _HEADING:
                # Rather than a chunk of headings alone, take the start of what follows
                # them if that has to be split anyway.
                j = i + 1
                while j < len(blocks) and blocks[j].kind == _HEADING:
                    j += 1
                if j < len(blocks) and group_ends[group_of[j]] - blocks[j].start > size:
                    plans.insert(0, (levels_in(j), blocks[j].start))
            return plans

        def overlap_rule(lo: int, e: int) -> tuple[_Level, ...]:
            i = bisect_right(starts, lo) - 1
            if i < 0 or lo >= ends[i]:
                return (groups, items)
            b = blocks[i]
            if b.kind == _HEADING:
                return (groups,)
            if b.kind == _CODE:
                # Only between the parts of a code block too big to keep whole.
                return (
                    (groups, *_CODE_LEVELS) if e < b.end and b.end - b.start > size else (groups,)
                )
            return (groups, items, *_PARAGRAPH_LEVELS)

        space = _CharSpace(text, sec.start, hi, size, self.overlap)
        return _spans(text, space, sec.start, cut_rule, overlap_rule)


@dataclass(frozen=True, slots=True)
class WholeTextSplitter(_SplitMany):
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
        text = _check_text(text)
        m = _NONSPACE.search(text)
        if m is None:
            return []
        s, e = m.start(), len(text.rstrip())
        return [Chunk(text[s:e], s, e, 0)]


# --- specs ---------------------------------------------------------------------------------

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
