"""Tests for vecalchemy.chunking: offsets, budgets, overlap, coverage, Markdown structure."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import FrozenInstanceError
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vecalchemy.chunking import (
    CharacterSplitter,
    Chunk,
    MarkdownSplitter,
    Splitter,
    TokenLimitSplitter,
    TokenSplitter,
    WholeTextSplitter,
    get_splitter,
)
from vecalchemy.errors import InvalidSplitter, VecalchemyError

PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_WORD_TOKEN = re.compile(r"\w+|[^\w\s]")

# --- strategies ------------------------------------------------------------------------

_FRAGMENTS = [
    "word",
    "Hello",
    "naïve",
    "日本語",
    "🎉",
    "👩‍👩‍👧",
    "e\u0301",  # e + combining accent
    "x" * 40,  # a long word
    "a.b",
    ".",
    ". ",
    ",",
    "!",
    " ",
    "   ",
    "\t",
    "\n",
    "\n\n",
    "\r\n",
    "\r\n\r\n",
    "\u00a0",
    "\u2028",
    "\x0c",
    "# ",
    "## ",
    "```",
    "```\n",
    "~~~\n",
    "- ",
    "1. ",
    "===\n",
    "---\n",
]

texts = st.one_of(
    st.text(max_size=400),
    st.lists(st.sampled_from(_FRAGMENTS), max_size=150).map("".join),
    st.text(alphabet=" \t\n\r\u00a0\u2028\u3000", max_size=40),  # whitespace only
    st.text(alphabet="ab", min_size=1, max_size=300),  # one long word
    st.just(""),
)


@st.composite
def budgets(draw: st.DrawFn, max_size: int = 200) -> tuple[int, int]:
    size = draw(st.integers(1, max_size))
    overlap = draw(st.integers(0, size - 1))
    return size, overlap


# --- checks ---------------------------------------------------------------------------


def check_chunks(
    text: str,
    chunks: Sequence[Chunk],
    size: int,
    overlap: int,
    measure: Callable[[int, int], int] = lambda s, e: e - s,
) -> None:
    """Every property a splitter promises, with the budget counted by ``measure``."""
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.text, "empty chunk"
        assert c.text.strip() == c.text, f"untrimmed chunk {c.text!r}"
        assert measure(c.start, c.end) <= size, f"chunk over budget: {c.text!r}"
    for a, b in pairwise(chunks):
        assert a.start < b.start
        assert a.end < b.end
        if b.start < a.end:
            assert measure(b.start, a.end) <= overlap, f"overlap too long: {a!r} {b!r}"
    # Nothing lost: only whitespace lies outside every chunk.
    covered_to = 0
    for c in chunks:
        assert not text[covered_to : c.start].strip(), "text lost before a chunk"
        covered_to = max(covered_to, c.end)
    assert not text[covered_to:].strip(), "text lost at the end"


def word_tokens(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _WORD_TOKEN.finditer(text)]


def token_measure(spans: Sequence[tuple[int, int]]) -> Callable[[int, int], int]:
    """Tokens of ``spans`` that lie inside [s, e)."""
    return lambda s, e: sum(1 for a, b in spans if s <= a and b <= e and a < b)


# --- Chunk and the protocol --------------------------------------------------------------


def test_chunk_is_frozen_and_checks_its_offsets() -> None:
    """A Chunk cannot be changed, and its offsets must match its text's length."""
    chunk = Chunk("abc", 2, 5, 0)
    with pytest.raises(FrozenInstanceError):
        chunk.start = 3  # type: ignore[misc]
    assert chunk.heading is None
    with pytest.raises(InvalidSplitter, match="end - start must equal len"):
        Chunk("abc", 2, 4, 0)
    with pytest.raises(InvalidSplitter, match="index"):
        Chunk("abc", 2, 5, -1)


@pytest.mark.parametrize(
    "splitter",
    [CharacterSplitter(), TokenSplitter(), MarkdownSplitter(), WholeTextSplitter()],
    ids=lambda s: type(s).__name__,
)
def test_every_splitter_is_a_splitter(splitter: Splitter) -> None:
    """Each splitter satisfies the protocol and split_many splits each text alone."""
    assert isinstance(splitter, Splitter)
    docs = ["first doc", "", "second\n\ndoc"]
    assert splitter.split_many(docs) == [splitter.split(d) for d in docs]
    assert splitter.split_many(iter(docs)) == splitter.split_many(docs)
    assert splitter.split("") == []
    assert splitter.split(" \n\t ") == []
    with pytest.raises(InvalidSplitter, match="takes a str"):
        splitter.split(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidSplitter, match="not one str"):
        splitter.split_many("a str")


