"""DuckDB's side of a DTSEN V3 pair: each query's rows as Arrow batches in order, from a DuckDB
in this process (`LocalQueries`: small files, PostgreSQL) or in a process of its own
(`ChildQueries`: big files on SQLite).

A DuckDB in the importing process ran each streamed query on the thread fetching its batches,
holding the GIL the importing process's hashing and packing also want: the two took turns on one
core (~1 core in all, against ~2 with DuckDB in a process of its own). Imports neither
SQLAlchemy nor rich, and DuckDB and Arrow only where they run: the import starts DuckDB's
process before it loads them itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from domain.pii import redact_text
from storage.dtsen.contract import Cancelled
from storage.dtsen.parsers import PIPE_BYTES, receive, send

_CHILD_CODE = "import storage.dtsen.v3_stream as m; m.child_main()"
# DuckDB's threads (its default: one a core) and memory. Each thread scanning a CSV pins a few
# of the scanner's 4 MB blocks, so the limit grows with the threads: on the 2,6 M persons, 2
# threads ran in 32 MB and 4 in 64 MB, and 8 threads ran out of 48 MB (so did 16 of 100 MB,
# the limit before). Past ~4 threads the single writer sets the pace anyway. Beyond the limit
# DuckDB spills what it can to its temporary directory; the RSS stays bounded.
MAX_THREADS = 4
MEMORY_PER_THREAD_MB = 24
# Bytes of finished batches DuckDB's stream may queue ahead of its reader (DuckDB: 10 MB).
STREAM_BUFFER = "2MB"
# Rows per Arrow batch from DuckDB.
FETCH_ROWS = 32_768


# This process's niceness: on a machine with fewer cores than processes wanting them (2 cores:
# DuckDB's threads, the hashing, the writer) the writer, the one of the three that sets the pace,
# gets the core when it has rows to write, and DuckDB reads ahead in the gaps. 2,6 M persons,
# alternating runs: staged in 6,9-7,8 s against 7,2-8,7 s at 0 (10: 7,2-7,3 s).
CHILD_NICENESS = 5


class QueryFailed(Exception):
    """DuckDB refused a query or failed while running it: the first line of its error."""


def duckdb_limits(cores: int | None) -> tuple[int, int]:
    """DuckDB's threads and memory limit (MB) on a machine with `cores` cores."""
    threads = max(1, min(cores or 1, MAX_THREADS))
    return threads, max(2, threads) * MEMORY_PER_THREAD_MB


def _connect(spill_dir: str) -> Any:
    import duckdb

    threads, memory = duckdb_limits(os.cpu_count())
    db = duckdb.connect()
    db.execute(f"SET threads = {threads}")
    db.execute(f"SET memory_limit = '{memory}MB'")
    db.execute(f"SET temp_directory = '{spill_dir.replace(chr(39), chr(39) * 2)}'")
    # The rows come out in the file's order: that is what numbers them.
    db.execute("SET preserve_insertion_order = true")
    db.execute(f"SET streaming_buffer_size = '{STREAM_BUFFER}'")
    return db


def _next_query(queries: list[str], query: str) -> None:
    """Take `query` off the front of `queries`: they are read in the order given."""
    if not queries or queries.pop(0) != query:
        raise ValueError("the queries are read in the order given")


def _first_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return redact_text(text[:200])


class LocalQueries:
    """Queries run by a DuckDB in this process."""

    def __init__(self) -> None:
        self.db: Any = None
        self._queries: list[str] = []

    def start(self, spill_dir: str) -> None:
        """Connect, spilling to `spill_dir`."""
        self.db = _connect(spill_dir)

    def run(self, query: str) -> None:
        """`query` runs when `batches(query)` reads it."""
        self._queries.append(query)

    def close_input(self) -> None:
        """No more queries."""

    def batches(self, query: str) -> Iterator[Any]:
        import duckdb
        import pyarrow as pa

        _next_query(self._queries, query)
        try:
            yield from self.db.sql(query).to_arrow_reader(FETCH_ROWS)
        except duckdb.InterruptException:
            raise Cancelled from None
        except (duckdb.Error, pa.ArrowException, OSError) as error:  # Arrow's carry DuckDB's
            raise QueryFailed(_first_line(error)) from None

    def finish(self) -> None:
        """Nothing left to check: a failed query raised in `batches`."""

    def interrupt(self) -> None:
        if self.db is not None:
            self.db.interrupt()

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


