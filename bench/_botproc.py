"""The bot process of the flow benchmark: the real Application (or a bare echo bot) polling.

Run by `bench.bench_flow` as `python -m bench._botproc CONFIG_JSON`. It prints protocol lines
(see `bench._common`) and obeys JSON commands on stdin: `report`, `gc`, `profile`, `stop`.
Nothing else runs in this process, so its CPU time and RSS are the bot's alone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import gc
import json
import logging
import os
import resource
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters
from telegram.request import BaseRequest, HTTPXRequest

from bench._common import BENCH_PII_SECRET, BENCH_TOKEN, JSONDict, StallMonitor, emit
from bot.processor import PerChatUpdateProcessor
from bot.running import polling, start_application, stop_application
from config.settings import Settings, load_settings
from domain.budget import add_months, month_of

# Bounds: a command that hangs must not keep the benchmark alive forever.
STOP_TIMEOUT = 30.0
# A full launch morning at 60 updates/s sends no command for ~40 minutes; a parent that is gone
# closes our stdin anyway, so this only bounds a parent that hangs.
IDLE_LIMIT = 4 * 3600.0
SAMPLE_INTERVAL = 0.25

AnyApp = Application[Any, Any, Any, Any, Any, Any]


def cpu_seconds() -> float:
    """User + system CPU of this process, every thread included (aiosqlite runs in threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_bytes() -> int:
    """Resident set size now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bench_settings(config: JSONDict) -> Settings:
    """Production defaults except the endpoints, the secret and the concurrency under test.

    `database_url` (PostgreSQL) replaces the SQLite file at `db_path`; `settings` holds further
    overrides by field name (staff ids, quota).
    """
    return load_settings(
        env_file=None,
        telegram_bot_token=BENCH_TOKEN,
        telegram_api_url=config["api_url"],
        database_url=config.get("database_url") or f"sqlite+aiosqlite:///{config['db_path']}",
        pii_secret=BENCH_PII_SECRET,
        concurrent_updates=int(config.get("concurrent_updates", 32)),
        cpu_affinity=frozenset(config.get("cpu_affinity", ())),
        # The programme year next month is in: approvals always buy months of cover, whatever
        # the day the benchmark runs (in December, this year's cover is over).
        program_year=add_months(month_of(date.today()), 1).year,
        **config.get("settings", {}),
    )


def peak_rss_bytes() -> int:
    """The highest resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def database_bytes(services: Any, settings: Settings) -> JSONDict:
    """The database's size on disk: SQLite file plus WAL and shared memory; PostgreSQL's own."""
    import sqlalchemy as sa

    if settings.database_url.startswith("postgresql"):
        async with services.database.read() as session:
            size = await session.execute(sa.text("SELECT pg_database_size(current_database())"))
            return {"total": int(size.scalar_one())}
    path = Path(settings.database_url.split(":///", 1)[1])
    parts = {
        suffix or "main": Path(f"{path}{suffix}").stat().st_size
        for suffix in ("", "-wal", "-shm")
        if Path(f"{path}{suffix}").exists()
    }
    return {"total": sum(parts.values()), **parts}


async def _echo(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is not None and message.text is not None:
        await message.reply_text(message.text)


def requests_for(settings: Settings, client: str) -> tuple[BaseRequest, BaseRequest]:
    """The two request objects, sized as `build_application` sizes them.

    `production` is the client `build_application` uses (bot.http's aiohttp request since the
    httpx change; HTTPXRequest before it); `httpx` is PTB's default, kept for comparison.
    """
    pool = settings.concurrent_updates + 4
    if client == "production":
        try:
            from bot.http import AiohttpRequest
        except ImportError:
            pass
        else:
            return (
                AiohttpRequest(connection_pool_size=pool),
                AiohttpRequest(connection_pool_size=2, read_timeout=30),
            )
    return (
        HTTPXRequest(connection_pool_size=pool),
        HTTPXRequest(connection_pool_size=2, read_timeout=30),
    )


def build_echo(settings: Settings, client: str) -> AnyApp:
    """The ceiling: PTB with the same processor and connection pools, no database, one handler."""
    api = settings.telegram_api_url
    request, get_updates_request = requests_for(settings, client)
    application: AnyApp = (
        ApplicationBuilder()
        .token(settings.require_token())
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .concurrent_updates(PerChatUpdateProcessor(settings.concurrent_updates))
        .request(request)
        .get_updates_request(get_updates_request)
        .build()
    )
    application.add_handler(MessageHandler(filters.TEXT, _echo))
    return application


async def seed_dtsen(services: Any, people_file: Path) -> None:
    """DTSEN rows for the simulated workers, as `testkit.fakes.seed_dtsen` writes them.

    The rows come from a file the parent wrote, so this process never imports the test
    factories (hypothesis alone would add megabytes to the RSS being measured).
    """
    from datetime import date

    from domain.pii import digest_key, identifier_digest
    from storage.models import DtsenRecord

    rows = json.loads(people_file.read_text())
    async with services.database.write() as session, session.begin():
        for row in rows:
            digest = identifier_digest(row["nik"], services.secret)
            session.add(
                DtsenRecord(
                    nik_hash=digest,
                    nik_key=digest_key(digest),
                    nama=row["name"],
                    tanggal_lahir=date.fromisoformat(row["birth_date"]),
                    jenis_kelamin=row["gender"],
                    kode_wilayah=row["kode_wilayah"],
                    desil=row["desil"],
                )
            )


class BotProcess:
    """Owns the Application, the CPU sampler and the command loop."""

    def __init__(self, config: JSONDict) -> None:
        self.config = config
        self.settings = bench_settings(config)
        from bot.app import apply_cpu_affinity

        apply_cpu_affinity(self.settings)
        self.app: AnyApp | None = None
        self.samples: list[tuple[float, float, float]] = []
        self.profiler: Any = None
        self.statements: collections.Counter[str] = collections.Counter()
        self.baseline_snapshot: Any = None
        self.stalls = StallMonitor()

    async def start(self) -> JSONDict:
        """Migrate and seed (flow), build, then start polling exactly as the e2e harness does
        (bot.running)."""
        from bot.logs import configure_logging

        configure_logging(self.settings.log_level)
        started = time.perf_counter()
        client = str(self.config.get("http", "production"))
        if self.config["kind"] == "flow":
            from bot.app import build_application, build_services, migrate_database

            await migrate_database(self.settings)
            services = build_services(self.settings, database=self.experimental_database())
            if self.config.get("people_file"):
                await seed_dtsen(services, Path(self.config["people_file"]))
            if self.config.get("count_db"):
                self.count_statements(services.database.engine.sync_engine)
            app: AnyApp
            if client == "production":
                # Exactly what production builds, request objects included.
                app = build_application(self.settings, services=services, rate_limit=None)
            else:
                request, get_updates_request = requests_for(self.settings, client)
                app = build_application(
                    self.settings,
                    services=services,
                    rate_limit=None,
                    request=request,
                    get_updates_request=get_updates_request,
                )
        else:
            app = build_echo(self.settings, client)
        poll_interval = float(self.config.get("poll_interval", 0.0))
        await start_application(app, updates=polling(poll_interval=poll_interval))
        self.app = app
        # As production does (bot.app.settle_startup_heap): startup objects leave the collector.
        gc.collect()
        gc.freeze()
        self.stalls.start()
        if self.config.get("tracemalloc"):
            import tracemalloc

            # Diagnosis only: tracing slows every allocation, so figures of such runs are off.
            tracemalloc.start(6)
            self.baseline_snapshot = tracemalloc.take_snapshot()
        return {
            "event": "ready",
            "pid": os.getpid(),
            "rss": rss_bytes(),
            "startup_s": time.perf_counter() - started,
        }

    def experimental_database(self) -> Any:
        """None (production's engine), or the same SQLite engine with another pool size."""
        pool_size = self.config.get("db_pool_size")
        if not pool_size:
            return None
        from sqlalchemy.ext.asyncio import create_async_engine

        from storage import engine as storage_engine

        engine = create_async_engine(
            self.settings.database_url,
            hide_parameters=True,
            pool_size=int(pool_size),
            max_overflow=0,
            connect_args={"timeout": storage_engine.SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        # The experiment changes the pool size only: same pragmas, same BEGIN handling.
        storage_engine._configure_sqlite(engine, self.settings.sqlite_synchronous)
        return storage_engine.Database(engine)

    def count_statements(self, engine: Any) -> None:
        """Diagnostics for profiled runs: SQL statements by verb and pool checkouts."""
        from sqlalchemy import event

        def on_execute(*args: Any) -> None:
            statement = str(args[2]).split(None, 2)
            verb = " ".join(statement[:2]) if statement[:1] == ["BEGIN"] else statement[0]
            self.statements[verb.upper()] += 1

        def on_checkout(*_args: Any) -> None:
            self.statements["(pool checkout)"] += 1

        event.listen(engine, "before_cursor_execute", on_execute)
        event.listen(engine.pool, "checkout", on_checkout)

    async def sample_forever(self) -> None:
        """(wall time, process CPU, event-loop thread CPU) every 250 ms.

        The parent cuts the measured window out. The event loop's thread is the bottleneck (one
        interpreter, one GIL); the rest is aiosqlite's worker threads running SQLite.
        """
        while True:
            self.samples.append((time.time(), cpu_seconds(), time.thread_time()))
            await asyncio.sleep(SAMPLE_INTERVAL)

    async def report(self) -> JSONDict:
        """CPU samples, RSS and the in-memory structures that could grow with users."""
        app = self.app
        assert app is not None
        body: JSONDict = {
            "event": "report",
            "samples": self.samples,
            "rss": rss_bytes(),
            "tasks": len(asyncio.all_tasks()),
            "update_queue": app.update_queue.qsize(),
            "chat_data": len(app.chat_data),
            "user_data": len(app.user_data),
            "stalls": self.stalls.summary(),
        }
        if self.statements:
            body["sql_statements"] = dict(self.statements)
        if self.baseline_snapshot is not None:
            body["memory_growth"] = self.memory_growth()
        processor = app.update_processor
        if isinstance(processor, PerChatUpdateProcessor):
            body["waiting_chats"] = processor.waiting_chats
        services = getattr(app.bot_data, "services", None)
        if services is not None:
            import sqlalchemy as sa

            body["languages_cached"] = len(services.languages)
            async with services.database.read() as session:
                result = await session.execute(
                    sa.text("SELECT status, count(*) FROM application GROUP BY status")
                )
                body["applications"] = {str(row[0]): int(row[1]) for row in result}
            body["places_taken"] = await services.review.places_taken()
            body["effective_quota"] = self.settings.effective_quota
            body["database_bytes"] = await database_bytes(services, self.settings)
        body["peak_rss"] = peak_rss_bytes()
        return body

    def memory_growth(self, top: int = 15) -> list[str]:
        """Where memory allocated since startup and still alive was allocated (tracemalloc)."""
        import tracemalloc

        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        differences = snapshot.compare_to(self.baseline_snapshot, "traceback")
        lines = []
        for stat in differences[:top]:
            frames = [
                f"{Path(frame.filename).name}:{frame.lineno}"
                for frame in reversed(stat.traceback)
                if "tracemalloc" not in frame.filename
            ]
            lines.append(
                f"{stat.size_diff / 1024:9.0f} KiB {stat.count_diff:8d} blocks  "
                + " <- ".join(frames[:6])
            )
        return lines

    def collect(self) -> JSONDict:
        """RSS after a full collection, and after returning free heap pages to the OS."""
        before = rss_bytes()
        gc.collect()
        after_gc = rss_bytes()
        trimmed: int | None = None
        with contextlib.suppress(OSError, AttributeError):
            # glibc keeps freed arenas; trimming shows how much of the RSS is really in use.
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            trimmed = rss_bytes()
        return {"event": "gc", "rss_before": before, "rss_gc": after_gc, "rss_trim": trimmed}

    def profile(self, command: JSONDict) -> JSONDict:
        """cProfile the event loop thread between `start` and `stop` (py-spy sees all threads)."""
        import cProfile
        import pstats

        if command.get("action") == "start":
            self.profiler = cProfile.Profile()
            self.profiler.enable()
            return {"event": "profile", "running": True}
        if self.profiler is not None:
            self.profiler.disable()
            path = Path(str(command["path"]))
            self.profiler.dump_stats(path)
            with path.with_suffix(".txt").open("w") as out:
                stats = pstats.Stats(self.profiler, stream=out)
                stats.sort_stats("cumulative").print_stats(60)
                stats.sort_stats("tottime").print_stats(60)
            self.profiler = None
        return {"event": "profile", "running": False}

    async def stop(self) -> None:
        """Stop polling (confirming the offset) and shut down, like `Harness.stop`."""
        app, self.app = self.app, None
        if app is not None:
            await stop_application(app)


async def commands() -> asyncio.StreamReader:
    """Stdin as an asyncio stream, so waiting for the parent never blocks the bot."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def main_async(config: JSONDict) -> None:
    """Start, then answer commands until `stop` (or the parent goes away)."""
    process = BotProcess(config)
    emit(await process.start())
    sampler = asyncio.create_task(process.sample_forever())
    reader = await commands()
    try:
        while True:
            try:
                line = await asyncio.wait_for(reader.readline(), IDLE_LIMIT)
            except TimeoutError:
                break
            if not line:
                break  # the parent closed our stdin: it is gone or done
            command = json.loads(line)
            name = command.get("cmd")
            if name == "report":
                emit(await process.report())
            elif name == "gc":
                emit(process.collect())
            elif name == "profile":
                emit(process.profile(command))
            elif name == "stop":
                break
    finally:
        sampler.cancel()
        try:
            await asyncio.wait_for(process.stop(), STOP_TIMEOUT)
            emit({"event": "stopped"})
        except TimeoutError:
            logging.getLogger(__name__).error("bot did not stop within %ss", STOP_TIMEOUT)
            emit({"event": "stopped", "timeout": True})


def main() -> None:
    """Entry point: the configuration is the one JSON argument."""
    asyncio.run(main_async(json.loads(sys.argv[1])))


if __name__ == "__main__":
    main()