# --- properties ------------------------------------------------------------------------------


@PROPERTY
@given(text=texts, budget=budgets())
def test_character_splitter_properties(text: str, budget: tuple[int, int]) -> None:
    """Offsets, the size budget, order, coverage and overlap hold for any text."""
    size, overlap = budget
    check_chunks(text, CharacterSplitter(size, overlap).split(text), size, overlap)


@PROPERTY
@given(
    text=texts,
    budget=budgets(60),
    separators=st.lists(
        st.sampled_from(["\n\n", "\n", ". ", " ", ",", "ab", "🎉", ""]), max_size=4
    ),
)
def test_character_splitter_properties_with_any_separators(
    text: str, budget: tuple[int, int], separators: list[str]
) -> None:
    """The guarantees hold for any separators, even without the final empty one."""
    size, overlap = budget
    splitter = CharacterSplitter(size, overlap, separators=tuple(separators))
    check_chunks(text, splitter.split(text), size, overlap)


@PROPERTY
@given(text=texts, budget=budgets(60))
def test_token_splitter_properties(text: str, budget: tuple[int, int]) -> None:
    """With the built-in tokenizer, chunks are whole-token spans within the token budget."""
    size, overlap = budget
    chunks = TokenSplitter(size, overlap).split(text)
    spans = word_tokens(text)
    check_chunks(text, chunks, size, overlap, token_measure(spans))
    starts = {a for a, _ in spans}
    ends = {b for _, b in spans}
    for c in chunks:
        assert c.start in starts
        assert c.end in ends


def _char_tokens(text: str) -> list[tuple[int, int]]:
    return [(i, i + 1) for i in range(len(text))]  # whitespace characters are tokens too


def _subword_tokens(text: str) -> list[tuple[int, int]]:
    """Words cut into pieces of three characters, in reverse order (any order is allowed)."""
    out: list[tuple[int, int]] = []
    for m in re.finditer(r"\S+", text):
        out.extend((i, min(i + 3, m.end())) for i in range(m.start(), m.end(), 3))
    return out[::-1]


@PROPERTY
@given(text=texts, budget=budgets(60), tokenizer=st.sampled_from([_char_tokens, _subword_tokens]))
def test_token_splitter_properties_with_a_callable_tokenizer(
    text: str, budget: tuple[int, int], tokenizer: Callable[[str], list[tuple[int, int]]]
) -> None:
    """A callable tokenizer's tokens are counted, whitespace tokens included."""
    size, overlap = budget
    chunks = TokenSplitter(size, overlap, tokenizer=tokenizer).split(text)
    check_chunks(text, chunks, size, overlap, token_measure(tokenizer(text)))


@PROPERTY
@given(text=texts, budget=budgets())
def test_markdown_splitter_properties(text: str, budget: tuple[int, int]) -> None:
    """Offsets, the size budget, order, coverage and overlap hold for any text."""
    size, overlap = budget
    check_chunks(text, MarkdownSplitter(size, overlap).split(text), size, overlap)


@PROPERTY
@given(text=texts)
def test_whole_text_splitter_properties(text: str) -> None:
    """The whole text is one trimmed chunk, or none when it is blank."""
    chunks = WholeTextSplitter().split(text)
    check_chunks(text, chunks, len(text), 0)
    assert len(chunks) == (1 if text.strip() else 0)


# Markdown documents built from known blocks, to check structure as well.

_words = st.lists(
    st.sampled_from(["alpha", "beta", "Γάμμα", "日本", "🎉", "end.", "comma,", "x" * 30]),
    min_size=1,
    max_size=25,
)
_title = st.lists(
    st.sampled_from(["Install", "Linux", "Usage", "API", "été"]), min_size=1, max_size=3
)
_code_line = st.sampled_from(
    ["x = 1", "# comment, not a heading", "", "    indented()", "- not an item", "y" * 70, "## no"]
)


