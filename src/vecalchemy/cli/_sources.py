"""Reading documents from files: plain text, Markdown, reStructuredText and HTML.

:func:`read_sources` walks files and directories and returns one :class:`SourceDocument`
per readable file, and one :class:`Skipped` (path and reason) per file it could not use.
HTML is reduced to its visible text (scripts, styles and markup dropped).

**Document ids.** A file's id is :func:`document_id`: its resolved absolute path
(symlinks resolved, ``..`` removed, :meth:`pathlib.Path.resolve`), as POSIX, relative
to a *root* directory when the file lies under it, else absolute. The root is the
current directory unless given (``vecalchemy ingest --root``). So ``corpus``,
``./corpus``, ``corpus/../corpus``, ``/abs/corpus``, and ``.`` run in the parent
directory all give ``corpus/guide.md``, and a file reached twice (two arguments, or a
symlink and its target) is one document. Run from another directory without
``--root``, the same file gets another id: pass ``--root`` wherever ids must not depend
on where the command runs.

**Metadata.** Each document records ``source`` (its id), ``path`` (the resolved
absolute path), ``type`` (``text``, ``markdown``, ``rst`` or ``html``), ``title`` (HTML)
and ``origin`` (``"vecalchemy ingest"``): :func:`stale_documents` prunes only documents
that carry that origin, so documents added through the Python API are never pruned.

**Skips.** A file is skipped, with its reason, when it holds NUL bytes (``binary``),
is not valid text in the encoding (``not valid utf-8 text; pass --encoding``), is
named explicitly but has a suffix not in :data:`SUFFIXES` (``unsupported suffix``),
has no text (``empty``), or cannot be read (``unreadable: <error>``). Files with other
suffixes found in a directory are not candidates at all (unless ``glob`` matches them),
so they are not reported.

Example::

    sources = read_sources(["docs/"], glob="**/*.md")
    for doc in sources.documents:
        print(doc.id, len(doc.text), doc.metadata)
    for skip in sources.skipped:
        print("skipped", skip.path, skip.reason)
"""

from __future__ import annotations

import codecs
import html
import html.parser
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vecalchemy.errors import InvalidArgument

__all__ = [
    "ORIGIN",
    "SUFFIXES",
    "Skipped",
    "SourceDocument",
    "Sources",
    "check_encoding",
    "document_id",
    "html_to_text",
    "read_documents",
    "read_sources",
    "stale_documents",
]

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

#: ``metadata["origin"]`` of every document :func:`read_sources` makes.
ORIGIN = "vecalchemy ingest"


