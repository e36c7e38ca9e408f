"""The draft row is the conversation: restarts, kills and redeliveries lose and repeat nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from telegram.ext import Job

from bot.app import migrate_database
from domain.lifecycle import Status
from domain.regions import load_regions
from emulator import BotApiEmulator, EmulatedUser
from handlers.context import Context
from handlers.housekeeping import tidy_drafts
from storage.engine import Database
from storage.models import Application
from testkit.factories import Person, make_person
from testkit.fakes import row_of, seed_dtsen
from testkit.harness import TEST_PII_SECRET, TEST_TOKEN, Harness, make_settings
from tests.test_registration import applications_of, seed

Step = Callable[[EmulatedUser, Person], Awaitable[None]]


def _steps() -> list[tuple[str, Step]]:
    """Each answer of the conversation with what the bot asks next."""
    regions = load_regions()

    async def consent(user: EmulatedUser, _person: Person) -> None:
        await user.send("/start")
        await user.expect(r"Selamat datang")
        await user.press("✅ Setuju")
        await user.expect(r"\(1/9\)")

    async def nik(user: EmulatedUser, person: Person) -> None:
        await user.send(person.nik)
        await user.expect(r"\(2/9\)")

    async def name(user: EmulatedUser, person: Person) -> None:
        await user.send(person.name)
        await user.expect(r"\(3/9\)")

    async def birth(user: EmulatedUser, person: Person) -> None:
        await user.send(f"{person.birth_date:%d/%m/%Y}")
        await user.expect(r"\(4/9\)")

    async def phone(user: EmulatedUser, person: Person) -> None:
        await user.share_contact(person.phone)
        await user.expect(r"\(5/9\)")

    async def address(user: EmulatedUser, _person: Person) -> None:
        await user.send("Gg. Kenari No. 3")
        await user.expect(r"\(6/9\) Di mana")

    async def kecamatan(user: EmulatedUser, person: Person) -> None:
        district = regions.district(person.kode_wilayah[:6])
        assert district is not None
        await user.press(district.name)
        await user.expect(r"\(6/9\) Pilih kelurahan")

    async def kelurahan(user: EmulatedUser, person: Person) -> None:
        village = regions.village(person.kode_wilayah)
        assert village is not None
        await user.press(village.name)
        await user.expect(r"\(7/9\)")

    async def occupation(user: EmulatedUser, _person: Person) -> None:
        await user.press("Kuli bangunan")
        await user.expect(r"\(8/9\)")

    async def heir(user: EmulatedUser, _person: Person) -> None:
        await user.send("Dewi Lestari")
        await user.expect(r"\(9/9\)")

    async def relation(user: EmulatedUser, _person: Person) -> None:
        await user.press("Orang tua")
        await user.expect(r"Periksa kembali")

    async def submit(user: EmulatedUser, _person: Person) -> None:
        await user.press("✅ Kirim")
        await user.expect(r"Pendaftaran Anda sudah dikirim")

    return [
        ("consent", consent),
        ("nik", nik),
        ("name", name),
        ("birth_date", birth),
        ("phone", phone),
        ("address", address),
        ("kecamatan", kecamatan),
        ("kelurahan", kelurahan),
        ("occupation", occupation),
        ("heir_name", heir),
        ("heir_relation", relation),
        ("submit", submit),
    ]


STEPS = _steps()


@pytest.mark.parametrize("restart_after", range(len(STEPS) - 1), ids=[n for n, _ in STEPS[:-1]])
async def test_restart_at_any_step_resumes_the_worker_where_they_were(
    harness: Harness, restart_after: int
) -> None:
    """Stop the application after any answer, start a new one: the next answer just works."""
    person = make_person(300 + restart_after)
    await seed(harness, person)
    user = harness.user(300000 + restart_after)
    for index, (_name, step) in enumerate(STEPS):
        await step(user, person)
        if index == restart_after:
            await harness.restart()
    [stored] = await applications_of(harness, user.id)
    assert stored.status == Status.PENDING
    assert stored.occupation == "kuli_bangunan"
    assert stored.heir_relation == "orang_tua"


async def test_redelivered_answer_after_a_crash_is_not_applied_twice(harness: Harness) -> None:
    """The same update_id again (unconfirmed before a crash) neither repeats nor skips a step."""
    person = make_person(320)
    await seed(harness, person)
    user = harness.user(320000)
    for _name, step in STEPS[:3]:  # consent, NIK, name
        await step(user, person)
    name_update = harness.emulator.last_update_id
    await harness.stop()
    harness.emulator.redeliver(name_update)
    await harness.start()
    await user.expect_no_reply(within=1.0)
    [stored] = await applications_of(harness, user.id)
    assert (stored.step, stored.nama) == ("birth_date", person.name)
    for _name, step in STEPS[3:]:
        await step(user, person)
    [stored] = await applications_of(harness, user.id)
    assert stored.status == Status.PENDING


async def test_redelivered_submit_creates_one_application(harness: Harness) -> None:
    """Pressing Kirim is handled once even when the press is delivered again."""
    person = make_person(321)
    await seed(harness, person)
    user = harness.user(321000)
    for _name, step in STEPS:
        await step(user, person)
    submit_update = harness.emulator.last_update_id
    await harness.stop()
    harness.emulator.redeliver(submit_update)
    await harness.start()
    await user.expect_no_reply(within=1.0)
    applications = await applications_of(harness, user.id)
    assert [a.status for a in applications] == [Status.PENDING]


async def test_many_workers_at_once_all_finish(harness: Harness) -> None:
    """Twenty workers registering concurrently each end with exactly one pending application."""
    people = [make_person(400 + i) for i in range(20)]
    await seed(harness, *people)

    async def register(index: int, person: Person) -> None:
        user = harness.user(400000 + index)
        for _name, step in STEPS:
            await step(user, person)

    await asyncio.gather(*(register(i, p) for i, p in enumerate(people)))
    async with harness.services.database.read() as session:
        statuses = (await session.execute(sa.select(Application.status))).scalars().all()
    assert statuses == [Status.PENDING] * 20


async def _start_process(
    emulator: BotApiEmulator, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """Start `rentan-bot run` and wait until it polls the emulator."""
    polls = emulator.calls["getUpdates"]
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"], env=env, stdout=output, stderr=output
        )
    for _ in range(300):
        if emulator.calls["getUpdates"] > polls:
            return process
        if process.poll() is not None:
            raise AssertionError(f"bot exited early:\n{log.read_text()}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"bot did not start polling:\n{log.read_text()}")


async def test_sigkill_of_a_real_bot_process_mid_conversation_resumes(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> None:
    """`rentan-bot run` killed with SIGKILL mid-conversation: the next process carries on."""
    settings = make_settings(f"http://127.0.0.1:{emulator.port}", database_url)
    await migrate_database(settings)
    person = make_person(330)
    database = Database.from_url(database_url)
    await seed_dtsen(database, TEST_PII_SECRET.encode(), [row_of(person)])
    await database.dispose()
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
        "TELEGRAM_API_URL": f"http://127.0.0.1:{emulator.port}",
        "DATABASE_URL": database_url,
        "PII_SECRET": TEST_PII_SECRET,
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    log = tmp_path / "bot.log"
    user = emulator.user(330000)
    process = await _start_process(emulator, env, log)
    try:
        for _name, step in STEPS[:5]:  # up to the phone number
            await step(user, person)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        process = await _start_process(emulator, env, log)
        for _name, step in STEPS[5:]:
            await step(user, person)
        process.send_signal(signal.SIGTERM)
        # Wait off the event loop: the emulator lives on it and must answer the final poll.
        assert await asyncio.to_thread(process.wait, 20) == 0
        async with database.read() as session:
            rows = (await session.execute(sa.select(Application))).scalars().all()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        await database.dispose()
    assert [(r.status, r.phone) for r in rows] == [(Status.PENDING, person.phone)]
    assert "Traceback" not in log.read_text()


async def _run_housekeeping(harness: Harness) -> None:
    """Run the scheduled job's callback now, with the context the JobQueue would give it."""
    assert harness.app is not None
    job = Job(tidy_drafts)
    await tidy_drafts(Context.from_job(job, harness.app))