class ChildQueries:
    """Queries run in order by a DuckDB in a process of its own, started at once (it loads
    DuckDB meanwhile): `start`, then `run` each query as soon as it is known (the first runs
    while the next is being made) and `close_input`. Each result is an Arrow IPC stream on its
    stdout, one after the other: read them in that order with `batches`, then call `finish`
    (a stream cut short by an error ends like a whole one)."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[2])  # the directory holding storage/
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        # A session of its own keeps the terminal's Ctrl-C away: it is the importing
        # process's to handle (it kills the child).
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD_CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, start_new_session=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        with contextlib.suppress(OSError):  # a smaller pipe is only slower
            fcntl.fcntl(self.process.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self._queries: list[str] = []
        self._errors: list[bytes] = []
        self._stderr = threading.Thread(target=self._read_errors, daemon=True)
        self._stderr.start()

    def start(self, spill_dir: str) -> None:
        """Connect DuckDB there, spilling to `spill_dir`."""
        self._tell((spill_dir,))

    def run(self, query: str) -> None:
        """Start `query` once the ones before it are read; `batches(query)` reads its rows."""
        self._queries.append(query)
        self._tell((query,))

    def close_input(self) -> None:
        """No more queries: the process ends after the last one."""
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()

    def _tell(self, message: tuple[str]) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):  # it died: `batches` says why
            send(self.process.stdin, message)

    def _read_errors(self) -> None:
        assert self.process.stderr is not None
        with contextlib.suppress(ValueError, OSError):
            self._errors.append(self.process.stderr.read())

    def batches(self, query: str) -> Iterator[Any]:
        import pyarrow as pa

        _next_query(self._queries, query)
        try:
            yield from pa.ipc.open_stream(self.process.stdout)
        except (pa.ArrowException, OSError, ValueError):
            self._raise_failure()
            raise

    def finish(self) -> None:
        """QueryFailed if the child did not run every query to its end."""
        self._raise_failure()

    def _raise_failure(self) -> None:
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            return  # still streaming: the caller's error stands
        if code:
            self._stderr.join(timeout=5)
            lines = b"".join(self._errors).decode("utf-8", "replace").strip().splitlines()
            raise QueryFailed(lines[-1] if lines else f"DuckDB's process stopped ({code})")

    def interrupt(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()

    def close(self) -> None:
        """Stop the process if it still runs and close its pipes (again: nothing to do)."""
        self.interrupt()
        self.process.wait()
        self._stderr.join(timeout=5)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def child_main() -> None:
    """The DuckDB process: (spill directory,) then (query,) frames (marshal) on stdin; each
    query's rows as an Arrow IPC stream on stdout, in order; on failure the first line of the
    error, as the last line on stderr, and exit code 3."""
    output = os.fdopen(os.dup(1), "wb")  # the streams own fd 1; stray prints go to stderr
    os.dup2(2, 1)
    os.nice(CHILD_NICENESS)  # before DuckDB starts its threads: they inherit it
    try:
        import duckdb  # noqa: F401 (loaded while the importing process reads the headers)
        import pyarrow as pa

        config = receive(sys.stdin.buffer)
        if config is None:
            return  # the import stopped before it had queries to give
        db = _connect(config[0])
        while (message := receive(sys.stdin.buffer)) is not None:
            reader = db.sql(message[0]).to_arrow_reader(FETCH_ROWS)
            with pa.ipc.new_stream(output, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
            output.flush()
    except (BrokenPipeError, KeyboardInterrupt):
        os._exit(1)  # the importing process is gone or stopping: nobody to tell
    except Exception as error:  # DuckDB's (or Arrow's carrying DuckDB's): told, not printed
        sys.stderr.write(_first_line(error) + "\n")
        sys.stderr.flush()
        os._exit(3)
