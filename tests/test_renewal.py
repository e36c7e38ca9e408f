"""Renewing last year's cohort: /perpanjang approves the still eligible in bulk after a confirm
button (admins only, within the quota, once even when two admins press), lists those no longer
eligible, and a member who opens the bot takes their imported application over."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa

from domain.budget import Budget
from domain.eligibility import Rules
from domain.lifecycle import Decision, Status
from domain.pii import mask_nik
from emulator import BotApiEmulator
from storage.cohort import CohortRepository
from storage.engine import Database
from storage.models import Application, AuditEvent
from storage.review import Result, ReviewRepository
from testkit.factories import Person, make_people
from testkit.fakes import add_application, row_of, seed_dtsen
from testkit.harness import TEST_PII_SECRET, Harness
from tests.test_registration import give_identity, reach_nik
from usecases.cohort import CohortReport, import_cohort

ADMIN = 900001
REVIEWER = 900002
SECOND_ADMIN = 900003
SECRET = TEST_PII_SECRET.encode()
RULES = Rules(region_code="3275", max_desil=5, min_age=18, max_age=65)
TODAY = date(2026, 12, 7)


def budget_for(places: int) -> Budget:
    """A year of cover from next month with money for far more than `places` people."""
    return Budget(
        quota=places,
        budget_idr=10**12,
        monthly_premium_idr=16_800,
        start=date(2027, 1, 1),
        end=date(2027, 12, 1),
    )


def cohort_csv(people: list[Person], kpj: dict[str, str] | None = None) -> bytes:
    """Last year's list: NIK, name, KPJ."""
    kpj = kpj or {}
    lines = ["NIK,Nama,KPJ", *(f"{p.nik},{p.name.upper()},{kpj.get(p.nik, '')}" for p in people)]
    return ("\n".join(lines) + "\n").encode()


async def import_people(
    database: Database,
    eligible: list[Person],
    ineligible: list[Person] = (),  # type: ignore[assignment]
    kpj: dict[str, str] | None = None,
) -> CohortReport:
    """DTSEN rows for everyone (desil 8 for the ineligible), then the cohort import."""
    rows = [row_of(p) for p in eligible] + [row_of(p, desil=8) for p in ineligible]
    await seed_dtsen(database, SECRET, rows)
    return await import_cohort(
        database,
        cohort_csv([*eligible, *ineligible], kpj),
        filename="sigap2025.csv",
        column_map={},
        year=2025,
        secret=SECRET,
        rules=RULES,
        now=datetime.now(UTC),
        code_prefix="BKS",
    )


async def cohort_rows(database: Database) -> list[Application]:
    """The imported applications, oldest first."""
    async with database.read() as session:
        query = sa.select(Application).where(Application.cohort_year == 2025)  # type: ignore[arg-type]
        return list((await session.execute(query.order_by(Application.id))).scalars())  # type: ignore[arg-type]


async def actions(database: Database, action: str) -> list[AuditEvent]:
    """Audit rows of one action."""
    async with database.read() as session:
        query = sa.select(AuditEvent).where(AuditEvent.action == action)  # type: ignore[arg-type]
        return list((await session.execute(query)).scalars())


async def test_admin_renews_the_cohort_in_bulk_after_confirming(harness: Harness) -> None:
    """/perpanjang shows the count and a button; pressing it approves each, audited; the
    ineligible member is listed with the reason."""
    people = make_people(4, seed=161)
    database = harness.services.database
    await import_people(database, people[:3], [people[3]])
    admin = harness.user(ADMIN)

    await admin.send("/perpanjang")
    overview = await admin.expect(r"Perpanjangan menunggu")
    assert "3 peserta tahun lalu" in overview.text
    assert "1 peserta tidak lagi memenuhi syarat" in overview.text
    await admin.press("✅ Perpanjang 3")
    await admin.expect(r"3 perpanjangan disetujui")

    statuses = [a.status for a in await cohort_rows(database)]
    assert sorted(statuses) == [Status.APPROVED] * 3 + [Status.INELIGIBLE]
    renewed = await actions(database, "renew")
    assert len(renewed) == 3
    assert {event.actor_id for event in renewed} == {ADMIN}
    await admin.send("/perpanjang daftar")
    listing = await admin.expect(r"Tidak lagi memenuhi syarat")
    assert mask_nik(people[3].nik) in listing.text
    assert "Desil 8" in listing.text
    assert people[3].nik not in listing.text


