"""Rows of a DTSEN V3 pair import from the columns DuckDB checked: each NIK's keyed hash, then
one tuple a person in COLUMNS_V3 order; and the writer processes that do this beside the
importing process on SQLite. Imports neither DuckDB, Arrow, SQLAlchemy nor rich (a writer
process starts in ~0.3 s and stays small).
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Any

import numpy as np

from domain.pii import redact_text
from storage.dtsen.contract import COLUMNS_V3, DtsenImportError
from storage.dtsen.parsers import receive, send
from storage.dtsen.sqlite_load import sqlite_connect, sqlite_write
from storage.dtsen.validate import KeyedHash

WORKER_CODE = "import storage.dtsen.v3_rows as m; m.worker_main()"


def build_rows(columns: list[list[Any]], hasher: KeyedHash) -> list[tuple[Any, ...]]:
    """COLUMNS_V3 rows from the columns line, NIK, nama ... lapangan_usaha of loadable persons.

    The HMAC is inlined as in `Validator.chunks` (a method call a row is measurable here)."""
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
    return list(zip(columns[0], digests, keys, *columns[2:], strict=True))


def worker_main() -> None:
    """A writer process: hashes the persons it is given and writes them, turns kept in order.

    Messages (marshal frames) on stdin: the config (database path, secret), then
    ("block", seq, columns) to build and ("write", seq) once every earlier block is in the
    staging table. Answers on stdout: ("parsed", seq), ("written", seq, rows) or ("error", text).
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
        built: dict[int, list[tuple[Any, ...]]] = {}
        while (message := receive(commands)) is not None:
            if message[0] == "block":
                _, seq, columns = message
                built[seq] = build_rows(columns, hasher)
                send(output, ("parsed", seq))
            else:
                seq = message[1]
                rows = built.pop(seq)
                sqlite_write(connection, rows, COLUMNS_V3)
                send(output, ("written", seq, len(rows)))
        connection.close()
    except DtsenImportError as error:
        send(output, ("error", str(error)))
    except (BrokenPipeError, KeyboardInterrupt):
        os._exit(1)  # the importing process is gone or stopping: nobody to tell
    except Exception as error:  # reported, not printed: the parent decides what to show
        send(output, ("error", redact_text(f"writer process: {type(error).__name__}: {error}")))
