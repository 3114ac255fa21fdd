"""The demo runs end to end on the real standard-library corpus and finds relevant docstrings."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from rich.console import Console

import vecalchemy
from vecalchemy.cli import main
from vecalchemy.cli._demo import DemoDoc, default_embedder, run_demo
from vecalchemy.embedders import OnnxEmbedder, SentenceTransformerEmbedder


@pytest.fixture
def demo_engine(server_url: sa.URL) -> Iterator[sa.Engine]:
    eng = vecalchemy.create_engine(server_url)
    yield eng
    DemoDoc.__table__.drop(eng, checkfirst=True)
    eng.dispose()


def test_demo_full_corpus(demo_engine: sa.Engine) -> None:
    """All steps run; thousands of docstrings load; queries find the right modules via HNSW."""
    console = Console(record=True, width=140)
    report = run_demo(engine=demo_engine, console=console, embedder="hashing")
    assert report.documents > 2000
    assert set(report.timings) == {"database", "corpus", "embed", "load", "index", "queries"}
    with demo_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(DemoDoc)).scalar() == (
            report.documents
        )
        indexdef = conn.execute(
            sa.text(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'vecalchemy_demo_docs' "
                "AND indexdef LIKE :pattern"
            ),
            {"pattern": "%USING hnsw%"},
        ).scalar()
    assert "vector_cosine_ops" in str(indexdef)
    by_query = {r.query: [h.title for h in r.hits] for r in report.results}
    json_hits = by_query["parse a JSON document into Python objects"]
    assert any(t.startswith("json") for t in json_hits[:3]), json_hits
    gzip_hits = by_query["compress data with gzip"]
    assert any(t.split(".")[0] in {"gzip", "zlib", "bz2", "lzma"} for t in gzip_hits), gzip_hits
    for result in report.results:
        sims = [h.similarity for h in result.hits]
        assert len(sims) == 5
        assert sims == sorted(sims, reverse=True)
    # HNSW at ef_search 40 on hashing vectors: about 0.85-0.95; a broken recall (ids
    # compared wrongly) would be near 0.
    assert report.recall >= 0.6
    assert all(0.0 <= r.recall <= 1.0 for r in report.results)
    text = console.export_text()
    assert "recall@10" in text
    assert "embedding" in text
    assert "timings" in text


@pytest.mark.slow
def test_demo_cli_json(demo_engine: sa.Engine, server_url: sa.URL) -> None:
    """`vecalchemy demo --limit --json` prints a machine-readable report."""
    result = CliRunner().invoke(
        main,
        [
            "demo",
            "--limit",
            "150",
            "-k",
            "3",
            "--json",
            "--url",
            server_url.render_as_string(False),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["documents"] == 150
    assert all(len(r["hits"]) == 3 for r in report["results"])
    assert 0.5 <= report["recall"] <= 1.0


def test_demo_cli_bad_url_is_a_clean_error() -> None:
    """A non-PostgreSQL URL gives a one-line error and exit code 1, not a traceback."""
    result = CliRunner().invoke(main, ["demo", "--url", "sqlite:///x.db"])
    assert result.exit_code == 1
    assert "error: vecalchemy needs PostgreSQL with pgvector" in result.output
    assert "Traceback" not in result.output


def test_default_embedder_is_minilm_on_onnx_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo embeds with MiniLM on ONNX Runtime when it is installed (same name and
    vectors as sentence-transformers, faster), else with sentence-transformers."""
    console = Console(record=True)
    chosen = default_embedder(console)
    assert isinstance(chosen, OnnxEmbedder)
    assert chosen.precision == "fp32"
    assert chosen.name == SentenceTransformerEmbedder().name
    real = importlib.util.find_spec

    def without_onnxruntime(name: str, *args: Any) -> Any:
        return None if name == "onnxruntime" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_onnxruntime)
    assert isinstance(default_embedder(console), SentenceTransformerEmbedder)
    assert console.export_text() == ""  # no notice: MiniLM either way
