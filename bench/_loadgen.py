"""The load generator of the flow benchmark: the Bot API emulator and simulated phones.

Run by `bench.bench_flow` as `python -m bench._loadgen CONFIG_JSON`. It starts the emulator on
127.0.0.1, prints `ready` with the port, waits for `go` on stdin, drives the users, prints
`result` and exits after `stop`. Users act through the emulator's in-process API, so no HTTP
is spent on them; only the bot's own Bot API calls cross the loopback.

Closed loop (`timed`, `all`): each user waits for the bot's answer before the next message,
like a phone. Open loop (`open`): messages leave at a fixed rate whether or not earlier ones
were answered; a pool of users supplies them, each still in conversation order.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import math
import re
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from bench._common import USER_BASE, JSONDict, emit, people, percentile
from bot.dates import format_date_id
from bot.emulator import BotApiEmulator, EmulatedUser
from bot.regions import load_regions

# Bounds on every wait, so a stuck bot ends the run instead of hanging it.
GO_TIMEOUT = 300.0
STOP_TIMEOUT = 600.0
FAILURE_SAMPLES = 3

StepKind = Literal["send", "press", "contact"]


@dataclass(frozen=True)
class Step:
    """One user action (one Telegram update) and the bot answer that completes it."""

    kind: StepKind
    value: str
    expect: re.Pattern[str]


def _step(kind: StepKind, value: str, expect: str) -> Step:
    return Step(kind, value, re.compile(expect))


def spaced(nik: str) -> str:
    """A NIK the way workers type it: in groups of four."""
    return " ".join(nik[i : i + 4] for i in range(0, 16, 4))


def registration(index: int, count: int) -> list[Step]:
    """The whole registration of person `index`, as `tests/test_registration.py` walks it."""
    person = people(count)[index]
    regions = load_regions()
    kecamatan = regions.district(person.kode_wilayah[:6])
    kelurahan = regions.village(person.kode_wilayah)
    assert kecamatan is not None
    assert kelurahan is not None
    return [
        _step("send", "/start", r"Selamat datang"),
        _step("press", "✅ Setuju", r"\(1/9\) Kirim NIK"),
        _step("send", spaced(person.nik), r"\(2/9\)"),
        _step("send", person.name, r"\(3/9\)"),
        _step("send", format_date_id(person.birth_date), r"\(4/9\) Kirim nomor HP"),
        _step("contact", person.phone, r"\(5/9\)"),
        _step("press", "Sopir", r"\(6/9\)"),
        _step("press", kecamatan.name, r"\(6/9\) Pilih kelurahan"),
        _step("press", kelurahan.name, r"\(7/9\)"),
        _step("send", "Jl. Melati No. 5 RT 01/RW 02", r"\(8/9\)"),
        _step("send", "Siti Aminah", r"\(9/9\)"),
        _step("press", "Suami/Istri", r"Periksa kembali data Anda"),
        _step("press", "✅ Kirim", r"Pendaftaran Anda sudah dikirim"),
    ]


ECHO_STEPS = 13  # as many updates per user as a registration, so users churn at the same pace


def echo(index: int, _count: int) -> list[Step]:
    """Plain text messages; the echo bot repeats each one."""
    return [_step("send", f"halo {index} {n}", rf"^halo {index} {n}$") for n in range(ECHO_STEPS)]


@dataclass
class Config:
    """What the parent asked for (see `bench.bench_flow`)."""

    scenario: str
    mode: str
    users: int
    people: int
    latency: float = 0.0
    concurrency: int = 1000
    draft_steps: int = 4
    warmup: float = 2.0
    ramp: float = 0.0
    duration: float = 10.0
    rate: float = 100.0
    deadline: float = 5.0
    step_timeout: float = 60.0
    cap: float = 300.0

    def script(self) -> Callable[[int], list[Step]]:
        """The steps of user `index` in this scenario."""
        count = self.people
        if self.scenario == "echo":
            return lambda index: echo(index, count)
        if self.scenario == "drafts":
            return lambda index: registration(index, count)[: self.draft_steps]
        return lambda index: registration(index, count)


@dataclass
class Recorder:
    """Every answered update as (sent, answered) wall times, plus what went wrong."""

    answered: list[tuple[float, float, int]] = field(default_factory=list)
    sent: int = 0
    failures: int = 0
    completed: int = 0
    exhausted: bool = False
    samples: list[str] = field(default_factory=list)

    def fail(self, detail: str) -> None:
        self.failures += 1
        if len(self.samples) < FAILURE_SAMPLES:
            self.samples.append(detail[:1500])


async def perform(user: EmulatedUser, step: Step) -> None:
    """Send the update of one step."""
    if step.kind == "send":
        await user.send(step.value)
    elif step.kind == "press":
        await user.press(step.value)
    else:
        await user.share_contact(step.value)


async def answer_time(user: EmulatedUser, step: Step, within: float) -> float:
    """Wait for the step's answer; its time is when the bot's call reached the emulator."""
    await user.expect(step.expect, timeout=within)
    return user.transcript()[user.cursor - 1].at


async def run_user(
    emulator: BotApiEmulator,
    index: int,
    steps: list[Step],
    recorder: Recorder,
    *,
    stop_at: float,
    within: float,
) -> None:
    """One phone, closed loop: send, wait for the answer, send the next."""
    user = emulator.user(USER_BASE + index)
    for number, step in enumerate(steps):
        if time.time() >= stop_at:
            return
        sent = time.time()
        try:
            await perform(user, step)
            recorder.sent += 1
            answered = await answer_time(user, step, within)
        except AssertionError as error:
            recorder.fail(str(error))
            return
        recorder.answered.append((sent, answered, number))
    recorder.completed += 1


def cpu_seconds() -> float:
    """This process's CPU time (emulator plus users)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def latency_summary(latencies: list[float]) -> JSONDict:
    """p50/p90/p99/max in milliseconds (inf when more than that share went unanswered)."""
    ordered = sorted(latencies)

    def ms(value: float) -> float | None:
        return None if math.isinf(value) or math.isnan(value) else round(value * 1000, 1)

    return {
        "p50_ms": ms(percentile(ordered, 0.50)),
        "p90_ms": ms(percentile(ordered, 0.90)),
        "p99_ms": ms(percentile(ordered, 0.99)),
        "max_ms": ms(ordered[-1]) if ordered else None,
    }


