"""evaluate() and `vecalchemy eval` on a tiny BEIR set, against the embedded server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import vecalchemy
from vecalchemy.cli import main
from vecalchemy.collection import Collection
from vecalchemy.errors import ConfigurationError, InvalidArgument, InvalidSearch
from vecalchemy.eval import EvalResult, evaluate, read_corpus, score_rankings
from vecalchemy.eval._metrics import dedupe

CORPUS = [
    {"_id": "pg", "title": "PostgreSQL", "text": "PostgreSQL is a relational database server."},
    {"_id": "vec", "title": "pgvector", "text": "pgvector adds vector similarity search."},
    {"_id": "hnsw", "title": "HNSW", "text": "HNSW graphs answer nearest neighbour queries."},
    {"_id": "bread", "title": "Bread", "text": "Bread dough rises in a warm kitchen."},
    {"_id": "tomato", "title": "Tomatoes", "text": "Tomato plants need water every morning."},
    {"_id": "violin", "title": "Violin", "text": "The violin was tuned before the concert."},
    {"_id": "river", "title": "Rivers", "text": "Mountain rivers stay cold in August."},
    {"_id": "code", "title": "Errors", "text": "Error QX7781 appears after a failed upgrade."},
]
QUERIES = [
    {"_id": "q-db", "text": "relational database server"},
    {"_id": "q-vec", "text": "vector similarity search"},
    {"_id": "q-bake", "text": "bread dough kitchen"},
    {"_id": "q-code", "text": "QX7781"},
    {"_id": "q-none", "text": "violin concert"},  # judged, but nothing relevant
    {"_id": "q-unjudged", "text": "mountain rivers"},  # not in the qrels
]
QRELS = (
    "query-id\tcorpus-id\tscore\n"
    "q-db\tpg\t2\nq-db\tvec\t1\nq-db\tbread\t0\n"
    "q-vec\tvec\t2\nq-vec\thnsw\t1\n"
    "q-bake\tbread\t1\n"
    "q-code\tcode\t1\nq-code\tgone\t1\n"  # "gone" is not in the collection
    "q-none\tviolin\t0\n"
)


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    (tmp_path / "qrels").mkdir()
    for name, items in (("corpus.jsonl", CORPUS), ("queries.jsonl", QUERIES)):
        (tmp_path / name).write_text("".join(json.dumps(i) + "\n" for i in items))
    (tmp_path / "qrels" / "test.tsv").write_text(QRELS)
    return tmp_path


@pytest.fixture
def coll(engine: sa.Engine, beir: Path) -> Iterator[Collection]:
    """The corpus in a hashing-embedder collection, one chunk per document."""
    c = Collection(f"evl_{uuid.uuid4().hex[:8]}", embedder="hashing", engine=engine)
    docs = read_corpus(beir / "corpus.jsonl")
    c.add(
        [d.content for d in docs], ids=[d.id for d in docs], metadata=[{"n": i} for i in range(8)]
    )
    yield c
    c.drop()


def _files(beir: Path) -> tuple[Path, Path]:
    return beir / "queries.jsonl", beir / "qrels" / "test.tsv"


@pytest.mark.parametrize("mode", ["vector", "text", "hybrid"])
def test_evaluate_scores_the_rankings_of_every_judged_query(
    coll: Collection, beir: Path, mode: str
) -> None:
    result = evaluate(coll, *_files(beir), mode=mode, k=5)  # type: ignore[arg-type]
    assert isinstance(result, EvalResult)
    assert (result.collection, result.mode, result.k) == (coll.name, mode, 5)
    assert list(result.metrics) == ["ndcg@5", "recall@5", "mrr@5"]
    assert list(result.per_query) == ["q-db", "q-vec", "q-bake", "q-code", "q-none"]
    assert (result.queries, result.without_relevant, result.unjudged_queries) == (5, 1, 1)
    assert (result.relevant, result.missing_relevant) == (6, 1)  # pg vec hnsw bread code gone
    assert (result.documents, result.chunks) == (8, 8)
    # Each document at most once, at most k of them.
    for ranking in result.rankings.values():
        assert len(ranking) == len(set(ranking)) <= 5
    # The per-query values are the metrics of those rankings; the means are their means.
    judged = {
        "q-db": {"pg": 2, "vec": 1, "bread": 0},
        "q-vec": {"vec": 2, "hnsw": 1},
        "q-bake": {"bread": 1},
        "q-code": {"code": 1, "gone": 1},
        "q-none": {"violin": 0},
    }
    expected = score_rankings(result.rankings, judged, k=5, cutoff=10)
    for query_id, values in result.per_query.items():
        assert {n: v for n, v in values.items() if n != "latency_ms"} == expected[query_id]
        assert values["latency_ms"] > 0
    for metric, mean in result.metrics.items():
        assert mean == pytest.approx(sum(e[metric] for e in expected.values()) / 5)
    # A query with no relevant document scores 0 and counts in the means.
    assert all(v == 0.0 for n, v in result.per_query["q-none"].items() if n != "latency_ms")
    # The queries are lexical copies: each finds its best document first.
    assert result.rankings["q-bake"][0] == "bread"
    assert result.per_query["q-code"]["recall@5"] == 0.5  # "gone" can never be found
    assert 0 < result.p50_ms <= result.p95_ms


def test_text_mode_ranks_by_words_alone(coll: Collection, beir: Path) -> None:
    """The full-text leg finds only documents holding the query's words."""
    result = evaluate(coll, *_files(beir), mode="text", k=10)
    assert result.rankings["q-code"] == ["code"]
    assert result.rankings["q-bake"] == ["bread"]
    assert result.per_query["q-code"]["mrr@10"] == 1.0
    assert result.metrics["recall@10"] == pytest.approx((0.5 + 0.5 + 1 + 0.5 + 0) / 5)


