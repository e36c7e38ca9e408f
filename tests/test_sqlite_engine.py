"""The SQLite engine: write transactions lock early, reads and idle commits cost no extra trips."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.engine import Database
from storage.migrate import upgrade


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite file only: these tests check SQLite's write lock, the in-process write
    turn and the one-trip aiosqlite driver, none of which exists on PostgreSQL."""
    db = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'storage.db'}")
    await upgrade(db)
    try:
        yield db
    finally:
        await db.dispose()


def _try_to_write(path: str) -> str:
    """From another connection, try to take the write lock without waiting."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return "free"
    except sqlite3.OperationalError as error:
        return str(error)
    finally:
        other.close()


async def test_write_transaction_holds_the_write_lock_from_its_first_statement(
    database: Database,
) -> None:
    path = database.engine.url.database or ""
    async with database.write() as session, session.begin():
        await session.execute(text("SELECT count(*) FROM application"))
        # A read inside a write transaction already holds the lock (BEGIN IMMEDIATE), so a
        # later write cannot fail with "database is locked" when upgrading a read lock.
        assert "locked" in _try_to_write(path)
    assert _try_to_write(path) == "free"


async def test_failed_write_transaction_leaves_nothing_and_releases_the_lock(
    database: Database,
) -> None:
    path = database.engine.url.database or ""

    async def fail_midway() -> None:
        async with database.write() as session, session.begin():
            await session.execute(
                text("INSERT INTO user_preference VALUES (1, 'en', '2026-01-01 00:00:00')")
            )
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError):
        await fail_midway()
    async with database.read() as session:
        count = (await session.execute(text("SELECT count(*) FROM user_preference"))).scalar()
    assert count == 0
    assert _try_to_write(path) == "free"


async def test_writers_of_one_process_take_turns_and_all_succeed(database: Database) -> None:
    async def write(user_id: int) -> None:
        async with database.write() as session, session.begin():
            await session.execute(
                text("INSERT INTO user_preference VALUES (:id, 'id', '2026-01-01 00:00:00')"),
                {"id": user_id},
            )
            await asyncio.sleep(0)  # let the others queue up meanwhile

    await asyncio.gather(*(write(n) for n in range(50)))
    async with database.read() as session:
        count = (await session.execute(text("SELECT count(*) FROM user_preference"))).scalar()
    assert count == 50


async def test_rows_and_counts_come_back_from_one_trip_statements(database: Database) -> None:
    async with database.write() as session, session.begin():
        result = await session.execute(
            text("INSERT INTO user_preference VALUES (7, 'en', '2026-01-01 00:00:00')")
        )
        assert result.rowcount == 1
    async with database.read() as session:
        rows = (
            await session.execute(text("SELECT telegram_user_id, language FROM user_preference"))
        ).all()
    assert [tuple(row) for row in rows] == [(7, "en")]
