"""PostgreSQL fixtures for the team-mode tests (owner: audit).

``pg_server_url`` (session): a real, throwaway PostgreSQL cluster (``initdb`` in a temp dir — as the ``postgres``
user when running as root — and ``pg_ctl`` on 127.0.0.1, a free port), torn down at the end of the session. Set
``MLOPS_TEST_PG_URL`` to reuse an existing server instead. When no server can be had the tests FAIL with the reason:
a silent skip would hide that team mode is untested.

``pg_url`` (function): a fresh database on that server for one test, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_VERSION = "15"
_BIN_CANDIDATES = (
    os.environ.get("MLOPS_TEST_PG_BIN", ""),
    f"/usr/lib/postgresql/{PG_VERSION}/bin",
    "/usr/local/pgsql/bin",
    "/usr/pgsql-15/bin",
)


class PostgresUnavailable(RuntimeError):
    """A throwaway PostgreSQL cluster could not be started (the message says why)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bindir() -> Path:
    for candidate in _BIN_CANDIDATES:
        if candidate and (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresUnavailable(
        f"PostgreSQL {PG_VERSION} binaries (initdb, pg_ctl) not found in {[c for c in _BIN_CANDIDATES if c]} or PATH; "
        "install postgresql-15 or set MLOPS_TEST_PG_URL to an existing server"
    )


class ThrowawayPostgres:
    """A private PostgreSQL cluster in a temp dir, on 127.0.0.1 and a free port. ``start()`` / ``stop()``."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.bindir = _bindir()
        self.port = _free_port()
        self.fsync = fsync
        self.datadir: Path | None = None
        self.as_postgres = os.geteuid() == 0  # initdb refuses to run as root
        self.user = "postgres"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def start(self) -> str:
        base = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
        self.datadir = base / "data"
        if self.as_postgres:
            try:
                shutil.chown(base, user="postgres", group="postgres")
            except (LookupError, PermissionError, OSError) as exc:
                raise PostgresUnavailable(f"cannot hand {base} to the postgres user: {exc}") from exc
        else:
            import getpass

            self.user = getpass.getuser()
        init = self._run("initdb", "-D", str(self.datadir), "-A", "trust", "-U", self.user, "--no-sync", "-E", "UTF8")
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {(init.stderr or init.stdout).strip()[-800:]}")
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {base} -c max_connections=60"
        if not self.fsync:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        start = self._run("pg_ctl", "-D", str(self.datadir), "-o", opts, "-l", str(base / "server.log"), "-w", "start")
        if start.returncode != 0:
            log = (base / "server.log").read_text(errors="replace")[-800:] if (base / "server.log").exists() else ""
            raise PostgresUnavailable(f"pg_ctl start failed: {(start.stderr or start.stdout).strip()} {log}")
        self._wait_ready()
        return self.url

    def _wait_ready(self, timeout: float = 30) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url.replace("+psycopg", ""), connect_timeout=3):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(f"the server did not accept connections: {exc}") from exc
                time.sleep(0.2)

    def stop(self) -> None:
        if self.datadir is None:
            return
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(self.datadir.parent, ignore_errors=True)
        self.datadir = None


def create_database(server_url: str, name: str | None = None) -> str:
    """Create a fresh database on the server; return its SQLAlchemy URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = name or f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(server_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A PostgreSQL server for this test session (MLOPS_TEST_PG_URL, or a throwaway cluster). Fails, never skips."""
    existing = os.environ.get("MLOPS_TEST_PG_URL")
    if existing:
        if existing.startswith("postgresql://"):
            existing = "postgresql+psycopg://" + existing[len("postgresql://") :]
        yield existing
        return
    server: ThrowawayPostgres | None = None
    try:
        server = ThrowawayPostgres()
        url = server.start()
    except (PostgresUnavailable, OSError, subprocess.SubprocessError) as exc:
        if server is not None:
            server.stop()
        pytest.fail(f"cannot start a throwaway PostgreSQL {PG_VERSION} for the postgres tests: {exc}", pytrace=False)
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL server, dropped after the test."""
    from sqlalchemy.engine import make_url

    url = create_database(pg_server_url)
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            drop_database(pg_server_url, str(make_url(url).database))