@st.composite
def markdown_docs(draw: st.DrawFn) -> tuple[str, list[tuple[int, int]], list[tuple[int, str]]]:
    """A Markdown document, its code blocks' and tables' spans, and its headings'
    (start, path)."""
    parts: list[str] = []
    code: list[tuple[int, int]] = []
    headings: list[tuple[int, str]] = []
    stack: list[tuple[int, str]] = []
    pos = 0
    n = draw(st.integers(1, 12))
    for i in range(n):
        if i:
            sep = draw(st.sampled_from(["\n\n", "\n\n\n", "\r\n\r\n"]))
            parts.append(sep)
            pos += len(sep)
        kind = draw(st.sampled_from(["heading", "para", "para", "list", "code", "table"]))
        if kind == "heading":
            level = draw(st.integers(1, 4))
            title = " ".join(draw(_title))
            block = "#" * level + " " + title
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
            headings.append((pos, " > ".join(t for _, t in stack)))
            # Every heading gets a paragraph, so that sections are never empty.
            block += "\n\n" + " ".join(draw(_words))
        elif kind == "para":
            block = draw(st.sampled_from([" ", "\n"])).join(draw(_words))
        elif kind == "list":
            items = draw(st.lists(_words, min_size=1, max_size=5))
            block = "\n".join("- " + " ".join(item) for item in items)
        elif kind == "table":
            rows = draw(st.lists(_words, min_size=1, max_size=6))
            block = "| a | b |\n|---|---|\n" + "\n".join(f"| {' '.join(r)} |" for r in rows)
            code.append((pos, pos + len(block)))
        else:
            fence = draw(st.sampled_from(["```", "~~~", "```python"]))
            lines = draw(st.lists(_code_line, max_size=12))
            block = fence + "\n" + "\n".join(lines) + "\n" + fence[:3]
            code.append((pos, pos + len(block)))
        parts.append(block)
        pos += len(block)
    return "".join(parts), code, headings


@PROPERTY
@given(doc=markdown_docs(), budget=budgets(400))
def test_markdown_structure(
    doc: tuple[str, list[tuple[int, int]], list[tuple[int, str]]], budget: tuple[int, int]
) -> None:
    """Code blocks and tables that fit are never split, chunks never span a heading, and
    each chunk carries the heading path above it."""
    text, code, headings = doc
    size, overlap = budget
    chunks = MarkdownSplitter(size, overlap).split(text)
    check_chunks(text, chunks, size, overlap)
    for start, end in code:
        for c in chunks:
            if end - start <= size:
                assert not start < c.start < end, "a chunk starts inside a code block"
                assert not start < c.end < end, "a chunk ends inside a code block"
        if end - start <= size:
            assert any(c.start <= start and end <= c.end for c in chunks)
    for c in chunks:
        assert not any(c.start < h < c.end for h, _ in headings), "a chunk spans a heading"
        above = [path for h, path in headings if h <= c.start]
        assert c.heading == (above[-1] if above else None)


# --- examples: where the character splitter cuts ----------------------------------------------


def test_paragraph_breaks_are_preferred_over_sentences() -> None:
    """Chunks end at paragraph breaks when whole paragraphs fit, not mid-paragraph."""
    paras = [
        "The first paragraph. It has two sentences.",
        "The second paragraph is here. Also two sentences.",
        "A third paragraph follows. It ends the text.",
    ]
    doc = "\n\n".join(paras)
    chunks = CharacterSplitter(size=100, overlap=0).split(doc)
    assert [c.text for c in chunks] == ["\n\n".join(paras[:2]), paras[2]]


def test_sentences_are_preferred_over_words() -> None:
    """Without paragraph or line breaks, chunks end after a full stop."""
    doc = "One two three four. Five six seven eight. Nine ten eleven twelve."
    chunks = CharacterSplitter(size=45, overlap=0).split(doc)
    assert [c.text for c in chunks] == [
        "One two three four. Five six seven eight.",
        "Nine ten eleven twelve.",
    ]


def test_words_then_characters_as_a_last_resort() -> None:
    """Long runs without separators are cut at spaces, then anywhere."""
    doc = "aaaa bbbb cccc " + "x" * 12
    chunks = CharacterSplitter(size=10, overlap=0).split(doc)
    assert [c.text for c in chunks] == ["aaaa bbbb", "cccc", "xxxxxxxxxx", "xx"]


def test_crlf_paragraphs_are_paragraphs() -> None:
    """Windows line endings count as paragraph and line breaks, with offsets unchanged."""
    doc = "First para one.\r\nStill first.\r\n\r\nSecond para here."
    chunks = CharacterSplitter(size=35, overlap=0).split(doc)
    assert [c.text for c in chunks] == ["First para one.\r\nStill first.", "Second para here."]
    assert [doc[c.start : c.end] for c in chunks] == [c.text for c in chunks]


