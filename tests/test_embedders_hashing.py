"""Tests for the Embedder protocol and HashingEmbedder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import vecalchemy.embedders.hashing as hashing
from vecalchemy.cli._corpus import stdlib_corpus
from vecalchemy.embedders import Embedder, HashingEmbedder
from vecalchemy.errors import EmbedderError, VecalchemyError

TEXTS = [
    "Return a JSON string representing the Python object.",
    "Open the file and return a stream; raise OSError on failure.",
    "Sort the list in place, stably.",
]

# (first, paraphrase of first): every pair is about something different.
PARAPHRASES = [
    ("The cat sat on the mat and purred quietly.", "A cat was sitting on a mat, purring."),
    (
        "The central bank raised interest rates to fight inflation.",
        "Interest rates were increased by the central bank to curb inflation.",
    ),
    ("How do I parse a JSON file in Python?", "Parsing JSON documents with Python's json module."),
    (
        "The football match was cancelled because of heavy rain.",
        "Heavy rain forced the cancellation of the football game.",
    ),
    (
        "Compress the directory into a zip archive.",
        "Create a zip archive containing the directory's files.",
    ),
]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_satisfies_the_embedder_protocol() -> None:
    """HashingEmbedder is an Embedder (runtime-checkable protocol); other objects are not."""
    assert isinstance(HashingEmbedder(), Embedder)
    assert not isinstance(object(), Embedder)


def test_documents_are_float32_unit_rows_of_dim() -> None:
    """embed_documents returns (n, dim) float32 rows of L2 norm 1."""
    vectors = HashingEmbedder(dim=128).embed_documents(TEXTS)
    assert vectors.shape == (3, 128)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)


def test_query_is_the_document_embedding() -> None:
    """embed_query returns shape (dim,), equal to embedding the text as a document."""
    embedder = HashingEmbedder(dim=64)
    query = embedder.embed_query(TEXTS[1])
    assert query.shape == (64,)
    assert query.dtype == np.float32
    assert np.array_equal(query, embedder.embed_documents(TEXTS)[1])


def test_empty_list_gives_an_empty_matrix() -> None:
    """No texts give an array of shape (0, dim)."""
    vectors = HashingEmbedder(dim=32).embed_documents([])
    assert vectors.shape == (0, 32)
    assert vectors.dtype == np.float32


def test_a_text_is_embedded_the_same_alone_and_in_a_batch() -> None:
    """Batching (chunks of documents sharing one sort) does not change any vector."""
    embedder = HashingEmbedder(dim=96)
    texts = [d.text for d in stdlib_corpus(limit=80)]  # more than two internal chunks
    batch = embedder.embed_documents(texts)
    alone = np.stack([embedder.embed_query(t) for t in texts])
    assert np.array_equal(batch, alone)


def test_the_word_cache_does_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache that is cleared all the time gives the same vectors as a warm one."""
    texts = [d.text for d in stdlib_corpus(limit=50)]
    warm = HashingEmbedder()
    warm.embed_documents(texts)
    expected = warm.embed_documents(texts)
    monkeypatch.setattr(hashing, "_CACHE_LIMIT", 3)
    assert np.array_equal(HashingEmbedder().embed_documents(texts), expected)


def test_name_includes_every_setting_that_changes_the_output() -> None:
    """The default name is pinned; changing a setting changes both the name and the vectors."""
    default = HashingEmbedder()
    assert default.name == "hashing-v1:dim=384:ngrams=1-2:char=3-5:stop=en:seed=0"
    assert default.dim == 384
    variants = [
        HashingEmbedder(dim=384, seed=1),
        HashingEmbedder(dim=384, word_ngrams=(1, 1)),
        HashingEmbedder(dim=384, char_ngrams=(2, 4)),
        HashingEmbedder(dim=384, char_ngrams=None),
        HashingEmbedder(dim=384, stop_words=None),
        HashingEmbedder(dim=384, stop_words={"json"}),
    ]
    names = {v.name for v in variants}
    assert len(names) == len(variants)
    assert default.name not in names
    text = "Return the JSON string of the object."
    base = default.embed_query(text)
    for variant in variants:
        assert not np.array_equal(variant.embed_query(text), base), variant.name
    assert HashingEmbedder(char_ngrams=None).name.endswith(":char=none:stop=en:seed=0")
    assert HashingEmbedder(stop_words=None).name.endswith(":stop=none:seed=0")
    assert HashingEmbedder(stop_words=[]).name == HashingEmbedder(stop_words=None).name


def test_pinned_output() -> None:
    """The vectors are part of the contract (stored embeddings depend on them): pinned."""
    vector = HashingEmbedder(dim=16).embed_query("Hello, world!")
    expected = [
        0.175898, -0.351796, -0.175898, 0.0, 0.175898, -0.175898, -0.175898, 0.0,
        -0.175898, 0.555881, -0.379983, 0.0, 0.175898, 0.175898, 0.175898, -0.379983,
    ]  # fmt: skip
    np.testing.assert_allclose(vector, expected, atol=1e-6)


def test_deterministic_across_processes() -> None:
    """Another interpreter, with a different hash seed, computes exactly the same vectors."""
    code = (
        "import json, sys\n"
        "from vecalchemy.embedders import HashingEmbedder\n"
        "texts = json.loads(sys.stdin.read())\n"
        "print(json.dumps(HashingEmbedder(dim=64).embed_documents(texts).tolist()))\n"
    )
    expected = HashingEmbedder(dim=64).embed_documents(TEXTS)
    for hash_seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(TEXTS),
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        other = np.array(json.loads(out), dtype=np.float32)
        assert np.array_equal(other, expected)


