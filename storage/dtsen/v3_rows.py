"""Rows of a DTSEN V3 pair import from the columns DuckDB checked, packed by the importing
process (values as bytes, each NIK's keyed hash made there): one tuple a person in COLUMNS_V3
order; and the writer processes that make and write them beside the importing process on
SQLite. Imports neither DuckDB, SQLAlchemy nor rich (a writer process starts in ~0.3 s and
stays small).
"""

from __future__ import annotations

import contextlib
import gc
import os
import queue
import sys
import threading
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from domain.pii import redact_text
from storage.dtsen.contract import COLUMNS_V3, BadRow, DtsenImportError
from storage.dtsen.parsers import ParserProcesses, receive, send
from storage.dtsen.sqlite_load import sqlite_connect, sqlite_write_columns
from storage.dtsen.validate import KeyedHash, LineArray, NikArray

T = TypeVar("T")
WORKER_CODE = "import storage.dtsen.v3_rows as m; m.worker_main()"
# A chunk's columns as they cross the pipe (marshal, no Python object a value): the row count,
# then per column of COLUMNS_V3 ("ints", int32 bytes), ("keys", int64 bytes), ("digests",
# 32-byte digests back to back), ("joined", values joined by SEPARATOR), ("list", values),
# ("coded", distinct values, int32 index bytes; the index len(values) is None) or ("days",
# int32 days since 1970 bytes). Made by v3.pack from DuckDB's Arrow batches.
Packed = tuple[Any, ...]
SEPARATOR = "\x1f"
_EPOCH = date(1970, 1, 1).toordinal()
# Birth dates as text by day number (1900-01-01 is day 0), made once each: ~40.000 distinct.
_FIRST_DAY = date(1900, 1, 1).toordinal()
_DAY_TEXTS = np.full(200 * 366, None, dtype=object)


def unpack(packed: Packed) -> list[list[Any]]:
    """The columns of a packed chunk as lists, for `build_rows`. Repeated values (codes,
    desils, dates) are shared objects: a gender or a date is made once, not once a row."""
    count, *encoded = packed
    if not count:
        return []
    columns: list[list[Any]] = []
    for kind, *data in encoded:
        if kind == "ints":
            columns.append(np.frombuffer(data[0], np.int32).tolist())
        elif kind == "keys":
            columns.append(np.frombuffer(data[0], np.int64).tolist())
        elif kind == "digests":
            # bytearray: bound without sqlite3's adapter lookup (bytes takes it)
            blob = data[0]
            columns.append([bytearray(blob[at : at + 32]) for at in range(0, len(blob), 32)])
        elif kind == "joined":
            columns.append(data[0].split(SEPARATOR))
        elif kind == "list":
            columns.append(data[0])
        elif kind == "coded":
            values = np.array([*data[0], None], dtype=object)
            columns.append(values[np.frombuffer(data[1], np.int32)].tolist())
        else:  # days
            columns.append(_dates(np.frombuffer(data[0], np.int32)))
    return columns


def _dates(days: npt.NDArray[np.int32]) -> list[str]:
    """Days since 1970 (from 1900 to today: checked in SQL) as ISO dates."""
    at = days + (_EPOCH - _FIRST_DAY)
    texts = _DAY_TEXTS[at]
    missing = texts == None  # noqa: E711 (numpy compares each element)
    if missing.any():
        for day in np.unique(at[missing]).tolist():
            _DAY_TEXTS[day] = date.fromordinal(day + _FIRST_DAY).isoformat()
        texts = _DAY_TEXTS[at]
    return texts.tolist()  # type: ignore[no-any-return]


def keyed_digests(niks: bytes, hasher: KeyedHash) -> bytes:
    """The keyed hash (blind index) of each 16-digit NIK in `niks` (ASCII, back to back), 32
    bytes each, back to back. The HMAC is inlined as in `Validator.chunks` (a method call a
    row is measurable here), over the NIKs cut apart by numpy (slicing them here cost ~0,2 s
    of 1,6 s for Kota Bekasi)."""
    inner_copy, outer_copy = hasher.inner.copy, hasher.outer.copy
    digests: list[bytes] = []
    append = digests.append
    for nik in np.frombuffer(niks, "S16").tolist():  # digits, never the NULs S16 would strip
        inner = inner_copy()
        inner.update(nik)
        outer = outer_copy()
        outer.update(inner.digest())
        append(outer.digest())
    return b"".join(digests)


def build_rows(packed: Packed) -> list[tuple[Any, ...]]:
    """The COLUMNS_V3 rows of a packed chunk."""
    return list(zip(*unpack(packed), strict=True))


