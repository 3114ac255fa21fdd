"""Tests for OpenAIEmbedder against a real HTTP server on 127.0.0.1 (no mocked transport).

The server speaks the OpenAI embeddings API with deterministic vectors, and can be
told to answer the next requests with an error status, a Retry-After header, a
malformed body, vectors of the wrong size, or no answer at all (to time out).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import numpy as np
import pytest

from vecalchemy.embedders import Embedder, OpenAIEmbedder
from vecalchemy.embedders.openai import _retry_after
from vecalchemy.errors import EmbedderError

DIM = 8
KEY = "sk-test-0123456789-secret"


def fake_vector(text: str, dim: int = DIM) -> list[float]:
    """The server's embedding of ``text``: a fixed pseudo-random vector per text."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return [round(float(x), 6) for x in np.random.default_rng(seed).standard_normal(dim)]


def expected(texts: list[str], dim: int = DIM) -> np.ndarray:
    return np.array([fake_vector(t, dim) for t in texts], dtype=np.float32)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any


# An action answers one request: (status, headers, body bytes), or None to not answer.
Action = Callable[[Any], "tuple[int, dict[str, str], bytes] | None"]


def reply(status: int, body: Any = None, **headers: str) -> Action:
    """An action answering ``status`` with ``body`` (JSON unless bytes)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
    return lambda _request: (status, hdrs, raw)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left is expected here


@dataclass
class FakeServer:
    """A ThreadingHTTPServer serving ``POST /v1/embeddings`` like OpenAI does."""

    dim: int = DIM
    shuffle: bool = False  # answer the items in reverse order (with their index)
    requests: list[Request] = field(default_factory=list)
    plan: list[Action] = field(default_factory=list)  # answers for the next requests
    default: Action | None = None  # the answer once the plan is used up
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> FakeServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with server.lock:
                    server.requests.append(request)
                    action = server.plan.pop(0) if server.plan else server.default
                answer = (action or server.success)(body)
                if answer is None:  # hang until the test ends, then drop the connection
                    server.release.wait(30)
                    return
                status, headers, payload = answer
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout test)
                    pass

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        return self

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def success(self, body: Any) -> tuple[int, dict[str, str], bytes]:
        inputs = body["input"]
        items = [
            {"object": "embedding", "index": i, "embedding": fake_vector(t, self.dim)}
            for i, t in enumerate(inputs)
        ]
        if self.shuffle:
            items.reverse()
        answer = {"object": "list", "data": items, "model": body["model"], "usage": {}}
        return 200, {}, json.dumps(answer).encode()

    def sizes(self) -> list[int]:
        return [len(r.body["input"]) for r in self.requests]


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer().start()
    yield fake
    fake.close()


@pytest.fixture
def embedder(server: FakeServer) -> Iterator[OpenAIEmbedder]:
    with OpenAIEmbedder("test-model", base_url=server.url, api_key=KEY, backoff=0.01) as e:
        yield e


TEXTS = ["first text", "second text", "third text", "fourth", "fifth"]


# -- success -----------------------------------------------------------------------------


def test_embeds_documents_in_order(server: FakeServer, embedder: OpenAIEmbedder) -> None:
    """One POST /v1/embeddings with the model and the texts; float32 rows in text order."""
    vectors = embedder.embed_documents(TEXTS)
    assert vectors.dtype == np.float32
    assert np.array_equal(vectors, expected(TEXTS))
    [request] = server.requests
    assert request.path == "/v1/embeddings"
    assert request.body == {"model": "test-model", "input": TEXTS}
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert embedder.dim == DIM  # learnt from the answer, no probe
    assert len(server.requests) == 1
    assert isinstance(embedder, Embedder)


def test_results_are_reordered_by_index(server: FakeServer, embedder: OpenAIEmbedder) -> None:
    """Items answered out of order are put back by their 'index'."""
    server.shuffle = True
    assert np.array_equal(embedder.embed_documents(TEXTS), expected(TEXTS))


def test_query(server: FakeServer, embedder: OpenAIEmbedder) -> None:
    """embed_query sends one text and returns shape (dim,), as embed_documents would."""
    vector = embedder.embed_query("a query")
    assert vector.shape == (DIM,)
    assert np.array_equal(vector, expected(["a query"])[0])
    assert server.requests[0].body["input"] == ["a query"]


def test_batches_of_batch_size(server: FakeServer) -> None:
    """300 texts with batch_size=128 go out as 3 requests of 128, 128 and 44 texts."""
    texts = [f"text number {i}" for i in range(300)]
    with OpenAIEmbedder("m", base_url=server.url, batch_size=128) as embedder:
        vectors = embedder.embed_documents(texts)
    assert server.sizes() == [128, 128, 44]
    assert np.array_equal(vectors, expected(texts))


def test_dim_is_probed_once_when_not_given(server: FakeServer) -> None:
    """Without dim=, reading .dim sends one probe request; with dim=, none."""
    with OpenAIEmbedder("m", base_url=server.url) as embedder:
        assert embedder.dim == DIM
        assert embedder.dim == DIM
    assert server.sizes() == [1]
    with OpenAIEmbedder("m", base_url=server.url, dim=DIM) as given:
        assert given.dim == DIM
        assert given.embed_documents([]).shape == (0, DIM)
    assert server.sizes() == [1]


def test_base64_vectors_are_decoded(server: FakeServer, embedder: OpenAIEmbedder) -> None:
    """An item whose embedding is base64 (little-endian float32) is decoded."""

    def base64_answer(body: Any) -> tuple[int, dict[str, str], bytes]:
        data = [
            {
                "index": i,
                "embedding": base64.b64encode(
                    np.array(fake_vector(t), dtype="<f4").tobytes()
                ).decode(),
            }
            for i, t in enumerate(body["input"])
        ]
        return 200, {}, json.dumps({"data": data}).encode()

    server.plan.append(base64_answer)
    assert np.array_equal(embedder.embed_documents(TEXTS[:2]), expected(TEXTS[:2]))


async def test_async_twins(server: FakeServer) -> None:
    """aembed_documents (batched) and aembed_query return what the sync methods do."""
    texts = [f"async text {i}" for i in range(10)]
    embedder = OpenAIEmbedder("m", base_url=server.url, api_key=KEY, batch_size=4)
    vectors = await embedder.aembed_documents(texts)
    assert np.array_equal(vectors, expected(texts))
    assert server.sizes() == [4, 4, 2]
    assert np.array_equal(await embedder.aembed_query("q"), expected(["q"])[0])
    assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    many = await asyncio.gather(*(embedder.aembed_query(t) for t in texts))
    assert np.array_equal(np.stack(many), vectors)
    assert (await embedder.aembed_documents([])).shape == (0, DIM)


# -- retries -----------------------------------------------------------------------------


def test_retries_429_and_503_then_succeeds(server: FakeServer, embedder: OpenAIEmbedder) -> None:
    """A 429 with Retry-After and a 503 are retried; Retry-After's pause is honoured."""
    server.plan += [
        reply(429, {"error": {"message": "rate limited"}}, Retry_After="0.4"),
        reply(503, {"error": "overloaded"}),
    ]
    started = time.perf_counter()
    vectors = embedder.embed_documents(TEXTS)
    took = time.perf_counter() - started
    assert np.array_equal(vectors, expected(TEXTS))
    assert len(server.requests) == 3
    assert took >= 0.4


