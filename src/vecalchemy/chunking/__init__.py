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

:class:`TokenLimitSplitter` wraps any of them and splits again every chunk over a token
budget: :class:`~vecalchemy.Collection` uses it to fit chunks to its embedder's window.

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

from vecalchemy.chunking.base import Chunk, Splitter
from vecalchemy.chunking.character import CharacterSplitter, WholeTextSplitter
from vecalchemy.chunking.markdown import MarkdownSplitter
from vecalchemy.chunking.spec import get_splitter
from vecalchemy.chunking.tokens import Tokenizer, TokenLimitSplitter, TokenSpans, TokenSplitter

__all__ = [
    "CharacterSplitter",
    "Chunk",
    "MarkdownSplitter",
    "Splitter",
    "TokenLimitSplitter",
    "TokenSpans",
    "TokenSplitter",
    "Tokenizer",
    "WholeTextSplitter",
    "get_splitter",
]
