"""Launch-morning load: 10,000 workers register while reviewers approve, on SQLite and PostgreSQL.

    python -m bench.bench_load [--quick] [--backend sqlite|postgres] [--rate UPDATES_PER_S]

The assumption behind the offered load: a city opens registration at 08:00 and 10,000 workers
come in one morning; we compress that into a peak where workers arrive at `rate / 13` a second
(the rate ramping up over the first minute), each answering the 13 steps of the registration
with about 3 s to read and type between answers (1.5-4.5 s), so ~180 phones are mid-conversation
at the plateau. The default 60 updates/s is the pessimistic end of a real morning: 10,000 x 13
updates over two hours would be 18/s, and Telegram lets one bot send about 30 messages/s to
different chats, which at ~1.2 messages per answered update caps what any bot can answer at
~26 updates/s; 60/s offers the bot more than twice that. That is 130,000 updates per backend,
~37 minutes each (`--rate 120` halves it and shows the bot near its one-core limit;
`--workers` makes shorter runs; `--quick` is 1,000 workers). Meanwhile
three reviewers (REVIEWER_IDS) work the queue with /antrian, /tinjau, "✅ Setujui" and
"Berikutnya ▶", pausing ~0.2 s per update: much faster than a person, to keep decisions
(and their quota check) hitting the database alongside the registrations.

After the morning, the capacity phase: a few hundred phones answering without pause (closed
loop, no network delay), so the bot is offered more than it can take; its rate is compared with
300 updates/s (10x Telegram's 30 messages/s per bot). Telegram's latency is not simulated
anywhere here: the figures are the bot's own time per update.

The processes are bench_flow's (`bench._loadgen`, `bench._botproc`); PostgreSQL is a throwaway
cluster from `testkit.postgres`, durable (fsync on) like a production server. Errors are load
generator timeouts or wrong answers plus ERROR/CRITICAL lines and tracebacks in the bot's log;
the target is none. Results go to bench/out/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import OUT_DIR, JSONDict, cpu_in_window, cpu_plan, people
from bench._processes import (
    MB,
    QUIET_CORES,
    READY_TIMEOUT,
    STOP_TIMEOUT,
    BenchError,
    Child,
    CpuMeter,
    machine,
    print_table,
    stop_children,
    wait_for_quiet,
)

STEPS = 13  # updates per registration (bench._loadgen.registration)
TARGET_P99_MS = 100.0
TARGET_CAPACITY = 300.0  # 10x Telegram's 30 messages/s
DEFAULT_RATE = 60.0
REVIEWERS = (910_000_001, 910_000_002, 910_000_003)
ADMIN = 910_000_000
PREMIUM_IDR = 201_600
BACKENDS = ("sqlite", "postgres")
# Log lines that count as errors of the bot process.
ERROR_LINE = re.compile(r" (ERROR|CRITICAL) |^Traceback ")


def sizes(quick: bool, workers: int | None = None) -> JSONDict:
    """Workers of the morning, fresh people for the capacity phase, ineligible DTSEN rows."""
    size: JSONDict = (
        {"workers": 1000, "capacity_pool": 1500, "ineligible": 200, "ramp": 10.0}
        if quick
        else {"workers": 10_000, "capacity_pool": 3000, "ineligible": 2000, "ramp": 60.0}
    )
    if workers:
        size["workers"] = workers
    return size


def write_dtsen(folder: Path, eligible: int, ineligible: int) -> Path:
    """The DTSEN rows: every simulated worker (desil 1-5), then people above the desil cut-off."""
    rows = []
    for index, person in enumerate(people(eligible + ineligible)):
        rows.append(
            {
                "nik": person.nik,
                "name": person.name,
                "birth_date": person.birth_date.isoformat(),
                "gender": person.gender,
                "kode_wilayah": person.kode_wilayah,
                # Nobody registers these; they make the table look like a real extract.
                "desil": person.desil if index < eligible else 6 + index % 5,
            }
        )
    path = folder / "dtsen.json"
    path.write_text(json.dumps(rows))
    return path


def uptime() -> str:
    """`uptime`'s line: the load average other engineers' work puts on the machine."""
    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())


def bot_log_errors(path: Path) -> tuple[int, list[str]]:
    """ERROR/CRITICAL lines and tracebacks in the bot's log, with the first few."""
    lines = [
        line for line in path.read_text(errors="replace").splitlines() if ERROR_LINE.search(line)
    ]
    return len(lines), lines[:5]


