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


def _count(name: str, url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.exec_driver_sql(f'SELECT count(DISTINCT id) FROM "{name}"').scalar_one()
            )
    finally:
        engine.dispose()


def test_ingest_ids_do_not_depend_on_how_the_path_is_typed(
    folder: Path, name: str, server_url: sa.URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same tree ingested as `corpus`, `/abs/corpus`, `./corpus/../corpus` and `.`
    (from inside its parent) stays 4 documents, all unchanged after the first."""
    url = server_url.render_as_string(hide_password=False)
    corpus = folder / "corpus"
    corpus.mkdir()
    for rel in DOCS:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        target = corpus / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).rename(target)
    monkeypatch.chdir(folder)
    code, out, err = _run(
        "ingest", "corpus", "-c", name, "--embedder", "hashing", "--url", url, "--json"
    )
    assert code == 0, err
    assert json.loads(out)["documents_embedded"] == 4
    for given in (str(corpus), "./corpus/../corpus", "."):
        code, out, err = _run("ingest", given, "-c", name, "--url", url, "--json")
        assert code == 0, err
        summary = json.loads(out)
        assert (summary["documents_embedded"], summary["documents_unchanged"]) == (0, 4), given
        assert _count(name, url) == 4
    code, out, _ = _run("search", "install", "-c", name, "--url", url, "--json", "-k", "1")
    assert json.loads(out)[0]["id"] == "corpus/install.md"


def test_prune_removes_only_documents_whose_files_are_gone(
    folder: Path, name: str, server_url: sa.URL, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Without --prune a deleted file's document stays and is counted as stale; with it,
    the document is deleted and no longer found. Documents from another directory, and
    one added through the Python API, survive."""
    from vecalchemy import Collection, create_engine

    url = server_url.render_as_string(hide_password=False)
    other = tmp_path_factory.mktemp("other")
    (other / "birds.md").write_text("# Birds\n\nBirds sing at dawn.\n")
    for path in (folder, other):
        code, _, err = _run("ingest", str(path), "-c", name, "--embedder", "hashing", "--url", url)
        assert code == 0, err
    engine = create_engine(url)
    try:
        Collection.open(name, engine=engine).upsert(
            ["Cats also appear in the API note."],
            ids=["api-note"],
            metadata=[{"source": f"{folder.as_posix()}/guide/api.md"}],
        )
    finally:
        engine.dispose()
    assert _count(name, url) == 6
    (folder / "guide" / "cats.md").unlink()
    cats_id = f"{folder.as_posix()}/guide/cats.md"

    code, out, err = _run("ingest", str(folder), "-c", name, "--url", url, "--json")
    assert code == 0, err
    assert (json.loads(out)["stale"], json.loads(out)["pruned"]) == (1, 0)
    code, out, err = _run("ingest", str(folder), "-c", name, "--url", url)
    assert "1 documents whose files are gone are still in" in err
    assert "--prune" in err
    assert _count(name, url) == 6

    code, out, err = _run("ingest", str(folder), "-c", name, "--url", url, "--prune", "--json")
    assert code == 0, err
    assert (json.loads(out)["stale"], json.loads(out)["pruned"]) == (0, 1)
    assert _count(name, url) == 5
    code, out, _ = _run(
        "search", "cats sleep and purr", "-c", name, "--url", url, "--json", "-k", "10"
    )
    ids = [h["id"] for h in json.loads(out)]
    assert cats_id not in ids
    assert "api-note" in ids
    assert f"{other.as_posix()}/birds.md" in ids

    code, out, err = _run("ingest", str(folder), "-c", name, "--url", url, "--prune", "--json")
    assert json.loads(out)["pruned"] == 0  # nothing left to prune


def test_prune_of_an_emptied_directory(folder: Path, name: str, server_url: sa.URL) -> None:
    """--prune on a directory whose files are all gone deletes their documents (no
    'no readable files' error); without --prune it is an error."""
    url = server_url.render_as_string(hide_password=False)
    code, _, err = _run(
        "ingest", str(folder / "guide"), "-c", name, "--embedder", "hashing", "--url", url
    )
    assert code == 0, err
    for path in (folder / "guide").iterdir():
        path.unlink()
    code, _, err = _run("ingest", str(folder / "guide"), "-c", name, "--url", url)
    assert code == 1
    assert "no readable" in err
    code, out, err = _run(
        "ingest", str(folder / "guide"), "-c", name, "--url", url, "--prune", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["pruned"] == 2
    assert _count(name, url) == 0


def test_ingest_reports_skipped_files(folder: Path, name: str, server_url: sa.URL) -> None:
    """The summary (and --json) lists each skipped file with its reason."""
    url = server_url.render_as_string(hide_password=False)
    (folder / "blob.txt").write_bytes(b"\x00\x01\x02")
    (folder / "latin.md").write_bytes("# Café\n\nLe café est très chaud.".encode("latin-1"))
    (folder / "empty.md").write_text("")
    (folder / "data.csv").write_text("a,b")
    args = ("-c", name, "--embedder", "hashing", "--url", url)
    code, out, err = _run("ingest", str(folder), str(folder / "data.csv"), *args, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["files"] == 4
    reasons = {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in summary["skipped"]}
    assert reasons["blob.txt"] == "binary (NUL bytes)"
    assert reasons["latin.md"].startswith("not valid utf-8 text")
    assert "pass --encoding" in reasons["latin.md"]
    assert reasons["empty.md"] == "empty"
    assert reasons["data.csv"].startswith("unsupported suffix '.csv'")
    assert len(reasons) == 4
    code, _, err = _run("ingest", str(folder), *args)
    assert "skipped 3 files:" in err  # data.csv is not named this time
    assert "blob.txt: binary (NUL bytes)" in err


def test_ingest_with_encoding(folder: Path, name: str, server_url: sa.URL) -> None:
    """A Latin-1 file ingested with --encoding latin-1 is searchable with its accents; an
    unknown encoding is a usage error."""
    url = server_url.render_as_string(hide_password=False)
    latin = folder / "latin.md"
    latin.write_bytes("# Café\n\nLe café crème est très chaud.".encode("latin-1"))
    args = ("-c", name, "--embedder", "hashing", "--url", url)
    code, out, err = _run("ingest", str(latin), *args, "--encoding", "latin-1", "--json")
    assert code == 0, err
    assert json.loads(out)["skipped"] == []
    code, out, _ = _run("search", "café crème", "-c", name, "--url", url, "--json", "-k", "1")
    hit = json.loads(out)[0]
    assert hit["id"] == latin.as_posix()
    assert "café crème est très chaud" in hit["text"]
    result = CliRunner().invoke(main, ["ingest", str(latin), *args, "--encoding", "klingon"])
    assert result.exit_code == 2
    assert "unknown encoding 'klingon'" in result.stderr


@pytest.mark.slow
def test_ingest_reports_truncated_chunks(folder: Path, name: str, server_url: sa.URL) -> None:
    """--splitter none with MiniLM on a long file: the summary and --json count the chunk
    the model truncates and the tokens it ignores; the default splitter truncates none."""
    url = server_url.render_as_string(hide_password=False)
    long = folder / "long.md"
    long.write_text("# Long\n\n" + "Vector search in PostgreSQL with pgvector. " * 80)
    args = ("-c", name, "--embedder", "minilm", "--url", url)
    code, out, err = _run("ingest", str(long), *args, "--splitter", "none", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["truncated_chunks"] == 1
    assert summary["truncated_tokens"] > 300
    long.write_text(long.read_text() + "\nOne more line.\n")
    code, _, err = _run("ingest", str(long), *args)
    assert code == 0, err
    assert "warning: 1 chunks are longer than the model's window" in " ".join(err.split())
    other = f"{name}_fit"
    try:
        code, out, err = _run("ingest", str(long), "-c", other, "--embedder", "minilm",
                              "--url", url, "--json")  # fmt: skip
        assert code == 0, err
        fitted = json.loads(out)
        assert (fitted["truncated_chunks"], fitted["chunks"] > 1) == (0, True)
    finally:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{other}"')
        engine.dispose()
