"""Cover month by month: /status says how far cover runs, admins are warned once before a
lapse, and three unpaid months lapse the member, count them and free the place."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa
from telegram.ext import Job

from domain.coverage import has_lapsed, lapse_day, warning_due
from domain.lifecycle import Status
from emulator import BotApiEmulator
from handlers.context import Context
from handlers.housekeeping import check_cover
from storage.lapses import WARNING_KIND, lapsed_count
from storage.models import Application, AuditEvent, Notification
from testkit.factories import make_person
from testkit.fakes import add_application, add_applications, make_application
from testkit.harness import Harness

ADMIN, REVIEWER = 900001, 900002
MEMBER = 781_001
PAID_THROUGH = date(2026, 3, 31)


async def enrol(harness: Harness, *, user_id: int = MEMBER, code: str = "BKS-L00001") -> int:
    """An enrolled member whose premiums BPJS reported paid through March 2026."""
    services = harness.services
    application = make_application(
        make_person(user_id),
        secret=services.secret,
        user_id=user_id,
        code=code,
        status=Status.ENROLLED,
        kpj_number=f"{user_id:011d}",
        coverage_start=date(2026, 1, 1),
        paid_through=PAID_THROUGH,
    )
    await add_applications(services.database, application)
    return int(application.id or 0)


async def run_cover_check(harness: Harness, day: date) -> None:
    """The scheduled cover check, run now on `day` (noon in Bekasi)."""
    assert harness.app is not None
    moment = datetime(day.year, day.month, day.day, 5, 0, tzinfo=UTC)
    harness.services.clock = lambda: moment
    await check_cover(Context.from_job(Job(check_cover), harness.app))


def test_cover_lapses_after_three_unpaid_months_and_the_warning_comes_two_weeks_before() -> None:
    """Paid through March: April, May and June unpaid; lapsed from 1 July, warned from 17 June."""
    assert date(2026, 7, 1) == lapse_day(PAID_THROUGH)
    assert not warning_due(PAID_THROUGH, date(2026, 6, 16))
    assert warning_due(PAID_THROUGH, date(2026, 6, 17))
    assert not has_lapsed(PAID_THROUGH, date(2026, 6, 30))
    assert has_lapsed(PAID_THROUGH, date(2026, 7, 1))


async def test_status_shows_how_far_cover_runs_in_the_workers_language(
    harness: Harness,
) -> None:
    """An enrolled member's /status: "Perlindungan aktif s.d. Maret 2026" (or in English)."""
    await enrol(harness)
    await enrol(harness, user_id=MEMBER + 1, code="BKS-L00002")
    worker = harness.user(MEMBER)
    await worker.send("/status")
    await worker.expect(r"Perlindungan aktif s\.d\. Maret 2026")
    english = harness.user(MEMBER + 1, language_code="en")
    await english.send("/status")
    await english.expect(r"Cover active until March 2026")


async def test_admins_are_warned_once_two_weeks_before_a_member_would_lapse(
    harness: Harness,
) -> None:
    """Nothing on 10 June; on 18 June every admin hears of the member, once, however often
    the check runs; reviewers are not told."""
    application_id = await enrol(harness)
    admin = harness.user(ADMIN)
    await run_cover_check(harness, date(2026, 6, 10))
    await admin.expect_no_reply(within=0.5)

    await run_cover_check(harness, date(2026, 6, 18))
    await admin.expect(r"BKS-L00001.*Maret 2026")
    for day in (date(2026, 6, 18), date(2026, 6, 19), date(2026, 6, 25)):
        await run_cover_check(harness, day)
    await admin.expect_no_reply(within=0.5)
    await harness.user(REVIEWER).expect_no_reply(within=0.1)
    async with harness.services.database.read() as session:
        warnings = (
            await session.execute(
                sa.select(Notification.chat_id).where(
                    Notification.application_id == application_id,
                    Notification.kind == WARNING_KIND,
                )
            )
        ).scalars()
        assert list(warnings) == [ADMIN]
        member = await session.get(Application, application_id)
    assert member is not None
    assert member.status == Status.ENROLLED


async def test_three_unpaid_months_lapse_the_member_and_free_the_place(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> None:
    """On 1 July the member is lapsed (lapsed_at, audit, counted, told, shown on the card) and,
    with a quota of one, the first waiting worker is promoted into the place."""
    harness = Harness(emulator, tmp_path, database_url=database_url, program_quota="1")
    await harness.start()
    try:
        application_id = await enrol(harness)
        services = harness.services
        await add_application(
            services.database,
            services.secret,
            make_person(781_050),
            user_id=781_050,
            code="BKS-L00050",
            status=Status.WAITLISTED,
        )
        member_chat, waiting_chat = harness.user(MEMBER), harness.user(781_050)
        await run_cover_check(harness, date(2026, 7, 1))

        await member_chat.expect(r"BKS-L00001.*tiga bulan")
        await waiting_chat.expect(r"BKS-L00050.*disetujui")
        assert await lapsed_count(services.database) == 1
        async with services.database.read() as session:
            member = await session.get(Application, application_id)
            actions = (
                await session.execute(
                    sa.select(AuditEvent.action, AuditEvent.actor_id).where(
                        AuditEvent.action.in_(("lapse", "promote"))  # type: ignore[attr-defined]
                    )
                )
            ).all()
            waiting = (
                await session.execute(
                    sa.select(Application.status).where(Application.code == "BKS-L00050")
                )
            ).scalar_one()
        assert member is not None
        assert (member.status, member.lapsed_at is not None) == (Status.LAPSED, True)
        assert sorted(actions) == [("lapse", None), ("promote", None)]
        assert waiting == Status.APPROVED

        admin = harness.user(ADMIN)
        await admin.send("/cari BKS-L00001")
        card = await admin.expect(r"BKS-L00001")
        assert "berhenti" in card.text
        assert "tiga bulan" in card.text

        await run_cover_check(harness, date(2026, 7, 2))
        assert await lapsed_count(services.database) == 1
    finally:
        await harness.stop()
