"""Hybrid fusion: the default per text ranking, set_fusion(), tune_fusion() and
`vecalchemy eval --fusion/--tune-fusion`, against the embedded server."""

from __future__ import annotations

import json
import random
import statistics
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import vecalchemy
from tests import test_eval
from vecalchemy.cli import main
from vecalchemy.collection import Collection
from vecalchemy.errors import ConfigurationError, InvalidArgument, InvalidSearch
from vecalchemy.eval import default_grid, evaluate, fusion_label, read_corpus, tune_fusion
from vecalchemy.query.fusion import BM25_FUSION, RRF, Weighted

GRID = [RRF(), Weighted((0.3, 0.7)), Weighted((0.8, 0.2))]

beir = test_eval.beir  # the tiny BEIR set (a fixture): 8 documents, 5 judged queries


def _collection(engine: sa.Engine, beir: Path, ranking: str) -> Collection:
    c = Collection(
        f"fus_{uuid.uuid4().hex[:8]}", embedder="hashing", engine=engine, text_ranking=ranking
    )
    docs = read_corpus(beir / "corpus.jsonl")
    c.add([d.content for d in docs], ids=[d.id for d in docs])
    return c


@pytest.fixture
def coll(engine: sa.Engine, beir: Path) -> Iterator[Collection]:
    c = _collection(engine, beir, "bm25")
    yield c
    c.drop()


def _files(beir: Path) -> tuple[Path, Path]:
    return beir / "queries.jsonl", beir / "qrels" / "test.tsv"


def _comment(engine: sa.Engine, name: str) -> str | None:
    with engine.connect() as conn:
        found = conn.execute(
            sa.text("SELECT obj_description(to_regclass(:t), 'pg_class')"), {"t": name}
        )
        return found.scalar()


def _ids(hits: list[vecalchemy.CollectionHit]) -> list[tuple[str, int, float]]:
    return [(h.id, h.chunk, h.similarity) for h in hits]


# -- defaults ------------------------------------------------------------------------------


def test_the_default_fusion_follows_the_text_ranking(
    coll: Collection, engine: sa.Engine, beir: Path
) -> None:
    """BM25 collections fuse 0.75/0.25 of normalised scores; ts_rank_cd ones use RRF."""
    assert coll.hybrid_fusion() == BM25_FUSION == Weighted((0.75, 0.25))
    query = "relational database server"
    default = coll.search(query, k=5, mode="hybrid")
    assert _ids(default) == _ids(coll.search(query, k=5, mode="hybrid", fusion=BM25_FUSION))
    assert all(-1e-9 <= h.similarity <= 1.0 + 1e-9 for h in default)  # a convex combination
    plain = _collection(engine, beir, "tsvector")
    try:
        assert plain.hybrid_fusion() == RRF()
        assert _ids(plain.search(query, k=5, mode="hybrid")) == _ids(
            plain.search(query, k=5, mode="hybrid", fusion=RRF())
        )
    finally:
        plain.drop()


# -- set_fusion ----------------------------------------------------------------------------


