"""FastEmbed (ONNX Runtime) models, behind the ``fastembed`` extra.

:class:`FastEmbedEmbedder` runs one of FastEmbed's text models in-process on ONNX
Runtime, without torch. FastEmbed downloads a model into its cache on first use; where
the model hub cannot be reached, fill the cache where it can (any run of FastEmbed with
the same ``cache_dir``) and point ``cache_dir=`` at a copy, with
``local_files_only=True`` so that nothing is fetched.

Nothing is imported until the model is needed: ``import vecalchemy`` never imports
fastembed or onnxruntime.

Example::

    from vecalchemy.embedders import FastEmbedEmbedder

    embedder = FastEmbedEmbedder("BAAI/bge-small-en-v1.5", cache_dir="/srv/models")
    vectors = embedder.embed_documents(["first text", "second text"])  # (2, 384)
"""

from __future__ import annotations

import hashlib
import importlib
import os
import threading
from pathlib import Path
from typing import Any

from vecalchemy.embedders._checks import check_batch_size
from vecalchemy.embedders.base import BatchedEmbedder
from vecalchemy.errors import EmbedderError

__all__ = ["DEFAULT_FASTEMBED_MODEL", "FastEmbedEmbedder"]

#: FastEmbed's own default model (384 dimensions).
DEFAULT_FASTEMBED_MODEL = "BAAI/bge-small-en-v1.5"
_INSTALL = "fastembed is not installed; install the extra: pip install 'vecalchemy[fastembed]'"

# One loaded model per (model, cache_dir, threads), and a lock serialising its use.
_MODELS: dict[tuple[str, str | None, int | None], tuple[Any, threading.Lock]] = {}
_LOAD_LOCK = threading.Lock()


def _fastembed() -> Any:
    try:
        return importlib.import_module("fastembed")
    except ImportError as exc:
        raise EmbedderError(_INSTALL) from exc


def _onnx_digest(model: Any) -> str | None:
    """SHA-256 over the ONNX files of a loaded FastEmbed model, if it can be found."""
    directory = getattr(getattr(model, "model", None), "_model_dir", None)
    if directory is None:
        return None
    files = sorted(p for p in Path(directory).rglob("*.onnx*") if p.is_file())
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        file_digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                file_digest.update(block)
        relative = path.relative_to(directory).as_posix()
        digest.update(f"{relative}\0{file_digest.hexdigest()}\n".encode())
    return digest.hexdigest()


