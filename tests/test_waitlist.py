"""The waiting list moves by itself: a freed place goes to the first waiting worker (desil,
then time), automatically or with one tap by staff; concurrent frees never over-fill."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import sqlalchemy as sa

from domain.lifecycle import COMMAND_FROM, Decision, Status
from emulator import BotApiEmulator
from storage.engine import Database
from storage.models import Application, AuditEvent, Notification
from storage.retention import erase_user
from storage.review import ReviewRepository
from storage.waitlist import PROMOTE_ACTION, PROMOTED_KIND, Places
from testkit.factories import make_person
from testkit.fakes import add_application, add_applications, make_application
from testkit.harness import Harness

ADMIN = 900001
SECRET = b"test-secret-not-for-production-0123456789"
BASE = datetime(2026, 11, 1, tzinfo=UTC)
_users = count(760_000)


async def seed_waiting_line(harness: Harness) -> dict[str, int]:
    """One approved worker and three waiting: desil 4 (oldest), desil 2, desil 2 (newest)."""
    services = harness.services
    ids = {}
    for code, status, desil, minutes in (
        ("BKS-W00001", Status.APPROVED, 3, 0),
        ("BKS-W00002", Status.WAITLISTED, 4, 1),
        ("BKS-W00003", Status.WAITLISTED, 2, 2),
        ("BKS-W00004", Status.WAITLISTED, 2, 3),
    ):
        ids[code] = await add_application(
            services.database,
            services.secret,
            make_person(9100 + minutes),
            user_id=751_000 + minutes,
            code=code,
            status=status,
            desil=desil,
            submitted_at=BASE + timedelta(minutes=minutes),
        )
    return ids


async def statuses(database: Database) -> dict[str, str]:
    """Every application's status by number."""
    async with database.read() as session:
        rows = (await session.execute(sa.select(Application.code, Application.status))).all()
    return {str(code): str(status) for code, status in rows}