@dataclass(frozen=True)
class SourceDocument:
    """A document read from a file: its id (see :func:`document_id`), text and metadata."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """A file that was not ingested: its path (as an id would name it) and why.

    Example::

        >>> Skipped("logo.png", "unsupported suffix '.png'")
        Skipped(path='logo.png', reason="unsupported suffix '.png'")
    """

    path: str
    reason: str


@dataclass(frozen=True)
class Sources:
    """What :func:`read_sources` found: the documents, and the files it skipped."""

    documents: list[SourceDocument]
    skipped: list[Skipped]


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


def document_id(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """The id of the document read from ``path``: see the module docstring for the rule.

    The resolved absolute path (symlinks followed, ``.`` and ``..`` gone) as POSIX,
    relative to ``root`` (default: the current directory, also resolved) when it lies
    under it, else absolute.

    Example::

        >>> document_id("/srv/docs/../docs/guide.md", root="/srv")
        'docs/guide.md'
        >>> document_id("/elsewhere/notes.txt", root="/srv")
        '/elsewhere/notes.txt'
    """
    resolved = Path(path).resolve()
    base = Path(root).resolve() if root is not None else Path.cwd().resolve()
    try:
        return resolved.relative_to(base).as_posix()
    except ValueError:
        return resolved.as_posix()


def _candidates(paths: Iterable[str | Path], glob: str | None) -> Iterator[tuple[Path, bool]]:
    """The files to read, each with whether it was named explicitly."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            pattern = glob or "**/*"
            for found in sorted(path.glob(pattern)):
                if found.is_file() and (glob or found.suffix.lower() in SUFFIXES):
                    yield found, False
        elif path.exists():
            yield path, True
        else:
            raise InvalidArgument(f"no such file or directory: {given}")


def _decode(raw: bytes, encoding: str) -> str:
    text = raw.decode(encoding)
    # A UTF-8 byte order mark is not text (editors on Windows write one).
    return text.removeprefix("\ufeff") if codecs.lookup(encoding).name == "utf-8" else text


def check_encoding(encoding: str) -> str:
    """``encoding`` if Python knows it, else :class:`~vecalchemy.InvalidArgument`.

    Example::

        >>> check_encoding("latin-1")
        'latin-1'
    """
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InvalidArgument(
            f"unknown encoding {encoding!r}; use a Python codec name such as utf-8, "
            "latin-1 or cp1252"
        ) from None
    return encoding


def read_sources(
    paths: Iterable[str | Path],
    *,
    glob: str | None = None,
    encoding: str = "utf-8",
    root: str | Path | None = None,
) -> Sources:
    """The documents in ``paths`` (files, or directories searched recursively), and the
    files skipped with their reasons.

    Directories give the files whose suffix is in :data:`SUFFIXES`, or those matching
    ``glob`` (e.g. ``"**/*.md"``, read as text unless their suffix says otherwise) when
    given. A file named explicitly is read when its suffix is in :data:`SUFFIXES`.
    Ids follow :func:`document_id` with ``root``; a file reached twice is read once.
    Texts are decoded with ``encoding`` (a leading UTF-8 byte order mark is dropped).

    Example::

        sources = read_sources(["docs", "README.md"], encoding="utf-8")
        [d.id for d in sources.documents], [(s.path, s.reason) for s in sources.skipped]
    """
    check_encoding(encoding)
    documents: list[SourceDocument] = []
    skipped: list[Skipped] = []
    seen: set[Path] = set()
    for path, explicit in _candidates(paths, glob):
        resolved = path.resolve()
        if resolved in seen:
            continue  # the same file through two arguments, or through a symlink
        seen.add(resolved)
        doc_id = document_id(resolved, root)
        suffix = path.suffix.lower()
        if explicit and suffix not in SUFFIXES:
            what = repr(suffix) if suffix else "(none)"
            skipped.append(
                Skipped(
                    doc_id,
                    f"unsupported suffix {what}; rename it, or pass its directory with "
                    f"--glob to read matching files as text ({', '.join(SUFFIXES)} are read)",
                )
            )
            continue
        try:
            raw = resolved.read_bytes()
        except OSError as exc:
            skipped.append(Skipped(doc_id, f"unreadable: {exc.strerror or exc}"))
            continue
        if b"\x00" in raw:
            skipped.append(Skipped(doc_id, "binary (NUL bytes)"))
            continue
        try:
            text = _decode(raw, encoding)
        except UnicodeDecodeError as exc:
            skipped.append(
                Skipped(
                    doc_id,
                    f"not valid {encoding} text (byte {raw[exc.start]:#04x} at offset "
                    f"{exc.start}); pass --encoding with the file's encoding",
                )
            )
            continue
        kind = SUFFIXES.get(suffix, "text")
        title = ""
        if kind == "html":
            text, title = html_to_text(text)
        if not text.strip():
            skipped.append(Skipped(doc_id, "empty"))
            continue
        meta: dict[str, Any] = {
            "source": doc_id,
            "path": resolved.as_posix(),
            "type": kind,
            "origin": ORIGIN,
        }
        if title:
            meta["title"] = title
        documents.append(SourceDocument(id=doc_id, text=text, metadata=meta))
    return Sources(documents, skipped)


def read_documents(
    paths: Iterable[str | Path],
    *,
    glob: str | None = None,
    encoding: str = "utf-8",
    root: str | Path | None = None,
) -> Iterator[SourceDocument]:
    """The documents of :func:`read_sources`, without the skipped files.

    Example::

        for doc in read_documents(["docs/"], glob="**/*.md"):
            print(doc.id, len(doc.text), doc.metadata)
    """
    yield from read_sources(paths, glob=glob, encoding=encoding, root=root).documents


def _under(path: str, scopes: Iterable[tuple[str, bool]]) -> bool:
    for scope, is_dir in scopes:
        if path == scope or (is_dir and path.startswith(scope.rstrip("/") + "/")):
            return True
    return False


def stale_documents(
    stored: Mapping[str, Mapping[str, Any]], paths: Iterable[str | Path]
) -> list[str]:
    """The ids among ``stored`` (id -> metadata) whose file is gone, within ``paths``.

    Only documents whose metadata has ``origin`` :data:`ORIGIN` and a ``path`` that is one
    of the (resolved) files of ``paths`` or lies under one of its directories count:
    documents from other directories, or added through the Python API, are never stale.

    Example::

        >>> stale_documents({"a.md": {"origin": ORIGIN, "path": "/nonexistent/a.md"}}, ["/"])
        ['a.md']
    """
    scopes = [(Path(p).resolve().as_posix(), Path(p).is_dir()) for p in paths]
    out = []
    for doc_id, meta in stored.items():
        path = meta.get("path")
        if meta.get("origin") != ORIGIN or not isinstance(path, str):
            continue
        if _under(path, scopes) and not os.path.lexists(path):
            out.append(doc_id)
    return sorted(out)
