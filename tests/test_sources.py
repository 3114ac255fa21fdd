"""Reading documents from files for `vecalchemy ingest`."""

from __future__ import annotations

from pathlib import Path

import pytest

import vecalchemy
from vecalchemy.cli._sources import (
    ORIGIN,
    document_id,
    html_to_text,
    read_documents,
    read_sources,
    stale_documents,
)


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
    """Known suffixes are read recursively; ids are absolute outside the current directory;
    binary, empty and undecodable files are skipped with their reasons."""
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
    assert docs["a.md"].metadata == {
        "source": f"{root}/a.md",
        "path": f"{root}/a.md",
        "type": "markdown",
        "origin": ORIGIN,
    }
    assert docs["sub/c.html"].text == "gamma"
    assert docs["sub/c.html"].metadata["title"] == "C"
    only_md = [d.id for d in read_documents([tmp_path], glob="**/*.md")]
    assert only_md == [f"{root}/a.md"]  # f.md is whitespace only
    single = list(read_documents([tmp_path / "d.txt"]))
    assert [d.id for d in single] == [f"{root}/d.txt"]
    skipped = {s.path.removeprefix(root + "/"): s.reason for s in read_sources([tmp_path]).skipped}
    assert skipped == {
        "f.md": "empty",
        "g.txt": "binary (NUL bytes)",
    }  # e.bin: not a known suffix, found in a directory: not a candidate, not reported


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


def test_document_id_is_the_resolved_path_relative_to_the_root(tmp_path: Path) -> None:
    """Ids: resolved (no '.', '..', symlinks), POSIX, relative to the root when under it,
    else absolute."""
    root = tmp_path / "proj"
    (root / "docs").mkdir(parents=True)
    guide = root / "docs" / "guide.md"
    guide.write_text("x")
    outside = tmp_path / "elsewhere.md"
    outside.write_text("y")
    (root / "link.md").symlink_to(guide)
    (root / "docs2").symlink_to(root / "docs")
    assert document_id(guide, root) == "docs/guide.md"
    assert document_id(root / "docs" / ".." / "docs" / "./guide.md", root) == "docs/guide.md"
    assert document_id(root / "link.md", root) == "docs/guide.md"
    assert document_id(root / "docs2" / "guide.md", root) == "docs/guide.md"
    assert document_id(outside, root) == outside.resolve().as_posix()
    assert document_id(guide, root / "docs" / "..") == "docs/guide.md"


def test_document_id_defaults_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a root, ids are relative to the current directory (resolved)."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.md").write_text("a")
    monkeypatch.chdir(tmp_path)
    assert document_id("corpus/a.md") == "corpus/a.md"
    assert document_id("./corpus/../corpus/a.md") == "corpus/a.md"
    monkeypatch.chdir(tmp_path / "corpus")
    assert document_id("a.md") == "a.md"
    assert document_id("../corpus/a.md") == "a.md"


def test_a_tree_named_five_ways_gives_the_same_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """corpus, ./corpus, /abs/corpus, corpus/../corpus, and '.' from the parent: the same
    ids for the same files."""
    (tmp_path / "corpus" / "sub").mkdir(parents=True)
    (tmp_path / "corpus" / "a.md").write_text("# A")
    (tmp_path / "corpus" / "sub" / "b.txt").write_text("b")
    monkeypatch.chdir(tmp_path)
    expected = ["corpus/a.md", "corpus/sub/b.txt"]
    for given in ("corpus", "./corpus", str(tmp_path / "corpus"), "corpus/../corpus", "."):
        assert sorted(d.id for d in read_documents([given])) == expected, given


