"""Reading documents from files for `vecalchemy ingest`."""

from __future__ import annotations

from pathlib import Path

import pytest

import vecalchemy
from vecalchemy.cli._sources import html_to_text, read_documents


def test_html_to_text_keeps_visible_text_only() -> None:
    """Scripts, styles and tags are dropped; entities decoded; blocks become lines."""
    markup = (
        "<html><head><title>Guide &amp; FAQ</title><style>p {color: red}</style></head>"
        "<body><h1>Install</h1><p>Run <code>make</code>.</p><script>alert(1)</script>"
        "<ul><li>one</li><li>two</li></ul></body></html>"
    )
    text, title = html_to_text(markup)
    assert title == "Guide & FAQ"
    assert "alert" not in text
    assert "color" not in text
    assert "Install" in text
    assert "Run make." in text
    assert "one\ntwo" in text


def test_read_documents_walks_a_tree(tmp_path: Path) -> None:
    """Known suffixes are read recursively; ids are relative paths; binaries are skipped."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("# A\n\nalpha")
    (tmp_path / "sub" / "b.rst").write_text("Beta\n====\n\nbeta text")
    (tmp_path / "sub" / "c.html").write_text("<title>C</title><p>gamma</p>")
    (tmp_path / "d.txt").write_text("delta")
    (tmp_path / "e.bin").write_bytes(b"\x00\x01")
    (tmp_path / "f.md").write_text("   \n")
    (tmp_path / "g.txt").write_bytes(b"\xff\xfe\x00bad")
    root = tmp_path.as_posix()
    docs = {d.id.removeprefix(root + "/"): d for d in read_documents([tmp_path])}
    assert set(docs) == {"a.md", "sub/b.rst", "sub/c.html", "d.txt"}
    assert docs["a.md"].metadata == {"source": f"{root}/a.md", "type": "markdown"}
    assert docs["sub/c.html"].text == "gamma"
    assert docs["sub/c.html"].metadata["title"] == "C"
    only_md = [d.id for d in read_documents([tmp_path], glob="**/*.md")]
    assert only_md == [f"{root}/a.md"]  # f.md is whitespace only
    single = list(read_documents([tmp_path / "d.txt"]))
    assert [d.id for d in single] == [f"{root}/d.txt"]


def test_same_names_in_two_places_stay_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two README.md files given on one command line get distinct ids; a file reached twice
    is read once."""
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "README.md").write_text(f"# {folder}")
    monkeypatch.chdir(tmp_path)
    ids = [d.id for d in read_documents(["one", "two/README.md", "one/README.md"])]
    assert ids == ["one/README.md", "two/README.md"]


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    """A path that does not exist raises InvalidArgument naming it."""
    with pytest.raises(vecalchemy.InvalidArgument, match="no such file or directory"):
        list(read_documents([tmp_path / "nope"]))
