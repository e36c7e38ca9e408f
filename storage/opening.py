"""The one way to open a database: connect (one clear error if out of reach), migrate, dispose."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.engine import make_url

from storage.engine import Database
from storage.migrate import upgrade


class DatabaseUnreachableError(Exception):
    """The first connection failed: a refused port, a bad password or host, an SQLite file in a
    missing or read-only folder. `url` has its password hidden; `reason` is one line."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot open the database ({url}): {reason}")
        self.url = url
        self.reason = reason


@asynccontextmanager
async def open_database(
    url: str, *, synchronous: str = "NORMAL", migrate: bool = True
) -> AsyncIterator[Database]:
    """The database at `url`, connected once (DatabaseUnreachableError if it cannot be),
    migrated to the newest schema when `migrate`, and disposed on exit."""
    database = Database.from_url(url, synchronous=synchronous)
    try:
        await _connect_once(database, url)
        if migrate:
            await upgrade(database)
        yield database
    finally:
        await database.dispose()


async def _connect_once(database: Database, url: str) -> None:
    try:
        path = database.engine.url.database
        if database.dialect == "sqlite" and path and path != ":memory:":
            # aiosqlite reports a failed connect from its thread to the event loop, which
            # asyncio.run may have closed by then (a stray traceback): open the file first.
            sqlite3.connect(path).close()
        async with database.engine.connect():
            pass
    # Only a connection is opened here, so whatever fails is the database being out of reach
    # (asyncpg raises its own errors, not wrapped by SQLAlchemy: hence Exception).
    except Exception as error:
        shown = make_url(url).render_as_string(hide_password=True)
        lines = str(getattr(error, "orig", None) or error).strip().splitlines()
        raise DatabaseUnreachableError(
            shown, lines[0] if lines else type(error).__name__
        ) from error
