"""Tests for get_embedder(): every spec form, and every way a spec can be wrong."""

from __future__ import annotations

from typing import Any

import pytest

import vecalchemy.embedders
from vecalchemy.embedders import (
    FastEmbedEmbedder,
    HashingEmbedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    get_embedder,
    is_embedder,
)
from vecalchemy.embedders.spec import SPEC_FORMS
from vecalchemy.errors import EmbedderError


def test_hashing() -> None:
    """'hashing' is HashingEmbedder(384); 'hashing:<dim>' sets the dimension."""
    embedder = get_embedder("hashing")
    assert isinstance(embedder, HashingEmbedder)
    assert embedder.name == HashingEmbedder(384).name
    sized = get_embedder("hashing:64")
    assert isinstance(sized, HashingEmbedder)
    assert sized.dim == 64
    assert sized.embed_query("hello").shape == (64,)


def test_minilm_is_the_default_sentence_transformer() -> None:
    """'minilm' is the packaged all-MiniLM-L6-v2 (made, not loaded: that is lazy)."""
    embedder = get_embedder("minilm")
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert embedder.name == "st:sentence-transformers/all-MiniLM-L6-v2@1110a243"
    assert embedder.dim == 384


def test_st_model() -> None:
    """'st:<model>' names any sentence-transformers model, loaded on first use."""
    embedder = get_embedder("st:BAAI/bge-small-en-v1.5")
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert embedder.model == "BAAI/bge-small-en-v1.5"
    assert embedder.name == "st:BAAI/bge-small-en-v1.5"
    default = get_embedder("st:sentence-transformers/all-MiniLM-L6-v2")
    assert default.name == "st:sentence-transformers/all-MiniLM-L6-v2@1110a243"


def test_fastembed_model() -> None:
    """'fastembed:<model>' makes a FastEmbedEmbedder without importing fastembed."""
    embedder = get_embedder("fastembed:BAAI/bge-small-en-v1.5")
    assert isinstance(embedder, FastEmbedEmbedder)
    assert embedder.model == "BAAI/bge-small-en-v1.5"


@pytest.mark.parametrize(
    ("spec", "model", "base_url"),
    [
        ("openai:text-embedding-3-small", "text-embedding-3-small", "https://api.openai.com/v1"),
        (
            "openai:nomic-embed-text:latest@http://localhost:11434/v1",
            "nomic-embed-text:latest",
            "http://localhost:11434/v1",
        ),
        ("openai:bge-m3@http://tei:8080/v1/", "bge-m3", "http://tei:8080/v1"),
        ("OpenAI:m@https://example.com/api/v1", "m", "https://example.com/api/v1"),
    ],
)
def test_openai(spec: str, model: str, base_url: str) -> None:
    """'openai:<model>[@<base_url>]'; the model may contain ':' (Ollama tags)."""
    embedder = get_embedder(spec)
    assert isinstance(embedder, OpenAIEmbedder)
    assert embedder.model == model
    assert embedder.base_url == base_url


def test_an_embedder_passes_through() -> None:
    """An Embedder instance is returned as it is."""
    embedder = HashingEmbedder(32)
    assert get_embedder(embedder) is embedder


def test_kind_is_case_insensitive_and_spaces_are_trimmed() -> None:
    """'  Hashing:16 ' works; the model part keeps its case."""
    embedder = get_embedder("  Hashing:16 ")
    assert embedder.dim == 16
    assert get_embedder("MiniLM").name.startswith("st:sentence-transformers/all-MiniLM-L6-v2")


def test_reexported() -> None:
    """get_embedder is importable from vecalchemy.embedders."""
    assert vecalchemy.embedders.get_embedder is get_embedder
    assert "get_embedder" in vecalchemy.embedders.__all__


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("", "unknown embedder"),
        ("   ", "unknown embedder"),
        ("bert", "unknown embedder"),
        ("cohere:embed-v3", "unknown embedder 'cohere'"),
        ("hashing:", "nothing after 'hashing:'"),
        ("hashing:abc", "the dimension 'abc' is not a whole number"),
        ("hashing:-3", "the dimension '-3' is not a whole number"),
        ("hashing:3.5", "not a whole number"),
        ("hashing:0", "dim must be an integer from 1 to 16000"),
        ("hashing:20000", "dim must be an integer from 1 to 16000"),
        ("minilm:x", "'minilm' takes no argument"),
        ("st", "'st' needs a model after a colon"),
        ("st:", "nothing after 'st:'"),
        ("st:  ", "nothing after 'st:'"),
        ("fastembed", "'fastembed' needs a model"),
        ("fastembed:", "nothing after 'fastembed:'"),
        ("openai", "'openai' needs a model"),
        ("openai:", "nothing after 'openai:'"),
        ("openai:@http://localhost:11434/v1", "no model name before '@'"),
        ("openai:m@", "no base URL after '@'"),
        ("openai:m@localhost:11434", "http:// or https://"),
        ("openai:m@ftp://host/v1", "http:// or https://"),
    ],
)
def test_bad_specs(spec: str, why: str) -> None:
    """Each malformed spec raises EmbedderError saying why and listing every accepted form."""
    with pytest.raises(EmbedderError) as info:
        get_embedder(spec)
    message = str(info.value)
    assert f"bad embedder spec {spec!r}" in message
    assert why in message
    for form in SPEC_FORMS:
        assert repr(form) in message


@pytest.mark.parametrize("spec", [None, 384, b"hashing", ["hashing"]])
def test_not_a_spec(spec: Any) -> None:
    """Neither a str nor an Embedder: EmbedderError listing the forms."""
    with pytest.raises(EmbedderError, match=r"a str or an Embedder, got .*'hashing:<dim>'"):
        get_embedder(spec)


def test_an_embedder_passes_through_without_being_read() -> None:
    """get_embedder(obj) does not read dim or name (which may load a model or send a request)."""
    unreachable = OpenAIEmbedder("m", base_url="http://127.0.0.1:9/v1", max_retries=0)
    assert get_embedder(unreachable) is unreachable  # no probe request: it would fail
    missing = FastEmbedEmbedder("BAAI/bge-small-en-v1.5")
    assert get_embedder(missing) is missing  # no import of fastembed


def test_is_embedder() -> None:
    """is_embedder checks the members statically; plain attributes count as members."""

    class Plain:
        def __init__(self) -> None:
            self.dim = 3
            self.name = "plain"

        def embed_documents(self, texts: Any) -> Any: ...
        def embed_query(self, text: Any) -> Any: ...
        async def aembed_documents(self, texts: Any) -> Any: ...
        async def aembed_query(self, text: Any) -> Any: ...

    assert is_embedder(Plain())
    assert is_embedder(HashingEmbedder())
    assert not is_embedder(object())
    assert not is_embedder("hashing")
    assert get_embedder(Plain()).name == "plain"
