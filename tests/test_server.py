"""The embedded PostgreSQL server: start, status, URLs for every driver, stop, recovery."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import platformdirs
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from vecalchemy.errors import ConfigurationError, ServerError
from vecalchemy.server import (
    DATA_DIR_ENV,
    EmbeddedServer,
    ServerStatus,
    default_data_dir,
    embedded_url,
)

FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@contextlib.contextmanager
def _cluster_dir() -> Iterator[Path]:
    """A fresh directory for a cluster, outside pytest's tmp_path: when tests run as root
    the server runs as another user, and every pytest session that starts makes pytest's
    tmp root private again (0700), which would lock that user out mid-run."""
    path = Path(tempfile.mkdtemp(prefix="vecalchemy-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    """A fresh directory for a throwaway cluster, removed after the test."""
    with _cluster_dir() as path:
        yield path


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedServer]:
    """One throwaway cluster for the module, stopped at the end."""
    with _cluster_dir() as path:
        server = EmbeddedServer(path, settings=FAST)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def server(cluster: EmbeddedServer) -> EmbeddedServer:
    """The module's cluster, running (tests that stop it leave it to be restarted here)."""
    cluster.start()
    return cluster


def _write_pid_file(server: EmbeddedServer, pid: int, socket_dir: Path | None = None) -> None:
    """A postmaster.pid as a server that died would leave it, naming ``pid``."""
    socket_dir = socket_dir or server.data_dir
    lines = [str(pid), str(server.pgdata), str(int(time.time())), "54321", str(socket_dir)]
    lines += ["127.0.0.1", "  1234567     98765", "ready   "]
    (server.pgdata / "postmaster.pid").write_text("\n".join(lines) + "\n")


def _select_one(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("select 1").fetchone()
    assert row is not None
    return int(row[0])


def _password(server: EmbeddedServer) -> str:
    return server.password_file.read_text().strip()


def _refused_without_the_password(host: str, port: int) -> None:
    """Connecting as postgres with no password, or a wrong one, is refused."""
    base: dict[str, Any] = {"host": host, "port": port, "user": "postgres", "dbname": "postgres"}
    base["passfile"] = os.devnull  # no ~/.pgpass of the test runner's may help
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(**base)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**base, password="wrong")


# What vecalchemy <= 0.x appended to postgresql.conf after initdb, verbatim.
_OLD_CONF_DEFAULTS = """
# --- defaults written by vecalchemy at initdb; edit freely ---
listen_addresses = '127.0.0.1' # loopback only; the port is chosen afresh at each start
shared_buffers = 256MB      # room for hot tables and HNSW graphs, small next to the OS cache
effective_cache_size = 8GB        # tells the planner most of an index stays in the OS cache
work_mem = 32MB       # per sort/hash node: re-ranking and hybrid queries sort in memory
maintenance_work_mem = 1GB        # HNSW builds are many times faster when the graph fits
max_parallel_maintenance_workers = 1          # 2 cores: one worker plus the leader per build
max_parallel_workers_per_gather = 1          # 2 cores: one worker plus the leader per query
random_page_cost = 1.1        # local SSD: random reads cost about as much as sequential ones
jit = off        # JIT compilation costs more than it saves on short vector queries
max_wal_size = 2GB        # fewer forced checkpoints during bulk loads and index builds
"""


def _old_cluster(data_dir: Path) -> Path:
    """Create the cluster an older vecalchemy made: initdb --auth=trust (postgres has no
    password) and its defaults block, with random_page_cost = 1.1. Returns pgdata."""
    from vecalchemy.server import _binary, _system_user

    data_dir.mkdir(parents=True)
    extra: dict[str, Any] = {}
    user = _system_user()
    if user is not None:  # as root, initdb runs as the server's user, as start() does
        data_dir.parent.chmod(0o711)
        os.chown(data_dir, user.uid, user.gid)
        extra = {"user": user.uid, "group": user.gid, "extra_groups": []}
    pgdata = data_dir / "pgdata"
    argv = [str(_binary("initdb")), "-D", str(pgdata), "-U", "postgres", "--auth=trust"]
    argv += ["--encoding=UTF8", "--no-instructions", "--no-sync", "--locale=C"]
    argv += ["--locale-provider=builtin", "--builtin-locale=C.UTF-8"]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, **extra)
    assert result.returncode == 0, result.stdout + result.stderr
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write(_OLD_CONF_DEFAULTS)
    return pgdata


