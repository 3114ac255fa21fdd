"""A deterministic, dependency-free embedder based on feature hashing.

:class:`HashingEmbedder` needs no model download and no network: it hashes the words,
word n-grams and character n-grams of a text into a fixed number of dimensions. It is
the embedder for tests, examples and offline use; its vectors capture shared
vocabulary (including word forms, through character n-grams), not meaning.

Example::

    >>> from vecalchemy.embedders import HashingEmbedder
    >>> embedder = HashingEmbedder(dim=256)
    >>> vectors = embedder.embed_documents(["Parse a JSON document.", "Open a socket."])
    >>> vectors.shape, vectors.dtype
    ((2, 256), dtype('float32'))
    >>> query = embedder.embed_query("parsing json")
    >>> bool(vectors[0] @ query > vectors[1] @ query)
    True
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import unicodedata
from collections.abc import Collection, Sequence

import numpy as np
import numpy.typing as npt

from vecalchemy.errors import EmbedderError

__all__ = ["DEFAULT_STOP_WORDS", "HashingEmbedder"]

_ENGLISH_STOP_WORDS = """
    a about above after again against all am an and any are as at be because been before
    being below between both but by could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into
    is it its itself me more most my myself nor of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours yourself
    yourselves
"""
#: English function words left out of the features by default: without corpus
#: statistics (no IDF) they would otherwise make every pair of texts look alike.
DEFAULT_STOP_WORDS: frozenset[str] = frozenset(_ENGLISH_STOP_WORDS.split())

_WORD = re.compile(r"\w+")
_MASK56 = (1 << 56) - 1
_GOLDEN = 0x9E3779B97F4A7C15
# Texts are embedded in chunks: a chunk's document index must fit in the top 8 bits of a
# key, and sorting the keys of 32 texts at a time stays in the CPU cache (measured fastest).
_CHUNK = 32
# Per-word features are cached; the cache is dropped when it grows past this many words.
_CACHE_LIMIT = 200_000
_MAX_DIM = 16_000  # the most dimensions a pgvector column can hold


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64's finaliser: a fixed, well-spread permutation of 64-bit integers."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    mixed: npt.NDArray[np.uint64] = x ^ (x >> np.uint64(31))
    return mixed


def _check_range(what: str, value: object, lowest: int, highest: int) -> tuple[int, int]:
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or not lowest <= value[0] <= value[1] <= highest
    ):
        raise EmbedderError(
            f"{what} must be a pair (min, max) with {lowest} <= min <= max <= {highest}, "
            f"got {value!r}"
        )
    return value[0], value[1]


class HashingEmbedder:
    """Embed texts by signed feature hashing of words, word n-grams and character n-grams.

    Each text is normalised (Unicode NFKC, case-folded) and split into words (runs of
    letters, digits and underscores); stop words are dropped unless nothing else is
    left. The features are the word n-grams of ``word_ngrams`` (unigrams and bigrams by
    default) and the character n-grams of ``char_ngrams`` inside each word, taken from
    the word padded as ``<word>`` so that prefixes and suffixes count. Every feature is
    hashed with BLAKE2b (keyed by ``seed``) to a dimension and a sign, weighted by its
    sublinear term frequency ``1 + log(count)``; the word and the character parts are
    each L2-normalised, added, and the sum is L2-normalised again. Cosine similarity
    and inner product therefore rank alike.

    The output depends only on the text and the settings, all of which are part of
    :attr:`name`: it is the same in every process and on every Python version (up to
    changes in Unicode's case folding of rare characters).

    Empty or whitespace-only texts raise :class:`~vecalchemy.errors.EmbedderError`: a
    zero vector has no direction, so cosine search cannot rank or index it. A text of
    punctuation only is embedded from its whitespace-separated pieces.

    Example::

        >>> embedder = HashingEmbedder(dim=384)
        >>> embedder.name
        'hashing-v1:dim=384:ngrams=1-2:char=3-5:stop=en:seed=0'
        >>> v = embedder.embed_query("How do I read a CSV file?")
        >>> v.shape, round(float(v @ v), 5)
        ((384,), 1.0)
    """

    def __init__(
        self,
        dim: int = 384,
        *,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] | None = (3, 5),
        stop_words: Collection[str] | None = DEFAULT_STOP_WORDS,
        seed: int = 0,
    ) -> None:
        if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= _MAX_DIM:
            raise EmbedderError(f"dim must be an integer from 1 to {_MAX_DIM}, got {dim!r}")
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**64:
            raise EmbedderError(f"seed must be an integer from 0 to 2**64 - 1, got {seed!r}")
        if isinstance(stop_words, str):
            raise EmbedderError("stop_words must be a collection of words, not one str")
        self._dim = dim
        self._word_ngrams = _check_range("word_ngrams", word_ngrams, 1, 8)
        self._char_ngrams = (
            None if char_ngrams is None else _check_range("char_ngrams", char_ngrams, 1, 16)
        )
        self._stop_words: frozenset[str] = (
            frozenset()
            if stop_words is None
            else frozenset(unicodedata.normalize("NFKC", w).casefold() for w in stop_words)
        )
        self._seed = seed
        self._hasher = hashlib.blake2b(digest_size=8, key=seed.to_bytes(8, "little"))
        self._cache: dict[str, tuple[int, npt.NDArray[np.uint64]]] = {}

        if not self._stop_words:
            stop = "none"
        elif self._stop_words == DEFAULT_STOP_WORDS:
            stop = "en"
        else:
            listing = "\n".join(sorted(self._stop_words)).encode()
            stop = hashlib.blake2b(listing, digest_size=4).hexdigest()
        chars = "none" if self._char_ngrams is None else "{}-{}".format(*self._char_ngrams)
        self._name = (
            f"hashing-v1:dim={dim}:ngrams={self._word_ngrams[0]}-{self._word_ngrams[1]}"
            f":char={chars}:stop={stop}:seed={seed}"
        )

    @property
    def dim(self) -> int:
        """The number of dimensions of every vector."""
        return self._dim

    @property
    def name(self) -> str:
        """``hashing-v1`` and every setting that changes the output.

        Example: ``'hashing-v1:dim=384:ngrams=1-2:char=3-5:stop=en:seed=0'``; ``stop`` is
        ``en`` (the default list), ``none``, or a digest of a custom list.
        """
        return self._name

    @property
    def max_tokens(self) -> None:
        """``None``: every word of a text counts, however long it is (no window).

        Example::

            >>> HashingEmbedder().max_tokens is None
            True
        """
        return None

    def __repr__(self) -> str:
        return f"HashingEmbedder({self._name!r})"

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` as a float32 array of shape ``(len(texts), dim)``, rows of norm 1.

        Raises :class:`~vecalchemy.errors.EmbedderError` naming the first text that is not
        a string or is empty.

        Example::

            >>> HashingEmbedder(dim=64).embed_documents(["one text", "another"]).shape
            (2, 64)
        """
        if isinstance(texts, str):
            raise EmbedderError(
                "embed_documents() takes a sequence of texts, got a single str; "
                "wrap it in a list or use embed_query()"
            )
        tokens = [self._tokens(text, i) for i, text in enumerate(texts)]
        out = np.empty((len(tokens), self._dim), dtype=np.float32)
        for start in range(0, len(tokens), _CHUNK):
            out[start : start + _CHUNK] = self._embed_chunk(tokens[start : start + _CHUNK], start)
        return out

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one query as a float32 array of shape ``(dim,)`` and norm 1.

        Queries and documents are embedded the same way.

        Example::

            >>> HashingEmbedder(dim=64).embed_query("where is the config file?").shape
            (64,)
        """
        if not isinstance(text, str):
            raise EmbedderError(f"embed_query() takes a str, got {type(text).__name__}")
        vector: npt.NDArray[np.float32] = self.embed_documents([text])[0]
        return vector

    async def aembed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """:meth:`embed_documents` in a worker thread, so the event loop keeps running.

        Example::

            vectors = await HashingEmbedder().aembed_documents(["a text", "another"])
        """
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> npt.NDArray[np.float32]:
        """:meth:`embed_query`; one query takes microseconds, so it runs in the loop.

        Example::

            vector = await HashingEmbedder().aembed_query("where is the config file?")
        """
        return self.embed_query(text)

    # -- internals ---------------------------------------------------------------------

    def _tokens(self, text: object, index: int) -> list[str]:
        if not isinstance(text, str):
            raise EmbedderError(
                f"text at index {index} is a {type(text).__name__}, not a str; embed strings only"
            )
        normal = unicodedata.normalize("NFKC", text).casefold()
        words = _WORD.findall(normal) or normal.split()
        if not words:
            raise EmbedderError(
                f"text at index {index} is empty or whitespace only; a zero vector cannot be "
                "searched by cosine distance, so leave such texts out (or give them a title)"
            )
        if self._stop_words:
            kept = [w for w in words if w not in self._stop_words]
            return kept or words
        return words

    def _hash(self, data: bytes) -> int:
        h = self._hasher.copy()
        h.update(data)
        return int.from_bytes(h.digest(), "little")

    def _word(self, word: str) -> tuple[int, npt.NDArray[np.uint64]]:
        """The hash of ``word`` and of its character n-grams, cached."""
        entry = self._cache.get(word)
        if entry is not None:
            return entry
        word_hash = self._hash(b"w\x00" + word.encode("utf-8", "surrogatepass"))
        if self._char_ngrams is None:
            grams: list[str] = []
        else:
            lo, hi = self._char_ngrams
            padded = f"<{word}>"
            grams = [
                padded[i : i + n] for n in range(lo, hi + 1) for i in range(len(padded) - n + 1)
            ] or [padded]
        gram_hashes = np.array(
            [self._hash(b"c\x00" + g.encode("utf-8", "surrogatepass")) for g in grams],
            dtype=np.uint64,
        )
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        entry = self._cache[word] = (word_hash, gram_hashes)
        return entry

    def _embed_chunk(self, docs: list[list[str]], offset: int) -> npt.NDArray[np.float32]:
        """Embed at most ``_CHUNK`` tokenised texts; ``offset`` numbers them in errors."""
        lo, hi = self._word_ngrams
        word_keys: list[npt.NDArray[np.uint64]] = []
        char_keys: list[npt.NDArray[np.uint64]] = []
        cache, compute = self._cache, self._word
        for d, words in enumerate(docs):
            # Inline cache lookup: a method call per word token costs as much as the rest.
            entries = [cache.get(w) or compute(w) for w in words]
            doc_bits = np.uint64(d << 56)
            hashes = np.array([e[0] for e in entries], dtype=np.uint64)
            # A text shorter than the smallest n-gram is one n-gram of all its words.
            for n in [n for n in range(lo, hi + 1) if n <= len(hashes)] or [len(hashes)]:
                m = len(hashes) - n + 1
                grams = hashes[:m]
                for k in range(1, n):
                    grams = _mix(grams * np.uint64(_GOLDEN) + hashes[k : k + m])
                word_keys.append((grams >> np.uint64(8)) | doc_bits)
            if self._char_ngrams is not None:
                chars = np.concatenate([e[1] for e in entries])
                char_keys.append((chars >> np.uint64(8)) | doc_bits)

        out = self._accumulate(word_keys, len(docs))
        if self._char_ngrams is not None:
            out += self._accumulate(char_keys, len(docs))
        norms = np.linalg.norm(out, axis=1)
        zero = np.flatnonzero(norms == 0)
        if zero.size:
            raise EmbedderError(
                f"text at index {offset + int(zero[0])} hashes to a zero vector (its features "
                f"cancel out in {self._dim} dimensions); use a larger dim"
            )
        unit: npt.NDArray[np.float32] = (out / norms[:, None]).astype(np.float32)
        return unit

    def _accumulate(
        self, keys: list[npt.NDArray[np.uint64]], ndocs: int
    ) -> npt.NDArray[np.float64]:
        """Sum the signed, sublinearly weighted features of each document, rows of norm 1.

        A key is a document number (top 8 bits) and a 56-bit feature hash.
        """
        uniq, counts = np.unique(np.concatenate(keys), return_counts=True)
        doc = (uniq >> np.uint64(56)).astype(np.int64)
        feature = uniq & np.uint64(_MASK56)
        bucket = ((feature >> np.uint64(1)) % np.uint64(self._dim)).astype(np.int64)
        sign = 1.0 - 2.0 * (feature & np.uint64(1)).astype(np.float64)
        weights = (1.0 + np.log(counts)) * sign
        sums = np.bincount(doc * self._dim + bucket, weights=weights, minlength=ndocs * self._dim)
        out = sums.astype(np.float64, copy=False).reshape(ndocs, self._dim)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out