@contextlib.asynccontextmanager
async def database_for(backend: str, folder: Path):  # type: ignore[no-untyped-def]
    """A database URL: a SQLite file in `folder`, or a database on a fresh PostgreSQL cluster."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / 'load.db'}"
        return
    from testkit.postgres import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        raise BenchError("PostgreSQL server binaries not found (see scripts/ensure-postgres.sh)")
    server = PostgresServer(bindir, durable=True)
    await asyncio.to_thread(server.start)
    try:
        yield server.url(await server.create_database())
    finally:
        await asyncio.to_thread(server.stop)


async def run_backend(backend: str, quick: bool, rate: float, workers: int | None) -> JSONDict:
    """One launch morning and capacity phase against a fresh database of this backend."""
    size = sizes(quick, workers)
    workers, pool = size["workers"], size["capacity_pool"]
    logs = OUT_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"  … {backend}", end="", flush=True)
    quiet = await wait_for_quiet()
    load_before = os.getloadavg()
    started = time.monotonic()
    load: JSONDict = {
        "scenario": "flow",
        "mode": "launch",
        "users": 0,
        "people": workers + pool,
        "workers": workers,
        "arrival_rate": rate / STEPS,
        "ramp": size["ramp"],
        "think": 3.0,
        "reviewers": list(REVIEWERS),
        "reviewer_think": 0.2,
        "step_timeout": 30.0,
        "capacity_users": 300,
        "capacity_warmup": 10.0,
        "capacity_duration": 10.0 if quick else 20.0,
    }
    expected_s = size["ramp"] / 2 + workers / (rate / STEPS) + 60 + 40
    quota = workers + pool
    bot_cpus, load_cpus = cpu_plan()
    with tempfile.TemporaryDirectory(prefix="rentan-load-") as tmp:
        async with database_for(backend, Path(tmp)) as url:
            loadgen = await Child.spawn(
                "load generator",
                "bench._loadgen",
                load | {"cpus": load_cpus},
                logs / f"load-{backend}-loadgen.log",
            )
            bot: Child | None = None
            bot_log = logs / f"load-{backend}-bot.log"
            try:
                port = (await loadgen.receive("ready", READY_TIMEOUT))["port"]
                bot_config = {
                    "kind": "flow",
                    # The production default (CONCURRENT_UPDATES).
                    "concurrent_updates": 128,
                    "cpu_affinity": bot_cpus,
                    "api_url": f"http://127.0.0.1:{port}",
                    "db_path": str(Path(tmp) / "load.db"),
                    "database_url": url,
                    "people_file": str(write_dtsen(Path(tmp), workers + pool, size["ineligible"])),
                    "settings": {
                        "admin_ids": [ADMIN],
                        "reviewer_ids": list(REVIEWERS),
                        "program_quota": quota,
                        "program_budget_idr": quota * PREMIUM_IDR,
                    },
                }
                bot = await Child.spawn("bot", "bench._botproc", bot_config, bot_log)
                ready = await bot.receive("ready", READY_TIMEOUT * 2)
                meter = CpuMeter([loadgen.process.pid, bot.process.pid])
                meter.start()
                await loadgen.send(cmd="go")
                result = await loadgen.receive("result", expected_s * 2)
                foreign = meter.foreign_cores()
                await bot.send(cmd="report")
                report = await bot.receive("report", 120)
                await bot.send(cmd="stop")
                await bot.receive("stopped", STOP_TIMEOUT)
            finally:
                await stop_children(bot, loadgen)
    error_lines, error_samples = bot_log_errors(bot_log)
    outcome: JSONDict = {
        "backend": backend,
        "load_config": load,
        "bot_config": {k: v for k, v in bot_config.items() if k != "people_file"},
        "load": result,
        "bot": {k: v for k, v in report.items() if k not in ("event", "samples")},
        "bot_ready_rss_mb": ready["rss"] / MB,
        "bot_startup_s": ready["startup_s"],
        "bot_peak_rss_mb": report["peak_rss"] / MB,
        "bot_log_errors": error_lines,
        "bot_log_error_samples": error_samples,
        "foreign_cores_before": quiet,
        "foreign_cores_during": foreign,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "uptime_after": uptime(),
        "elapsed_s": time.monotonic() - started,
    }
    phases: list[tuple[str, JSONDict | None]] = [
        ("launch", result),
        ("capacity", result.get("capacity")),
    ]
    for phase, figures in phases:
        if figures:
            window = figures["window"]
            cpu = cpu_in_window(report["samples"], window[0], window[1])
            answered = int(figures.get("answered") or figures.get("answered_in_window") or 0)
            outcome[f"{phase}_bot_cpu_util"] = cpu / max(window[1] - window[0], 1e-9)
            outcome[f"{phase}_bot_cpu_ms_per_update"] = 1000 * cpu / max(answered, 1)
    note = f", other programs used {foreign:.2f} cores" if foreign >= QUIET_CORES else ""
    print(f" {outcome['elapsed_s']:.0f}s{note}", flush=True)
    return outcome


def errors_of(run: JSONDict) -> int:
    """Everything that went wrong: unanswered or wrong answers, staff failures, bot log errors."""
    load = run["load"]
    capacity = load.get("capacity") or {}
    return int(
        load["failures"]
        + load["staff"]["failures"]
        + capacity.get("failures", 0)
        + run["bot_log_errors"]
    )


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _ms(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f}"


def _per_registration(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def summarise(runs: dict[str, JSONDict]) -> tuple[list[list[str]], list[str]]:
    """Rows (figure, one column per backend, target, verdict) and the header."""
    names = list(runs)
    header = ["figure", *names, "target", ""]

    def row(label: str, cell: object, target: str = "-", ok: object = None) -> list[str]:
        cells = [str(cell(runs[name])) if callable(cell) else str(cell) for name in names]
        verdict = _verdict(all(ok(runs[name]) for name in names)) if callable(ok) else "-"
        return [label, *cells, target, verdict]

    def p99(run: JSONDict) -> float:
        value = run["load"]["latency"]["p99_ms"]
        return math.inf if value is None else float(value)

    def capacity(run: JSONDict) -> float:
        return float((run["load"].get("capacity") or {}).get("updates_per_s", math.nan))

    def approved_ok(run: JSONDict) -> bool:
        bot = run["bot"]
        places = int(bot["places_taken"])
        counted = sum(bot["applications"].get(s, 0) for s in ("approved", "enrolled"))
        return bool(places == counted <= int(bot["effective_quota"]))

    rows = [
        row(
            "workers registered (of them)",
            lambda r: f"{r['load']['completed_users']} ({r['load_config']['workers']})",
            "all",
            lambda r: r["load"]["completed_users"] == r["load_config"]["workers"],
        ),
        row(
            "messages + edits into the chat per registration",
            lambda r: _per_registration(r["load"].get("messages_per_completed")),
            f"<= {STEPS}",
            lambda r: (r["load"].get("messages_per_completed") or math.inf) <= STEPS,
        ),
        row("morning wall time, s", lambda r: f"{r['load']['wall_s']:.0f}"),
        row(
            "offered by workers at plateau, updates/s",
            lambda r: f"{r['load']['offered_plateau_updates_per_s']:.0f}",
        ),
        row(
            "served (workers + staff) at plateau / morning, updates/s",
            lambda r: (
                f"{r['load']['plateau_updates_per_s']:.0f} / {r['load']['updates_per_s']:.0f}"
            ),
        ),
        row(
            "p50 / p95 / p99 answer, ms (all)",
            lambda r: "{} / {} / {}".format(
                _ms(r["load"]["latency"]["p50_ms"]),
                _ms(r["load"]["latency"].get("p95_ms")),
                _ms(r["load"]["latency"]["p99_ms"]),
            ),
            f"p99 < {TARGET_P99_MS:.0f}",
            lambda r: p99(r) < TARGET_P99_MS,
        ),
        row(
            "p99 workers / staff, ms",
            lambda r: (
                f"{_ms(r['load']['latency_workers']['p99_ms'])} / "
                f"{_ms(r['load']['latency_staff']['p99_ms'])}"
            ),
        ),
        row("errors", errors_of, "0", lambda r: errors_of(r) == 0),
        row(
            "staff updates; approved; collisions",
            lambda r: (
                f"{r['load']['staff']['updates']}; {r['load']['staff']['approved']}; "
                f"{r['load']['staff']['already_decided_by_another']}"
            ),
        ),
        row(
            "end: pending / approved (quota)",
            lambda r: (
                f"{r['bot']['applications'].get('pending', 0)} / "
                f"{r['bot']['applications'].get('approved', 0)} ({r['bot']['effective_quota']})"
            ),
            "approved = rows <= quota",
            approved_ok,
        ),
        row(
            "capacity, closed loop 300 phones, updates/s",
            lambda r: f"{capacity(r):.0f}",
            f">= {TARGET_CAPACITY:.0f}",
            lambda r: capacity(r) >= TARGET_CAPACITY,
        ),
        row(
            "capacity p50 / p99, ms",
            lambda r: (
                f"{_ms(r['load']['capacity']['latency']['p50_ms'])} / "
                f"{_ms(r['load']['capacity']['latency']['p99_ms'])}"
                if r["load"].get("capacity")
                else "-"
            ),
        ),
        row(
            "bot CPU ms/update, morning / capacity",
            lambda r: (
                f"{r.get('launch_bot_cpu_ms_per_update', math.nan):.2f} / "
                f"{r.get('capacity_bot_cpu_ms_per_update', math.nan):.2f}"
            ),
        ),
        row(
            "ceiling from CPU time (one core), updates/s",
            lambda r: f"{1000 / r.get('capacity_bot_cpu_ms_per_update', math.nan):.0f}",
            f">= {TARGET_CAPACITY:.0f}",
            lambda r: 1000 / r.get("capacity_bot_cpu_ms_per_update", math.inf) >= TARGET_CAPACITY,
        ),
        row(
            "bot CPU use, morning / capacity",
            lambda r: (
                f"{r.get('launch_bot_cpu_util', math.nan):.0%} / "
                f"{r.get('capacity_bot_cpu_util', math.nan):.0%}"
            ),
        ),
        row(
            "longest pause, bot / emulator+phones: loop lag (full GC), ms",
            lambda r: f"{_pause(r['bot'].get('stalls'))} / {_pause(r['load'].get('stalls'))}",
        ),
        row("bot peak RSS, MB", lambda r: f"{r['bot_peak_rss_mb']:.0f}"),
        row(
            "database size at the end, MB",
            lambda r: f"{r['bot']['database_bytes']['total'] / MB:.0f}",
        ),
        row(
            "load average before; other programs, cores",
            lambda r: f"{r['loadavg_before'][0]:.2f}; {r['foreign_cores_during']:.2f}",
        ),
    ]
    return rows, header


def _pause(stalls: JSONDict | None) -> str:
    """A process's worst event-loop lateness and its longest full collection."""
    if not stalls:
        return "-"
    full = stalls["gc"].get("2", {}).get("max_ms", 0.0)
    return f"{stalls['loop_lag_max_ms']:.0f} ({full:.0f})"


