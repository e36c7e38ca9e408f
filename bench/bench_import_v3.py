"""DTSEN V3 import at city scale: the persons file and the family file of Kota Bekasi (2,6 M
persons, ~800.000 families) into SQLite, end to end, beside the one-file import of the same
people and the ceiling, all measured in the same run.

    python -m bench.bench_import_v3 [--rows 2600000] [--rounds 3] [--quick]

(a) `import-dtsen PERSONS FAMILIES --codebook` (DuckDB reads, joins and checks; writer processes
    hash and write; SQLite stages, indexes, swaps) in a fresh process, its peak RSS summed
    with its children's;
(b) `import-dtsen FILE` of the same people in one file (the hand-written parser processes), the
    same way, so the two engines are compared on one machine in one run;
(c) the ceiling: plain `executemany` of the V3 import's final rows (read back, held in memory)
    into an unindexed table shaped like the staging table, batched as the import writes.
Each round runs (a), (b) and (c) once; the median round (by (a)) is the figure, every round is
printed. Samples are cached in bench/out/. Figures go to the terminal and
bench/out/import_v3.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import psutil

from bench._common import BENCH_PII_SECRET, OUT_DIR
from bot.sample_dtsen import write_sample
from bot.sample_dtsen_v3 import CODEBOOK_NAME, FAMILIES_NAME, PERSONS_NAME, write_v3_sample
from storage.dtsen.contract import COLUMNS_V3
from storage.dtsen.sqlite_load import sqlite_write

SECRET = BENCH_PII_SECRET.encode()
TODAY = date(2026, 11, 25)
SEED = 20261125
SAMPLE_VERSION = 1  # bumped when bot.sample_dtsen_v3 changes what it writes


def samples(rows: int) -> tuple[Path, Path]:
    """The cached V3 pair directory and one-file CSV of the same people (0.1 % bad rows)."""
    base = OUT_DIR / f"dtsen_v3_{rows}_{SEED}_v{SAMPLE_VERSION}"
    one_file = OUT_DIR / f"dtsen_v3_same_people_{rows}_{SEED}.csv"
    if not (base / PERSONS_NAME).exists():
        started = time.perf_counter()
        write_v3_sample(base, rows=rows, seed=SEED, bad_rows=rows // 1000)
        print(f"wrote the V3 pair ({rows:,} persons) in {time.perf_counter() - started:.0f} s")
    if not one_file.exists():
        write_sample(one_file, rows=rows, seed=SEED, bad_rows=rows // 1000)
    return base, one_file


def child(kind: str, db_path: str, sources: list[str]) -> None:
    """Run one import in this (fresh) process and print its summary as JSON."""
    from storage.dtsen import import_dtsen
    from storage.opening import open_database

    async def go() -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if kind == "v3":
            extra = {"families": Path(sources[1]), "codebook": Path(sources[2])}
        async with open_database(f"sqlite+aiosqlite:///{db_path}") as database:
            summary = await import_dtsen(
                database, Path(sources[0]), secret=SECRET, today=TODAY, actor="bench", **extra
            )
        return {
            "rows_read": summary.rows_read,
            "rows_loaded": summary.rows_loaded,
            "seconds": summary.seconds,
            "skipped": dict(summary.skipped_by_reason),
        }

    print(json.dumps(asyncio.run(go())))


def measure(kind: str, db_path: Path, sources: list[Path]) -> dict[str, Any]:
    """One import in a child process; its result and the peak RSS of it and its children.
    The page cache's dirty pages (the previous import's ~1 GB) are written out first, so an
    import does not wait for its predecessor's writeback."""
    os.sync()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_import_v3", "--child", kind, str(db_path),
         *map(str, sources)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    watched = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            tree = [watched, *watched.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    out = process.stdout.read() if process.stdout else ""
    if process.returncode:
        raise SystemExit(f"{kind} import failed ({process.returncode})")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = peak / 1e6
    result["rows_per_second"] = result["rows_read"] / result["seconds"]
    return result


def ceiling(db_path: Path, limit: int) -> float:
    """Rows/s of plain batched executemany of the V3 import's final rows, held in memory."""
    os.sync()
    with sqlite3.connect(db_path) as source:
        rows = source.execute(
            f"SELECT {', '.join(COLUMNS_V3)} FROM dtsen_record ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
    with tempfile.TemporaryDirectory() as directory:
        target = sqlite3.connect(Path(directory) / "ceiling.db", isolation_level=None)
        target.execute("PRAGMA journal_mode=WAL")
        target.execute("PRAGMA synchronous=NORMAL")
        with sqlite3.connect(db_path) as source:
            (ddl,) = source.execute(
                "SELECT sql FROM sqlite_schema WHERE name = 'dtsen_record'"
            ).fetchone()
        target.execute(ddl.replace("dtsen_record", "dtsen_record__staging", 1))
        started = time.perf_counter()
        for at in range(0, len(rows), 25_000):
            sqlite_write(target, rows[at : at + 25_000], COLUMNS_V3)
        seconds = time.perf_counter() - started
        target.close()
    return len(rows) / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_600_000)
    parser.add_argument("--quick", action="store_true", help="300.000 persons, one round")
    parser.add_argument("--ceiling-rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of (a), (b), (c): this shared 2-core machine's speed "
                             "wanders by ~15 %% from one run to the next")  # fmt: skip
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.child[2:])
        return
    rows = 300_000 if args.quick else args.rows
    rounds = 1 if args.quick else args.rounds
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    pair, one_file = samples(rows)
    print(f"load average before: {os.getloadavg()[0]:.1f} (2 cores, shared machine)")
    results: dict[str, Any] = {"rows": rows, "rounds": []}
    for number in range(rounds):
        with tempfile.TemporaryDirectory() as directory:
            v3_db = Path(directory) / "v3.db"
            v3 = measure(
                "v3", v3_db, [pair / PERSONS_NAME, pair / FAMILIES_NAME, pair / CODEBOOK_NAME]
            )
            one = measure("one", Path(directory) / "one.db", [one_file])
            top = ceiling(v3_db, args.ceiling_rows)
        results["rounds"].append({"v3": v3, "one_file": one, "ceiling_rows_per_second": top})
        print(
            f"round {number + 1}: V3 pair {v3['rows_per_second']:,.0f} persons/s "
            f"({v3['seconds']:.1f} s, {v3['rows_per_second'] / top:.2f}x the ceiling, peak RSS "
            f"{v3['peak_rss_mb']:.0f} MB); one file {one['rows_per_second']:,.0f} rows/s "
            f"({one['seconds']:.1f} s, {one['peak_rss_mb']:.0f} MB); ceiling {top:,.0f} rows/s"
        )
    results["load_average_after"] = os.getloadavg()[0]
    middle = sorted(results["rounds"], key=lambda r: r["v3"]["rows_per_second"])[rounds // 2]
    v3, one = middle["v3"], middle["one_file"]
    share = v3["rows_per_second"] / middle["ceiling_rows_per_second"]
    peak = max(r["v3"]["peak_rss_mb"] for r in results["rounds"])
    print(
        f"V3 pair (median round): {v3['rows_read']:,} persons in {v3['seconds']:.1f} s = "
        f"{v3['rows_per_second']:,.0f} persons/s ({share:.2f}x the ceiling of its round), "
        f"peak RSS {peak:.0f} MB over the rounds (target >= 300.000/s, >= 0.5x, < 500 MB)"
    )
    print(
        f"one file, same people (that round): {one['rows_read']:,} rows in "
        f"{one['seconds']:.1f} s = {one['rows_per_second']:,.0f} rows/s, peak RSS (with "
        f"parser processes) {one['peak_rss_mb']:.0f} MB"
    )
    print(
        "ceiling (executemany of the final V3 rows, that round): "
        f"{middle['ceiling_rows_per_second']:,.0f}"
    )
    print(f"load average after: {results['load_average_after']:.1f}")
    (OUT_DIR / "import_v3.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
