"""Tests for OnnxEmbedder: all-MiniLM-L6-v2 exported from the packaged weights, on ONNX Runtime.

Real weights throughout: the module exports the SHA-checked model once into a
temporary cache (and quantizes it once for the int8 tests), and compares with
SentenceTransformerEmbedder on real texts of mixed length. Nothing touches the network.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

import vecalchemy.embedders.onnx as onnx_module
from vecalchemy.embedders import (
    Embedder,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    get_embedder,
)
from vecalchemy.embedders._local import sha256_file
from vecalchemy.errors import EmbedderError

NAME = "st:sentence-transformers/all-MiniLM-L6-v2@1110a243"
FP32 = "all-MiniLM-L6-v2-1110a243-r3-fp32.onnx"
INT8 = "all-MiniLM-L6-v2-1110a243-r4-int8.onnx"

# Real texts of mixed length: short queries, sentences, docstrings of a few hundred
# tokens, and two past the 256-token window (which both backends must truncate alike).
TEXTS = [
    "hello",
    "Hello, world!",
    "how do I parse a JSON file?",
    "a cat sits on the mat",
    "The central bank raised interest rates by a quarter point on Tuesday.",
    "Bad weather called off the football game.",
    json.__doc__ or "",
    (json.loads.__doc__ or "").strip(),
    (collections.Counter.__doc__ or "").strip(),
    (argparse.__doc__ or "").strip(),  # about 700 word pieces: truncated
    (os.__doc__ or "").strip(),
    (logging.__doc__ or "").strip(),
    " ".join([(collections.OrderedDict.__doc__ or "").strip()] * 30),  # far past 256
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def fp32(cache: Path) -> OnnxEmbedder:
    return OnnxEmbedder(cache_dir=cache).load()


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return SentenceTransformerEmbedder().embed_documents(TEXTS)


def test_texts_cover_the_window(fp32: OnnxEmbedder) -> None:
    """The test texts are short, long, and past the 256-token window."""
    counts = [fp32.count_tokens(t) for t in TEXTS]
    assert min(counts) <= 5
    assert sum(c > 256 for c in counts) >= 2
    assert any(64 < c <= 256 for c in counts)


@pytest.mark.slow
def test_agrees_with_sentence_transformers(fp32: OnnxEmbedder, reference: np.ndarray) -> None:
    """fp32 vectors match sentence-transformers': cosine >= 0.999 (in fact ~1 - 1e-6)."""
    vectors = fp32.embed_documents(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.min() >= 0.999, cosines
    np.testing.assert_allclose(vectors, reference, atol=1e-4)
    assert isinstance(fp32, Embedder)


def test_pinned_output(fp32: OnnxEmbedder) -> None:
    """The first dimensions of one embedding: the values test_embedders_st.py pins."""
    vector = fp32.embed_query("Hello, world!")
    expected = [-0.038177, 0.032911, -0.005459, 0.01437, -0.040291, -0.116532]
    np.testing.assert_allclose(vector[:6], expected, atol=1e-4)


def test_length_sort_keeps_the_order(fp32: OnnxEmbedder) -> None:
    """Texts are run sorted by length, and each vector comes back in its text's place."""
    rng = np.random.default_rng(7)
    perm = rng.permutation(len(TEXTS))
    small = OnnxEmbedder(cache_dir=fp32.cache_dir, batch_size=2)  # 7 batches of 2
    together = small.embed_documents([TEXTS[i] for i in perm])
    alone = np.stack([fp32.embed_query(TEXTS[i]) for i in perm])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    # Neighbours differ, so a shuffled result could not pass the check above.
    assert float(alone[0] @ alone[1]) < 0.99


def test_query_equals_single_document(fp32: OnnxEmbedder) -> None:
    """embed_query(q) is embed_documents([q])[0]; aembed_* are the same."""
    query = "where is the config file?"
    assert np.array_equal(fp32.embed_query(query), fp32.embed_documents([query])[0])


async def test_async_twins(fp32: OnnxEmbedder) -> None:
    """The async twins give the sync methods' vectors."""
    texts = TEXTS[:4]
    assert np.array_equal(await fp32.aembed_documents(texts), fp32.embed_documents(texts))
    assert np.array_equal(await fp32.aembed_query(texts[1]), fp32.embed_query(texts[1]))


def test_tokens_match_sentence_transformers(fp32: OnnxEmbedder) -> None:
    """Window, token spans and counts are sentence-transformers' (chunk fitting relies on them)."""
    st = SentenceTransformerEmbedder()
    assert fp32.max_tokens == st.max_tokens == 256
    for text in TEXTS:
        assert fp32.token_spans(text) == st.token_spans(text)
        assert fp32.count_tokens(text) == st.count_tokens(text)
    assert fp32.count_tokens("") == 2


def test_names_and_identity(cache: Path) -> None:
    """fp32 shares sentence-transformers' name; int8 has its own; dim 384."""
    assert OnnxEmbedder(cache_dir=cache).name == SentenceTransformerEmbedder().name == NAME
    assert OnnxEmbedder(precision="int8", cache_dir=cache).name == NAME + ":onnx-int8"
    embedder = OnnxEmbedder(cache_dir=cache, threads=1)
    assert embedder.dim == 384
    assert embedder.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert embedder.model_path == cache.resolve() / FP32
    assert repr(embedder) == f"OnnxEmbedder(precision='fp32', threads=1, cache_dir={str(cache)!r})"


def test_the_cached_file_has_its_checksum(fp32: OnnxEmbedder) -> None:
    """The export is cached with its SHA-256 and what it was made from."""
    record = json.loads(fp32.model_path.with_suffix(".json").read_text())
    assert record["sha256"] == sha256_file(fp32.model_path)
    assert record["size"] == fp32.model_path.stat().st_size
    assert record["weights_sha256"] == (
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    )
    assert (record["precision"], record["recipe"]) == ("fp32", 3)


def _copy_cache(source: Path, target: Path) -> Path:
    target.mkdir()
    for name in (FP32, FP32.replace(".onnx", ".json")):
        (target / name).write_bytes((source / name).read_bytes())
    return target


def _counting_export(monkeypatch: pytest.MonkeyPatch, good: bytes) -> list[int]:
    """Replace the exporter with one that counts its calls and returns the good export."""
    calls: list[int] = []

    def export() -> bytes:
        calls.append(1)
        return good

    monkeypatch.setattr(onnx_module, "_export", export)
    return calls


def test_a_valid_cache_is_loaded_not_exported(
    fp32: OnnxEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy of a good cache loads without exporting, with the same vectors."""
    copy = _copy_cache(fp32.cache_dir, tmp_path / "cache")
    calls = _counting_export(monkeypatch, b"never used")
    embedder = OnnxEmbedder(cache_dir=copy, threads=1)
    assert not embedder.loaded
    np.testing.assert_allclose(
        embedder.embed_documents(TEXTS[:3]), fp32.embed_documents(TEXTS[:3]), atol=1e-5
    )
    assert calls == []


@pytest.mark.parametrize("damage", ["one byte", "truncated", "record", "no record", "recipe"])
def test_a_damaged_cache_is_exported_again(
    fp32: OnnxEmbedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    """A changed file, a bad or missing record, an old recipe: exported again, never loaded."""
    good = fp32.model_path.read_bytes()
    copy = _copy_cache(fp32.cache_dir, tmp_path / "cache")
    model, record = copy / FP32, copy / FP32.replace(".onnx", ".json")
    if damage == "one byte":
        data = bytearray(good)
        data[len(data) // 2] ^= 0x01  # inside the weights: ONNX Runtime would load it
        model.write_bytes(bytes(data))
    elif damage == "truncated":
        model.write_bytes(good[: len(good) // 2])
    elif damage == "record":
        record.write_text("{not json")
    elif damage == "no record":
        record.unlink()
    else:
        fields = json.loads(record.read_text())
        fields["recipe"] = 0
        record.write_text(json.dumps(fields))
    calls = _counting_export(monkeypatch, good)
    embedder = OnnxEmbedder(cache_dir=copy, threads=1)
    with caplog.at_level(logging.WARNING, logger="vecalchemy.embedders.onnx"):
        vectors = embedder.embed_documents(TEXTS[:3])
    assert calls == [1]
    assert model.read_bytes() == good
    assert json.loads(record.read_text())["sha256"] == sha256_file(model)
    np.testing.assert_allclose(vectors, fp32.embed_documents(TEXTS[:3]), atol=1e-5)
    if damage in ("one byte", "truncated"):
        assert "refusing to load" in caplog.text
        assert sha256_file(model) in caplog.text
    elif damage != "no record":
        assert "missing or out of date" in caplog.text


def _threads_running_batches(
    embedder: OnnxEmbedder, texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[set[int], list[int], Any]:
    """The threads that ran the model and the batch sizes, for one embed_documents call."""
    idents: set[int] = set()
    sizes: list[int] = []
    real = OnnxEmbedder._run

    def spy(self: OnnxEmbedder, session: Any, ids: Any, mask: Any) -> Any:
        idents.add(threading.get_ident())
        sizes.append(len(ids))
        return real(self, session, ids, mask)

    monkeypatch.setattr(OnnxEmbedder, "_run", spy)
    vectors = embedder.embed_documents(texts)
    monkeypatch.undo()
    return idents, sizes, vectors


def test_threads_setting_is_honoured(fp32: OnnxEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    """threads= is how many batches run at once, each ONNX Runtime call on one core; the
    default is every usable core. The vectors do not depend on it."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert fp32.threads == cores
    assert fp32._load().get_session_options().intra_op_num_threads == 1
    texts = TEXTS * 3  # 39 texts: 20 batches of 2
    one = OnnxEmbedder(cache_dir=fp32.cache_dir, threads=1, batch_size=2)
    idents, sizes, alone = _threads_running_batches(one, texts, monkeypatch)
    assert idents == {threading.get_ident()}  # no worker thread: the caller runs them
    assert sorted(sizes) == [1] + [2] * 19
    three = OnnxEmbedder(cache_dir=fp32.cache_dir, threads=3, batch_size=2)
    idents, sizes, together = _threads_running_batches(three, texts, monkeypatch)
    assert threading.get_ident() not in idents
    assert 1 <= len(idents) <= 3  # three workers (ones that start late may find none left)
    assert sorted(sizes) == [1] + [2] * 19
    np.testing.assert_allclose(together, alone, atol=1e-6)
    np.testing.assert_allclose(together, fp32.embed_documents(texts), atol=1e-5)


@pytest.fixture(scope="module")
def int8(fp32: OnnxEmbedder) -> OnnxEmbedder:
    return OnnxEmbedder(precision="int8", cache_dir=fp32.cache_dir).load()


@pytest.mark.slow
def test_int8(fp32: OnnxEmbedder, int8: OnnxEmbedder, reference: np.ndarray) -> None:
    """int8: its own cached file and checksum, made from the fp32 file, the first layer and
    layers 2-3's FFN output MatMuls kept fp32; cosine with sentence-transformers >= 0.99."""
    assert int8.model_path.name == INT8
    record = json.loads(int8.model_path.with_suffix(".json").read_text())
    assert record["sha256"] == sha256_file(int8.model_path)
    assert (record["precision"], record["recipe"]) == ("int8", 4)
    assert record["made_from"] == f"{FP32} sha256:{sha256_file(fp32.model_path)}"
    # 18 of the 24 weight matrices are int8; the fp32 word embeddings (47 MB) stay.
    assert int8.model_path.stat().st_size < fp32.model_path.stat().st_size * 0.8
    ops = collections.Counter(n.op_type for n in onnx.load(int8.model_path).graph.node)
    assert (ops["QAttention"], ops["Attention"]) == (5, 1)
    assert (ops["MatMulInteger"], ops["MatMul"]) == (13, 5)
    vectors = int8.embed_documents(TEXTS)
    cosines = np.sum(vectors * reference, axis=1)
    # Measured min 0.9938 (the repeated OrderedDict docstring), mean 0.997 (the six short
    # texts run on fp32: 1.0); on 1,000 DBpedia abstracts min 0.9943 (docs/benchmarks.md).
    # A broken quantization is near 0.
    assert cosines.min() >= 0.99, cosines
    long = [i for i, t in enumerate(TEXTS) if int8.count_tokens(t) > 24]
    assert len(long) >= 6
    # Really the quantized model for the long texts, fp32's vectors for the short ones.
    assert not np.allclose(vectors[long], reference[long], atol=1e-3)
    short = [i for i in range(len(TEXTS)) if i not in long]
    np.testing.assert_allclose(vectors[short], fp32.embed_documents(TEXTS)[short], atol=1e-6)


def _sessions_running_batches(
    embedder: OnnxEmbedder, texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> list[tuple[str, int]]:
    """(the precision of the session, the batch size) of each run, for one call."""
    runs: list[tuple[str, int]] = []
    real = OnnxEmbedder._run
    precisions = {id(embedder._load()): embedder.precision, id(embedder._short()): "fp32"}

    def spy(self: OnnxEmbedder, session: Any, ids: Any, mask: Any) -> Any:
        runs.append((precisions[id(session)], len(ids)))
        return real(self, session, ids, mask)

    monkeypatch.setattr(OnnxEmbedder, "_run", spy)
    embedder.embed_documents(texts)
    monkeypatch.undo()
    return runs


def test_int8_runs_short_texts_on_fp32(
    fp32: OnnxEmbedder, int8: OnnxEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Texts of at most 24 word pieces run on the fp32 model, in batches of their own, so
    a short text gets fp32's vector even in a call with long ones."""
    short = ["ok", "how?", "a cat sits on the mat"]  # 3, 4 and 8 word pieces
    long = [t for t in TEXTS if int8.count_tokens(t) > 24][:3]
    assert [int8.count_tokens(t) for t in short] == [3, 4, 8]
    # Only long texts: the fp32 session is not needed, so not loaded.
    fresh = OnnxEmbedder(precision="int8", cache_dir=int8.cache_dir)
    fresh.embed_documents(long)
    assert fresh._short_session is None
    fresh.embed_query("ok")
    assert fresh._short_session is not None
    texts = [long[0], short[0], long[1], short[1], short[2], long[2]]
    runs = _sessions_running_batches(int8, texts, monkeypatch)
    assert sorted(runs) == [("fp32", 3), ("int8", 3)]  # one batch of 8 would hold all six
    vectors = int8.embed_documents(texts)
    np.testing.assert_allclose(vectors[[1, 3, 4]], fp32.embed_documents(short), atol=1e-6)
    assert not np.allclose(vectors[[0, 2, 5]], fp32.embed_documents(long), atol=1e-3)
    np.testing.assert_allclose(int8.embed_query("ok"), fp32.embed_query("ok"), atol=1e-6)
    # 24 word pieces: fp32; 25: int8.
    numbers = "one two three four five six seven eight nine ten eleven twelve thirteen"
    at_most = numbers + " fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty"
    past = at_most + " fifty"
    assert (int8.count_tokens(at_most), int8.count_tokens(past)) == (24, 25)
    assert _sessions_running_batches(int8, [at_most], monkeypatch) == [("fp32", 1)]
    assert _sessions_running_batches(int8, [past], monkeypatch) == [("int8", 1)]
    assert _sessions_running_batches(fp32, texts, monkeypatch) == [("fp32", 6)]


def _copy_int8_cache(int8: OnnxEmbedder, target: Path) -> Path:
    copy = _copy_cache(int8.cache_dir, target)
    for name in (INT8, INT8.replace(".onnx", ".json")):
        (copy / name).write_bytes((int8.cache_dir / name).read_bytes())
    return copy


@pytest.mark.slow
def test_int8_is_made_again_for_a_new_recipe(
    int8: OnnxEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new int8 recipe quantizes a new int8 file, once, from the cached fp32 file, which
    is not exported again; the old recipe's file is left alone."""
    copy = _copy_int8_cache(int8, tmp_path / "cache")
    old = (copy / INT8).read_bytes()
    monkeypatch.setattr(onnx_module, "_RECIPES", {"fp32": 3, "int8": 5})
    exports = _counting_export(monkeypatch, b"never used")
    quantized: list[int] = []
    real = onnx_module._quantize

    def quantize(fp32: bytes) -> bytes:
        quantized.append(1)
        return real(fp32)

    monkeypatch.setattr(onnx_module, "_quantize", quantize)
    embedder = OnnxEmbedder(precision="int8", cache_dir=copy, threads=1).load()
    assert embedder.model_path == copy.resolve() / INT8.replace("-r4-", "-r5-")
    assert (exports, quantized) == ([], [1])
    record = json.loads(embedder.model_path.with_suffix(".json").read_text())
    assert (record["recipe"], record["precision"]) == (5, "int8")
    assert record["sha256"] == sha256_file(embedder.model_path)
    assert embedder.model_path.read_bytes() == old  # the same quantization, made again
    assert (copy / INT8).read_bytes() == old
    OnnxEmbedder(precision="int8", cache_dir=copy, threads=1).load()
    assert quantized == [1]  # cached now


def test_the_int8_nodes_kept_fp32(fp32: OnnxEmbedder) -> None:
    """The first layer's 4 weight nodes and layers 2-3's FFN output MatMuls stay fp32."""
    kept = onnx_module._kept_fp32(onnx.load(fp32.model_path))
    assert kept[:4] == [
        "Attention_0",
        "/model/encoder/layer.0/attention/output/dense/MatMul",
        "/model/encoder/layer.0/intermediate/dense/MatMul",
        "/model/encoder/layer.0/output/dense/MatMul",
    ]
    assert kept[4:] == [f"/model/encoder/layer.{i}/output/dense/MatMul" for i in (1, 2)]


def test_quantizing_an_unexpected_graph_is_refused(
    fp32: OnnxEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A graph without one Attention node per layer, or without the expected MatMuls, is
    not quantized: a clear error, and no int8 file or record is written."""
    node = onnx.helper.make_node("Attention", ["x"], ["y"], name="only", domain="com.microsoft")
    graph = onnx.helper.make_graph([node], "g", [], [])
    with pytest.raises(EmbedderError, match="has 1 Attention nodes, expected 6; delete"):
        onnx_module._kept_fp32(onnx.helper.make_model(graph))
    nodes = [
        onnx.helper.make_node("Attention", [f"x{i}"], [f"x{i + 1}"], domain="com.microsoft")
        for i in range(6)
    ]
    graph = onnx.helper.make_graph(nodes, "g", [], [])
    with pytest.raises(
        EmbedderError,
        match=r"has 1 Attention and MatMul nodes in its first layer and 0 BiasGelu -> "
        r"MatMul after it, expected 4 and 5; delete the cache_dir",
    ):
        onnx_module._kept_fp32(onnx.helper.make_model(graph))
    # The real graph, when it is not the shape expected: refused before anything is written.
    copy = _copy_cache(fp32.cache_dir, tmp_path / "cache")
    monkeypatch.setattr(onnx_module, "_LAYERS", 7)
    embedder = OnnxEmbedder(precision="int8", cache_dir=copy, threads=1)
    with pytest.raises(EmbedderError, match="has 6 Attention nodes, expected 7; delete"):
        embedder.load()
    assert sorted(p.suffix for p in copy.iterdir()) == [".json", ".lock", ".onnx"]
    assert not embedder.model_path.exists()


def test_empty_input_loads_nothing(tmp_path: Path) -> None:
    """No texts: shape (0, 384), and nothing is exported or loaded."""
    embedder = OnnxEmbedder(cache_dir=tmp_path / "cache")
    assert embedder.embed_documents([]).shape == (0, 384)
    assert not embedder.loaded
    assert not (tmp_path / "cache").exists()


def test_bad_texts(fp32: OnnxEmbedder) -> None:
    """Blank texts, a single str, non-str items: EmbedderError naming the index."""
    with pytest.raises(EmbedderError, match="index 2 is empty"):
        fp32.embed_documents(["a", "b", "  "])
    with pytest.raises(EmbedderError, match="single str"):
        fp32.embed_documents("a text")
    with pytest.raises(EmbedderError, match="index 0 is a bytes"):
        fp32.embed_documents([b"bytes"])  # type: ignore[list-item]
    with pytest.raises(EmbedderError, match="takes a str"):
        fp32.embed_query(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"precision": "fp16"}, r"precision must be one of 'fp32', 'int8', got 'fp16'"),
        ({"threads": 0}, "threads must be a positive integer or None"),
        ({"threads": True}, "threads must be a positive integer or None"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
    ],
)
def test_bad_settings(kwargs: dict[str, Any], match: str) -> None:
    """Bad settings raise EmbedderError when the embedder is made."""
    with pytest.raises(EmbedderError, match=match):
        OnnxEmbedder(**kwargs)


def test_cache_dir_must_be_a_directory(tmp_path: Path) -> None:
    """A file as cache_dir is refused when the embedder is made, and left alone."""
    file = tmp_path / "file"
    file.write_text("mine")
    with pytest.raises(EmbedderError, match="is a file, not a directory"):
        OnnxEmbedder(cache_dir=file)
    assert file.read_text() == "mine"


def test_an_unwritable_cache_is_a_clear_error(tmp_path: Path) -> None:
    """A cache_dir that cannot be created: EmbedderError saying to pass a writable one."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    embedder = OnnxEmbedder(cache_dir=blocker / "cache")  # under a file: mkdir fails
    with pytest.raises(EmbedderError, match=r"cannot create the ONNX model cache .*writable"):
        embedder.embed_query("q")
    assert not embedder.loaded


def test_missing_onnxruntime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without onnxruntime, embedding says to install the onnx extra; nothing is exported."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    embedder = OnnxEmbedder(cache_dir=tmp_path / "cache")
    with pytest.raises(EmbedderError, match=r"onnxruntime is not installed.*vecalchemy\[onnx\]"):
        embedder.embed_query("q")
    assert not (tmp_path / "cache").exists()


def test_export_without_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty cache and no torch: the error says the export needs the local extra once."""
    monkeypatch.setitem(sys.modules, "torch", None)
    embedder = OnnxEmbedder(cache_dir=tmp_path / "cache")
    with pytest.raises(EmbedderError, match=r"torch is not installed; exporting .*local"):
        embedder.embed_query("q")
    assert list((tmp_path / "cache").glob("*.onnx")) == []


def test_embedding_from_the_cache_never_imports_torch(fp32: OnnxEmbedder) -> None:
    """With the model cached, a process embeds with onnxruntime alone: no torch, no export."""
    code = (
        "import sys\n"
        "from vecalchemy.embedders import OnnxEmbedder, get_embedder\n"
        "assert 'onnxruntime' not in sys.modules\n"  # construction is lazy
        f"e = OnnxEmbedder(cache_dir={str(fp32.cache_dir)!r})\n"
        "print(e.name, e.loaded, type(get_embedder('minilm-onnx')).__name__)\n"
        "v = e.embed_query('Hello, world!')\n"
        "print(round(float(v[0]), 4), sorted(m for m in ('torch', 'transformers', "
        "'sentence_transformers') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.splitlines()
    assert out == [f"{NAME} False OnnxEmbedder", "-0.0382 []"]


def test_specs(tmp_path: Path) -> None:
    """'minilm-onnx' and 'minilm-onnx:int8' name the two precisions; others are refused."""
    fp32 = get_embedder("minilm-onnx")
    assert isinstance(fp32, OnnxEmbedder)
    assert fp32.precision == "fp32"
    int8 = get_embedder("minilm-onnx:INT8")
    assert isinstance(int8, OnnxEmbedder)
    assert int8.precision == "int8"
    assert isinstance(get_embedder("minilm-onnx:fp32"), OnnxEmbedder)
    with pytest.raises(EmbedderError, match=r"bad embedder spec 'minilm-onnx:fp16'.*'fp32' or"):
        get_embedder("minilm-onnx:fp16")
