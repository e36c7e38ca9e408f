"""SQLAlchemy's aiosqlite adapter, with one trip to aiosqlite's thread per statement.

The stock adapter makes three or four trips per statement (open a cursor, execute, fetch,
close), each a hand-off between the event loop and aiosqlite's thread; on a busy two-core
server a hand-off costs far more than SQLite spends on a short statement. Here the whole
statement runs in one call on that thread, and COMMIT/ROLLBACK are skipped when SQLite says no
transaction is open (reads run in autocommit). Everything else is SQLAlchemy's own adapter.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any, cast

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT

_Snapshot = tuple[Any, int, int | None, list[Any]]


def _run(
    connection: sqlite3.Connection, begin: str | None, operation: str, parameters: Any, many: bool
) -> _Snapshot:
    """(Begin,) execute, fetch everything and close, on aiosqlite's thread."""
    if begin is not None:
        connection.execute(begin)
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statements each cost one hand-off to aiosqlite's thread."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        # Deliberately not calling super().__init__: it opens an aiosqlite cursor (a hand-off).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()

    async def _run(self, operation: Any, parameters: Any, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        adapted = cast(OneHopConnection, self._adapt_connection)
        async with adapted._execute_mutex:
            begin, adapted.pending_begin = adapted.pending_begin, None
            snapshot: _Snapshot = await connection._execute(  # type: ignore[no-untyped-call]
                _run, connection._conn, begin, operation, parameters, many
            )
        self._description, self._rowcount, self._lastrowid, rows = snapshot
        self._rows = collections.deque(rows)

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._run(operation, parameters, False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Sequence[Any]) -> None:
        await self._run(operation, seq_of_parameters, True)


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """aiosqlite connection adapter using OneHopCursor; no COMMIT/ROLLBACK trip when idle."""

    __slots__ = ("pending_begin",)
    _cursor_cls = OneHopCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        # A BEGIN to send together with the transaction's first statement (one hand-off less).
        self.pending_begin: str | None = None

    def begin_with_next_statement(self, begin: str) -> None:
        """Send `begin` (e.g. BEGIN IMMEDIATE) in the same hand-off as the next statement."""
        self.pending_begin = begin

    def _in_transaction(self) -> bool:
        # Reading the flag from the event loop's thread is safe: it is sqlite3_get_autocommit.
        driver = self._connection._connection
        return driver is not None and bool(driver.in_transaction)

    def rollback(self) -> None:
        self.pending_begin = None
        if self._in_transaction():
            super().rollback()

    def commit(self) -> None:
        self.pending_begin = None
        if self._in_transaction():
            super().commit()


class OneHopDbapi(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module SQLAlchemy's aiosqlite dialect is given (`create_engine(module=...)`)."""

    def connect(self, *args: Any, **kwargs: Any) -> OneHopConnection:
        adapted = super().connect(*args, **kwargs)
        return OneHopConnection(self, adapted._connection)


def one_hop_dbapi() -> OneHopDbapi:
    """A fresh DBAPI adapter for an engine."""
    return OneHopDbapi(aiosqlite, sqlite3)
