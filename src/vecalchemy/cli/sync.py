"""``vecalchemy worker`` and ``vecalchemy sync``: the outbox of synced embedding columns.

Example::

    $ vecalchemy worker --url postgresql://app@db/app          # until SIGTERM
    $ vecalchemy sync status --json
    $ vecalchemy sync backfill docs.embedding
    $ vecalchemy sync retry
    $ vecalchemy sync migrate docs.embedding --to minilm
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from typing import Any

import click

from vecalchemy.cli._group import URL_OPTION, main

__all__: list[str] = []

TARGET_HELP = "A synced column: schema.table.column, or table.column in schema public."


def _engine(url: str | None) -> Any:
    from vecalchemy.engine import create_engine

    return create_engine(url)


@main.command()
@URL_OPTION
@click.option("--target", "targets", multiple=True, help=TARGET_HELP + " Repeatable; default all.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--poll-interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.0),
    help="Seconds between queue checks when no notification arrives.",
)
@click.option(
    "--lease",
    default=600.0,
    show_default=True,
    type=click.FloatRange(1.0),
    help="Seconds a claim of a live but stuck worker holds.",
)
@click.option("--max-attempts", type=click.IntRange(1), help="Override each column's limit.")
@click.option("--until-idle", is_flag=True, help="Exit once nothing is queued.")
@click.option("--json", "as_json", is_flag=True, help="Print the worker's counts as JSON at exit.")
@click.option("-v", "--verbose", is_flag=True, help="Log every batch.")
def worker(
    url: str | None,
    targets: tuple[str, ...],
    batch_size: int,
    poll_interval: float,
    lease: float,
    max_attempts: int | None,
    until_idle: bool,
    as_json: bool,
    verbose: bool,
) -> None:
    """Embed the rows queued by synced columns' triggers, until SIGTERM or SIGINT.

    Any number of workers may run against one database. SIGTERM lets the batch in hand
    finish and exits 0; a killed worker's claims are taken over by the others.
    """
    from vecalchemy.sync import Worker

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("vecalchemy.sync").setLevel(logging.DEBUG if verbose else logging.INFO)
    names = [_full(t) for t in targets] or None
    engine = _engine(url)
    w = Worker(
        engine,
        targets=names,
        batch_size=batch_size,
        poll_interval=poll_interval,
        lease_seconds=lease,
        max_attempts=max_attempts,
    )

    def stop(signum: int, frame: Any) -> None:
        logging.getLogger("vecalchemy.sync").info(
            "%s: finishing the batch in hand, then exiting", signal.Signals(signum).name
        )
        w.stop()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        stats = w.run(until_idle=until_idle)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        engine.dispose()
    counts = {
        "done": stats.done,
        "failed": stats.failed,
        "dead": stats.dead,
        "superseded": stats.superseded,
        "batches": stats.batches,
        "reconnects": stats.reconnects,
    }
    if as_json:
        click.echo(json.dumps(counts))
    else:
        click.echo(", ".join(f"{k} {v}" for k, v in counts.items()), err=True)


def _full(target: str) -> str:
    return target if target.count(".") >= 2 else f"public.{target}"


@main.group()
def sync() -> None:
    """Look after synced embedding columns: queue status, retries, backfills, migrations."""


@sync.command()
@URL_OPTION
@click.option("--target", "targets", multiple=True, help=TARGET_HELP + " Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(url: str | None, targets: tuple[str, ...], as_json: bool) -> None:
    """Queue depth, lag (age of the oldest queued row), retries, dead letters and
    throughput of each synced column."""
    from rich.console import Console
    from rich.table import Table

    from vecalchemy.sync import status as get_status

    engine = _engine(url)
    try:
        found = get_status(engine, [_full(t) for t in targets] or None)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps([s.as_dict() for s in found], indent=2))
        return
    if not found:
        click.echo("no synced columns (install one with vecalchemy.sync.install)")
        return
    table = Table("target", "queued", "in progress", "retrying", "lag s", "dead", "rows/s (1 min)")
    for s in found:
        table.add_row(
            s.target + (f" → {s.migrating_to}" if s.migrating_to else ""),
            str(s.queued),
            str(s.in_progress),
            str(s.retrying),
            f"{s.lag_seconds:.1f}",
            str(s.dead),
            f"{s.per_second:.1f}",
        )
    # A pipe gets full lines (rich would wrap at 80 columns).
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@sync.command()
@URL_OPTION
@click.option("--target", "targets", multiple=True, help=TARGET_HELP + " Repeatable.")
def retry(url: str | None, targets: tuple[str, ...]) -> None:
    """Put dead letters back in the queue with fresh attempts."""
    from vecalchemy.sync import retry as do_retry

    engine = _engine(url)
    try:
        n = do_retry(engine, [_full(t) for t in targets] or None)
    finally:
        engine.dispose()
    click.echo(f"requeued {n} dead letters")


@sync.command()
@click.argument("target")
@URL_OPTION
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--restart", is_flag=True, help="Start from the first row, not where it stopped.")
@click.option("--json", "as_json", is_flag=True, help="Print the count as JSON.")
def backfill(url: str | None, target: str, batch_size: int, restart: bool, as_json: bool) -> None:
    """Queue the rows of TARGET with no embedding or a stale one (resumable)."""
    from vecalchemy._progress import progress_reporter
    from vecalchemy.sync import backfill as do_backfill

    engine = _engine(url)
    try:
        with progress_reporter(not as_json) as report:
            n = do_backfill(
                engine,
                _full(target),
                batch_size=batch_size,
                restart=restart,
                progress=(lambda d, t: report("scanned", d, t)) if report else None,
            )
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps({"target": _full(target), "queued": n}))
    else:
        click.echo(f"queued {n} rows of {_full(target)}")


@sync.command()
@click.argument("target")
@click.option("--to", "to", required=True, help="The new embedder's spec, e.g. minilm.")
@URL_OPTION
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@click.option("--no-work", is_flag=True, help="Leave the embedding to running workers.")
@click.option("--wait", type=click.FloatRange(0.0), help="With --no-work: give up after this.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def migrate(
    url: str | None,
    target: str,
    to: str,
    batch_size: int,
    no_work: bool,
    wait: float | None,
    as_json: bool,
) -> None:
    """Re-embed TARGET with another embedder in a shadow column, then swap it in.

    Searches keep using the old vectors until the swap, which is one transaction; run
    the same command again to resume an interrupted migration.
    """
    from vecalchemy._progress import progress_reporter
    from vecalchemy.sync import migrate as do_migrate

    engine = _engine(url)
    try:
        with progress_reporter(not as_json) as report:
            result = do_migrate(
                engine,
                _full(target),
                to=to,
                work=not no_work,
                batch_size=batch_size,
                wait=wait,
                progress=(lambda d, t: report("embedded", d, t)) if report else None,
            )
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(result.__dict__))
    elif result.swapped:
        click.echo(
            f"{result.target} now holds {result.embedder} vectors ({result.dim} dimensions); "
            f"declare it as Embedding({result.dim}, ..., embedder={to!r})"
        )
    else:
        click.echo(f"{result.remaining} rows still to embed; run the command again to go on")
