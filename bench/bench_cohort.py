"""Last year's cohort: `import_cohort` of 12.000 participants (the target is < 10 s).

`python -m bench.bench_cohort [--rows 12000] [--quick]` seeds a DTSEN table of 2× the cohort
with synthetic people, writes a cohort CSV (most still eligible, a few desil too high, a few
not in DTSEN, a few duplicates), and times `usecases.cohort.import_cohort` end to end on a fresh
SQLite database: reading the file, the batched DTSEN look-ups, the assessment of every row,
and the one transaction that checks and inserts them. Figures go to the terminal and to
bench/out/cohort.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench._common import BENCH_PII_SECRET, OUT_DIR
from domain.eligibility import Rules
from storage.opening import open_database
from testkit.factories import make_people
from testkit.fakes import row_of, seed_dtsen
from usecases.cohort import import_cohort

SECRET = BENCH_PII_SECRET.encode()
NOW = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
RULES = Rules(region_code="3275", max_desil=5, min_age=18, max_age=65)


def cohort_csv(people: list, path: Path) -> None:  # type: ignore[type-arg]
    """The cohort file: every 50th not in DTSEN, every 20th desil too high, 10 duplicated."""
    lines = ["NIK,Nama,No KPJ,No HP,Tanggal Lahir"]
    for number, person in enumerate(people):
        phone = "0" + person.phone.removeprefix("+62")
        lines.append(
            f"{person.nik},{person.name.upper()},{25_000_000_000 + number},{phone},"
            f"{person.birth_date:%d-%m-%Y}"
        )
    lines += lines[1:11]
    path.write_text("\n".join(lines) + "\n")


async def measure(rows: int, directory: Path) -> dict[str, float | int]:
    """Seed DTSEN, then time one import of `rows` participants."""
    people = make_people(rows * 2, seed=2025)
    cohort = people[:rows]
    source = directory / "cohort.csv"
    cohort_csv(cohort, source)
    dtsen = [
        row_of(person, desil=8 if number % 20 == 0 else person.desil)
        for number, person in enumerate(people)
        if number % 50 != 1
    ]
    async with open_database(f"sqlite+aiosqlite:///{directory / 'cohort.db'}") as database:
        await seed_dtsen(database, SECRET, dtsen)
        started, cpu_started = time.perf_counter(), time.process_time()
        report = await import_cohort(
            database,
            source,
            filename=source.name,
            column_map={},
            year=2025,
            secret=SECRET,
            rules=RULES,
            now=NOW,
            code_prefix="BKS",
        )
        seconds = time.perf_counter() - started
        # CPU of every thread of the process (aiosqlite's too): the figure a busy shared
        # machine does not inflate, beside the wall time.
        cpu = time.process_time() - cpu_started
    return {
        "rows": report.rows,
        "renewing": report.renewing,
        "not_eligible": report.not_eligible,
        "skipped": report.skipped,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "load_average": round(os.getloadavg()[0], 1),
        "rows_per_second": round(report.rows / seconds),
    }


def main() -> None:
    """Run and print the figure."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_cohort", description=__doc__)
    parser.add_argument("--rows", type=int, default=12_000)
    parser.add_argument("--quick", action="store_true", help="2.000 rows")
    args = parser.parse_args()
    rows = 2_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory() as directory:
        result = asyncio.run(measure(rows, Path(directory)))
    print(
        f"import-cohort, {result['rows']:,} rows (SQLite): {result['seconds']} s wall, "
        f"{result['cpu_seconds']} s CPU, {result['rows_per_second']:,} rows/s (load average "
        f"{result['load_average']}); {result['renewing']:,} awaiting renewal, "
        f"{result['not_eligible']:,} no longer eligible, {result['skipped']:,} not imported "
        "(target < 10 s for 12.000)"
    )
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "cohort.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
