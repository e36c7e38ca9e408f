"""Operators (assisted registration for workers without Telegram) and community links, end to
end: the real bot polling the emulator, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from domain.lifecycle import Status
from domain.program import CONSENT_VERSION
from domain.regions import load_regions
from emulator import BotApiEmulator, EmulatedUser
from storage.models import Application, AuditEvent, Community
from testkit.factories import Person, make_person
from testkit.fakes import add_applications, make_application
from testkit.harness import Harness
from tests.test_registration import (
    CODE,
    applications_of,
    finish,
    give_identity,
    in_words,
    reach_nik,
    seed,
    spaced,
)

ADMIN = 900001
OPERATOR = 600001
OTHER_OPERATOR = 600002
STRANGER = 555555


async def add_operator(harness: Harness, user_id: int, area: str) -> None:
    """An admin makes `user_id` an operator for `area` with /staf."""
    admin = harness.user(ADMIN)
    await admin.send(f"/staf tambah {user_id} operator {area}")
    await admin.expect(rf"Petugas {user_id} sekarang operator")


async def start_assisted(operator: EmulatedUser) -> None:
    """/daftarkan, the consent read aloud and confirmed, up to the worker's NIK."""
    await operator.send("/daftarkan")
    await operator.expect(r"Bacakan teks ini kepada pekerja")
    await operator.press("✅ Pekerja sudah mendengar dan setuju")
    await operator.expect(r"Mendaftarkan pekerja[\s\S]*\(1/9\) Kirim NIK")


async def register_for(operator: EmulatedUser, person: Person) -> str:
    """The operator answers every step for `person` (the phone typed); returns the number."""
    regions = load_regions()
    await start_assisted(operator)
    await give_identity(operator, person)
    await operator.expect(r"\(4/9\) Kirim nomor HP")
    await operator.send(person.phone)
    await operator.expect(r"\(5/9\)")
    await operator.send("Jl. Melati No. 5 RT 01/RW 02")
    await operator.expect(r"\(6/9\)")
    kecamatan = regions.district(person.kode_wilayah[:6])
    kelurahan = regions.village(person.kode_wilayah)
    assert kecamatan is not None
    assert kelurahan is not None
    await operator.press(kecamatan.name)
    await operator.expect(r"Pilih kelurahan")
    await operator.press(kelurahan.name)
    await operator.expect(r"\(7/9\)")
    await operator.press("Pemulung")
    await operator.expect(r"\(8/9\)")
    await operator.send("Siti Aminah")
    await operator.expect(r"\(9/9\)")
    await operator.press("Suami/Istri")
    await operator.expect(r"Periksa kembali data")
    await operator.press("✅ Kirim")
    sent = await operator.expect(r"Pendaftaran pekerja sudah dikirim")
    match = CODE.search(sent.text)
    assert match is not None
    return match.group(0)


async def test_daftarkan_again_continues_the_open_registration_in_one_message(
    harness: Harness,
) -> None:
    """/daftarkan with a worker's registration open says so and asks its question, at once."""
    worker = make_person(305)
    await seed(harness, worker)
    await add_operator(harness, OPERATOR, worker.kode_wilayah[:6])
    operator = harness.user(OPERATOR)
    await start_assisted(operator)
    await operator.send(spaced(worker.nik))
    await operator.expect(r"\(2/9\)")
    operator.skip_to_end()
    await operator.send("/daftarkan")
    await operator.expect(r"sedang mendaftarkan seorang pekerja[\s\S]*\(2/9\)")
    await operator.expect_no_reply(within=0.3)
    assert operator.replies_since_cursor() == []


async def application_by_code(harness: Harness, code: str) -> Application:
    """The stored application with this number."""
    async with harness.services.database.read() as session:
        result = await session.execute(sa.select(Application).where(Application.code == code))
        return result.scalars().one()


async def audit_actions(harness: Harness, application_id: int | None) -> list[str]:
    """The audit actions recorded for one application, oldest first."""
    async with harness.services.database.read() as session:
        result = await session.execute(
            sa.select(AuditEvent.action)
            .where(AuditEvent.application_id == application_id)
            .order_by(AuditEvent.id)  # type: ignore[arg-type]
        )
        return [str(action) for action in result.scalars()]


async def answer_to(harness: Harness, query_id: str) -> str:
    """The text the bot answered a callback query with (waiting briefly for it)."""
    for _ in range(100):
        if query_id in harness.emulator.answered_callbacks:
            break
        await asyncio.sleep(0.02)
    return harness.emulator.answered_callbacks[query_id][0] or ""


