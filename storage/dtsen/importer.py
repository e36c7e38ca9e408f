"""A DTSEN extract import: stream, validate, stage, swap atomically, or leave the table alone.

An import never touches the table the bot is serving until the very end: rows stream into an
unindexed staging table (SQLite: written by parser processes; PostgreSQL: COPY), bad rows are
skipped and reported, and one transaction drops the old table and renames the staging table into
its place, with the index on `nik_key` (built inside that transaction on SQLite, which cannot
rename an index; before it on PostgreSQL).
Readers see the old table or the new one, never a mix; a failed, cancelled or killed import
leaves the old table serving, and the next import drops what it left behind.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from storage.dtsen.contract import (
    COLUMNS,
    COLUMNS_V3,
    Cancelled,
    Columns,
    DtsenImportError,
    Loader,
    Record,
)
from storage.dtsen.csv_source import (
    CsvLayout,
    csv_blocks,
    csv_records,
    is_xlsx_file,
    read_block,
    refusal,
)
from storage.dtsen.parsers import ParserProcesses
from storage.dtsen.postgres_load import PostgresLoader
from storage.dtsen.report import Duplicates, ImportSummary, ProgressBar, Report
from storage.dtsen.sqlite_load import SqliteLoader
from storage.dtsen.validate import Parsed, Validator
from storage.spreadsheets import SpreadsheetError, cell_text, open_xlsx

if TYPE_CHECKING:
    from storage.engine import Database

log = logging.getLogger(__name__)

# Rows per chunk (one commit each): per-chunk costs vanish, memory stays flat (~10 MB a chunk).
CHUNK_ROWS = 25_000
# Parser processes take ~0.9 s to start (imports, NIK tables) and save ~15 µs a row (their
# numpy path, two cores): below ~60k rows (~7 MB) parsing in this process is as fast. 50k rows:
# 1.1-1.2 s here, 1.3-1.4 s with processes; 200k rows: 4.3-4.8 s here, 2.1-2.3 s with them.
PARALLEL_MIN_BYTES = 8_000_000

# Largest block handed to a parser process (a block is sized to CHUNK_ROWS average lines).
MAX_BLOCK_BYTES = 1 << 24


def csv_chunks(path: Path, layout: CsvLayout, validator: Validator, chunk_rows: int
               ) -> Iterator[tuple[Parsed, int]]:  # fmt: skip
    """Validated chunks of a whole CSV in this thread, with the byte position reached."""
    with path.open("rb") as handle:
        for offset, length, line in csv_blocks(path, layout, 1 << 22):
            text = read_block(handle, path, offset, length, line)
            records = csv_records(
                text,
                layout.delimiter,
                width=layout.columns.width,
                quoted=layout.quoted,
                first_line=line,
            )
            for parsed in validator.chunks(records, chunk_rows):
                yield parsed, offset + length


def xlsx_chunks(path: Path, column_map: Mapping[str, str], secret: bytes, today: date,
                chunk_rows: int) -> Iterator[tuple[Parsed, int, int | None]]:  # fmt: skip
    """Validated chunks of the first sheet of an XLSX, with the line reached and the sheet's
    declared size."""
    try:
        with open_xlsx(path) as sheet:
            columns = Columns.resolve(sheet.header, column_map)
            validator = Validator(columns, secret=secret, today=today)
            reached = [0]

            def records() -> Iterator[Record]:
                for line, values in sheet.rows:
                    reached[0] = line
                    yield line, [cell_text(value) for value in values]

            for parsed in validator.chunks(records(), chunk_rows):
                yield parsed, reached[0], sheet.declared_rows
    except SpreadsheetError as error:
        raise refusal(path, error) from None


class ImportJob:
    """One import, run start to finish on a worker thread; `cancel()` may come from any thread."""

    def __init__(
        self,
        *,
        loader: Loader,
        source: Path,
        secret: bytes,
        column_map: Mapping[str, str],
        today: date,
        parallel: bool | None,
        chunk_rows: int,
        report: Report,
        bar: ProgressBar,
        on_progress: Callable[[int], None] | None,
    ) -> None:
        self.loader = loader
        self.source = source
        self.secret = secret
        self.column_map = column_map
        self.today = today
        self.parallel = parallel
        self.chunk_rows = chunk_rows
        self.report = report
        self.bar = bar
        self.on_progress = on_progress
        self.duplicates = Duplicates()
        self.loaded = 0
        self.read = 0
        self._stop = threading.Event()
        self._parsers: ParserProcesses | None = None

    def cancel(self) -> None:
        self._stop.set()
        if self._parsers is not None:
            self._parsers.kill()
        self.loader.interrupt()

    def _account(self, parsed: Parsed, position: int, total: int | None) -> None:
        self.loaded += len(parsed.rows)
        self.read += len(parsed.rows) + len(parsed.bad)
        self.duplicates.add(parsed.niks, parsed.lines)
        self.report.add(parsed.bad)
        self.bar.update(rows=self.read, position=position, total=total)
        if self.on_progress is not None:
            self.on_progress(self.read)
        if self._stop.is_set():
            raise Cancelled

    def _check_shrink(self, max_shrink_share: float) -> None:
        """DtsenImportError when the new table would be more than `max_shrink_share` smaller
        than the one in service: a wrong or truncated file, most likely."""
        in_service = self.loader.rows_in_service()
        removed = in_service - self.loaded
        if removed > max_shrink_share * in_service:
            raise DtsenImportError(
                f"{self.source.name} would replace the {in_service:,} rows in service by "
                f"{self.loaded:,} ({removed / in_service:.1%} fewer, allowed "
                f"{max_shrink_share:.1%}): nothing imported, the previous table stays "
                "(--allow-shrink if the extract is meant to be that much smaller)"
            )

    def load(self) -> None:
        """Parse, validate and stage every row of the source."""
        if not self.source.is_file():
            raise DtsenImportError(f"cannot read {self.source}: no such file")
        if is_xlsx_file(self.source):
            # openpyxl (~20 µs a row) dominates; XLSX is parsed in this thread.
            for parsed, reached, total in xlsx_chunks(
                self.source, self.column_map, self.secret, self.today, self.chunk_rows
            ):
                self.loader.write(parsed.rows)
                self._account(parsed, reached, total)
            return
        layout = CsvLayout.read(self.source, self.column_map)
        size = self.source.stat().st_size
        try:
            self._load_csv(layout, size)
        except csv.Error as error:
            raise DtsenImportError(f"{self.source.name} is not valid CSV: {error}") from None
        except SpreadsheetError as error:
            raise refusal(self.source, error) from None

    def _load_csv(self, layout: CsvLayout, size: int) -> None:
        parallel = size >= PARALLEL_MIN_BYTES if self.parallel is None else self.parallel
        if parallel and isinstance(self.loader, SqliteLoader):
            # Two processes keep two cores busy: one writes while the other parses. With more
            # cores, more parsers help until the single SQLite writer is the bottleneck.
            self._load_in_processes(layout, size, max(2, min(os.cpu_count() or 2, 4)))
            return
        validator = Validator(layout.columns, secret=self.secret, today=self.today)
        for parsed, position in csv_chunks(self.source, layout, validator, self.chunk_rows):
            self.loader.write(parsed.rows)
            self._account(parsed, position, size)

    def _load_in_processes(self, layout: CsvLayout, size: int, processes: int) -> None:
        assert isinstance(self.loader, SqliteLoader)
        # Absolute paths: the processes must open the same files whatever their working directory.
        config = (str(self.source.resolve()), str(Path(self.loader.path).resolve()),
                  layout.columns.required, layout.delimiter, layout.quoted, self.secret,
                  self.today.toordinal())  # fmt: skip
        block_bytes = max(1 << 16, min(int(self.chunk_rows * layout.line_bytes), MAX_BLOCK_BYTES))
        blocks = enumerate(csv_blocks(self.source, layout, block_bytes))
        self._parsers = parsers = ParserProcesses(processes, config)
        if self._stop.is_set():  # cancelled while the processes started
            raise Cancelled
        owner: dict[int, int] = {}  # block -> process
        ends: dict[int, int] = {}  # block -> byte offset after it, for progress
        parsed: set[int] = set()
        next_write = 0
        writing = False

        def hand_out(number: int) -> None:
            block = next(blocks, None)
            if block is not None:
                seq, (offset, length, line) = block
                owner[seq] = number
                ends[seq] = offset + length
                parsers.tell(number, ("block", seq, offset, length, line))

        for number in range(processes):
            hand_out(number)
        while owner:
            number, message = parsers.next_message(self._stop)
            if message[0] == "parsed":
                parsed.add(message[1])
            else:
                _, seq, loaded, bad, niks, lines = message
                chunk = Parsed(
                    rows=[],
                    bad=bad,
                    niks=np.frombuffer(niks, dtype=np.int64),
                    lines=np.frombuffer(lines, dtype=np.int32),
                )
                self.loaded += loaded
                self.read += loaded
                del owner[seq]
                writing = False
                next_write = seq + 1
                hand_out(number)
                self._account(chunk, ends.pop(seq), size)
            if not writing and next_write in parsed:
                # Every earlier block is written: this one may append now.
                parsed.discard(next_write)
                writing = True
                parsers.tell(owner[next_write], ("write", next_write))
        parsers.close()
        self._parsers = None

    def run(self, *, max_bad_share: float, max_shrink_share: float | None, actor: str) -> None:
        """Load, check, report and swap; DtsenImportError leaves the old table in place."""
        started = time.perf_counter()
        try:
            self.loader.prepare()
            try:
                self.load()
            except Cancelled:
                raise asyncio.CancelledError from None
            staged = time.perf_counter()
            duplicates = self.duplicates.find()
            if duplicates:
                self.loader.remove([line for line, *_ in duplicates])
                self.loaded -= len(duplicates)
            self.report.finish(duplicates)
            skipped = self.read - self.loaded
            if self.read == 0:
                raise DtsenImportError(f"{self.source.name} has a header but no data rows")
            if skipped > max_bad_share * self.read:
                raise DtsenImportError(
                    f"{skipped:,} of {self.read:,} rows are bad ({skipped / self.read:.1%}, "
                    f"allowed {max_bad_share:.1%}): nothing imported, the previous table stays"
                    + (f"; see {self.report.path}" if self.report.path is not None else "")
                )
            if max_shrink_share is not None:
                self._check_shrink(max_shrink_share)
            self.bar.phase(f"{self.source.name}: indexing and swapping")
            checked = time.perf_counter()
            self.loader.swap(
                source_name=self.source.name, loaded=self.loaded, skipped=skipped, actor=actor
            )
            log.info(
                "DTSEN import phases: staged %d rows in %.1f s, checked in %.1f s, "
                "indexed and swapped in %.1f s",
                self.read,
                staged - started,
                checked - staged,
                time.perf_counter() - checked,
            )
        except sqlite3.OperationalError as error:
            if self._stop.is_set():
                raise asyncio.CancelledError from None  # interrupted on purpose
            raise DtsenImportError(f"database error: {error}") from None
        finally:
            self.bar.stop()
            if self._parsers is not None:
                self._parsers.kill()
                self._parsers.close()
            self.report.close()
            self.loader.discard()


def _big(source: Path) -> bool:
    """Whether a file is big enough for processes of its own (PARALLEL_MIN_BYTES)."""
    return source.is_file() and source.stat().st_size >= PARALLEL_MIN_BYTES


async def import_dtsen(
    database: Database,
    source: Path,
    *,
    secret: bytes,
    column_map: Mapping[str, str] | None = None,
    max_bad_share: float = 0.05,
    max_shrink_share: float | None = None,
    report_path: Path | None = None,
    today: date,
    progress: bool = False,
    actor: str = "cli",
    parallel: bool | None = None,
    chunk_rows: int = CHUNK_ROWS,
    on_progress: Callable[[int], None] | None = None,
    families: Path | None = None,
    codebook: Path | None = None,
    region_code: str = "3275",
) -> ImportSummary:
    """Replace the DTSEN table with the rows of `source` (CSV or XLSX), or leave it untouched.

    With `families`, `source` is the persons file of a two-file (V3) extract, joined to the
    family file on the KK number (storage/dtsen/v3.py), the codes decoded through `codebook`
    when given; domicile names resolve within `region_code`. `column_map` is for the one-file
    form only; for a pair on SQLite `parallel` hashes and writes in a writer process.

    Raises DtsenImportError when the file cannot be read, its header lacks a field, or more
    than `max_bad_share` of its rows are bad, or (when given) it would remove more than
    `max_shrink_share` of the rows in service. `parallel` parses a CSV in processes (default: for
    files over 8 MB on SQLite); `on_progress(rows_read)` is called per chunk, from the import's
    thread. Cancelling the task stops the import and keeps the old table.
    """
    started = time.perf_counter()
    columns = COLUMNS if families is None else COLUMNS_V3
    loader: Loader
    if database.dialect == "sqlite":
        path = database.engine.url.database
        if not path or path == ":memory:":
            raise DtsenImportError("the DTSEN import needs a database file, not :memory:")
        loader = SqliteLoader(path, columns)
    else:
        loader = PostgresLoader(database.engine, asyncio.get_running_loop(), columns)
    report = Report(report_path)
    job_class: Callable[..., ImportJob] = ImportJob
    if families is not None:
        from storage.dtsen.v3_stream import ChildQueries, LocalQueries

        # A big pair on SQLite: DuckDB's process starts now (~0.3 s), while this one loads the
        # pair's modules (Arrow, numpy: ~0.25 s) and reads the headers and the codebook.
        in_processes = isinstance(loader, SqliteLoader) and (
            parallel if parallel is not None else _big(source)
        )
        queries = ChildQueries() if in_processes else LocalQueries()
        try:
            from storage.dtsen.v3 import PairJob  # DuckDB loads only for a pair
        except BaseException:
            queries.close()
            raise
        job_class = functools.partial(
            PairJob, families=families, codebook=codebook, region_code=region_code,
            queries=queries,
        )  # fmt: skip
    job = job_class(
        loader=loader,
        source=source,
        secret=secret,
        column_map=dict(column_map or {}),
        today=today,
        parallel=parallel,
        chunk_rows=chunk_rows,
        report=report,
        bar=ProgressBar(progress, source.name),
        on_progress=on_progress,
    )
    task = asyncio.ensure_future(
        asyncio.to_thread(
            job.run, max_bad_share=max_bad_share, max_shrink_share=max_shrink_share, actor=actor
        )
    )
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        job.cancel()  # the thread stops at its next chunk and drops the staging table
        try:
            await task
        except BaseException:
            raise asyncio.CancelledError from None  # stopped before the swap: old table stays
        # The swap had committed before the interrupt reached the thread: the new table
        # serves, so this is a finished import, and saying otherwise would mislead.
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
    summary = ImportSummary(
        source_name=source.name,
        rows_loaded=job.loaded,
        rows_skipped=job.read - job.loaded,
        skipped_by_reason=dict(sorted(report.counts.items())),
        seconds=time.perf_counter() - started,
        report_path=report_path,
    )
    log.info("DTSEN import by %s: %s", actor, summary.describe())
    return summary
