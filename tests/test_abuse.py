"""Abuse refused: eligibility probing, edited commands, groups and channels, retention, erasure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from telegram.ext import Job

from bot.context import Context
from bot.emulator import BotApiEmulator
from handlers.housekeeping import tidy_drafts
from storage.models import (
    Application,
    AuditEvent,
    NikAttempt,
    ProcessedUpdate,
    Status,
    UserPreference,
)
from tests.factories import make_person
from tests.fakes import add_application
from tests.harness import Harness
from tests.test_registration import NO_MATCH, applications_of, give_identity, reach_nik, seed

REVIEWER = 900002
ADMIN = 900001


async def test_not_found_mismatch_and_desil_too_high_read_exactly_the_same(
    harness: Harness,
) -> None:
    """The refusal is one text, whatever the reason, so it cannot be used to learn who is in
    DTSEN or how poor they are ranked."""
    absent, mismatch, rich = make_person(4101), make_person(4102), make_person(4103)
    await seed(harness, mismatch)
    await seed(harness, rich, desil=9)
    replies = []
    for index, (person, name) in enumerate(
        [(absent, None), (mismatch, "Agus Salim Wibowo"), (rich, None)]
    ):
        user = harness.user(410000 + index)
        await reach_nik(user)
        await give_identity(user, person, name=name)
        replies.append((await user.expect(NO_MATCH)).text)
    assert replies[0] == replies[1] == replies[2]


@pytest.fixture
async def strict_harness(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> AsyncIterator[Harness]:
    """The bot allowing two distinct NIKs per account per day."""
    h = Harness(emulator, tmp_path, database_url=database_url, nik_attempts_per_day=2)
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


async def test_a_third_distinct_nik_in_a_day_is_refused(strict_harness: Harness) -> None:
    """NIK_ATTEMPTS_PER_DAY caps how many NIKs one account can probe; the same NIK again does
    not count, and the refused NIK is not stored."""
    harness = strict_harness
    first, second, third = make_person(4201), make_person(4202), make_person(4203)
    user = harness.user(420000)
    for person in (first, second, first):
        await reach_nik(user)
        await user.send(person.nik)
        await user.expect(r"\(2/9\)")
        await user.send("/batal")
        await user.expect(r"Pendaftaran dibatalkan")
    await reach_nik(user)
    await user.send(third.nik)
    await user.expect(r"Terlalu banyak NIK berbeda")
    [draft] = await applications_of(harness, user.id)
    assert (draft.step, draft.nik) == ("nik", None)


async def test_an_edited_old_command_is_not_carried_out(harness: Harness) -> None:
    """A reviewer editing an old /antrian into /setujui approves nothing; a worker editing an
    old /start into /hapusdata erases nothing."""
    services = harness.services
    worker = harness.user(430000)
    code = "BKS-ED0001"
    await add_application(
        services.database, services.secret, make_person(4301), user_id=worker.id, code=code
    )
    reviewer = harness.user(REVIEWER)
    sent = await reviewer.send("/antrian")
    await reviewer.expect(r"menunggu verifikasi")
    await reviewer.edit(sent["message_id"], f"/setujui {code}")
    old = await worker.send("/status")
    await worker.expect(code)
    await worker.edit(old["message_id"], "/hapusdata")
    await reviewer.expect(r"diedit tidak saya baca")
    await worker.expect(r"diedit tidak saya baca")
    assert not any(f"{code} disetujui" in (e.message.text or "") for e in reviewer.transcript())
    assert not any("hapus" in (e.message.text or "") for e in worker.transcript() if e.from_bot)
    [stored] = await applications_of(harness, worker.id)
    assert stored.status == Status.PENDING


async def _row_counts(harness: Harness) -> dict[str, int]:
    counts = {}
    async with harness.services.database.read() as session:
        for model in (Application, AuditEvent, NikAttempt, ProcessedUpdate, UserPreference):
            query = sa.select(sa.func.count()).select_from(model)
            counts[model.__name__] = int((await session.execute(query)).scalar_one())
    return counts


async def test_groups_and_channels_store_nothing(harness: Harness) -> None:
    """Commands, NIKs and button presses from a group or a channel write no row anywhere; a
    channel gets no answer at all."""
    person = make_person(4401)
    before = await _row_counts(harness)
    group = harness.emulator.group(-100440, "Grup Ojol")
    user = harness.user(440000)
    await group.send(user, "/start")
    await group.expect(r"chat pribadi")
    await group.send(user, person.nik)
    await group.send(user, "/bahasa")
    channel = harness.emulator.channel(-100441, "Info Ojol")
    await channel.post("/start")
    await channel.post(person.nik)
    await harness.emulator.wait_idle(timeout=10)
    assert await _row_counts(harness) == before
    assert not any(e.from_bot for e in channel.transcript())


async def _run_housekeeping(harness: Harness) -> None:
    assert harness.app is not None
    await tidy_drafts(Context.from_job(Job(tidy_drafts), harness.app))


async def test_ineligible_checks_are_deleted_after_their_retention(harness: Harness) -> None:
    """INELIGIBLE_RETENTION_DAYS after the check, the record is gone; before, it stays."""
    user = harness.user(450000)
    await reach_nik(user)
    await give_identity(user, make_person(4501))
    await user.expect(NO_MATCH)
    started = harness.services.clock()
    days = harness.settings.ineligible_retention_days
    harness.services.clock = lambda: started + timedelta(days=days - 1)
    await _run_housekeeping(harness)
    [kept] = await applications_of(harness, user.id)
    assert kept.status == Status.INELIGIBLE
    harness.services.clock = lambda: started + timedelta(days=days, hours=1)
    await _run_housekeeping(harness)
    assert await applications_of(harness, user.id) == []


async def test_enrolled_worker_erasing_their_data_is_withdrawn_first_and_staff_are_told(
    harness: Harness,
) -> None:
    """/hapusdata by a worker already registered with BPJS: withdrawn from the programme (the
    audit says so), staff get a message, and no row of theirs remains."""
    services = harness.services
    worker = harness.user(460000)
    code = "BKS-EN0001"
    await add_application(
        services.database,
        services.secret,
        make_person(4601),
        user_id=worker.id,
        code=code,
        status=Status.ENROLLED,
    )
    admin = harness.user(ADMIN)
    await worker.send("/hapusdata")
    await worker.expect(r"menarik persetujuan")
    await worker.press("🗑 Ya, hapus data saya")
    await worker.expect(r"sudah dihapus")
    await admin.expect(rf"{code} keluar dari program")
    await harness.user(REVIEWER).expect(rf"{code} keluar dari program")
    async with services.database.read() as session:
        trail = (await session.execute(sa.select(AuditEvent.action, AuditEvent.from_status))).all()
    assert await applications_of(harness, worker.id) == []
    assert ("withdraw", Status.ENROLLED) in [(a, f) for a, f in trail]
    assert "erase" in [a for a, _f in trail]