async def test_async_retries_then_succeeds(server: FakeServer) -> None:
    """The async twin retries the same way (retry-after-ms honoured)."""
    server.plan += [reply(429, {}, retry_after_ms="300"), reply(502, b"bad gateway")]
    embedder = OpenAIEmbedder("m", base_url=server.url, backoff=0.01)
    started = time.perf_counter()
    assert np.array_equal(await embedder.aembed_documents(TEXTS), expected(TEXTS))
    assert time.perf_counter() - started >= 0.3
    assert len(server.requests) == 3


def test_gives_up_after_max_retries(server: FakeServer) -> None:
    """An endless 503 is tried 1 + max_retries times; the error names URL, status, message."""
    server.default = reply(503, {"error": {"message": "model is loading"}})
    with (
        OpenAIEmbedder("m", base_url=server.url, max_retries=2, backoff=0.01) as embedder,
        pytest.raises(EmbedderError) as info,
    ):
        embedder.embed_documents(TEXTS)
    message = str(info.value)
    assert "gave up after 3 attempts" in message
    assert f"{server.url}/embeddings" in message
    assert "503 Service Unavailable" in message
    assert "model is loading" in message
    assert isinstance(info.value.__cause__, httpx.HTTPStatusError)
    assert len(server.requests) == 3