async def test_withdrawal_promotes_the_first_waiting_by_desil_and_the_worker_is_told(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> None:
    """Quota 1: /tarik frees the place; the oldest desil-2 worker is approved by the system,
    told in their chat, and the trail says "promote" with no staff actor."""
    harness = Harness(emulator, tmp_path, database_url=database_url, program_quota="1")
    await harness.start()
    try:
        ids = await seed_waiting_line(harness)
        promoted_worker = harness.user(751_002)
        admin = harness.user(ADMIN)
        await admin.send("/tarik BKS-W00001 pindah domisili")
        await admin.expect(r"ditarik")
        await admin.expect(r"BKS-W00003.*otomatis")
        await promoted_worker.expect(r"tempat.*kosong.*BKS-W00003.*disetujui")
        assert await statuses(harness.services.database) == {
            "BKS-W00001": Status.WITHDRAWN,
            "BKS-W00002": Status.WAITLISTED,
            "BKS-W00003": Status.APPROVED,
            "BKS-W00004": Status.WAITLISTED,
        }
        async with harness.services.database.read() as session:
            trail = (
                await session.execute(
                    sa.select(AuditEvent).where(AuditEvent.application_id == ids["BKS-W00003"])
                )
            ).scalars()
            promotions = [event for event in trail if event.action == PROMOTE_ACTION]
        assert [(event.actor_id, event.from_status, event.to_status) for event in promotions] == [
            (None, Status.WAITLISTED, Status.APPROVED)
        ]
        await promoted_worker.send("/status")
        await promoted_worker.expect(r"Status: disetujui")
    finally:
        await harness.stop()


async def test_staff_mode_sends_a_one_tap_approve_for_the_first_waiting(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> None:
    """PROGRAM_WAITLIST_PROMOTION=staff: nothing moves by itself; staff get the first waiting
    one with an Approve button, and one tap approves it into the freed place."""
    harness = Harness(
        emulator,
        tmp_path,
        database_url=database_url,
        program_quota="1",
        program_waitlist_promotion="staff",
    )
    await harness.start()
    try:
        await seed_waiting_line(harness)
        admin = harness.user(ADMIN)
        await admin.send("/tarik BKS-W00001 pindah domisili")
        await admin.expect(r"ditarik")
        await admin.expect(r"tempat kosong.*BKS-W00003")
        assert (await statuses(harness.services.database))["BKS-W00003"] == Status.WAITLISTED
        await admin.press("✅ Setujui")
        await admin.expect(r"BKS-W00003 disetujui")
        await harness.user(751_002).expect(r"sudah disetujui")
        assert (await statuses(harness.services.database))["BKS-W00003"] == Status.APPROVED
    finally:
        await harness.stop()


async def test_concurrent_frees_promote_each_waiting_worker_once_and_never_overfill(
    database: Database,
) -> None:
    """Quota 3, round after round: two withdrawals and an erasure land at once; the three
    first waiting are promoted, each exactly once, and places never exceed three."""
    quota = 3
    review = ReviewRepository(database)
    places = Places(quota)
    waiting: list[Application] = []
    minute = count()

    def new(status: str, desil: int) -> Application:
        user = next(_users)
        return make_application(
            make_person(user),
            secret=SECRET,
            user_id=user,
            code=f"BKS-Z{user:06d}",
            status=status,
            desil=desil,
            submitted_at=BASE + timedelta(minutes=next(minute)),
        )

    holders = [new(Status.APPROVED, 1) for _ in range(quota)]
    await add_applications(database, *holders)
    for round_number in range(12):
        fresh = [new(Status.WAITLISTED, 1 + (index * 7 + round_number) % 5) for index in range(4)]
        await add_applications(database, *fresh)
        waiting += fresh
        waiting.sort(key=lambda a: (a.dtsen_desil or 0, a.submitted_at or BASE, a.id or 0))
        expected = {a.code for a in waiting[:quota]}

        async def withdraw(application: Application) -> object:
            return await review.decide(
                application_id=int(application.id or 0),
                decision=Decision.WITHDRAW,
                actor_id=ADMIN,
                allowed_from=COMMAND_FROM[Decision.WITHDRAW],
                effective_quota=quota,
                reason="uji",
            )

        await asyncio.gather(
            withdraw(holders[0]),
            erase_user(database, user_id=int(holders[1].telegram_user_id or 0), places=places),
            withdraw(holders[2]),
        )
        now = await statuses(database)
        approved = {code for code, status in now.items() if status == Status.APPROVED}
        assert expected == approved, round_number
        holders = [a for a in waiting if a.code in approved]
        waiting = [a for a in waiting if a.code not in approved]

    async with database.read() as session:
        promoted = (
            await session.execute(
                sa.select(AuditEvent.application_id).where(AuditEvent.action == PROMOTE_ACTION)
            )
        ).scalars()
        notes = (
            await session.execute(
                sa.select(Notification.application_id).where(Notification.kind == PROMOTED_KIND)
            )
        ).scalars()
        promoted_counts, note_counts = Counter(promoted), Counter(notes)
    assert len(promoted_counts) == 12 * quota
    assert set(promoted_counts.values()) == {1}
    # One message per promotion (an erased worker's went with their data).
    assert set(note_counts.values()) == {1}
    assert set(note_counts) <= set(promoted_counts)


async def test_status_of_a_waiting_worker_shows_their_place_in_line(harness: Harness) -> None:
    """/status on the waiting list says which place in line the worker holds."""
    await seed_waiting_line(harness)
    worker = harness.user(751_003)  # BKS-W00004: desil 2, after BKS-W00003
    await worker.send("/status")
    await worker.expect(r"daftar tunggu.*\n.*urutan ke-2")


async def test_antrian_lists_the_waiting_list_with_desil_and_since_when(harness: Harness) -> None:
    """/antrian shows staff the waiting list in priority order: position, desil, since when."""
    await seed_waiting_line(harness)
    admin = harness.user(ADMIN)
    await admin.send("/antrian")
    page = await admin.expect(r"Daftar tunggu")
    lines = page.text[page.text.index("Daftar tunggu") :].splitlines()
    listed = [line for line in lines if re.match(r"\d+\. ", line)]
    assert [line.split()[1] for line in listed] == ["BKS-W00003", "BKS-W00004", "BKS-W00002"]
    assert "desil 2" in listed[0]
    assert "01-11 00:02" in listed[0]
