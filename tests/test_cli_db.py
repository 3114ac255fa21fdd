"""The ``vecalchemy db`` commands, run through click's CliRunner on a throwaway cluster."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click
import psycopg
import pytest
from click.testing import CliRunner, Result
from sqlalchemy.engine import make_url

from vecalchemy.cli import main
from vecalchemy.server import EmbeddedServer

FAST = ("--set", "fsync=off", "--set", "synchronous_commit=off", "--set", "full_page_writes=off")


@contextlib.contextmanager
def _cluster_dir() -> Iterator[Path]:
    """A fresh directory for a cluster, stopped and removed at the end. Not under pytest's
    tmp_path: when tests run as root the server runs as another user, and every pytest
    session that starts makes pytest's tmp root private again (0700)."""
    path = Path(tempfile.mkdtemp(prefix="vecalchemy-test-"))
    try:
        yield path
    finally:
        EmbeddedServer(path).stop()
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    """The data directory of the module's cluster."""
    with _cluster_dir() as path:
        yield path


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the vecalchemy command line in-process; exceptions propagate."""
    return CliRunner(env=env).invoke(main, list(args), catch_exceptions=False)


def db(data_dir: Path, *args: str) -> Result:
    return run("db", "--data-dir", str(data_dir), *args)


def up(data_dir: Path) -> Result:
    result = db(data_dir, "up", *FAST)
    assert result.exit_code == 0, result.stderr
    return result


def test_up_starts_the_server_and_is_harmless_twice(data_dir: Path) -> None:
    """db up starts the cluster, then reports it already runs."""
    first = up(data_dir)
    assert "embedded postgresql 18.6 is running in" in first.stdout
    assert str(data_dir) in first.stdout
    second = up(data_dir)
    assert "was already running" in second.stdout
    assert EmbeddedServer(data_dir).status().running


def test_status_table(data_dir: Path) -> None:
    """db status shows a table with the state, pid, port and log file."""
    up(data_dir)
    status = EmbeddedServer(data_dir).status()
    result = db(data_dir, "status")
    assert result.exit_code == 0
    assert "running" in result.stdout
    assert str(status.pid) in result.stdout
    assert str(status.port) in result.stdout
    assert "postgres.log" in result.stdout
    password = EmbeddedServer(data_dir).connect_args()["password"]
    assert password
    assert password not in result.stdout
    assert "***" in result.stdout


def test_status_json(data_dir: Path) -> None:
    """db status --json prints the fields a script needs."""
    up(data_dir)
    result = db(data_dir, "status", "--json")
    assert result.exit_code == 0
    fields = json.loads(result.stdout)
    status = EmbeddedServer(data_dir).status()
    assert fields == {
        "running": True,
        "pid": status.pid,
        "port": status.port,
        "url": fields["url"],
        "password_file": str(EmbeddedServer(data_dir).password_file),
        "data_dir": str(data_dir),
        "log_file": str(data_dir / "postgres.log"),
        "version": "18.6",
    }
    # The same URL as status().url, with the password masked.
    assert status.url is not None
    shown, real = make_url(fields["url"]), make_url(status.url)
    assert shown.password == "***"
    assert real.password not in result.stdout
    assert shown.set(password=real.password) == real


@pytest.mark.parametrize(
    ("driver", "prefix"),
    [
        ("psycopg", "postgresql+psycopg://"),
        ("asyncpg", "postgresql+asyncpg://"),
        ("libpq", "postgresql://"),
    ],
)
def test_url_prints_the_url_for_a_driver(data_dir: Path, driver: str, prefix: str) -> None:
    """db url --driver prints the server's URL for that driver."""
    up(data_dir)
    result = db(data_dir, "url", "--driver", driver)
    assert result.exit_code == 0
    url = result.stdout.strip()
    assert url.startswith(prefix)
    assert url == EmbeddedServer(data_dir).url(driver=driver)