def test_set_fusion_is_recorded_for_every_collection_object(
    coll: Collection, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Collection.open(coll.name, engine=engine)
    query = "vector similarity search"
    other.search(query, k=3, mode="hybrid")  # checks the table now, and keeps what it read
    before = json.loads(_comment(engine, coll.name) or "{}")["vecalchemy"]
    coll.set_fusion(Weighted((0.3, 0.7)))
    after = json.loads(_comment(engine, coll.name) or "{}")["vecalchemy"]
    assert after.pop("fusion") == {"weighted": [0.3, 0.7]}
    assert after == before  # the rest of the configuration is kept
    assert coll.hybrid_fusion() == Weighted((0.3, 0.7))
    assert Collection.open(coll.name, engine=engine).hybrid_fusion() == Weighted((0.3, 0.7))
    # A long-lived object reads the table again after RECHECK_SECONDS.
    monkeypatch.setattr("vecalchemy.collection.collection.RECHECK_SECONDS", 0.0)
    assert other.hybrid_fusion() == Weighted((0.3, 0.7))
    assert _ids(other.search(query, k=3, mode="hybrid")) == _ids(
        coll.search(query, k=3, mode="hybrid", fusion=Weighted((0.3, 0.7)))
    )
    coll.set_fusion(RRF(k=5))
    assert Collection.open(coll.name, engine=engine).hybrid_fusion() == RRF(k=5)
    coll.set_fusion(None)
    assert coll.hybrid_fusion() == BM25_FUSION
    assert "fusion" not in json.loads(_comment(engine, coll.name) or "{}")["vecalchemy"]


def test_concurrent_set_fusion_calls_keep_the_configuration(
    coll: Collection, engine: sa.Engine
) -> None:
    """Calls from many threads at once: none fails, the rest of the configuration is kept,
    and one of the fusions written is the one recorded."""
    before = json.loads(_comment(engine, coll.name) or "{}")["vecalchemy"]
    fusions = [Weighted((round(0.1 + 0.1 * i, 1), round(0.9 - 0.1 * i, 1))) for i in range(6)]
    errors: list[BaseException] = []

    def worker(fusion: Weighted) -> None:
        try:
            for _ in range(3):
                Collection.open(coll.name, engine=engine).set_fusion(fusion)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f,)) for f in fusions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    after = json.loads(_comment(engine, coll.name) or "{}")["vecalchemy"]
    assert Weighted(tuple(after.pop("fusion")["weighted"])) in fusions
    assert after == before


def test_set_fusion_refuses_bad_input_and_writes_nothing(
    coll: Collection, engine: sa.Engine
) -> None:
    before = _comment(engine, coll.name)
    with pytest.raises(InvalidArgument, match="hybrid search has 2 legs"):
        coll.set_fusion(Weighted((0.2, 0.3, 0.5)))
    with pytest.raises(InvalidArgument, match="fusion must be RRF"):
        coll.set_fusion("rrf")  # type: ignore[arg-type]
    assert _comment(engine, coll.name) == before
    missing = Collection(f"fus_{uuid.uuid4().hex[:8]}", embedder="hashing", engine=engine)
    with pytest.raises(ConfigurationError, match="no collection"):
        missing.set_fusion(RRF())
    with pytest.raises(InvalidSearch, match="fusion must be RRF"):
        coll.search("database", mode="hybrid", fusion="rrf")  # type: ignore[arg-type]


def test_an_edited_fusion_entry_is_an_error_not_a_guess(
    coll: Collection, engine: sa.Engine
) -> None:
    config = json.loads(_comment(engine, coll.name) or "{}")
    config["vecalchemy"]["fusion"] = {"weighted": ["heavy", 1]}
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"COMMENT ON TABLE {coll.name} IS '{json.dumps(config)}'",
            execution_options={"no_parameters": True},
        )
    reopened = Collection.open(coll.name, engine=engine)
    with pytest.raises(ConfigurationError, match=r"set_fusion\(None\)"):
        reopened.search("database", mode="hybrid")
    reopened.set_fusion(None)  # the fix the message gives
    assert reopened.hybrid_fusion() == BM25_FUSION


# -- tune_fusion ---------------------------------------------------------------------------