class FastEmbedEmbedder(BatchedEmbedder):
    """Embed texts with a FastEmbed text model (ONNX Runtime, CPU).

    ``model`` is one of ``fastembed.TextEmbedding.list_supported_models()``; its
    dimension is known without loading it. The model is downloaded (unless
    ``local_files_only``) into ``cache_dir`` (FastEmbed's default: ``$FASTEMBED_CACHE_PATH``
    or a folder in the temporary directory) and loaded on first use, once per process.
    ``threads`` caps ONNX Runtime's threads (default: all cores); ``batch_size`` texts
    go through the model at a time. Documents and queries go through FastEmbed's
    ``passage_embed`` and ``query_embed``, which add the prefixes a model expects.

    :attr:`name` is ``fastembed:<model>@sha256:<12 hex digits>`` over the model's ONNX
    files, so reading it loads the model.

    Example::

        embedder = FastEmbedEmbedder(cache_dir="/srv/models", local_files_only=True)
        embedder.dim                       # 384, from FastEmbed's model list
        embedder.embed_query("where is the config file?").shape   # (384,)
    """

    def __init__(
        self,
        model: str = DEFAULT_FASTEMBED_MODEL,
        *,
        batch_size: int = 256,
        cache_dir: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        local_files_only: bool = False,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise EmbedderError(f"model must be a non-empty str, got {model!r}")
        if threads is not None and (
            not isinstance(threads, int) or isinstance(threads, bool) or threads < 1
        ):
            raise EmbedderError(f"threads must be a positive integer or None, got {threads!r}")
        self.batch_size = check_batch_size(batch_size)
        self._model_id = model
        self._cache_dir = None if cache_dir is None else str(Path(cache_dir).expanduser())
        self._threads = threads
        self._local_files_only = bool(local_files_only)
        self._dim: int | None = None
        self._digest: str | None = None
        self._model: Any = None
        self._lock: threading.Lock | None = None

    @property
    def model(self) -> str:
        """The FastEmbed model name.

        Example::

            >>> FastEmbedEmbedder().model
            'BAAI/bge-small-en-v1.5'
        """
        return self._model_id

    @property
    def dim(self) -> int:
        """The number of dimensions, from FastEmbed's list of models (no download).

        Example::

            FastEmbedEmbedder("BAAI/bge-small-en-v1.5").dim  # 384
        """
        if self._dim is None:
            text_embedding = _fastembed().TextEmbedding
            try:
                self._dim = int(text_embedding.get_embedding_size(self._model_id))
            except AttributeError:  # fastembed < 0.5: look it up in the model list
                self._dim = self._dim_from_list(text_embedding)
            except ValueError as exc:
                raise self._unknown_model() from exc
        return self._dim

    def _dim_from_list(self, text_embedding: Any) -> int:
        for description in text_embedding.list_supported_models():
            if str(description["model"]).lower() == self._model_id.lower():
                return int(description["dim"])
        raise self._unknown_model()

    def _unknown_model(self) -> EmbedderError:
        return EmbedderError(
            f"fastembed has no text model {self._model_id!r}; see "
            "fastembed.TextEmbedding.list_supported_models() for the ones it has"
        )

    @property
    def name(self) -> str:
        """``fastembed:<model>@sha256:<digest>``; loads the model to hash its files.

        Example::

            FastEmbedEmbedder().name  # 'fastembed:BAAI/bge-small-en-v1.5@sha256:...'
        """
        model, _ = self._load()
        if self._digest is None:
            digest = _onnx_digest(model)
            if digest is None:  # a fastembed whose model folder we cannot find
                version = getattr(_fastembed(), "__version__", "unknown")
                return f"fastembed:{self._model_id}@fastembed-{version}"
            self._digest = digest
        return f"fastembed:{self._model_id}@sha256:{self._digest[:12]}"

    @property
    def max_tokens(self) -> None:
        """``None``: FastEmbed does not expose its models' windows nor their tokenizers,
        so vecalchemy cannot fit chunks to them (FastEmbed truncates texts longer than its
        model's window, 512 tokens for most). Keep chunks short (the default ``markdown``
        splitter's 1000 characters stay under 512 tokens in English).

        Example::

            >>> FastEmbedEmbedder().max_tokens is None
            True
        """
        return None

    def __repr__(self) -> str:
        return f"FastEmbedEmbedder({self._model_id!r}, cache_dir={self._cache_dir!r})"

    def _load(self) -> tuple[Any, threading.Lock]:
        if self._model is not None and self._lock is not None:
            return self._model, self._lock
        key = (self._model_id, self._cache_dir, self._threads)
        with _LOAD_LOCK:
            entry = _MODELS.get(key)
            if entry is None:
                self.dim  # noqa: B018 - an unknown model fails here, before any download
                entry = _MODELS[key] = (self._load_model(), threading.Lock())
        self._model, self._lock = entry
        return entry

    def _load_model(self) -> Any:
        text_embedding = _fastembed().TextEmbedding
        kwargs: dict[str, Any] = {"model_name": self._model_id, "cache_dir": self._cache_dir}
        if self._threads is not None:
            kwargs["threads"] = self._threads
        if self._local_files_only:
            kwargs["local_files_only"] = True
        try:
            return text_embedding(**kwargs)
        except Exception as exc:  # the boundary with fastembed and the model hub
            cache = self._cache_dir or "fastembed's default cache"
            raise EmbedderError(
                f"fastembed could not load {self._model_id!r} from {cache} "
                f"({type(exc).__name__}: {exc}); if this machine cannot reach the model hub, "
                "download the model where it can and pass that cache's directory as "
                "cache_dir= (with local_files_only=True)"
            ) from exc

    def _source(self) -> str:
        return f"fastembed model {self._model_id!r}"

    def _embed_batch(self, texts: list[str], *, query: bool) -> Any:
        model, lock = self._load()
        method = getattr(model, "query_embed" if query else "passage_embed", None)
        embed = method if method is not None else model.embed
        with lock:
            return list(embed(texts, batch_size=self.batch_size))
