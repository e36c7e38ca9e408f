"""The load generator of the flow benchmark: the Bot API emulator and simulated phones.

Run by `bench.bench_flow` as `python -m bench._loadgen CONFIG_JSON`. It starts the emulator on
127.0.0.1, prints `ready` with the port, waits for `go` on stdin, drives the users, prints
`result` and exits after `stop`. Users act through the emulator's in-process API, so no HTTP
is spent on them; only the bot's own Bot API calls cross the loopback.

Closed loop (`timed`, `all`): each user waits for the bot's answer before the next message,
like a phone. Open loop (`open`): messages leave at a fixed rate whether or not earlier ones
were answered; a pool of users supplies them, each still in conversation order. Launch
(`launch`, for `bench.bench_load`): workers arrive on a ramped schedule, each closed loop with a
pause to think, while staff accounts approve through the real review commands and buttons.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import itertools
import json
import math
import os
import random
import re
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from bench._common import USER_BASE, JSONDict, StallMonitor, emit, people, percentile
from domain.dates import format_date_id
from domain.regions import load_regions
from emulator import BotApiEmulator, BotMessage, EmulatedUser

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
        _step("send", "Jl. Melati No. 5 RT 01/RW 02", r"\(6/9\)"),
        _step("press", kecamatan.name, r"\(6/9\) Pilih kelurahan"),
        _step("press", kelurahan.name, r"\(7/9\)"),
        _step("press", "Sopir", r"\(8/9\)"),
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
    # `launch` (bench.bench_load): workers arrive, ramping up to `arrival_rate` per second
    # over `ramp` seconds, and each pauses about `think` seconds before every answer after the
    # first; the `reviewers` approve meanwhile. Then the capacity phase: `capacity_users`
    # phones, closed loop, over fresh people from index `workers` on.
    workers: int = 0
    arrival_rate: float = 15.0
    think: float = 3.0
    reviewers: tuple[int, ...] = ()
    reviewer_think: float = 0.2
    queue_every: int = 25
    capacity_users: int = 0
    capacity_warmup: float = 10.0
    capacity_duration: float = 20.0
    first_index: int = 0
    # CPUs this process keeps to (empty: any), so the bot's CPU time is its own.
    cpus: tuple[int, ...] = ()

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
    # Messages and edits the bot put into each finished conversation's chat: what one
    # registration costs of Telegram's ~30 messages/s.
    messages: list[int] = field(default_factory=list)

    def fail(self, detail: str) -> None:
        self.failures += 1
        if len(self.samples) < FAILURE_SAMPLES:
            self.samples.append(detail[:1500])

    def complete(self, user: EmulatedUser) -> None:
        """A conversation answered to its end: count it and what it cost in messages."""
        self.completed += 1
        self.messages.append(
            sum(1 for e in user.transcript() if e.from_bot and e.kind in ("message", "edit"))
        )


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
    recorder.complete(user)


def cpu_seconds() -> float:
    """This process's CPU time (emulator plus users)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def latency_summary(latencies: list[float]) -> JSONDict:
    """p50/p90/p95/p99/max in milliseconds (inf when more than that share went unanswered)."""
    ordered = sorted(latencies)

    def ms(value: float) -> float | None:
        return None if math.isinf(value) or math.isnan(value) else round(value * 1000, 1)

    return {
        "p50_ms": ms(percentile(ordered, 0.50)),
        "p90_ms": ms(percentile(ordered, 0.90)),
        "p95_ms": ms(percentile(ordered, 0.95)),
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
    counter = itertools.count(config.first_index)
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
            recorder.complete(phone.user)
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


# --- launch morning (bench.bench_load) -------------------------------------------------------

# What the reviewer's chat shows, in the default language (id).
QUEUE_SHOWN = re.compile(r"Menunggu verifikasi")
CARD_OR_EMPTY = re.compile(r"Pendaftaran (\S+) · |Tidak ada (lagi )?yang menunggu verifikasi")
DECIDED = re.compile(r"disetujui\. Kuota terpakai|Tidak ada perubahan|Kuota penuh")


def arrival_times(config: Config) -> list[float]:
    """When each worker starts, in seconds from go: a linear ramp to `arrival_rate`, then flat.

    Arrivals by time t are rate*t²/(2*ramp) during the ramp and grow by `rate` a second after;
    worker i starts where that count reaches i.
    """
    rate, ramp = config.arrival_rate, config.ramp
    during_ramp = rate * ramp / 2
    times = []
    for i in range(config.workers):
        if i < during_ramp:
            times.append(math.sqrt(2 * ramp * i / rate))
        else:
            times.append(ramp + (i - during_ramp) / rate)
    return times


@dataclass
class StaffStats:
    """What the reviewers did: decisions by outcome, answer latencies, failures."""

    answered: list[tuple[float, float]] = field(default_factory=list)
    approved: int = 0
    already_decided: int = 0
    waitlisted: int = 0
    empty_queue: int = 0
    queue_views: int = 0
    failures: int = 0
    samples: list[str] = field(default_factory=list)


async def run_reviewer(
    emulator: BotApiEmulator, user_id: int, config: Config, stats: StaffStats, done: asyncio.Event
) -> None:
    """One reviewer at the real staff commands until the workers are done.

    /antrian now and then, /tinjau for the next card, "✅ Setujui" on it, "Berikutnya ▶" on
    the outcome for the next card; an empty queue means a short wait and /tinjau again. Two
    reviewers may open the same card: the second hears "Tidak ada perubahan", as in the office.
    """
    user = emulator.user(user_id, first_name="Petugas")
    rng = random.Random(user_id)

    async def act(action: Awaitable[object], expect: re.Pattern[str]) -> BotMessage:
        sent = time.time()
        await action
        message = await user.expect(expect, timeout=config.step_timeout)
        stats.answered.append((sent, user.transcript()[user.cursor - 1].at))
        return message

    async def pause() -> None:
        await asyncio.sleep(config.reviewer_think * rng.uniform(0.5, 1.5))

    since_queue = config.queue_every
    card: BotMessage | None = None
    try:
        while not done.is_set():
            if since_queue >= config.queue_every:
                await act(user.send("/antrian"), QUEUE_SHOWN)
                stats.queue_views += 1
                since_queue = 0
                await pause()
            if card is None:
                card = await act(user.send("/tinjau"), CARD_OR_EMPTY)
            if not card.text.startswith("Pendaftaran"):
                stats.empty_queue += 1
                card = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 1.0)
                continue
            await pause()
            outcome = await act(user.press("✅ Setujui", message_id=card.message_id), DECIDED)
            # "Tidak ada perubahan: X sudah disetujui" also says disetujui: test it first.
            if "Tidak ada perubahan" in outcome.text:
                stats.already_decided += 1
            elif "Kuota penuh" in outcome.text:
                stats.waitlisted += 1
            else:
                stats.approved += 1
            since_queue += 1
            await pause()
            card = await act(
                user.press("Berikutnya ▶", message_id=outcome.message_id), CARD_OR_EMPTY
            )
    except AssertionError as error:
        stats.failures += 1
        if len(stats.samples) < FAILURE_SAMPLES:
            stats.samples.append(str(error)[:1500])


