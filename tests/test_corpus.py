"""Tests for the standard-library docstring corpus."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

import vecalchemy.cli._corpus as corpus
from vecalchemy.cli._corpus import CorpusDocument, stdlib_corpus


@pytest.fixture
def fake_stdlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny standard library in a temporary directory, with one file of each kind."""
    files = {
        "alpha.py": '''
            """Module alpha: a module docstring long enough to be kept in the corpus."""

            def public(x):
                """Public function with a docstring that is certainly long enough."""

                def nested():
                    """A nested function is not part of the API, so it is left out."""

            def _private():
                """A private function is left out even with a long docstring."""

            def short():
                """Too short."""

            class Thing:
                """A public class whose docstring is long enough for the corpus."""

                def __init__(self):
                    """Make a Thing; the constructor docstring is kept in the corpus."""

                def method(self):
                    """A public method with a docstring long enough to be kept."""

                def _helper(self):
                    """A private method, left out of the corpus whatever its length."""

                def __repr__(self):
                    """A dunder method other than __init__, left out of the corpus."""

                class Inner:
                    """A class nested in a class is kept, under its dotted name."""

            class _Hidden:
                """A private class is left out, and so are all of its methods."""

                def visible(self):
                    """A public method of a private class is left out as well."""

            if True:
                def platform():
                    """Defined under an if: the first definition of a name wins."""
            else:
                def platform():
                    """The second definition of the same name is dropped as a duplicate."""

            try:
                async def fetch():
                    """An async function defined under a try block is kept as well."""
            except ImportError:
                pass
            ''',
        "broken.py": '''
            """This file does not parse, so it is skipped without failing the walk."""
            def oops(:
            ''',
        "_private_module.py": '"""A private module is skipped, docstring and all."""',
        "__main__.py": '"""A __main__ module is a script: skipped by the walk."""',
        "pkg/__init__.py": '"""Package pkg: its __init__ docstring is its document."""',
        "pkg/mod.py": '"""Module pkg.mod: a submodule docstring long enough to keep."""',
        "pkg/test/test_mod.py": '"""Tests are skipped: this must not appear anywhere."""',
        "pkg/tests/__init__.py": '"""Tests are skipped: this must not appear anywhere."""',
        "site-packages/thirdparty.py": '"""Third-party code is skipped: never in the corpus."""',
        "notapackage/loose.py": '"""A directory without __init__.py is no package: skipped."""',
    }
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"))
    (tmp_path / "pkg/test/__init__.py").write_text("")
    monkeypatch.setattr(corpus.sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    monkeypatch.setattr(corpus, "_cache", {})
    return tmp_path


def test_walks_public_documented_definitions(fake_stdlib: Path) -> None:
    """Exactly the public modules, classes, functions and methods with long docstrings."""
    docs = stdlib_corpus(min_chars=40)
    assert [d.id for d in docs] == [
        "alpha",
        "alpha.public",
        "alpha.Thing",
        "alpha.Thing.__init__",
        "alpha.Thing.method",
        "alpha.Thing.Inner",
        "alpha.platform",
        "alpha.fetch",
        "pkg",
        "pkg.mod",
    ]
    by_id = {d.id: d for d in docs}
    assert by_id["alpha.platform"].text.startswith("Defined under an if")
    assert by_id["alpha.Thing.method"] == CorpusDocument(
        id="alpha.Thing.method",
        title="alpha.Thing.method",
        text="A public method with a docstring long enough to be kept.",
        source="alpha.py:21",
    )
    assert by_id["pkg"].source == "pkg/__init__.py:1"
    assert by_id["pkg.mod"].source == "pkg/mod.py:1"


def test_min_chars_filters_short_docstrings(fake_stdlib: Path) -> None:
    """min_chars drops shorter docstrings; a low threshold brings short ones in."""
    assert "alpha.short" in {d.id for d in stdlib_corpus(min_chars=5)}
    assert "alpha.short" not in {d.id for d in stdlib_corpus(min_chars=40)}
    assert all(len(d.text) >= 70 for d in stdlib_corpus(min_chars=70))


def test_limit(fake_stdlib: Path) -> None:
    """limit returns the first documents of the full walk."""
    full = stdlib_corpus(min_chars=40)
    corpus._cache.clear()
    assert stdlib_corpus(limit=3, min_chars=40) == full[:3]
    assert stdlib_corpus(limit=0) == []
    assert stdlib_corpus(limit=3, min_chars=40) == full[:3]  # from the cache now
    with pytest.raises(ValueError, match="limit"):
        stdlib_corpus(limit=-1)


def test_real_stdlib_corpus_is_large_and_well_formed() -> None:
    """The real standard library yields thousands of unique, documented entries."""
    docs = stdlib_corpus()
    assert len(docs) > 2000
    ids = [d.id for d in docs]
    assert len(set(ids)) == len(ids)
    assert all(len(d.text) >= 80 for d in docs)
    assert all(d.title == d.id for d in docs)
    for doc in docs:
        parts = doc.id.split(".")
        assert not any(p.startswith("_") and p != "__init__" for p in parts), doc.id
        folders = doc.source.split("/")[:-1]
        assert not {"test", "tests", "idle_test", "site-packages"} & set(folders), doc.source
    assert not any(d.id.split(".")[0] in {"numpy", "sqlalchemy", "pytest"} for d in docs)


def test_sources_point_at_the_definitions() -> None:
    """A document's source names the file and the line where the name is defined."""
    by_id = {d.id: d for d in stdlib_corpus()}
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name, line_start in [
        ("json.dumps", "def dumps("),
        ("json.decoder.JSONDecoder", "class JSONDecoder"),
        ("json.decoder.JSONDecoder.decode", "def decode("),
    ]:
        path, line = by_id[name].source.rsplit(":", 1)
        source_line = (stdlib / path).read_text().splitlines()[int(line) - 1]
        assert source_line.strip().startswith(line_start), (name, source_line)
    assert "Serialize ``obj``" in by_id["json.dumps"].text


def test_documents_are_frozen() -> None:
    """CorpusDocument is immutable."""
    doc = stdlib_corpus(limit=1)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.text = "changed"  # type: ignore[misc]


def test_deterministic() -> None:
    """A fresh walk gives the same documents in the same order (its speed is the demo's
    and the ingest benchmark's to measure, not a test's)."""
    before = stdlib_corpus()  # from the cache when an earlier test walked already
    corpus._cache.clear()
    fresh = stdlib_corpus()
    assert fresh == before


def test_never_imports_the_modules() -> None:
    """Modules are parsed, not imported: modules with side effects stay unimported."""
    code = (
        "import sys\n"
        "from vecalchemy.cli._corpus import stdlib_corpus\n"
        "docs = stdlib_corpus()\n"
        "assert any(d.id.startswith('tkinter') for d in docs), 'tkinter not walked'\n"
        "bad = {'antigravity', 'this', 'tkinter', 'turtle', 'idlelib'} & set(sys.modules)\n"
        "print(sorted(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