async def test_async_gives_up_after_max_retries(server: FakeServer) -> None:
    """The async twin gives up after the same number of attempts."""
    server.default = reply(500, {"detail": "internal error"})
    embedder = OpenAIEmbedder("m", base_url=server.url, max_retries=1, backoff=0.01)
    with pytest.raises(EmbedderError, match=r"gave up after 2 attempts: .* 500 .*internal error"):
        await embedder.aembed_query("q")
    assert len(server.requests) == 2


def test_timeout(server: FakeServer) -> None:
    """A server that never answers times out after `timeout` s, retried, then a clear error."""
    server.default = lambda _body: None
    started = time.perf_counter()
    with (
        OpenAIEmbedder(
            "m", base_url=server.url, timeout=0.2, max_retries=1, backoff=0.01
        ) as embedder,
        pytest.raises(EmbedderError) as info,
    ):
        embedder.embed_documents(TEXTS)
    took = time.perf_counter() - started
    assert "gave up after 2 attempts" in str(info.value)
    assert "within 0.2 s" in str(info.value)
    assert isinstance(info.value.__cause__, httpx.TimeoutException)
    assert len(server.requests) == 2
    assert 0.4 <= took < 5


async def test_async_timeout(server: FakeServer) -> None:
    """The async twin times out the same way."""
    server.default = lambda _body: None
    embedder = OpenAIEmbedder("m", base_url=server.url, timeout=0.2, max_retries=0)
    with pytest.raises(EmbedderError, match=r"no answer from .* within 0\.2 s"):
        await embedder.aembed_documents(TEXTS)
    assert len(server.requests) == 1


def test_connection_refused_is_retried_then_reported() -> None:
    """Nothing listening: retried, then 'could not connect' naming the URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with (
        OpenAIEmbedder("m", base_url=url, max_retries=1, backoff=0.01) as embedder,
        pytest.raises(
            EmbedderError, match="gave up after 2 attempts: could not connect to"
        ) as info,
    ):
        embedder.embed_query("q")
    assert f"{url}/embeddings" in str(info.value)
    assert isinstance(info.value.__cause__, httpx.ConnectError)


# -- errors that are not retried ---------------------------------------------------------


def test_401_is_not_retried_and_says_what_to_do(
    server: FakeServer, embedder: OpenAIEmbedder
) -> None:
    """A 401 fails at once with the server's message and a hint about the key."""
    server.default = reply(401, {"error": {"message": "Incorrect API key provided: sk-te***et."}})
    with pytest.raises(EmbedderError) as info:
        embedder.embed_documents(TEXTS)
    message = str(info.value)
    assert "401 Unauthorized" in message
    assert "Incorrect API key provided" in message
    assert "check the API key (api_key= or $OPENAI_API_KEY)" in message
    assert "gave up" not in message
    assert len(server.requests) == 1