async def run_worker(
    emulator: BotApiEmulator,
    index: int,
    steps: list[Step],
    recorder: Recorder,
    *,
    think: float,
    within: float,
) -> None:
    """One worker through the whole registration, pausing to read and type before each answer."""
    user = emulator.user(USER_BASE + index)
    rng = random.Random(index)
    for number, step in enumerate(steps):
        if number:
            await asyncio.sleep(think * rng.uniform(0.5, 1.5))
        sent = time.time()
        try:
            await perform(user, step)
            recorder.sent += 1
            answered = await answer_time(user, step, within)
        except AssertionError as error:
            recorder.fail(str(error))
            return
        recorder.answered.append((sent, answered, number))
    recorder.complete(user)


async def launch(emulator: BotApiEmulator, config: Config) -> JSONDict:
    """Launch morning with reviewers approving, then the capacity phase; both results."""
    recorder = Recorder()
    stats = StaffStats()
    script = config.script()
    schedule = arrival_times(config)
    done = asyncio.Event()
    started = time.time()
    cpu_start = cpu_seconds()

    async def worker(index: int, at: float) -> None:
        await asyncio.sleep(max(started + at - time.time(), 0.0))
        await run_worker(
            emulator,
            index,
            script(index),
            recorder,
            think=config.think,
            within=config.step_timeout,
        )

    reviewers = [
        asyncio.create_task(run_reviewer(emulator, uid, config, stats, done))
        for uid in config.reviewers
    ]
    # Every wait inside is bounded by step_timeout; this bounds the whole phase as well.
    bound = (schedule[-1] if schedule else 0.0) + 14 * (config.think * 1.5 + config.step_timeout)
    await asyncio.wait_for(
        asyncio.gather(*(worker(i, at) for i, at in enumerate(schedule))), bound
    )
    done.set()
    await asyncio.wait_for(asyncio.gather(*reviewers), config.step_timeout * 3 + 5)
    ended = time.time()
    loadgen_cpu = cpu_seconds() - cpu_start
    workers_latency = [a - s for s, a, _ in recorder.answered]
    staff_latency = [a - s for s, a in stats.answered]
    last_answer = max((a for _, a, _ in recorder.answered), default=ended)
    # The plateau: every worker arrived at the full rate, before the last one began.
    plateau = (started + config.ramp, started + (schedule[-1] if schedule else 0.0))
    plateau_s = max(plateau[1] - plateau[0], 1e-9)
    in_plateau = sum(1 for _, a, _ in recorder.answered if plateau[0] <= a < plateau[1])
    in_plateau += sum(1 for _, a in stats.answered if plateau[0] <= a < plateau[1])
    total = len(recorder.answered) + len(stats.answered)
    calls = collections.Counter(emulator.calls)
    polls = calls.pop("getUpdates", 0)
    result: JSONDict = {
        "window": [started, last_answer],
        "wall_s": last_answer - started,
        "answered": total,
        "updates_per_s": total / max(last_answer - started, 1e-9),
        "plateau_window": list(plateau),
        "plateau_updates_per_s": in_plateau / plateau_s,
        "offered_plateau_updates_per_s": config.arrival_rate * len(registration_steps(config)),
        "latency": latency_summary(workers_latency + staff_latency),
        "latency_workers": latency_summary(workers_latency),
        "latency_staff": latency_summary(staff_latency),
        "loadgen_cpu_util": loadgen_cpu / max(ended - started, 1e-9),
        "api_calls": dict(calls),
        "updates_per_get_updates": total / max(polls, 1),
        "staff": {
            "updates": len(stats.answered),
            "approved": stats.approved,
            "already_decided_by_another": stats.already_decided,
            "waitlisted": stats.waitlisted,
            "empty_queue": stats.empty_queue,
            "queue_views": stats.queue_views,
            "failures": stats.failures,
            "failure_samples": stats.samples,
        },
        **_totals(recorder),
    }
    if config.capacity_users:
        await asyncio.sleep(1.0)  # let the last notifications drain
        capacity = Config(
            scenario=config.scenario,
            mode="timed",
            users=config.capacity_users,
            people=config.people,
            ramp=min(config.capacity_warmup, 5.0),
            warmup=config.capacity_warmup,
            duration=config.capacity_duration,
            step_timeout=config.step_timeout,
            first_index=config.workers,
        )
        result["capacity"] = await closed_timed(emulator, capacity)
    return result


