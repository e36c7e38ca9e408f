"""Rows of a DTSEN V3 pair import from the columns DuckDB checked: each NIK's keyed hash, then
one tuple a person in COLUMNS_V3 order; and the writer processes that do this beside the
importing process on SQLite. Imports neither DuckDB, SQLAlchemy nor rich (a writer
process starts in ~0.3 s and stays small).
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
from storage.dtsen.sqlite_load import sqlite_connect, sqlite_write
from storage.dtsen.validate import KeyedHash, LineArray, NikArray

T = TypeVar("T")
WORKER_CODE = "import storage.dtsen.v3_rows as m; m.worker_main()"
_POWERS = 10 ** np.arange(15, -1, -1, dtype=np.int64)
_NO_NIKS: NikArray = np.empty(0, np.int64)
_NO_LINES: LineArray = np.empty(0, np.int32)
# A chunk's columns as they cross the pipe (marshal, no Python object a value): the row count,
# then per column ("ints", int32 bytes), ("joined", values joined by SEPARATOR), ("list",
# values), ("coded", distinct values, int32 index bytes; the index len(values) is None) or
# ("days", int32 days since 1970 bytes). Made by v3.pack from DuckDB's Arrow batches.
Packed = tuple[Any, ...]
SEPARATOR = "\x1f"
_EPOCH = date(1970, 1, 1).toordinal()
# Birth dates as text by day number: ~40.000 distinct over a city, made once each.
_DAY_TEXTS: dict[int, str] = {}
_DAY_LIMIT = 100_000


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
    if len(_DAY_TEXTS) > _DAY_LIMIT:
        _DAY_TEXTS.clear()
    distinct, at = np.unique(days, return_inverse=True)
    texts = [
        _DAY_TEXTS.get(day)
        or _DAY_TEXTS.setdefault(day, date.fromordinal(day + _EPOCH).isoformat())
        for day in distinct.tolist()
    ]
    return np.array(texts, dtype=object)[at].tolist()  # type: ignore[no-any-return]


def build_rows(columns: list[list[Any]], hasher: KeyedHash
               ) -> tuple[list[tuple[Any, ...]], NikArray, LineArray]:  # fmt: skip
    """COLUMNS_V3 rows from the columns line, NIK, nama ... lapangan_usaha of loadable persons
    (see `Chunk`), with their NIKs and lines. The HMAC is inlined as in `Validator.chunks` (a
    method call a row is measurable here)."""
    if not columns or not columns[0]:
        return [], _NO_NIKS, _NO_LINES
    inner_copy, outer_copy = hasher.inner.copy, hasher.outer.copy
    digests: list[bytearray] = []
    append = digests.append
    for nik in columns[1]:
        inner = inner_copy()
        inner.update(nik.encode())
        outer = outer_copy()
        outer.update(inner.digest())
        append(bytearray(outer.digest()))
    # digest_key of every row at once: the first 8 of each 32 bytes, big-endian.
    keys = np.frombuffer(b"".join(digests), ">i8")[::4].tolist()
    rows = list(zip(columns[0], digests, keys, *columns[2:], strict=True))
    digits = np.frombuffer("".join(columns[1]).encode("ascii"), np.uint8).reshape(-1, 16)
    return rows, (digits.astype(np.int64) - 48) @ _POWERS, np.array(columns[0], np.int32)


@dataclass(frozen=True)
class Chunk:
    """A batch of the pass: the loadable persons as packed columns (line, NIK, then COLUMNS_V3
    from nama on; see `unpack`), the skipped rows, and the family lines that found a person."""

    columns: Packed
    bad: list[BadRow]
    families: npt.NDArray[np.int64]


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
                   written: Callable[[int, NikArray, LineArray], None]) -> None:  # fmt: skip
    """Hand each chunk to a writer process with a free slot (`slots` in all, round the
    processes); tell the one holding the next chunk in file order to write it once it is
    built, so rows are appended in id order, one writer at a time. `handed(chunk)` once it
    is out, `written(rows, NIKs, lines)` once it is in the staging table."""
    free = [slot % writers.count for slot in range(slots)]
    owner: dict[int, int] = {}  # chunk -> process
    built: set[int] = set()
    next_write, writing = 0, False

    def answer() -> None:
        nonlocal next_write, writing
        _, message = writers.next_message(stop)
        if message[0] == "parsed":
            built.add(message[1])
        else:
            _, seq, rows, niks, lines = message
            written(rows, np.frombuffer(niks, np.int64), np.frombuffer(lines, np.int32))
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
        handed(chunk)
    while owner:
        answer()


def worker_main() -> None:
    """A writer process: hashes the persons it is given and writes them, turns kept in order.

    Messages (marshal frames) on stdin: the config (database path, secret), then
    ("block", seq, packed columns) to build and ("write", seq) once every earlier block is in the
    staging table. Answers on stdout: ("parsed", seq), ("written", seq, rows, NIK bytes, line
    bytes) or ("error", text).
    """
    output = os.fdopen(os.dup(1), "wb")  # the frames own fd 1; stray prints go to stderr
    os.dup2(2, 1)
    gc.disable()  # ~3 containers a row, no reference cycles: the collector would free nothing
    commands = sys.stdin.buffer
    try:
        config = receive(commands)
        assert config is not None
        db_path, secret = config
        hasher = KeyedHash(secret)
        connection = sqlite_connect(db_path)
        built: dict[int, tuple[list[tuple[Any, ...]], NikArray, LineArray]] = {}
        while (message := receive(commands)) is not None:
            if message[0] == "block":
                _, seq, packed = message
                built[seq] = build_rows(unpack(packed), hasher)
                send(output, ("parsed", seq))
            else:
                seq = message[1]
                rows, niks, lines = built.pop(seq)
                sqlite_write(connection, rows, COLUMNS_V3)
                send(output, ("written", seq, len(rows), niks.tobytes(), lines.tobytes()))
        connection.close()
    except DtsenImportError as error:
        send(output, ("error", str(error)))
    except (BrokenPipeError, KeyboardInterrupt):
        os._exit(1)  # the importing process is gone or stopping: nobody to tell
    except Exception as error:  # reported, not printed: the parent decides what to show
        send(output, ("error", redact_text(f"writer process: {type(error).__name__}: {error}")))