def test_401_without_a_key(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a key no Authorization header is sent, and a 401 says how to give one."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server.default = reply(401, {"error": {"message": "You didn't provide an API key."}})
    with (
        OpenAIEmbedder("m", base_url=server.url) as embedder,
        pytest.raises(EmbedderError, match=r"no API key was sent: set \$OPENAI_API_KEY"),
    ):
        embedder.embed_query("q")
    assert "authorization" not in server.requests[0].headers


def test_key_from_the_environment(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key comes from $OPENAI_API_KEY, or from the variable api_key_env names."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-openai-env")
    monkeypatch.setenv("MY_EMBEDDINGS_KEY", "sk-from-my-env")
    with OpenAIEmbedder("m", base_url=server.url) as default_env:
        default_env.embed_query("q")
    with OpenAIEmbedder("m", base_url=server.url, api_key_env="MY_EMBEDDINGS_KEY") as named:
        named.embed_query("q")
    assert [r.headers["authorization"] for r in server.requests] == [
        "Bearer sk-from-openai-env",
        "Bearer sk-from-my-env",
    ]


def test_the_key_never_appears_in_errors(server: FakeServer, embedder: OpenAIEmbedder) -> None:
    """Even a server that echoes the key back gets it redacted; tracebacks omit it too."""

    def echo_key(_body: Any) -> tuple[int, dict[str, str], bytes]:
        auth = server.requests[-1].headers["authorization"]
        return 400, {}, json.dumps({"error": {"message": f"bad header {auth}"}}).encode()

    server.plan += [echo_key, reply(200, f"not json {KEY}".encode())]
    for _ in range(2):
        with pytest.raises(EmbedderError) as info:
            embedder.embed_query("q")
        rendered = "".join(traceback.format_exception(info.value))
        assert KEY not in rendered
        assert "***" in str(info.value)
    assert KEY not in repr(embedder)
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_404_hints_at_model_and_base_url(server: FakeServer, embedder: OpenAIEmbedder) -> None:
    """A 404 (wrong path or model) says to check both."""
    server.default = reply(404, {"error": "model 'test-model' not found"})
    with pytest.raises(EmbedderError, match=r"404 Not Found: model 'test-model' not found; check"):
        embedder.embed_query("q")


def test_malformed_json(server: FakeServer, embedder: OpenAIEmbedder) -> None:
    """A 200 whose body is not JSON is an error quoting the body, not retried."""
    server.plan.append(reply(200, b"<html>proxy login</html>"))
    with pytest.raises(EmbedderError, match=r"not JSON: '<html>proxy login</html>'"):
        embedder.embed_documents(TEXTS)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"object": "list"}, "without a 'data' list"),
        ({"error": {"message": "quota exceeded"}}, "without a 'data' list.*quota exceeded"),
        ({"data": [{"index": 0, "embedding": [1.0] * DIM}]}, "answered 1 embeddings for 2 texts"),
        (
            {"data": [{"index": 0, "embedding": [1.0] * DIM}] * 2},
            "repeated or out-of-range index at position 1",
        ),
        ({"data": [{"index": 0}, {"index": 1}]}, "item 0 without an embedding"),
        (
            {"data": [{"index": 0, "embedding": [1.0] * DIM}, {"index": 1, "embedding": [1.0]}]},
            "vectors of different lengths",
        ),
        (
            {"data": [{"embedding": ["x"] * DIM}, {"embedding": ["y"] * DIM}]},
            "not numbers",
        ),
    ],
)
def test_malformed_answers(
    server: FakeServer, embedder: OpenAIEmbedder, body: Any, match: str
) -> None:
    """Answers that are not a list of one vector per text are errors saying what was wrong."""
    server.plan.append(reply(200, body))
    with pytest.raises(EmbedderError, match=match):
        embedder.embed_documents(TEXTS[:2])


def test_non_finite_values(server: FakeServer, embedder: OpenAIEmbedder) -> None:
    """NaN in a vector (Python's JSON allows it) is an error naming the text."""
    server.plan.append(
        reply(
            200,
            b'{"data": [{"index": 0, "embedding": [1, 2]}, {"index": 1, "embedding": [NaN, 1]}]}',
        )
    )
    with pytest.raises(EmbedderError, match="NaN or infinity in the vector of text 1"):
        embedder.embed_documents(TEXTS[:2])


