"""A throwaway PostgreSQL cluster on 127.0.0.1 for the test session, and a database per test."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def find_bindir() -> Path | None:
    """Where initdb and pg_ctl live (Debian keeps them off PATH), or None."""
    explicit = os.environ.get("RENTAN_PG_BINDIR")
    candidates = [explicit] if explicit else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        candidates.append(str(Path(pg_ctl).parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """initdb + pg_ctl in a temporary directory; trust auth on loopback only."""

    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        self.bindir = bindir
        # Tests throw the cluster away, so they skip fsync; a benchmark wants production's costs.
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="rentan-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        # initdb refuses to run as root; Debian's package creates a `postgres` user for this.
        self.run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.template = "template0"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self.run_as, *args], check=True, capture_output=True, timeout=120, cwd=self.root
        )

    def start(self) -> None:
        """Create and start the cluster (fsync off unless durable: it is thrown away)."""
        if self.run_as:
            shutil.chown(self.root, user="postgres")
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--encoding=UTF8", "--locale=C",
        )  # fmt: skip
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        options += " -c max_connections=200"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.root / "server.log"), "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the cluster and delete its files."""
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        """An asyncpg URL for one database of this cluster."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def create_database(self, template: str = "template0") -> str:
        """A new database, a copy of `template`; returns its name."""
        import asyncpg

        name = f"t_{uuid.uuid4().hex[:12]}"
        connection = await asyncpg.connect(
            host="127.0.0.1", port=self.port, user="postgres", database="postgres"
        )
        try:
            await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        finally:
            await connection.close()
        return name

    async def create_migrated_template(self) -> str:
        """A database at the newest migration, copied for each test (cheaper than migrating)."""
        from storage.opening import open_database

        name = await self.create_database()
        async with open_database(self.url(name)):
            pass
        return name

    async def drop_database(self, name: str) -> None:
        """Drop a test database, closing whatever still holds it."""
        import asyncpg

        connection = await asyncpg.connect(
            host="127.0.0.1", port=self.port, user="postgres", database="postgres"
        )
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()
