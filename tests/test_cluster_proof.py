"""Issue 18's proof: three REAL `rentan-bot run` webhook processes on one PostgreSQL behind a
round-robin proxy, the emulator enforcing Telegram's caps and delivering webhooks. 200 workers
register (some in English) while two reviewers decide and `rentan-bot import-dtsen` runs in
another process; one bot process is SIGKILLed at seeded random moments and restarted.

At the issue's scale, at Telegram's real caps (30 messages a second per bot, 1 per chat): the
workers arrive over about 95 s, as many as the cap can carry (a registration is about 14
messages), and behave like patient people: they wait for the bot's answer, and only when their
question has not come after 30 s send their last answer again (then /start, to see where they
are). RENTAN_PROOF_WORKERS and RENTAN_PROOF_CAP (emulator and bot alike) scale it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from domain.lifecycle import Status
from domain.regions import load_regions
from emulator import BotApiEmulator, BotMessage, EmulatedUser, TranscriptEvent
from emulator.caps import CapLimits
from storage.engine import Database
from storage.models import Application, AuditEvent, Notification
from storage.notifications import IN_FLIGHT, MAX_ATTEMPTS
from storage.review import ReviewRepository
from testkit.factories import Person, make_people
from testkit.fakes import row_of, seed_dtsen
from testkit.harness import TEST_PII_SECRET, TEST_TOKEN, make_settings
from testkit.processes import ProcessCluster, SteadyHeap, cluster_environment
from tests.test_registration import CODE

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

SEED = 20261207
PROCESSES = 3
WORKERS = int(os.environ.get("RENTAN_PROOF_WORKERS", "200"))
# Every fifth worker (and refused newcomer) switches to English first.
ENGLISH_EVERY = 5
CAP = int(os.environ.get("RENTAN_PROOF_CAP", "30"))
# A worker arrives every ARRIVAL seconds (200 over 95 s) and reads and types for THINK seconds
# (from, to) before each answer: about as many messages as the cap carries, with the decisions
# on top (bench/bench_cluster.py offers twice the cap).
ARRIVAL = 0.475 * 30 / CAP
THINK = (0.5, 1.5)
# Newcomers who stop after the consent (longer than DRAFT_REMINDER_MINUTES): one reminder each.
IDLE = 6
# Newcomers missing from the first DTSEN extract: refused, then told once after the import.
LATE = 8
QUOTA = WORKERS * 3 // 4
KILLS = 3
ADMIN = 900001
REVIEWERS = (900101, 900102)
# A worker whose question has not come after RESEND_AFTER seconds sends their last answer
# again (its update may have died with a killed process); when still nothing comes after
# START_AFTER more, /start shows where they are. A reviewer sends a command again after it.
RESEND_AFTER = 30.0
START_AFTER = 20.0
REVIEW_AGAIN = 20.0
# Every wait of the test is bounded by this.
BURST_LIMIT = 200.0

DECIDED = re.compile(r"disetujui|Kuota penuh|Tidak ada perubahan")


@dataclass(frozen=True)
class Words:
    """What a worker reads and presses, in one language."""

    welcome: str
    agree: str
    occupation: str
    heir: str
    check: str
    send: str
    acknowledged: str
    already: str
    resumed: str
    refused: str
    reminder: str
    requalified: str
    decision: str
    # Words that only the other language's messages contain.
    foreign: str


INDONESIAN = Words(
    welcome=r"Selamat datang",
    agree="✅ Setuju",
    occupation="Kuli bangunan",
    heir="Orang tua",
    check=r"Periksa kembali",
    send="✅ Kirim",
    acknowledged=r"Pendaftaran Anda sudah dikirim",
    already=r"Anda sudah punya pendaftaran",
    resumed=r"Pendaftaran Anda belum selesai. Mari",
    refused=r"belum dapat dicocokkan",
    reminder=r"Pendaftaran Anda belum selesai. Kirim /start",
    requalified=r"Kabar baik",
    decision=r"sudah disetujui|daftar tunggu",
    foreign=r"\b(?:your|Your|Send|Please|application)\b",
)
ENGLISH = Words(
    welcome=r"Welcome to",
    agree="✅ I agree",
    occupation="Construction labourer",
    heir="Parent",
    check=r"Please check your data",
    send="✅ Send",
    acknowledged=r"Your application has been sent",
    already=r"You already have an application",
    resumed=r"You are in the middle of your registration",
    refused=r"could not match your data",
    reminder=r"Your registration is not finished yet",
    requalified=r"Good news",
    decision=r"has been approved|waiting list",
    foreign=r"\b(?:Anda|Kirim|Pendaftaran|Silakan|Pilih)\b",
)

Act = Callable[[EmulatedUser, BotMessage], Awaitable[None]]


def words_of(index: int) -> Words:
    return ENGLISH if index % ENGLISH_EVERY == 0 else INDONESIAN


def _answers(person: Person, words: Words) -> list[tuple[re.Pattern[str], Act]]:
    """What a worker does on each question, most specific first (as tests/test_kill_burst.py)."""
    regions = load_regions()
    district = regions.district(person.kode_wilayah[:6])
    village = regions.village(person.kode_wilayah)
    assert district is not None
    assert village is not None

    def press(*labels: str) -> Act:
        async def act(user: EmulatedUser, message: BotMessage) -> None:
            for label in labels:
                if label in message.button_labels():
                    await user.press(label, message_id=message.message_id)
                    return

        return act

    def send(text: str) -> Act:
        async def act(user: EmulatedUser, _message: BotMessage) -> None:
            await user.send(text)

        return act

    async def contact(user: EmulatedUser, _message: BotMessage) -> None:
        await user.share_contact(person.phone)

    table: list[tuple[str, Act]] = [
        (words.check, press(words.send)),
        (r"\(9/9\)", press(words.heir)),
        (r"\(8/9\)", send("Dewi Lestari")),
        (r"\(7/9\)", press(words.occupation)),
        # The kelurahan's buttons follow the kecamatan's under the same step number.
        (r"\(6/9\)", press(village.name, district.name)),
        (r"\(5/9\)", send("Gg. Kenari No. 3")),
        (r"\(4/9\)", contact),
        (r"\(3/9\)", send(f"{person.birth_date:%d/%m/%Y}")),
        (r"\(2/9\)", send(person.name)),
        (r"\(1/9\)", send(person.nik)),
        (words.welcome, press(words.agree)),
    ]
    return [(re.compile(pattern), act) for pattern, act in table]


@dataclass
class Burst:
    """What the emulated people saw."""

    acknowledged: dict[int, str] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)
    # Who left when the bot said what they were waiting for (stop_at).
    stopped: set[int] = field(default_factory=set)
    # The numbers a reviewer saw decided (by either reviewer).
    decided: set[str] = field(default_factory=set)


async def _choose_english(user: EmulatedUser) -> None:
    """/bahasa -> English, again when the answer was lost with a killed process."""
    while True:
        await user.send("/bahasa")
        try:
            choice = await user.expect(r"Pilih bahasa|Choose your language", timeout=RESEND_AFTER)
            await user.press("English", message_id=choice.message_id)
            await user.expect(r"Language set to English", timeout=RESEND_AFTER)
            return
        except AssertionError:
            continue


async def _worker(
    user: EmulatedUser,
    person: Person,
    words: Words,
    burst: Burst,
    *,
    stop_at: re.Pattern[str] | None = None,
) -> None:
    """Answer the bot's newest question (tests/test_kill_burst.py's worker, in either
    language), as a patient person: wait for the bot; when the next question has not come
    after RESEND_AFTER, send the last answer again; after START_AFTER more, /start shows where
    the worker really is. `stop_at`: leave when the bot says this."""
    if words is ENGLISH:
        await _choose_english(user)
    answers = _answers(person, words)
    acknowledged, already = re.compile(words.acknowledged), re.compile(words.already)
    resumed, welcome = re.compile(words.resumed), re.compile(words.welcome)
    rng = random.Random(user.id)
    loop = asyncio.get_running_loop()
    seen = len(user.transcript())

    async def start() -> None:
        await user.send("/start")

    await start()
    acted_at = loop.time()
    resuming = True
    answered: str | None = None
    # The last thing the worker did, to do again when the bot stays silent.
    last: Callable[[], Awaitable[None]] = start
    resent = False
    while True:
        events = [e for e in user.transcript()[seen:] if e.from_bot]
        seen = len(user.transcript()) if events else seen
        for event in events:
            if acknowledged.search(event.message.text):
                match = CODE.search(event.message.text)
                assert match is not None
                burst.acknowledged[user.id] = match.group(0)
            if stop_at is not None and stop_at.search(event.message.text):
                burst.stopped.add(user.id)
                return
        for event in events:
            if already.search(event.message.text):
                # The acknowledgement died with a killed process; this names the number too.
                match = CODE.search(event.message.text)
                assert match is not None
                burst.acknowledged.setdefault(user.id, match.group(0))
        if user.id in burst.acknowledged:
            burst.finished.add(user.id)
            return
        if resuming:
            starts = [i for i, e in enumerate(events) if resumed.search(e.message.text)]
            if starts:
                events, resuming, answered = events[starts[-1] :], False, None
            elif any(welcome.search(e.message.text) and e.message.buttons for e in events):
                resuming, answered = False, None
            else:
                events = []
        question = None if resuming else _latest_question(events, answers)
        if question is not None and question[0].text != answered:
            message, act = question
            await asyncio.sleep(rng.uniform(*THINK))  # reading and typing
            await act(user, message)
            answered, acted_at, resent = message.text, loop.time(), False
            last = functools.partial(act, user, message)
        elif not resent and loop.time() - acted_at > RESEND_AFTER:
            await last()
            resent, acted_at = True, loop.time()
        elif resent and loop.time() - acted_at > START_AFTER:
            await start()
            last, resent, resuming, acted_at = start, False, True, loop.time()
        await asyncio.sleep(0.2)


def _latest_question(
    events: list[TranscriptEvent], answers: list[tuple[re.Pattern[str], Act]]
) -> tuple[BotMessage, Act] | None:
    """The newest question among new bot messages; an edit that records a pressed button
    carries the next question too (one message or edit per answer)."""
    for event in reversed(events):
        if event.kind not in ("message", "edit"):
            continue
        for pattern, act in answers:
            if pattern.search(event.message.text):
                return event.message, act
    return None


async def _reviewer(user: EmulatedUser, burst: Burst, order: random.Random) -> None:
    """Decide every acknowledged number not yet seen decided, in random order (the other
    reviewer may beat us to it), one command at a time; a command unanswered after
    REVIEW_AGAIN is sent again."""
    decided = burst.decided
    while len(burst.finished) < WORKERS or set(burst.acknowledged.values()) - decided:
        waiting = [c for c in burst.acknowledged.values() if c not in decided]
        if not waiting:
            await asyncio.sleep(0.3)
            continue
        code = order.choice(waiting)
        user.skip_to_end()
        await user.send(f"/setujui {code}")
        either = rf"{code}.*(?:{DECIDED.pattern})|(?:{DECIDED.pattern}).*{code}"
        try:
            await user.expect(re.compile(either, re.S), timeout=REVIEW_AGAIN)
            decided.add(code)
        except AssertionError:
            continue


def _bot_messages(emulator: BotApiEmulator, chat_id: int) -> list[BotMessage]:
    return [e.message for e in emulator.chat_events(chat_id) if e.from_bot and e.kind == "message"]


async def _outbox(database: Database) -> list[Notification]:
    async with database.read() as session:
        return list((await session.execute(sa.select(Notification))).scalars())


def _dtsen_csv(path: Path, people: list[Person]) -> Path:
    lines = ["nik,nama,tanggal_lahir,jenis_kelamin,kode_wilayah,desil"]
    for p in people:
        lines.append(
            f"{p.nik},{p.name.upper()},{p.birth_date:%d-%m-%Y},{p.gender},{p.kode_wilayah},1"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def _import_dtsen(env: dict[str, str], source: Path, folder: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "import-dtsen", str(source),
        env=env, cwd=folder, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    return output.decode()


async def _arrive(at: float, work: Awaitable[None]) -> None:
    await asyncio.sleep(at)
    await work


async def test_three_webhook_processes_under_sigkill_lose_repeat_and_overspend_nothing(
    tmp_path: Path, database_url: str
) -> None:
    """200 workers register through 3 real processes while 2 reviewers decide, an import runs
    and a process is killed 3 times: every acknowledged number is one application, every
    decision, reminder and re-check offer reaches its worker once, approvals stay within the
    quota, every worker reads their own language, and Telegram never answers 429."""
    heap = SteadyHeap()  # the emulator must not pause as no Telegram does
    heap.start()
    emulator = BotApiEmulator(enforce_caps=True, cap_limits=CapLimits(per_bot=CAP))
    emulator.webhook_retry_initial = 0.05
    emulator.webhook_retry_max = 0.5
    await emulator.start()
    settings = make_settings(emulator.root_url, database_url)
    everyone = make_people(WORKERS + IDLE + LATE, seed=SEED)
    people, idle_people = everyone[:WORKERS], everyone[WORKERS : WORKERS + IDLE]
    late = everyone[WORKERS + IDLE :]
    database = Database.from_url(database_url)
    listed = [row_of(p, desil=1) for p in people + idle_people]
    await seed_dtsen(database, TEST_PII_SECRET.encode(), listed)
    cluster = ProcessCluster(env={}, count=PROCESSES, log_dir=tmp_path)
    env = cluster_environment(
        api_url=emulator.root_url,
        database_url=database_url,
        token=TEST_TOKEN,
        pii_secret=TEST_PII_SECRET,
        webhook_url=await cluster.start_proxy(),
        processes=PROCESSES,
        admin_ids=ADMIN,
        reviewer_ids=",".join(map(str, REVIEWERS)),
        program_quota=QUOTA,
        program_year=settings.program_year,
        telegram_max_messages_per_s=CAP,
        draft_reminder_minutes=1,
        housekeeping_interval_seconds=2,
        notification_interval_seconds=1,
        log_level="WARNING",
    )
    cluster.env = env
    rng = random.Random(SEED)
    burst = Burst()
    workers = [emulator.user(700000 + i) for i in range(WORKERS)]
    idle = [emulator.user(705000 + i) for i in range(IDLE)]
    newcomers = [emulator.user(710000 + i) for i in range(LATE)]
    emulator.user(ADMIN)
    imported: list[str] = []

    # Notifications a process held in flight when one was killed (the others' included).
    in_flight_at_kills: set[int | None] = set()

    async def kill_and_restart() -> None:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(5.0, 20.0))
            victim = rng.randrange(PROCESSES)
            await cluster.kill(victim)
            in_flight_at_kills.update(
                n.id
                for n in await _outbox(database)
                if n.sent_at is None and n.last_error == IN_FLIGHT
            )
            await asyncio.sleep(rng.uniform(0.2, 1.5))  # systemd's RestartSec
            await cluster.restart(victim)

    async def newcomers_then_import() -> None:
        await asyncio.gather(
            *(
                _worker(u, p, words_of(i), burst, stop_at=re.compile(words_of(i).refused))
                for i, (u, p) in enumerate(zip(newcomers, late, strict=True))
            )
        )
        source = _dtsen_csv(tmp_path / "dtsen.csv", everyone)
        imported.append(await _import_dtsen(env, source, tmp_path))

    try:
        await cluster.start()
        try:
            async with asyncio.timeout(BURST_LIMIT):
                await asyncio.gather(
                    kill_and_restart(),
                    newcomers_then_import(),
                    *(_reviewer(emulator.user(r), burst, random.Random(r)) for r in REVIEWERS),
                    *(
                        _worker(u, p, words_of(i), burst, stop_at=re.compile(r"\(1/9\)"))
                        for i, (u, p) in enumerate(zip(idle, idle_people, strict=True))
                    ),
                    *(
                        _arrive(i * ARRIVAL, _worker(u, p, words_of(i), burst))
                        for i, (u, p) in enumerate(zip(workers, people, strict=True))
                    ),
                )

        except TimeoutError:
            stuck = [u for u in workers if u.id not in burst.finished]
            raise AssertionError(
                f"finished {len(burst.finished)}, acknowledged {len(burst.acknowledged)}, "
                f"stopped {len(burst.stopped)}, decided {len(burst.decided)}, imported "
                f"{len(imported)}, caps {emulator.caps.stats()} {emulator.caps.refusals[:10]}; "
                "first stuck:\n" + (stuck[0].format_transcript(20) if stuck else "-")
            ) from None

        def reminded() -> bool:
            return all(
                any(re.search(words_of(i).reminder, m.text) for m in _bot_messages(emulator, u.id))
                for i, u in enumerate(idle)
            )

        # Notifications use spare capacity after the burst: wait until the outbox holds only
        # rows sent, given up, or lost in flight with a killed process (never sent twice).
        async def settled() -> bool:
            return reminded() and all(
                n.sent_at is not None or n.last_error == IN_FLIGHT or n.attempts >= MAX_ATTEMPTS
                for n in await _outbox(database)
            )

        for _ in range(60):
            if await settled():
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.5)  # one more delivery tick: nothing further may arrive
        codes = await cluster.stop()
        async with database.read() as session:
            rows = (await session.execute(sa.select(Application))).scalars().all()
            audit = (await session.execute(sa.select(AuditEvent))).scalars().all()
        outbox = await _outbox(database)
        taken = await ReviewRepository(database).places_taken()
    finally:
        await cluster.stop()
        await database.dispose()
        await emulator.stop()
        heap.stop()

    logs = cluster.logs()
    assert codes == [0] * PROCESSES, logs[-3000:]
    assert len(cluster.started) == PROCESSES + KILLS
    assert "Traceback" not in logs, logs[-5000:]
    assert "re-check against the new table: newly eligible" in imported[0]

    # 0 applications lost or duplicated: every worker finished; every number shown is one row.
    assert burst.finished == {u.id for u in workers}
    assert set(burst.acknowledged) == {u.id for u in workers}
    for user_id, code in burst.acknowledged.items():
        assert [r.telegram_user_id for r in rows if r.code == code] == [user_id]
    submitted = [r for r in rows if r.status not in (Status.DRAFT, Status.INELIGIBLE)]
    assert sorted(r.telegram_user_id for r in submitted) == sorted(u.id for u in workers)

    # The quota: approvals counted once each, audited once each, never more than the places.
    approved = [r for r in rows if r.status == Status.APPROVED]
    assert taken == len(approved) == QUOTA
    approvals = [e.application_id for e in audit if e.to_status == Status.APPROVED]
    assert sorted(approvals) == sorted(r.id for r in approved)
    waitlisted = [r for r in rows if r.status == Status.WAITLISTED]
    assert len(waitlisted) == WORKERS - QUOTA

    # 0 duplicate notifications or reminders, per chat. A notification is sent at most once:
    # one a killed process held in flight may have gone out, so it is never sent again (the
    # worker's /status shows the decision); each missing one must be such a row, in flight
    # when a process was killed.
    lost = {n.id: n.chat_id for n in outbox if n.sent_at is None and n.last_error == IN_FLIGHT}
    assert set(lost) <= in_flight_at_kills, (sorted(lost), sorted(map(str, in_flight_at_kills)))
    lost_in_flight = set(lost.values())

    def once(chat_id: int, pattern: str) -> None:
        told = [m for m in _bot_messages(emulator, chat_id) if re.search(pattern, m.text)]
        assert len(told) == 1 or (told == [] and chat_id in lost_in_flight), emulator.user(
            chat_id
        ).format_transcript(30)

    for index, user in enumerate(workers):
        code = burst.acknowledged[user.id]
        once(user.id, rf"{code}(?s:.*)(?:{words_of(index).decision})")
        reminders = [m for m in _bot_messages(emulator, user.id) if "/start" in m.text]
        assert [m for m in reminders if re.search(words_of(index).reminder, m.text)] == []
    for index, user in enumerate(idle):
        once(user.id, words_of(index).reminder)
    for index, user in enumerate(newcomers):
        once(user.id, words_of(index).requalified)
    once(ADMIN, "dicek ulang setelah impor")
    # A process delivers one notification at a time: a kill loses at most that one.
    assert len(lost) <= KILLS

    # Every worker answered in their language, once it was chosen.
    for index, user in enumerate([*workers, *newcomers]):
        words = words_of(index if index < WORKERS else index - WORKERS)
        texts = [e.message.text for e in emulator.chat_events(user.id) if e.from_bot]
        if words is ENGLISH:
            texts = texts[next(i for i, t in enumerate(texts) if "Language set" in t) :]
        wrong = [t for t in texts if re.search(words.foreign, t)]
        assert wrong == [], f"{user.id}: {wrong[:2]}"

    # Telegram's caps held: nothing refused, everything counted.
    assert emulator.caps.refused == 0, emulator.caps.refusals[:10]
    assert emulator.caps.accepted > 0
