"""Staff-side queries at programme scale: statistics, the review queue, the BPJS export.

Seeds a migrated SQLite file with 200,000 synthetic applications (raw sqlite3 executemany, a few
seconds), then times, as the median of a few runs:
- `ReportRepository.statistics()` (target < 1 s),
- the reviewers' queue page (`ReviewRepository.queue()`: 10 pending by desil then submission)
  plus counts per status, for everyone and for one kecamatan (target < 1 s), with and without
  the expression index suggested for it,
- exporting 10,000 approved applications to CSV and to XLSX, database to file (target < 5 s),
- importing a BPJS KPJ file for those 10,000 (no target; reported for the lead).
Figures go to the terminal and to bench/out/review.json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench._common import BENCH_PII_SECRET, OUT_DIR
from config.catalogs import Catalogs
from domain.budget import Budget
from domain.exports import write_csv, write_xlsx
from domain.lifecycle import Status
from domain.pii import hash_identifier
from domain.regions import load_regions
from storage.engine import Database
from storage.enrollment import import_kpj
from storage.exports import ExportRepository
from storage.opening import open_database
from storage.reports import ReportRepository
from storage.review import ReviewRepository
from testkit.factories import FAMILY_NAMES, FEMALE_NAMES, MALE_NAMES, MOBILE_PREFIXES

ROWS = 200_000
APPROVED = 10_000
RUNS = 5
# How the 200,000 split, roughly as a programme looks a few weeks in; approved is exactly the
# export size.
SHARES = {
    Status.PENDING: 0.60,
    Status.NEEDS_FIX: 0.025,
    Status.WAITLISTED: 0.10,
    Status.REJECTED: 0.075,
    Status.INELIGIBLE: 0.10,
    Status.DRAFT: 0.04,
    Status.WITHDRAWN: 0.005,
    Status.CANCELLED: 0.005,
}
OCCUPATIONS = ("ojol", "sopir", "kuli_bangunan", "pedagang_kecil", "pemulung", "lainnya")
RELATIONS = ("pasangan", "anak", "orang_tua", "saudara")

# The reviewers' queue is `ReviewRepository.queue()` + `.counts()` (storage/review.py): pending
# by coalesce(dtsen_desil, 11), submitted_at, id, 10 a page. Two indexes are suggested for it:
# the first lets SQLite read the queue in order and stop after 10 rows instead of sorting every
# pending application (id, the rowid, is every SQLite index's implicit last column); the second
# answers one kecamatan's counts from the index alone. PostgreSQL can use both. The second is in
# the schema since migration 0002 (IF NOT EXISTS: creating it again failed this benchmark).
SUGGESTED_INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_application_queue_order "
    "ON application (status, coalesce(dtsen_desil, 11), submitted_at)",
    "CREATE INDEX IF NOT EXISTS ix_application_kecamatan_status "
    "ON application (kecamatan_code, status)",
)
# The expression index only matches a literal 11: `func.coalesce(..., 11)` binds 11 as a
# parameter, which SQLite cannot match, so the queue page also runs as this SQL, as it would be
# with `sa.literal_column("11")` in `storage.queue.priority()`.
QUEUE_LITERAL_SQL = """
SELECT id, code, dtsen_desil, kecamatan_code, submitted_at, status
FROM application
WHERE status = 'pending' {scope}
ORDER BY coalesce(dtsen_desil, 11), submitted_at, id
LIMIT 10
"""
# The default programme: Rp2 miliar, Rp16.800 a month, January to December 2026.
STATS_BUDGET = Budget(
    quota=10_000,
    budget_idr=2_000_000_000,
    monthly_premium_idr=16_800,
    start=date(2026, 1, 1),
    end=date(2026, 12, 1),
)
# A reviewer whose scope is one kecamatan.
SCOPE = ["327501"]

Timer = Callable[[], Awaitable[Any]]


def _statuses(rows: int, rng: random.Random) -> list[str]:
    statuses = [Status.APPROVED.value] * min(APPROVED, rows)
    for status, share in SHARES.items():
        statuses += [status.value] * int(rows * share)
    statuses += [Status.PENDING.value] * (rows - len(statuses))
    rng.shuffle(statuses)
    return statuses[:rows]


def seed(path: Path, rows: int) -> dict[str, str]:
    """Insert `rows` synthetic applications; returns NIK -> status of the approved ones."""
    rng = random.Random(20261125)
    secret = BENCH_PII_SECRET.encode()
    regions = load_regions()
    villages = [
        village.code
        for district in regions.kecamatan_of("3275")
        for village in regions.kelurahan_of(district.code)
    ]
    now = datetime.now(UTC).replace(tzinfo=None)
    approved: dict[str, str] = {}
    records = []
    for index, status in enumerate(_statuses(rows, rng)):
        village = rng.choice(villages)
        gender = rng.choice("LP")
        birth = date(1966, 1, 1) + timedelta(days=(index // 9_000) * 373 + rng.randrange(300))
        day = birth.day + (40 if gender == "P" else 0)
        # (birth date, serial) pairs never repeat, so NIKs are distinct.
        nik = (
            f"{village[:6]}{day:02d}{birth.month:02d}{birth.year % 100:02d}{index % 9_000 + 1:04d}"
        )
        given = rng.choice(MALE_NAMES if gender == "L" else FEMALE_NAMES)
        submitted = now - timedelta(seconds=rng.randrange(60 * 86_400))
        stamp = submitted.isoformat(sep=" ")
        if status == Status.APPROVED:
            approved[nik] = status
        records.append(
            (
                None if status == Status.DRAFT else f"BKS-{index:06d}",
                800_000_000 + index,
                800_000_000 + index,
                status,
                0,
                nik,
                hash_identifier(nik, secret),
                f"{given} {rng.choice(FAMILY_NAMES)}",
                birth.isoformat(),
                gender,
                f"+62{rng.choice(MOBILE_PREFIXES)}{rng.randrange(10**8):08d}",
                rng.choice(OCCUPATIONS),
                "Tukang parkir" if rng.random() < 0.05 else None,
                village[:6],
                village,
                f"Jl. Kenanga No. {rng.randrange(1, 200)}, RT 0{rng.randrange(1, 9)}",
                f"{rng.choice(FEMALE_NAMES)} {rng.choice(FAMILY_NAMES)}",
                rng.choice(RELATIONS),
                rng.choice((1, 1, 2, 2, 3, 3, 4, 5, None)),
                stamp,
                stamp,
                None if status == Status.DRAFT else stamp,
            )
        )
    connection = sqlite3.connect(path)
    with connection:
        connection.executemany(
            "INSERT INTO application (code, telegram_user_id, chat_id, status, return_to_summary,"
            " nik, nik_hash, nama, tanggal_lahir, jenis_kelamin, phone, occupation,"
            " occupation_other, kecamatan_code, kelurahan_code, alamat, heir_name, heir_relation,"
            " dtsen_desil, created_at, updated_at, submitted_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            records,
        )
    connection.execute("ANALYZE")
    connection.close()
    return approved


async def median_seconds(function: Timer, runs: int = RUNS) -> tuple[float, float]:
    """Median wall and process-CPU seconds of `runs` calls, after one warm-up call.

    CPU time (all threads: aiosqlite works in one) shows the cost when other processes compete
    for the cores and stretch the wall time.
    """
    await function()
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        await function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


async def measure(path: Path, approved: dict[str, str], work: Path) -> dict[str, float]:
    """Every timed operation on the seeded database."""
    async with open_database(f"sqlite+aiosqlite:///{path}", migrate=False) as database:
        return await measure_on(database, approved, work)


async def measure_on(database: Database, approved: dict[str, str], work: Path) -> dict[str, float]:
    """Every timed operation, on the open database."""
    reports = ReportRepository(database)
    exports = ExportRepository(database)
    review = ReviewRepository(database)
    bahasa = Catalogs().get("id")._
    figures: dict[str, float] = {}

    async def stats() -> None:
        await reports.statistics(budget=STATS_BUDGET)

    async def queue() -> None:
        page = await review.queue(limit=10)
        counts = await review.counts()
        assert len(page) == 10
        assert counts

    async def scoped_queue() -> None:
        page = await review.queue(limit=10, kecamatan=SCOPE)
        counts = await review.counts(kecamatan=SCOPE)
        assert len(page) == 10
        assert counts

    async def literal_queue(scope: list[str] | None) -> None:
        where = "AND kecamatan_code IN ('" + "', '".join(scope) + "')" if scope else ""
        async with database.read() as session:
            page = await session.execute(sa.text(QUEUE_LITERAL_SQL.format(scope=where)))
            assert len(page.all()) == 10
        assert await review.counts(kecamatan=scope)

    async def export_csv() -> None:
        rows = await exports.collect()
        assert write_csv(rows, work / "bpjs.csv", translate=bahasa) == len(approved)

    async def export_xlsx() -> None:
        rows = await exports.collect()
        assert write_xlsx(rows, work / "bpjs.xlsx", translate=bahasa) == len(approved)

    timed = {}
    timed["statistics_s"] = await median_seconds(stats)
    timed["queue_page_and_counts_s"] = await median_seconds(queue)
    timed["scoped_queue_page_and_counts_s"] = await median_seconds(scoped_queue)
    async with database.engine.begin() as connection:
        for statement in SUGGESTED_INDEXES:
            await connection.execute(sa.text(statement))
        await connection.execute(sa.text("ANALYZE"))
    timed["queue_page_and_counts_with_index_s"] = await median_seconds(queue)
    timed["scoped_queue_page_and_counts_with_index_s"] = await median_seconds(scoped_queue)
    timed["literal_queue_with_index_s"] = await median_seconds(lambda: literal_queue(None))
    timed["literal_scoped_queue_with_index_s"] = await median_seconds(lambda: literal_queue(SCOPE))
    timed["statistics_with_queue_index_s"] = await median_seconds(stats)
    timed["export_csv_10k_s"] = await median_seconds(export_csv, runs=3)
    timed["export_xlsx_10k_s"] = await median_seconds(export_xlsx, runs=3)
    for key, (wall, cpu) in timed.items():
        figures[key] = wall
        figures[key.removesuffix("_s") + "_cpu_s"] = cpu

    kpj_file = work / "kpj.csv"
    with kpj_file.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["NIK", "KPJ", "tgl_mulai"])
        for number, nik in enumerate(approved):
            writer.writerow([nik, f"{10_000_000_000 + number}", "01-12-2026"])
    start, cpu = time.perf_counter(), time.process_time()
    report = await import_kpj(
        database,
        kpj_file,
        filename=kpj_file.name,
        secret=BENCH_PII_SECRET.encode(),
        actor_id=None,
        today=date(2026, 11, 25),
    )
    figures["import_kpj_10k_s"] = time.perf_counter() - start
    figures["import_kpj_10k_cpu_s"] = time.process_time() - cpu
    assert report.applied == len(approved), report.problems[:3]
    return figures


TARGETS = {
    "statistics_s": ("statistics()", 1.0),
    "queue_page_and_counts_s": ("queue page + counts (ReviewRepository)", 1.0),
    "scoped_queue_page_and_counts_s": ("  same, one kecamatan", 1.0),
    "queue_page_and_counts_with_index_s": ("  same, with the suggested indexes", 1.0),
    "scoped_queue_page_and_counts_with_index_s": ("  same, one kecamatan, indexes", 1.0),
    "literal_queue_with_index_s": ("queue page + counts, literal 11, indexes", 1.0),
    "literal_scoped_queue_with_index_s": ("  same, one kecamatan", 1.0),
    "statistics_with_queue_index_s": ("statistics(), with the suggested indexes", 1.0),
    "export_csv_10k_s": ("export 10k approved -> CSV", 5.0),
    "export_xlsx_10k_s": ("export 10k approved -> XLSX", 5.0),
    "import_kpj_10k_s": ("import KPJ file, 10k rows (one run)", None),
}


def print_table(figures: dict[str, float], seed_seconds: float, rows: int) -> None:
    """One line per figure with its target and verdict (on the wall time)."""
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\nreview benchmark: {rows:,} applications seeded in {seed_seconds:.1f} s")
    print(f"load average {load} on {os.cpu_count()} cores (other work stretches wall times)")
    print(f"{'operation':<46} {'wall':>9} {'cpu':>9} {'target':>8}  verdict")
    for key, (label, target) in TARGETS.items():
        seconds = figures[key]
        cpu = figures[key.removesuffix("_s") + "_cpu_s"]
        verdict = "-" if target is None else ("PASS" if seconds < target else "MISS")
        shown_target = "-" if target is None else f"< {target:g} s"
        print(
            f"{label:<46} {seconds * 1000:>6.0f} ms {cpu * 1000:>6.0f} ms {shown_target:>8}  "
            f"{verdict}"
        )


async def run(rows: int) -> dict[str, Any]:
    """Seed a fresh database and measure it; the temporary files are removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="rentan-review-") as folder:
        work = Path(folder)
        path = work / "review.db"
        async with open_database(f"sqlite+aiosqlite:///{path}"):
            pass  # migrated: the seed writes with sqlite3 directly
        start = time.perf_counter()
        approved = await asyncio.to_thread(seed, path, rows)
        seed_seconds = time.perf_counter() - start
        figures = await measure(path, approved, work)
    print_table(figures, seed_seconds, rows)
    return {"rows": rows, "seed_s": seed_seconds, **figures}


def main(argv: list[str] | None = None) -> int:
    """Command line: `python -m bench.bench_review [--rows N]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_review", description=__doc__)
    parser.add_argument("--rows", type=int, default=ROWS, help="applications to seed")
    parser.add_argument("--quick", action="store_true", help="seed 50,000 instead")
    # Known arguments only: `python -m bench` may pass its own flags down to every module.
    args, _unknown = parser.parse_known_args(argv)
    if args.quick and args.rows == ROWS:
        args.rows = 50_000
    result = asyncio.run(run(args.rows))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "review.json").write_text(json.dumps(result, indent=2) + "\n")
    missed = [key for key, (_label, target) in TARGETS.items() if target and result[key] >= target]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