async def test_operator_registers_a_worker_without_telegram_apart_from_their_own_registration(
    harness: Harness,
) -> None:
    """An operator's /daftarkan runs the same questions for a worker who has no Telegram: the
    application has no account, records the operator and the consent version, and the
    operator's own registration in progress is left exactly where it was."""
    worker, own = make_person(301), make_person(302)
    await seed(harness, worker, own)
    await add_operator(harness, OPERATOR, worker.kode_wilayah[:6])
    operator = harness.user(OPERATOR)
    # The operator is registering themself too, and stops at the name question.
    await reach_nik(operator)
    await operator.send(spaced(own.nik))
    await operator.expect(r"\(2/9\)")

    code = await register_for(operator, worker)

    stored = await application_by_code(harness, code)
    assert stored.telegram_user_id is None
    assert stored.chat_id is None
    assert stored.assisted_by == OPERATOR
    assert stored.consent_version == CONSENT_VERSION
    assert stored.status == Status.PENDING
    assert stored.phone == worker.phone
    assert await audit_actions(harness, stored.id) == ["consent_assisted", "submit"]
    [mine] = await applications_of(harness, OPERATOR)
    assert (mine.status, mine.step, mine.nik) == (Status.DRAFT, "name", own.nik)
    await operator.send("/start")
    await operator.expect(r"\(2/9\) Kirim nama lengkap")
    await operator.send(f"/status {code}")
    checked = await operator.expect(r"Pekerja belum mengambil alih")
    assert code in checked.text


async def test_worker_takes_over_from_their_own_telegram_and_the_operator_is_told(
    harness: Harness,
) -> None:
    """NIK and birth date from the worker's own account link the application (audited); a
    wrong birth date does not; the operator is told and /status works for both."""
    worker = make_person(311)
    await seed(harness, worker)
    await add_operator(harness, OPERATOR, worker.kode_wilayah[:6])
    operator = harness.user(OPERATOR)
    code = await register_for(operator, worker)

    own = harness.user(200311)
    await reach_nik(own)
    await own.send(spaced(worker.nik))
    await own.expect(r"\(2/9\)")
    await own.send(worker.name)
    await own.expect(r"\(3/9\)")
    await own.send(in_words(worker.birth_date.replace(year=worker.birth_date.year - 1)))
    await own.expect(r"tidak dapat didaftarkan dari akun ini")
    assert (await application_by_code(harness, code)).telegram_user_id is None
    await own.send(in_words(worker.birth_date))
    await own.expect(rf"operator sudah mendaftarkan Anda dengan nomor pendaftaran {code}")
    await operator.expect(rf"{code} yang Anda daftarkan sudah mengambil alih")

    stored = await application_by_code(harness, code)
    assert (stored.telegram_user_id, stored.chat_id) == (200311, 200311)
    assert stored.status == Status.PENDING
    assert await audit_actions(harness, stored.id) == ["consent_assisted", "submit", "take_over"]
    assert [a.code for a in await applications_of(harness, 200311)] == [code]
    await own.send("/status")
    await own.expect(rf"{code}[\s\S]*menunggu verifikasi")
    await operator.send(f"/status {code}")
    await operator.expect(r"Pekerja sudah mengambil alih")


async def test_operator_outside_their_area_is_refused(harness: Harness) -> None:
    """A kecamatan outside the operator's area is refused with a clear line and not stored."""
    worker = make_person(321)
    await seed(harness, worker)
    regions = load_regions()
    elsewhere = next(k for k in regions.kecamatan_of("3275") if k.code != worker.kode_wilayah[:6])
    await add_operator(harness, OPERATOR, elsewhere.name)
    operator = harness.user(OPERATOR)
    await start_assisted(operator)
    await give_identity(operator, worker)
    await operator.expect(r"\(4/9\)")
    await operator.send(worker.phone)
    await operator.expect(r"\(5/9\)")
    await operator.send("Jl. Melati No. 5 RT 01/RW 02")
    await operator.expect(r"\(6/9\)")
    kecamatan = regions.district(worker.kode_wilayah[:6])
    assert kecamatan is not None
    await operator.press(kecamatan.name)
    await operator.expect(r"di luar wilayah kerja Anda sebagai operator")
    draft = await harness.services.operators.assisted_draft(operator_id=OPERATOR)
    assert draft is not None
    assert (draft.step, draft.kecamatan_code) == ("kecamatan", None)