def test_overlap_is_present_and_starts_on_a_word() -> None:
    """On long text consecutive chunks share text, beginning at a separator."""
    words = [f"w{i}" for i in range(400)]
    doc = " ".join(words)
    chunks = CharacterSplitter(size=100, overlap=30).split(doc)
    assert len(chunks) > 5
    for a, b in pairwise(chunks):
        shared = a.end - b.start
        assert 0 < shared <= 30
        assert doc[b.start - 1] == " "  # the overlap starts at a word
        assert a.text.endswith(doc[b.start : a.end])
    check_chunks(doc, chunks, 100, 30)


def test_overlap_prefers_whole_sentences() -> None:
    """The overlap starts at the coarsest boundary inside it: here a sentence."""
    doc = "Alpha beta gamma delta. Short one. Epsilon zeta eta theta iota kappa lambda mu."
    chunks = CharacterSplitter(size=40, overlap=15).split(doc)
    assert chunks[0].text == "Alpha beta gamma delta. Short one."
    assert chunks[1].text.startswith("Short one. Epsilon")


def test_no_overlap_when_zero() -> None:
    """overlap=0 gives disjoint chunks."""
    doc = " ".join(["word"] * 200)
    chunks = CharacterSplitter(size=50, overlap=0).split(doc)
    assert all(a.end < b.start for a, b in pairwise(chunks))


def test_whitespace_is_trimmed_with_offsets_adjusted() -> None:
    """Leading and trailing whitespace is left out of chunks."""
    doc = "  \n  Hello there.  \n\n\t General Kenobi.  \n"
    chunks = CharacterSplitter(size=20, overlap=0).split(doc)
    assert [(c.start, c.text) for c in chunks] == [(5, "Hello there."), (23, "General Kenobi.")]


def test_emoji_and_combining_characters_keep_offsets() -> None:
    """Offsets count Python characters, so multi-codepoint text maps back exactly."""
    doc = "👩‍👩‍👧 family. e\u0301te\u0301 " * 20
    for splitter in (CharacterSplitter(30, 5), TokenSplitter(7, 2), MarkdownSplitter(30, 5)):
        chunks = splitter.split(doc)
        assert len(chunks) > 3
        assert all(doc[c.start : c.end] == c.text for c in chunks)


# --- examples: tokens ------------------------------------------------------------------------


def test_token_budget_counts_words_and_punctuation() -> None:
    """The built-in tokenizer counts words and punctuation marks."""
    doc = "Hello, world! " * 10  # 4 tokens each
    chunks = TokenSplitter(size=8, overlap=0).split(doc)
    assert [len(_WORD_TOKEN.findall(c.text)) for c in chunks] == [8] * 5
    assert chunks[0].text == "Hello, world! Hello, world!"


def test_token_overlap_counts_tokens() -> None:
    """Consecutive chunks share at most ``overlap`` tokens, and do share some."""
    doc = " ".join(f"t{i}" for i in range(100))
    chunks = TokenSplitter(size=10, overlap=3).split(doc)
    for a, b in pairwise(chunks):
        assert len(doc[b.start : a.end].split()) == 3
    check_chunks(doc, chunks, 10, 3, token_measure(word_tokens(doc)))


class _FakeEncoding:
    def __init__(self, offsets: list[tuple[int, int]]) -> None:
        self.offsets = offsets


class _FakeHFTokenizer:
    """Like tokenizers.Tokenizer: encode(text).offsets, with special tokens at (0, 0)."""

    def encode(self, text: str) -> _FakeEncoding:
        spans = [m.span() for m in re.finditer(r"\S{1,2}", text)]
        return _FakeEncoding([(0, 0), *spans, (0, 0)])


def test_tokenizer_with_encode_offsets() -> None:
    """An object with encode(text).offsets is used; special tokens are not counted."""
    doc = "abcd efgh ijkl mnop"  # 8 tokens of 2 characters
    chunks = TokenSplitter(size=4, overlap=0, tokenizer=_FakeHFTokenizer()).split(doc)
    assert [c.text for c in chunks] == ["abcd efgh", "ijkl mnop"]


def test_real_huggingface_tokenizer() -> None:
    """A tokenizers.Tokenizer's offsets decide the token budget."""
    tokenizers = pytest.importorskip("tokenizers")
    corpus = ["the quick brown fox jumps over the lazy dog", "pack my box with five dozen jugs"]
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=60, special_tokens=["[UNK]"])
    tok.train_from_iterator(corpus, trainer)
    doc = " ".join(corpus * 5) + " zebra 🎉"
    spans = [s for s in tok.encode(doc).offsets if s[0] < s[1]]
    assert len(spans) > len(doc.split())  # words are cut into several tokens
    chunks = TokenSplitter(size=12, overlap=3, tokenizer=tok).split(doc)
    check_chunks(doc, chunks, 12, 3, token_measure(spans))


