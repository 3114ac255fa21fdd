"""An outbox worker process whose embedder is slow, for tests/test_sync_reliability.py.

Usage::

    python tests/sync_worker_proc.py --url URL --target public.docs.embedding --delay 1.5

Builds ``Worker(url, targets=[target], embedders={target: Slow(HashingEmbedder(16),
delay)})``: the same vectors and the same name as the installed ``hashing:16``, but each
batch takes ``delay`` seconds, so a test can signal or kill the process while it holds
a batch. SIGTERM and SIGINT stop the worker once the batch in hand is written (as
``vecalchemy worker`` does); at exit the worker's counts are printed as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from vecalchemy.embedders import HashingEmbedder
from vecalchemy.sync import Worker


class Slow:
    """An embedder that sleeps ``delay`` seconds per batch, then embeds as ``inner``."""

    def __init__(self, inner: HashingEmbedder, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def name(self) -> str:
        return self.inner.name

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        time.sleep(self.delay)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        return self.inner.embed_query(text)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds per batch")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--poll-interval", type=float, default=0.2)
    parser.add_argument("--until-idle", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    worker = Worker(
        args.url,
        targets=[args.target],
        embedders={args.target: Slow(HashingEmbedder(16), args.delay)},
        batch_size=args.batch_size,
        poll_interval=args.poll_interval,
    )

    def stop(signum: int, frame: Any) -> None:
        logging.getLogger("vecalchemy.sync").info("%s: stopping", signal.Signals(signum).name)
        worker.stop()

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, stop)
    try:
        stats = worker.run(until_idle=args.until_idle)
    finally:
        worker.engine.dispose()
    counts = {
        k: getattr(stats, k)
        for k in ("done", "failed", "dead", "superseded", "batches", "reconnects")
    }
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