async def closed_timed(emulator: BotApiEmulator, config: Config) -> JSONDict:
    """`users` phones at once for warmup + duration; new users replace those who finish."""
    recorder = Recorder()
    script = config.script()
    start = time.time()
    window_start = start + config.warmup
    window_end = window_start + config.duration
    counter = itertools.count()
    marks: dict[str, tuple[float, collections.Counter[str]]] = {}

    async def mark(name: str, at: float) -> None:
        await asyncio.sleep(max(at - time.time(), 0.0))
        marks[name] = (cpu_seconds(), collections.Counter(emulator.calls))

    async def slot(number: int) -> None:
        # Staggered starts desynchronise the phones, so the measured window sees every step
        # of the conversation in its usual proportion rather than a wave of /start.
        await asyncio.sleep(config.ramp * number / config.users)
        while time.time() < window_end:
            index = next(counter)
            if index >= config.people:
                recorder.exhausted = True
                return
            await run_user(
                emulator,
                index,
                script(index),
                recorder,
                stop_at=window_end,
                within=config.step_timeout,
            )

    bound = config.warmup + config.duration + config.step_timeout + 10
    await asyncio.wait_for(
        asyncio.gather(
            mark("start", window_start),
            mark("end", window_end),
            *(slot(number) for number in range(config.users)),
        ),
        bound,
    )
    in_window = [a - s for s, a, _ in recorder.answered if window_start <= a < window_end]
    steps = collections.Counter(
        n for _, a, n in recorder.answered if window_start <= a < window_end
    )
    cpu = marks["end"][0] - marks["start"][0]
    calls = marks["end"][1] - marks["start"][1]
    polls = calls.pop("getUpdates", 0)
    return {
        "updates_per_get_updates": len(in_window) / max(polls, 1),
        "window": [window_start, window_end],
        "answered_in_window": len(in_window),
        "updates_per_s": len(in_window) / config.duration,
        "latency": latency_summary(in_window),
        "loadgen_cpu_util": cpu / config.duration,
        "api_calls_per_update": sum(calls.values()) / max(len(in_window), 1),
        "api_calls": dict(calls),
        "answered_by_step": [steps.get(n, 0) for n in range(max(steps, default=-1) + 1)],
        **_totals(recorder),
    }


async def closed_all(emulator: BotApiEmulator, config: Config) -> JSONDict:
    """`users` phones, at most `concurrency` at a time, each through its whole script."""
    recorder = Recorder()
    script = config.script()
    gate = asyncio.Semaphore(config.concurrency)
    started = time.time()
    cpu_start = cpu_seconds()
    stop_at = started + config.cap

    async def one(index: int) -> None:
        async with gate:
            await run_user(
                emulator,
                index,
                script(index),
                recorder,
                stop_at=stop_at,
                within=config.step_timeout,
            )

    await asyncio.wait_for(
        asyncio.gather(*(one(i) for i in range(config.users))),
        config.cap + config.step_timeout + 10,
    )
    answered = recorder.answered
    first = min((s for s, _, _ in answered), default=started)
    last = max((a for _, a, _ in answered), default=started)
    wall = max(last - first, 1e-9)
    calls = collections.Counter(emulator.calls)
    polls = calls.pop("getUpdates", 0)
    return {
        "updates_per_get_updates": len(answered) / max(polls, 1),
        "window": [first, last],
        "wall_s": wall,
        "answered": len(answered),
        "updates_per_s": len(answered) / wall,
        "latency": latency_summary([a - s for s, a, _ in answered]),
        "loadgen_cpu_util": (cpu_seconds() - cpu_start) / max(time.time() - started, 1e-9),
        "api_calls_per_update": sum(calls.values()) / max(len(answered), 1),
        "hit_cap": time.time() >= stop_at,
        **_totals(recorder),
    }


