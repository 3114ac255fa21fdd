"""One version's side of ``benchmarks/before_after.py``: its contenders, run on request.

The driver starts this module as a subprocess with ``PYTHONPATH`` set to one version's
``src`` directory, so it may use only what both versions have: the public API
(``vecalchemy.create_engine``, ``create_async_engine``, ``search``, ``asearch``,
``nearest``, ``Embedding``, ``HNSW``), SQLAlchemy, psycopg, asyncpg and pgvector-python.

Protocol: one JSON object per line on stdin, one JSON answer per line on stdout (the
real stdout is kept for the answers; anything else printed goes to stderr). Requests::

    {"op": "init", "url": ..., "queries": "<.npy file>", "table": ..., "k": 10, "ef_search": 40}
    {"op": "warmup"}               -> hit ids of every contender for every query
    {"op": "round", "first": n}    -> latency statistics of one pass of every contender
    {"op": "roundtrips", "n": 50}  -> round trips and statements per query (via a proxy)
    {"op": "close"}

Round trips are counted by a byte-level proxy on a Unix socket between the contender's
driver and the server (see :class:`CountingProxy`); the timed rounds never go through it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import selectors
import socket
import struct
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import sqlalchemy as sa
from pgvector.psycopg import register_vector
from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import HNSW, Embedding

Vec = npt.NDArray[np.float32]
Runner = Callable[[Sequence[Vec]], tuple[list[int], list[list[int]]]]

#: The contenders, in their base order (rotated each round).
CONTENDERS = (
    ("raw_psycopg", "raw psycopg (set_config + query)"),
    ("va_search", "search(), Session per query"),
    ("va_search_core", "search(), Core Connection"),
    ("va_asearch_asyncpg", "asearch(), asyncpg"),
    ("va_asearch_psycopg_async", "asearch(), psycopg async"),
    ("va_nearest", "session.execute(nearest()), bare"),
)


# -- the table ----------------------------------------------------------------------------


def declare(table: str, dim: int) -> tuple[Any, sa.Table]:
    """The benchmark table as vecalchemy declares it (as benchmarks/query_overhead.py does)."""

    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = table

        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(String(300))
        embedding = Embedding(dim, metric="cosine", index=HNSW(m=16, ef_construction=64))

    return Doc, Doc.__table__  # type: ignore[return-value]


def psycopg_params(url: sa.URL) -> dict[str, Any]:
    """psycopg.connect keyword arguments for a SQLAlchemy URL (socket dir or host)."""
    query = {k: v if isinstance(v, str) else v[0] for k, v in url.query.items()}
    params = {
        "host": query.get("host", url.host),
        "port": int(query.get("port", url.port or 5432)),
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
    }
    return {k: v for k, v in params.items() if v is not None}


# -- contenders ---------------------------------------------------------------------------


@dataclass
class Contender:
    key: str
    label: str
    run: Runner
    close: Callable[[], None]


def sync_runner(one: Callable[[Vec], list[int]]) -> Runner:
    def run(queries: Sequence[Vec]) -> tuple[list[int], list[list[int]]]:
        latencies: list[int] = []
        hits: list[list[int]] = []
        clock = time.perf_counter_ns
        for q in queries:
            t0 = clock()
            h = one(q)
            latencies.append(clock() - t0)
            hits.append(h)
        return latencies, hits

    return run


def async_runner(
    loop: asyncio.AbstractEventLoop, one: Callable[[Vec], Awaitable[list[int]]]
) -> Runner:
    async def batch(queries: Sequence[Vec]) -> tuple[list[int], list[list[int]]]:
        latencies: list[int] = []
        hits: list[list[int]] = []
        clock = time.perf_counter_ns
        for q in queries:
            t0 = clock()
            h = await one(q)
            latencies.append(clock() - t0)
            hits.append(h)
        return latencies, hits

    def run(queries: Sequence[Vec]) -> tuple[list[int], list[list[int]]]:
        return loop.run_until_complete(batch(queries))

    return run


def make_contenders(
    url: sa.URL, loop: asyncio.AbstractEventLoop, table: str, dim: int, k: int, ef: int
) -> list[Contender]:
    doc, docs = declare(table, dim)
    raw_sql = (
        f"SELECT id, title, embedding <=> %b AS distance FROM {table} ORDER BY distance LIMIT {k}"
    )
    set_sql = f"SELECT set_config('hnsw.ef_search', '{ef}', true)"
    out: list[Contender] = []

    conn = psycopg.connect(**psycopg_params(url))
    register_vector(conn)

    def raw(q: Vec) -> list[int]:
        with conn.cursor() as cur:
            cur.execute(set_sql)
            cur.execute(raw_sql, (q,))
            rows = cur.fetchall()
        conn.commit()
        return [r[0] for r in rows]

    out.append(Contender(*CONTENDERS[0], sync_runner(raw), conn.close))

    engine = vecalchemy.create_engine(url)

    def va_search(q: Vec) -> list[int]:
        with Session(engine) as session:
            hits = vecalchemy.search(session, doc.embedding, q, k=k, ef_search=ef)
            ids = [h.row.id for h in hits]
            session.commit()
        return ids

    out.append(Contender(*CONTENDERS[1], sync_runner(va_search), engine.dispose))

    core_engine = vecalchemy.create_engine(url)

    def va_core(q: Vec) -> list[int]:
        with core_engine.connect() as c:
            hits = vecalchemy.search(c, docs.c.embedding, q, k=k, ef_search=ef)
            ids = [h.row.id for h in hits]
            c.commit()
        return ids

    out.append(Contender(*CONTENDERS[2], sync_runner(va_core), core_engine.dispose))

    for (key, label), driver in zip(CONTENDERS[3:5], ("asyncpg", "psycopg_async"), strict=True):
        aengine = vecalchemy.create_async_engine(url.set(drivername=f"postgresql+{driver}"))

        def make_one(e: Any) -> Callable[[Vec], Awaitable[list[int]]]:
            async def one(q: Vec) -> list[int]:
                async with AsyncSession(e) as session:
                    hits = await vecalchemy.asearch(session, doc.embedding, q, k=k, ef_search=ef)
                    ids = [h.row.id for h in hits]
                    await session.commit()
                return ids

            return one

        def closer(e: Any) -> Callable[[], None]:
            return lambda: loop.run_until_complete(e.dispose())

        out.append(Contender(key, label, async_runner(loop, make_one(aengine)), closer(aengine)))

    bare_engine = vecalchemy.create_engine(url)

    def va_nearest(q: Vec) -> list[int]:
        with Session(bare_engine) as session:
            rows = session.execute(vecalchemy.nearest(doc.embedding, q, k=k)).all()
            ids = [row[0].id for row in rows]
            session.commit()
        return ids

    out.append(Contender(*CONTENDERS[5], sync_runner(va_nearest), bare_engine.dispose))
    return out


# -- counting round trips -----------------------------------------------------------------

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


class CountingProxy:
    """A Unix-socket proxy that counts round trips and statements between client and server.

    A round trip is a burst of bytes from the client that follows bytes from the server
    (or opens the connection): the client sent something and then waited for an answer.
    Pipelined messages sent before any answer count once, as they should. Statements are
    the client's ``Query`` ('Q', simple protocol) and ``Execute`` ('E', extended protocol)
    messages, read from the frontend message stream after the startup packet.
    """

    def __init__(self, upstream_dir: str, upstream_port: int) -> None:
        self._upstream = os.path.join(upstream_dir, f".s.PGSQL.{upstream_port}")
        self._dir = tempfile.mkdtemp(prefix="va-rt-")
        self.port = upstream_port
        self.path = os.path.join(self._dir, f".s.PGSQL.{self.port}")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(64)
        self._lock = threading.Lock()
        self.round_trips = 0
        self.messages: dict[str, int] = {}
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return self._dir

    def reset(self) -> None:
        with self._lock:
            self.round_trips = 0
            self.messages = {}

    def snapshot(self) -> tuple[int, dict[str, int]]:
        with self._lock:
            return self.round_trips, dict(self.messages)

    def close(self) -> None:
        self._stop = True
        self._listener.close()
        try:
            os.unlink(self.path)
            os.rmdir(self._dir)
        except OSError:
            pass

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pump, args=(client,), daemon=True).start()

    def _pump(self, client: socket.socket) -> None:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.connect(self._upstream)
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, "c")
        sel.register(server, selectors.EVENT_READ, "s")
        last = "s"  # the connection opens with the client speaking
        buffer = b""
        started = False
        try:
            while True:
                for key, _ in sel.select():
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = src.recv(65536)
                    if not data:
                        return
                    if key.data == "c":
                        if last == "s":
                            with self._lock:
                                self.round_trips += 1
                        last = "c"
                        buffer, started = self._parse(buffer + data, started)
                        server.sendall(data)
                    else:
                        last = "s"
                        client.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            client.close()
            server.close()

    def _parse(self, buffer: bytes, started: bool) -> tuple[bytes, bool]:
        while True:
            if not started:
                if len(buffer) < 8:
                    return buffer, started
                (length,) = struct.unpack("!i", buffer[:4])
                (code,) = struct.unpack("!i", buffer[4:8])
                if len(buffer) < length:
                    return buffer, started
                buffer = buffer[length:]
                started = code not in (_SSL_REQUEST, _GSSENC_REQUEST)
                continue
            if len(buffer) < 5:
                return buffer, started
            kind = chr(buffer[0])
            (length,) = struct.unpack("!i", buffer[1:5])
            if len(buffer) < 1 + length:
                return buffer, started
            buffer = buffer[1 + length :]
            with self._lock:
                self.messages[kind] = self.messages.get(kind, 0) + 1


# -- the worker ---------------------------------------------------------------------------


class Worker:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.contenders: list[Contender] = []
        self.queries: list[Vec] = []
        self.config: dict[str, Any] = {}

    def init(self, req: dict[str, Any]) -> dict[str, Any]:
        self.config = req
        self.queries = list(np.load(req["queries"]).astype(np.float32))
        self.contenders = self._contenders(sa.make_url(req["url"]))
        return {
            "vecalchemy": vecalchemy.__file__,
            "contenders": [[c.key, c.label] for c in self.contenders],
            "python": sys.version.split()[0],
            "pid": os.getpid(),
        }

    def _contenders(self, url: sa.URL) -> list[Contender]:
        c = self.config
        return make_contenders(url, self.loop, c["table"], c["dim"], c["k"], c["ef_search"])

    def warmup(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"hits": {c.key: c.run(self.queries)[1] for c in self.contenders}}

    def round(self, req: dict[str, Any]) -> dict[str, Any]:
        shift = req["first"] % len(self.contenders)
        order = self.contenders[shift:] + self.contenders[:shift]
        stats: dict[str, Any] = {}
        for c in order:
            gc.collect()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            latencies, _ = c.run(self.queries)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            ms = np.asarray(latencies, dtype=np.float64) / 1e6
            stats[c.key] = {
                "median_ms": float(np.median(ms)),
                "p95_ms": float(np.percentile(ms, 95)),
                "qps": len(ms) / wall,
                "cpu_ms": cpu / len(ms) * 1000,
            }
        return {"order": [c.key for c in order], "stats": stats}

    def roundtrips(self, req: dict[str, Any]) -> dict[str, Any]:
        url = sa.make_url(self.config["url"])
        params = psycopg_params(url)
        proxy = CountingProxy(params["host"], params["port"])
        query = dict(url.query) | {"host": proxy.host, "port": str(proxy.port)}
        contenders = self._contenders(url.set(query=query))
        n = int(req["n"])
        out: dict[str, Any] = {}
        try:
            for c in contenders:
                c.run(self.queries[:10])  # connect, register types, fill the caches
                proxy.reset()
                c.run(self.queries[:n])
                trips, messages = proxy.snapshot()
                statements = messages.get("Q", 0) + messages.get("E", 0)
                out[c.key] = {
                    "round_trips_per_query": trips / n,
                    "statements_per_query": statements / n,
                    "messages_per_query": {k: v / n for k, v in sorted(messages.items())},
                }
        finally:
            for c in contenders:
                c.close()
            proxy.close()
        return {"counts": out}

    def close(self, req: dict[str, Any]) -> dict[str, Any]:
        for c in self.contenders:
            c.close()
        self.loop.close()
        return {"closed": True}


def main() -> int:
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # stray prints must not corrupt the answers
    worker = Worker()
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        try:
            answer = getattr(worker, op)(req)
            answer["ok"] = True
        except Exception as exc:  # reported to the driver, which decides
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            answer["traceback"] = traceback.format_exc()
        answers.write(json.dumps(answer) + "\n")
        if op == "close":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