async def test_idle_worker_is_reminded_once_and_the_draft_later_expires(harness: Harness) -> None:
    """A worker who stops answering gets one reminder; after the expiry the draft is gone."""
    person = make_person(340)
    await seed(harness, person)
    user = harness.user(340000)
    for _name, step in STEPS[:3]:
        await step(user, person)
    started = harness.services.clock()
    settings = harness.settings
    harness.services.clock = lambda: (
        started + timedelta(minutes=settings.draft_reminder_minutes + 1)
    )
    await _run_housekeeping(harness)
    await user.expect(r"belum selesai")
    await _run_housekeeping(harness)
    await user.expect_no_reply(within=0.3)
    [draft] = await applications_of(harness, user.id)
    assert draft.status == Status.DRAFT

    harness.services.clock = lambda: started + timedelta(hours=settings.draft_expiry_hours + 1)
    await _run_housekeeping(harness)
    assert await applications_of(harness, user.id) == []


async def test_reminded_worker_can_still_continue(harness: Harness) -> None:
    """The reminder says /start; the worker continues at the same step."""
    person = make_person(341)
    await seed(harness, person)
    user = harness.user(341000)
    for _name, step in STEPS[:2]:
        await step(user, person)
    started = harness.services.clock()
    harness.services.clock = lambda: started + timedelta(days=1, minutes=1)
    await _run_housekeeping(harness)
    await user.expect(r"belum selesai")
    await user.send("/start")
    await user.expect(r"\(2/9\)")