def _trust_lines(pgdata: Path) -> list[str]:
    lines = (pgdata / "pg_hba.conf").read_text().splitlines()
    return [" ".join(line.split()) for line in lines if line.split()[-1:] == ["trust"]]


def _wait_until(predicate: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _passwordless_connects(server: EmbeddedServer) -> bool:
    status = server.status()
    try:
        psycopg.connect(
            host=str(status.socket_dir), port=status.port, user="postgres", passfile=os.devnull
        ).close()
    except psycopg.OperationalError:
        return False
    return True


def test_start_reports_a_running_server(server: EmbeddedServer) -> None:
    """start() returns the status of a server with a pid, a TCP port and a socket URL."""
    status = server.start()
    assert isinstance(status, ServerStatus)
    assert status.running
    assert status.pid is not None
    assert status.pid > 0
    assert status.port is not None
    assert 0 < status.port < 65536
    assert status.socket_dir == server.data_dir
    assert status.pgdata == server.data_dir / "pgdata"
    assert status.log_file == server.data_dir / "postgres.log"
    assert status.log_file.is_file()
    assert status.version == "18.6"
    assert status.url == server.url()
    assert status.url is not None
    assert status.url.startswith(
        f"postgresql+psycopg://postgres:{_password(server)}@/postgres?host="
    )
    assert server.status() == status


def test_psycopg_connects_and_pgvector_is_available(server: EmbeddedServer) -> None:
    """The libpq URL works with psycopg 3, and pgvector 0.8.6 is available."""
    url = server.url(driver="libpq")
    assert url.startswith(f"postgresql://postgres:{_password(server)}@/postgres?host=")
    with psycopg.connect(url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        row = conn.execute(
            "select default_version from pg_available_extensions where name = 'vector'"
        ).fetchone()
        assert row == ("0.8.6",)
        assert conn.execute("show server_encoding").fetchone() == ("UTF8",)


def test_tcp_port_on_localhost_accepts_connections(server: EmbeddedServer) -> None:
    """External tools can connect over TCP to 127.0.0.1 on the reported port."""
    port = server.status().port
    password = _password(server)
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=password) as conn:
        assert conn.execute("select inet_server_addr()::text").fetchone() == ("127.0.0.1/32",)


def test_defaults_and_settings_are_applied(server: EmbeddedServer) -> None:
    """postgresql.conf carries vecalchemy's defaults; settings= overrides at start."""
    with psycopg.connect(server.url(driver="libpq")) as conn:

        def show(name: str) -> str:
            row = conn.execute(f"show {name}").fetchone()
            assert row is not None
            return str(row[0])

        assert show("maintenance_work_mem") == "1GB"
        assert show("shared_buffers") == "256MB"
        assert show("max_parallel_maintenance_workers") == "1"
        assert show("jit") == "off"
        assert show("random_page_cost") == "4"  # postgres's own: see the next test
        assert show("fsync") == "off"  # from settings=
        assert show("listen_addresses") == "127.0.0.1"


@pytest.mark.parametrize("via", ["tcp", "socket"])
def test_connections_need_the_password(server: EmbeddedServer, via: str) -> None:
    """Over TCP and over the Unix socket, postgres without its password, or with a wrong
    one, is refused (scram-sha-256); with the password of the password file it is let in."""
    status = server.status()
    assert status.port is not None
    host = "127.0.0.1" if via == "tcp" else str(status.socket_dir)
    _refused_without_the_password(host, status.port)
    with psycopg.connect(
        host=host, port=status.port, user="postgres", password=_password(server)
    ) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_password_file_is_private_and_the_only_copy(server: EmbeddedServer) -> None:
    """The generated password lives in <data_dir>/password (mode 0600, ours), every URL
    carries it, postgres stores only a SCRAM verifier, and no other file holds it."""
    path = server.data_dir / "password"
    assert server.password_file == path
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.geteuid()
    password = _password(server)
    assert len(password) >= 32
    for driver in ("psycopg", "asyncpg", "libpq"):
        assert sa.make_url(server.url(driver=driver)).password == password
    assert password not in repr(server.status())
    with psycopg.connect(server.url(driver="libpq")) as conn:
        row = conn.execute(
            "select rolpassword from pg_authid where rolname = 'postgres'"
        ).fetchone()
    assert row is not None
    assert str(row[0]).startswith("SCRAM-SHA-256$4096:")
    others = [p for p in server.data_dir.rglob("*") if p.is_file() and p != path]
    assert others
    assert [p for p in others if password.encode() in p.read_bytes()] == []


def test_order_by_distance_without_limit_returns_every_row(server: EmbeddedServer) -> None:
    """With our defaults a plain ORDER BY embedding <-> q without LIMIT returns every row:
    the planner sorts a sequential scan instead of using the HNSW index, which stops after
    hnsw.ef_search (40) rows (as it did with random_page_cost = 1.1)."""
    rng = random.Random(7)
    query = "[" + ",".join("0.5" for _ in range(8)) + "]"
    with psycopg.connect(server.url(driver="libpq"), autocommit=True) as conn:
        conn.execute("create extension if not exists vector")
        conn.execute("create table no_limit (id int primary key, embedding vector(8))")
        try:
            with conn.cursor().copy("copy no_limit from stdin") as copy:
                for i in range(5000):
                    copy.write_row((i, str([round(rng.random(), 4) for _ in range(8)])))
            conn.execute("create index on no_limit using hnsw (embedding vector_l2_ops)")
            conn.execute("analyze no_limit")
            sql = f"select id from no_limit order by embedding <-> '{query}'"
            rows = conn.execute(sql, prepare=False).fetchall()
            assert len(rows) == 5000
        finally:
            conn.execute("drop table no_limit")


def test_sqlalchemy_psycopg_sync_engine(server: EmbeddedServer) -> None:
    """The default URL works for a synchronous SQLAlchemy engine on psycopg."""
    engine = sa.create_engine(server.url())
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar_one() == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
async def test_sqlalchemy_async_engines(server: EmbeddedServer, driver: str) -> None:
    """The psycopg URL works for an async engine too, and the asyncpg URL for asyncpg."""
    url = server.url(driver=driver)
    assert url.startswith(f"postgresql+{driver}://postgres:{_password(server)}@/postgres?host=")
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("select 1"))).scalar_one() == 1
            path = (await conn.execute(sa.text("select inet_server_addr()"))).scalar_one()
            assert path is None  # a Unix socket, not TCP
    finally:
        await engine.dispose()


