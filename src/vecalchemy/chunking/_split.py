"""The machinery every splitter shares: validation, boundary levels, budgets, the loop.

Private to :mod:`vecalchemy.chunking`."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence

from vecalchemy.chunking.base import Chunk
from vecalchemy.errors import InvalidSplitter

__all__ = [
    "CODE_LEVELS",
    "DEFAULT_SEPARATORS",
    "NONSPACE",
    "PARAGRAPH_LEVELS",
    "WORD_SPLIT",
    "CharSpace",
    "CutRule",
    "Level",
    "OverlapRule",
    "Positions",
    "SplitMany",
    "TokenSpace",
    "check_budget",
    "check_text",
    "make_chunks",
    "separator_rules",
    "spans",
]

#: The separators :class:`CharacterSplitter` tries, coarsest first.
DEFAULT_SEPARATORS: tuple[str, ...] = ("\n\n", "\n", ". ", " ", "")
# Inside an oversize fenced code block: blank lines, lines, then words and characters.
_CODE_SEPARATORS: tuple[str, ...] = ("\n\n", "\n", " ", "")

NONSPACE = re.compile(r"\S")
WORD_SPLIT = re.compile(r"(\w+|[^\w\s])")


# --- validation ----------------------------------------------------------------------


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSplitter(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise InvalidSplitter(f"{name} must be {minimum} or more, got {value}")
    return value


def check_budget(size: object, overlap: object, default_size: int, default_overlap: int) -> int:
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


def check_text(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidSplitter(f"split() takes a str, got {type(text).__name__}")
    return text


# --- boundary levels: where a chunk may end, and where an overlap may begin -----------


class Level:
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


class _Literal(Level):
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


class _Pattern(Level):
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


class _Anywhere(Level):
    """The empty separator: any position (a hard cut at the budget)."""

    __slots__ = ()

    def cuts(self, text: str, lo: int, hi: int) -> Iterator[int]:
        return iter((hi,) if hi > lo else ())

    def first(self, text: str, lo: int, hi: int) -> int | None:
        return lo if lo < hi else None


class Positions(Level):
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


def _levels(separators: Sequence[str]) -> tuple[Level, ...]:
    out: list[Level] = []
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
PARAGRAPH_LEVELS = (*_levels(("\n\n",)), _SENTENCE, *_levels(("\n", " ", "")))
CODE_LEVELS = _levels(_CODE_SEPARATORS)


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


class CharSpace(_Space):
    """Budget in characters; chunks start and end on non-whitespace characters."""

    __slots__ = ("hi",)

    def __init__(self, text: str, lo: int, hi: int, size: int, overlap: int) -> None:
        self.text, self.hi, self.size, self.overlap = text, hi, size, overlap
        self.content_end = lo + len(text[lo:hi].rstrip())

    def first_start(self, p: int) -> int | None:
        m = NONSPACE.search(self.text, p, self.hi)
        return None if m is None else m.start()

    def snap_end(self, c: int, s: int) -> int:
        return s + len(self.text[s : min(c, self.hi)].rstrip())

    def limit(self, s: int) -> int:
        return s + self.size

    def overlap_floor(self, s: int, e: int) -> int:
        return max(e - self.overlap, s + 1)


class TokenSpace(_Space):
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
CutRule = Callable[[int], Sequence[tuple[Sequence[Level], int]]]
#: The levels at which an overlap may begin, given its earliest start and the chunk's end.
OverlapRule = Callable[[int, int], Sequence[Level]]


def separator_rules(separators: object) -> tuple[tuple[str, ...], CutRule, OverlapRule]:
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
    text: str, space: _Space, levels: Sequence[Level], s: int, floor: int, limit: int
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


def spans(
    text: str,
    space: _Space,
    lo: int,
    cut_rule: CutRule,
    overlap_rule: OverlapRule,
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
    text: str, space: _Space, overlap_rule: OverlapRule, s: int, e: int
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


def make_chunks(
    text: str, spans: Iterable[tuple[int, int]], heading: str | None = None
) -> list[Chunk]:
    return [Chunk(text[s:e], s, e, i, heading) for i, (s, e) in enumerate(spans)]


class SplitMany:
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
