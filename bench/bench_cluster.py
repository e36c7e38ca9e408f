"""Launch morning through REAL webhook processes (issue 18): 1, 2 and 3 `rentan-bot run`
processes on one PostgreSQL behind the round-robin proxy (testkit/processes.py), the emulator
enforcing Telegram's caps, full registrations arriving at twice what the cap can carry, a
reviewer approving, with the production limiter (TELEGRAM_MAX_MESSAGES_PER_S=30) and with it
opened to 1000/s (today's "limiter off": only the per-chat spacing stays).

    python -m bench.bench_cluster [--quick]

Reported per case: messages (sends and edits) per completed registration; messages/s Telegram
accepted while work waited, against the cap of 30; p50/p99 answer time of answers mid-
conversation, of a newcomer's /start, and of decision notifications (the reviewer's /setujui
sent -> worker told); 429s. "While work waited" is the middle half of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench._common import BENCH_PII_SECRET, BENCH_TOKEN, USER_BASE, people, percentile
from bench._loadgen import Step, perform, registration
from emulator import BotApiEmulator, EmulatedUser
from testkit.fakes import row_of, seed_dtsen
from testkit.processes import ProcessCluster, SteadyHeap, cluster_environment

CAP = 30
REVIEWER = 900_700
# A registration is about 15 messages: twice the cap is this many newcomers a second.
ARRIVALS_PER_S = 2 * CAP / 15
THINK = (0.5, 1.5)
STEP_TIMEOUT = 90.0
APPROVED = re.compile(r"disetujui")


@dataclass
class Figures:
    """One case's measurements."""

    name: str
    completed: int = 0
    failed: int = 0
    messages: int = 0
    accepted_rate: float = 0.0
    refused: int = 0
    newcomer: list[float] = field(default_factory=list)
    conversation: list[float] = field(default_factory=list)
    notification: list[float] = field(default_factory=list)

    def line(self) -> str:
        def p(values: list[float]) -> str:
            ordered = sorted(values)
            if not ordered:
                return "  -  /  -  "
            return f"{percentile(ordered, 0.5):5.2f}/{percentile(ordered, 0.99):5.2f}"

        per = self.messages / max(self.completed, 1)
        return (
            f"{self.name:<32} done {self.completed:3d} (failed {self.failed})  "
            f"{per:4.1f} msg/registration  {self.accepted_rate:5.1f} msg/s = "
            f"{self.accepted_rate / CAP:4.0%} of {CAP}  429s {self.refused:4d}  p50/p99 s: "
            f"conversation {p(self.conversation)}  newcomer {p(self.newcomer)}  "
            f"notification {p(self.notification)}"
        )


async def _worker(
    user: EmulatedUser, steps: list[Step], figures: Figures, code_at: dict[int, float]
) -> None:
    rng = random.Random(user.id)
    for number, step in enumerate(steps):
        if number:
            await asyncio.sleep(rng.uniform(*THINK))
        sent = time.time()
        try:
            await perform(user, step)
            await user.expect(step.expect, timeout=STEP_TIMEOUT)
        except AssertionError:
            figures.failed += 1
            return
        waited = user.transcript()[user.cursor - 1].at - sent
        (figures.conversation if number else figures.newcomer).append(waited)
    figures.completed += 1
    code_at[user.id] = time.time()


async def _reviewer(
    user: EmulatedUser, codes: asyncio.Queue[tuple[int, str]], decided: dict[int, float]
) -> None:
    while True:
        worker, code = await codes.get()
        user.skip_to_end()
        sent = time.time()
        await user.send(f"/setujui {code}")
        try:
            await user.expect(re.compile(rf"{code}.*disetujui|Kuota penuh"), timeout=STEP_TIMEOUT)
        except AssertionError:
            continue
        decided[worker] = sent


