"""Markdown-aware splitting: sections under headings, code blocks kept whole."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from vecalchemy.chunking._split import (
    CODE_LEVELS,
    PARAGRAPH_LEVELS,
    CharSpace,
    Level,
    Positions,
    SplitMany,
    check_budget,
    check_text,
    spans,
)
from vecalchemy.chunking.base import Chunk

__all__ = ["MarkdownSplitter"]

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
class MarkdownSplitter(SplitMany):
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
        object.__setattr__(self, "overlap", check_budget(self.size, self.overlap, 1000, 100))

    def split(self, text: str) -> list[Chunk]:
        """The chunks of ``text``; see the class for how it is cut.

        Example::

            >>> doc = "Title\\n=====\\n\\nSome text.\\n"
            >>> [(c.heading, c.text) for c in MarkdownSplitter(size=100).split(doc)]
            [('Title', 'Title\\n=====\\n\\nSome text.')]
        """
        text = check_text(text)
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
        groups = Positions(group_starts, group_ends)
        item_blocks = [b for b in blocks if b.kind == _ITEM]
        items = Positions([b.start for b in item_blocks], [b.end for b in item_blocks])

        def levels_in(i: int) -> tuple[Level, ...]:
            # Inside a list or a block only when it cannot fit in a chunk by itself.
            b, g = blocks[i], group_of[i]
            levels: tuple[Level, ...] = (groups,)
            if b.kind == _ITEM and group_ends[g] - group_starts[g] > size:
                levels += (items,)
            if b.end - b.start > size:
                levels += CODE_LEVELS if b.kind == _CODE else PARAGRAPH_LEVELS
            return levels

        def cut_rule(p: int) -> list[tuple[Sequence[Level], int]]:
            i = bisect_right(starts, p) - 1
            plans: list[tuple[Sequence[Level], int]] = [(levels_in(i), 0)]
            if blocks[i].kind == _HEADING:
                # Rather than a chunk of headings alone, take the start of what follows
                # them if that has to be split anyway.
                j = i + 1
                while j < len(blocks) and blocks[j].kind == _HEADING:
                    j += 1
                if j < len(blocks) and group_ends[group_of[j]] - blocks[j].start > size:
                    plans.insert(0, (levels_in(j), blocks[j].start))
            return plans

        def overlap_rule(lo: int, e: int) -> tuple[Level, ...]:
            i = bisect_right(starts, lo) - 1
            if i < 0 or lo >= ends[i]:
                return (groups, items)
            b = blocks[i]
            if b.kind == _HEADING:
                return (groups,)
            if b.kind == _CODE:
                # Only between the parts of a code block too big to keep whole.
                return (groups, *CODE_LEVELS) if e < b.end and b.end - b.start > size else (groups,)
            return (groups, items, *PARAGRAPH_LEVELS)

        space = CharSpace(text, sec.start, hi, size, self.overlap)
        return spans(text, space, sec.start, cut_rule, overlap_rule)
