"""The SQLite engine: write transactions lock early, reads and idle commits cost no extra trips."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from emulator import BotApiEmulator
from storage.engine import Database
from storage.migrate import upgrade
from testkit.factories import make_person
from testkit.fakes import add_application
from testkit.harness import Harness


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


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common 022 umask, under which new files are world-readable by default."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("usual_umask")
async def test_database_and_its_wal_and_shm_are_readable_by_the_owner_only(
    tmp_path: Path,
) -> None:
    """The database holds full NIKs and phones: it, its -wal and its -shm are created 0600,
    like backups and exports."""
    path = tmp_path / "private.db"
    database = Database.from_url(f"sqlite+aiosqlite:///{path}")
    try:
        await upgrade(database)
        async with database.write() as session, session.begin():
            await session.execute(
                text("INSERT INTO user_preference VALUES (1, 'id', '2026-01-01 00:00:00')")
            )
        modes = {
            suffix: stat.S_IMODE(Path(f"{path}{suffix}").stat().st_mode)
            for suffix in ("", "-wal", "-shm")
        }
    finally:
        await database.dispose()
    assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}


def test_an_existing_database_others_can_read_is_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database file created 0644 by an older version is reported at start-up."""
    path = tmp_path / "old.db"
    sqlite3.connect(path).close()
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="storage.engine"):
        Database.from_url(f"sqlite+aiosqlite:///{path}")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [str(path)] == [message.split(" ")[0] for message in warnings]
    assert "chmod 600" in caplog.text


async def test_erased_nik_and_phone_are_not_left_in_the_database_or_wal_files(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    """After /hapusdata the worker's NIK and phone are in neither file: deleted cells are
    zeroed (secure_delete) and the WAL's old frames are checkpointed away."""
    harness = Harness(emulator, tmp_path)
    await harness.start()
    try:
        services = harness.services
        person = make_person(7301)
        other = make_person(7302)
        worker = harness.user(730001)
        for who, user_id, code in (
            (person, worker.id, "BKS-SD0001"),
            (other, 730002, "BKS-SD0002"),
        ):
            await add_application(
                services.database, services.secret, who, user_id=user_id, code=code
            )
        # Half of the data in the database file itself, half only in the WAL.
        await services.database.checkpoint()
        await worker.send("/hapusdata")
        await worker.expect(r"menarik persetujuan")
        await worker.press("🗑 Ya, hapus data saya")
        await worker.expect(r"sudah dihapus")
        path = tmp_path / "bot.db"
        files = path.read_bytes() + Path(f"{path}-wal").read_bytes()
    finally:
        await harness.stop()
    assert other.nik.encode() in files  # the check can see a NIK where one is stored
    assert person.nik.encode() not in files
    assert person.phone.encode() not in files