def test_tune_fusion_scores_every_fusion_as_evaluate_does(coll: Collection, beir: Path) -> None:
    queries, qrels = _files(beir)
    tuning = tune_fusion(coll, queries, qrels, grid=GRID, folds=2, seed=3)
    metric = "ndcg@10"
    per_fusion = {}
    for fusion in GRID:
        result = evaluate(coll, queries, qrels, mode="hybrid", fusion=fusion)
        assert tuning.scores[fusion_label(fusion)] == pytest.approx(result.metrics[metric])
        per_fusion[fusion_label(fusion)] = [v[metric] for v in result.per_query.values()]
    assert tuning.vector == pytest.approx(evaluate(coll, queries, qrels).metrics[metric])
    assert tuning.text == pytest.approx(evaluate(coll, queries, qrels, mode="text").metrics[metric])
    best = max(tuning.scores.values())
    assert tuning.score == pytest.approx(best)
    first_best = next(f for f in GRID if tuning.scores[fusion_label(f)] == pytest.approx(best))
    assert tuning.fusion == first_best  # the first of equals, in grid order
    # The held-out estimate, recomputed: each fold scored with the others' choice.
    n = tuning.queries
    assert n == 5
    order = list(range(n))
    random.Random(3).shuffle(order)
    parts = [order[0::2], order[1::2]]
    held = []
    for i, part in enumerate(parts):
        train = parts[1 - i]
        means = {
            label: statistics.fmean(values[j] for j in train)
            for label, values in per_fusion.items()
        }
        top = max(means.values())
        choice = next(label for label in means if means[label] > top - 1e-12)
        assert tuning.fold_choices[i] == choice
        held.extend(per_fusion[choice][j] for j in part)
    assert tuning.heldout == pytest.approx(statistics.fmean(held))
    assert tuning.stored is False
    assert coll.hybrid_fusion() == BM25_FUSION  # nothing stored


def test_tune_fusion_store_makes_hybrid_search_use_the_choice(
    coll: Collection, beir: Path, engine: sa.Engine
) -> None:
    queries, qrels = _files(beir)
    tuning = tune_fusion(coll, queries, qrels, grid=[Weighted((0.2, 0.8))], folds=2, store=True)
    assert tuning.stored is True
    reopened = Collection.open(coll.name, engine=engine)
    assert reopened.hybrid_fusion() == Weighted((0.2, 0.8))
    entry = json.loads(_comment(engine, coll.name) or "{}")["vecalchemy"]["fusion"]
    assert entry["weighted"] == [0.2, 0.8]
    assert entry["tuned"]["metric"] == "ndcg@10"
    assert entry["tuned"]["heldout"] == round(tuning.heldout, 6)
    assert entry["tuned"]["queries"] == 5
    hits = reopened.search("bread dough kitchen", k=4, mode="hybrid")
    assert _ids(hits) == _ids(
        coll.search("bread dough kitchen", k=4, mode="hybrid", fusion=Weighted((0.2, 0.8)))
    )


def test_the_default_grid() -> None:
    grid = default_grid()
    assert grid[0] == RRF()
    weights = [f.weights for f in grid[1:] if isinstance(f, Weighted)]
    assert len(weights) == 19
    assert weights[0] == (0.05, 0.95)
    assert weights[-1] == (0.95, 0.05)
    assert all(w is not None and abs(sum(w) - 1) < 1e-9 for w in weights)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid": []}, "non-empty list"),
        ({"grid": ["rrf"]}, "give RRF"),
        ({"grid": [Weighted((1, 2, 3))]}, "hybrid search has 2 legs"),
        ({"grid": [RRF(), RRF()]}, "same fusion twice"),
        ({"folds": 1}, "folds must be an integer of at least 2"),
        ({"folds": 6}, "5 judged queries cannot be split into 6 folds"),
        ({"metric": "ndcg@3"}, "unknown metric 'ndcg@3'"),
    ],
)
def test_tune_fusion_refuses_bad_arguments_and_stores_nothing(
    coll: Collection, beir: Path, engine: sa.Engine, kwargs: dict[str, object], message: str
) -> None:
    queries, qrels = _files(beir)
    before = _comment(engine, coll.name)
    with pytest.raises(InvalidArgument, match=message):
        tune_fusion(coll, queries, qrels, store=True, **kwargs)  # type: ignore[arg-type]
    assert _comment(engine, coll.name) == before