async def run_case(
    name: str, database_url: str, processes: int, *, rate: float, seconds: float, folder: Path
) -> Figures:
    """Newcomers at ARRIVALS_PER_S for `seconds`, each through the whole registration."""
    figures = Figures(name)
    workers = int(seconds * ARRIVALS_PER_S)
    everyone = people(workers)
    emulator = BotApiEmulator(enforce_caps=True)
    emulator.webhook_retry_initial = 0.05
    await emulator.start()
    from storage.opening import open_database

    # A copy of the migrated template: already at the newest schema.
    async with open_database(database_url, migrate=False) as database:
        rows = [row_of(p, desil=1) for p in everyone]
        await seed_dtsen(database, BENCH_PII_SECRET.encode(), rows)
    cluster = ProcessCluster(env={}, count=processes, log_dir=folder)
    cluster.env = cluster_environment(
        api_url=emulator.root_url,
        database_url=database_url,
        token=BENCH_TOKEN,
        pii_secret=BENCH_PII_SECRET,
        webhook_url=await cluster.start_proxy(),
        processes=processes,
        reviewer_ids=REVIEWER,
        telegram_max_messages_per_s=rate,
        notification_interval_seconds=1,
        log_level="WARNING",
    )
    users = [emulator.user(USER_BASE + i) for i in range(workers)]
    reviewer = emulator.user(REVIEWER)
    codes: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    decided: dict[int, float] = {}
    done_at: dict[int, float] = {}
    heap = SteadyHeap()  # the emulator must not pause as no Telegram does
    heap.start()
    try:
        await cluster.start()
        started = time.time()

        async def arrive(index: int) -> None:
            await asyncio.sleep(index / ARRIVALS_PER_S)
            await _worker(users[index], registration(index, workers), figures, done_at)
            text = users[index].transcript()[users[index].cursor - 1].message.text
            found = re.search(r"[A-Z]{3}-[0-9A-Z]{6}", text)
            if found:
                await codes.put((users[index].id, found.group(0)))

        review = asyncio.create_task(_reviewer(reviewer, codes, decided))
        await asyncio.gather(*(arrive(i) for i in range(workers)))
        ended = time.time()
        await asyncio.sleep(5.0)  # decisions and their notifications drain
        review.cancel()
        await cluster.stop()
    finally:
        await cluster.stop()
        await emulator.stop()
        heap.stop()
    for user in users:
        events = [e for e in emulator.chat_events(user.id) if e.from_bot]
        figures.messages += sum(1 for e in events if not APPROVED.search(e.message.text))
        told = [e.at for e in events if APPROVED.search(e.message.text)]
        if told and user.id in decided:
            figures.notification.append(told[0] - decided[user.id])
    arrivals = [
        e.at
        for chat in [*users, reviewer]
        for e in emulator.chat_events(chat.id)
        if e.from_bot and started <= e.at <= ended
    ]
    # While work waits: the middle half of the run (the first arrivals ramp up, the last
    # registrations finish alone).
    quarter = (ended - started) / 4
    middle = [at for at in arrivals if started + quarter <= at <= ended - quarter]
    figures.accepted_rate = len(middle) / max(2 * quarter, 1e-9)
    figures.refused = emulator.caps.refused
    return figures


async def main_async(quick: bool) -> None:
    from testkit.postgres import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        print("PostgreSQL not installed: bench.bench_cluster needs it (make postgres)")
        return
    seconds = 15.0 if quick else 60.0
    server = PostgresServer(bindir)
    server.start()
    results: list[Figures] = []
    try:
        template = await server.create_migrated_template()
        # Quick only shortens the arrivals: 1, 2 and 3 processes are the figures.
        cases = [(n, 30.0) for n in (1, 2, 3)] + [(3, 1000.0)]
        for processes, rate in cases:
            label = "limiter 1000/s (~off)" if rate > CAP else "limiter on"
            with tempfile.TemporaryDirectory() as folder:
                database = await server.create_database(template)
                results.append(
                    await run_case(
                        f"{processes} process{'es' if processes > 1 else ''}, {label}",
                        server.url(database),
                        processes,
                        rate=rate,
                        seconds=seconds,
                        folder=Path(folder),
                    )
                )
            print(results[-1].line(), flush=True)
    finally:
        server.stop()
    print(
        f"newcomers at {ARRIVALS_PER_S:.1f}/s for {seconds:.0f} s (about twice the cap of {CAP}"
        " messages/s), emulator caps strict, real `rentan-bot run` processes"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the cases and print one line each."""
    parser = argparse.ArgumentParser(prog="bench.bench_cluster")
    parser.add_argument("--quick", action="store_true", help="15 s of arrivals instead of 60")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main_async(args.quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