async def test_renewal_stops_at_the_quota_and_says_who_stays_waiting(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    """Two places, three renewals: two approved, one stays waiting and the admin is told."""
    harness = Harness(emulator, tmp_path, program_quota=2)
    await harness.start()
    try:
        await import_people(harness.services.database, make_people(3, seed=162))
        admin = harness.user(ADMIN)
        await admin.send("/perpanjang")
        await admin.expect(r"Hanya 2 yang masih muat: 1 tetap menunggu")
        await admin.press("✅ Perpanjang 2")
        done = await admin.expect(r"2 perpanjangan disetujui")
        assert "1 tetap menunggu" in done.text
        statuses = sorted(a.status for a in await cohort_rows(harness.services.database))
        assert statuses == [Status.APPROVED, Status.APPROVED, Status.PENDING]
    finally:
        await harness.stop()


async def test_non_admins_and_forged_buttons_renew_nobody(harness: Harness) -> None:
    """A reviewer gets the unknown-command answer; their forged press and an admin's forged
    count change nothing; the attempts are audited."""
    database = harness.services.database
    await import_people(database, make_people(2, seed=163))
    reviewer = harness.user(REVIEWER)
    await reviewer.send("/perpanjang")
    await reviewer.expect(r"tidak mengenal perintah itu")
    await reviewer.press_data("rn:2")
    admin = harness.user(ADMIN)
    await admin.send("/perpanjang")
    await admin.expect(r"Perpanjangan menunggu")
    await admin.press_data("rn:../../1")
    await admin.press_data("rn:7")  # not the number waiting: shown the real count instead
    await admin.expect(r"Jumlah yang menunggu berubah")

    assert [a.status for a in await cohort_rows(database)] == [Status.PENDING] * 2
    assert await actions(database, "renew") == []
    denied = await actions(database, "denied")
    assert {event.actor_id for event in denied} == {REVIEWER}


async def test_with_renewal_first_off_renewals_wait_in_the_normal_queue(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    """PROGRAM_RENEWAL_FIRST=false: no bulk button, and a forged one approves nobody."""
    harness = Harness(emulator, tmp_path, program_renewal_first=False)
    await harness.start()
    try:
        await import_people(harness.services.database, make_people(2, seed=164))
        admin = harness.user(ADMIN)
        await admin.send("/perpanjang")
        answer = await admin.expect(r"tidak didahulukan")
        assert "/antrian" in answer.text
        assert admin.last_bot_message() is not None
        await admin.press_data("rn:2")
        await admin.expect_no_reply()
        statuses = [a.status for a in await cohort_rows(harness.services.database)]
        assert statuses == [Status.PENDING] * 2
    finally:
        await harness.stop()


async def test_two_admins_confirming_at_once_renew_each_member_once(database: Database) -> None:
    """Both presses land together (PostgreSQL really overlaps them): each renewal is approved
    and audited once, and the second admin is shown that the count changed."""
    await import_people(database, make_people(6, seed=165))
    repository = CohortRepository(database)

    results = await asyncio.gather(
        repository.renew(
            actor_id=ADMIN, budget=budget_for(100), today=TODAY, expected=6, update_id=None
        ),
        repository.renew(
            actor_id=SECOND_ADMIN, budget=budget_for(100), today=TODAY, expected=6, update_id=None
        ),
    )

    assert sorted(result.approved for result in results) == [0, 6]
    assert [result.changed for result in results].count(True) == 1
    assert len(await actions(database, "renew")) == 6
    assert [a.status for a in await cohort_rows(database)] == [Status.APPROVED] * 6


async def test_renewal_never_passes_the_quota_when_admins_race(database: Database) -> None:
    """Three places for five renewals, two admins: three approved in all."""
    await import_people(database, make_people(5, seed=166))
    repository = CohortRepository(database)
    three = budget_for(3)
    first = await repository.renew(
        actor_id=ADMIN, budget=three, today=TODAY, expected=5, update_id=None
    )
    again = await repository.renew(
        actor_id=ADMIN, budget=three, today=TODAY, expected=2, update_id=None
    )
    assert (first.approved, first.still_waiting) == (3, 2)
    assert (again.approved, again.still_waiting) == (0, 2)


async def test_with_renewals_first_a_newcomer_takes_only_places_no_waiting_renewal_needs(
    database: Database,
) -> None:
    """Three places, two renewals awaiting /perpanjang: the first newcomer approved takes the
    one place left, the second waits on the list; without renewals first both would fit, and a
    renewal approved on its own still takes a reserved place."""
    await import_people(database, make_people(2, seed=167))
    newcomers = make_people(2, seed=168)
    ids = [
        await add_application(
            database, SECRET, person, user_id=700 + index, code=f"BKS-N{index}", desil=3
        )
        for index, person in enumerate(newcomers)
    ]
    review = ReviewRepository(database)

    async def approve(application_id: int) -> Result:
        outcome = await review.decide(
            application_id=application_id,
            decision=Decision.APPROVE,
            actor_id=ADMIN,
            allowed_from=(Status.PENDING,),
            effective_quota=3,
            reserve_renewals=True,
        )
        return outcome.result

    assert [await approve(ids[0]), await approve(ids[1])] == [Result.DONE, Result.WAITLISTED]
    renewal = (await cohort_rows(database))[0]
    assert await approve(int(renewal.id or 0)) is Result.DONE


async def test_cohort_member_opening_the_bot_sees_their_renewal_status(harness: Harness) -> None:
    """NIK, name and birth date of an imported member: 'Peserta 2025', their status and KPJ,
    not a fresh registration; the account holds the application from then on."""
    person = make_people(1, seed=167)[0]
    database = harness.services.database
    await import_people(database, [person], kpj={person.nik: "25012345678"})
    member = harness.user(310001)

    await reach_nik(member)
    await give_identity(member, person)
    welcome = await member.expect(r"Peserta 2025")
    assert "menunggu perpanjangan" in welcome.text
    assert "25012345678" in welcome.text
    await member.send("/status")
    await member.expect(r"Peserta 2025")

    [application] = await cohort_rows(database)
    assert application.telegram_user_id == 310001
    assert application.chat_id == 310001
    assert application.consent_version is not None
    async with database.read() as session:
        rows = (
            await session.execute(sa.select(sa.func.count()).select_from(Application))
        ).scalar()
    assert rows == 1  # the draft the identity was typed in is gone
    claimed = await actions(database, "claim_cohort")
    assert [event.actor_id for event in claimed] == [310001]


async def test_someone_else_typing_a_members_nik_does_not_take_it_over(harness: Harness) -> None:
    """Another name with the member's NIK gets the usual 'cannot be registered' answer."""
    person = make_people(1, seed=168)[0]
    database = harness.services.database
    await import_people(database, [person])
    stranger = harness.user(310002)

    await reach_nik(stranger)
    await give_identity(stranger, person, name="Bukan Orang Yang Sama")
    await stranger.expect(r"tidak dapat didaftarkan dari akun ini")

    [application] = await cohort_rows(database)
    assert application.telegram_user_id is None
    assert await actions(database, "claim_cohort") == []
