"""The embedded PostgreSQL server: start, status, URLs for every driver, stop, recovery."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

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
    assert status.url.startswith("postgresql+psycopg://postgres@/postgres?host=")
    assert server.status() == status


def test_psycopg_connects_and_pgvector_is_available(server: EmbeddedServer) -> None:
    """The libpq URL works with psycopg 3, and pgvector 0.8.6 is available."""
    url = server.url(driver="libpq")
    assert url.startswith("postgresql://postgres@/postgres?host=")
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
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres") as conn:
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
        assert show("fsync") == "off"  # from settings=
        assert show("listen_addresses") == "127.0.0.1"


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
    assert url.startswith(f"postgresql+{driver}://postgres@/postgres?host=")
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


def test_psql_argv_runs_psql_against_the_server(server: EmbeddedServer) -> None:
    """psql_argv() runs the wheel's psql on this server."""
    argv = server.psql_argv("-tAc", "select 40 + 2")
    assert Path(argv[0]).name == "psql"
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "42"


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


def test_each_start_picks_a_free_port(server: EmbeddedServer) -> None:
    """The TCP port is chosen afresh at each start, and the URL follows it."""
    first = server.status()
    server.stop()
    second = server.start()
    assert second.pid != first.pid
    assert second.url == server.url()
    assert f"port={second.port}" in server.url()


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
