"""The README's tour runs as written, against the test database."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_starts_with_purpose_then_the_two_commands() -> None:
    """The README says what vecalchemy is for, then gives exactly make demo and make test."""
    text = README.read_text()
    first_heading = text.index("\n## ")
    assert "pgvector" in text[:first_heading]
    setup = re.search(r"## Set up\n\n```sh\n(.*?)```", text, flags=re.S)
    assert setup is not None
    commands = [line.split("#")[0].strip() for line in setup.group(1).splitlines()]
    assert commands == ["make demo", "make test"]


def test_readme_tour_runs(server_url: sa.URL, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every python block of the README runs in order, and prints what the text says."""
    monkeypatch.setenv("VECALCHEMY_DATABASE_URL", server_url.render_as_string(hide_password=False))
    blocks = _python_blocks()
    assert len(blocks) >= 8
    namespace: dict[str, object] = {"__name__": "readme"}
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            for block in blocks:
                exec(compile(block, str(README), "exec", dont_inherit=True), namespace)
    finally:
        base = namespace.get("Base")
        engine = namespace.get("engine")
        if base is not None and engine is not None:
            page = namespace.get("Page")
            if page is not None:  # the outbox of the sync section
                import vecalchemy

                vecalchemy.sync.uninstall(engine, page.embedding)  # type: ignore[attr-defined,arg-type]
            base.metadata.drop_all(engine)  # type: ignore[attr-defined]
            engine.dispose()  # type: ignore[attr-defined]
    printed = out.getvalue()
    assert (
        "DimensionMismatch - query vector has 2 dimensions but column tour_docs.embedding"
        in printed
    )
    assert "InvalidVector - query vector has a non-finite value (nan) at index 0" in printed
    assert "CAST(tour_big_docs.embedding AS HALFVEC(3072)) <=> CAST(" in printed
    assert "ef_search True True\n[]\nembedding 1544\n" in printed  # tune, doctor, sizes
    # BM25 text search, hybrid search, evaluate, tune_fusion
    assert "['reset', 'expiry']\n['reset', 'expiry']\n1.0 1.0\nTrue\n" in printed
    # the async search found the pgvector document first
    assert re.search(r"^async hits: \[2, \d\]$", printed, flags=re.M)
    assert "MetricMismatch - column tour_docs.embedding is declared with metric 'cosine'" in printed
