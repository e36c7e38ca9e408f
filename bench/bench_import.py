"""DTSEN import at city scale: Kota Bekasi's 2,6 million people into SQLite, end to end.

`python -m bench.bench_import [--rows 2600000]` generates the synthetic extract once (cached in
bench/out/, with 0.1 % bad rows of every kind), then measures in the same run:
(a) `import_dtsen` end to end (CSV parse, validation, HMAC, staging load, dedupe, index, swap),
    first into an empty table, then again over the full one (the quarterly re-import);
(b) a naive baseline on a subset: per row, parse and validate with domain.nik/domain.dates, hash
    with domain.pii, `session.add(DtsenRecord(...))` and `await session.commit()` on an async
    SQLModel session, the way one would write it without thinking about bulk loads;
(c) the ceiling: plain sqlite3 executemany of rows already parsed and hashed (held in memory)
    into an unindexed table shaped like the import's, then its index (and the same rows written
    the way the import writes them);
(d) `DtsenRepository.find` latency over 10,000 random NIKs (p50/p99), and peak RSS;
(e) where PostgreSQL is installed, `import_dtsen` of 500,000 rows into a throwaway local cluster
    (COPY into the staging table, indexes, swap; the cluster runs with fsync off).
Figures go to the terminal and to bench/out/import.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import logging
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from bench._common import BENCH_PII_SECRET, OUT_DIR, percentile
from bot.sample_dtsen import write_sample
from domain.dates import InvalidDate, parse_date
from domain.nik import InvalidNik, parse_nik
from domain.pii import digest_key, identifier_digest
from storage.dtsen import ImportSummary, import_dtsen
from storage.dtsen.records import DtsenRepository
from storage.engine import Database
from storage.models import DtsenRecord
from storage.opening import open_database

SECRET = BENCH_PII_SECRET.encode()
TODAY = date(2026, 11, 25)
SEED = 20261125
# Bumped when bot.sample_dtsen changes what it writes, so a stale cached sample is not reused.
SAMPLE_VERSION = 2
GENDERS = {"L": "L", "P": "P"}


def sample_path(rows: int, bad_rows: int) -> Path:
    """The cached sample for these parameters, generated on first use."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"dtsen-v{SAMPLE_VERSION}-{rows}-{bad_rows}-{SEED}.csv"
    if not path.exists():
        started = time.perf_counter()
        partial = path.with_suffix(".partial")
        write_sample(partial, rows=rows, seed=SEED, bad_rows=bad_rows)
        partial.rename(path)
        print(f"generated {path.name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return path


class MemorySampler:
    """Largest resident set (VmRSS) of this process and of its children while running.

    getrusage's ru_maxrss is no use here: it counts the parent's pages a child shares between
    fork and exec, and the sample generated earlier in this process.
    """

    def __init__(self) -> None:
        self.own_mb = 0.0
        self.child_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.05):
            self.own_mb = max(self.own_mb, _rss_mb(me))
            for stat in Path("/proc").glob("[0-9]*/stat"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == me:
                        self.child_mb = max(self.child_mb, _rss_mb(int(stat.parent.name)))


def _rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fresh_database(directory: Path, name: str) -> contextlib.AbstractAsyncContextManager[Database]:
    """A migrated SQLite file, open for the block."""
    return open_database(f"sqlite+aiosqlite:///{directory / name}")


class _Phases(logging.Handler):
    """Keeps the import's own log line on where the time went."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        if "phases" in record.getMessage():
            self.last = record.getMessage().removeprefix("DTSEN import phases: ")


PHASES = _Phases()
logging.getLogger("storage.dtsen").addHandler(PHASES)
logging.getLogger("storage.dtsen").setLevel(logging.INFO)


async def measure_import(database: Database, source: Path) -> ImportSummary:
    """(a) One import_dtsen run, progress bar on a terminal."""
    summary = await import_dtsen(
        database, source, secret=SECRET, today=TODAY, progress=sys.stderr.isatty(), actor="bench"
    )
    print(f"    {PHASES.last}", file=sys.stderr)
    return summary


async def measure_naive(database: Database, source: Path, rows: int) -> float:
    """(b) Rows/s of the per-row ORM way, validation and hashing included."""
    started = time.perf_counter()
    done = 0
    with source.open(newline="", encoding="utf-8") as handle:
        for row in islice(csv.DictReader(handle), rows):
            try:
                nik = parse_nik(row["nik"], today=TODAY)
                born = parse_date(row["tanggal_lahir"], today=TODAY)
            except (InvalidNik, InvalidDate):
                continue
            desil = int(row["desil"])
            if not 1 <= desil <= 10 or row["jenis_kelamin"] not in GENDERS:
                continue
            digest = identifier_digest(nik.digits, SECRET)
            record = DtsenRecord(
                nik_hash=digest,
                nik_key=digest_key(digest),
                nama=row["nama"].strip(),
                tanggal_lahir=born,
                jenis_kelamin=row["jenis_kelamin"],
                kode_wilayah=row["kode_wilayah"].replace(".", ""),
                desil=desil,
            )
            async with database.write() as session:
                session.add(record)
                try:
                    await session.commit()
                except IntegrityError:  # a duplicate NIK: the first one stays
                    continue
            done += 1
    return done / (time.perf_counter() - started)


def measure_ceiling(db_path: str, source: Path, rows: int) -> dict[str, float]:
    """(c) The write alone: ready rows (parsed and hashed beforehand, in memory) into an
    unindexed table shaped like the import's, then its index. Once one row a statement (plain
    executemany), once as the import writes them (`sqlite_write`, rows batched per statement).
    """
    from storage.dtsen.contract import NIK_INDEX, STAGING_TABLE
    from storage.dtsen.csv_source import CsvLayout
    from storage.dtsen.importer import csv_chunks
    from storage.dtsen.sqlite_load import INSERT_ONE, sqlite_write
    from storage.dtsen.validate import Validator

    layout = CsvLayout.read(source, {})
    validator = Validator(layout.columns, secret=SECRET, today=TODAY)
    ready = []
    for parsed, _position in csv_chunks(source, layout, validator, 25_000):
        ready.extend(parsed.rows)
        if len(ready) >= rows:
            break
    del ready[rows:]
    connection = sqlite3.connect(db_path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    ddl = connection.execute(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'dtsen_record'"
    ).fetchone()[0]
    index = connection.execute(
        "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?", (NIK_INDEX,)
    ).fetchone()[0]
    figures: dict[str, float] = {"rows": len(ready)}
    for name in ("one_row_a_statement", "as_the_import"):
        connection.execute(ddl.replace("dtsen_record", STAGING_TABLE, 1))
        started = time.perf_counter()
        for start in range(0, len(ready), 25_000):
            chunk = ready[start : start + 25_000]
            if name == "as_the_import":
                sqlite_write(connection, chunk)
            else:
                connection.execute("BEGIN")
                connection.executemany(INSERT_ONE, chunk)
                connection.execute("COMMIT")
        loaded = time.perf_counter()
        connection.execute(
            index.replace(NIK_INDEX, "ix_ceiling").replace("dtsen_record", STAGING_TABLE)
        )
        indexed = time.perf_counter()
        connection.execute(f"DROP TABLE {STAGING_TABLE}")
        figures[f"{name}_rows_per_s"] = len(ready) / (loaded - started)
        figures[f"{name}_with_index_rows_per_s"] = len(ready) / (indexed - started)
    connection.close()
    return figures


def random_niks(source: Path, count: int) -> list[str]:
    """`count` NIKs of valid rows, spread over the whole file."""
    rng = random.Random(SEED)
    chosen: list[str] = []
    seen = 0
    with source.open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            nik = line[:16]
            if not nik.isdigit() or line[16] != ",":
                continue
            seen += 1
            # Reservoir sampling: one pass, `count` NIKs in memory.
            if len(chosen) < count:
                chosen.append(nik)
            elif (slot := rng.randrange(seen)) < count:
                chosen[slot] = nik
    return chosen


async def measure_lookups(database: Database, niks: list[str]) -> dict[str, float]:
    """(d) find() latency, one awaited call at a time, as a handler makes it."""
    repo = DtsenRepository(database, SECRET)
    for nik in niks[:100]:  # warm the pool and the page cache
        await repo.find(nik=nik)
    times: list[float] = []
    found = 0
    for nik in niks:
        started = time.perf_counter()
        person = await repo.find(nik=nik)
        times.append(time.perf_counter() - started)
        found += person is not None
    times.sort()
    return {
        "lookups": len(niks),
        "found": found,
        "p50_ms": percentile(times, 0.50) * 1000,
        "p99_ms": percentile(times, 0.99) * 1000,
        "mean_ms": statistics.fmean(times) * 1000,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    bad_rows = int(args.rows * args.bad_share)
    source = sample_path(args.rows, bad_rows)
    results: dict[str, Any] = {
        "rows": args.rows,
        "bad_rows": bad_rows,
        "file_mb": source.stat().st_size / 1e6,
    }
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        directory = Path(tmp)
        async with fresh_database(directory, "import.db") as database:
            first = await measure_import(database, source)
            print(f"(a) into the empty table: {first.describe()}", file=sys.stderr)
            results["import_empty"] = _summary(first)
            with MemorySampler() as memory:
                again = await measure_import(database, source)
            print(f"(a) over the full table: {again.describe()}", file=sys.stderr)
            results["import_replace"] = _summary(again)
            # The machine is shared: more re-imports, each with the load average it ran under.
            results["reimports"] = [_summary(again)]
            for _ in range(args.repeat - 1):
                more = await measure_import(database, source)
                print(f"(a) over the full table again: {more.describe()}", file=sys.stderr)
                results["reimports"].append(_summary(more))
            results["peak_rss_mb"] = memory.own_mb
            results["peak_rss_parser_mb"] = memory.child_mb
            results["db_mb"] = (directory / "import.db").stat().st_size / 1e6
            results["lookup"] = await measure_lookups(database, random_niks(source, args.lookups))

        async with fresh_database(directory, "naive.db") as naive_db:
            results["naive_rows"] = args.naive_rows
            results["naive_rows_per_s"] = await measure_naive(naive_db, source, args.naive_rows)
        results["ceiling"] = measure_ceiling(
            str(directory / "naive.db"), source, min(args.ceiling_rows, args.rows)
        )
    if args.pg_rows:
        results["postgres"] = await measure_postgres(args.pg_rows)
    results["ratio_vs_naive"] = (
        results["import_replace"]["rows_per_s"] / results["naive_rows_per_s"]
    )
    results["load_average_at_end"] = os.getloadavg()
    return results


async def measure_postgres(rows: int) -> dict[str, Any] | None:
    """(e) import_dtsen into PostgreSQL, twice (into the empty table, then the re-import)."""
    from testkit.postgres import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        print("(e) PostgreSQL is not installed: skipped", file=sys.stderr)
        return None
    source = sample_path(rows, int(rows * 0.001))
    server = PostgresServer(bindir)
    server.start()
    try:
        async with open_database(server.url(await server.create_database())) as database:
            first = await measure_import(database, source)
            print(f"(e) PostgreSQL, into the empty table: {first.describe()}", file=sys.stderr)
            again = await measure_import(database, source)
            print(f"(e) PostgreSQL, over the full table: {again.describe()}", file=sys.stderr)
    finally:
        server.stop()
    return {"import_empty": _summary(first), "import_replace": _summary(again)}


def _summary(summary: ImportSummary) -> dict[str, Any]:
    return {
        "load_average_1min": os.getloadavg()[0],
        "phases": PHASES.last,
        "seconds": summary.seconds,
        "rows_per_s": summary.rows_per_second,
        "loaded": summary.rows_loaded,
        "skipped": summary.rows_skipped,
        "skipped_by_reason": {str(k): v for k, v in summary.skipped_by_reason.items()},
    }


def show(results: dict[str, Any]) -> None:
    """A plain table of the figures."""
    rows = results["rows"]
    lines = [
        (f"sample: {rows:,} rows, {results['bad_rows']:,} bad", f"{results['file_mb']:.0f} MB"),
        (
            "(a) import into the empty table",
            f"{results['import_empty']['seconds']:.1f} s, "
            f"{results['import_empty']['rows_per_s']:,.0f} rows/s",
        ),
        (
            "(a) re-import over the full table",
            f"{results['import_replace']['seconds']:.1f} s, "
            f"{results['import_replace']['rows_per_s']:,.0f} rows/s",
        ),
        ("    phases", results["import_replace"]["phases"]),
        ("    skipped", json.dumps(results["import_replace"]["skipped_by_reason"])),
        (
            f"    all {len(results['reimports'])} re-imports (load average)",
            ", ".join(
                f"{run['rows_per_s']:,.0f} ({run['load_average_1min']:.1f})"
                for run in results["reimports"]
            ),
        ),
        (
            "    best re-import",
            f"{max(run['rows_per_s'] for run in results['reimports']):,.0f} rows/s",
        ),
        (
            f"(b) naive ORM, commit per row ({results['naive_rows']:,} rows)",
            f"{results['naive_rows_per_s']:,.0f} rows/s -> import is "
            f"{results['ratio_vs_naive']:,.0f}x faster",
        ),
        (
            f"(c) ceiling: executemany of {results['ceiling']['rows']:,} ready rows",
            f"{results['ceiling']['one_row_a_statement_rows_per_s']:,.0f} rows/s, "
            f"{results['ceiling']['one_row_a_statement_with_index_rows_per_s']:,.0f} "
            "with the index",
        ),
        (
            "    the same rows as the import writes them (batched statements)",
            f"{results['ceiling']['as_the_import_rows_per_s']:,.0f} rows/s, "
            f"{results['ceiling']['as_the_import_with_index_rows_per_s']:,.0f} with the index",
        ),
        (
            f"(d) find() over {results['lookup']['lookups']:,} random NIKs",
            f"p50 {results['lookup']['p50_ms']:.3f} ms, p99 {results['lookup']['p99_ms']:.3f} ms "
            f"({results['lookup']['found']:,} found)",
        ),
        (
            "peak RSS during the re-import: importing process / a parser process",
            f"{results['peak_rss_mb']:.0f} MB / {results['peak_rss_parser_mb']:.0f} MB",
        ),
        ("database file after the import", f"{results['db_mb']:.0f} MB"),
        (
            "load average at the end (1, 5, 15 min; 2 cores)",
            ", ".join(f"{value:.1f}" for value in results["load_average_at_end"]),
        ),
    ]
    if results.get("postgres"):
        pg = results["postgres"]["import_replace"]
        lines.append(
            (
                f"(e) PostgreSQL re-import of {pg['loaded'] + pg['skipped']:,} rows (COPY)",
                f"{pg['seconds']:.1f} s, {pg['rows_per_s']:,.0f} rows/s",
            )
        )
        lines.append(("    phases", pg["phases"]))
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"{label:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_600_000)
    parser.add_argument("--bad-share", type=float, default=0.001, help="bad rows in the sample")
    parser.add_argument("--naive-rows", type=int, default=5_000)
    parser.add_argument("--ceiling-rows", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=1, help="re-imports to run (all shown)")
    parser.add_argument("--pg-rows", type=int, default=500_000, help="0 skips PostgreSQL")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    show(results)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "import.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