async def test_forged_operator_buttons_are_refused(harness: Harness) -> None:
    """A press naming another operator's draft, or an operator button pressed by someone who
    is not an operator, changes nothing and is audited."""
    worker = make_person(331)
    await seed(harness, worker)
    await add_operator(harness, OPERATOR, worker.kode_wilayah[:6])
    await add_operator(harness, OTHER_OPERATOR, worker.kode_wilayah[:6])
    operator = harness.user(OPERATOR)
    await start_assisted(operator)
    await give_identity(operator, worker)
    await operator.expect(r"\(4/9\)")
    await operator.send(worker.phone)
    await operator.expect(r"\(5/9\)")
    await operator.send("Jl. Melati No. 5 RT 01/RW 02")
    await operator.expect(r"\(6/9\)")
    regions = load_regions()
    kecamatan = regions.district(worker.kode_wilayah[:6])
    kelurahan = regions.village(worker.kode_wilayah)
    assert kecamatan is not None
    assert kelurahan is not None
    await operator.press(kecamatan.name)
    await operator.expect(r"Pilih kelurahan")
    await operator.press(kelurahan.name)
    await operator.expect(r"\(7/9\)")
    draft = await harness.services.operators.assisted_draft(operator_id=OPERATOR)
    assert draft is not None
    forged = f"as:{draft.id}:occupation:sopir"

    other = harness.user(OTHER_OPERATOR)
    await start_assisted(other)
    assert "tidak aktif" in await answer_to(harness, await other.press_data(forged))
    stranger = harness.user(STRANGER)
    await stranger.send("/bantuan")
    await stranger.expect(r"Bantuan")
    assert "tidak aktif" in await answer_to(harness, await stranger.press_data(forged))
    assert "tidak aktif" in await answer_to(harness, await stranger.press_data("asc:yes"))
    await stranger.send("/daftarkan")
    await stranger.expect(r"tidak mengenal perintah")

    after = await harness.services.operators.assisted_draft(operator_id=OPERATOR)
    assert after is not None
    assert (after.step, after.occupation) == ("occupation", None)
    assert await harness.services.operators.assisted_draft(operator_id=STRANGER) is None
    async with harness.services.database.read() as session:
        denied = await session.execute(
            sa.select(AuditEvent.actor_id).where(
                AuditEvent.action == "denied",
                AuditEvent.reason.startswith("button: as"),  # type: ignore[union-attr]
            )
        )
        assert sorted(set(denied.scalars())) == sorted([OTHER_OPERATOR, STRANGER])