def test_url_for_another_database_and_unknown_driver(server: EmbeddedServer) -> None:
    """url() names the database asked for, and rejects a driver it does not know."""
    assert "/template1?" in server.url(database="template1")
    with pytest.raises(ConfigurationError, match="unknown driver 'mysql'"):
        server.url(driver="mysql")


def test_psql_argv_runs_psql_against_the_server(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psql_argv() with psql_env() runs the wheel's psql on this server, whatever PG*
    variables the caller's environment holds; psql's own -d picks another database."""
    monkeypatch.setenv("PGHOST", "/nonexistent")
    monkeypatch.setenv("PGSERVICE", "nonexistent")
    argv = server.psql_argv("-tAc", "select 40 + 2")
    assert Path(argv[0]).name == "psql"
    env = server.psql_env()
    assert env["PGDATABASE"] == "postgres"
    assert env["PGPASSWORD"] == _password(server)
    assert "PGSERVICE" not in env
    result = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip() == "42"
    argv = server.psql_argv("-d", "template1", "-tAc", "select current_database()")
    result = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip() == "template1"


def test_start_twice_is_harmless(server: EmbeddedServer) -> None:
    """A second start(), from this or another object, returns the running server."""
    first = server.status()
    again = EmbeddedServer(server.data_dir, settings={"shared_buffers": "nonsense"}).start()
    assert again.pid == first.pid
    assert again.port == first.port
    assert _select_one(server.url(driver="libpq")) == 1


def test_embedded_url_uses_the_server_in_data_dir(server: EmbeddedServer) -> None:
    """embedded_url() gives the running server's URL for a driver, without restarting it."""
    pid = server.status().pid
    assert embedded_url(data_dir=server.data_dir, start=False) == server.url()
    assert embedded_url(driver="asyncpg", data_dir=server.data_dir) == server.url(driver="asyncpg")
    assert server.status().pid == pid


def test_stop_twice_is_harmless_and_start_again_works(server: EmbeddedServer) -> None:
    """stop() is True only when it stopped something; url() needs a running server."""
    assert server.stop() is True
    status = server.status()
    assert not status.running
    assert (status.pid, status.port, status.url) == (None, None, None)
    assert status.version == "18.6"
    assert server.stop() is False
    with pytest.raises(ServerError, match="not running"):
        server.url()
    with pytest.raises(ServerError, match="not running"):
        embedded_url(data_dir=server.data_dir, start=False)
    assert server.start().running
    assert _select_one(server.url(driver="libpq")) == 1


def test_restart_keeps_the_port_and_the_url(server: EmbeddedServer) -> None:
    """The port is remembered in <data_dir>/port: after a stop and a start the URL is the
    same, and a URL taken before still works."""
    first = server.status()
    url = server.url(driver="libpq")
    server.stop()
    second = server.start()
    assert second.pid != first.pid
    assert second.port == first.port
    assert second.url == first.url
    assert server.url(driver="libpq") == url
    assert (server.data_dir / "port").read_text().strip() == str(first.port)
    assert _select_one(url) == 1


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
async def test_taken_port_moves_and_connect_args_follow(
    server: EmbeddedServer, driver: str
) -> None:
    """When another program holds the remembered port, start() takes a new one (and
    remembers that); an engine that reads connect_args() on each connection follows."""
    old = server.status().port
    engine = create_async_engine(f"postgresql+{driver}://", poolclass=sa.NullPool)

    @sa.event.listens_for(engine.sync_engine, "do_connect")
    def _find_the_server(dialect: Any, conn_rec: Any, cargs: Any, cparams: Any) -> None:
        cparams.update(server.connect_args())

    async def served_port() -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(sa.text("show port"))).scalar_one())

    try:
        assert await served_port() == old
        server.stop()
        with pytest.raises(ServerError, match="not running"):
            server.connect_args()
        with socket.socket() as busy:
            busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            busy.bind(("127.0.0.1", old))
            busy.listen()
            moved = server.start()
        assert moved.port is not None
        assert moved.port != old
        assert f"port={moved.port}" in server.url()
        args = server.connect_args()
        assert args == {
            "host": str(moved.socket_dir),
            "port": moved.port,
            "user": "postgres",
            "password": _password(server),
        }
        assert await served_port() == moved.port
        server.stop()
        assert server.start().port == moved.port
    finally:
        await engine.dispose()


