"""The async engine and session factory for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Executable, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.util.concurrency import await_

from storage.sqlite_driver import OneHopConnection, one_hop_dbapi

log = logging.getLogger(__name__)

# Write transactions on SQLite take the write lock up front (BEGIN IMMEDIATE), so two writers
# queue on busy_timeout instead of one failing with "database is locked" at upgrade time.
WRITE_OPTIONS = {"rentan_write": True}
# A read that must see one moment across several statements (an export): on SQLite a plain
# BEGIN (reads otherwise run in autocommit, each statement its own snapshot); on PostgreSQL
# REPEATABLE READ (READ COMMITTED takes a new snapshot per statement).
SNAPSHOT_OPTIONS: dict[str, dict[str, Any]] = {
    "sqlite": {"rentan_snapshot": True},
    "postgresql": {"isolation_level": "REPEATABLE READ"},
}
SQLITE_BUSY_TIMEOUT_MS = 15_000
# PRAGMA synchronous in WAL mode. NORMAL syncs at checkpoints only: a power cut may lose the
# last commits before it, never corrupts. FULL syncs the WAL at every commit (SQLITE_SYNCHRONOUS).
SQLITE_SYNCHRONOUS = ("NORMAL", "FULL")

# SQLite's messages when the database cannot take writes (SQLITE_FULL, SQLITE_READONLY), and
# PostgreSQL's SQLSTATEs for the same: disk_full and read_only_sql_transaction (a standby, or
# default_transaction_read_only).
_SQLITE_UNWRITABLE = ("database or disk is full", "readonly database")
_POSTGRES_UNWRITABLE = frozenset({"53100", "25006"})


def is_unwritable(error: BaseException) -> bool:
    """Whether an error means the database cannot take writes right now (full or read-only
    disk), as opposed to a bug: the worker can simply try again later."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, sqlite3.Error) and any(
            text in str(current).lower() for text in _SQLITE_UNWRITABLE
        ):
            return True
        if getattr(current, "sqlstate", None) in _POSTGRES_UNWRITABLE:
            return True
        if isinstance(current, DBAPIError):
            pending.append(current.orig)
        pending.extend((current.__cause__, current.__context__))
    return False