def test_evaluate_takes_a_fusion_in_hybrid_mode_only(coll: Collection, beir: Path) -> None:
    queries, qrels = _files(beir)
    with pytest.raises(InvalidArgument, match="fusion= applies to mode='hybrid' only"):
        evaluate(coll, queries, qrels, mode="vector", fusion=RRF())
    with pytest.raises(InvalidArgument, match="needs a Collection"):
        tune_fusion("docs", queries, qrels)  # type: ignore[arg-type]


# -- the command line ------------------------------------------------------------------------


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cli_fusion_and_tune_fusion(
    coll: Collection, beir: Path, server_url: sa.URL, engine: sa.Engine
) -> None:
    url = server_url.render_as_string(hide_password=False)
    queries, qrels = (str(p) for p in _files(beir))
    args = ["eval", "-c", coll.name, "--queries", queries, "--qrels", qrels, "--url", url]
    code, out, err = _run(*args, "--mode", "hybrid", "--fusion", "weighted:0.3", "--json")
    assert code == 0, err
    direct = evaluate(coll, queries, qrels, mode="hybrid", fusion=Weighted((0.3, 0.7)))
    assert json.loads(out)["metrics"] == {n: round(v, 6) for n, v in direct.metrics.items()}

    code, out, err = _run(*args, "--tune-fusion", "--store", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["stored"] is True
    assert len(data["scores"]) == 20
    assert data["fusion"] == max(data["scores"], key=lambda label: data["scores"][label])
    chosen = Collection.open(coll.name, engine=engine).hybrid_fusion()
    assert fusion_label(chosen) == data["fusion"]

    code, out, err = _run(*args, "--tune-fusion")
    assert code == 0, err
    assert "vector leg alone" in out
    assert "<- best" in out
    assert "cross-validation" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--store"], "--store records what --tune-fusion chose"),
        (["--tune-fusion", "--fusion", "rrf"], "drop --fusion"),
        (["--mode", "text", "--fusion", "rrf"], "apply to --mode hybrid"),
        (["--mode", "hybrid", "--fusion", "weighted:1.5"], "is not a fusion"),
        (["--mode", "hybrid", "--fusion", "bogus"], "is not a fusion"),
    ],
)
def test_cli_fusion_errors(
    coll: Collection,
    beir: Path,
    server_url: sa.URL,
    engine: sa.Engine,
    extra: list[str],
    message: str,
) -> None:
    url = server_url.render_as_string(hide_password=False)
    queries, qrels = (str(p) for p in _files(beir))
    before = _comment(engine, coll.name)
    args = ["eval", "-c", coll.name, "--queries", queries, "--qrels", qrels, "--url", url]
    code, _, err = _run(*args, *extra)
    assert code == 2
    assert message in err
    assert _comment(engine, coll.name) == before


@pytest.mark.slow
def test_hybrid_search_and_its_stored_fusion_survive_a_server_restart(
    tmp_path: Path, beir: Path
) -> None:
    """A collection whose fusion was tuned and stored, searched by hybrid (its statement
    reused), keeps both across a restart of the server: the same object and a new one
    give the hits they gave before."""
    from vecalchemy.server import EmbeddedServer

    server = EmbeddedServer(tmp_path / "pg", settings={"fsync": "off"})
    server.start()
    engine = vecalchemy.create_engine(server.url(), pool_pre_ping=True)
    try:
        coll = _collection(engine, beir, "bm25")
        queries, qrels = _files(beir)
        tuning = tune_fusion(coll, queries, qrels, grid=GRID, folds=2, store=True)
        before = {q: _ids(coll.search(q, k=5, mode="hybrid")) for q in ("database", "bread")}
        server.stop()
        server.start()
        assert Collection.open(coll.name, engine=engine).hybrid_fusion() == tuning.fusion
        assert {q: _ids(coll.search(q, k=5, mode="hybrid")) for q in before} == before
    finally:
        engine.dispose()
        server.stop()