def test_bad_tokenizers_are_reported() -> None:
    """A tokenizer of the wrong kind, or returning bad spans, gives a clear error."""
    with pytest.raises(InvalidSplitter, match="tokenizer must be"):
        TokenSplitter(tokenizer=42)  # type: ignore[arg-type]
    with pytest.raises(InvalidSplitter, match="outside a text"):
        TokenSplitter(tokenizer=lambda t: [(0, 99)]).split("short")
    with pytest.raises(InvalidSplitter, match="character offsets"):
        TokenSplitter(tokenizer=lambda t: ["ab"]).split("ab")  # type: ignore[list-item]
    with pytest.raises(InvalidSplitter, match="character offsets"):
        TokenSplitter(tokenizer=lambda t: [(0.5, 1)]).split("ab")  # type: ignore[list-item]

    class NoOffsets:
        def encode(self, text: str) -> list[int]:
            return [1, 2, 3]

    with pytest.raises(InvalidSplitter, match=r"no \.offsets"):
        TokenSplitter(tokenizer=NoOffsets()).split("abc")


def test_tokens_sharing_characters_stay_together() -> None:
    """Tokens with overlapping spans (bytes of one emoji) are never split apart."""
    doc = "a 🎉 b"

    def tokenizer(text: str) -> list[tuple[int, int]]:
        return [(0, 1), (2, 3), (2, 3), (2, 3), (4, 5)]

    chunks = TokenSplitter(size=3, overlap=0, tokenizer=tokenizer).split(doc)
    assert [c.text for c in chunks] == ["a", "🎉", "b"]


# --- examples: Markdown ----------------------------------------------------------------------

_MD = """\
Intro text before any heading.

# Install

Use pip.

## Linux

```sh
# this is a comment, not a heading
apt install thing
```

- item one
- item two

## macOS

Brew works.

Setext title
============

Under a setext heading.

Sub title
---------
Under a setext subheading.

# Usage
Run it.
"""


def test_markdown_heading_paths() -> None:
    """Each chunk records the ATX and setext headings above it."""
    chunks = MarkdownSplitter(size=80, overlap=0).split(_MD)
    got = [(c.heading, c.text.splitlines()[0]) for c in chunks]
    assert got == [
        (None, "Intro text before any heading."),
        ("Install", "# Install"),
        ("Install > Linux", "## Linux"),  # the code block's "# ..." line is not a heading
        ("Install > Linux", "- item one"),
        ("Install > macOS", "## macOS"),
        ("Setext title", "Setext title"),
        ("Setext title > Sub title", "Sub title"),
        ("Usage", "# Usage"),
    ]
    assert "apt install thing\n```" in chunks[2].text
    check_chunks(_MD, chunks, 80, 0)


def test_markdown_keeps_code_blocks_whole() -> None:
    """A fenced code block that fits is never split, even when its neighbours are."""
    code = "```python\n" + "\n".join(f"x{i} = {i}" for i in range(20)) + "\n```"
    doc = "Some prose before. " * 8 + "\n\n" + code + "\n\n" + "Prose after. " * 8
    assert len(code) < 200
    chunks = MarkdownSplitter(size=200, overlap=50).split(doc)
    assert code in [c.text for c in chunks]
    check_chunks(doc, chunks, 200, 50)


def test_markdown_splits_oversize_code_blocks_at_lines() -> None:
    """A code block longer than size falls back to line splitting inside it."""
    lines = [f"value_{i} = compute({i})" for i in range(40)]
    code = "~~~\n" + "\n".join(lines) + "\n~~~"
    chunks = MarkdownSplitter(size=120, overlap=0).split(code)
    assert len(chunks) > 5
    for c in chunks:
        assert c.end == len(code) or code[c.end] == "\n", "a chunk ends mid-line"
    check_chunks(code, chunks, 120, 0)


def test_markdown_keeps_lists_and_paragraphs_together() -> None:
    """List items and paragraphs stay whole; a list that fits stays in one chunk."""
    items = "\n".join(f"- item number {i}" for i in range(5))
    para = "A paragraph of text that is long enough to matter here."
    doc = f"{para}\n\n{items}\n\n{para}"
    chunks = MarkdownSplitter(size=100, overlap=0).split(doc)
    assert [c.text for c in chunks] == [para, items, para]
    many = "\n".join(f"- item number {i}" for i in range(30))
    chunks = MarkdownSplitter(size=100, overlap=0).split(many)
    assert all(re.fullmatch(r"(- item number \d+\n?)+", c.text) for c in chunks)