async def test_consent_pressed_while_the_bot_was_down_still_opens_the_registration(
    harness: Harness,
) -> None:
    """A press that can no longer be answered (Telegram's window passed) still does its work."""
    user = harness.user(322000)
    await user.send("/start")
    await user.expect(r"Selamat datang")
    await harness.stop()
    await user.press("✅ Setuju")
    harness.emulator.expire_callback_queries()
    await harness.start()
    await user.expect(r"\(1/9\) Kirim NIK")
    [stored] = await applications_of(harness, user.id)
    assert (stored.status, stored.step) == (Status.DRAFT, "nik")


async def test_staff_decision_pressed_too_late_to_answer_is_still_applied(
    harness: Harness,
) -> None:
    """An approval press handled after the answer window approves, and nothing apologises."""
    person = make_person(323)
    await seed(harness, person)
    user = harness.user(323000)
    for _name, step in STEPS:
        await step(user, person)
    reviewer = harness.user(900002)
    await reviewer.send("/tinjau")
    await reviewer.expect(r"DTSEN")
    await harness.stop()
    await reviewer.press("✅ Setujui")
    harness.emulator.expire_callback_queries()
    await harness.start()
    await reviewer.expect(r"disetujui")
    [stored] = await applications_of(harness, user.id)
    assert stored.status == Status.APPROVED
    assert not any("gangguan" in e.message.text for e in reviewer.transcript() if e.from_bot)


@pytest.mark.parametrize("restart", [False, True], ids=["running", "restarted"])
async def test_update_ids_restarting_far_below_are_answered_and_redeliveries_still_dropped(
    harness: Harness, restart: bool
) -> None:
    """After a quiet week Telegram picks new, lower ids: nobody's answers are dropped for it."""
    emulator = harness.emulator
    first, second = make_person(350), make_person(351)
    await seed(harness, first, second)
    emulator.restart_update_ids(900_000)
    midway, newcomer = harness.user(350000), harness.user(351000)
    for _name, step in STEPS[:3]:  # consent, NIK, name
        await step(midway, first)
    await emulator.wait_idle()
    if restart:
        await harness.restart()
    emulator.restart_update_ids(1_000)

    await STEPS[3][1](midway, first)  # the birth date, update 1000
    birth_update = emulator.last_update_id
    for _name, step in STEPS[:2]:  # consent, NIK
        await step(newcomer, second)
    nik_update = emulator.last_update_id
    assert birth_update == 1_000
    [stored] = await applications_of(harness, midway.id)
    assert (stored.step, stored.tanggal_lahir) == ("phone", first.birth_date)

    await harness.stop()
    emulator.redeliver(birth_update, nik_update)
    await harness.start()
    await midway.expect_no_reply(within=1.0)
    await newcomer.expect_no_reply(within=0.1)
    [stored] = await applications_of(harness, midway.id)
    assert stored.step == "phone"
    [other] = await applications_of(harness, newcomer.id)
    assert (other.step, other.nik) == ("name", second.nik)

    for _name, step in STEPS[4:]:
        await step(midway, first)
    for _name, step in STEPS[2:]:
        await step(newcomer, second)
    statuses = [(await applications_of(harness, u.id))[0].status for u in (midway, newcomer)]
    assert statuses == [Status.PENDING, Status.PENDING]


async def test_update_ids_seen_before_a_quiet_week_can_come_again(harness: Harness) -> None:
    """Ids are unique only within Telegram's redelivery window: a week later one may recur."""
    person = make_person(352)
    await seed(harness, person)
    earlier = harness.user(352000)
    for _name, step in STEPS[:3]:
        await step(earlier, person)
    await harness.emulator.wait_idle()
    started = harness.services.clock()
    harness.services.clock = lambda: started + timedelta(days=8)
    await _run_housekeeping(harness)
    harness.emulator.restart_update_ids(1)  # the very ids handled a week ago

    later = harness.user(352001)
    await later.send("/start")
    await later.expect(r"Selamat datang")
    await later.press("✅ Setuju")
    await later.expect(r"\(1/9\)")


async def test_run_in_polling_mode_keeps_updates_sent_while_it_was_down(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    """`rentan-bot run` never drops pending updates: a /start sent before the start is answered."""
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
        "TELEGRAM_API_URL": f"http://127.0.0.1:{emulator.port}",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'run.db'}",
        "PII_SECRET": TEST_PII_SECRET,
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    log = tmp_path / "bot.log"
    user = emulator.user(353000)
    await user.send("/start")
    process = await _start_process(emulator, env, log)
    try:
        await user.expect(r"Selamat datang", timeout=20.0)
    finally:
        process.send_signal(signal.SIGTERM)
        # Wait off the event loop: the emulator lives on it and must answer the final poll.
        assert await asyncio.to_thread(process.wait, 20) == 0
    dropping = [
        params.get("drop_pending_updates")
        for method, params in emulator.requests_log
        if method in ("deleteWebhook", "setWebhook")
    ]
    assert dropping, "the bot never called deleteWebhook"
    assert all(str(value).lower() in ("none", "false") for value in dropping)