async def test_operator_daily_limit_stops_the_next_registration(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> None:
    """OPERATOR_DAILY_LIMIT registrations opened today: the next /daftarkan opens nothing."""
    harness = Harness(emulator, tmp_path, database_url=database_url, operator_daily_limit=2)
    await harness.start()
    try:
        worker = make_person(341)
        await seed(harness, worker)
        await add_operator(harness, OPERATOR, worker.kode_wilayah[:6])
        services = harness.services
        now = datetime.now(UTC)
        await add_applications(
            services.database,
            *(
                make_application(
                    make_person(3410 + n),
                    secret=services.secret,
                    user_id=0,
                    code=f"BKS-OP000{n}",
                    telegram_user_id=None,
                    chat_id=None,
                    assisted_by=OPERATOR,
                    created_at=now,
                )
                for n in range(2)
            ),
        )
        operator = harness.user(OPERATOR)
        await operator.send("/daftarkan")
        await operator.expect(r"Bacakan teks ini")
        await operator.press("✅ Pekerja sudah mendengar dan setuju")
        await operator.expect(r"Hari ini Anda sudah mendaftarkan 2 pekerja")
        assert await services.operators.assisted_draft(operator_id=OPERATOR) is None
    finally:
        await harness.stop()


async def test_operators_nik_look_ups_count_against_the_daily_nik_limit(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> None:
    """NIK_ATTEMPTS_PER_DAY applies to an operator's assisted drafts too (all of them)."""
    # Many quick messages in a row: the flood guard (not under test) is widened.
    harness = Harness(emulator, tmp_path, database_url=database_url, flood_max_updates=200)
    await harness.start()
    try:
        await add_operator(harness, OPERATOR, make_person(350).kode_wilayah[:6])
        operator = harness.user(OPERATOR)
        limit = harness.settings.nik_attempts_per_day
        for n in range(limit):
            await start_assisted(operator)
            await operator.send(make_person(350 + n).nik)
            await operator.expect(r"\(2/9\)")
            await operator.send("/batal")
            await operator.expect(r"Pendaftaran untuk pekerja dibatalkan")
        await start_assisted(operator)
        await operator.send(make_person(350 + limit).nik)
        await operator.expect(r"Terlalu banyak NIK")
    finally:
        await harness.stop()


async def test_operator_list_shows_the_fraud_figures(harness: Harness) -> None:
    """/operator (admins): per operator the registrations, the share refused, those at night
    (WIB) and those whose phone number is on several applications."""
    await add_operator(harness, OPERATOR, make_person(3600).kode_wilayah[:6])
    services = harness.services
    night = datetime(2026, 11, 2, 16, 30, tzinfo=UTC)  # 23:30 WIB
    day = datetime(2026, 11, 3, 3, 0, tzinfo=UTC)  # 10:00 WIB
    rows = [
        make_application(
            make_person(3600 + n),
            secret=services.secret,
            user_id=0,
            code=f"BKS-FR000{n}",
            telegram_user_id=None,
            chat_id=None,
            assisted_by=OPERATOR,
            created_at=night if n == 0 else day,
            status=Status.REJECTED if n == 1 else Status.PENDING,
            phone="+6281200001111",
        )
        for n in range(4)
    ]
    await add_applications(services.database, *rows)
    admin = harness.user(ADMIN)
    await admin.send("/operator")
    listed = await admin.expect(r"Operator")
    assert (
        f"{OPERATOR}: hari ini 0 · hari tersibuk 3 · total 4 · ditolak 1 (25,0%) · "
        "malam hari 1 · nomor HP dipakai bersama 4"
    ) in listed.text
    operator = harness.user(OPERATOR)
    await operator.send("/operator")
    await operator.expect(r"tidak mengenal perintah")


async def test_community_link_counts_the_worker_in_komunitas_and_statistik(
    harness: Harness,
) -> None:
    """/komunitas tambah gives a t.me link with a random code; a worker who starts by it is
    stored with the community; /komunitas and /statistik count registrations and sent ones,
    per community and per operator."""
    admin = harness.user(ADMIN)
    await admin.send("/komunitas tambah Pangkalan Ojol Stasiun")
    answer = await admin.expect(r"Tautan untuk Pangkalan Ojol Stasiun")
    link = re.search(r"https://t\.me/rentan_test_bot\?start=([a-z0-9]{8})", answer.text)
    assert link is not None
    code = link.group(1)

    person = make_person(371)
    await seed(harness, person)
    worker = harness.user(200371)
    await worker.send(f"/start {code}")
    await worker.expect(r"Selamat datang")
    await worker.press("✅ Setuju")
    await worker.expect(r"\(1/9\) Kirim NIK")
    await give_identity(worker, person)
    number = await finish(worker, person)
    async with harness.services.database.read() as session:
        community = (await session.execute(sa.select(Community))).scalars().one()
    [stored] = await applications_of(harness, 200371)
    assert (stored.code, stored.community_id) == (number, community.id)
    assert community.name == "Pangkalan Ojol Stasiun"

    assisted = make_person(372)
    await seed(harness, assisted)
    await add_operator(harness, OPERATOR, assisted.kode_wilayah[:6])
    await register_for(harness.user(OPERATOR), assisted)

    await admin.send("/komunitas")
    listed = await admin.expect(r"Komunitas")
    assert f"Pangkalan Ojol Stasiun · 1 / 1 · https://t.me/rentan_test_bot?start={code}" in (
        listed.text
    )
    await admin.send("/statistik")
    stats = await admin.expect(r"per komunitas")
    assert "Pangkalan Ojol Stasiun: 1 / 1" in stats.text
    assert f"per operator\n{OPERATOR}: 1 / 1" in stats.text


async def test_operator_sees_only_what_they_registered(harness: Harness) -> None:
    """/status NUMBER answers an operator for their own registrations only; review commands
    stay closed to them (unknown command), and others' /status works as before."""
    worker = make_person(381)
    await seed(harness, worker)
    await add_operator(harness, OPERATOR, worker.kode_wilayah[:6])
    await add_operator(harness, OTHER_OPERATOR, worker.kode_wilayah[:6])
    code = await register_for(harness.user(OPERATOR), worker)

    other = harness.user(OTHER_OPERATOR)
    await other.send(f"/status {code}")
    await other.expect(r"Tidak ada pendaftaran yang Anda daftarkan dengan nomor itu")
    for command in ("/antrian", f"/tinjau {code}", f"/cari {code}", "/statistik"):
        await other.send(command)
        await other.expect(r"tidak mengenal perintah")
    stranger = harness.user(STRANGER)
    await stranger.send(f"/status {code}")
    await stranger.expect(r"belum punya pendaftaran")
