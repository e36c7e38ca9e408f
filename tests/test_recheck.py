"""The re-check after a DTSEN import: refused workers who now qualify are told once and carry
on; applications in review that no longer pass are flagged for staff; the waiting list follows
the new desil; the import prints a summary and admins receive it."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from config.settings import load_settings
from domain.eligibility import Reason, ReasonCode, encode_reasons
from domain.lifecycle import Status
from emulator import BotApiEmulator
from storage.dtsen import import_dtsen
from storage.engine import Database
from storage.models import Application, AuditEvent, Notification
from storage.recheck import RecheckRepository
from storage.review import ReviewRepository
from testkit.factories import make_people, make_person
from testkit.fakes import add_application, add_applications, make_application
from testkit.harness import TEST_PII_SECRET, Harness
from tests.test_dtsen_import import row_of, write_csv
from tests.test_registration import applications_of, finish, give_identity, reach_nik
from tests.test_review import answer_to
from usecases.recheck import RecheckSummary, recheck_after_import

ADMIN = 900001
REVIEWER = 900002
SECRET = TEST_PII_SECRET.encode()
# People in every extract besides those a test is about (the import refuses a table that
# shrinks by more than a fifth, so each file keeps them).
OTHERS = make_people(20, seed=1515)


@pytest.fixture
async def quick_harness(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> AsyncIterator[Harness]:
    """The bot, delivering the outbox every second (the default is every 15)."""
    h = Harness(emulator, tmp_path, database_url=database_url, notification_interval_seconds=1)
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


async def import_and_recheck(harness: Harness, path: Path, lines: list[str]) -> RecheckSummary:
    """What `rentan-bot import-dtsen` does: replace the table, then re-check against it."""
    services = harness.services
    settings = harness.settings
    today = services.clock().date()
    source = write_csv(path, lines + [row_of(p) for p in OTHERS])
    await import_dtsen(services.database, source, secret=services.secret, today=today)
    return await recheck_after_import(
        RecheckRepository(services.database),
        rules=settings.eligibility_rules,
        today=today,
        now=datetime.now(UTC),
        admin_ids=settings.admin_ids,
    )


async def notifications(database: Database) -> list[Notification]:
    async with database.read() as session:
        return list((await session.execute(sa.select(Notification))).scalars())


async def test_worker_refused_as_not_found_is_told_once_after_a_reimport_and_carries_on(
    quick_harness: Harness, tmp_path: Path
) -> None:
    """Refused because DTSEN lacked them; a new extract has them: one message with one button,
    which re-opens the draft at the phone question, and they finish with a number. Admins get
    the summary; the same extract again tells nobody anything new."""
    harness = quick_harness
    person = make_person(1510)
    await import_and_recheck(harness, tmp_path / "old.csv", [])
    worker = harness.user(151001)
    await reach_nik(worker)
    await give_identity(worker, person)
    await worker.expect(r"belum dapat dicocokkan")
    [refused] = await applications_of(harness, 151001)
    assert refused.status == Status.INELIGIBLE

    summary = await import_and_recheck(harness, tmp_path / "new.csv", [row_of(person)])
    assert (summary.eligible, summary.flagged) == (1, 0)
    told = await worker.expect(r"Kabar baik")
    assert told.button_labels() == ["▶️ Lanjutkan pendaftaran saya"]
    admin = harness.user(ADMIN)
    await admin.expect(r"DTSEN sudah dicek ulang setelah impor: baru memenuhi syarat 1\b")

    again = await import_and_recheck(harness, tmp_path / "again.csv", [row_of(person)])
    assert (again.eligible, again.flagged) == (0, 0)
    database = harness.services.database
    assert [n.kind for n in await notifications(database) if n.chat_id == 151001] == [
        "requalified"
    ]

    await worker.press("▶️ Lanjutkan pendaftaran saya")
    code = await finish(worker, person)
    [done] = await applications_of(harness, 151001)
    assert (done.status, done.code, done.dtsen_desil) == (Status.PENDING, code, person.desil)
    assert done.eligibility_reasons is None


async def test_button_of_another_account_or_pressed_twice_reopens_nothing(
    quick_harness: Harness, tmp_path: Path
) -> None:
    """The button's id is checked against the presser: a stranger's forged press changes
    nothing; a second press after carrying on says the button is no longer active."""
    harness = quick_harness
    person = make_person(1511)
    await import_and_recheck(harness, tmp_path / "old.csv", [])
    worker = harness.user(151101)
    await reach_nik(worker)
    await give_identity(worker, person)
    await worker.expect(r"belum dapat dicocokkan")
    await import_and_recheck(harness, tmp_path / "new.csv", [row_of(person)])
    told = await worker.expect(r"Kabar baik")
    [refused] = await applications_of(harness, 151101)
    stranger = harness.user(151102)
    await stranger.send("/bantuan")
    anchor = await stranger.expect(r"Bantuan")
    forged = await stranger.press_data(f"rc:{refused.id}", anchor.message_id)
    assert "tidak aktif" in await answer_to(harness, forged)
    [still] = await applications_of(harness, 151101)
    assert still.status == Status.INELIGIBLE
    await worker.press("▶️ Lanjutkan pendaftaran saya")
    await worker.expect(r"\(4/9\) Kirim nomor HP")
    second = await worker.press_data(f"rc:{refused.id}", told.message_id)
    assert "tidak aktif" in await answer_to(harness, second)


async def test_pending_application_failing_the_recheck_is_flagged_on_the_card_not_refused(
    harness: Harness, tmp_path: Path
) -> None:
    """A pending application whose family is now ranked 8: it stays pending, its card says it
    fails the re-check, /antrian counts it; the same extract again flags nothing new."""
    person = make_person(1512, desil=2)
    services = harness.services
    await add_application(
        services.database, services.secret, person, user_id=151201, code="BKS-RC0001"
    )
    summary = await import_and_recheck(harness, tmp_path / "a.csv", [row_of(person, desil="8")])
    assert (summary.eligible, summary.flagged) == (0, 1)
    again = await import_and_recheck(harness, tmp_path / "b.csv", [row_of(person, desil="8")])
    assert (again.flagged, again.unchanged) == (0, 1)

    async with services.database.read() as session:
        stored = (await session.execute(sa.select(Application))).scalar_one()
        trail = (
            (
                await session.execute(
                    sa.select(AuditEvent.action).where(AuditEvent.action == "dtsen_recheck")
                )
            )
            .scalars()
            .all()
        )
    assert (stored.status, stored.dtsen_desil) == (Status.PENDING, 8)
    assert trail == ["dtsen_recheck"]
    reviewer = harness.user(REVIEWER)
    await reviewer.send("/tinjau BKS-RC0001")
    card = await reviewer.expect(r"BKS-RC0001")
    assert re.search(r"tidak lolos cek ulang DTSEN setelah impor terakhir: .*8", card.text)
    await reviewer.send("/antrian")
    await reviewer.expect(r"Ditandai oleh cek ulang DTSEN setelah impor: 1")

    lifted = await import_and_recheck(harness, tmp_path / "c.csv", [row_of(person, desil="3")])
    assert (lifted.flagged, lifted.lifted) == (0, 1)
    async with services.database.read() as session:
        stored = (await session.execute(sa.select(Application))).scalar_one()
    assert (stored.recheck_flag, stored.dtsen_desil) == (None, 3)


async def test_waiting_list_follows_the_new_desil(database: Database, tmp_path: Path) -> None:
    """Two waitlisted workers swap desils in the new extract: the one now poorer is offered
    the next place, though they applied later."""
    first, second = make_person(1513, desil=1), make_person(1514, desil=3)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for index, person in enumerate((first, second)):
        await add_application(
            database,
            SECRET,
            person,
            user_id=151300 + index,
            code=f"BKS-WL000{index}",
            status=Status.WAITLISTED,
            submitted_at=start + timedelta(hours=index),
        )
    review = ReviewRepository(database)
    before = await review.first_waitlisted()
    assert before is not None
    assert before.code == "BKS-WL0000"
    lines = [row_of(first, desil="4"), row_of(second, desil="2")]
    today = datetime(2026, 11, 25, tzinfo=UTC).date()
    source = write_csv(tmp_path / "w.csv", lines)
    await import_dtsen(database, source, secret=SECRET, today=today)
    summary = await recheck_after_import(
        RecheckRepository(database),
        rules=load_settings(env_file=None).eligibility_rules,
        today=today,
        now=datetime.now(UTC),
        admin_ids=[],
    )
    assert (summary.flagged, summary.unchanged) == (0, 2)
    after = await review.first_waitlisted()
    assert after is not None
    assert after.code == "BKS-WL0001"
    assert await review.waitlist_position(application=after) == 1


def test_import_dtsen_prints_the_recheck_summary(tmp_path: Path) -> None:
    """`rentan-bot import-dtsen` ends with the re-check line, and queues the admins' message."""
    people = make_people(5, seed=1516)
    source = write_csv(tmp_path / "in.csv", [row_of(p) for p in people])
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        "PII_SECRET": TEST_PII_SECRET,
        "ADMIN_IDS": "900001,900003",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "import-dtsen", str(source)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (
        "re-check against the new table: newly eligible 0, flagged 0, unchanged 0" in done.stdout
    )
    with sqlite3.connect(tmp_path / "bot.db") as connection:
        queued = connection.execute(
            "SELECT chat_id, kind FROM notification WHERE application_id IS NULL ORDER BY chat_id"
        ).fetchall()
    assert queued == [(900001, "dtsen_recheck"), (900003, "dtsen_recheck")]