def test_wrong_dimension_from_the_server(server: FakeServer) -> None:
    """Vectors of another size than dim=, or than the first answer's, are an error."""
    with (
        OpenAIEmbedder("m", base_url=server.url, dim=16) as embedder,
        pytest.raises(EmbedderError, match="vectors of 8 dimensions, expected 16"),
    ):
        embedder.embed_query("q")
    with OpenAIEmbedder("m", base_url=server.url, batch_size=2) as learnt:
        learnt.embed_documents(TEXTS[:2])
        server.dim = 6
        with pytest.raises(EmbedderError, match="vectors of 6 dimensions, expected 8"):
            learnt.embed_documents(TEXTS[:2])


def test_bad_texts_fail_before_any_request(server: FakeServer, embedder: OpenAIEmbedder) -> None:
    """Empty texts, a single str or a non-str raise before anything is sent."""
    with pytest.raises(EmbedderError, match="index 1 is empty"):
        embedder.embed_documents(["ok", ""])
    with pytest.raises(EmbedderError, match="single str"):
        embedder.embed_documents("one text")
    with pytest.raises(EmbedderError, match="takes a str"):
        embedder.embed_query(3)  # type: ignore[arg-type]
    assert server.requests == []


# -- identity and settings ---------------------------------------------------------------


def test_name_and_credentials_in_the_url(server: FakeServer) -> None:
    """name is openai:<model>[@<base_url>]; a user:password in base_url shows nowhere."""
    assert OpenAIEmbedder("text-embedding-3-small").name == "openai:text-embedding-3-small"
    assert OpenAIEmbedder("m", base_url=server.url + "/").name == f"openai:m@{server.url}"
    port = server.httpd.server_address[1]
    secret_url = f"http://user:hunter2@127.0.0.1:{port}/v1"
    server.default = reply(500, {"error": "boom"})
    with OpenAIEmbedder("m", base_url=secret_url, max_retries=0) as embedder:
        assert embedder.name == f"openai:m@http://127.0.0.1:{port}/v1"
        assert "hunter2" not in repr(embedder)
        with pytest.raises(EmbedderError) as info:
            embedder.embed_query("q")
    assert "hunter2" not in "".join(traceback.format_exception(info.value))
    assert server.requests[-1].headers["authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": ""}, "model must be"),
        ({"base_url": "ftp://example.com/v1"}, "http:// or https://"),
        ({"base_url": "localhost:11434/v1"}, "http:// or https://"),
        ({"dim": 0}, "dim must be"),
        ({"batch_size": 0}, "batch_size must be"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"timeout": float("inf")}, "timeout must be"),
        ({"max_retries": -1}, "max_retries must be"),
        ({"backoff": -0.1}, "backoff must be a non-negative number"),
        ({"api_key": ""}, "api_key must be"),
    ],
)
def test_bad_settings(kwargs: dict[str, Any], match: str) -> None:
    """Bad settings raise EmbedderError when the embedder is made."""
    arguments: dict[str, Any] = {"model": "m", **kwargs}
    with pytest.raises(EmbedderError, match=match):
        OpenAIEmbedder(**arguments)


def test_retry_after_parsing() -> None:
    """Retry-After as seconds, as an HTTP date (past: no wait), retry-after-ms, or garbage."""

    def parse(**headers: str) -> float | None:
        return _retry_after(httpx.Response(429, headers=headers))

    assert parse(**{"Retry-After": "2"}) == 2.0
    assert parse(**{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    future = parse(
        **{
            "Retry-After": time.strftime(
                "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 100)
            )
        }
    )
    assert future is not None
    assert 90 < future <= 100
    assert parse(**{"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    assert parse(**{"Retry-After": "soon"}) is None
    assert parse() is None
