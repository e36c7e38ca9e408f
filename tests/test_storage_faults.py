"""The database under strain: a long-held SQLite lock is waited out; a full or read-only disk
tells the worker to try again later, saves nothing, and the worker later continues."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy import exc as sa_exc

from emulator import BotApiEmulator, EmulatedUser
from storage.engine import is_sqlite, is_unwritable
from testkit.factories import Person, make_person
from testkit.harness import Harness
from tests.test_registration import applications_of, reach_nik, seed

TRY_LATER = r"belum bisa kami simpan.*coba lagi nanti"


async def _at_name_step(harness: Harness, user_id: int) -> tuple[EmulatedUser, Person]:
    """A worker who gave their NIK and is asked for their name (2/9)."""
    person = make_person(user_id % 10_000)
    await seed(harness, person)
    user = harness.user(user_id)
    await reach_nik(user)
    await user.send(person.nik)
    await user.expect(r"\(2/9\)")
    return user, person


@contextmanager
def _on_new_connections(harness: Harness, setup: Callable[[Any], None]) -> Iterator[None]:
    """Run `setup` on every database connection the bot opens while inside the block."""
    engine = harness.services.database.engine.sync_engine

    def _connect(dbapi_connection: Any, _record: Any) -> None:
        setup(dbapi_connection)

    event.listen(engine, "connect", _connect)
    try:
        yield
    finally:
        event.remove(engine, "connect", _connect)


async def _reconnect(harness: Harness) -> None:
    """Close pooled connections, so the next statements run on fresh ones."""
    await harness.services.database.engine.dispose()


def _fill_up(connection: Any) -> None:
    """SQLITE_FULL on every write to the registration's tables, as on a full disk: each write
    first needs space in a temporary table that may not grow (temp.max_page_count)."""
    cursor = connection.cursor()
    cursor.execute("CREATE TEMP TABLE ballast (b BLOB)")
    cursor.execute("PRAGMA temp.max_page_count = 2")
    for table in ("application", "processed_update", "nik_attempt", "audit_event"):
        for action in ("INSERT", "UPDATE"):
            cursor.execute(
                f"CREATE TEMP TRIGGER full_{table}_{action.lower()} BEFORE {action} ON {table} "
                "BEGIN INSERT INTO ballast VALUES (zeroblob(1000000)); END"
            )


def _read_only_setup(url: str) -> Callable[[Any], None]:
    """The bot's connections refuse writes, as on a read-only disk or a PostgreSQL standby."""

    def sqlite(connection: Any) -> None:
        connection.cursor().execute("PRAGMA query_only = 1")

    def postgres(connection: Any) -> None:
        # Outside any transaction (the adapter's cursor would open one, rolled back later).
        connection.run_async(lambda raw: raw.execute("SET default_transaction_read_only = on"))

    return sqlite if is_sqlite(url) else postgres


async def _unwritable_answer_is_not_saved_and_later_accepted(
    harness: Harness, user: EmulatedUser, person: Person, setup: Callable[[Any], None]
) -> None:
    with _on_new_connections(harness, setup):
        await _reconnect(harness)
        await user.send(person.name)
        notice = await user.expect(TRY_LATER)
        await user.expect_no_reply(within=0.3)
        assert "tersimpan" not in notice.text
        assert not any(e.from_bot and "(3/9)" in (e.message.text or "") for e in user.transcript())
    await _reconnect(harness)
    [draft] = await applications_of(harness, user.id)
    assert (draft.step, draft.nama) == ("name", None)
    await user.send(person.name)
    await user.expect(r"\(3/9\)")
    [draft] = await applications_of(harness, user.id)
    assert (draft.step, draft.nama) == ("birth_date", person.name)


@pytest.fixture
async def sqlite_harness(emulator: BotApiEmulator, tmp_path: Path) -> Any:
    """The bot on SQLite only (locks and pages are SQLite's own)."""
    h = Harness(emulator, tmp_path)
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


async def test_full_disk_tells_the_worker_to_try_later_and_they_continue_from_the_same_step(
    sqlite_harness: Harness,
) -> None:
    """SQLITE_FULL: the worker reads "coba lagi nanti", nothing is stored, and once there is
    space again the same answer moves them on."""
    user, person = await _at_name_step(sqlite_harness, 661001)
    await _unwritable_answer_is_not_saved_and_later_accepted(
        sqlite_harness, user, person, _fill_up
    )


async def test_read_only_database_tells_the_worker_to_try_later_and_they_continue(
    harness: Harness,
) -> None:
    """A read-only database (SQLite file, PostgreSQL read-only transactions) gives the same
    answer; the worker continues from the same step once writes work again."""
    user, person = await _at_name_step(harness, 661002)
    await _unwritable_answer_is_not_saved_and_later_accepted(
        harness, user, person, _read_only_setup(harness.database_url)
    )


async def test_answer_waits_for_a_writer_holding_the_sqlite_lock_and_then_succeeds(
    sqlite_harness: Harness, tmp_path: Path
) -> None:
    """Another process holding the write lock for seconds makes the bot wait (BEGIN IMMEDIATE
    + busy_timeout) instead of failing; the answer is stored once the lock is released."""
    harness = sqlite_harness
    user, person = await _at_name_step(harness, 661003)
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        other = sqlite3.connect(tmp_path / "bot.db", isolation_level=None, timeout=10)
        try:
            other.execute("BEGIN IMMEDIATE")
            locked.set()
            release.wait(timeout=20)
            other.execute("COMMIT")
        finally:
            other.close()

    holder = asyncio.create_task(asyncio.to_thread(hold_the_lock))
    assert await asyncio.to_thread(locked.wait, 10)
    await user.send(person.name)
    # While the lock is held the answer neither goes through nor fails.
    await user.expect_no_reply(within=2.0)
    release.set()
    await holder
    await user.expect(r"\(3/9\)", timeout=15)
    assert not any(e.from_bot and "gangguan" in (e.message.text or "") for e in user.transcript())
    [draft] = await applications_of(harness, user.id)
    assert (draft.step, draft.nama) == ("birth_date", person.name)


class _PostgresError(Exception):
    """Stands in for asyncpg's errors, which carry the SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "unwritable"),
    [
        (sqlite3.OperationalError("database or disk is full"), True),
        (sqlite3.OperationalError("attempt to write a readonly database"), True),
        (sqlite3.OperationalError("no such table: application"), False),
        (_PostgresError("53100"), True),  # disk_full
        (_PostgresError("25006"), True),  # read_only_sql_transaction
        (_PostgresError("23505"), False),  # unique_violation: a bug or a race, not the disk
        (ValueError("database or disk is full"), False),
    ],
)
def test_only_full_or_read_only_storage_counts_as_unwritable(
    error: Exception, unwritable: bool
) -> None:
    """The error handler's "try later" is for the disk, wrapped as SQLAlchemy wraps it."""
    wrapped = sa_exc.OperationalError("UPDATE application ...", {}, error)
    assert is_unwritable(wrapped) is unwritable
