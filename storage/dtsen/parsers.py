"""Parser processes for big CSV files on SQLite: each validates, hashes and writes whole blocks,
turns kept in file order; marshal frames over pipes. Imports neither SQLAlchemy nor rich."""

from __future__ import annotations

import contextlib
import fcntl
import gc
import marshal
import os
import queue
import struct
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path
from typing import IO, Any

from domain.pii import redact_text
from storage.dtsen.contract import Cancelled, Columns, DtsenImportError
from storage.dtsen.csv_source import csv_records, read_block
from storage.dtsen.sqlite_load import sqlite_connect, sqlite_write
from storage.dtsen.validate import Parsed, Validator

_FRAME = struct.Struct("<Q")
# A process's stdin pipe (Linux: 64 KiB by default): a chunk is ~1,6 MB, and every refill
# waits for the process's reading thread to get the GIL.
PIPE_BYTES = 1 << 20
_WORKER_CODE = "import storage.dtsen.parsers as m; m.worker_main()"


def send(channel: IO[bytes], message: tuple[Any, ...]) -> None:
    data = marshal.dumps(message)
    channel.write(_FRAME.pack(len(data)) + data)
    channel.flush()


def receive(channel: IO[bytes]) -> tuple[Any, ...] | None:
    head = channel.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    data = channel.read(size)
    if len(data) < size:
        # The sender died half-way through (killed on Ctrl-C, say): that ends its stream too.
        # Unpacking the rest would raise EOFError, killing the listener thread (a traceback on
        # the terminal) before it reports the end, and the coordinator would wait for ever.
        return None
    message: tuple[Any, ...] = marshal.loads(data)
    return message


def worker_main() -> None:
    """A parser process: validates, hashes and writes the blocks it is given, in turn.

    Messages (marshal frames) on stdin: the config, then ("block", seq, offset, length, line) to
    parse and ("write", seq) once every earlier block is in the staging table. Answers on stdout:
    ("parsed", seq), ("written", seq, loaded, bad rows, NIK bytes, line bytes) or ("error", text).
    The rows never cross a pipe (pickling them cost ~1 µs a row, a third of the budget).
    """
    # The frames own file descriptor 1; anything printed by accident goes to stderr instead.
    output = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    # The hot loop allocates ~10 containers a row and makes no reference cycles: the cyclic
    # collector's passes over them cost ~1 µs a row here and would free nothing.
    gc.disable()
    commands = sys.stdin.buffer
    try:
        config = receive(commands)
        assert config is not None
        source, db_path, required, delimiter, quoted, secret, today = config
        path = Path(source)
        columns = Columns(tuple(required))
        validator = Validator(columns, secret=secret, today=date.fromordinal(today))
        connection = sqlite_connect(db_path)
        parsed: dict[int, Parsed] = {}
        with path.open("rb") as handle:
            while (message := receive(commands)) is not None:
                if message[0] == "block":
                    _, seq, offset, length, line = message
                    text = read_block(handle, path, offset, length, line)
                    # One chunk per block: the coordinator sizes blocks to CHUNK_ROWS rows.
                    if quoted:
                        records = csv_records(
                            text, delimiter, width=columns.width, quoted=True, first_line=line
                        )
                        parsed[seq] = next(validator.chunks(records, sys.maxsize))
                    else:
                        parsed[seq] = validator.block(
                            text, delimiter=delimiter, width=columns.width, first_line=line
                        )
                    send(output, ("parsed", seq))
                else:
                    seq = message[1]
                    chunk = parsed.pop(seq)
                    sqlite_write(connection, chunk.rows)
                    send(output, ("written", seq, len(chunk.rows), chunk.bad,
                                   chunk.niks.tobytes(), chunk.lines.tobytes()))  # fmt: skip
        connection.close()
    except DtsenImportError as error:
        send(output, ("error", str(error)))
    except (BrokenPipeError, KeyboardInterrupt):
        os._exit(1)  # the importing process is gone or stopping: nobody to tell
    except Exception as error:  # reported, not printed: the parent decides what to show
        send(output, ("error", redact_text(f"parser process: {type(error).__name__}: {error}")))


class ParserProcesses:
    """Parser processes that validate, hash and write blocks of a CSV, turns kept in file order.

    Each process parses a block, waits until every earlier block is written, writes its own
    (one SQLite writer at a time, rows appended in id order), then gets the next block. With
    two processes one writes while the other parses, so both cores stay busy and no row is ever
    pickled between processes.
    """

    def __init__(self, count: int, config: tuple[Any, ...], code: str = _WORKER_CODE) -> None:
        """`count` processes running `code` (the V3 pair's writers run another worker)."""
        root = str(Path(__file__).resolve().parents[2])  # the directory holding storage/
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self._messages: queue.Queue[tuple[int, tuple[Any, ...] | None]] = queue.Queue()
        self._processes: list[subprocess.Popen[bytes]] = []
        self._listeners: list[threading.Thread] = []
        for number in range(count):
            # The secret travels over stdin, never in argv or the environment. A session of
            # their own keeps the terminal's Ctrl-C away from them: it is the importing
            # process's to handle (it kills them), and one arriving while a process was still
            # starting up printed a KeyboardInterrupt traceback. Killed or not, they stop at
            # EOF on stdin once the importing process is gone.
            process = subprocess.Popen(
                [sys.executable, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
            self._processes.append(process)
            assert process.stdin is not None
            with contextlib.suppress(OSError):  # a smaller pipe is only slower
                fcntl.fcntl(process.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            self.tell(number, config)
            listener = threading.Thread(target=self._listen, args=(number, process), daemon=True)
            listener.start()
            self._listeners.append(listener)

    def _listen(self, number: int, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        with contextlib.suppress(ValueError, OSError):  # closed by kill()
            while (message := receive(process.stdout)) is not None:
                self._messages.put((number, message))
        self._messages.put((number, None))

    @property
    def count(self) -> int:
        return len(self._processes)

    def tell(self, number: int, message: tuple[Any, ...]) -> None:
        stdin = self._processes[number].stdin
        assert stdin is not None
        try:
            send(stdin, message)
        except OSError:  # it died; its listener reports why, or that it stopped
            raise DtsenImportError("a parser process stopped unexpectedly") from None

    def next_message(self, stop: threading.Event) -> tuple[int, tuple[Any, ...]]:
        while True:
            if stop.is_set():
                raise Cancelled
            with contextlib.suppress(queue.Empty):
                number, message = self._messages.get(timeout=0.1)
                if message is None:
                    raise DtsenImportError("a parser process stopped unexpectedly")
                if message[0] == "error":
                    raise DtsenImportError(message[1])
                return number, message

    def close(self) -> None:
        for process in self._processes:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()  # EOF: the process ends on its own
        for process in self._processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for listener in self._listeners:
            listener.join(timeout=5)  # EOF once the process is gone
        for process in self._processes:
            if process.stdout is not None:
                process.stdout.close()

    def kill(self) -> None:
        for process in self._processes:
            with contextlib.suppress(OSError):
                process.kill()