def registration_steps(config: Config) -> list[Step]:
    """The script of the first worker (every worker's has as many steps)."""
    return config.script()(0)


def _latency_by_step(recorder: Recorder) -> list[JSONDict]:
    """p50/p99 per step of the script: shows which step makes the tail."""
    by_step: dict[int, list[float]] = collections.defaultdict(list)
    for sent, answered, step in recorder.answered:
        by_step[step].append(answered - sent)
    return [
        {"step": step, "answered": len(values), **latency_summary(values)}
        for step, values in sorted(by_step.items())
    ]


def _slowest_seconds(recorder: Recorder, count: int = 12) -> list[JSONDict]:
    """The seconds whose updates waited longest (by send time): is a tail periodic?"""
    if not recorder.answered:
        return []
    start = min(sent for sent, _, _ in recorder.answered)
    by_second: dict[int, list[float]] = collections.defaultdict(list)
    for sent, answered, _ in recorder.answered:
        by_second[int(sent - start)].append(answered - sent)
    worst = sorted(by_second.items(), key=lambda item: max(item[1]), reverse=True)[:count]
    return [
        {"second": second, "updates": len(values), "max_ms": round(max(values) * 1e3, 1)}
        for second, values in sorted(worst)
    ]


def _totals(recorder: Recorder) -> JSONDict:
    return {
        "latency_by_step": _latency_by_step(recorder),
        "slowest_seconds": _slowest_seconds(recorder),
        "sent": recorder.sent,
        "answered_total": len(recorder.answered),
        "failures": recorder.failures,
        "failure_samples": recorder.samples,
        "completed_users": recorder.completed,
        "messages_per_completed": (
            sum(recorder.messages) / len(recorder.messages) if recorder.messages else None
        ),
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


async def keep_heap_out_of_gc(every: float = 1.0) -> None:
    """Move what this process holds into the permanent generation, again and again.

    The emulator keeps every message of every chat and the phones their transcripts, so the
    heap only grows, and none of it is garbage; full collections over it paused this process
    0.65 s at 1,000 workers (measured) and, judging by the bot's 5 s timeouts that fired all at
    once, longer than that at 10,000.
    `gc.freeze()` is a list splice; young collections still free short-lived cycles.
    """
    while True:
        await asyncio.sleep(every)
        gc.freeze()


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
        runner = {
            "timed": closed_timed,
            "all": closed_all,
            "open": open_loop,
            "launch": launch,
        }[config.mode]
        stalls = StallMonitor()
        stalls.start()
        freezer = asyncio.create_task(keep_heap_out_of_gc())
        result = await runner(emulator, config)
        freezer.cancel()
        stalls.stop()
        emit({"event": "result", **result, "stalls": stalls.summary()})
        # The bot's last getUpdates (confirming the offset) must still find the emulator.
        await read_command(reader, "stop", STOP_TIMEOUT)
    finally:
        await emulator.stop()


def main() -> None:
    """Entry point: the configuration is the one JSON argument."""
    fields = json.loads(sys.argv[1])
    fields["reviewers"] = tuple(fields.get("reviewers", ()))
    fields["cpus"] = tuple(fields.get("cpus", ()))
    if fields["cpus"]:
        os.sched_setaffinity(0, fields["cpus"])
    asyncio.run(main_async(Config(**fields)))


if __name__ == "__main__":
    main()
