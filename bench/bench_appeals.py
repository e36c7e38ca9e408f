"""/statistik with appeals at programme scale: 200,000 applications and 20,000 appeals.

Seeds a migrated SQLite file with bench_review's 200,000 synthetic applications and 20,000
appeals on distinct ones (open, some overdue; upheld; dismissed, with answer times), then
times, as the median of a few runs, what /statistik does before it sends its text:
`ReportRepository.statistics()` + `AppealRepository.statistics()` + `format_statistics()` with
the appeal section (target < 1 s), and the appeal figures alone. Figures go to the terminal and
to bench/out/appeals.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench._common import OUT_DIR
from bench.bench_review import STATS_BUDGET, median_seconds
from bench.bench_review import seed as seed_applications
from config.catalogs import Catalogs
from domain.appeals import add_working_days, appeal_section, ticket
from domain.regions import load_regions
from domain.reports import format_statistics
from storage.appeals import AppealRepository
from storage.opening import open_database
from storage.reports import ReportRepository

ROWS = 200_000
APPEALS = 20_000
TODAY = date(2026, 12, 7)
TARGET_S = 1.0


def seed_appeals(path: Path, count: int) -> None:
    """`count` appeals on distinct applications that are not drafts."""
    rng = random.Random(20261207)
    connection = sqlite3.connect(path)
    ids = [
        row[0] for row in connection.execute("SELECT id FROM application WHERE code IS NOT NULL")
    ]
    chosen = rng.sample(ids, min(count, len(ids)))
    records = []
    for appeal_id, application_id in enumerate(chosen, start=1):
        filed = datetime(2026, 10, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(95_000))
        deadline = add_working_days(filed.date(), 5)
        roll = rng.random()
        status = "open" if roll < 0.4 else ("dismissed" if roll < 0.75 else "upheld")
        answered = None
        if status != "open":
            answered = (filed + timedelta(hours=rng.randrange(1, 200))).replace(tzinfo=None)
        records.append(
            (
                appeal_id,
                ticket(appeal_id),
                application_id,
                "Mohon dicek lagi, data saya sudah benar sejak tahun lalu.",
                filed.replace(tzinfo=None).isoformat(sep=" "),
                deadline.isoformat(),
                status,
                None if answered is None else 900001,
                None if answered is None else answered.isoformat(sep=" "),
                None if status != "dismissed" else "Data DTSEN belum berubah",
                None,
            )
        )
    with connection:
        connection.executemany(
            "INSERT INTO appeal (id, ticket, application_id, text, filed_at, deadline, status,"
            " answered_by, answered_at, answer, escalated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            records,
        )
    connection.execute("ANALYZE")
    connection.close()


async def measure(path: Path) -> dict[str, float]:
    """The /statistik text with appeals, and the appeal figures alone."""
    async with open_database(f"sqlite+aiosqlite:///{path}", migrate=False) as database:
        reports = ReportRepository(database)
        appeals = AppealRepository(database)
        translate = Catalogs().get("id")._
        regions = load_regions()

        async def statistik() -> None:
            stats = await reports.statistics(budget=STATS_BUDGET)
            figures = await appeals.statistics(today=TODAY)
            text = format_statistics(
                stats, translate, regions, extra=appeal_section(figures, translate)
            )
            assert "Sanggahan" in text

        async def appeal_figures() -> None:
            figures = await appeals.statistics(today=TODAY)
            assert figures.open + figures.upheld + figures.dismissed > 0

        timed = {
            "statistik_with_appeals_s": await median_seconds(statistik),
            "appeal_statistics_s": await median_seconds(appeal_figures),
        }
    result: dict[str, float] = {}
    for key, (wall, cpu) in timed.items():
        result[key] = wall
        result[key.removesuffix("_s") + "_cpu_s"] = cpu
    return result


async def run(rows: int, appeals: int) -> dict[str, Any]:
    """Seed a fresh database, measure it, remove it."""
    with tempfile.TemporaryDirectory(prefix="rentan-appeals-") as folder:
        path = Path(folder) / "appeals.db"
        async with open_database(f"sqlite+aiosqlite:///{path}"):
            pass  # migrated: the seed writes with sqlite3 directly
        start = time.perf_counter()
        await asyncio.to_thread(seed_applications, path, rows)
        await asyncio.to_thread(seed_appeals, path, appeals)
        seed_seconds = time.perf_counter() - start
        figures = await measure(path)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"\nappeals benchmark: {rows:,} applications, {appeals:,} appeals in {seed_seconds:.1f} s"
    )
    print(f"load average {load} on {os.cpu_count()} cores (other work stretches wall times)")
    for key, label, target in (
        ("statistik_with_appeals_s", "/statistik query + text, with appeals", TARGET_S),
        ("appeal_statistics_s", "  the appeal figures alone", None),
    ):
        wall, cpu = figures[key], figures[key.removesuffix("_s") + "_cpu_s"]
        verdict = "-" if target is None else ("PASS" if wall < target else "MISS")
        print(f"{label:<42} {wall * 1000:>6.0f} ms wall {cpu * 1000:>6.0f} ms cpu  {verdict}")
    return {"rows": rows, "appeals": appeals, "seed_s": seed_seconds, **figures}


def main(argv: list[str] | None = None) -> int:
    """Command line: `python -m bench.bench_appeals [--rows N] [--appeals N] [--quick]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_appeals", description=__doc__)
    parser.add_argument("--rows", type=int, default=ROWS, help="applications to seed")
    parser.add_argument("--appeals", type=int, default=APPEALS, help="appeals to seed")
    parser.add_argument("--quick", action="store_true", help="a quarter of the rows")
    args, _unknown = parser.parse_known_args(argv)
    if args.quick:
        args.rows, args.appeals = args.rows // 4, args.appeals // 4
    result = asyncio.run(run(args.rows, args.appeals))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "appeals.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["statistik_with_appeals_s"] < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
