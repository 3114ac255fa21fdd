"""Embeddings from any OpenAI-compatible HTTP endpoint, over httpx.

:class:`OpenAIEmbedder` posts batches of texts to ``{base_url}/embeddings``, the route
that OpenAI, Ollama, vLLM, Text Embeddings Inference, LM Studio and others serve. It
retries what is worth retrying (429, 408 and 5xx answers, lost connections, timeouts)
with exponential backoff and jitter, honouring ``Retry-After``; puts the vectors back
in the order of the texts by each item's ``index``; and turns every failure into an
:class:`~vecalchemy.errors.EmbedderError` that names the URL, the HTTP status and the
server's own message, never the API key.

Example::

    from vecalchemy.embedders import OpenAIEmbedder

    openai = OpenAIEmbedder("text-embedding-3-small")  # key from $OPENAI_API_KEY
    ollama = OpenAIEmbedder("nomic-embed-text", base_url="http://localhost:11434/v1")
    vectors = ollama.embed_documents(["first text", "second text"])
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import functools
import json
import math
import os
import random
import ssl
import threading
import time
import weakref
from collections.abc import Generator, Sequence
from datetime import datetime, timezone
from typing import Any, NoReturn

import httpx
import numpy as np
import numpy.typing as npt

from vecalchemy.embedders._checks import (
    as_matrix,
    batches,
    check_batch_size,
    check_query,
    check_texts,
)
from vecalchemy.embedders.base import BatchedEmbedder
from vecalchemy.errors import EmbedderError

__all__ = ["DEFAULT_BASE_URL", "OpenAIEmbedder"]

#: OpenAI's own API.
DEFAULT_BASE_URL = "https://api.openai.com/v1"
# The longest wait between two attempts, whatever the backoff or Retry-After say.
_MAX_WAIT = 60.0
_PROBE_TEXT = "dimension probe"
# The input windows OpenAI documents for its embedding models, in tokens.
_WINDOWS = {
    "text-embedding-3-small": 8191,
    "text-embedding-3-large": 8191,
    "text-embedding-ada-002": 8191,
}
_ERROR_SNIPPET = 300

# What one attempt gave: a response, or the transport error that stood for one.
_Outcome = httpx.Response | httpx.HTTPError
# A step of the retry loop: None asks for one request, a float for a pause of that long.
_Steps = Generator[float | None, _Outcome | None, httpx.Response]


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # httpx builds a new SSL context (about 20 ms: it loads the CA bundle) for every
    # client it makes; the async twins make one client per call, so share one context.
    return httpx.create_ssl_context()


def _positive_number(name: str, value: object, *, allow_zero: bool = False) -> float:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        kind = "a non-negative" if allow_zero else "a positive"
        raise EmbedderError(f"{name} must be {kind} number, got {value!r}")
    return float(value)


def _retryable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


def _retryable_error(exc: httpx.HTTPError) -> bool:
    # Timeouts, refused or reset connections, a peer that closed mid-answer; not a
    # malformed URL or an unsupported scheme, which no retry can fix.
    return isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))


def _retry_after(response: httpx.Response) -> float | None:
    """The pause the server asked for, in seconds: ``retry-after-ms`` or ``Retry-After``."""
    millis = response.headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _server_message(response: httpx.Response) -> str:
    """The error message in a response's body, in the shapes the known servers use."""
    try:
        body = response.json()
    except ValueError:
        text = " ".join(response.text.split())
        return text[:_ERROR_SNIPPET] or "(empty body)"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])  # OpenAI, vLLM
        if isinstance(error, str):
            return error  # Ollama, TEI
        for key in ("message", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return json.dumps(body)[:_ERROR_SNIPPET]


class OpenAIEmbedder(BatchedEmbedder):
    """Embed texts with a model behind an OpenAI-compatible ``POST {base_url}/embeddings``.

    ``api_key`` defaults to the environment variable named by ``api_key_env``
    (``OPENAI_API_KEY``); it is sent as ``Authorization: Bearer ...``, or not at all
    when there is none (local servers need none). ``dim`` is the expected number of
    dimensions; when not given, it is learnt from the first answer, and reading
    :attr:`dim` before anything was embedded sends one probe request.

    Each request carries at most ``batch_size`` texts and waits at most ``timeout``
    seconds. A 429, 408 or 5xx answer, a lost connection or a timeout is retried up to
    ``max_retries`` times, after ``backoff * 2**n`` seconds (with jitter, at most 60)
    or after what the server's ``Retry-After`` asks. Other answers fail at once.

    ``max_tokens`` is the model's input window in tokens, when known: given, or 8191 for
    OpenAI's ``text-embedding-3-small``, ``text-embedding-3-large`` and
    ``text-embedding-ada-002``, else ``None``. It is informative only: without the
    model's tokenizer (there is no ``token_spans``), vecalchemy cannot count tokens and
    does not fit chunks to it (the default ``markdown`` chunks are far below 8191).

    The sync methods keep one connection pool (close it with :meth:`close`, or use the
    embedder as a context manager); each async call opens and closes its own.

    Example::

        >>> embedder = OpenAIEmbedder("nomic-embed-text", base_url="http://localhost:11434/v1")
        >>> embedder.name
        'openai:nomic-embed-text@http://localhost:11434/v1'
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        dim: int | None = None,
        batch_size: int = 128,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_tokens: int | None = None,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise EmbedderError(f"model must be a non-empty str, got {model!r}")
        if not isinstance(base_url, str):
            raise EmbedderError(f"base_url must be a str, got {type(base_url).__name__}")
        try:
            url = httpx.URL(base_url.rstrip("/"))
        except httpx.InvalidURL as exc:
            raise EmbedderError(f"base_url {base_url!r} is not a URL: {exc}") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise EmbedderError(
                f"base_url must be an http:// or https:// URL such as {DEFAULT_BASE_URL!r} "
                f"or 'http://localhost:11434/v1', got {base_url!r}"
            )
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise EmbedderError("api_key must be a non-empty str (or None to read it from env)")
        if dim is not None and (not isinstance(dim, int) or isinstance(dim, bool) or dim < 1):
            raise EmbedderError(f"dim must be a positive integer or None, got {dim!r}")
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
        ):
            raise EmbedderError(
                f"max_tokens must be a positive integer or None, got {max_tokens!r}"
            )
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise EmbedderError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        self.batch_size = check_batch_size(batch_size)
        self._model_id = model
        # A user:password in base_url becomes basic auth, so that the URL that requests,
        # names and messages (httpx's too) carry has no credentials in it.
        self._base_url = str(url.copy_with(username=None, password=None))
        self._url = f"{self._base_url}/embeddings"
        self._api_key_env = api_key_env
        self._api_key = api_key if api_key is not None else os.environ.get(api_key_env) or None
        self._auth: httpx.BasicAuth | None = None
        if url.username and self._api_key is None:
            self._auth = httpx.BasicAuth(url.username, url.password)
        self._dim = dim
        self._max_tokens = max_tokens if max_tokens is not None else _WINDOWS.get(model)
        self._timeout = _positive_number("timeout", timeout)
        self._max_retries = max_retries
        self._backoff = _positive_number("backoff", backoff, allow_zero=True)
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    # -- identity ----------------------------------------------------------------------

    @property
    def model(self) -> str:
        """The model's name as the server knows it.

        Example::

            >>> OpenAIEmbedder("text-embedding-3-small").model
            'text-embedding-3-small'
        """
        return self._model_id

    @property
    def base_url(self) -> str:
        """The API's base URL, without credentials.

        Example::

            >>> OpenAIEmbedder("text-embedding-3-small").base_url
            'https://api.openai.com/v1'
        """
        return self._base_url

    @property
    def name(self) -> str:
        """``openai:<model>``, with ``@<base_url>`` unless it is OpenAI's.

        A remote model has no revision to read; the server's URL stands for it (the
        same model name on another server may be another model).

        Example::

            >>> OpenAIEmbedder("text-embedding-3-small").name
            'openai:text-embedding-3-small'
        """
        if self._base_url == DEFAULT_BASE_URL:
            return f"openai:{self._model_id}"
        return f"openai:{self._model_id}@{self._base_url}"

    @property
    def dim(self) -> int:
        """The number of dimensions: as given, or learnt (one probe request if need be).

        Example::

            >>> OpenAIEmbedder("text-embedding-3-small", dim=1536).dim
            1536
        """
        if self._dim is None:
            self.embed_query(_PROBE_TEXT)
        assert self._dim is not None  # set by the answer's parser
        return self._dim

    @property
    def max_tokens(self) -> int | None:
        """The model's input window in tokens: as given, 8191 for OpenAI's embedding
        models, else ``None`` (unknown).

        Example::

            >>> OpenAIEmbedder("text-embedding-3-small").max_tokens
            8191
        """
        return self._max_tokens

    def __repr__(self) -> str:
        return f"OpenAIEmbedder({self._model_id!r}, base_url={self._base_url!r})"

    # -- the sync connection pool ------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        if self._api_key is None:
            return {}
        return {"Authorization": f"Bearer {self._api_key}"}

    def _client_options(self) -> dict[str, Any]:
        return {
            "timeout": self._timeout,
            "headers": self._headers(),
            "auth": self._auth,
            "verify": _ssl_context(),
        }

    def _sync_client(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(**self._client_options())
                # Close the pool's sockets when the embedder is collected, if not before.
                weakref.finalize(self, self._client.close)
            return self._client

    def close(self) -> None:
        """Close the sync connection pool (it reopens if the embedder is used again).

        Example::

            embedder = OpenAIEmbedder("text-embedding-3-small")
            try:
                embedder.embed_documents(texts)
            finally:
                embedder.close()
        """
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> OpenAIEmbedder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the retry loop, shared by the sync and async drivers --------------------------

    def _attempts(self) -> _Steps:
        """Yield None for each request to send and a float for each pause to make.

        Receives each request's outcome; returns the first successful response and
        raises EmbedderError once an outcome is not worth retrying, or none is left.
        """
        attempt = 0
        while True:
            outcome = yield None
            attempt += 1
            retries_left = attempt <= self._max_retries
            if isinstance(outcome, httpx.Response):
                if outcome.is_success:
                    return outcome
                if not (retries_left and _retryable_status(outcome.status_code)):
                    self._raise_for_status(outcome, attempt)
                wait = _retry_after(outcome)
            else:
                assert isinstance(outcome, httpx.HTTPError)
                if not (retries_left and _retryable_error(outcome)):
                    self._raise_for_error(outcome, attempt)
                wait = None
            if wait is None:
                wait = self._backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
            yield min(wait, _MAX_WAIT)

    def _gave_up(self, attempts: int) -> str:
        return f"gave up after {attempts} attempts: " if attempts > 1 else ""

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _raise_for_status(self, response: httpx.Response, attempts: int) -> NoReturn:
        status = response.status_code
        message = self._redact(_server_message(response))
        hint = ""
        if status in (401, 403):
            if self._api_key is None:
                hint = f"; no API key was sent: set ${self._api_key_env} or pass api_key="
            else:
                hint = f"; check the API key (api_key= or ${self._api_key_env})"
        elif status == 404:
            hint = (
                f"; check the model name {self._model_id!r} and that base_url is the API's "
                "root, ending in /v1 for most servers (e.g. http://localhost:11434/v1)"
            )
        try:
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            raise EmbedderError(
                f"{self._gave_up(attempts)}POST {self._url} answered {status} "
                f"{response.reason_phrase}: {message}{hint}"
            ) from exc
        # A 1xx or 3xx answer: not an error to httpx, not embeddings either.
        location = response.headers.get("location")
        raise EmbedderError(
            f"POST {self._url} answered {status} {response.reason_phrase}"
            + (f" (to {location}); use that URL's API root as base_url" if location else "")
        )

    def _raise_for_error(self, exc: httpx.HTTPError, attempts: int) -> NoReturn:
        if isinstance(exc, httpx.TimeoutException):
            what = f"got no answer from {self._url} within {self._timeout:g} s"
            hint = "; raise timeout= if the server is slow, or lower batch_size="
        elif isinstance(exc, httpx.ConnectError):
            what = f"could not connect to {self._url}"
            hint = "; check base_url and that the server is running"
        else:
            what = f"POST {self._url} failed"
            hint = ""
        detail = self._redact(str(exc)) or type(exc).__name__
        raise EmbedderError(f"{self._gave_up(attempts)}{what} ({detail}){hint}") from exc

    def _payload(self, texts: list[str]) -> dict[str, Any]:
        return {"model": self._model_id, "input": texts}

    def _parse(self, response: httpx.Response, rows: int) -> npt.NDArray[np.float32]:
        """The vectors in a successful answer, in the order of the texts sent."""
        where = f"POST {self._url} (model {self._model_id!r})"
        try:
            body = response.json()
        except ValueError as exc:
            snippet = " ".join(response.text.split())[:_ERROR_SNIPPET]
            raise EmbedderError(
                f"{where} answered {response.status_code} with a body that is not JSON: "
                f"{self._redact(snippet)!r}; is base_url an OpenAI-compatible API?"
            ) from exc
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise EmbedderError(
                f"{where} answered without a 'data' list of embeddings: "
                f"{self._redact(_server_message(response))}"
            )
        if len(data) != rows:
            raise EmbedderError(f"{where} answered {len(data)} embeddings for {rows} texts")
        vectors: list[Any] = [None] * rows
        for position, item in enumerate(data):
            index = item.get("index", position) if isinstance(item, dict) else None
            if not isinstance(index, int) or not 0 <= index < rows or vectors[index] is not None:
                raise EmbedderError(
                    f"{where} answered an item with a missing, repeated or out-of-range "
                    f"index at position {position}"
                )
            embedding = item.get("embedding")
            if isinstance(embedding, str):  # encoding_format=base64: little-endian float32
                try:
                    embedding = np.frombuffer(base64.b64decode(embedding), dtype="<f4")
                except ValueError as exc:
                    raise EmbedderError(f"{where} answered a malformed base64 vector") from exc
            if not isinstance(embedding, (list, np.ndarray)):
                raise EmbedderError(f"{where} answered item {index} without an embedding")
            vectors[index] = embedding
        lengths = sorted({len(v) for v in vectors})
        if len(lengths) > 1:
            raise EmbedderError(f"{where} answered vectors of different lengths: {lengths}")
        matrix = as_matrix(vectors, rows=rows, dim=self._dim, source=where)
        if self._dim is None:
            self._dim = int(matrix.shape[1])
        return matrix

    # -- sync --------------------------------------------------------------------------

    def _expected_dim(self) -> int | None:
        return self._dim

    def _post(self, texts: list[str]) -> npt.NDArray[np.float32]:
        client = self._sync_client()
        payload = self._payload(texts)
        steps = self._attempts()
        step = next(steps)
        try:
            while True:
                if step is None:
                    outcome: _Outcome
                    try:
                        outcome = client.post(self._url, json=payload)
                    except httpx.HTTPError as exc:
                        outcome = exc
                    step = steps.send(outcome)
                else:
                    time.sleep(step)
                    step = steps.send(None)
        except StopIteration as done:
            return self._parse(done.value, len(texts))

    def _embed_batch(self, texts: list[str], *, query: bool) -> npt.NDArray[np.float32]:
        return self._post(texts)

    # -- async -------------------------------------------------------------------------

    async def _apost(self, client: httpx.AsyncClient, texts: list[str]) -> npt.NDArray[np.float32]:
        payload = self._payload(texts)
        steps = self._attempts()
        step = next(steps)
        try:
            while True:
                if step is None:
                    outcome: _Outcome
                    try:
                        outcome = await client.post(self._url, json=payload)
                    except httpx.HTTPError as exc:
                        outcome = exc
                    step = steps.send(outcome)
                else:
                    await asyncio.sleep(step)
                    step = steps.send(None)
        except StopIteration as done:
            return self._parse(done.value, len(texts))

    async def aembed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Like :meth:`embed_documents`, with ``httpx.AsyncClient``: the loop never blocks.

        Batches are sent one after the other over one connection pool.

        Example::

            vectors = await embedder.aembed_documents(["first text", "second text"])
        """
        checked = check_texts(texts)
        async with httpx.AsyncClient(**self._client_options()) as client:
            if not checked:
                if self._dim is None:
                    await self._apost(client, [_PROBE_TEXT])
                assert self._dim is not None
                return np.empty((0, self._dim), dtype=np.float32)
            parts = [
                await self._apost(client, list(batch))
                for batch in batches(checked, self.batch_size)
            ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    async def aembed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Like :meth:`embed_query`, with ``httpx.AsyncClient``.

        Example::

            vector = await embedder.aembed_query("where is the config file?")
        """
        checked = check_query(text)
        async with httpx.AsyncClient(**self._client_options()) as client:
            vector: npt.NDArray[np.float32] = (await self._apost(client, [checked]))[0]
        return vector
