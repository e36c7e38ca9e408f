"""/statistik at programme scale: the statistics query with the year and the money, and the text.

Seeds a migrated SQLite file with 200,000 synthetic applications (bench_review's seed: 10,000
approved), then gives them a programme year: approvals spread over December to June, 60 % of
them last year's cohort renewed, 1 % lapsed, 1,000 places withdrawn (their approval and
withdrawal in the audit trail, beside a submission event for every application: ~210,000 audit
rows). Times, as the median of a few runs, `ReportRepository.statistics()` plus
`format_statistics()` (what /statistik does before the chart; target < 1 s), and the chart
alone for information. With `--postgres` (needs the test suite's PostgreSQL binaries), the same
on a throwaway PostgreSQL cluster. Figures go to the terminal and to bench/out/stats.json.
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
from bench.bench_review import median_seconds, seed
from config.catalogs import Catalogs
from domain.budget import Budget
from domain.regions import load_regions
from domain.reports import format_statistics, render_chart
from storage.engine import Database
from storage.opening import open_database
from storage.reports import ReportRepository

ROWS = 200_000
WITHDRAWN = 1_000
TARGET_S = 1.0
NOW = datetime(2026, 7, 20, 5, 0, tzinfo=UTC)
PROGRAMME = Budget(
    quota=10_000,
    budget_idr=2_000_000_000,
    monthly_premium_idr=16_800,
    start=date(2026, 1, 1),
    end=date(2026, 12, 1),
)


def give_the_year(path: Path) -> dict[str, int]:
    """Decision times, cohort, lapses, withdrawals and the audit trail, with sqlite3 directly."""
    rng = random.Random(20260720)
    connection = sqlite3.connect(path)
    with connection:
        ids = [row[0] for row in connection.execute("SELECT id FROM application")]
        approved = [
            row[0]
            for row in connection.execute(
                "SELECT id FROM application WHERE status = ?", ("approved",)
            )
        ]
        withdrawn = rng.sample(
            [i for i in ids if i not in set(approved)], min(WITHDRAWN, len(ids) - len(approved))
        )

        def moment() -> str:
            day = datetime(2025, 12, 1) + timedelta(
                days=rng.randrange(200), hours=rng.randrange(24)
            )
            return day.isoformat(sep=" ")

        placed = [(moment(), rng.random() < 0.6, rng.random() < 0.01, i) for i in approved]
        connection.executemany(
            "UPDATE application SET decided_at = ?, cohort_year = CASE WHEN ? THEN 2025 END,"
            " lapsed_at = CASE WHEN ? THEN '2026-06-15 00:00:00' END WHERE id = ?",
            placed,
        )
        connection.executemany(
            "UPDATE application SET status = 'withdrawn', decided_at = '2026-07-05 03:00:00'"
            " WHERE id = ?",
            [(i,) for i in withdrawn],
        )
        events: list[tuple[Any, ...]] = [
            ("2025-11-20 03:00:00", "submit", i, "draft", "pending") for i in ids
        ]
        events += [(when, "approve", i, "pending", "approved") for when, _c, _l, i in placed]
        for i in withdrawn:
            events.append((moment(), "approve", i, "pending", "approved"))
            events.append(("2026-07-05 03:00:00", "withdraw", i, "approved", "withdrawn"))
        connection.executemany(
            "INSERT INTO audit_event (at, action, application_id, from_status, to_status)"
            " VALUES (?, ?, ?, ?, ?)",
            events,
        )
    connection.execute("ANALYZE")
    connection.close()
    return {"approved": len(approved), "withdrawn": len(withdrawn), "audit_rows": len(events)}


async def measure(database: Database) -> dict[str, float]:
    """The statistics query + text, and the chart, on the open database."""
    reports = ReportRepository(database)
    bahasa = Catalogs().get("id")._
    regions = load_regions()
    texts: list[str] = []

    async def statistik() -> None:
        stats = await reports.statistics(budget=PROGRAMME, now=NOW)
        texts.append(format_statistics(stats, bahasa, regions))

    async def chart() -> None:
        stats = await reports.statistics(budget=PROGRAMME, now=NOW)
        render_chart(stats, bahasa, regions)

    wall, cpu = await median_seconds(statistik)
    chart_wall, chart_cpu = await median_seconds(chart, runs=3)
    assert len(texts[-1]) <= 4096
    return {
        "statistik_s": wall,
        "statistik_cpu_s": cpu,
        "statistik_with_chart_s": chart_wall,
        "statistik_with_chart_cpu_s": chart_cpu,
        "text_chars": float(len(texts[-1])),
    }


async def on_postgres(path: Path) -> dict[str, float] | None:
    """The same figures on PostgreSQL, the SQLite rows copied over; None without PostgreSQL."""
    from testkit.postgres import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        print("postgres: skipped (no PostgreSQL binaries)")
        return None
    server = PostgresServer(bindir)
    server.start()
    try:
        url = server.url(await server.create_database())
        async with open_database(url) as database:
            await copy_rows(path, database)
            return await measure(database)
    finally:
        server.stop()


async def copy_rows(path: Path, database: Database) -> None:
    """application and audit_event rows from the SQLite file into `database`."""
    import sqlalchemy as sa
    from sqlmodel import SQLModel

    source = sqlite3.connect(path)
    source.row_factory = sqlite3.Row
    for name in ("application", "audit_event"):
        table = SQLModel.metadata.tables[name]
        names = [column.name for column in table.columns]
        rows = [
            dict(row) for row in source.execute(f"SELECT {', '.join(names)} FROM {table.name}")
        ]
        for row in rows:
            for column in table.columns:
                value = row[column.name]
                kind = getattr(column.type, "impl", column.type)
                if isinstance(value, str) and isinstance(kind, sa.DateTime):
                    row[column.name] = datetime.fromisoformat(value).replace(tzinfo=UTC)
                elif isinstance(value, str) and isinstance(kind, sa.Date):
                    row[column.name] = date.fromisoformat(value)
                elif isinstance(kind, sa.Boolean) and value is not None:
                    row[column.name] = bool(value)
        async with database.write() as session, session.begin():
            for start in range(0, len(rows), 5_000):
                await session.execute(sa.insert(table), rows[start : start + 5_000])
    async with database.write() as session, session.begin():
        await session.execute(sa.text("ANALYZE"))
        await session.execute(
            sa.text("SELECT setval('application_id_seq', (SELECT max(id) FROM application))")
        )
    source.close()


def print_table(result: dict[str, Any]) -> None:
    """One line per figure with its target and verdict (on the wall time)."""
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"\nstats benchmark: {result['rows']:,} applications, {result['audit_rows']:,} audit rows"
    )
    print(f"load average {load} on {os.cpu_count()} cores (other work stretches wall times)")
    for backend in ("sqlite", "postgres"):
        figures = result.get(backend)
        if not figures:
            continue
        verdict = "PASS" if figures["statistik_s"] < TARGET_S else "MISS"
        print(
            f"{backend:<9} /statistik query + text {figures['statistik_s'] * 1000:6.0f} ms "
            f"(cpu {figures['statistik_cpu_s'] * 1000:.0f} ms, target < {TARGET_S:g} s) {verdict};"
            f" with the chart {figures['statistik_with_chart_s'] * 1000:.0f} ms;"
            f" text {figures['text_chars']:.0f} chars"
        )


async def run(rows: int, postgres: bool) -> dict[str, Any]:
    """Seed a fresh database and measure it; the temporary files are removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="rentan-stats-") as folder:
        path = Path(folder) / "stats.db"
        async with open_database(f"sqlite+aiosqlite:///{path}"):
            pass  # migrated: the seed writes with sqlite3 directly
        start = time.perf_counter()
        await asyncio.to_thread(seed, path, rows)
        year = await asyncio.to_thread(give_the_year, path)
        result: dict[str, Any] = {"rows": rows, "seed_s": time.perf_counter() - start, **year}
        async with open_database(f"sqlite+aiosqlite:///{path}", migrate=False) as database:
            result["sqlite"] = await measure(database)
        if postgres:
            result["postgres"] = await on_postgres(path)
    print_table(result)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line: `python -m bench.bench_stats [--rows N] [--quick] [--postgres]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_stats", description=__doc__)
    parser.add_argument("--rows", type=int, default=ROWS, help="applications to seed")
    parser.add_argument("--quick", action="store_true", help="seed 50,000 instead")
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    # Known arguments only: `python -m bench` may pass its own flags down to every module.
    args, _unknown = parser.parse_known_args(argv)
    if args.quick and args.rows == ROWS:
        args.rows = 50_000
    result = asyncio.run(run(args.rows, args.postgres))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "stats.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["sqlite"]["statistik_s"] < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