def test_paraphrases_score_higher_than_unrelated_sentences() -> None:
    """Each sentence is closer to its paraphrase than to any sentence on another topic."""
    embedder = HashingEmbedder()
    firsts = embedder.embed_documents([a for a, _ in PARAPHRASES])
    seconds = embedder.embed_documents([b for _, b in PARAPHRASES])
    sims = firsts @ seconds.T
    for i in range(len(PARAPHRASES)):
        others = np.delete(sims[i], i)
        assert sims[i, i] > others.max() + 0.1, (PARAPHRASES[i], sims[i])


def test_character_ngrams_match_word_forms() -> None:
    """Character n-grams make inflected forms similar; without them they share nothing."""
    with_chars = HashingEmbedder()
    words_only = HashingEmbedder(char_ngrams=None)
    a, b = "embedding documents", "embeddings document"
    assert cosine(with_chars.embed_query(a), with_chars.embed_query(b)) > 0.4
    assert abs(cosine(words_only.embed_query(a), words_only.embed_query(b))) < 0.2


def test_case_and_stop_words_are_ignored() -> None:
    """Case and stop words ("the", "a") do not change the vector."""
    embedder = HashingEmbedder()
    assert np.array_equal(
        embedder.embed_query("The Cat on the mat"), embedder.embed_query("a cat MAT")
    )


def test_stop_words_only_text_is_still_embedded() -> None:
    """A text made only of stop words keeps them rather than becoming empty."""
    embedder = HashingEmbedder()
    v = embedder.embed_query("to be or not to be")
    assert np.isclose(np.linalg.norm(v), 1.0)
    assert cosine(v, embedder.embed_query("not to be")) > 0.5


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_text_raises(text: str) -> None:
    """Empty or whitespace-only texts raise EmbedderError naming their index."""
    embedder = HashingEmbedder()
    with pytest.raises(EmbedderError, match="index 1 is empty"):
        embedder.embed_documents(["fine", text])
    with pytest.raises(EmbedderError, match="empty"):
        embedder.embed_query(text)


def test_punctuation_only_text_is_embedded() -> None:
    """A text with no letters or digits is embedded from its pieces, not rejected."""
    embedder = HashingEmbedder()
    v = embedder.embed_query("?!")
    assert np.isclose(np.linalg.norm(v), 1.0)
    assert not np.array_equal(v, embedder.embed_query("..."))


def test_short_text_with_bigrams_only() -> None:
    """With word_ngrams=(2, 2) a one-word text is still embedded (as one n-gram)."""
    v = HashingEmbedder(word_ngrams=(2, 2), char_ngrams=None).embed_query("json")
    assert np.isclose(np.linalg.norm(v), 1.0)


def test_features_that_cancel_out_raise() -> None:
    """A text whose features cancel out exactly raises instead of giving a zero vector."""
    embedder = HashingEmbedder(dim=1, word_ngrams=(1, 1), char_ngrams=None, stop_words=None)
    signs = {f"w{i}": float(embedder.embed_query(f"w{i}")[0]) for i in range(40)}
    positive = next(w for w, s in signs.items() if s > 0)
    negative = next(w for w, s in signs.items() if s < 0)
    with pytest.raises(EmbedderError, match="zero vector"):
        embedder.embed_query(f"{positive} {negative}")


def test_bad_inputs_raise() -> None:
    """A single str, or a non-str item, raise EmbedderError (a VecalchemyError)."""
    embedder = HashingEmbedder()
    with pytest.raises(EmbedderError, match="single str"):
        embedder.embed_documents("not a list")
    with pytest.raises(EmbedderError, match="index 1 is a int"):
        embedder.embed_documents(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(VecalchemyError, match="takes a str"):
        embedder.embed_query(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dim": 0},
        {"dim": 16_001},
        {"dim": 3.5},
        {"word_ngrams": (2, 1)},
        {"word_ngrams": (0, 1)},
        {"char_ngrams": (3,)},
        {"seed": -1},
        {"stop_words": "the"},
    ],
)
def test_bad_settings_raise(kwargs: dict[str, object]) -> None:
    """Out-of-range settings raise EmbedderError when the embedder is made."""
    with pytest.raises(EmbedderError):
        HashingEmbedder(**kwargs)  # type: ignore[arg-type]


async def test_async_twins_match_sync() -> None:
    """aembed_documents and aembed_query return what their sync twins return."""
    embedder = HashingEmbedder(dim=48)
    assert np.array_equal(await embedder.aembed_documents(TEXTS), embedder.embed_documents(TEXTS))
    assert np.array_equal(await embedder.aembed_query(TEXTS[0]), embedder.embed_query(TEXTS[0]))
    with pytest.raises(EmbedderError):
        await embedder.aembed_documents(["ok", ""])


def test_many_long_texts() -> None:
    """5,000 texts of 300 words (stdlib docstrings) embed to unit vectors, each the same
    as embedding it alone (batching changes nothing). Speed is benchmarked, not tested."""
    words = " ".join(d.text for d in stdlib_corpus()).split()
    texts = [" ".join(words[i * 300 : i * 300 + 300]) for i in range(len(words) // 300)]
    texts = (texts * (5000 // len(texts) + 1))[:5000]
    embedder = HashingEmbedder()
    vectors = embedder.embed_documents(texts)
    assert vectors.shape == (5000, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[7], embedder.embed_documents([texts[7]])[0])