@dataclass(frozen=True)
class Chunk:
    """A batch of the pass: the loadable persons as packed COLUMNS_V3 (see `unpack`), the
    skipped rows, and the loaded persons' NIKs and lines for the duplicate check."""

    columns: Packed
    bad: list[BadRow]
    niks: NikArray
    lines: LineArray


def read_ahead(batches: Iterable[T]) -> Generator[T, None, None]:
    """The items of `batches`, each read on a thread of its own one step ahead of the consumer
    (DuckDB and Arrow release the GIL while they work); its errors are raised here. Close it
    (the thread then stops after the item it is reading) before closing what it reads."""
    items: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def offer(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                items.put(entry, timeout=0.1)
                return True
        return False

    def read() -> None:
        try:
            for item in batches:
                if not offer((True, item)):
                    return
            offer((False, None))
        except BaseException as error:
            offer((False, error))

    reader = threading.Thread(target=read, name="dtsen-v3-reader", daemon=True)
    reader.start()
    try:
        while True:
            more, item = items.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        reader.join()


def write_in_turns(writers: ParserProcesses, slots: int, chunks: Iterable[Chunk],
                   stop: threading.Event, handed: Callable[[Chunk], None],
                   written: Callable[[int], None]) -> None:  # fmt: skip
    """Hand each chunk to a writer process with a free slot (`slots` in all, round the
    processes); tell the one holding the next chunk in file order to write it once it is
    built, so rows are appended in id order, one writer at a time. A single process is told
    to write each chunk with it: no turn to wait for, no round trip through this process
    (whose threads may wait for the GIL). `handed(chunk)` once it is out, `written(rows)` once
    it is in the staging table."""
    alone = writers.count == 1
    free = [slot % writers.count for slot in range(slots)]
    owner: dict[int, int] = {}  # chunk -> process
    built: set[int] = set()
    next_write, writing = 0, False

    def answer() -> None:
        nonlocal next_write, writing
        _, message = writers.next_message(stop)
        if message[0] == "parsed":
            if not alone:
                built.add(message[1])
        else:
            _, seq, rows = message
            written(rows)
            free.append(owner.pop(seq))
            next_write, writing = seq + 1, False
        if not writing and next_write in built:
            built.discard(next_write)
            writing = True
            writers.tell(owner[next_write], ("write", next_write))

    for seq, chunk in enumerate(chunks):
        while not free:
            answer()
        owner[seq] = number = free.pop(0)
        writers.tell(number, ("block", seq, chunk.columns))
        if alone:
            writers.tell(number, ("write", seq))
        handed(chunk)
    while owner:
        answer()


def worker_main() -> None:
    """A writer process: makes the rows of the chunks it is given and writes them, turns kept
    in order.

    Messages (marshal frames) on stdin: the config (database path,), then ("block", seq,
    packed columns) to build and ("write", seq) once every earlier block is in the staging
    table. Answers on stdout: ("parsed", seq), ("written", seq, rows) or ("error", text).
    """
    output = os.fdopen(os.dup(1), "wb")  # the frames own fd 1; stray prints go to stderr
    os.dup2(2, 1)
    gc.disable()  # ~3 containers a row, no reference cycles: the collector would free nothing
    # The pipe is read on a thread of its own, so the importing process hands over the next
    # chunk while this one is written instead of waiting for the write (it lost ~4 s of 12
    # so); the importing process keeps at most its slots' worth of chunks in flight. That
    # thread takes the GIL at every refill of the pipe, from the thread making the rows.
    messages: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
    sys.setswitchinterval(0.001)
    commands = sys.stdin.buffer
    try:
        config = receive(commands)
        assert config is not None
        (db_path,) = config
        connection = sqlite_connect(db_path)

        def read() -> None:
            while (message := receive(commands)) is not None:
                messages.put(message)
            messages.put(None)

        threading.Thread(target=read, name="dtsen-v3-pipe", daemon=True).start()
        built: dict[int, list[list[Any]]] = {}
        while (message := messages.get()) is not None:
            if message[0] == "block":
                _, seq, packed = message
                built[seq] = unpack(packed)
                send(output, ("parsed", seq))
            else:
                seq = message[1]
                columns = built.pop(seq)
                if columns:
                    sqlite_write_columns(connection, columns, COLUMNS_V3)
                send(output, ("written", seq, len(columns[0]) if columns else 0))
        connection.close()
    except DtsenImportError as error:
        send(output, ("error", str(error)))
    except (BrokenPipeError, KeyboardInterrupt):
        os._exit(1)  # the importing process is gone or stopping: nobody to tell
    except Exception as error:  # reported, not printed: the parent decides what to show
        send(output, ("error", redact_text(f"writer process: {type(error).__name__}: {error}")))
