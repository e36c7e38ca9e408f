"""The send budget on a launch morning (issue 18): messages offered at twice Telegram's cap into
an emulator enforcing the caps strictly (30/s per bot, 1/s per chat), through the production
limiter, with 1, 2 and 3 bot processes (Applications sharing one PostgreSQL; one process keeps
the budget in memory), beside the same load with no limiter.

    python -m bench.bench_send [--quick]

Offered per second: 30 answers to 60 workers mid-conversation (each answers every 2 s), 20
first answers to newcomers, 10 notifications. Reported: messages/s Telegram accepted while work
waited (vs the cap of 30), 429s, and p50/p99 from the send call to its answer per kind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from telegram.error import RetryAfter

from bench._common import percentile
from bot.app import RentanApp, build_application
from bot.running import stop_application
from bot.send_limiter import Priority
from emulator import BotApiEmulator
from testkit.harness import make_settings

CAP = 30
OFFERED_PER_S = 60
WORKERS = 60
# One tick offers six messages: three answers, two newcomers, one notification.
PATTERN = (
    Priority.CONVERSATION,
    Priority.NEWCOMER,
    Priority.CONVERSATION,
    Priority.NOTIFICATION,
    Priority.CONVERSATION,
    Priority.NEWCOMER,
)


@dataclass
class Outcome:
    """One case's figures."""

    name: str
    offered: int = 0
    accepted_while_waiting: int = 0
    seconds_offering: float = 0.0
    refused_429: int = 0
    refused_by: str = ""
    lost: int = 0
    waits: dict[Priority, list[float]] = field(default_factory=dict)

    def line(self) -> str:
        rate = self.accepted_while_waiting / self.seconds_offering
        parts = [
            f"{self.name:<28} {rate:5.1f} msg/s = {rate / CAP:4.0%} of {CAP}",
            f"429s {self.refused_429:4d}{self.refused_by}  lost {self.lost:4d}",
        ]
        for kind in Priority:
            values = sorted(self.waits.get(kind, []))
            if values:
                parts.append(
                    f"{kind.name.lower()} p50/p99 "
                    f"{percentile(values, 0.5):5.2f}/{percentile(values, 0.99):5.2f} s"
                )
        return "  ".join(parts)


@contextlib.asynccontextmanager
async def _processes(
    emulator: BotApiEmulator, database_url: str, count: int, *, limited: bool
) -> AsyncIterator[list[RentanApp]]:
    overrides: dict[str, object] = {}
    if count > 1:
        # Several processes serve one bot in webhook mode: their budget is the shared one.
        overrides = {
            "webhook_url": "https://bot.example.test/telegram",
            "webhook_secret": "bench-webhook-secret",
        }
    settings = make_settings(emulator.base_url.removesuffix("/bot"), database_url, **overrides)
    apps = [
        build_application(settings, rate_limit="settings" if limited else None)
        for _ in range(count)
    ]
    # Only initialized, not started: the bench calls bot.send_message itself, and neither
    # updates, jobs nor the start-up's own sends may share the budget being measured.
    for app in apps:
        await app.initialize()
    try:
        yield apps
    finally:
        for app in apps:
            # The one way to stop: shutdown, then post_shutdown (which closes the database).
            await stop_application(app)


async def run_case(
    name: str, database_url: str, count: int, *, limited: bool, seconds: float
) -> Outcome:
    """Offer the morning's mix for `seconds`, then wait for every message to be answered."""
    outcome = Outcome(name)
    async with BotApiEmulator(enforce_caps=True) as emulator:
        async with _processes(emulator, database_url, count, limited=limited) as apps:
            loop = asyncio.get_running_loop()
            tasks: list[asyncio.Task[None]] = []
            next_chat = 1_000_000
            for worker in range(WORKERS):
                emulator.user(500_000 + worker)

            async def send(app: RentanApp, chat: int, kind: Priority) -> None:
                started = loop.time()
                try:
                    await app.bot.send_message(
                        chat, f"{kind.name} message", rate_limit_args=kind if limited else None
                    )
                except RetryAfter:
                    outcome.lost += 1
                    return
                outcome.waits.setdefault(kind, []).append(loop.time() - started)

            started = time.time()
            ticks = int(seconds * OFFERED_PER_S / len(PATTERN))
            for tick in range(ticks):
                await asyncio.sleep(
                    max(0.0, started + tick * len(PATTERN) / OFFERED_PER_S - time.time())
                )
                for index, kind in enumerate(PATTERN):
                    if kind is Priority.CONVERSATION:
                        chat = 500_000 + (tick * 3 + index // 2) % WORKERS
                    else:
                        next_chat += 1
                        chat = next_chat
                        emulator.user(chat)
                    app = apps[(tick * len(PATTERN) + index) % len(apps)]
                    tasks.append(asyncio.create_task(send(app, chat, kind)))
                    outcome.offered += 1
            offering_ended = time.time()
            await asyncio.gather(*tasks)
        outcome.seconds_offering = offering_ended - started
        arrivals = [
            event.at
            for chat_id in list(emulator._chats)
            for event in emulator.chat_events(chat_id)
            if event.from_bot
        ]
        outcome.accepted_while_waiting = sum(started <= at <= offering_ended for at in arrivals)
        outcome.refused_429 = emulator.caps.refused
        if emulator.caps.refused_by:
            outcome.refused_by = " " + ",".join(
                f"{cap}:{n}" for cap, n in sorted(emulator.caps.refused_by.items())
            )
    return outcome


async def budget_cost(database_url: str, messages: int = 2000) -> float:
    """Milliseconds of database work per message for the shared budget (one short
    transaction, three statements, on an idle PostgreSQL)."""
    from storage.opening import open_database
    from storage.send_budget import NO_LIMIT, PostgresBudget

    async with open_database(database_url) as database:
        budget = PostgresBudget(database, interval=1 / 28, chat_interval=1.05)
        started = time.perf_counter()
        for index in range(messages):
            now = time.time()
            await budget.take_slot(chat_id=index, now=now, horizon=NO_LIMIT)
        return (time.perf_counter() - started) * 1000 / messages


async def main_async(quick: bool) -> None:
    from testkit.postgres import PostgresServer, find_bindir

    seconds = 10.0 if quick else 30.0
    bindir = find_bindir()
    server = PostgresServer(bindir) if bindir else None
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory() as folder:
        sqlite_url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        from storage.opening import open_database

        async with open_database(sqlite_url):
            pass
        outcomes.append(
            await run_case("1 process, limiter off", sqlite_url, 1, limited=False, seconds=seconds)
        )
        outcomes.append(
            await run_case("1 process (memory)", sqlite_url, 1, limited=True, seconds=seconds)
        )
        if server is None:
            print("PostgreSQL not installed: the multi-process cases are skipped")
        else:
            server.start()
            try:
                template = await server.create_migrated_template()
                cost = await budget_cost(server.url(await server.create_database(template)))
                print(f"shared budget: {cost:.2f} ms of PostgreSQL round trips per message")
                for count in (2, 3):
                    name = await server.create_database(template)
                    outcomes.append(
                        await run_case(
                            f"{count} processes (PostgreSQL)",
                            server.url(name),
                            count,
                            limited=True,
                            seconds=seconds,
                        )
                    )
            finally:
                server.stop()
    print(f"offered {OFFERED_PER_S}/s for {seconds:.0f} s (twice the cap), emulator caps strict")
    for outcome in outcomes:
        print(outcome.line(), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the cases and print one line each."""
    parser = argparse.ArgumentParser(prog="bench.bench_send")
    parser.add_argument("--quick", action="store_true", help="10 s of offered load, not 30")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main_async(args.quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
