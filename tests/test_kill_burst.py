"""SIGKILL of a real `rentan-bot run` at random points of a registration and approval burst."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from bot.app import migrate_database
from domain.lifecycle import Status
from domain.regions import load_regions
from emulator import BotApiEmulator, BotMessage, EmulatedUser, TranscriptEvent
from storage.engine import Database
from storage.models import Application, AuditEvent
from storage.review import ReviewRepository
from testkit.factories import Person, make_people
from testkit.fakes import row_of, seed_dtsen
from testkit.harness import TEST_PII_SECRET, TEST_TOKEN, make_settings
from tests.test_registration import CODE
from tests.test_restarts import _start_process

SEED = 20261125
# The same burst on both backends: its ~12 s go to the restarts and the waits below, not to
# the workers (6 workers took as long as 12).
WORKERS = 12
QUOTA = 5
KILLS = 2
REVIEWER = 900002
# Without an answer for this long, a worker sends /start to see where they are (as people do).
# (The production send limiter spaces one chat's messages 1,2 s apart, Telegram's 1 a second per
# chat: an answer of two messages takes over a second, so a nudge sooner only adds traffic.)
PROD_AFTER = 3.0
ACKNOWLEDGED = re.compile(r"Pendaftaran Anda sudah dikirim")
ALREADY = re.compile(r"Anda sudah punya pendaftaran")
RESUMED = re.compile(r"Pendaftaran Anda belum selesai")
WELCOME = re.compile(r"Selamat datang")
# A /start the bot never answered (it died holding it) is sent again after this long.
NUDGE_AGAIN = 8.0
DECIDED = re.compile(r"disetujui|Kuota penuh|Tidak ada perubahan")
REQUIRED = (
    "code", "nik", "nik_hash", "nama", "tanggal_lahir", "phone", "occupation", "kecamatan_code",
    "kelurahan_code", "alamat", "heir_name", "heir_relation", "consent_at", "submitted_at",
)  # fmt: skip

Act = Callable[[EmulatedUser, BotMessage], Awaitable[None]]


def _answers(person: Person) -> list[tuple[re.Pattern[str], Act]]:
    """What a worker does on each question, most specific question first."""
    regions = load_regions()
    district = regions.district(person.kode_wilayah[:6])
    village = regions.village(person.kode_wilayah)
    assert district is not None
    assert village is not None

    def press(label: str) -> Act:
        async def act(user: EmulatedUser, message: BotMessage) -> None:
            if label in message.button_labels():
                await user.press(label, message_id=message.message_id)

        return act

    def send(text: str) -> Act:
        async def act(user: EmulatedUser, _message: BotMessage) -> None:
            await user.send(text)

        return act

    async def contact(user: EmulatedUser, _message: BotMessage) -> None:
        await user.share_contact(person.phone)

    table: list[tuple[str, Act]] = [
        (r"Periksa kembali", press("✅ Kirim")),
        (r"\(9/9\)", press("Orang tua")),
        (r"\(8/9\)", send("Dewi Lestari")),
        (r"\(7/9\)", press("Kuli bangunan")),
        (r"\(6/9\) Pilih kelurahan", press(village.name)),
        (r"\(6/9\)", press(district.name)),
        (r"\(5/9\)", send("Gg. Kenari No. 3")),
        (r"\(4/9\)", contact),
        (r"\(3/9\)", send(f"{person.birth_date:%d/%m/%Y}")),
        (r"\(2/9\)", send(person.name)),
        (r"\(1/9\)", send(person.nik)),
        (r"Selamat datang", press("✅ Setuju")),
    ]
    return [(re.compile(pattern), act) for pattern, act in table]


@dataclass
class Burst:
    """What the emulated people saw: acknowledged numbers and the reviewer's answers."""

    acknowledged: dict[int, str] = field(default_factory=dict)
    approved_told: set[str] = field(default_factory=set)
    finished: set[int] = field(default_factory=set)


async def _worker(user: EmulatedUser, person: Person, burst: Burst) -> None:
    """Answer the bot's newest question. After a silence, send /start and wait for its answer
    (the current question, after a "belum selesai" preface): the bot handles one chat in order,
    so that answer is where the worker really is; questions before it may be stale repeats."""
    answers = _answers(person)
    loop = asyncio.get_running_loop()
    seen = len(user.transcript())
    await user.send("/start")
    acted_at = loop.time()
    resuming = True
    answered: str | None = None
    while True:
        events = [e for e in user.transcript()[seen:] if e.from_bot]
        seen = len(user.transcript()) if events else seen
        for event in events:
            if ACKNOWLEDGED.search(event.message.text):
                match = CODE.search(event.message.text)
                assert match is not None
                burst.acknowledged[user.id] = match.group(0)
        if user.id in burst.acknowledged or any(ALREADY.search(e.message.text) for e in events):
            burst.finished.add(user.id)
            return
        if resuming:
            starts = [i for i, e in enumerate(events) if RESUMED.search(e.message.text)]
            if starts:
                events, resuming, answered = events[starts[-1] :], False, None
            elif any(WELCOME.search(e.message.text) and e.message.buttons for e in events):
                resuming, answered = False, None
            else:
                events = []
        question = None if resuming else _latest_question(events, answers)
        # The same question twice in a row is a repeat, unless /start just showed it.
        if question is not None and question[0].text != answered:
            message, act = question
            await act(user, message)
            answered, acted_at = message.text, loop.time()
        elif loop.time() - acted_at > (NUDGE_AGAIN if resuming else PROD_AFTER):
            await user.send("/start")
            resuming, acted_at = True, loop.time()
        await asyncio.sleep(0.05)