def test_stale_pid_file_of_a_dead_process(server: EmbeddedServer) -> None:
    """A postmaster.pid naming a process that is gone is removed, and start works."""
    server.stop()
    dead = subprocess.Popen(["true"])
    dead.wait()
    _write_pid_file(server, dead.pid)
    assert not server.status().running
    assert server.start().running
    assert server.status().pid != dead.pid
    assert _select_one(server.url(driver="libpq")) == 1


def test_stale_pid_file_cleanup_stays_in_our_directories(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    """Stale socket files are removed from our socket dir only, never from the directory
    some other server uses that a stale pid file happens to name."""
    server.stop()
    ours = server.data_dir / ".s.PGSQL.54321.lock"
    ours.write_text("99999999\n")
    theirs = tmp_path / ".s.PGSQL.54321.lock"
    theirs.write_text("1\n")
    _write_pid_file(server, 99999999)
    assert server.start().running
    assert not ours.exists()
    server.stop()
    _write_pid_file(server, 99999999, socket_dir=tmp_path)
    assert server.stop() is False
    assert theirs.exists()
    assert not (server.pgdata / "postmaster.pid").exists()


def test_orphan_guard_sees_a_servers_processes(server: EmbeddedServer) -> None:
    """The check for leftover backends (run before a stale pid file is removed) finds
    the processes working in the cluster: the postmaster and its children."""
    from vecalchemy.server import _orphan_backends

    found = _orphan_backends(server.pgdata)
    assert server.status().pid in found
    assert len(found) > 1


@pytest.mark.parametrize("who", ["this test process", "a sleeping process"])
def test_stale_pid_file_naming_a_live_non_postgres_process(
    server: EmbeddedServer, who: str
) -> None:
    """A pid reused by another process is not taken for the server: stop() leaves that
    process alone, and start() removes the pid file and starts."""
    server.stop()
    with subprocess.Popen(["sleep", "60"]) as sleeper:
        try:
            pid = os.getpid() if who == "this test process" else sleeper.pid
            _write_pid_file(server, pid)
            assert not server.status().running
            assert server.stop() is False
            assert sleeper.poll() is None
            _write_pid_file(server, pid)
            status = server.start()
            assert status.running
            assert status.pid != pid
            assert sleeper.poll() is None
        finally:
            sleeper.kill()
    assert _select_one(server.url(driver="libpq")) == 1


def test_empty_pid_file_is_stale(server: EmbeddedServer) -> None:
    """An empty postmaster.pid (debris of a crash) does not block start."""
    server.stop()
    (server.pgdata / "postmaster.pid").write_text("")
    assert not server.status().running
    assert server.start().running


def test_start_after_the_server_was_killed(server: EmbeddedServer) -> None:
    """After a SIGKILL of the postmaster, start() recovers the cluster."""
    pid = server.status().pid
    assert pid is not None
    with psycopg.connect(server.url(driver="libpq"), autocommit=True) as conn:
        conn.execute("set synchronous_commit = on")  # the module's clusters turn it off
        conn.execute("create table if not exists survivor (x int)")
        conn.execute("insert into survivor values (7)")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.status().running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server.status().running
    assert server.start().running
    with psycopg.connect(server.url(driver="libpq"), autocommit=True) as conn:
        assert conn.execute("select x from survivor").fetchall() == [(7,)]
        conn.execute("drop table survivor")


def test_invalid_setting_fails_with_the_log_file_named(server: EmbeddedServer) -> None:
    """A setting postgres rejects gives a ServerError naming the log and quoting it."""
    server.stop()
    bad = EmbeddedServer(server.data_dir, settings={"shared_buffers": "nonsense"})
    with pytest.raises(ServerError) as info:
        bad.start(timeout=20)
    message = str(info.value)
    assert message.startswith("embedded postgresql failed to start")
    assert str(server.log_file) in message
    assert 'invalid value for parameter "shared_buffers": "nonsense"' in message
    assert not server.status().running
    assert server.start().running


def test_broken_postgresql_conf_fails_then_recovers(server: EmbeddedServer) -> None:
    """A broken postgresql.conf gives a ServerError with the log tail; fixed, start works."""
    server.stop()
    conf = server.pgdata / "postgresql.conf"
    original = conf.read_text()
    conf.write_text(original + "\nvecalchemy_no_such_setting = 1\n")
    try:
        with pytest.raises(ServerError, match="vecalchemy_no_such_setting") as info:
            server.start(timeout=20)
        assert str(server.log_file) in str(info.value)
    finally:
        conf.write_text(original)
    assert server.start().running


def test_start_retries_when_the_chosen_port_is_taken(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If another program binds the chosen port before postgres does, start picks another."""
    import vecalchemy.server

    server.stop()
    (server.data_dir / "port").unlink()  # no remembered port: start asks _free_port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports = iter([taken])
        real = vecalchemy.server._free_port
        monkeypatch.setattr(vecalchemy.server, "_free_port", lambda: next(ports, None) or real())
        status = server.start()
    assert status.running
    assert status.port != taken
    assert "could not bind IPv4 address" in server.log_file.read_text()


def test_invalid_setting_names_are_rejected_up_front() -> None:
    """settings= names are checked before anything runs (they reach a shell via pg_ctl)."""
    with pytest.raises(ConfigurationError, match="invalid postgresql setting name"):
        EmbeddedServer("/nonexistent", settings={"work_mem; rm -rf /": "1MB"})
    with pytest.raises(ConfigurationError, match="one line"):
        EmbeddedServer("/nonexistent", settings={"work_mem": "1MB\nfsync=off"})
    with pytest.raises(ConfigurationError, match="choose a path without a newline"):
        EmbeddedServer("/tmp/two\nlines")


def test_long_data_dir_uses_a_short_socket_dir(cluster_dir: Path) -> None:
    """When <data_dir>/.s.PGSQL.<port> is too long for a socket, the socket goes to a
    short directory under the temp dir named by a hash of the data dir, and works."""
    data_dir = cluster_dir / ("d" * 60) / ("e" * 60)
    assert len(str(data_dir / ".s.PGSQL.65535")) > 107
    server = EmbeddedServer(data_dir, settings=FAST)
    try:
        status = server.start()
        assert status.socket_dir is not None
        assert status.socket_dir != data_dir
        assert status.socket_dir.parent == Path(tempfile.gettempdir())
        assert status.socket_dir.name.startswith("vecalchemy-")
        assert len(str(status.socket_dir / ".s.PGSQL.65535")) <= 107
        assert f"host={status.socket_dir}" in server.url()
        assert _select_one(server.url(driver="libpq")) == 1
        # The same data dir always maps to the same socket dir.
        server.stop()
        assert server.start().socket_dir == status.socket_dir
    finally:
        server.stop()
        if status.socket_dir is not None:
            status.socket_dir.rmdir()  # postgres removed its socket files


@pytest.mark.slow
def test_concurrent_starts_run_initdb_once(cluster_dir: Path) -> None:
    """Two processes starting a new cluster at once: one initdb, one server, both succeed."""
    data_dir = cluster_dir / "concurrent"
    script = textwrap.dedent(
        f"""
        from vecalchemy.server import EmbeddedServer
        status = EmbeddedServer({str(data_dir)!r}, settings={FAST!r}).start()
        print(status.pid)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    server = EmbeddedServer(data_dir)
    try:
        assert [proc.returncode for proc in procs] == [0, 0]
        pids = {int(out.strip()) for out in outputs}
        assert pids == {server.status().pid}
        log = server.log_file.read_text()
        assert log.count("The files belonging to this database system") == 1
    finally:
        server.stop()


def test_cluster_from_another_major_version_is_refused(tmp_path: Path) -> None:
    """A data dir made by another PostgreSQL major version gives a clear error."""
    (tmp_path / "pgdata").mkdir()
    (tmp_path / "pgdata" / "PG_VERSION").write_text("17\n")
    server = EmbeddedServer(tmp_path)
    assert server.status().version == "17"
    with pytest.raises(ServerError, match="created by postgresql 17 but the embedded binaries"):
        server.start()


def test_unusable_data_dir_gives_a_clear_error(tmp_path: Path) -> None:
    """A data dir whose parent is a file cannot be created: ServerError says so."""
    (tmp_path / "file").write_text("")
    server = EmbeddedServer(tmp_path / "file" / "data")
    with pytest.raises(ServerError, match="cannot create the embedded postgresql data directory"):
        server.start()
    assert server.stop() is False


def test_status_of_a_new_data_dir(tmp_path: Path) -> None:
    """status() of a data dir never started: not running, no version; nothing is created."""
    server = EmbeddedServer(tmp_path / "new")
    status = server.status()
    assert status == ServerStatus(
        running=False,
        data_dir=tmp_path / "new",
        pgdata=tmp_path / "new" / "pgdata",
        log_file=tmp_path / "new" / "postgres.log",
        pid=None,
        port=None,
        socket_dir=None,
        url=None,
        version=None,
    )
    assert not (tmp_path / "new").exists()
    assert server.stop() is False


def test_default_data_dir_honours_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """$VECALCHEMY_DATA_DIR names the default data dir; otherwise the user data dir."""
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "here"))
    assert default_data_dir() == tmp_path / "here"
    assert EmbeddedServer().data_dir == tmp_path / "here"
    monkeypatch.delenv(DATA_DIR_ENV)
    assert default_data_dir() == platformdirs.user_data_path("vecalchemy")


