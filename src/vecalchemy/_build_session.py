"""The session an index build runs in: its settings sized for the build, then put back.

:func:`plan` chooses ``maintenance_work_mem`` (from the memory estimate of
:mod:`vecalchemy._index_memory`) and ``max_parallel_maintenance_workers`` within what the
server allows; :func:`session_settings` sets them for one build and restores what the
connection had; :func:`spill_notice` catches pgvector's notice that the graph did not fit.

Private to vecalchemy: :func:`vecalchemy.build_index` and :func:`vecalchemy.build_indexes`
use it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from vecalchemy._index_memory import (
    PARALLEL_RESERVE,
    format_bytes,
    hnsw_graph_bytes,
    ivfflat_build_bytes,
    memory_for,
    parse_bytes,
)
from vecalchemy._progress import Progress
from vecalchemy.errors import InvalidArgument
from vecalchemy.metrics import Storage
from vecalchemy.schema import HNSW, IVFFlat, VectorSpec

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "BuildOptions",
    "BuildSettings",
    "Server",
    "autocommit",
    "failure_hint",
    "first_line",
    "plan",
    "server_facts",
    "session_settings",
    "spill_notice",
]

log = logging.getLogger("vecalchemy.indexes")

#: The most ``maintenance_work_mem`` a build asks for unless told otherwise
#: (``max_memory=``); never less than the session already has.
DEFAULT_MAX_MEMORY = "4GB"


@dataclass(frozen=True)
class BuildSettings:
    """The session settings an index build ran with, and what pgvector said of them.

    ``maintenance_work_mem`` (bytes) and ``parallel_workers``
    (``max_parallel_maintenance_workers``) were set for the build only. ``estimate`` is
    the memory the build needs (the HNSW graph, or IVFFlat's k-means; None for
    sparsevec, whose size varies), ``fits`` whether ``maintenance_work_mem`` holds it.
    ``spilled_after`` is the number of tuples after which pgvector reported that the
    graph no longer fitted (None if it did not say so). ``notes`` say why a setting is
    lower than asked for.

    Example::

        result = vecalchemy.build_index(engine, Doc.embedding)
        result.settings.as_dict()
        # {'maintenance_work_mem': '544MB', 'max_parallel_maintenance_workers': 1, ...}
    """

    maintenance_work_mem: int
    parallel_workers: int
    estimate: int | None
    fits: bool
    spilled_after: int | None = None
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict, memory written as PostgreSQL writes it."""
        return {
            "maintenance_work_mem": format_bytes(self.maintenance_work_mem),
            "max_parallel_maintenance_workers": self.parallel_workers,
            "estimate": format_bytes(self.estimate) if self.estimate is not None else None,
            "fits": self.fits,
            "spilled_after": self.spilled_after,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class BuildOptions:
    """How to build: the keyword arguments of :func:`build_index`, checked."""

    concurrently: bool = False
    rebuild: bool = False
    maintenance_work_mem: int | None = None
    max_memory: int = parse_bytes(DEFAULT_MAX_MEMORY)
    parallel_workers: int | None = None
    progress: Progress | bool | None = None

    @classmethod
    def make(
        cls,
        *,
        concurrently: bool = False,
        rebuild: bool = False,
        maintenance_work_mem: int | str | None = None,
        max_memory: int | str = DEFAULT_MAX_MEMORY,
        parallel_workers: int | None = None,
        progress: Progress | bool | None = None,
    ) -> BuildOptions:
        memory = None
        if maintenance_work_mem is not None:
            memory = parse_bytes(maintenance_work_mem, "maintenance_work_mem")
            if memory < 1024 * 1024:
                raise InvalidArgument(
                    f"maintenance_work_mem must be at least 1MB (PostgreSQL's minimum), got "
                    f"{maintenance_work_mem!r}"
                )
        if parallel_workers is not None and (
            isinstance(parallel_workers, bool)
            or not isinstance(parallel_workers, int)
            or not 0 <= parallel_workers <= 1024
        ):
            raise InvalidArgument(
                f"parallel_workers must be an integer from 0 to 1024, got {parallel_workers!r}"
            )
        if progress is not None and not isinstance(progress, bool) and not callable(progress):
            raise InvalidArgument(
                "progress must be True (a bar on stderr), a callable(phase, done, total) or None"
            )
        return cls(
            concurrently=bool(concurrently),
            rebuild=bool(rebuild),
            maintenance_work_mem=memory,
            max_memory=parse_bytes(max_memory, "max_memory"),
            parallel_workers=parallel_workers,
            progress=progress,
        )


# -- what the server allows ---------------------------------------------------------------

_SERVER_SQL = text(
    "SELECT name, setting, coalesce(max_val, ''), inet_server_addr()::text FROM pg_settings "
    "WHERE name IN ('maintenance_work_mem', 'max_parallel_maintenance_workers', "
    "'max_parallel_workers', 'dynamic_shared_memory_type')"
)


@dataclass(frozen=True)
class Server:
    work_mem: int  # the session's maintenance_work_mem, bytes
    work_mem_max: int
    workers: int  # the session's max_parallel_maintenance_workers
    max_parallel_workers: int
    dsm: str
    #: Connected through a Unix socket or the loopback: this machine's cores and memory
    #: are the server's.
    local: bool


def server_facts(conn: Connection) -> Server:
    rows = {r[0]: r for r in conn.execute(_SERVER_SQL)}
    address = next(iter(rows.values()))[3]
    return Server(
        work_mem=int(rows["maintenance_work_mem"][1]) * 1024,  # the unit is kB
        work_mem_max=int(rows["maintenance_work_mem"][2] or 2**31 - 1) * 1024,
        workers=int(rows["max_parallel_maintenance_workers"][1]),
        max_parallel_workers=int(rows["max_parallel_workers"][1]),
        dsm=str(rows["dynamic_shared_memory_type"][1]),
        local=address is None or address.split("/")[0] in ("127.0.0.1", "::1"),
    )


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def _free_shm() -> int | None:
    try:
        st = os.statvfs(Path("/dev/shm"))
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _estimate(spec: VectorSpec, rows: int, with_: dict[str, int]) -> int | None:
    storage = spec.index_storage
    if storage is Storage.SPARSEVEC:
        return None
    if isinstance(spec.index, IVFFlat):
        return ivfflat_build_bytes(rows, spec.dim, storage, with_["lists"])
    return hnsw_graph_bytes(rows, spec.dim, storage, with_.get("m", 16))


def plan(
    server: Server, spec: VectorSpec, rows: int, with_: dict[str, int], opts: BuildOptions
) -> BuildSettings:
    """Choose maintenance_work_mem and max_parallel_maintenance_workers for one build."""
    notes: list[str] = []
    estimate = _estimate(spec, rows, with_)
    if opts.maintenance_work_mem is not None:
        memory = opts.maintenance_work_mem
    else:
        need = memory_for(estimate) if estimate is not None else server.work_mem
        memory = max(server.work_mem, min(need, opts.max_memory))
        if need > memory:
            notes.append(
                f"the build needs about {format_bytes(need)}, more than max_memory="
                f"{format_bytes(opts.max_memory)}: it will spill and run much slower; raise "
                "max_memory"
            )
        ram = _physical_memory() if server.local else None
        if ram is not None and memory > max(ram // 2, server.work_mem):
            memory = max(ram // 2, server.work_mem)
            notes.append(
                f"maintenance_work_mem capped at half the server's memory ({format_bytes(memory)})"
            )
    if memory > server.work_mem_max:
        memory = server.work_mem_max
        notes.append(
            f"maintenance_work_mem capped at the server's maximum ({format_bytes(memory)})"
        )
    memory = memory // 1024 * 1024  # the setting is in kB

    if opts.parallel_workers is not None:
        workers = opts.parallel_workers
    elif server.local:
        workers = _cores() - 1  # the leader builds too
    else:
        workers = server.workers  # the server's cores are unknown: keep its setting
    if workers > server.max_parallel_workers:
        workers = server.max_parallel_workers
        notes.append(f"parallel workers capped by max_parallel_workers ({workers})")
    parallel_hnsw = workers > 0 and isinstance(spec.index, HNSW)
    if parallel_hnsw and server.local and server.dsm == "posix":
        # A parallel HNSW build puts maintenance_work_mem in one dynamic shared memory
        # segment, in /dev/shm: too small (containers mount 64MB), and the build errors.
        free = _free_shm()
        if free is not None and memory > free:
            workers = 0
            notes.append(
                f"serial build: /dev/shm has {format_bytes(free)} free, less than "
                "maintenance_work_mem, which a parallel build allocates there"
            )
    reserve = PARALLEL_RESERVE if workers > 0 and isinstance(spec.index, HNSW) else 0
    fits = estimate is None or estimate + reserve <= memory
    return BuildSettings(memory, max(workers, 0), estimate, fits, notes=tuple(notes))


def autocommit(conn: Connection) -> bool:
    return bool(getattr(conn.connection.dbapi_connection, "autocommit", False))


@contextlib.contextmanager
def session_settings(conn: Connection, values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` for the block, then put back what the connection had.

    In a transaction with ``SET LOCAL`` (a failed build's rollback undoes it too); on an
    AUTOCOMMIT connection for the session, then each set back to its value if the
    session had set it, else ``RESET``. A connection whose settings cannot be put back is
    invalidated: it never returns to the pool with them.
    """
    local = not autocommit(conn)
    saved = conn.execute(
        # The raw setting is in the setting's base unit, which set_config reads back.
        text("SELECT name, setting, source FROM pg_settings WHERE name = ANY(:names)"),
        {"names": list(values)},
    ).all()
    for name, value in values.items():
        conn.execute(text("SELECT set_config(:n, :v, :l)"), {"n": name, "v": value, "l": local})
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        if not (failed and local):  # a failed transaction's rollback restores SET LOCAL
            try:
                for name, old, source in saved:
                    if local or source == "session":
                        conn.execute(
                            text("SELECT set_config(:n, :v, :l)"), {"n": name, "v": old, "l": local}
                        )
                    else:
                        conn.exec_driver_sql(f"RESET {name}")
            except Exception:
                if not failed:
                    raise
                log.warning("cannot restore the session settings; discarding the connection")
                conn.invalidate()


_SPILL = re.compile(r"hnsw graph no longer fits into maintenance_work_mem after (\d+) tuples")


@contextlib.contextmanager
def spill_notice(conn: Connection) -> Iterator[list[int]]:
    """Collect pgvector's "graph no longer fits" notice (psycopg; other drivers: nothing)."""
    found: list[int] = []
    driver: Any = conn.connection.driver_connection  # psycopg's own, also under asyncio
    add = getattr(driver, "add_notice_handler", None)
    remove = getattr(driver, "remove_notice_handler", None)
    if add is None or remove is None:
        yield found
        return

    def handler(diag: Any) -> None:
        got = _SPILL.search(str(getattr(diag, "message_primary", "") or ""))
        if got:
            found.append(int(got.group(1)))

    add(handler)
    try:
        yield found
    finally:
        remove(handler)


def failure_hint(exc: DBAPIError) -> str:
    code = getattr(exc.orig, "sqlstate", None)
    message = str(exc.orig)
    if code == "57014":
        return (
            "it was cancelled (statement_timeout, or pg_cancel_backend): build with a larger "
            "statement_timeout (or 0) and call build_index again"
        )
    if code == "55P03":
        return "a lock wait timed out (lock_timeout): retry when the table's long transactions end"
    if code == "40P01":
        return "it deadlocked with another transaction: call build_index again"
    if code in ("53100", "53200") or "shared memory" in message:
        return (
            "the server ran out of memory or disk: pass a smaller max_memory, or "
            "parallel_workers=0 (a parallel HNSW build allocates maintenance_work_mem in "
            "dynamic shared memory)"
        )
    return "fix the cause and call build_index again"


def first_line(exc: DBAPIError) -> str:
    return (
        str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
    )