async def run(
    backends: list[str], quick: bool, rate: float, workers: int | None = None
) -> JSONDict:
    """Each backend in turn, then the table and the JSON."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    print(
        f"bench_load: {', '.join(backends)}{' (quick)' if quick else ''}, "
        f"{rate:.0f} updates/s offered; {uptime()}",
        flush=True,
    )
    runs: dict[str, JSONDict] = {}
    errors: dict[str, str] = {}
    for backend in backends:
        try:
            runs[backend] = await run_backend(backend, quick, rate, workers)
        except BenchError as error:
            print(f" FAILED\n{error}", flush=True)
            errors[backend] = str(error)
    if runs:
        rows, header = summarise(runs)
        print()
        print_table(rows, header)
    for name, result in runs.items():
        for sample in [
            *result["load"]["failure_samples"][:1],
            *result["load"]["staff"]["failure_samples"][:1],
            *result["bot_log_error_samples"][:2],
        ]:
            print(f"! {name}: " + sample.replace("\n", "\n  ")[:600])
    report: JSONDict = {
        "quick": quick,
        "rate": rate,
        "workers": workers,
        "machine": machine(),
        "uptime": uptime(),
        "runs": runs,
        "errors": errors,
    }
    path = OUT_DIR / ("load-quick.json" if quick else "load.json")
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nresults: {path}  (child logs: {OUT_DIR / 'logs'})")
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line: backends, quick or full, the offered rate."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_load", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 workers instead of 10,000")
    parser.add_argument("--backend", choices=BACKENDS, action="append", help="default both")
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help="updates/s offered at the plateau"
    )
    parser.add_argument(
        "--workers", type=int, help="workers in the morning (default 10,000; quick 1,000)"
    )
    args = parser.parse_args(argv)
    report = asyncio.run(run(args.backend or list(BACKENDS), args.quick, args.rate, args.workers))
    failed = report["errors"] or any(errors_of(run) for run in report["runs"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
