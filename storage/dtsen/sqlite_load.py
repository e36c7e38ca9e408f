"""Staging and swapping the DTSEN table on SQLite, through the plain sqlite3 module; the same
writes serve the parser processes. No SQLAlchemy here: the parser processes import this."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import itertools
import logging
import os
import re
import sqlite3
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import IO

from storage.dtsen.contract import (
    COLUMNS,
    NIK_INDEX,
    OLD_TABLE,
    STAGING_TABLE,
    TABLE,
    DtsenImportError,
)

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_S = 15.0  # as storage.engine, without importing SQLAlchemy here
# Rows per INSERT statement. One statement a row spent ~25 % of the write (the single writer's
# share of the import) in sqlite3's per-statement work: step, reset, releasing the GIL. 64 rows
# of 8 values (or 14, see COLUMNS_V3) stay under the 999 variables of SQLite builds before 3.32.
_ROWS_PER_INSERT = 64
# Threads sorting the keys while the index is built (SQLite: 0, the connection's own only).
SORT_THREADS = 2
# The checkpoint thread's niceness: it copies pages in the background, and on 2 cores it took
# CPU from the writers and parsers (2,6 M persons: 8,57-9,34 s against 8,64-9,16 s and an
# 11,2 s outlier, alternating runs).
CHECKPOINT_NICENESS = 10


@functools.cache
def inserts(columns: tuple[str, ...]) -> tuple[str, str]:
    """The INSERT of one row and of _ROWS_PER_INSERT rows into the staging table."""
    places = f"({', '.join('?' * len(columns))})"
    one = f"INSERT INTO {STAGING_TABLE} ({', '.join(columns)}) VALUES {places}"
    return one, one + f", {places}" * (_ROWS_PER_INSERT - 1)


INSERT_ONE = inserts(COLUMNS)[0]


def sqlite_connect(path: str) -> sqlite3.Connection:
    """A plain sqlite3 connection for staging writes, tuned like the engine's."""
    connection = sqlite3.connect(
        path,
        timeout=SQLITE_BUSY_TIMEOUT_S,
        isolation_level=None,  # explicit BEGIN IMMEDIATE / COMMIT
        check_same_thread=False,  # the import's thread; interrupt() comes from the event loop
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    # A checkpoint thread copies the WAL into the database file while parsing goes on; without
    # this every commit here would also checkpoint and wait for an fsync.
    connection.execute("PRAGMA wal_autocheckpoint=0")
    return connection


def sqlite_write(
    connection: sqlite3.Connection,
    rows: Sequence[Sequence[object]],
    columns: tuple[str, ...] = COLUMNS,
) -> None:
    # One short transaction per chunk, so the bot's own writes interleave with the import.
    # Line numbers are the ids and chunks arrive in file order: rows append to the b-tree.
    insert_one, insert_many = inserts(columns)
    whole = len(rows) - len(rows) % _ROWS_PER_INSERT
    values = itertools.chain.from_iterable(itertools.islice(rows, whole))
    statements = zip(*[values] * (_ROWS_PER_INSERT * len(columns)), strict=False)
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.executemany(insert_many, statements)
        connection.executemany(insert_one, rows[whole:])
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def sqlite_write_columns(
    connection: sqlite3.Connection, columns: Sequence[list[object]], names: tuple[str, ...]
) -> None:
    """`sqlite_write` of the rows whose columns these are, without making a tuple a row: the
    values are laid out row after row in one list (a slice assignment a column, in C) and cut
    into the statements' parameters."""
    count, width = len(columns[0]), len(names)
    flat: list[object] = [None] * (count * width)
    for at, column in enumerate(columns):
        flat[at::width] = column
    insert_one, insert_many = inserts(names)
    values = iter(flat)
    statements = zip(*[values] * (_ROWS_PER_INSERT * width), strict=False)
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.executemany(
            insert_many, itertools.islice(statements, count // _ROWS_PER_INSERT)
        )
        connection.executemany(insert_one, zip(*[values] * width, strict=False))
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


class SqliteLoader:
    """Loads through the plain `sqlite3` module on the database file.

    SQLAlchemy Core executemany reaches ~155k rows/s on this machine and plain sqlite3 ~375k,
    and the async driver adds a thread hop per statement: the import is the one place where
    that ceiling matters. The import runs on a worker thread, never on the event loop, and big
    files are written by the parser processes themselves through the same `sqlite_write`.

    The swap: SQLite keeps an index's name when its table is renamed and cannot rename an
    index, so an index built on the staging table would keep a staging name for good. Instead
    one transaction drops the old index, renames the old table aside and the staging table into
    place, only then creates `ix_dtsen_record_nik_key`, and drops the old table last: the live
    table always has the index under its real name and repeated imports never collide. The
    price is that the index is built inside the swap, holding the write lock ~0.8 s per million
    rows (~2-3 s for Kota Bekasi): bot writes wait (busy_timeout 15 s), readers do not (WAL) and
    see the old table until the commit.
    """

    def __init__(self, path: str, columns: tuple[str, ...] = COLUMNS) -> None:
        self.path = path
        self.columns = columns
        self._connection: sqlite3.Connection | None = None
        self._lock_file: IO[str] | None = None
        self._index_sql = ""
        self._swapped = False
        self._checkpoints = threading.Event()
        self._checkpointer: threading.Thread | None = None

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._connection is not None, "prepare() first"
        return self._connection

    @property
    def _lock_path(self) -> str:
        return f"{self.path}.dtsen-import.lock"

    def prepare(self) -> None:
        # One import at a time per database file. The kernel drops the lock if we are killed,
        # so any staging table found once it is held is a leftover.
        self._lock_file = _take_import_lock(self._lock_path)
        self._connection = db = sqlite_connect(self.path)
        # The index build in the swap sorts every nik_key: with a sorter thread beside this
        # one it takes 0,9-1,1 s for Kota Bekasi's 2,6 M persons against 1,2-1,4 s alone
        # (alternating runs, 7 Dec); a bigger cache_size made it slower (3.9 s), mmap_size
        # did not help.
        db.execute(f"PRAGMA threads = {SORT_THREADS}")
        # This SQLite is built with SECURE_DELETE, which zero-fills every freed page: dropping a
        # 2,6 M-row table would write ~1 GB. FAST still purges live b-tree pages; the freed
        # pages of the previous extract are overwritten by the next import.
        db.execute("PRAGMA secure_delete=FAST")
        found = db.execute(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (TABLE,)
        ).fetchone()
        if found is None:
            raise DtsenImportError(f"table {TABLE} is missing: run `rentan-bot migrate` first")
        index = db.execute(
            "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?", (NIK_INDEX,)
        ).fetchone()
        self._index_sql = index[0] if index else f"CREATE INDEX {NIK_INDEX} ON {TABLE} (nik_key)"
        # The staging table is made from the live table's own DDL, so what gets renamed into
        # place is exactly what the migrations built.
        staging_sql = re.sub(
            rf'^CREATE TABLE\s+"?{TABLE}"?', f"CREATE TABLE {STAGING_TABLE}", found[0]
        )
        leftovers = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE ? ESCAPE '!'",
                (TABLE.replace("_", "!_") + "!_!_%",),
            )
        ]
        db.execute("BEGIN IMMEDIATE")
        for name in leftovers:
            log.info("dropping %s left by an interrupted import", name)
            db.execute(f'DROP TABLE "{name}"')
        db.execute(staging_sql)
        db.execute("COMMIT")
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, daemon=True)
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """Copy committed pages from the WAL into the database file, beside the writers."""
        connection = sqlite3.connect(
            self.path, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None
        )
        if sys.platform == "linux":  # where a thread's niceness is its own
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CHECKPOINT_NICENESS)
        try:
            # PASSIVE never blocks writers or readers; it copies what it can.
            while not self._checkpoints.wait(0.2):
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            connection.close()

    def write(self, rows: Sequence[Sequence[object]]) -> None:
        sqlite_write(self._db, rows, self.columns)

    def remove(self, lines: list[int]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        db.executemany(f"DELETE FROM {STAGING_TABLE} WHERE id = ?", [(line,) for line in lines])
        db.execute("COMMIT")

    def rows_in_service(self) -> int:
        # Only imports change the table, and this one holds the import lock.
        (count,) = self._db.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
        return int(count)

    def swap(self, *, source_name: str, loaded: int, skipped: int, actor: str) -> None:
        # The checkpoint thread goes on copying the staging table's pages into the database
        # file while the index is built (on the other core: a passive checkpoint never blocks
        # the writer), so the checkpoint after the commit has only the index left to copy.
        db = self._db
        # Naive UTC in SQLAlchemy's SQLite DATETIME format, as models.UTCDateTime stores it.
        imported_at = datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        db.execute("BEGIN IMMEDIATE")
        try:
            # The old table is dropped after the index is built: pages freed earlier in this
            # transaction would be reused for the index and read back first (a re-import's
            # index took 2.8-3.2 s that way, 2.1-2.9 s so).
            db.execute(f"DROP INDEX IF EXISTS {NIK_INDEX}")
            db.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD_TABLE}")
            db.execute(f"ALTER TABLE {STAGING_TABLE} RENAME TO {TABLE}")
            db.execute(self._index_sql)
            db.execute(f"DROP TABLE {OLD_TABLE}")
            db.execute(
                "INSERT INTO dtsen_import (imported_at, source_name, rows_loaded, rows_skipped, "
                "actor) VALUES (?, ?, ?, ?, ?)",
                (imported_at, source_name, loaded, skipped, actor),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._swapped = True
        self._stop_checkpoints()
        # Copy the new table into the database file now rather than make the bot's next commit
        # pay for it, and shrink the WAL (it held the whole staging table). Readers get a second
        # to finish; if one holds on, the WAL is just truncated by a later checkpoint.
        db.execute("PRAGMA busy_timeout=1000")
        # A Ctrl-C landing here interrupts only this tidy-up: the new table is committed and
        # serves, so the import must still report success, not "the previous table stays".
        with contextlib.suppress(sqlite3.OperationalError):
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def interrupt(self) -> None:
        # Stops a statement running on the import's thread (a chunk, or the index build in the
        # swap): its transaction rolls back and the old table stays. Thread-safe per sqlite3.
        if self._connection is not None:
            self._connection.interrupt()

    def _stop_checkpoints(self) -> None:
        self._checkpoints.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
            self._checkpointer = None

    def discard(self) -> None:
        self._stop_checkpoints()
        try:
            if self._connection is not None:
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
                if not self._swapped:
                    self._connection.execute(f"DROP TABLE IF EXISTS {STAGING_TABLE}")
                self._connection.close()
        finally:
            self._connection = None
            if self._lock_file is not None:
                # Removed while still locked, so it is not left beside the database; an import
                # waiting to lock it notices (see _take_import_lock).
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._lock_path)
                self._lock_file.close()  # releases the flock
                self._lock_file = None


def _take_import_lock(path: str) -> IO[str]:
    """The import's lock file, opened and flocked; DtsenImportError if another import holds it.

    Its holder removes the file when done. Whoever opened the file just before that removal
    then locks a file no longer at `path`: so the locked file must still be the one there, or
    it is opened anew.
    """
    while True:
        handle = open(path, "a")  # noqa: SIM115 (held for the whole import)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise DtsenImportError("another DTSEN import is running on this database") from None
        try:
            current = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
        except FileNotFoundError:
            current = False
        if current:
            return handle
        handle.close()


# Key of the session-level advisory lock that serialises PostgreSQL imports ("DTSEN" in ASCII).