def test_libpq_url_connects(data_dir: Path) -> None:
    """The printed libpq URL is usable by psycopg as is."""
    up(data_dir)
    url = db(data_dir, "url", "--driver", "libpq").stdout.strip()
    with psycopg.connect(url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_data_dir_from_the_environment(data_dir: Path) -> None:
    """--data-dir defaults to $VECALCHEMY_DATA_DIR."""
    up(data_dir)
    result = run("db", "status", "--json", env={"VECALCHEMY_DATA_DIR": str(data_dir)})
    assert json.loads(result.stdout)["running"] is True


def test_psql_runs_a_command(data_dir: Path) -> None:
    """db psql passes its arguments to psql (it execs, so run it as a process)."""
    up(data_dir)
    command = [sys.executable, "-m", "vecalchemy", "db", "--data-dir", str(data_dir), "psql"]
    result = subprocess.run(
        [*command, "-tA", "-c", "select 1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


@pytest.mark.parametrize(
    "choice", [("-d", "otherdb"), ("--dbname=otherdb",), ("otherdb",)], ids=" ".join
)
def test_psql_reaches_the_database_named_on_its_command_line(
    data_dir: Path, choice: tuple[str, ...]
) -> None:
    """db psql passes the connection in libpq's environment variables, so psql's own -d,
    --dbname or database argument picks the database (postgres is only the default)."""
    up(data_dir)
    with psycopg.connect(EmbeddedServer(data_dir).url(driver="libpq"), autocommit=True) as conn:
        if conn.execute("select from pg_database where datname = 'otherdb'").fetchone() is None:
            conn.execute("create database otherdb")
    command = [sys.executable, "-m", "vecalchemy", "db", "--data-dir", str(data_dir), "psql"]
    result = subprocess.run(
        [*command, "--", "-tAc", "select current_database()", *choice],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "otherdb"
    default = subprocess.run(
        [*command, "-tAc", "select current_user || ' ' || current_database()"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert default.stdout.strip() == "postgres postgres"


@pytest.mark.slow
def test_psql_starts_the_server_first() -> None:
    """db psql on a stopped server starts it (the server keeps running afterwards)."""
    with _cluster_dir() as path:
        env = {**os.environ, "VECALCHEMY_DATA_DIR": str(path)}
        result = subprocess.run(
            [sys.executable, "-m", "vecalchemy", "db", "psql", "-tAc", "show server_version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "18.6"
        assert EmbeddedServer(path).status().running


def test_down_stops_and_is_harmless_twice(data_dir: Path) -> None:
    """db down stops the server, then says it was not running; status follows."""
    up(data_dir)
    first = db(data_dir, "down")
    assert first.exit_code == 0
    assert "stopped" in first.stdout
    second = db(data_dir, "down")
    assert second.exit_code == 0
    assert "was not running" in second.stdout
    assert json.loads(db(data_dir, "status", "--json").stdout)["running"] is False
    assert "stopped" in db(data_dir, "status").stdout


def test_url_of_a_stopped_server_is_a_clean_error(data_dir: Path) -> None:
    """A VecalchemyError exits 1 with a one-line message on stderr, no traceback."""
    db(data_dir, "down")
    result = db(data_dir, "url")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: embedded postgresql is not running")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    started = db(data_dir, "url", "--start")
    assert started.exit_code == 0
    assert started.stdout.startswith("postgresql+psycopg://")


def test_failed_start_names_the_log_file(data_dir: Path) -> None:
    """db up with a setting postgres rejects exits 1 and points at the log."""
    db(data_dir, "down")
    result = db(data_dir, "up", "--set", "shared_buffers=nonsense")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: embedded postgresql failed to start; see ")
    assert str(data_dir / "postgres.log") in result.stderr
    assert '"shared_buffers"' in result.stderr
    assert "Traceback" not in result.stderr
    up(data_dir)


def test_bad_set_option_is_a_usage_error(data_dir: Path) -> None:
    """--set needs NAME=VALUE."""
    result = db(data_dir, "up", "--set", "fsync")
    assert result.exit_code == 2
    assert "expected NAME=VALUE" in result.stderr


def test_every_command_has_help() -> None:
    """Every group and command documents itself, and --help works for each."""

    def walk(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, (*path, name))

    paths = list(walk(main, ()))
    assert {("db", name) for name in ("up", "down", "status", "url", "psql")} <= set(paths)
    for path in paths:
        command: click.Command = main
        for name in path:
            assert isinstance(command, click.Group)
            command = command.commands[name]
        assert command.help, f"{' '.join(path) or 'main'} has no help text"
        result = run(*path, "--help")
        assert result.exit_code == 0
        assert "Usage:" in result.stdout


def test_python_m_vecalchemy() -> None:
    """python -m vecalchemy runs the same command line."""
    result = subprocess.run(
        [sys.executable, "-m", "vecalchemy", "db", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Usage: vecalchemy db" in result.stdout