def test_vector_mode_matches_the_collections_own_search(coll: Collection, beir: Path) -> None:
    result = evaluate(coll, *_files(beir), k=3)
    assert list(result.metrics) == ["ndcg@3", "recall@3", "mrr@3"]
    for query_id, ranking in result.rankings.items():
        text = next(q["text"] for q in QUERIES if q["_id"] == query_id)
        assert ranking == [h.id for h in coll.search(text, 3)]


def test_dicts_instead_of_files_and_a_default_k_of_100(coll: Collection) -> None:
    result = vecalchemy.evaluate(
        coll, {"a": "tomato plants water"}, {"a": {"tomato": 1}}, mode="hybrid"
    )
    assert list(result.metrics) == ["ndcg@10", "recall@10", "recall@100", "mrr@10"]
    assert result.rankings["a"][0] == "tomato"
    assert len(result.rankings["a"]) == 8  # every document: there are fewer than k
    assert result.as_dict()["metrics"]["mrr@10"] == 1.0
    assert "rankings" not in result.as_dict()
    assert result.as_dict(rankings=True)["rankings"] == result.rankings


def test_a_document_in_many_chunks_is_ranked_once_at_its_best_chunk(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two long documents fill the first page of chunks; evaluate asks for more until it
    has k distinct documents, and ranks each document where its best chunk is."""
    c = Collection(
        f"evl_{uuid.uuid4().hex[:8]}", embedder="hashing", engine=engine, splitter="chars:60:0"
    )
    long = [" ".join(f"database server number {i} of part {p}." for i in range(12)) for p in "ab"]
    short = [f"short note {i} about gardening and weather" for i in range(20)]
    c.add(long + short, ids=["long-a", "long-b", *[f"s{i}" for i in range(20)]])
    try:
        documents, chunks = c.count(), len(c.get(["long-a", "long-b"])) + 20
        assert chunks > documents + 10  # the long documents are split
        asked: list[int] = []
        search = c.search

        def spy(query: str, k: int, **kw: object) -> object:
            asked.append(k)
            return search(query, k, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(c, "search", spy)
        query = "database server number part"
        result = evaluate(c, {"q": query}, {"q": {"long-a": 1, "s3": 1}}, k=5)
        monkeypatch.undo()
        full = dedupe([h.id for h in c.search(query, 1000)])
        assert result.rankings["q"] == full[:5]
        assert result.rankings["q"][:2] in (["long-a", "long-b"], ["long-b", "long-a"])
        # A warm-up search of k chunks, a first page of k x chunks per document, then more.
        assert asked[0] == 5
        assert asked[1] == -(-5 * chunks // documents)
        assert asked[2:] == [asked[1] * 2 ** (i + 1) for i in range(len(asked) - 2)] != []
    finally:
        c.drop()


@pytest.mark.parametrize("mode", ["vector", "text", "hybrid"])
def test_a_metadata_filter_applies_to_every_search(coll: Collection, beir: Path, mode: str) -> None:
    """Only documents 0-3 (pg, vec, hnsw, bread) can be found."""
    result = evaluate(coll, *_files(beir), mode=mode, k=10, where={"n": {"$lt": 4}})  # type: ignore[arg-type]
    found = {d for ranking in result.rankings.values() for d in ranking}
    assert found <= {"pg", "vec", "hnsw", "bread"}
    # QX7781 is only in "code", filtered out: the words find nothing, the vector something.
    assert (result.rankings["q-code"] == []) == (mode == "text")
    assert result.per_query["q-code"]["recall@10"] == 0.0


def test_ids_that_are_not_the_corpus_ids_are_refused(coll: Collection) -> None:
    with pytest.raises(InvalidArgument, match=r"none of the 2 relevant documents .* is in"):
        evaluate(coll, {"q": "database"}, {"q": {"doc-1": 1, "doc-2": 2, "pg": 0}})


def test_a_judged_query_without_text_is_refused(coll: Collection) -> None:
    with pytest.raises(InvalidArgument, match=r"1 judged queries are not in the queries \('b'\)"):
        evaluate(coll, {"a": "database"}, {"a": {"pg": 1}, "b": {"pg": 1}})


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"mode": "bm25"}, InvalidArgument, "unknown mode 'bm25'; use one of: vector, text"),
        ({"k": 0}, InvalidArgument, "k must be a whole number of documents from 1 to 1,000"),
        ({"k": 1001}, InvalidArgument, "from 1 to 1,000"),
        ({"cutoff": 0}, InvalidArgument, "cutoff must be a positive integer"),
    ],
)
def test_bad_arguments_are_refused(
    coll: Collection, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        evaluate(coll, {"a": "database"}, {"a": {"pg": 1}}, **kwargs)  # type: ignore[arg-type]


def test_bad_inputs_are_refused(coll: Collection, engine: sa.Engine) -> None:
    with pytest.raises(InvalidArgument, match="needs a Collection, got str"):
        evaluate(coll.name, {"a": "x"}, {"a": {"pg": 1}})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"queries must be the path .* got list"):
        evaluate(coll, ["x"], {"a": {"pg": 1}})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="qrels of query 'a' must be a"):
        evaluate(coll, {"a": "x"}, {"a": {"pg": "1"}})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgument, match="qrels judge no query"):
        evaluate(coll, {"a": "x"}, {})
    with pytest.raises(InvalidSearch, match="query text is empty"):
        evaluate(coll, {"a": "  "}, {"a": {"pg": 1}})
    missing = Collection(f"evl_{uuid.uuid4().hex[:8]}", embedder="hashing", engine=engine)
    with pytest.raises(ConfigurationError, match="there is no collection"):
        evaluate(missing, {"a": "x"}, {"a": {"pg": 1}})


# -- the command line --------------------------------------------------------------------


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cli_prints_a_table_and_json(coll: Collection, beir: Path, server_url: sa.URL) -> None:
    url = server_url.render_as_string(hide_password=False)
    queries, qrels = (str(p) for p in _files(beir))
    args = ["eval", "-c", coll.name, "--queries", queries, "--qrels", qrels, "--url", url]
    code, out, err = _run(*args, "--mode", "text", "-k", "10", "--json")
    assert code == 0, err
    data = json.loads(out)
    direct = evaluate(coll, queries, qrels, mode="text", k=10)
    assert data["metrics"] == {n: round(v, 6) for n, v in direct.metrics.items()}
    assert data["mode"] == "text"
    assert data["queries"] == 5
    assert data["per_query"]["q-code"]["mrr@10"] == 1.0
    assert set(data["latency_ms"]) == {"p50", "p95"}

    code, out, err = _run(*args)
    assert code == 0, err
    assert f"{coll.name}, mode=vector, k=100: 5 queries" in out
    for metric in ("ndcg@10", "recall@10", "recall@100", "mrr@10", "p50 latency"):
        assert metric in out
    assert "1 queries have no relevant document" in out
    assert "1 queries without judgements were not run" in out
    assert "warning: 1 of the 6 relevant documents are not in" in err


def test_cli_errors(coll: Collection, beir: Path, server_url: sa.URL, tmp_path: Path) -> None:
    url = server_url.render_as_string(hide_password=False)
    queries, qrels = (str(p) for p in _files(beir))
    code, _, err = _run("eval", "-c", "no_such_coll", "--queries", queries, "--qrels", qrels,
                        "--url", url)  # fmt: skip
    assert code == 1
    assert "error: there is no collection 'no_such_coll'" in err

    bad = tmp_path / "bad.tsv"
    bad.write_text("query-id\tcorpus-id\tscore\nq-db\tpg\tyes\n")
    args = ["eval", "-c", coll.name, "--queries", queries, "--url", url]
    code, _, err = _run(*args, "--qrels", str(bad))
    assert code == 1
    assert "bad.tsv:2: the score 'yes' is not an integer grade" in err

    code, _, err = _run(*args, "--qrels", str(tmp_path / "missing.tsv"))
    assert code == 2
    assert "does not exist" in err

    code, _, err = _run(*args, "--qrels", qrels, "--mode", "bm25")
    assert code == 2
    assert "'bm25' is not one of 'vector', 'text', 'hybrid'" in err

    code, _, err = _run(*args, "--qrels", qrels, "--where", "[1]")
    assert code == 2
    assert "leave out --where" in err
