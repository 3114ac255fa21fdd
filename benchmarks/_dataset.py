"""Datasets of the search benchmark (``benchmarks/search.py``), built once and cached.

* ``real``: the standard library's docstrings (:func:`vecalchemy.cli._corpus.stdlib_corpus`)
  cut with :class:`vecalchemy.chunking.CharacterSplitter` into 20,000+ chunks, each
  stored as ``"<dotted name>: <chunk>"`` and embedded with all-MiniLM-L6-v2
  (``get_embedder("minilm")``, 384 dimensions, unit length). The chunk size is the
  largest of :data:`CHUNK_SIZES` that gives enough distinct chunks; it is recorded.
  200 whole documents are held out of the table: the first chunk of each (without the
  name) is a query, so no query or near-copy of one is in the table.
* ``mixture``: vectors drawn from a Gaussian mixture fitted to the real embeddings
  (k-means, 64 clusters; per cluster its mean, its 16 main directions and a diagonal
  residual), L2-normalised; queries from the same mixture with another seed.

Every row gets a ``category`` from a hash of its id (:func:`categories`), so that
equality filters of 10%, 1% and 0.1% selectivity exist, nine or ten values of each.

Cache layout (``$VECALCHEMY_BENCH_DIR``, default ``data/bench-search/``, gitignored)::

    real/meta.json  real/vectors.npy  real/texts.json  real/queries.npy  real/query_texts.json
    real/partial.npy  (embedding in progress: resumed by the next run)
    mixture-<rows>-<queries>/vectors.npy  .../queries.npy  .../meta.json

Run this module to build the real dataset alone (slow: MiniLM on the CPU)::

    .venv/bin/python benchmarks/_dataset.py
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
DIM = 384
SEED = 0
#: Bump when the way the real dataset is made changes; the cache is then rebuilt.
REAL_VERSION = "search-real-v1"
MIXTURE_VERSION = "search-mixture-v1"
#: Chunk sizes tried, largest first, until the table gets TARGET_CHUNKS chunks.
CHUNK_SIZES = (200, 180, 160, 150, 140, 130, 120, 110, 100, 90, 80, 70, 60)
TARGET_CHUNKS = 20_000
HELD_OUT_DOCS = 200
EMBED_BATCH = 1024
CLUSTERS = 64
RANK = 16  # main directions kept per mixture component

Vec = npt.NDArray[np.float32]
Log = Callable[[str], None]

#: Selectivity level -> its category values. Buckets 0-899 of a hash of the id make the
#: nine 10% values, 900-989 the nine 1% values, 990-999 the ten 0.1% values.
LEVELS: dict[str, list[str]] = {
    "10%": [f"s10_{i}" for i in range(9)],
    "1%": [f"s1_{i}" for i in range(9)],
    "0.1%": [f"s01_{i}" for i in range(10)],
}
SELECTIVITY = {"10%": 0.1, "1%": 0.01, "0.1%": 0.001}


def bench_dir() -> Path:
    """Where datasets (and the embedded server) are cached."""
    env = os.environ.get("VECALCHEMY_BENCH_DIR")
    return Path(env).expanduser().resolve() if env else REPO / "data" / "bench-search"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _bucket(ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """A well-mixed hash of each id (splitmix64), modulo 1000."""
    z = ids.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(1000)).astype(np.int64)


def categories(ids: npt.NDArray[np.int64]) -> npt.NDArray[np.str_]:
    """The category of each id: see :data:`LEVELS`."""
    b = _bucket(ids)
    out = np.empty(len(ids), dtype="<U8")
    ten = b < 900
    one = (b >= 900) & (b < 990)
    tenth = b >= 990
    out[ten] = np.char.add("s10_", (b[ten] // 100).astype(str))
    out[one] = np.char.add("s1_", ((b[one] - 900) // 10).astype(str))
    out[tenth] = np.char.add("s01_", (b[tenth] - 990).astype(str))
    return out


def filter_value(level: str, query: int) -> str:
    """The category value query number ``query`` filters on at ``level``."""
    values = LEVELS[level]
    return values[query % len(values)]


@dataclass(frozen=True)
class Dataset:
    """One dataset: rows (ids 0..n-1 in order), queries, and how they were made."""

    name: str
    vectors: Vec  # (n, DIM), unit length
    texts: list[str]  # the body column
    categories: npt.NDArray[np.str_]
    queries: Vec  # (q, DIM), unit length
    query_texts: list[str]  # for the real dataset: what was embedded; else ""
    meta: dict[str, Any]

    @property
    def rows(self) -> int:
        return len(self.vectors)

    def fingerprint(self) -> str:
        """A short digest identifying the rows (for the loaded table's comment)."""
        h = hashlib.sha256()
        h.update(json.dumps(self.meta, sort_keys=True, default=str).encode())
        h.update(np.ascontiguousarray(self.vectors[:: max(1, self.rows // 997)]).tobytes())
        return h.hexdigest()[:16]


# -- real: chunks of the stdlib docstrings, embedded with MiniLM -------------------------


def _chunks(size: int) -> tuple[list[str], list[str], list[str], list[int]]:
    """(table texts, query texts, doc ids of the table rows, ...) for a chunk size."""
    from vecalchemy.chunking import CharacterSplitter
    from vecalchemy.cli._corpus import stdlib_corpus

    docs = stdlib_corpus()
    rng = np.random.default_rng(SEED)
    held = set(rng.choice(len(docs), size=HELD_OUT_DOCS, replace=False).tolist())
    splitter = CharacterSplitter(size=size)
    texts: list[str] = []
    sources: list[str] = []
    seen: set[str] = set()
    queries: list[str] = []
    query_docs: list[int] = []
    for i, (doc, chunks) in enumerate(
        zip(docs, splitter.split_many([d.text for d in docs]), strict=True)
    ):
        if i in held:
            if chunks:
                queries.append(" ".join(chunks[0].text.split()))
                query_docs.append(i)
            continue
        for c in chunks:
            body = f"{doc.title}: {' '.join(c.text.split())}"
            if body in seen:  # inherited docstrings repeat; keep one of each
                continue
            seen.add(body)
            texts.append(body)
            sources.append(doc.id)
    return texts, queries, sources, query_docs


def _choose_chunking(log: Log) -> tuple[int, list[str], list[str], list[str]]:
    for size in CHUNK_SIZES:
        texts, queries, sources, _ = _chunks(size)
        log(f"chunk size {size}: {len(texts):,} distinct chunks in the table")
        if len(texts) >= TARGET_CHUNKS:
            return size, texts, queries, sources
    raise SystemExit(f"no chunk size in {CHUNK_SIZES} gives {TARGET_CHUNKS:,} chunks")


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n")
    tmp.replace(path)


def _save_npy(path: Path, array: npt.NDArray[Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        np.save(f, array)
    tmp.replace(path)


def _embed(embedder: Any, texts: Sequence[str], partial: Path, log: Log, *, what: str) -> Vec:
    """Embed ``texts`` in batches, printing progress; resumable through ``partial``."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    done = 0
    count_file = partial.with_suffix(".count")
    if partial.exists() and count_file.exists():
        saved = np.load(partial)
        done = int(count_file.read_text())
        if saved.shape == out.shape and 0 < done <= len(texts):
            out[:done] = saved[:done]
            log(f"resuming {what}: {done:,} of {len(texts):,} already embedded")
        else:
            done = 0
    started = time.perf_counter()
    first = done
    last_save = time.perf_counter()
    while done < len(texts):
        batch = texts[done : done + EMBED_BATCH]
        out[done : done + len(batch)] = embedder.embed_documents(list(batch))
        done += len(batch)
        rate = (done - first) / (time.perf_counter() - started)
        eta = (len(texts) - done) / rate if rate else 0.0
        log(f"{what}: {done:,}/{len(texts):,} ({rate:,.0f}/s, {eta:,.0f} s left)")
        if time.perf_counter() - last_save > 30 or done == len(texts):
            _save_npy(partial, out)
            count_file.write_text(str(done))
            last_save = time.perf_counter()
    return out


def build_real(root: Path | None = None, *, log: Log = log) -> Dataset:
    """The real dataset, from the cache or built (several minutes on 2 cores)."""
    from vecalchemy.embedders import get_embedder

    root = (root or bench_dir()) / "real"
    root.mkdir(parents=True, exist_ok=True)
    py = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    meta_path = root / "meta.json"
    files = ["vectors.npy", "texts.json", "queries.npy", "query_texts.json"]
    if meta_path.exists() and all((root / f).exists() for f in files):
        meta = json.loads(meta_path.read_text())
        if meta.get("version") == REAL_VERSION and meta.get("python") == py:
            log(f"real dataset from the cache in {root}")
            vectors = np.load(root / "vectors.npy")
            return Dataset(
                "real",
                vectors,
                json.loads((root / "texts.json").read_text()),
                categories(np.arange(len(vectors), dtype=np.int64)),
                np.load(root / "queries.npy"),
                json.loads((root / "query_texts.json").read_text()),
                meta,
            )
        log("real dataset cache is stale; rebuilding")

    started = time.perf_counter()
    size, texts, query_texts, sources = _choose_chunking(log)
    embedder = get_embedder("minilm")
    log(f"embedding {len(texts):,} chunks (chunk size {size}) with {embedder.name}")
    # The partial file is only valid for this exact list of texts.
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    vectors = _embed(embedder, texts, root / f"partial-{key}.npy", log, what="chunks")
    embed_seconds = time.perf_counter() - started
    queries = np.asarray([embedder.embed_query(t) for t in query_texts], dtype=np.float32).reshape(
        len(query_texts), DIM
    )
    norms = np.linalg.norm(vectors, axis=1)
    meta = {
        "version": REAL_VERSION,
        "python": py,
        "corpus": "python standard library docstrings (vecalchemy.cli._corpus.stdlib_corpus)",
        "documents_in_table": len(set(sources)),
        "held_out_documents": HELD_OUT_DOCS,
        "splitter": f"CharacterSplitter(size={size}) (overlap {size // 5})",
        "chunk_size": size,
        "chunks": len(texts),
        "row_text": "'<dotted name>: <chunk, whitespace collapsed>', duplicates dropped",
        "queries": "first chunk of each held-out document, embedded with embed_query",
        "embedder": embedder.name,
        "dim": DIM,
        "norm_min": float(norms.min()),
        "norm_max": float(norms.max()),
        "embed_seconds": embed_seconds,
        "chunks_per_second": len(texts) / embed_seconds,
    }
    _save_npy(root / "vectors.npy", vectors)
    _save_npy(root / "queries.npy", queries)
    _write_json(root / "texts.json", texts)
    _write_json(root / "query_texts.json", query_texts)
    _write_json(meta_path, meta)
    for p in root.glob("partial-*"):
        p.unlink()
    log(f"real dataset built in {embed_seconds:.0f} s: {len(texts):,} rows")
    return Dataset(
        "real",
        vectors,
        texts,
        categories(np.arange(len(vectors), dtype=np.int64)),
        queries,
        query_texts,
        meta,
    )


# -- mixture: a Gaussian mixture fitted to the real embeddings ----------------------------


def _kmeans(x: Vec, k: int, rng: np.random.Generator, iterations: int = 15) -> Any:
    """Spherical-ish k-means (Euclidean on unit vectors), k-means++ seeding."""
    n = len(x)
    centres = np.empty((k, x.shape[1]), dtype=np.float32)
    centres[0] = x[rng.integers(n)]
    d2 = ((x - centres[0]) ** 2).sum(axis=1)
    for j in range(1, k):
        centres[j] = x[rng.choice(n, p=d2 / d2.sum())]
        d2 = np.minimum(d2, ((x - centres[j]) ** 2).sum(axis=1))
    sq = (x * x).sum(axis=1, keepdims=True)
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iterations):
        dist = sq - 2 * x @ centres.T + (centres * centres).sum(axis=1)
        labels = dist.argmin(axis=1)
        for j in range(k):
            members = x[labels == j]
            centres[j] = members.mean(axis=0) if len(members) else x[rng.integers(n)]
    return centres, labels


def _sample(x: Vec, labels: Any, k: int, n: int, rng: np.random.Generator) -> tuple[Vec, Any]:
    """``n`` draws: component by its share of ``x``, then mean + low-rank + diagonal."""
    weights = np.bincount(labels, minlength=k) / len(labels)
    counts = rng.multinomial(n, weights)
    out = np.empty((n, x.shape[1]), dtype=np.float32)
    comp = np.empty(n, dtype=np.int64)
    pos = 0
    for j in range(k):
        c = int(counts[j])
        if c == 0:
            continue
        members = x[labels == j].astype(np.float64)
        mean = members.mean(axis=0)
        centred = members - mean
        r = max(0, min(RANK, len(members) - 1))
        if r:
            _, s, vt = np.linalg.svd(centred, full_matrices=False)
            scales = s[:r] / np.sqrt(max(1, len(members) - 1))
            basis = vt[:r]
            explained = (scales[:, None] * basis) ** 2
            resid = np.maximum(centred.var(axis=0) - explained.sum(axis=0), 1e-8)
        else:
            scales = np.zeros(0)
            basis = np.zeros((0, x.shape[1]))
            resid = np.full(x.shape[1], 1e-4)
        z = rng.standard_normal((c, r)) * scales
        draw = mean + z @ basis + rng.standard_normal((c, x.shape[1])) * np.sqrt(resid)
        out[pos : pos + c] = draw
        comp[pos : pos + c] = j
        pos += c
    order = rng.permutation(n)  # components interleaved, as real data would be
    out, comp = out[order], comp[order]
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out, comp


def build_mixture(
    real: Dataset, rows: int, n_queries: int, root: Path | None = None, *, log: Log = log
) -> Dataset:
    """``rows`` mixture vectors and ``n_queries`` queries, from the cache or sampled."""
    root = (root or bench_dir()) / f"mixture-{rows}-{n_queries}"
    root.mkdir(parents=True, exist_ok=True)
    meta_path = root / "meta.json"
    source = real.fingerprint()
    if meta_path.exists() and (root / "vectors.npy").exists() and (root / "queries.npy").exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("version") == MIXTURE_VERSION and meta.get("source") == source:
            log(f"mixture dataset from the cache in {root}")
            vectors = np.load(root / "vectors.npy")
            ids = np.arange(rows, dtype=np.int64)
            return Dataset(
                "mixture",
                vectors,
                _mixture_texts(np.load(root / "components.npy")),
                categories(ids),
                np.load(root / "queries.npy"),
                [""] * n_queries,
                meta,
            )
    started = time.perf_counter()
    rng = np.random.default_rng(SEED + 7)
    log(f"fitting a {CLUSTERS}-component mixture to {real.rows:,} real embeddings")
    _, labels = _kmeans(real.vectors, CLUSTERS, rng)
    vectors, comp = _sample(real.vectors, labels, CLUSTERS, rows, rng)
    queries, _ = _sample(real.vectors, labels, CLUSTERS, n_queries, np.random.default_rng(SEED + 8))
    # How close the synthetic data is to the real: mean cosine of each query to its
    # nearest row, real vs mixture (a sanity figure recorded in the metadata).
    real_nn = float((real.queries @ real.vectors.T).max(axis=1).mean())
    mix_nn = float((queries[:50] @ vectors.T).max(axis=1).mean())
    meta = {
        "version": MIXTURE_VERSION,
        "source": source,
        "fitted_to": f"{real.rows:,} real MiniLM embeddings",
        "components": CLUSTERS,
        "model": f"k-means ({CLUSTERS} clusters, 15 iterations); per component its mean, "
        f"top-{RANK} principal directions and a diagonal residual; draws L2-normalised",
        "rows": rows,
        "queries": n_queries,
        "mean_cosine_query_to_nearest_row": {"real": real_nn, "mixture (50 queries)": mix_nn},
        "seconds": time.perf_counter() - started,
    }
    _save_npy(root / "vectors.npy", vectors)
    _save_npy(root / "queries.npy", queries)
    _save_npy(root / "components.npy", comp)
    _write_json(meta_path, meta)
    log(f"mixture sampled in {meta['seconds']:.0f} s")
    return Dataset(
        "mixture",
        vectors,
        _mixture_texts(comp),
        categories(np.arange(rows, dtype=np.int64)),
        queries,
        [""] * n_queries,
        meta,
    )


def _mixture_texts(components: Any) -> list[str]:
    return [f"synthetic row {i}, component {int(c)}" for i, c in enumerate(components)]


def subset(data: Dataset, rows: int, n_queries: int) -> Dataset:
    """The first ``rows`` rows and ``n_queries`` queries (for quick runs)."""
    meta = {**data.meta, "subset": {"rows": rows, "queries": n_queries}}
    return Dataset(
        data.name,
        data.vectors[:rows],
        data.texts[:rows],
        data.categories[:rows],
        data.queries[:n_queries],
        data.query_texts[:n_queries],
        meta,
    )


# -- ground truth ------------------------------------------------------------------------


def exact_topk(
    vectors: Vec, queries: Vec, k: int, mask: npt.NDArray[np.bool_] | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Exact top-``k`` ids (and cosine distances) per query, optionally among ``mask`` rows.

    Rows are unit length, so cosine distance is ``1 - dot``. Fewer than ``k`` matching
    rows leaves ``-1`` ids at the end.
    """
    ids = np.arange(len(vectors)) if mask is None else np.flatnonzero(mask)
    sub = vectors[ids]
    out = np.full((len(queries), k), -1, dtype=np.int64)
    dist = np.full((len(queries), k), np.inf, dtype=np.float32)
    kk = min(k, len(ids))
    if kk == 0:
        return out, dist
    for start in range(0, len(queries), 64):
        q = queries[start : start + 64]
        sims = q @ sub.T
        part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        psims = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-psims, axis=1)
        top = np.take_along_axis(part, order, axis=1)
        out[start : start + len(q), :kk] = ids[top]
        dist[start : start + len(q), :kk] = 1 - np.take_along_axis(psims, order, axis=1)
    return out, dist


if __name__ == "__main__":
    d = build_real()
    log(f"{d.rows:,} rows, {len(d.queries)} queries; meta: {json.dumps(d.meta, indent=1)}")