async def test_one_offer_per_account_and_none_to_an_account_that_moved_on(
    database: Database, tmp_path: Path
) -> None:
    """An account refused twice (not found) is told once, about its newest refusal; an account
    that has since opened another application is not told at all."""
    twice, moved_on = make_person(1517), make_person(1518)
    not_found = encode_reasons([Reason(ReasonCode.NOT_IN_DTSEN)])
    refusals = [
        make_application(
            person,
            secret=SECRET,
            user_id=user_id,
            code=None,
            status=Status.INELIGIBLE,
            eligibility_reasons=not_found,
            submitted_at=None,
        )
        for person, user_id in [(twice, 151701), (twice, 151701), (moved_on, 151801)]
    ]
    draft = make_application(
        make_person(1519), secret=SECRET, user_id=151801, code=None, status=Status.DRAFT
    )
    await add_applications(database, *refusals, draft)
    today = datetime(2026, 11, 25, tzinfo=UTC).date()
    source = write_csv(tmp_path / "x.csv", [row_of(twice), row_of(moved_on)])
    await import_dtsen(database, source, secret=SECRET, today=today)
    summary = await recheck_after_import(
        RecheckRepository(database),
        rules=load_settings(env_file=None).eligibility_rules,
        today=today,
        now=datetime.now(UTC),
        admin_ids=[],
    )
    assert summary.eligible == 1
    told = [n for n in await notifications(database) if n.kind == "requalified"]
    async with database.read() as session:
        newest = (
            await session.execute(
                sa.select(sa.func.max(Application.id)).where(
                    Application.telegram_user_id == 151701
                )
            )
        ).scalar_one()
    assert [(n.chat_id, n.application_id) for n in told] == [(151701, newest)]


async def test_offer_pressed_after_starting_again_points_to_the_new_application(
    quick_harness: Harness, tmp_path: Path
) -> None:
    """A worker told they now qualify who had meanwhile started a new registration: the button
    re-opens nothing and says they already have one in progress."""
    harness = quick_harness
    person = make_person(1520)
    await import_and_recheck(harness, tmp_path / "old.csv", [])
    worker = harness.user(152001)
    await reach_nik(worker)
    await give_identity(worker, person)
    await worker.expect(r"belum dapat dicocokkan")
    await import_and_recheck(harness, tmp_path / "new.csv", [row_of(person)])
    await worker.expect(r"Kabar baik")
    await reach_nik(worker)
    await worker.press("▶️ Lanjutkan pendaftaran saya")
    await worker.expect(r"sudah punya pendaftaran yang sedang berjalan")
    statuses = sorted(a.status for a in await applications_of(harness, 152001))
    assert statuses == [Status.DRAFT, Status.INELIGIBLE]