@pytest.mark.parametrize(
    "name",
    [
        "dollar $(touch pwned) paren",
        "back `touch pwned` tick",
        'double " quote',
        "single ' quote",
        "space and, comma",
    ],
)
def test_data_dir_with_shell_metacharacters(cluster_dir: Path, name: str) -> None:
    """A data dir whose path a shell would expand (or split) starts, serves every URL,
    and stops, and no command hidden in it ever runs."""
    data_dir = cluster_dir / name
    server = EmbeddedServer(data_dir, settings=FAST)
    status = server.status()
    try:
        status = server.start()
        assert status.running
        assert status.pgdata == data_dir / "pgdata"
        assert _select_one(server.url(driver="libpq")) == 1
        engine = sa.create_engine(server.url())
        try:
            with engine.connect() as conn:
                assert conn.execute(sa.text("select 1")).scalar_one() == 1
        finally:
            engine.dispose()
        argv = server.psql_argv("-tAc", "select 40 + 2")
        env = server.psql_env()
        result = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=60, check=True
        )
        assert result.stdout.strip() == "42"
        assert server.stop() is True
        assert not server.status().running
        if "," in name:  # libpq cannot be given a socket dir with a comma: a hashed one
            assert status.socket_dir is not None
            assert status.socket_dir.parent == Path(tempfile.gettempdir())
    finally:
        server.stop()
        if status.socket_dir is not None and status.socket_dir != data_dir:
            status.socket_dir.rmdir()  # postgres removed its socket files
    assert not list(cluster_dir.rglob("pwned"))


