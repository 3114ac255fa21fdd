"""The BEIR readers: corpus.jsonl, queries.jsonl and qrels .tsv, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vecalchemy.errors import InvalidArgument
from vecalchemy.eval import BeirDocument, read_beir, read_corpus, read_qrels, read_queries


def _jsonl(path: Path, *items: object) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return path


def test_corpus_keeps_file_order_and_joins_title_and_text(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "corpus.jsonl",
        {"_id": "d2", "title": "PostgreSQL", "text": "A database."},
        {"_id": 7, "text": "No title."},
        {"_id": "d3", "title": "Only a title", "text": None},
    )
    docs = read_corpus(path)
    assert [d.id for d in docs] == ["d2", "7", "d3"]  # a JSON number is a string id
    assert docs[0] == BeirDocument("d2", "PostgreSQL", "A database.")
    assert [d.content for d in docs] == ["PostgreSQL A database.", "No title.", "Only a title"]


def test_queries_and_qrels_with_a_header(tmp_path: Path) -> None:
    queries = _jsonl(
        tmp_path / "queries.jsonl", {"_id": "q1", "text": "pgvector"}, {"_id": 2, "text": "hnsw"}
    )
    assert read_queries(queries) == {"q1": "pgvector", "2": "hnsw"}
    qrels = tmp_path / "test.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\n\n2\td1\t1\n")
    assert read_qrels(qrels) == {"q1": {"d1": 2, "d2": 0}, "2": {"d1": 1}}


def test_qrels_without_a_header_keep_their_first_line(tmp_path: Path) -> None:
    qrels = tmp_path / "test.tsv"
    qrels.write_text("q1\td1\t1\nq1\td2\t2\n")
    assert read_qrels(qrels) == {"q1": {"d1": 1, "d2": 2}}


def test_trec_qrels_have_four_columns(tmp_path: Path) -> None:
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 1\nq1 0 d2 0\nq2\t0\td3\t3\n")
    assert read_qrels(qrels) == {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 3}}


def test_read_beir_reads_a_directory(tmp_path: Path) -> None:
    _jsonl(tmp_path / "corpus.jsonl", {"_id": "d1", "title": "", "text": "text"})
    _jsonl(tmp_path / "queries.jsonl", {"_id": "q1", "text": "query"})
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    data = read_beir(tmp_path, split="dev")
    assert [d.id for d in data.corpus] == ["d1"]
    assert data.queries == {"q1": "query"}
    assert data.qrels == {"q1": {"d1": 1}}
    with pytest.raises(InvalidArgument, match=r"qrels file .*test\.tsv does not exist"):
        read_beir(tmp_path)
    with pytest.raises(InvalidArgument, match=r"BEIR directory .* does not exist"):
        read_beir(tmp_path / "nope")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"_id": "d1", "text": "a"}', "{oops"], r"corpus\.jsonl:2 is not JSON"),
        (['["d1", "a"]'], r"corpus\.jsonl:1 is not a JSON object"),
        (['{"text": "a"}'], r'corpus\.jsonl:1 has no "_id"'),
        (['{"_id": "", "text": "a"}'], r'corpus\.jsonl:1 has no "_id"'),
        (['{"_id": true, "text": "a"}'], r'corpus\.jsonl:1 has no "_id"'),
        (['{"_id": "d1", "text": 3}'], r'corpus\.jsonl:1: "text" must be a string, got int'),
        (['{"_id": "d1", "title": " ", "text": ""}'], r"document 'd1' has no title or text"),
        (
            ['{"_id": "d1", "text": "a"}', "", '{"_id": "d1", "text": "b"}'],
            r"corpus\.jsonl:3 repeats document id 'd1' \(first on line 1\)",
        ),
        ([""], r"corpus\.jsonl holds no documents"),
    ],
)
def test_bad_corpus_lines_name_the_file_and_line(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InvalidArgument, match=message):
        read_corpus(path)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"_id": "q1"}'], r"queries\.jsonl:1: query 'q1' has no \"text\""),
        (['{"_id": "q1", "text": "  "}'], r"query 'q1' has no \"text\""),
        (['{"_id": "q1", "text": "a"}', '{"_id": "q1", "text": "b"}'], "repeats query id 'q1'"),
        (["   "], r"queries\.jsonl holds no queries"),
    ],
)
def test_bad_queries_are_refused(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "queries.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InvalidArgument, match=message):
        read_queries(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("query-id\tcorpus-id\tscore\nq1\td1\n", r"test\.tsv:2 has 2 fields"),
        ("q1\td1\t1\t2\t3\n", r"test\.tsv:1 has 5 fields"),
        ("q1\td1\t1\nq1\td2\thigh\n", r"test\.tsv:2: the score 'high' is not an integer grade"),
        ("q1\td1\t0.5\n", r"test\.tsv:1: the score '0.5' is not an integer"),
        ("q1\td1\t1\nq1\td1\t2\n", r"test\.tsv:2 judges document 'd1' for query 'q1' a second"),
        ("q1\t \t1\n", r"test\.tsv:1 has an empty query or document id"),
        ("query-id\tcorpus-id\tscore\n", r"test\.tsv holds no judgements"),
    ],
)
def test_bad_qrels_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "test.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidArgument, match=message):
        read_qrels(path)


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"queries file .*nope\.jsonl does not exist"):
        read_queries(tmp_path / "nope.jsonl")
    with pytest.raises(InvalidArgument, match=r"corpus file .* does not exist"):
        read_corpus(tmp_path)  # a directory
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("q1\tcaf\xe9\t1\n".encode("latin-1"))
    with pytest.raises(InvalidArgument, match=r"latin\.tsv is not UTF-8 text"):
        read_qrels(latin)
    latin_json = tmp_path / "latin.jsonl"
    latin_json.write_bytes('{"_id": "q1", "text": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(InvalidArgument, match=r"latin\.jsonl:1 is not UTF-8 text"):
        read_queries(latin_json)
