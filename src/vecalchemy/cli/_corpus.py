"""A real text corpus with no download: the docstrings of Python's standard library.

:func:`stdlib_corpus` reads the source files of the standard library that came with the
running interpreter and returns the docstrings of its public modules, classes,
functions and methods: several thousand short technical documents, good for examples,
tests and benchmarks. The modules are parsed with :mod:`ast`, never imported.

Example::

    >>> from vecalchemy.cli._corpus import stdlib_corpus
    >>> docs = stdlib_corpus(limit=3)
    >>> [d.id for d in docs]  # doctest: +SKIP
    ['abc', 'abc.abstractmethod', 'abc.abstractclassmethod']
"""

from __future__ import annotations

import ast
import gc
import os
import sysconfig
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CorpusDocument", "stdlib_corpus"]

# Directories never walked into: test suites and third-party packages.
_SKIP_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages"})
_cache: dict[tuple[Path, int], tuple[CorpusDocument, ...]] = {}
_TRY_NODES: tuple[type[ast.stmt], ...] = (
    ast.Try,
    *([ast.TryStar] if hasattr(ast, "TryStar") else []),
)


@dataclass(frozen=True, slots=True)
class CorpusDocument:
    """One document of a corpus.

    ``id`` is unique within the corpus and stable across runs of the same Python
    version; ``title`` is a short human-readable heading; ``source`` says where the
    text comes from.

    Example::

        >>> doc = CorpusDocument(
        ...     id="json.decoder.JSONDecoder.decode",
        ...     title="json.decoder.JSONDecoder.decode",
        ...     text="Return the Python representation of ``s`` (a ``str`` instance ...",
        ...     source="json/decoder.py:332",
        ... )
        >>> doc.source.split(":")[0]
        'json/decoder.py'
    """

    id: str
    title: str
    text: str
    source: str


def stdlib_corpus(limit: int | None = None, *, min_chars: int = 80) -> list[CorpusDocument]:
    """Collect the docstrings of the running interpreter's standard library.

    Walks ``sysconfig.get_paths()["stdlib"]`` in sorted order and parses every module
    with :mod:`ast` (nothing is imported, so no module's side effects run). A document
    is made of the docstring of each public module, class, function and method, and of
    the ``__init__`` of public classes. Left out: test packages (``test``, ``tests``,
    ``idle_test``), ``site-packages``, private modules and names (a leading ``_``),
    ``__main__`` modules, functions nested in functions, files that fail to parse, and
    docstrings shorter than ``min_chars`` characters.

    The order is deterministic (files by path, then definitions in source order) and ids
    are unique: when a name is defined twice (say, per platform), the first one wins.
    ``limit`` stops after that many documents. A complete walk is remembered for the
    rest of the process, so later calls return at once (a new list each time).

    Each document's ``id`` and ``title`` are the dotted name, for example
    ``"json.decoder.JSONDecoder.decode"``; ``text`` is the cleaned docstring
    (:func:`inspect.cleandoc`); ``source`` is ``"json/decoder.py:332"``, the file relative
    to the standard library and the line of the definition.

    Example::

        >>> docs = stdlib_corpus()
        >>> len(docs) > 3000
        True
        >>> next(d for d in docs if d.id == "json.dumps").source  # doctest: +ELLIPSIS
        'json/__init__.py:...'
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None or a non-negative integer, got {limit!r}")
    root = Path(sysconfig.get_paths()["stdlib"])
    cached = _cache.get((root, min_chars))
    if cached is not None:
        return list(cached[:limit])
    docs: list[CorpusDocument] = []
    seen: set[str] = set()
    if limit == 0:
        return docs
    with warnings.catch_warnings(), _no_gc():
        # Old modules have invalid escape sequences; their warnings are not ours.
        warnings.simplefilter("ignore")
        for path, module in _modules(root):
            relpath = path.relative_to(root).as_posix()
            try:
                tree = ast.parse(path.read_bytes(), filename=str(path))
            except (SyntaxError, ValueError, UnicodeError, RecursionError, OSError):
                continue
            for doc in _module_documents(tree, module, relpath, min_chars):
                if doc.id in seen:
                    continue
                seen.add(doc.id)
                docs.append(doc)
                if len(docs) == limit:
                    return docs
    # Parsing takes a second or two; the standard library does not change under a process.
    _cache[root, min_chars] = tuple(docs)
    return docs


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: parsing makes millions of short-lived, acyclic
    AST nodes, and collections triggered by them made the walk 40% slower (measured)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _modules(root: Path) -> Iterator[tuple[Path, str]]:
    """The public modules under ``root`` as (file, dotted name), in sorted order."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        package = here.relative_to(root).parts
        # Walk only into public packages (directories with an __init__.py).
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in _SKIP_DIRS
            and d.isidentifier()
            and not d.startswith("_")
            and (here / d / "__init__.py").is_file()
        )
        for filename in sorted(filenames):
            stem, ext = os.path.splitext(filename)
            if ext != ".py" or not stem.isidentifier():
                continue
            if stem == "__init__":
                if package:
                    yield here / filename, ".".join(package)
            elif not stem.startswith("_"):
                yield here / filename, ".".join((*package, stem))


def _module_documents(
    tree: ast.Module, module: str, relpath: str, min_chars: int
) -> Iterator[CorpusDocument]:
    doc = ast.get_docstring(tree)
    if doc and len(doc) >= min_chars:
        yield CorpusDocument(module, module, doc, f"{relpath}:{tree.body[0].lineno}")
    yield from _definitions(tree.body, module, relpath, min_chars, in_class=False)


def _definitions(
    body: Sequence[ast.stmt], prefix: str, relpath: str, min_chars: int, *, in_class: bool
) -> Iterator[CorpusDocument]:
    """The documented public definitions in ``body``, including those under if/try."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name.startswith("_") and not (in_class and node.name == "__init__"):
                continue
            name = f"{prefix}.{node.name}"
            doc = ast.get_docstring(node)
            if doc and len(doc) >= min_chars:
                yield CorpusDocument(name, name, doc, f"{relpath}:{node.lineno}")
            if isinstance(node, ast.ClassDef):
                yield from _definitions(node.body, name, relpath, min_chars, in_class=True)
        elif isinstance(node, ast.If):
            yield from _definitions(node.body, prefix, relpath, min_chars, in_class=in_class)
            yield from _definitions(node.orelse, prefix, relpath, min_chars, in_class=in_class)
        elif isinstance(node, _TRY_NODES):
            for block in (node.body, node.orelse, node.finalbody):  # type: ignore[attr-defined]
                yield from _definitions(block, prefix, relpath, min_chars, in_class=in_class)
            for handler in node.handlers:  # type: ignore[attr-defined]
                yield from _definitions(handler.body, prefix, relpath, min_chars, in_class=in_class)
