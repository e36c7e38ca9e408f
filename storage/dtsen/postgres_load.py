"""Staging and swapping the DTSEN table on PostgreSQL: COPY on one dedicated connection, under
an advisory lock that serialises imports."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from domain.pii import redact_text
from storage.dtsen.contract import COLUMNS, NIK_INDEX, STAGING_TABLE, TABLE, DtsenImportError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

PG_IMPORT_LOCK = 0x4454_5345_4E


class PostgresLoader:
    """Loads PostgreSQL with COPY (asyncpg `copy_records_to_table`) on one dedicated connection.

    The import runs on a worker thread; each step is run on the event loop that owns the async
    engine. The connection holds a session-level advisory lock for the whole import, so a second
    import *waits* for the first to finish and then runs (serialised, never interleaved): the
    server drops the lock when the session ends, including when the importing process is killed,
    and waiting rather than refusing means an import started right after a crash is not turned
    away while the server notices the dead session. Its staging table is dropped first: holding
    the lock, any staging table found is a leftover.

    The staging table gets its primary key and index before the swap, under staging
    names; the swap transaction only drops the old table and renames (PostgreSQL can rename
    indexes), so lookups wait only for the drop and the renames, never for an index build.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        loop: asyncio.AbstractEventLoop,
        columns: tuple[str, ...] = COLUMNS,
    ) -> None:
        self._engine = engine
        self.columns = columns
        self._loop = loop
        self._connection: AsyncConnection | None = None
        self._pg: Any = None  # the asyncpg connection under `_connection`
        self._pending: concurrent.futures.Future[None] | None = None
        self._swapped = False

    def _run(self, step: Coroutine[Any, Any, None]) -> None:
        self._wait(asyncio.run_coroutine_threadsafe(step, self._loop))

    def _flush(self) -> None:
        """Wait for the COPY in flight, if any (its error surfaces here)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._wait(pending)

    @staticmethod
    def _wait(step: concurrent.futures.Future[None]) -> None:
        try:
            step.result()
        except DtsenImportError:
            raise
        except Exception as error:
            if not type(error).__module__.startswith("asyncpg"):
                raise
            # One line, without the server's detail: a COPY error quotes the row's values.
            first = str(error).splitlines()[0] if str(error) else ""
            message = redact_text(f"{type(error).__name__}: {first}")
            raise DtsenImportError(f"database error: {message}") from None

    def prepare(self) -> None:
        async def open_and_lock() -> None:
            self._connection = await self._engine.connect()
            raw = await self._connection.get_raw_connection()
            pg = raw.driver_connection
            assert pg is not None, "an open pooled connection has its driver connection"
            self._pg = pg
            if not await pg.fetchval("SELECT pg_try_advisory_lock($1)", PG_IMPORT_LOCK):
                log.warning("another DTSEN import is running on this database: waiting for it")
                await pg.execute("SELECT pg_advisory_lock($1)", PG_IMPORT_LOCK)
            found = await pg.fetchval("SELECT to_regclass($1)", TABLE)
            if found is None:
                raise DtsenImportError(f"table {TABLE} is missing: run `rentan-bot migrate` first")
            async with pg.transaction():
                await pg.execute(f"DROP TABLE IF EXISTS {STAGING_TABLE}")
                await pg.execute(
                    f"CREATE TABLE {STAGING_TABLE} (LIKE {TABLE} INCLUDING CONSTRAINTS)"
                )

        self._run(open_and_lock())

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        # Dates as date objects (binary COPY), built here while the previous COPY runs: the
        # server stores one chunk while this thread parses the next.
        fromiso = date.fromisoformat
        if len(self.columns) == len(COLUMNS):
            records = [(r[0], r[1], r[2], r[3], fromiso(r[4]), r[5], r[6], r[7]) for r in rows]
        else:
            records = [(*r[:4], fromiso(r[4]), *r[5:]) for r in rows]
        self._flush()
        columns = self.columns

        async def copy() -> None:
            await self._pg.copy_records_to_table(STAGING_TABLE, records=records, columns=columns)

        self._pending = asyncio.run_coroutine_threadsafe(copy(), self._loop)

    def remove(self, lines: list[int]) -> None:
        self._flush()

        async def delete() -> None:
            await self._pg.execute(f"DELETE FROM {STAGING_TABLE} WHERE id = ANY($1::int[])", lines)

        self._run(delete())

    def rows_in_service(self) -> int:
        self._flush()
        counted: list[int] = []

        async def count() -> None:
            counted.append(int(await self._pg.fetchval(f"SELECT count(*) FROM {TABLE}")))

        self._run(count())
        return counted[0]

    def swap(self, *, source_name: str, loaded: int, skipped: int, actor: str) -> None:
        self._flush()

        async def index_and_swap() -> None:
            pg = self._pg
            await pg.execute(
                f"ALTER TABLE {STAGING_TABLE} ADD CONSTRAINT {STAGING_TABLE}_pkey PRIMARY KEY (id)"
            )
            await pg.execute(f"CREATE INDEX {NIK_INDEX}__staging ON {STAGING_TABLE} (nik_key)")
            await pg.execute(f"ANALYZE {STAGING_TABLE}")
            async with pg.transaction():
                await pg.execute(f"DROP TABLE {TABLE}")
                await pg.execute(f"ALTER TABLE {STAGING_TABLE} RENAME TO {TABLE}")
                await pg.execute(f"ALTER INDEX {NIK_INDEX}__staging RENAME TO {NIK_INDEX}")
                await pg.execute(f"ALTER INDEX {STAGING_TABLE}_pkey RENAME TO {TABLE}_pkey")
                await pg.execute(
                    "INSERT INTO dtsen_import (imported_at, source_name, rows_loaded, "
                    "rows_skipped, actor) VALUES ($1, $2, $3, $4, $5)",
                    datetime.now(UTC),
                    source_name,
                    loaded,
                    skipped,
                    actor,
                )
            self._swapped = True

        self._run(index_and_swap())

    def interrupt(self) -> None:
        """Nothing to interrupt from outside: the thread stops at its next chunk."""

    def discard(self) -> None:
        async def close() -> None:
            connection, self._connection = self._connection, None
            if connection is None:
                return
            try:
                if self._pg is not None and not self._pg.is_closed():
                    if not self._swapped:
                        await self._pg.execute(f"DROP TABLE IF EXISTS {STAGING_TABLE}")
                    await self._pg.execute("SELECT pg_advisory_unlock_all()")
            finally:
                self._pg = None
                await connection.close()

        pending, self._pending = self._pending, None
        if pending is not None:
            with contextlib.suppress(BaseException):  # failed or cancelled: dropped below
                pending.result()
        self._run(close())