def is_sqlite(url: str) -> bool:
    """Whether a database URL points at SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, echo: bool = False, synchronous: str = "NORMAL") -> AsyncEngine:
    """An async engine for `url`, with SQLite tuned for a concurrent bot (`synchronous`: the
    PRAGMA of that name, NORMAL or FULL; ignored by PostgreSQL)."""
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS)}")
    if not is_sqlite(url):
        return _create_async_engine(
            url, echo=echo, pool_size=10, max_overflow=10, hide_parameters=True
        )
    _create_private_file(make_url(url).database)
    engine = _create_async_engine(
        url,
        echo=echo,
        # Bound parameters are personal data; keep them out of exception messages and logs.
        hide_parameters=True,
        # One writer at a time is all SQLite allows; a few readers run beside it under WAL.
        pool_size=4,
        max_overflow=0,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        module=one_hop_dbapi(),
        # Sessions always end their own transaction; the pool's extra ROLLBACK on check-in
        # would be one more round trip to aiosqlite's thread per session.
        pool_reset_on_return=None,
    )
    _configure_sqlite(engine, synchronous)
    return engine


def _create_private_file(database: str | None) -> None:
    """Create a new database file readable by its owner only, as backups and exports are; warn
    about an existing one that others can read (it holds full NIKs and phone numbers).

    SQLite creates the -wal and -shm files with the database file's permissions, so creating
    the (empty, hence valid) file first is enough, whatever the process umask is.
    """
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except FileExistsError:
        pass
    except OSError:
        return  # a missing directory, say: SQLite reports it when it opens the file
    for path in (database, f"{database}-wal", f"{database}-shm"):
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if mode & 0o077:
            log.warning(
                "%s can be read by other users (mode %o): it holds personal data; "
                "run chmod 600 on it",
                path,
                mode & 0o777,
            )


def _configure_sqlite(engine: AsyncEngine, synchronous: str) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself rather than pysqlite's implicit, late BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        # Deleted rows (an erasure, expired drafts) are overwritten with zeros, not left in
        # free pages of the file.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Reads run in autocommit: each SELECT sees a consistent snapshot under WAL, and an
        # explicit BEGIN would cost another round trip to aiosqlite's thread per session.
        options = connection.get_execution_options()
        if options.get("rentan_write"):
            _begin(connection, "BEGIN IMMEDIATE")
        elif options.get("rentan_snapshot"):
            # Deferred: the snapshot is taken by the first SELECT and held until the end.
            _begin(connection, "BEGIN")


def _begin(connection: Any, begin: str) -> None:
    """`begin` (BEGIN IMMEDIATE, BEGIN), sent along with the transaction's first statement
    when possible."""
    adapted = connection.connection.dbapi_connection
    if isinstance(adapted, OneHopConnection):
        adapted.begin_with_next_statement(begin)
        return
    driver = getattr(adapted, "_connection", None)
    if driver is None or not hasattr(driver, "execute"):
        # Not the aiosqlite adapter (or its internals moved): the portable, slower way.
        connection.exec_driver_sql(begin)
        return
    await_(driver.execute(begin))


class Database:
    """An engine plus two session factories: reads, and writes that lock early on SQLite."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.url = engine.url.render_as_string(hide_password=False)
        self.dialect = engine.dialect.name
        self.read = async_sessionmaker(engine, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(
            engine.execution_options(**WRITE_OPTIONS), expire_on_commit=False
        )
        # Read sessions whose transaction is one snapshot (see SNAPSHOT_OPTIONS).
        self.snapshot = async_sessionmaker(
            engine.execution_options(**SNAPSHOT_OPTIONS.get(self.dialect, {})),
            expire_on_commit=False,
        )
        # SQLite has one writer. Writers of this process queue here, in order and without
        # cost; left to SQLite, the losers of BEGIN IMMEDIATE sleep in its busy handler (1, 2,
        # 5 ... 100 ms) on a pooled connection. Other processes still wait on busy_timeout.
        self._write_turn = asyncio.Lock() if self.dialect == "sqlite" else None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session for one write transaction (SQLite: BEGIN IMMEDIATE, one writer at a time)."""
        if self._write_turn is None:
            async with self._write_sessions() as session:
                yield session
            return
        async with self._write_turn, self._write_sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection in one write transaction, committed on success (no ORM session)."""
        writer = self.engine.execution_options(**WRITE_OPTIONS)
        if self._write_turn is None:
            async with writer.begin() as connection:
                yield connection
            return
        async with self._write_turn, writer.begin() as connection:
            yield connection

    async def execute_alone(self, statement: Executable, params: Mapping[str, Any]) -> int:
        """Run one data-changing statement as its own transaction; returns the rows it changed.

        A single statement is atomic by itself. On SQLite it runs in autocommit: one trip to
        aiosqlite's thread instead of three (BEGIN with it, then COMMIT), so the write turn
        is held for one hand-off only; with many chats in flight each hand-off waits for a
        turn of the busy event loop, and the turns held decide how many answers a second fit.
        """
        if self._write_turn is None:
            async with self.engine.begin() as connection:
                return int((await connection.execute(statement, params)).rowcount)
        async with self._write_turn, self.engine.connect() as connection:
            changed = int((await connection.execute(statement, params)).rowcount)
            await connection.commit()
            return changed

    async def checkpoint(self) -> None:
        """SQLite: copy the WAL into the database file and truncate it, so that deleted data
        does not stay readable in old WAL frames. Nothing to do on PostgreSQL."""
        if self._write_turn is None:
            return
        async with self._write_turn, self.engine.connect() as connection:
            result = await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            busy = result.scalar()
        if busy:
            # A reader still holds an old snapshot: the next checkpoint finishes the job.
            log.warning("WAL checkpoint could not finish: a reader is busy")

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False, synchronous: str = "NORMAL") -> Database:
        """Open a database from a URL (`synchronous`: SQLite's PRAGMA, see create_engine)."""
        return cls(create_engine(url, echo=echo, synchronous=synchronous))

    def session(self) -> AsyncSession:
        """A read session."""
        return self.read()

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
