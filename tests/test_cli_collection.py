"""`vecalchemy ingest` and `vecalchemy search` on a folder of Markdown files."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from vecalchemy.cli import main

DOCS = {
    "install.md": "# Installing\n\nRun `pip install vecalchemy` and then `vecalchemy db up`.\n",
    "search.md": "# Searching\n\nUse `vecalchemy search` to find similar chunks with pgvector.\n",
    "guide/cats.md": "# Cats\n\nCats sleep most of the day and purr when content.\n",
    "guide/page.html": (
        "<html><title>Dogs</title><body><p>Dogs like walks and fetching balls.</p></body></html>"
    ),
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for rel, text in DOCS.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.fixture
def name(engine: sa.Engine) -> Iterator[str]:
    coll = f"cli_{uuid.uuid4().hex[:8]}"
    yield coll
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{coll}"')


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_ingest_then_search(folder: Path, name: str, server_url: sa.URL) -> None:
    """Files are ingested once; a second ingest changes nothing; search finds the right file."""
    url = server_url.render_as_string(hide_password=False)
    code, out, err = _run(
        "ingest", str(folder), "-c", name, "--embedder", "hashing", "--url", url, "--json"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["files"] == 4
    assert summary["documents_embedded"] == 4
    assert summary["chunks"] >= 4

    code, out, err = _run("ingest", str(folder), "-c", name, "--url", url, "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["documents_unchanged"] == 4  # embedder read back from the collection
    assert again["documents_embedded"] == 0

    code, out, err = _run(
        "search", "how do I install it", "-c", name, "--url", url, "--json", "-k", "2"
    )
    assert code == 0, err
    hits = json.loads(out)
    assert hits[0]["id"] == f"{folder.as_posix()}/install.md"
    assert hits[0]["metadata"]["type"] == "markdown"

    code, out, _ = _run(
        "search", "pets", "-c", name, "--url", url, "--json", "--where", '{"type": "html"}'
    )
    assert code == 0
    assert [h["id"] for h in json.loads(out)] == [f"{folder.as_posix()}/guide/page.html"]

    code, out, _ = _run("search", "walks with a dog", "-c", name, "--url", url)
    assert code == 0
    assert "guide/page.html" in out
    assert "similarity" in out


def test_search_errors(name: str, server_url: sa.URL) -> None:
    """Unknown collection: exit 1 with a clean message; bad --where JSON: usage error."""
    url = server_url.render_as_string(hide_password=False)
    result = CliRunner().invoke(main, ["search", "x", "-c", name, "--url", url])
    assert result.exit_code == 1
    assert f"there is no collection '{name}'" in result.stderr
    for where, message in (
        ("{nope", "not valid JSON"),
        ("", "empty"),
        ("null", "null"),
        ("{}", "empty object"),
        ("[]", "empty list"),
    ):
        result = CliRunner().invoke(
            main, ["search", "x", "-c", name, "--url", url, "--where", where]
        )
        assert result.exit_code == 2, where  # a usage error, never "no filter"
        assert message in result.stderr, (where, result.stderr)


def test_search_with_another_embedder_is_refused(
    folder: Path, name: str, server_url: sa.URL
) -> None:
    """search --embedder naming another model than the collection's: exit 1, the message
    names both (the stored one by the spec to pass); the collection still searches."""
    url = server_url.render_as_string(hide_password=False)
    code, _, err = _run("ingest", str(folder), "-c", name, "--embedder", "hashing", "--url", url)
    assert code == 0, err
    result = CliRunner().invoke(
        main, ["search", "cats", "-c", name, "--embedder", "hashing:128", "--url", url]
    )
    assert result.exit_code == 1
    assert "stores 384-dimension vectors but embedder hashing-v1:dim=128" in result.stderr
    assert "use the embedder it was built with (hashing)" in result.stderr
    code, out, err = _run("search", "cats", "-c", name, "--url", url, "--json")
    assert code == 0, err
    assert json.loads(out)[0]["id"] == f"{folder.as_posix()}/guide/cats.md"


def test_ingest_nothing_readable(tmp_path: Path, name: str, server_url: sa.URL) -> None:
    """A folder with no readable files is a clean error."""
    (tmp_path / "x.bin").write_bytes(b"\x00\x01")
    url = server_url.render_as_string(hide_password=False)
    result = CliRunner().invoke(
        main, ["ingest", str(tmp_path), "-c", name, "--embedder", "hashing", "--url", url]
    )
    assert result.exit_code == 1
    assert "no readable" in result.stderr
