"""Reading documents from files: plain text, Markdown, reStructuredText and HTML.

:func:`read_documents` walks files and directories and yields one
:class:`SourceDocument` per readable file, its id being its path as given (``docs`` gives
``docs/guide.md``), so re-ingesting the same tree updates the same documents. HTML is
reduced to its visible text (scripts, styles and markup dropped).

Example::

    for doc in read_documents(["docs/"], glob="**/*.md"):
        print(doc.id, len(doc.text), doc.metadata)
"""

from __future__ import annotations

import html
import html.parser
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vecalchemy.errors import InvalidArgument

__all__ = ["SUFFIXES", "SourceDocument", "html_to_text", "read_documents"]

#: File suffixes read by default, and the kind of document each one is.
SUFFIXES: dict[str, str] = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "rst",
    ".html": "html",
    ".htm": "html",
}


@dataclass(frozen=True)
class SourceDocument:
    """A document read from a file: its id (relative path), text and metadata."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


class _TextExtractor(html.parser.HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template", "head", "svg", "title"})
    _LINE = frozenset({"li", "tr", "br", "dt", "dd", "hr"})
    _PARAGRAPH = frozenset(
        {
            "p",
            "div",
            "ul",
            "ol",
            "table",
            "section",
            "article",
            "header",
            "footer",
            "pre",
            "blockquote",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._LINE:
            self.parts.append("\n")
        elif tag in self._PARAGRAPH:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._PARAGRAPH:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if not self._skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> tuple[str, str]:
    """The visible text of an HTML document, and its ``<title>``.

    Example::

        >>> html_to_text("<html><head><title>T</title></head><body><p>Hi &amp; bye</p></body>")
        ('Hi & bye', 'T')
    """
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.parts)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip(), html.unescape(parser.title.strip())


def _files(paths: Iterable[str | Path], glob: str | None) -> Iterator[Path]:
    for given in paths:
        path = Path(given)
        if path.is_file():
            yield path
        elif path.is_dir():
            pattern = glob or "**/*"
            for found in sorted(path.glob(pattern)):
                if found.is_file() and (glob or found.suffix.lower() in SUFFIXES):
                    yield found
        else:
            raise InvalidArgument(f"no such file or directory: {given}")


def read_documents(
    paths: Iterable[str | Path], *, glob: str | None = None, encoding: str = "utf-8"
) -> Iterator[SourceDocument]:
    """Yield the documents in ``paths`` (files, or directories searched recursively).

    Directories yield the files whose suffix is in :data:`SUFFIXES`, or those matching
    ``glob`` (e.g. ``"**/*.md"``) when given. Files that are empty, not valid text in
    ``encoding`` or contain NUL bytes (binary files) are skipped.
    """
    seen: set[str] = set()
    for path in _files(paths, glob):
        try:
            raw = path.read_text(encoding=encoding)
        except (UnicodeDecodeError, OSError):
            continue
        if "\x00" in raw:
            continue
        kind = SUFFIXES.get(path.suffix.lower(), "text")
        title = ""
        text = raw
        if kind == "html":
            text, title = html_to_text(raw)
        if not text.strip():
            continue
        # The path as given (e.g. docs/guide.md): unique across the arguments, and the
        # same id when the same command runs again, so re-ingesting updates in place.
        rel = path.as_posix()
        if rel in seen:
            continue  # the same file reached through two arguments
        seen.add(rel)
        meta: dict[str, Any] = {"source": rel, "type": kind}
        if title:
            meta["title"] = title
        yield SourceDocument(id=rel, text=text, metadata=meta)
