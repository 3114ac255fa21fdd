"""Readers of BEIR-format files: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/*.tsv``.

BEIR (Thakur et al., 2021) keeps a retrieval dataset in one directory::

    corpus.jsonl      {"_id": "d1", "title": "...", "text": "..."} per line
    queries.jsonl     {"_id": "q1", "text": "..."} per line
    qrels/test.tsv    query-id <TAB> corpus-id <TAB> score, after a header line

Ids are read as strings (a JSON number ``7`` is the id ``"7"``). A qrels file may also
be in TREC's four-column form (``query-id 0 corpus-id score``, separated by spaces or
tabs); its first line is taken as a header when its score is not a number. Every bad
line raises :class:`~vecalchemy.errors.InvalidArgument` naming the file and line.

Private to vecalchemy: :mod:`vecalchemy.eval` re-exports the readers.

Example::

    data = read_beir("datasets/scifact", split="test")
    len(data.corpus), len(data.queries), sum(map(len, data.qrels.values()))
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vecalchemy.errors import InvalidArgument

__all__ = [
    "BeirDataset",
    "BeirDocument",
    "json_lines",
    "json_objects",
    "read_beir",
    "read_corpus",
    "read_qrels",
    "read_queries",
]


@dataclass(frozen=True, slots=True)
class BeirDocument:
    """One line of ``corpus.jsonl``: its ``id``, ``title`` and ``text``.

    ``content`` is what retrieval sees, as BEIR's dense and BM25 baselines build it:
    ``f"{title} {text}"``, stripped.

    Example::

        BeirDocument("d1", "PostgreSQL", "An open-source database.").content
        # 'PostgreSQL An open-source database.'
    """

    id: str
    title: str
    text: str

    @property
    def content(self) -> str:
        """``title`` and ``text`` joined by a space, stripped."""
        return f"{self.title} {self.text}".strip()


@dataclass(frozen=True, slots=True)
class BeirDataset:
    """A BEIR directory read by :func:`read_beir`: corpus, queries and one split's qrels."""

    corpus: list[BeirDocument]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def _file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InvalidArgument(f"{what} file {path} does not exist (or is not a file)")
    return path