def test_markdown_heading_followed_by_subheading_stays_with_it() -> None:
    """A heading with nothing under it but a deeper heading joins that section."""
    doc = "# Guide\n\n## Start\n\nDo this first."
    chunks = MarkdownSplitter(size=100).split(doc)
    assert [(c.heading, c.text) for c in chunks] == [("Guide > Start", doc)]


def test_markdown_overlap_repeats_short_blocks() -> None:
    """Overlap within a section repeats whole short blocks where it can."""
    paras = [f"Paragraph {i} has some words in it." for i in range(10)]
    doc = "# T\n\n" + "\n\n".join(paras)
    chunks = MarkdownSplitter(size=120, overlap=40).split(doc)
    assert len(chunks) > 2
    for a, b in pairwise(chunks):
        assert b.start < a.end
        assert b.text.startswith("Paragraph")
    check_chunks(doc, chunks, 120, 40)


def test_markdown_oversize_paragraph_falls_back_to_sentences() -> None:
    """A paragraph longer than size is split like CharacterSplitter would."""
    para = " ".join(f"Sentence number {i} is here." for i in range(20))
    chunks = MarkdownSplitter(size=100, overlap=0).split(para)
    assert chunks == CharacterSplitter(100, 0).split(para)
    assert all(c.text.endswith(".") for c in chunks)


def test_markdown_heading_is_not_left_alone_before_an_oversize_block() -> None:
    """When the block after a heading must be split anyway, its start joins the heading."""
    para = " ".join(f"Sentence {i} goes here." for i in range(30))
    doc = "## Long part\n\n" + para
    chunks = MarkdownSplitter(size=200, overlap=0).split(doc)
    assert chunks[0].text.startswith("## Long part\n\nSentence 0 goes here.")
    assert chunks[0].text.endswith(".")
    check_chunks(doc, chunks, 200, 0)
    # A block that fits by itself is not split to fill the heading's chunk.
    fits = "Short. " * 26
    doc = "## Heading\n\n" + fits.strip()
    chunks = MarkdownSplitter(size=190, overlap=0).split(doc)
    assert [c.text for c in chunks] == ["## Heading", fits.strip()]


def test_markdown_prefers_sentence_ends_in_wrapped_paragraphs() -> None:
    """An oversize hard-wrapped paragraph is cut after a sentence, not at a line end."""
    para = (
        "The first sentence runs over\nthe end of its line. The second one\n"
        "does the same and then some more. A third\nsentence closes it off here."
    )
    chunks = MarkdownSplitter(size=90, overlap=0).split(para)
    assert all(c.text.endswith(".") for c in chunks)
    check_chunks(para, chunks, 90, 0)


def test_markdown_tables_are_kept_whole() -> None:
    """A table that fits stays in one chunk; an oversize one is split between rows."""
    table = "| name | value |\n|------|-------|\n" + "\n".join(f"| k{i} | v{i} |" for i in range(5))
    doc = "Intro paragraph here.\n\n" + table + "\n\nOutro paragraph."
    chunks = MarkdownSplitter(size=len(table) + 5, overlap=10).split(doc)
    assert table in [c.text for c in chunks]
    big = "| name | value |\n" + "\n".join(f"| key{i} | value{i} |" for i in range(40))
    chunks = MarkdownSplitter(size=100, overlap=20).split(big)
    assert all(c.text.startswith("|") and c.text.endswith("|") for c in chunks)
    check_chunks(big, chunks, 100, 20)


def test_markdown_overlap_never_enters_a_whole_code_block() -> None:
    """After a code block kept whole, the next chunk does not repeat its tail."""
    code = "```\n" + "\n".join(f"line {i}" for i in range(8)) + "\n```"
    doc = code + "\n\n" + "A paragraph after the code block, long enough. " * 3
    chunks = MarkdownSplitter(size=len(code) + 10, overlap=40).split(doc)
    assert chunks[0].text == code
    assert chunks[1].start > chunks[0].end
    # An oversize code block's parts overlap each other, but not the text after it.
    big = "```\n" + "\n".join(f"line {i}" for i in range(40)) + "\n```"
    doc = big + "\n\n" + "A paragraph after the code block, long enough. " * 3
    chunks = MarkdownSplitter(size=100, overlap=40).split(doc)
    inside = [c for c in chunks if c.end <= len(big)]
    after = [c for c in chunks if c.end > len(big)]
    assert len(inside) > 3
    assert all(b.start < a.end for a, b in pairwise(inside))
    assert after[0].start > len(big)


