"""The two-file DTSEN extract ("V3": persons and families, joined on the KK number): DuckDB
(v3_stream; for big files in a process of its own) streams the family file, then the persons
file, each normalised and checked in SQL (v3_sql), as Arrow batches in file order. This process
indexes the families in numpy (v3_family), then numbers each persons batch by its order, makes
its NIKs' keyed hashes, joins it to the families and packs it (v3_pack); writer processes
(v3_rows) make the rows and write them on SQLite.

Only what a rule or a reviewer uses leaves DuckDB (see COLUMNS_V3); the other ~90 variables of
the two files are never read past the CSV scanner.
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import sys
import tempfile
import threading
from collections.abc import Generator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from domain.eligibility import GENDER_SPELLINGS, normalize_gender
from storage.dtsen.contract import BadRow, Cancelled, DtsenImportError, SkipReason
from storage.dtsen.importer import ImportJob
from storage.dtsen.parsers import ParserProcesses
from storage.dtsen.sqlite_load import SqliteLoader
from storage.dtsen.v3_family import (
    MIN_MATCHED_SHARE,
    Families,
    check_head,
    family_rows,
    read_families,
    return_freed_memory,
)
from storage.dtsen.v3_files import Header, check_headers, read_codebook
from storage.dtsen.v3_pack import NikFields, hash_batch, join_batch
from storage.dtsen.v3_rows import WORKER_CODE, Chunk, build_rows, read_ahead, write_in_turns
from storage.dtsen.v3_sql import WORK_COLUMNS, persons_pass, scan
from storage.dtsen.v3_sql import families as families_sql
from storage.dtsen.v3_sql import persons as persons_sql
from storage.dtsen.v3_stream import ChildQueries, LocalQueries, QueryFailed
from storage.dtsen.validate import KeyedHash, Parsed

# Bytes the CSV scanner reads at a time (DuckDB: 32 MB): a little slower, less memory. It goes
# with v3_stream.MEMORY_PER_THREAD_MB: each scanner thread pins a few blocks of it.
CSV_BUFFER = 4 << 20
# Seconds a thread holds the GIL when another waits for it, while a pair loads (Python: 5 ms):
# the thread reading DuckDB's batches waits for it at every refill of its pipe.
SWITCH_INTERVAL = 0.001
# Rows per chunk handed to a writer process, and per write (one transaction each, ~40 ms of the
# write lock). Per-chunk costs in all three processes: 2,6 M persons staged in 6,9-7,0 s at
# 16.384 against 7,2-7,4 s at 8.192 and 7,8-7,9 s at 4.096 (32.768: 6,8-6,9 s, holding the
# lock twice as long).
CHUNK_ROWS = 16_384
# Persons on which the files' match and the codebook are judged before the whole file is read.
HEAD_ROWS = 10_000
# Writer processes for a big pair on SQLite (~50 MB each): one makes the rows and writes them
# (~5 s of CPU for Kota Bekasi) while DuckDB's process reads and this one hashes and packs; a
# second would take the peak RSS past 500 MB, and the three processes already keep both cores
# ~95 % busy.
WRITERS = 1
# Chunks a writer process may hold at once: the next one is received while it writes one.
AHEAD = 2


class PairReader:
    """The two files read by DuckDB (memory capped, spilling to a temporary directory; in a
    process of its own with ChildQueries): the families first, then the persons checked against
    them and joined to them, as loadable and skipped rows."""

    def __init__(self, persons: Path, families: Path, *, codebook: Path | None, secret: bytes,
                 today: date, region_code: str, queries: LocalQueries | ChildQueries
                 ) -> None:  # fmt: skip
        self.persons, self.families = persons, families
        self.p = Header.read(persons, "persons")
        self.f = Header.read(families, "families")
        check_headers(persons, self.p, families, self.f)
        self.queries = queries
        self._dir = tempfile.mkdtemp(prefix="rentan-dtsen-")
        try:
            queries.start(str(Path(self._dir) / "spill"))
            # DuckDB reads the family file while the codebook and the NIK tables are made.
            self.families_query = families_sql(scan(families, self.f, CSV_BUFFER), self.f)
            queries.run(self.families_query)
            self.book = read_codebook(codebook, self.p, self.f) if codebook is not None else {}
            self.hasher = KeyedHash(secret)
            self.today = today
            self.region_code = region_code.replace(".", "")
            self.nik_fields = NikFields(today)
            self.persons_query = persons_pass(
                persons_sql(scan(persons, self.p, CSV_BUFFER), self.p, self._genders()), today
            )
            queries.run(self.persons_query)
            queries.close_input()
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self._read: Families | None = None
        self.found = np.zeros(0, np.bool_)  # by family line: someone joined that family

    def close(self) -> None:
        self.queries.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def interrupt(self) -> None:
        self.queries.interrupt()

    def _genders(self) -> dict[str, str]:
        genders: dict[str, str] = dict(GENDER_SPELLINGS)
        for code, meaning in self.book.get("jenis_kelamin", {}).items():
            genders[code.casefold()] = normalize_gender(meaning) or ""
        return genders

    def chunks(self) -> Generator[Chunk, None, None]:
        """The families read, then one pass over the persons file, checked, in file order, a
        Chunk at a time (rows are built by `build_rows`). NIKs listed twice are left to
        `Duplicates`."""
        read = read_families(self.queries.batches(self.families_query), self.families,
                             self.region_code)  # fmt: skip
        self._read = read
        return_freed_memory()
        self.found = np.zeros(read.rows + 2, np.bool_)
        books = [self.book.get(name) for name in WORK_COLUMNS]
        # Arrow batches, not tuples: fetchmany made ~15 Python objects a row holding the GIL
        # (~3 µs a row, as much as the SQLite write). They come in file order, so the n-th
        # row is on line n + 1, read one step ahead on a thread of their own (see read_ahead).
        batches = read_ahead(self.queries.batches(self.persons_query))
        line = 2
        with contextlib.closing(batches):
            for whole in self._checked(batches, read):
                for at in range(0, whole.num_rows, CHUNK_ROWS):
                    part = whole.slice(at, CHUNK_ROWS)
                    hashed = hash_batch(part, line, self.nik_fields, self.hasher)
                    yield join_batch(hashed, read.index, books, self.today, self.found)
                    line += part.num_rows
        self.queries.finish()

    def _checked(self, batches: Iterator[Any], read: Families) -> Iterator[Any]:
        """`batches`, once the first HEAD_ROWS persons are checked (see `check_head`)."""
        head: list[Any] = []
        for batch in batches:
            if head is None:
                yield batch
                continue
            head.append(batch)
            if sum(b.num_rows for b in head) >= HEAD_ROWS:
                check_head(pa.Table.from_batches(head).slice(0, HEAD_ROWS), read, self.book,
                           self.persons, self.families)  # fmt: skip
                yield from head
                head = None  # type: ignore[assignment]
        if head:
            check_head(pa.Table.from_batches(head), read, self.book, self.persons,
                       self.families)  # fmt: skip
            yield from head

    def family_rows(self) -> list[BadRow]:
        """Skipped rows of the family file (see v3_family.family_rows)."""
        assert self._read is not None, "chunks() first"
        return family_rows(self._read, self.found)


class PairJob(ImportJob):
    """An import of the persons file and the family file together (same report, same swap)."""

    def __init__(self, *, families: Path, codebook: Path | None, region_code: str,
                 queries: LocalQueries | ChildQueries, **kwargs: Any) -> None:  # fmt: skip
        """`queries`: DuckDB (in this process, or a process of its own for a big pair on
        SQLite, then written by writer processes too); the job closes it."""
        super().__init__(**kwargs)
        self.families = families
        self.codebook = codebook
        self.region_code = region_code
        self.queries = queries
        self._reader: PairReader | None = None

    def run(self, *, max_bad_share: float, max_shrink_share: float | None, actor: str) -> None:
        try:
            super().run(max_bad_share=max_bad_share, max_shrink_share=max_shrink_share,
                        actor=actor)  # fmt: skip
        finally:
            self.queries.close()  # also when the pair never loaded (the lock was taken, say)

    def cancel(self) -> None:
        super().cancel()
        if self._reader is not None:
            self._reader.interrupt()

    def load(self) -> None:
        # Arrow's buffers from the system allocator while the pair loads: mimalloc (Arrow's
        # default) kept ~25 MB more of the freed batches (peak RSS 452 MB vs 426 MB here).
        pool = pa.default_memory_pool()
        pa.set_memory_pool(pa.system_memory_pool())
        # DuckDB's threads hand each batch over holding the GIL, which this process's hashing
        # holds; they stop ~STREAM_BUFFER ahead until they get it, after up to the switch
        # interval (5 ms by default).
        interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            self._load_pair()
        finally:
            sys.setswitchinterval(interval)
            pa.set_memory_pool(pool)

    def _load_pair(self) -> None:
        queries = self.queries
        writers: ParserProcesses | None = None
        try:
            if isinstance(queries, ChildQueries):  # a big pair on SQLite
                assert isinstance(self.loader, SqliteLoader)
                # The writers start (~0.3 s) while this one reads the headers and the codebook.
                writers = self._start_writers(self.loader.path)
            reader = PairReader(self.source, self.families, codebook=self.codebook,
                                secret=self.secret, today=self.today,
                                region_code=self.region_code, queries=queries)  # fmt: skip
        except BaseException:
            queries.close()
            raise
        self._reader = reader
        try:
            self.bar.phase(f"{self.source.name}, {self.families.name}: reading, joining, loading")
            # Closed before the reader: its thread must be out of DuckDB first.
            with contextlib.closing(reader.chunks()) as chunks:
                if writers is None:
                    self._write_beside(chunks)
                else:
                    self._write_in_processes(writers, chunks)
            self._account(Parsed([], reader.family_rows(), *_NO_ROWS), self.read, None)
        except (QueryFailed, pa.ArrowException) as error:
            if self._stop.is_set():
                raise Cancelled from None
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DtsenImportError(
                f"cannot read {self.source.name} and {self.families.name}: {first[:200]}"
            ) from None
        finally:
            self._reader = None
            reader.close()
        no_family = self.report.counts[SkipReason.NO_FAMILY]
        if self.read and no_family > MIN_MATCHED_SHARE * self.read:
            raise DtsenImportError(
                f"{self.source.name} and {self.families.name} do not belong together: "
                f"{no_family:,} of {self.read:,} persons have no family row: nothing imported, "
                "the previous table stays"
            )

    def _start_writers(self, path: str) -> ParserProcesses:
        self._parsers = ParserProcesses(WRITERS, (str(Path(path).resolve()),), code=WORKER_CODE)
        return self._parsers

    def _write_in_processes(self, writers: ParserProcesses, chunks: Iterator[Chunk]) -> None:
        """The writer processes make the rows of each chunk and write them, on another core than
        DuckDB and this thread (see `write_in_turns`); the rows never exist here."""

        def handed(chunk: Chunk) -> None:
            self.duplicates.add(chunk.niks, chunk.lines)
            self._account(Parsed([], chunk.bad, *_NO_ROWS), self.read, None)

        def written(rows: int) -> None:
            self.loaded += rows
            self.read += rows

        write_in_turns(writers, WRITERS * AHEAD, chunks, self._stop, handed, written)
        writers.close()
        self._parsers = None

    def _write_beside(self, chunks: Iterator[Chunk]) -> None:
        """Build each chunk's rows here and write them on a thread of its own while this one
        builds the next (sqlite3 and DuckDB release the GIL while they work)."""
        pending: queue.Queue[list[tuple[Any, ...]] | None] = queue.Queue(maxsize=1)
        failed: list[BaseException] = []

        def write() -> None:
            while (rows := pending.get()) is not None:
                if not failed:
                    try:
                        self.loader.write(rows)  # COLUMNS_V3 rows: the loader was made for them
                    except BaseException as error:
                        failed.append(error)

        writer = threading.Thread(target=write, name="dtsen-v3-writer", daemon=True)
        writer.start()
        try:
            for chunk in chunks:
                if failed:
                    break
                rows = build_rows(chunk.columns)
                pending.put(rows)
                self._account(Parsed(rows, chunk.bad, chunk.niks, chunk.lines), self.read, None)
        finally:
            pending.put(None)
            writer.join()
        if failed:
            raise failed[0]


_NO_ROWS = np.empty(0, np.int64), np.empty(0, np.int32)