@dataclass
class _Phone:
    user: EmulatedUser
    steps: list[Step]
    position: int = 0


async def open_loop(emulator: BotApiEmulator, config: Config) -> JSONDict:
    """Messages at `rate` per second for `duration`, each answered within `deadline` or not."""
    recorder = Recorder()
    script = config.script()
    counter = itertools.count()
    ready: collections.deque[_Phone] = collections.deque()
    # Served latencies; unanswered messages count as infinitely late in the percentiles.
    latencies: list[float] = []
    not_sent = 0

    def fresh() -> None:
        index = next(counter)
        if index >= config.people:
            recorder.exhausted = True
            return
        ready.append(_Phone(emulator.user(USER_BASE + index), script(index)))

    async def await_answer(phone: _Phone, step: Step, sent: float) -> None:
        try:
            answered = await answer_time(phone.user, step, config.deadline)
        except AssertionError as error:
            recorder.fail(str(error))
            latencies.append(math.inf)
            fresh()  # this conversation is out of step now; a new user takes its place
            return
        latencies.append(answered - sent)
        recorder.answered.append((sent, answered, phone.position))
        phone.position += 1
        if phone.position == len(phone.steps):
            recorder.completed += 1
            fresh()
        else:
            ready.append(phone)

    for _ in range(config.users):
        fresh()
    total = int(config.rate * config.duration)
    interval = 1.0 / config.rate
    waiting: set[asyncio.Task[None]] = set()
    started = time.time()
    cpu_start = cpu_seconds()
    for k in range(total):
        # A fixed schedule: a late tick sends at once rather than shifting every later one.
        await asyncio.sleep(max(started + k * interval - time.time(), 0.0))
        if not ready:
            not_sent += 1  # every user is still waiting for an answer: the bot is behind
            latencies.append(math.inf)
            continue
        phone = ready.popleft()
        step = phone.steps[phone.position]
        sent = time.time()
        try:
            await perform(phone.user, step)
        except AssertionError as error:
            recorder.fail(str(error))
            latencies.append(math.inf)
            fresh()
            continue
        recorder.sent += 1
        task = asyncio.create_task(await_answer(phone, step, sent))
        waiting.add(task)
        task.add_done_callback(waiting.discard)
    offered_s = time.time() - started
    if waiting:
        await asyncio.wait(waiting, timeout=config.deadline + 5)
    served = sum(1 for value in latencies if value <= config.deadline)
    return {
        "window": [started, started + offered_s],
        "offered": total,
        "offered_rate": total / max(offered_s, 1e-9),
        "served_within_deadline": served,
        "served_pct": 100.0 * served / max(total, 1),
        "not_sent_no_ready_user": not_sent,
        "latency": latency_summary(latencies),
        "latency_served": latency_summary([v for v in latencies if v <= config.deadline]),
        "loadgen_cpu_util": (cpu_seconds() - cpu_start) / max(time.time() - started, 1e-9),
        **_totals(recorder),
    }


def _totals(recorder: Recorder) -> JSONDict:
    return {
        "sent": recorder.sent,
        "answered_total": len(recorder.answered),
        "failures": recorder.failures,
        "failure_samples": recorder.samples,
        "completed_users": recorder.completed,
        "people_exhausted": recorder.exhausted,
    }


async def read_command(reader: asyncio.StreamReader, wanted: str, within: float) -> bool:
    """Wait for a command line; False when stdin closes or the wait times out."""
    try:
        async with asyncio.timeout(within):
            while True:
                line = await reader.readline()
                if not line:
                    return False
                if json.loads(line).get("cmd") == wanted:
                    return True
    except TimeoutError:
        return False


async def main_async(config: Config) -> None:
    """Emulator up, wait for the bot, run the load, report, wait for the bot to stop."""
    if config.scenario != "echo":
        people(config.people)  # build the synthetic people before the clock starts
    emulator = BotApiEmulator(latency=config.latency)
    await emulator.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        emit({"event": "ready", "port": emulator.port})
        if not await read_command(reader, "go", GO_TIMEOUT):
            return
        runner = {"timed": closed_timed, "all": closed_all, "open": open_loop}[config.mode]
        result = await runner(emulator, config)
        emit({"event": "result", **result})
        # The bot's last getUpdates (confirming the offset) must still find the emulator.
        await read_command(reader, "stop", STOP_TIMEOUT)
    finally:
        await emulator.stop()


def main() -> None:
    """Entry point: the configuration is the one JSON argument."""
    asyncio.run(main_async(Config(**json.loads(sys.argv[1]))))


if __name__ == "__main__":
    main()