def json_lines(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of a JSON-lines file.

    Example::

        [value for _, value in json_lines("queries.jsonl")]
    """
    path = Path(path)
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidArgument(f"{path}:{number} is not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidArgument(f"{path}:{number} is not JSON: {exc.msg}") from None
            yield number, item


def json_objects(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line; a line that is not an object is an error."""
    for number, item in json_lines(path):
        if not isinstance(item, dict):
            raise InvalidArgument(f"{path}:{number} is not a JSON object")
        yield number, item


def _id(path: Path, number: int, item: dict[str, Any]) -> str:
    value = item.get("_id")
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise InvalidArgument(
            f'{path}:{number} has no "_id" (a non-empty string or an integer); BEIR lines '
            'look like {"_id": "d1", "text": "..."}'
        )
    return str(value)


def _string(path: Path, number: int, item: dict[str, Any], key: str) -> str:
    value = item.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(
            f'{path}:{number}: "{key}" must be a string, got {type(value).__name__}'
        )
    return value


def read_corpus(path: str | Path) -> list[BeirDocument]:
    """The documents of a BEIR ``corpus.jsonl``, in file order.

    Each line needs an ``_id``; ``title`` and ``text`` are strings (missing means empty),
    and at least one of them must hold text. A repeated id is an error.

    Example::

        docs = read_corpus("scifact/corpus.jsonl")
        collection.add([d.content for d in docs], ids=[d.id for d in docs])
    """
    path = _file(path, "corpus")
    docs: list[BeirDocument] = []
    seen: dict[str, int] = {}
    for number, item in json_objects(path):
        doc_id = _id(path, number, item)
        if doc_id in seen:
            raise InvalidArgument(
                f"{path}:{number} repeats document id {doc_id!r} (first on line {seen[doc_id]})"
            )
        seen[doc_id] = number
        doc = BeirDocument(
            doc_id, _string(path, number, item, "title"), _string(path, number, item, "text")
        )
        if not doc.content:
            raise InvalidArgument(f"{path}:{number}: document {doc_id!r} has no title or text")
        docs.append(doc)
    if not docs:
        raise InvalidArgument(f"{path} holds no documents")
    return docs


def read_queries(path: str | Path) -> dict[str, str]:
    """``{query id: text}`` from a BEIR ``queries.jsonl``, in file order.

    Each line needs an ``_id`` and a non-blank ``text``; a repeated id is an error.

    Example::

        queries = read_queries("scifact/queries.jsonl")
        queries["1"]        # '0-dimensional biomaterials show inductive properties.'
    """
    path = _file(path, "queries")
    queries: dict[str, str] = {}
    for number, item in json_objects(path):
        query_id = _id(path, number, item)
        if query_id in queries:
            raise InvalidArgument(f"{path}:{number} repeats query id {query_id!r}")
        text = _string(path, number, item, "text")
        if not text.strip():
            raise InvalidArgument(f'{path}:{number}: query {query_id!r} has no "text"')
        queries[query_id] = text
    if not queries:
        raise InvalidArgument(f"{path} holds no queries")
    return queries


def _score(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """``{query id: {document id: grade}}`` from a BEIR qrels file.

    Lines are ``query-id <TAB> corpus-id <TAB> score`` (BEIR, after its header line) or
    ``query-id iteration corpus-id score`` (TREC). The score is an integer grade;
    0 (or below) means judged not relevant. A pair judged twice is an error.

    Example::

        qrels = read_qrels("scifact/qrels/test.tsv")
        qrels["1"]          # {'31715818': 1}
    """
    path = _file(path, "qrels")
    qrels: dict[str, dict[str, int]] = {}
    first = True
    try:
        with path.open(encoding="utf-8") as f:
            lines = list(enumerate(f, 1))
    except UnicodeDecodeError:
        raise InvalidArgument(f"{path} is not UTF-8 text") from None
    for number, line in lines:
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 3:
            fields = line.split()
        header, first = first, False
        if len(fields) == 3:
            query_id, doc_id, grade = fields
        elif len(fields) == 4:
            query_id, _, doc_id, grade = fields
        else:
            raise InvalidArgument(
                f"{path}:{number} has {len(fields)} fields; a qrels line is "
                "'query-id<TAB>corpus-id<TAB>score' (BEIR) or 'query-id 0 corpus-id score' (TREC)"
            )
        score = _score(grade)
        if score is None:
            if header and not _numeric(grade):
                continue  # BEIR's "query-id corpus-id score"
            raise InvalidArgument(
                f"{path}:{number}: the score {grade.strip()!r} is not an integer grade "
                "(0 = not relevant, 1, 2, ... = more relevant)"
            )
        query_id, doc_id = query_id.strip(), doc_id.strip()
        if not query_id or not doc_id:
            raise InvalidArgument(f"{path}:{number} has an empty query or document id")
        judged = qrels.setdefault(query_id, {})
        if doc_id in judged:
            raise InvalidArgument(
                f"{path}:{number} judges document {doc_id!r} for query {query_id!r} a second time"
            )
        judged[doc_id] = score
    if not qrels:
        raise InvalidArgument(f"{path} holds no judgements")
    return qrels


def read_beir(directory: str | Path, *, split: str = "test") -> BeirDataset:
    """A BEIR directory: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

    Example::

        data = read_beir("dbpedia-entity-5k")
        len(data.corpus), len(data.queries), len(data.qrels)     # (5000, 50, 50)
    """
    root = Path(directory)
    if not root.is_dir():
        raise InvalidArgument(f"BEIR directory {root} does not exist")
    return BeirDataset(
        corpus=read_corpus(root / "corpus.jsonl"),
        queries=read_queries(root / "queries.jsonl"),
        qrels=read_qrels(root / "qrels" / f"{split}.tsv"),
    )
