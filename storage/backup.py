"""Online backups: a consistent, verified copy of the SQLite database while the bot writes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shlex
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import make_url

# Pages copied per backup step (4 MiB at SQLite's default 4 KiB page) and the pause after each:
# the pause lets the bot's writers and checkpoints run between steps.
PAGES_PER_STEP = 1024
STEP_PAUSE_SECONDS = 0.005


class BackupError(Exception):
    """The backup could not be taken; the message says why, in plain words."""


@dataclasses.dataclass(frozen=True)
class BackupReport:
    """What was copied where, and whether the copy is sound and matches the source."""

    target: Path
    integrity: str
    tables: Mapping[str, int]
    source_tables: Mapping[str, int]
    pages: int
    seconds: float

    @property
    def ok(self) -> bool:
        """The copy passed `PRAGMA integrity_check` and holds what the source held."""
        return self.integrity == "ok" and dict(self.tables) == dict(self.source_tables)

    def describe(self) -> str:
        """A short plain-English summary for the terminal."""
        lines = [
            f"backup {'ok' if self.ok else 'FAILED'}: {self.target} "
            f"({self.pages:,} pages in {self.seconds:.1f} s)",
            f"integrity_check: {self.integrity}",
        ]
        for name, count in self.tables.items():
            source = self.source_tables.get(name)
            note = "" if source == count else f" (source had {source})"
            lines.append(f"  {name}: {count:,} rows{note}")
        return "\n".join(lines)


def sqlite_path(database_url: str) -> Path:
    """The file behind a sqlite URL; BackupError for other databases or in-memory ones."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise BackupError("only SQLite databases are copied; use pg_dump for PostgreSQL")
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory database cannot be backed up")
    return Path(url.database)


def pg_dump_command(database_url: str, target: Path) -> str:
    """The pg_dump command for a PostgreSQL URL, without the password (PGPASSWORD/.pgpass)."""
    url = make_url(database_url)
    parts = ["pg_dump", "--format=custom"]
    if url.host:
        parts.append(f"--host={url.host}")
    if url.port:
        parts.append(f"--port={url.port}")
    if url.username:
        parts.append(f"--username={url.username}")
    parts += [f"--dbname={url.database or ''}", f"--file={target}"]
    return shlex.join(parts)


async def backup_sqlite(
    database_url: str,
    target: Path,
    *,
    pages_per_step: int = PAGES_PER_STEP,
    step_pause: float = STEP_PAUSE_SECONDS,
) -> BackupReport:
    """Copy a live SQLite database to `target` with the online backup API, then verify it."""
    source = sqlite_path(database_url)
    # sqlite3 blocks: run it in a worker thread so the bot's event loop keeps serving.
    return await asyncio.to_thread(_backup, source, target, pages_per_step, step_pause)


def _backup(source: Path, target: Path, pages_per_step: int, step_pause: float) -> BackupReport:
    started = time.perf_counter()
    if not source.is_file():
        raise BackupError(f"no database file at {source}")
    if target.resolve() == source.resolve():
        raise BackupError("the backup must not overwrite the database itself")
    # A partial name first: the target only ever holds a copy that passed the checks.
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    # The copy holds NIKs: readable by the owner only, from the first byte.
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        source_tables, pages = _copy(source, partial, pages_per_step, step_pause)
        # A fresh read-only connection checks what is on disk, not what a cache remembers.
        with contextlib.closing(
            sqlite3.connect(f"{partial.resolve().as_uri()}?mode=ro", uri=True)
        ) as copy:
            rows = copy.execute("PRAGMA integrity_check").fetchall()
            tables = _count_rows(copy)
    except sqlite3.Error as error:
        partial.unlink(missing_ok=True)
        raise BackupError(f"{source}: {error}") from error
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    report = BackupReport(
        target=partial,
        integrity="; ".join(str(row[0]) for row in rows),
        tables=tables,
        source_tables=source_tables,
        pages=pages,
        seconds=time.perf_counter() - started,
    )
    if not report.ok:
        # Keep a doubtful copy for inspection, but never over an earlier good backup.
        return report
    partial.replace(target)
    return dataclasses.replace(report, target=target)


def _copy(
    source: Path, partial: Path, pages_per_step: int, step_pause: float
) -> tuple[dict[str, int], int]:
    """Copy one snapshot of `source` page by page; its row counts and the copy's page count."""

    def pause(_status: int, _remaining: int, _total: int) -> None:
        time.sleep(step_pause)

    # mode=rw: never create an empty database where the operator mistyped the path.
    uri = f"{source.resolve().as_uri()}?mode=rw"
    with contextlib.closing(sqlite3.connect(uri, uri=True, isolation_level=None)) as src:
        src.execute("PRAGMA busy_timeout=15000")
        # One read transaction across every step pins a single snapshot: under WAL the bot's
        # writes go on, and the backup neither restarts on them nor mixes two moments.
        src.execute("BEGIN")
        try:
            source_tables = _count_rows(src)
            with contextlib.closing(sqlite3.connect(partial, isolation_level=None)) as dst:
                src.backup(dst, pages=max(pages_per_step, 1), progress=pause)
                # A single self-contained file, restorable without -wal/-shm companions.
                dst.execute("PRAGMA journal_mode=DELETE")
                pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
        finally:
            src.execute("COMMIT")
    return source_tables, pages


def _count_rows(connection: sqlite3.Connection) -> dict[str, int]:
    names = [
        str(row[0])
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    counts: dict[str, int] = {}
    for name in names:
        quoted = '"' + name.replace('"', '""') + '"'
        counts[name] = int(connection.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])
    return counts