def test_markdown_loose_lists_and_unclosed_fences() -> None:
    """Items separated by blank lines form one list; an unclosed fence runs to the end."""
    doc = "- one\n\n- two\n\n- three\n\nAfter the list, a paragraph that is long."
    chunks = MarkdownSplitter(size=30, overlap=0).split(doc)
    assert chunks[0].text == "- one\n\n- two\n\n- three"
    doc = "Text.\n\n```\n# not a heading\ncode()\n\nmore()\n"
    chunks = MarkdownSplitter(size=100, overlap=0).split(doc)
    assert [c.heading for c in chunks] == [None]
    assert chunks[0].text == doc.strip()


def test_token_splitter_separators() -> None:
    """TokenSplitter takes separators like CharacterSplitter."""
    doc = "a b c; d e f; g h i"
    chunks = TokenSplitter(size=8, overlap=0, separators=("; ", "")).split(doc)
    assert [c.text for c in chunks] == ["a b c; d e f;", "g h i"]


# --- arguments and specs -------------------------------------------------------------------


@pytest.mark.parametrize("cls", [CharacterSplitter, TokenSplitter, MarkdownSplitter])
def test_bad_budgets_are_rejected(cls: Callable[..., Any]) -> None:
    """size < 1, negative overlap and overlap >= size give clear errors."""
    with pytest.raises(InvalidSplitter, match="size must be 1 or more, got 0"):
        cls(0)
    with pytest.raises(InvalidSplitter, match="size must be 1 or more"):
        cls(-5)
    with pytest.raises(InvalidSplitter, match="overlap must be 0 or more"):
        cls(10, -1)
    with pytest.raises(InvalidSplitter, match="overlap must be smaller than size"):
        cls(10, 10)
    with pytest.raises(InvalidSplitter, match="size must be an integer"):
        cls("10")
    with pytest.raises(InvalidSplitter, match="overlap must be an integer"):
        cls(10, 2.5)
    with pytest.raises(VecalchemyError):
        cls(True)


def test_default_overlap_scales_with_small_sizes() -> None:
    """Without an overlap, the defaults apply, scaled down for sizes below the default."""
    assert CharacterSplitter().overlap == 200
    assert CharacterSplitter(5000).overlap == 200
    assert CharacterSplitter(100).overlap == 20
    assert CharacterSplitter(1).overlap == 0
    assert TokenSplitter().overlap == 32
    assert TokenSplitter(64).overlap == 8
    assert MarkdownSplitter().overlap == 100
    assert MarkdownSplitter(300).overlap == 30


def test_bad_separators_are_rejected() -> None:
    """Separators must be a sequence of strings."""
    with pytest.raises(InvalidSplitter, match="separators"):
        CharacterSplitter(separators="\n")  # type: ignore[arg-type]
    with pytest.raises(InvalidSplitter, match="separators"):
        CharacterSplitter(separators=("\n", 3))  # type: ignore[arg-type]
    assert CharacterSplitter(separators=["\n", ""]).separators == ("\n", "")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("chars:1000:200", CharacterSplitter(1000, 200)),
        ("chars", CharacterSplitter()),
        ("chars:500", CharacterSplitter(500)),
        (" Chars : 500 : 0 ", CharacterSplitter(500, 0)),
        ("tokens:256:32", TokenSplitter(256, 32)),
        ("tokens:128", TokenSplitter(128, 16)),
        ("markdown", MarkdownSplitter()),
        ("markdown:1000:100", MarkdownSplitter(1000, 100)),
        ("markdown::0", MarkdownSplitter(1000, 0)),
        ("none", WholeTextSplitter()),
        (None, MarkdownSplitter()),
    ],
)
def test_get_splitter_forms(spec: str | None, expected: Splitter) -> None:
    """Each spec form gives the splitter it names, with defaults for omitted parts."""
    assert get_splitter(spec) == expected


def test_get_splitter_passes_splitters_through() -> None:
    """A Splitter given to get_splitter is returned unchanged."""
    splitter = TokenSplitter(16, 2, tokenizer=_char_tokens)
    assert get_splitter(splitter) is splitter


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("words:100", "unknown splitter spec 'words:100'; use chars"),
        ("", "unknown splitter spec"),
        ("chars:1:2:3", "unknown splitter spec"),
        ("none:10", "unknown splitter spec"),
        ("chars:big", "'big' is not a whole number"),
        ("chars:0", "size must be 1 or more"),
        ("tokens:10:10", "overlap must be smaller than size"),
    ],
)
def test_get_splitter_errors(spec: str, message: str) -> None:
    """Bad specs give an error that names the valid forms."""
    with pytest.raises(InvalidSplitter, match=re.escape(message)) as info:
        get_splitter(spec)
    if "unknown" in message or "whole number" in message:
        assert "markdown[:SIZE[:OVERLAP]]" in str(info.value)