def test_a_file_reached_twice_is_one_document(tmp_path: Path) -> None:
    """Two arguments naming one file, a symlink to a file, and a symlinked directory each
    give one document, under the target's id."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A")
    (tmp_path / "alias.md").symlink_to(tmp_path / "docs" / "a.md")
    (tmp_path / "mirror").symlink_to(tmp_path / "docs")
    given = [tmp_path / "docs", tmp_path / "docs" / "a.md", tmp_path / "alias.md"]
    given.append(tmp_path / "mirror")
    docs = read_documents(given, root=tmp_path)
    assert [d.id for d in docs] == ["docs/a.md"]


def test_skip_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each skipped file is reported with its reason: binary, undecodable (naming the
    encoding and the fix), unsupported suffix when named explicitly, empty, unreadable."""
    (tmp_path / "bin.txt").write_bytes(b"abc\x00def")
    (tmp_path / "latin.txt").write_bytes("café crème".encode("latin-1"))
    (tmp_path / "logo.png").write_bytes(b"\x89PNG")
    (tmp_path / "Makefile").write_text("all:")
    (tmp_path / "blank.md").write_text(" \n\t\n")
    (tmp_path / "script.html").write_text("<script>only()</script>")
    (tmp_path / "locked.md").write_text("secret")
    (tmp_path / "ok.md").write_text("# fine")
    real_read_bytes = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        # The tests run as root, where chmod 000 does not stop a read.
        if self.name == "locked.md":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    named = [tmp_path / n for n in ("logo.png", "Makefile")]
    sources = read_sources([tmp_path, *named], root=tmp_path)
    assert [d.id for d in sources.documents] == ["ok.md"]
    reasons = {s.path: s.reason for s in sources.skipped}
    assert reasons.pop("bin.txt") == "binary (NUL bytes)"
    assert reasons.pop("latin.txt") == (
        "not valid utf-8 text (byte 0xe9 at offset 3); pass --encoding with the file's encoding"
    )
    assert reasons.pop("logo.png").startswith("unsupported suffix '.png'; ")
    assert reasons.pop("Makefile").startswith("unsupported suffix (none); ")
    assert reasons.pop("blank.md") == "empty"
    assert reasons.pop("script.html") == "empty"  # no visible text
    assert reasons.pop("locked.md") == "unreadable: Permission denied"
    assert reasons == {}


def test_encoding_decodes_other_text(tmp_path: Path) -> None:
    """encoding='latin-1' reads a Latin-1 file; a UTF-8 byte order mark is dropped; an
    unknown encoding is a clear error."""
    (tmp_path / "latin.txt").write_bytes("café crème".encode("latin-1"))
    (tmp_path / "bom.md").write_bytes("\ufeff# Title".encode())
    docs = {d.id: d.text for d in read_documents([tmp_path], encoding="latin-1", root=tmp_path)}
    assert docs["latin.txt"] == "café crème"
    assert {d.id: d.text for d in read_documents([tmp_path / "bom.md"], root=tmp_path)} == {
        "bom.md": "# Title"
    }
    with pytest.raises(vecalchemy.InvalidArgument, match="unknown encoding 'klingon'"):
        read_sources([tmp_path], encoding="klingon")


def test_stale_documents_stay_within_the_ingested_paths(tmp_path: Path) -> None:
    """Stale: stored by ingest (origin), under one of the paths, file gone. Files that
    still exist, other directories and documents without the origin are not stale."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "kept.md").write_text("x")
    (tmp_path / "docsx").mkdir()  # a sibling whose name starts like docs
    d = (tmp_path / "docs").as_posix()

    def meta(path: str, origin: str | None = ORIGIN) -> dict[str, str]:
        return {"path": path, "origin": origin} if origin else {"path": path}

    stored = {
        "kept": meta(f"{d}/kept.md"),
        "gone": meta(f"{d}/sub/gone.md"),
        "api": meta(f"{d}/api.md", origin=None),
        "other": meta(f"{tmp_path.as_posix()}/other/gone.md"),
        "sibling": meta(f"{tmp_path.as_posix()}/docsx/gone.md"),
    }
    assert stale_documents(stored, [tmp_path / "docs"]) == ["gone"]
    assert stale_documents(stored, [tmp_path / "docs" / "kept.md"]) == []
    assert stale_documents(stored, [tmp_path]) == ["gone", "other", "sibling"]
