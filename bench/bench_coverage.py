"""import-coverage at programme scale: BPJS's member list of 12.000 rows (KPJ and "iuran s.d.")
against 12.000 enrolled workers, in CSV and XLSX (target < 10 s each, parse to commit).

    python -m bench.bench_coverage [--quick]

`--quick` runs 2.000 rows. Figures go to the terminal and to bench/out/coverage.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import date
from pathlib import Path

from openpyxl import Workbook

from bench._common import BENCH_PII_SECRET, OUT_DIR
from domain.lifecycle import Status
from storage.coverage import import_coverage
from storage.engine import Database
from storage.opening import open_database
from testkit.factories import make_person
from testkit.fakes import add_applications, make_application

ROWS = 12_000
TARGET_S = 10.0
TODAY = date(2026, 6, 10)
MONTHS = ("2026-03", "04/2026", "Mei 2026", "Jun-26")


async def seed(database: Database, rows: int) -> None:
    """`rows` enrolled workers with KPJ numbers 10000000000 + n."""
    secret = BENCH_PII_SECRET.encode()
    batch = []
    for number in range(rows):
        batch.append(
            make_application(
                make_person(number + 1),
                secret=secret,
                user_id=5_000_000 + number,
                code=f"BKS-B{number:06d}",
                status=Status.ENROLLED,
                kpj_number=f"{10_000_000_000 + number}",
            )
        )
        if len(batch) == 2_000:
            await add_applications(database, *batch)
            batch = []
    if batch:
        await add_applications(database, *batch)


def write_files(work: Path, rows: int) -> tuple[Path, Path]:
    """The same member list as CSV and as XLSX."""
    lines = [("KPJ", "Iuran s.d.")]
    lines += [(f"{10_000_000_000 + n}", MONTHS[n % len(MONTHS)]) for n in range(rows)]
    csv_path = work / "anggota.csv"
    csv_path.write_text("\n".join(f"{kpj},{month}" for kpj, month in lines) + "\n")
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    for line in lines:
        sheet.append(list(line))
    xlsx_path = work / "anggota.xlsx"
    book.save(xlsx_path)
    return csv_path, xlsx_path


async def run(rows: int) -> dict[str, float]:
    """Seed, then time one import of each file."""
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        async with open_database(f"sqlite+aiosqlite:///{work / 'bench.db'}") as database:
            await seed(database, rows)
            for path in write_files(work, rows):
                start, cpu = time.perf_counter(), time.process_time()
                report = await import_coverage(database, path, filename=path.name, today=TODAY)
                kind = path.suffix.removeprefix(".")
                figures[f"{kind}_s"] = time.perf_counter() - start
                figures[f"{kind}_cpu_s"] = time.process_time() - cpu
                assert report.applied == rows, report.problems[:3]
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run and print the figures; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_coverage", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2.000 rows instead of 12.000")
    args = parser.parse_args(argv)
    rows = 2_000 if args.quick else ROWS
    figures = asyncio.run(run(rows))
    print(f"import-coverage, {rows:,} rows against {rows:,} enrolled workers (SQLite)")
    missed = False
    for kind in ("csv", "xlsx"):
        seconds = figures[f"{kind}_s"]
        verdict = "PASS" if seconds < TARGET_S else "MISS"
        missed = missed or seconds >= TARGET_S
        print(
            f"  {kind.upper():<5} {seconds:6.2f} s wall, {figures[f'{kind}_cpu_s']:6.2f} s CPU "
            f"(< {TARGET_S:g} s) {verdict}"
        )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "coverage.json").write_text(json.dumps({"rows": rows, **figures}, indent=2))
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