def test_get_splitter_rejects_other_objects() -> None:
    """Anything but a spec, a Splitter or None is refused."""
    with pytest.raises(InvalidSplitter, match="a splitter must be a spec string"):
        get_splitter(1000)  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(
    text=st.text(max_size=200),
    spec=st.sampled_from(["chars:50:10", "tokens:8:2", "markdown:60:10"]),
)
def test_get_splitter_results_split(text: str, spec: str) -> None:
    """Splitters from specs keep the offset invariant."""
    assume(text.strip())
    assert all(text[c.start : c.end] == c.text for c in get_splitter(spec).split(text))


# --- TokenLimitSplitter ------------------------------------------------------------------


@PROPERTY
@given(text=texts, size=st.integers(1, 40), inner=st.integers(1, 400))
def test_token_limit_splitter_bounds_every_chunk(text: str, size: int, inner: int) -> None:
    """Every chunk has at most `size` tokens (tokenized on its own), offsets hold, chunks
    are in order, and together they cover the text, whatever the inner splitter made."""
    for splitter in (MarkdownSplitter(size=inner), WholeTextSplitter()):
        fit = TokenLimitSplitter(splitter, size, tokenizer=word_tokens)
        chunks = fit.split(text)
        check_chunks(
            text, chunks, size, len(text), measure=lambda s, e: len(word_tokens(text[s:e]))
        )


def test_token_limit_splitter_keeps_chunks_that_fit() -> None:
    """Chunks within the budget are the inner splitter's, headings and offsets alike; only
    the one over it is split, at a sentence end rather than after its heading."""
    doc = (
        "# Short\n\nA few words here.\n\n"
        "# Long\n\nOne two three four five six. Seven eight nine ten eleven twelve.\n"
    )
    inner = MarkdownSplitter(size=1000)
    fit = TokenLimitSplitter(inner, 9, overlap=0, tokenizer=word_tokens)
    got = [(c.heading, c.text) for c in fit.split(doc)]
    assert got[0] == ("Short", "# Short\n\nA few words here.")
    assert inner.split(doc)[0].text == got[0][1]
    assert got[1:] == [
        ("Long", "# Long\n\nOne two three four five six."),
        ("Long", "Seven eight nine ten eleven twelve."),
    ]


def test_token_limit_splitter_refits_pieces_whose_tokens_change() -> None:
    """A tokenizer whose tokens depend on context (here: a text's first word is one token
    per character) is re-applied to each piece until every piece fits."""

    def first_word_by_chars(text: str) -> list[tuple[int, int]]:
        spans = word_tokens(text)
        if not spans:
            return spans
        a, b = spans[0]
        return [(i, i + 1) for i in range(a, b)] + spans[1:]

    text = "abc def ghi jkl mno pqr stu vwx"
    fit = TokenLimitSplitter(WholeTextSplitter(), 3, overlap=0, tokenizer=first_word_by_chars)
    chunks = fit.split(text)
    assert all(len(first_word_by_chars(c.text)) <= 3 for c in chunks)
    check_chunks(text, chunks, 3, 3, measure=lambda s, e: len(first_word_by_chars(text[s:e])))


def test_token_limit_splitter_drops_pieces_inside_others() -> None:
    """When the inner chunks overlap by more than the budget, pieces that lie inside
    another are dropped, and starts and ends still increase."""
    text = " ".join(f"w{i}" for i in range(40))
    inner = CharacterSplitter(size=60, overlap=40)
    chunks = TokenLimitSplitter(inner, 4, overlap=0, tokenizer=word_tokens).split(text)
    check_chunks(text, chunks, 4, len(text), measure=lambda s, e: len(word_tokens(text[s:e])))


def test_token_limit_splitter_rejects_a_non_splitter() -> None:
    """The wrapped splitter must be a Splitter; size and overlap are checked as usual."""
    with pytest.raises(InvalidSplitter, match="splitter must be a Splitter"):
        TokenLimitSplitter("markdown", 10)  # type: ignore[arg-type]
    with pytest.raises(InvalidSplitter, match="overlap must be smaller than size"):
        TokenLimitSplitter(WholeTextSplitter(), 4, 4)