def test_binaries_path_a_shell_would_expand_is_refused(
    cluster_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Binaries reached through a path with $(...) are refused before anything runs:
    initdb and pg_ctl would hand that path to /bin/sh."""
    import vecalchemy.server

    real = vecalchemy.server._bin_dir()
    link = cluster_dir / "bin$(touch pwned)"
    link.symlink_to(real, target_is_directory=True)
    monkeypatch.setattr(vecalchemy.server, "_bin_dir", lambda: link)
    server = EmbeddedServer(cluster_dir / "data", settings=FAST)
    with pytest.raises(ServerError, match=r"a shell would expand .*install the package"):
        server.start()
    assert not (cluster_dir / "data").exists()
    assert not list(cluster_dir.rglob("pwned"))


def test_trust_cluster_of_an_older_version_is_migrated(cluster_dir: Path) -> None:
    """start() on a cluster made with --auth=trust sets a generated password for
    postgres, writes the password file, turns initdb's trust lines into scram-sha-256
    (a user's own trust line stays) and reloads; a second start changes nothing."""
    pgdata = _old_cluster(cluster_dir / "old")
    hba = pgdata / "pg_hba.conf"
    with hba.open("a") as f:
        f.write("local   sameuser        alice                                   trust\n")
    server = EmbeddedServer(cluster_dir / "old", settings=FAST)
    try:
        status = server.start()
        assert status.port is not None
        assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
        assert _trust_lines(pgdata) == ["local sameuser alice trust"]
        assert "local all all scram-sha-256" in " ".join(hba.read_text().split())
        _refused_without_the_password("127.0.0.1", status.port)
        _refused_without_the_password(str(status.socket_dir), status.port)
        assert _select_one(server.url(driver="libpq")) == 1
        before = (hba.read_text(), _password(server))
        server.start()
        server.stop()
        server.start()
        assert (hba.read_text(), _password(server)) == before
        assert _select_one(server.url(driver="libpq")) == 1
        assert not _passwordless_connects(server)
    finally:
        server.stop()


async def test_migration_interrupted_after_writing_the_password_file(cluster_dir: Path) -> None:
    """A migration cut short after it wrote the password file is finished by the next
    start, with that password; its leftovers are removed. The password, full of
    characters URLs reserve, is percent-encoded in every URL, and works with each
    driver and with psql."""
    pgdata = _old_cluster(cluster_dir / "old")
    server = EmbeddedServer(cluster_dir / "old", settings=FAST)
    password = "p@ss word:/?#[]%&=+'\"$`"
    fd = os.open(server.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    leftover = server.data_dir / ".password.vecalchemy-tmp"
    leftover.write_text("half-written copy\n")
    try:
        status = server.start()
        assert status.port is not None
        assert _password(server) == password
        assert not leftover.exists()
        assert _trust_lines(pgdata) == []
        _refused_without_the_password(str(status.socket_dir), status.port)
        assert _select_one(server.url(driver="libpq")) == 1
        assert sa.make_url(server.url()).password == password
        sync = sa.create_engine(server.url())
        try:
            with sync.connect() as conn:
                assert conn.execute(sa.text("select 1")).scalar_one() == 1
        finally:
            sync.dispose()
        for driver in ("psycopg", "asyncpg"):
            engine = create_async_engine(server.url(driver=driver))
            try:
                async with engine.connect() as conn:
                    assert (await conn.execute(sa.text("select 1"))).scalar_one() == 1
            finally:
                await engine.dispose()
        argv = server.psql_argv("-tAc", "select 1")
        result = subprocess.run(argv, capture_output=True, text=True, env=server.psql_env())
        assert result.stdout.strip() == "1", result.stderr
    finally:
        server.stop()


def test_migration_interrupted_before_the_reload(cluster_dir: Path) -> None:
    """A migration cut short after it rewrote pg_hba.conf, while the running server
    still uses the old trust rules, is finished by the next start (it reloads)."""
    pgdata = _old_cluster(cluster_dir / "old")
    server = EmbeddedServer(cluster_dir / "old", settings=FAST)
    try:
        pid = server.start().pid
        assert pid is not None
        hba = pgdata / "pg_hba.conf"
        migrated = hba.read_text()
        # Back to trust, loaded; then the migrated file on disk, not loaded, as an
        # interrupted migration leaves it (with its marker).
        hba.write_text(migrated.replace("scram-sha-256", "trust"))
        os.kill(pid, signal.SIGHUP)
        _wait_until(lambda: _passwordless_connects(server), "the trust rules to load")
        hba.write_text(migrated)
        (server.data_dir / "auth-migration").touch()
        assert _passwordless_connects(server)
        assert server.start().pid == pid
        assert not _passwordless_connects(server)
        assert not (server.data_dir / "auth-migration").exists()
        assert _select_one(server.url(driver="libpq")) == 1
    finally:
        server.stop()


def test_old_random_page_cost_default_is_commented_out(cluster_dir: Path) -> None:
    """start() comments out the random_page_cost = 1.1 an older version wrote in its
    defaults block, also when the server already runs (it reloads); a random_page_cost
    of the user's own, outside that block, stays."""
    pgdata = _old_cluster(cluster_dir / "old")
    conf = pgdata / "postgresql.conf"
    old_text = conf.read_text()
    ours = "random_page_cost = 1.1        # local SSD: random reads cost about as much"
    assert f"\n{ours}" in old_text
    server = EmbeddedServer(cluster_dir / "old", settings=FAST)

    def show() -> str:
        with psycopg.connect(server.url(driver="libpq")) as conn:
            row = conn.execute("show random_page_cost").fetchone()
        assert row is not None
        return str(row[0])

    try:
        pid = server.start().pid
        assert pid is not None
        text = conf.read_text()
        assert f"\n{ours}" not in text
        assert f"\n# {ours}" in text
        assert "commented out by vecalchemy" in text
        assert show() == "4"
        server.start()
        assert conf.read_text() == text  # done once
        # An old server that runs with the line: start() fixes the file and reloads.
        conf.write_text(old_text)
        os.kill(pid, signal.SIGHUP)
        _wait_until(lambda: show() == "1.1", "the old line to load")
        assert server.start().pid == pid
        assert conf.read_text() == text
        _wait_until(lambda: show() == "4", "the reload")
        # The user's own setting stays.
        conf.write_text(text + "random_page_cost = 1.1\n")
        server.stop()
        server.start()
        assert conf.read_text().endswith("\nrandom_page_cost = 1.1\n")
        assert show() == "1.1"
    finally:
        server.stop()
