"""Tests for FastEmbedEmbedder that need neither fastembed nor the network.

fastembed fetches its models from a hub that this environment cannot reach, and it is
not in the test extra. What is tested here, honestly: the embedder is made without
importing it, and the missing extra is a clear error. Its model loading and batching
are not tested here (no fake of the library stands in for it).
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

import vecalchemy.embedders.fastembed as fastembed_module
from vecalchemy.embedders import FastEmbedEmbedder, get_embedder, is_embedder
from vecalchemy.errors import EmbedderError


@pytest.fixture(autouse=True)
def _fresh_model_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastembed_module, "_MODELS", {})


def test_made_without_importing_fastembed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Making one (directly or by spec) imports nothing: it satisfies the protocol."""
    monkeypatch.setitem(sys.modules, "fastembed", None)
    embedder = FastEmbedEmbedder("BAAI/bge-small-en-v1.5", cache_dir="/srv/models")
    assert is_embedder(embedder)
    assert get_embedder(embedder) is embedder  # passes through without reading dim or name
    assert repr(embedder) == "FastEmbedEmbedder('BAAI/bge-small-en-v1.5', cache_dir='/srv/models')"
    assert isinstance(get_embedder("fastembed:BAAI/bge-small-en-v1.5"), FastEmbedEmbedder)


def test_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without fastembed, dim, name and embedding say to install vecalchemy[fastembed]."""
    monkeypatch.setitem(sys.modules, "fastembed", None)  # `import fastembed` fails
    embedder = FastEmbedEmbedder()
    for use in (
        lambda: embedder.dim,
        lambda: embedder.name,
        lambda: embedder.embed_documents(["a text"]),
        lambda: embedder.embed_query("a query"),
    ):
        with pytest.raises(EmbedderError, match=r"pip install 'vecalchemy\[fastembed\]'") as info:
            use()
        assert isinstance(info.value.__cause__, ImportError)


def test_fastembed_is_not_in_the_test_environment() -> None:
    """The real fastembed is not installed here (so nothing above could reach a hub)."""
    with pytest.raises(ImportError):
        __import__("fastembed")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": ""}, "model must be"),
        ({"batch_size": 0}, "batch_size must be"),
        ({"threads": 0}, "threads must be"),
    ],
)
def test_bad_settings(kwargs: dict[str, Any], match: str) -> None:
    """Bad settings raise EmbedderError when the embedder is made."""
    with pytest.raises(EmbedderError, match=match):
        FastEmbedEmbedder(**kwargs)