def _latest_question(
    events: list[TranscriptEvent], answers: list[tuple[re.Pattern[str], Act]]
) -> tuple[BotMessage, Act] | None:
    """The newest question among new bot messages (an edit only records the answer pressed)."""
    for event in reversed(events):
        if event.kind != "message":
            continue
        for pattern, act in answers:
            if pattern.search(event.message.text):
                return event.message, act
    return None


async def _reviewer(user: EmulatedUser, burst: Burst, workers: int) -> None:
    """Approve every acknowledged number; an unanswered command is sent again later."""
    decided: set[str] = set()
    while len(burst.finished) < workers or set(burst.acknowledged.values()) - decided:
        waiting = sorted(set(burst.acknowledged.values()) - decided)
        if not waiting:
            await asyncio.sleep(0.1)
            continue
        code = waiting[0]
        seen = len(user.transcript())
        await user.send(f"/setujui {code}")
        for _ in range(60):
            replies = [e for e in user.transcript()[seen:] if e.from_bot]
            answer = next(
                (e for e in replies if code in e.message.text and DECIDED.search(e.message.text)),
                None,
            )
            if answer is not None:
                decided.add(code)
                if re.search(rf"{code} disetujui", answer.message.text):
                    burst.approved_told.add(code)
                break
            await asyncio.sleep(0.05)


async def test_sigkill_during_a_burst_of_registrations_and_approvals_loses_and_repeats_nothing(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> None:
    """Two SIGKILLs at seeded random moments while workers register and a reviewer approves:
    every acknowledged number exists once, no submitted row lacks a field, approvals match the
    rows, stay within the quota and are all audited, and every worker finishes from where they
    were (one consent each)."""
    settings = make_settings(f"http://127.0.0.1:{emulator.port}", database_url)
    await migrate_database(settings)
    people = make_people(WORKERS, seed=SEED)
    database = Database.from_url(database_url)
    await seed_dtsen(database, TEST_PII_SECRET.encode(), [row_of(p, desil=1) for p in people])
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
        "TELEGRAM_API_URL": f"http://127.0.0.1:{emulator.port}",
        "DATABASE_URL": database_url,
        "PII_SECRET": TEST_PII_SECRET,
        "REVIEWER_IDS": str(REVIEWER),
        "PROGRAM_QUOTA": str(QUOTA),
        # The harness's programme year, ahead of the wall clock: approvals buy months of cover.
        "PROGRAM_YEAR": str(settings.program_year),
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    log = tmp_path / "bot.log"
    rng = random.Random(SEED)
    burst = Burst()
    processes = [await _start_process(emulator, env, log)]

    async def kill_and_restart() -> None:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            processes[-1].send_signal(signal.SIGKILL)
            await asyncio.to_thread(processes[-1].wait, 10)
            processes.append(await _start_process(emulator, env, log))

    users = [emulator.user(600000 + index) for index in range(WORKERS)]
    try:
        async with asyncio.timeout(90):
            await asyncio.gather(
                kill_and_restart(),
                _reviewer(emulator.user(REVIEWER), burst, WORKERS),
                *(_worker(u, p, burst) for u, p in zip(users, people, strict=True)),
            )
        processes[-1].send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(processes[-1].wait, 20) == 0
        async with database.read() as session:
            rows = (await session.execute(sa.select(Application))).scalars().all()
            audit = (await session.execute(sa.select(AuditEvent))).scalars().all()
        taken = await ReviewRepository(database).places_taken()
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                await asyncio.to_thread(process.wait, 10)
        await database.dispose()

    assert len(processes) == KILLS + 1
    assert "Traceback" not in log.read_text()
    by_code = {row.code: row for row in rows if row.code}
    # Every number a worker was shown exists exactly once, for that worker.
    for user_id, code in burst.acknowledged.items():
        assert [r.telegram_user_id for r in rows if r.code == code] == [user_id]
    # Every worker finished, with one submitted application and one consent.
    submitted = [r for r in rows if r.status != Status.DRAFT]
    assert sorted(r.telegram_user_id for r in submitted) == sorted(u.id for u in users)
    consents = [e.actor_id for e in audit if e.action == "consent"]
    assert sorted(consents) == sorted(u.id for u in users)
    # No submitted application is half-written.
    for row in submitted:
        missing = [name for name in REQUIRED if getattr(row, name) is None]
        assert missing == [], f"{row.code} lacks {missing}"
    # Approvals: the count equals the rows, stays within the quota, each one audited.
    approved = [r for r in rows if r.status == Status.APPROVED]
    assert taken == len(approved) <= QUOTA
    assert burst.approved_told <= {r.code for r in approved}
    approvals = [e for e in audit if e.to_status == Status.APPROVED]
    assert sorted(e.application_id for e in approvals) == sorted(r.id for r in approved)
    assert all(
        by_code[c].status in (Status.APPROVED, Status.WAITLISTED)
        for c in burst.acknowledged.values()
    )
