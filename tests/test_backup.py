"""`rentan-bot backup`: a consistent, verified SQLite copy taken while the bot keeps writing."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.cli import main
from storage.backup import BackupError, backup_sqlite
from storage.engine import Database
from storage.migrate import upgrade
from storage.models import AuditEvent
from testkit.harness import TEST_PII_SECRET


async def _audit_count(database: Database) -> int:
    async with database.read() as session:
        return int(await session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def _ids(path: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(path)) as copy:
        return [int(row[0]) for row in copy.execute("SELECT id FROM audit_event ORDER BY id")]


async def test_backup_during_writes_is_one_consistent_snapshot(tmp_path: Path) -> None:
    """While a writer commits audit rows one by one, the copy passes integrity_check and holds
    exactly the rows 1..N of one moment: no gap, no torn page, nothing from after it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    database = Database.from_url(url)
    await upgrade(database)
    # Enough pages that the copy takes many small steps while the writer runs.
    async with database.write() as session:
        session.add_all(AuditEvent(action="seed", reason="s" * 200) for _ in range(2000))
        await session.commit()
    stop = asyncio.Event()
    warmed_up = asyncio.Event()
    written = 0

    async def writer() -> None:
        nonlocal written
        while not stop.is_set():
            async with database.write() as session:
                session.add(AuditEvent(action="live", reason="w" * 200))
                await session.commit()
            written += 1
            if written >= 20:
                warmed_up.set()

    task = asyncio.create_task(writer())
    try:
        await asyncio.wait_for(warmed_up.wait(), timeout=10)
        before = written
        target = tmp_path / "copy.db"
        report = await backup_sqlite(url, target, pages_per_step=8, step_pause=0.002)
        during = written - before
    finally:
        stop.set()
        await task
    source_count = await _audit_count(database)
    await database.dispose()

    assert report.ok, report.describe()
    assert report.integrity == "ok"
    assert report.target == target
    ids = _ids(target)
    assert list(range(1, len(ids) + 1)) == ids
    assert 2000 + before <= len(ids) < source_count
    assert report.tables["audit_event"] == len(ids)
    assert report.tables == report.source_tables
    assert report.pages > 8
    assert during > 0, "the writer was blocked during the backup"
    assert target.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "copy.db.partial").exists()


async def test_backup_refuses_a_missing_database_without_creating_one(tmp_path: Path) -> None:
    """A mistyped path is an error, not a new empty database and a useless copy."""
    with pytest.raises(BackupError, match="no database file"):
        await backup_sqlite(f"sqlite+aiosqlite:///{tmp_path / 'nope.db'}", tmp_path / "c.db")
    assert not (tmp_path / "nope.db").exists()
    assert not (tmp_path / "c.db").exists()


def test_backup_command_writes_a_verified_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rentan-bot backup FILE` copies the configured database and reports the checks."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'rentan.db'}")
    monkeypatch.setenv("PII_SECRET", TEST_PII_SECRET)
    assert main(["migrate"]) == 0
    target = tmp_path / "rentan-backup.db"
    assert main(["backup", str(target)]) == 0
    out = capsys.readouterr().out
    assert "backup ok" in out
    assert "integrity_check: ok" in out
    assert "alembic_version: 1 rows" in out
    with contextlib.closing(sqlite3.connect(target)) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_backup_command_on_postgresql_prints_pg_dump_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL has pg_dump: the command names host, port, user and database, exit 2."""
    monkeypatch.setenv(
        "DATABASE_URL", "postgresql+asyncpg://rentan:rahasia@db.internal:5433/rentan"
    )
    monkeypatch.setenv("PII_SECRET", TEST_PII_SECRET)
    target = tmp_path / "rentan.dump"
    assert main(["backup", str(target)]) == 2
    captured = capsys.readouterr()
    expected = [
        "pg_dump",
        "--format=custom",
        "--host=db.internal",
        "--port=5433",
        "--username=rentan",
        "--dbname=rentan",
        f"--file={target}",
    ]
    assert shlex.join(expected) == captured.out.strip()
    assert "rahasia" not in captured.out + captured.err
    assert not target.exists()
