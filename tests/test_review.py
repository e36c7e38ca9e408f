"""Staff review end to end: queue, card, decisions, quota under concurrency, audit, refusals."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from telegram.ext import CommandHandler

from domain.lifecycle import Decision, Status
from domain.pii import hash_identifier
from domain.regions import load_regions
from domain.text import MAX_MARKS_PER_BASE, is_clean
from emulator import BotApiEmulator, EmulatedUser
from handlers import staff, staff_reports
from storage.models import (
    Application,
    AuditEvent,
    NikAttempt,
    Notification,
    StaffPendingInput,
    UserPreference,
)
from storage.notifications import IN_FLIGHT
from storage.review import ReviewRepository
from testkit.factories import Person, make_person
from testkit.fakes import add_application
from testkit.harness import Harness
from tests.test_registration import (
    applications_of,
    finish,
    give_identity,
    in_words,
    reach_nik,
    seed,
)

ADMIN = 900001
REVIEWER = 900002
STRANGER = 555555


async def register(harness: Harness, user_id: int, seed_value: int) -> tuple[EmulatedUser, str]:
    """A worker who registers through the conversation; returns the user and the number."""
    person = make_person(seed_value)
    await seed(harness, person)
    user = harness.user(user_id)
    await reach_nik(user)
    await give_identity(user, person)
    return user, await finish(user, person)


async def status_of(harness: Harness, code: str) -> str:
    """The stored status of an application."""
    async with harness.services.database.read() as session:
        result = await session.execute(
            sa.select(Application.status).where(Application.code == code)
        )
        return str(result.scalar_one())


async def pending_batch(harness: Harness, count: int, *, first_user: int = 700000) -> list[str]:
    """`count` pending applications written directly, each with its own worker account."""
    codes = []
    services = harness.services
    base = datetime(2026, 11, 1, tzinfo=UTC)
    for index in range(count):
        person = make_person(5000 + first_user + index)
        code = f"BKS-T{index:05d}"
        await add_application(
            services.database,
            services.secret,
            person,
            user_id=first_user + index,
            code=code,
            desil=(index % 5) + 1,
            submitted_at=base + timedelta(minutes=index),
        )
        codes.append(code)
    return codes


async def test_reviewer_approves_from_the_card_and_the_worker_is_told(harness: Harness) -> None:
    """/tinjau shows the card; Setujui approves; the worker gets a message and /status agrees."""
    worker, code = await register(harness, 210001, 1)
    reviewer = harness.user(REVIEWER)
    await reviewer.send("/tinjau")
    card = await reviewer.expect(re.escape(code))
    assert "DTSEN" in card.text
    assert "desil" in card.text
    await reviewer.press("✅ Setujui")
    await reviewer.expect(rf"{re.escape(code)} disetujui")
    await worker.expect(r"sudah disetujui")
    await worker.send("/status")
    await worker.expect(r"Status: disetujui")
    assert await status_of(harness, code) == Status.APPROVED
    await reviewer.send(f"/riwayat {code}")
    trail = await reviewer.expect(r"Riwayat")
    assert "dikirim oleh pekerja" in trail.text
    assert f"disetujui oleh {REVIEWER} (peninjau)" in trail.text
    assert "pending" not in trail.text
    assert "WIB" in trail.text


async def test_reviewer_rejects_with_a_listed_reason(harness: Harness) -> None:
    """Tolak -> a reason button; the worker reads that reason."""
    worker, code = await register(harness, 210002, 2)
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/tinjau {code}")
    await reviewer.expect(re.escape(code))
    await reviewer.press("❌ Tolak")
    await reviewer.expect(r"Mengapa")
    await reviewer.press("Bukan pekerja informal")
    await reviewer.expect(r"ditolak")
    notice = await worker.expect(r"tidak disetujui")
    assert "Bukan pekerja informal" in notice.text
    await worker.send("/status")
    await worker.expect(r"Alasan: Bukan pekerja informal")


async def ask_for_a_typed_reason(reviewer: EmulatedUser, code: str) -> None:
    """The reviewer opens the card of `code`, presses Tolak, then "type a reason"."""
    await reviewer.send(f"/tinjau {code}")
    await reviewer.expect(re.escape(code))
    await reviewer.press("❌ Tolak")
    await reviewer.expect(r"Mengapa")
    await reviewer.press("✍️ Ketik alasan")
    await reviewer.expect(r"Ketik alasan")


async def notifications_of(harness: Harness, code: str) -> list[Notification]:
    """The outbox rows written for one application."""
    async with harness.services.database.read() as session:
        owner = sa.select(Application.id).where(Application.code == code).scalar_subquery()
        result = await session.execute(
            sa.select(Notification).where(Notification.application_id == owner)
        )
        return list(result.scalars().all())


async def test_reviewer_rejects_with_a_typed_reason(harness: Harness) -> None:
    """A typed reason is shown back first; only Kirim sends it to the worker verbatim."""
    worker, code = await register(harness, 210003, 3)
    reviewer = harness.user(REVIEWER)
    await ask_for_a_typed_reason(reviewer, code)
    await reviewer.send("KTP <luar kota>")
    preview = await reviewer.expect(r"KTP <luar kota>")
    assert preview.button_labels() == ["✅ Kirim", "✖️ Batal"]
    assert await status_of(harness, code) == Status.PENDING
    assert await notifications_of(harness, code) == []
    await reviewer.press("✅ Kirim")
    await reviewer.expect(r"ditolak")
    notice = await worker.expect(r"tidak disetujui")
    assert "KTP <luar kota>" in notice.text


async def test_cancelled_typed_reason_reaches_nobody(harness: Harness) -> None:
    """Batal drops the typed reason: the application stays pending, the worker hears nothing."""
    _worker, code = await register(harness, 210013, 13)
    reviewer = harness.user(REVIEWER)
    await ask_for_a_typed_reason(reviewer, code)
    await reviewer.send("Alasan salah ketik")
    await reviewer.expect(r"Alasan salah ketik")
    await reviewer.press("✖️ Batal")
    await reviewer.expect(r"Dibatalkan")
    query_id = await reviewer.press("✅ Kirim")
    assert "tidak aktif" in await answer_to(harness, query_id)
    assert await status_of(harness, code) == Status.PENDING
    assert await notifications_of(harness, code) == []


@pytest.mark.parametrize("command", ["/antrian", "/start"])
async def test_a_command_after_type_a_reason_ends_the_wait(harness: Harness, command: str) -> None:
    """/antrian (or any command) in between: the next text is ordinary text, not a reason."""
    _worker, code = await register(harness, 210014, 14)
    reviewer = harness.user(REVIEWER)
    await ask_for_a_typed_reason(reviewer, code)
    await reviewer.send(command)
    await reviewer.expect(r".")
    await reviewer.send(make_person(2114).nik)
    answer = await reviewer.expect(r".")
    assert "Tolak" not in answer.text
    assert "✖️ Batal" not in answer.button_labels()
    assert await status_of(harness, code) == Status.PENDING
    assert await notifications_of(harness, code) == []


async def test_another_button_after_type_a_reason_ends_the_wait(harness: Harness) -> None:
    """Pressing another button (here Lewati on the card) ends the wait for a typed reason."""
    _worker, code = await register(harness, 210015, 15)
    reviewer = harness.user(REVIEWER)
    await ask_for_a_typed_reason(reviewer, code)
    await reviewer.press("⏭ Lewati")
    await reviewer.expect(r"Tidak ada lagi")
    await reviewer.send("Data tidak cocok")
    answer = await reviewer.expect(r"Kirim /start untuk mendaftar")
    assert "✖️ Batal" not in answer.button_labels()
    assert await status_of(harness, code) == Status.PENDING


async def test_typed_reason_is_not_read_after_ten_minutes(harness: Harness) -> None:
    """The wait expires: text typed 11 minutes later is ordinary text, and nothing is sent."""
    _worker, code = await register(harness, 210016, 16)
    reviewer = harness.user(REVIEWER)
    await ask_for_a_typed_reason(reviewer, code)
    later = datetime.now(UTC) + timedelta(minutes=11)
    harness.services.clock = lambda: later
    await reviewer.send("Data tidak cocok")
    await reviewer.expect(r"Kirim /start untuk mendaftar")
    assert await status_of(harness, code) == Status.PENDING
    assert await notifications_of(harness, code) == []


async def test_send_pressed_ten_minutes_after_the_reason_rejects_nothing(harness: Harness) -> None:
    """The confirmation expires too: Kirim 11 minutes after typing is no longer active."""
    _worker, code = await register(harness, 210017, 17)
    reviewer = harness.user(REVIEWER)
    await ask_for_a_typed_reason(reviewer, code)
    await reviewer.send("Data tidak cocok")
    await reviewer.expect(r"Data tidak cocok")
    later = datetime.now(UTC) + timedelta(minutes=11)
    harness.services.clock = lambda: later
    query_id = await reviewer.press("✅ Kirim")
    assert "tidak aktif" in await answer_to(harness, query_id)
    assert await status_of(harness, code) == Status.PENDING
    assert await notifications_of(harness, code) == []


async def test_expired_waits_are_deleted(harness: Harness) -> None:
    """A typed reason nobody sent does not stay stored: past 10 minutes it is deleted (the
    housekeeping job calls this)."""
    staff_repo = harness.services.staff
    now = datetime.now(UTC)
    for user_id, age in ((REVIEWER, 11), (ADMIN, 9)):
        await staff_repo.await_reason(
            user_id=user_id,
            application_id=1,
            status_read=Status.PENDING,
            now=now - timedelta(minutes=age),
        )
    assert await staff_repo.drop_expired_inputs(now=now) == 1
    async with harness.services.database.read() as session:
        left = (await session.execute(sa.select(StaffPendingInput.telegram_user_id))).all()
    assert [row[0] for row in left] == [ADMIN]


async def test_typed_reason_survives_restarts_and_send_still_works(harness: Harness) -> None:
    """The wait lives in the database: a restart before typing and one before Kirim change
    nothing."""
    worker, code = await register(harness, 210018, 18)
    reviewer = harness.user(REVIEWER)
    await ask_for_a_typed_reason(reviewer, code)
    await harness.restart()
    await reviewer.send("Alamat di luar Bekasi")
    await reviewer.expect(r"Alamat di luar Bekasi")
    await harness.restart()
    await reviewer.press("✅ Kirim")
    await reviewer.expect(r"ditolak")
    notice = await worker.expect(r"tidak disetujui")
    assert "Alamat di luar Bekasi" in notice.text


async def test_send_button_of_another_reviewer_rejects_nothing(harness: Harness) -> None:
    """Kirim acts only on the caller's own entry: another staff member's press with the same
    data is no longer active, and the owner's Kirim still works."""
    _worker, code = await register(harness, 210019, 19)
    reviewer = harness.user(REVIEWER)
    await ask_for_a_typed_reason(reviewer, code)
    await reviewer.send("Data ganda")
    preview = await reviewer.expect(r"Data ganda")
    async with harness.services.database.read() as session:
        token = (await session.execute(sa.select(StaffPendingInput.token))).scalar_one()
    admin = harness.user(ADMIN)
    await admin.send("/antrian")
    anchor = await admin.expect(r"Pendaftaran")
    query_id = await admin.press_data(f"sr:ok:{token}", anchor.message_id)
    assert "tidak aktif" in await answer_to(harness, query_id)
    assert await status_of(harness, code) == Status.PENDING
    await reviewer.press("✅ Kirim", message_id=preview.message_id)
    await reviewer.expect(r"ditolak")
    assert await status_of(harness, code) == Status.REJECTED


async def test_typed_reason_for_an_application_erased_meanwhile_is_answered(
    harness: Harness,
) -> None:
    """The worker erases their data while the reviewer types a reason: the reviewer is told."""
    worker, code = await register(harness, 210004, 4)
    reviewer = harness.user(REVIEWER)
    await ask_for_a_typed_reason(reviewer, code)
    await worker.send("/hapusdata")
    await worker.expect(r"hapus")
    await worker.press("🗑 Ya, hapus data saya")
    await worker.expect(r"sudah dihapus")
    await reviewer.send("Data tidak cocok")
    await reviewer.expect(r"Tidak ada pendaftaran dengan nomor itu")


async def test_needs_fix_takes_the_worker_to_the_field_and_back_to_the_queue(
    harness: Harness,
) -> None:
    """Perlu perbaikan -> Alamat: the worker fixes it, resends, and the reviewer approves."""
    worker, code = await register(harness, 210004, 4)
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/tinjau {code}")
    await reviewer.expect(re.escape(code))
    await reviewer.press("✏️ Perlu perbaikan")
    await reviewer.expect(r"Bagian mana")
    await reviewer.press("Alamat")
    await reviewer.expect(r"Ketik catatan")
    await reviewer.press("✅ Kirim tanpa catatan")
    await reviewer.expect(r"dikembalikan")
    await worker.expect(r"memperbaiki: Alamat")
    await worker.expect(r"\(5/9\) Kirim alamat")
    await worker.send("Jl. Perbaikan No. 9")
    await worker.expect(r"Periksa kembali")
    await worker.press("✅ Kirim")
    await worker.expect(re.escape(code))
    assert await status_of(harness, code) == Status.PENDING
    await reviewer.send(f"/setujui {code}")
    await reviewer.expect(r"disetujui")
    async with harness.services.database.read() as session:
        stored = (
            await session.execute(sa.select(Application).where(Application.code == code))
        ).scalar_one()
    assert (stored.alamat, stored.status) == ("Jl. Perbaikan No. 9", Status.APPROVED)


async def test_worker_correcting_the_nik_of_an_application_rejected_meanwhile_is_answered(
    harness: Harness,
) -> None:
    """Asked to fix the NIK, then rejected before answering: the new NIK gets a reply."""
    worker, code = await register(harness, 210006, 6)
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/perbaiki {code} nik")
    await reviewer.expect(r"dikembalikan")
    await worker.expect(r"\(1/9\) Kirim NIK")
    await worker.send("bukan nik")
    await worker.expect(r"\(1/9\) Kirim NIK")
    await reviewer.send(f"/tolak {code} Data ganda")
    await reviewer.expect(r"ditolak")
    await worker.expect(r"tidak disetujui")
    await worker.send(make_person(2106).nik)  # someone DTSEN does not know
    await worker.expect(r"/status")
    assert await status_of(harness, code) == Status.REJECTED


async def test_two_reviewers_asking_for_the_next_card_get_different_applications(
    harness: Harness,
) -> None:
    """An open card is left to its reviewer; when they move on it is free again."""
    codes = await pending_batch(harness, 3)
    reviewer, admin = harness.user(REVIEWER), harness.user(ADMIN)
    await reviewer.send("/tinjau")
    first = await reviewer.expect(r"BKS-T")
    await admin.send("/tinjau")
    second = await admin.expect(r"BKS-T")
    shown = {code for code in codes if code in first.text} | {
        code for code in codes if code in second.text
    }
    assert len(shown) == 2


async def test_second_decision_on_the_same_application_changes_nothing(harness: Harness) -> None:
    """Two reviewers, one application: the second hears who decided and when."""
    _worker, code = await register(harness, 210005, 5)
    admin = harness.user(ADMIN)
    reviewer = harness.user(REVIEWER)
    await admin.send(f"/setujui {code}")
    await admin.expect(r"disetujui")
    await reviewer.send(f"/tolak {code} terlambat")
    reply = await reviewer.expect(r"Tidak ada perubahan")
    assert str(ADMIN) in reply.text
    assert await status_of(harness, code) == Status.APPROVED


STAFF_COMMANDS = [
    "/antrian",
    "/tinjau",
    "/setujui BKS-T00000",
    "/tolak BKS-T00000 alasan",
    "/perbaiki BKS-T00000 address",
    "/tarik BKS-A00000 alasan",
    "/riwayat BKS-T00000",
    "/cari BKS-T00000",
    "/statistik",
    "/ekspor",
    "/staf",
    "/staf tambah 555555 admin",
    "/staf hapus 600600",
]


def test_staff_command_list_names_every_registered_staff_command() -> None:
    """STAFF_COMMANDS names every command staff.build() and staff_reports.build() register."""
    registered = {
        command
        for handler in [*staff.build(), *staff_reports.build()]
        if isinstance(handler, CommandHandler)
        for command in handler.commands
    }
    listed = {command.split(" ")[0].removeprefix("/") for command in STAFF_COMMANDS}
    assert registered == listed


async def approved_application(harness: Harness) -> int:
    """BKS-A00000, approved (holding a place), written directly; returns its id."""
    services = harness.services
    return await add_application(
        services.database,
        services.secret,
        make_person(5_600_000),
        user_id=760000,
        code="BKS-A00000",
        status=Status.APPROVED,
    )


async def audit_of(harness: Harness, actor_id: int) -> list[AuditEvent]:
    """Every audit event written for one actor."""
    async with harness.services.database.read() as session:
        result = await session.execute(
            sa.select(AuditEvent).where(AuditEvent.actor_id == actor_id)
        )
        return list(result.scalars().all())


@pytest.mark.parametrize("command", STAFF_COMMANDS)
async def test_non_staff_staff_command_reads_like_an_unknown_command(
    harness: Harness, command: str
) -> None:
    """A stranger learns nothing: the same answer as a typo, and the attempt is audited."""
    await pending_batch(harness, 1)
    await approved_application(harness)
    services = harness.services
    await services.staff.put(user_id=600600, role="reviewer", kecamatan_scope=None, actor_id=ADMIN)
    stranger = harness.user(STRANGER)
    await stranger.send(command)
    await stranger.expect(r"tidak mengenal perintah")
    await stranger.expect_no_reply(within=0.2)
    assert await status_of(harness, "BKS-T00000") == Status.PENDING
    assert await status_of(harness, "BKS-A00000") == Status.APPROVED
    assert await services.review.places_taken() == 1
    assert [(row.telegram_user_id, row.role) for row in await services.staff.all()] == [
        (600600, "reviewer")
    ]
    denied = await audit_of(harness, STRANGER)
    assert [(event.action, event.reason) for event in denied] == [
        ("denied", f"command: {command.split(' ')[0]}")
    ]


async def test_reviewer_cannot_manage_staff(harness: Harness) -> None:
    """/staf is for admins only."""
    reviewer = harness.user(REVIEWER)
    await reviewer.send("/staf tambah 555555 admin")
    await reviewer.expect(r"tidak mengenal perintah")


async def test_reviewer_withdrawal_is_refused_and_the_approval_stands(harness: Harness) -> None:
    """/tarik is for admins: a reviewer's reads like an unknown command and frees no place."""
    await approved_application(harness)
    services = harness.services
    await add_application(  # first in line for a freed place: nobody may be offered it
        services.database,
        services.secret,
        make_person(5_600_001),
        user_id=760001,
        code="BKS-W00000",
        status=Status.WAITLISTED,
    )
    reviewer, admin = harness.user(REVIEWER), harness.user(ADMIN)
    await reviewer.send("/tarik BKS-A00000 data ganda")
    await reviewer.expect(r"tidak mengenal perintah")
    await reviewer.expect_no_reply(within=0.2)
    await admin.expect_no_reply(within=0.1)
    assert await status_of(harness, "BKS-A00000") == Status.APPROVED
    assert await status_of(harness, "BKS-W00000") == Status.WAITLISTED
    assert await services.review.places_taken() == 1
    assert [(event.action, event.reason) for event in await audit_of(harness, REVIEWER)] == [
        ("denied", "command: /tarik")
    ]
    async with services.database.read() as session:
        assert (await session.execute(sa.select(Notification))).scalars().all() == []


@pytest.mark.parametrize("data", ["sv:rr:{id}:not_informal", "sv:fs:{id}:address"])
async def test_reviewer_cannot_take_back_an_approval_with_a_card_button(
    harness: Harness, data: str
) -> None:
    """Only /tarik frees a place: a reviewer's forged reject or fix press on an approval fails."""
    application_id = await approved_application(harness)
    reviewer = harness.user(REVIEWER)
    await reviewer.send("/antrian")
    anchor = await reviewer.expect(r"Pendaftaran")
    await reviewer.press_data(data.format(id=application_id), anchor.message_id)
    await reviewer.expect(r"Tidak ada perubahan: BKS-A00000 sudah disetujui")
    assert await status_of(harness, "BKS-A00000") == Status.APPROVED
    assert await harness.services.review.places_taken() == 1


async def answer_to(harness: Harness, query_id: str) -> str:
    """The text the bot answered a callback query with (waiting briefly for it)."""
    for _ in range(50):
        if query_id in harness.emulator.answered_callbacks:
            break
        await asyncio.sleep(0.02)
    return harness.emulator.answered_callbacks[query_id][0] or ""


# Every staff callback prefix the handlers build: sq: (queue pages) and sv:<action>: (card).
FORGED_STAFF_BUTTONS = [
    "sq:1",
    "sv:ap:{id}",
    "sv:rj:{id}",
    "sv:rr:{id}:not_informal",
    "sv:rt:{id}",
    "sv:fx:{id}",
    "sv:ff:{id}:address",
    "sv:fs:{id}:address",
    "sv:cx:{id}",
    "sv:sk:{id}",
    "sv:nx:{id}",
    "sr:ok:{id}",
    "sr:no:{id}",
]


def test_forged_button_list_covers_every_staff_button_prefix() -> None:
    """Each callback_data prefix built in handlers/staff*.py has a forged press below."""
    prefix = r"[a-z]+:(?:[a-z]+:)?"
    built = set()
    for path in sorted(Path(staff.__file__ or "").parent.glob("staff*.py")):
        source = path.read_text(encoding="utf-8")
        built |= set(re.findall(rf'callback_data=f?"({prefix})', source))
    forged = {match.group() for data in FORGED_STAFF_BUTTONS if (match := re.match(prefix, data))}
    assert built == forged


async def _forged_press_on_one_pending(harness: Harness, user: EmulatedUser, data: str) -> str:
    """One pending application, then `user` presses button data naming it ({id}) under one of
    their own messages, as a modified client could; the callback query's id comes back."""
    await pending_batch(harness, 1)
    async with harness.services.database.read() as session:
        application_id = (await session.execute(sa.select(Application.id))).scalar_one()
    await user.send("/bantuan")
    anchor = await user.expect(r"Bantuan")
    return await user.press_data(data.format(id=application_id), anchor.message_id)


@pytest.mark.parametrize("data", FORGED_STAFF_BUTTONS)
async def test_forged_staff_button_from_a_stranger_changes_nothing(
    harness: Harness, data: str
) -> None:
    """A modified client sending staff callback data gets nothing, and it is audited."""
    stranger = harness.user(STRANGER)
    query_id = await _forged_press_on_one_pending(harness, stranger, data)
    assert "tidak aktif" in await answer_to(harness, query_id)
    await stranger.expect_no_reply(within=0.2)
    assert await status_of(harness, "BKS-T00000") == Status.PENDING
    async with harness.services.database.read() as session:
        denied = (
            (await session.execute(sa.select(AuditEvent).where(AuditEvent.action == "denied")))
            .scalars()
            .all()
        )
    assert [event.actor_id for event in denied] == [STRANGER]


async def test_stranger_typing_after_a_forged_reason_button_rejects_nothing(
    harness: Harness,
) -> None:
    """A forged 'type a reason' press arms nothing: the stranger's next text is no reason."""
    stranger = harness.user(STRANGER)
    query_id = await _forged_press_on_one_pending(harness, stranger, "sv:rt:{id}")
    assert "tidak aktif" in await answer_to(harness, query_id)
    await stranger.send("Data tidak cocok")
    await stranger.expect(r"Kirim /start untuk mendaftar")
    assert await status_of(harness, "BKS-T00000") == Status.PENDING
    assert [event.action for event in await audit_of(harness, STRANGER)] == ["denied"]


async def test_admin_adds_and_removes_a_reviewer_by_numeric_id(harness: Harness) -> None:
    """/staf tambah gives access to that id; /staf hapus takes it away."""
    admin = harness.user(ADMIN)
    newcomer = harness.user(600600)
    await admin.send("/staf tambah 600600 reviewer")
    await admin.expect(r"600600")
    await newcomer.send("/antrian")
    await newcomer.expect(r"Pendaftaran")
    await admin.send("/staf hapus 600600")
    await admin.expect(r"dihapus")
    await newcomer.send("/antrian")
    await newcomer.expect(r"tidak mengenal perintah")


@pytest.mark.parametrize(
    ("scope", "stored", "named"),
    [
        ("Bekasi Utara", "327503", "Bekasi Utara"),
        ("bekasi utara", "327503", "Bekasi Utara"),
        ("3275.03", "327503", "Bekasi Utara"),
        ("327503", "327503", "Bekasi Utara"),
        ("Bekasi Utara, Rawalumbu", "327503,327505", "Bekasi Utara (327503), Rawalumbu"),
        ("Bantar Gebang,3275.09", "327507,327509", "Bantargebang (327507), Jatiasih"),
    ],
)
async def test_admin_scopes_a_reviewer_by_kecamatan_name_or_code(
    harness: Harness, scope: str, stored: str, named: str
) -> None:
    """Names (any case, several words) and codes (dots or none) give that scope, and the
    confirmation names it."""
    admin = harness.user(ADMIN)
    await admin.send(f"/staf tambah 600601 reviewer {scope}")
    confirmation = await admin.expect(r"600601")
    assert named in confirmation.text
    row = await harness.services.staff.get(user_id=600601)
    assert row is not None
    assert (row.role, row.kecamatan_scope) == ("reviewer", stored)


async def test_reviewer_added_without_a_scope_is_told_it_is_the_whole_area(
    harness: Harness,
) -> None:
    """No kecamatan given: the confirmation says the reviewer sees the whole programme area."""
    admin = harness.user(ADMIN)
    await admin.send("/staf tambah 600603 reviewer")
    assert "seluruh wilayah" in (await admin.expect(r"600603")).text
    row = await harness.services.staff.get(user_id=600603)
    assert row is not None
    assert row.kecamatan_scope is None


@pytest.mark.parametrize("scope", ["Bekasi Tengah", "Bekasi Utara, Cikarang", "327599", "BKS"])
async def test_unknown_kecamatan_scope_is_refused_with_the_valid_names(
    harness: Harness, scope: str
) -> None:
    """A scope naming no kecamatan of the area grants nothing (no city-wide fallback) and
    lists the valid names."""
    admin = harness.user(ADMIN)
    await admin.send(f"/staf tambah 600602 reviewer {scope}")
    refusal = await admin.expect(r"tidak dikenal")
    assert "Bekasi Utara (327503)" in refusal.text
    assert "Pondokmelati (327512)" in refusal.text
    assert await harness.services.staff.get(user_id=600602) is None
    newcomer = harness.user(600602)
    await newcomer.send("/antrian")
    await newcomer.expect(r"tidak mengenal perintah")


def person_in(kecamatan: str, seed_value: int) -> Person:
    """A synthetic person living in the first kelurahan of `kecamatan`."""
    return make_person(seed_value, kode_wilayah=load_regions().kelurahan_of(kecamatan)[0].code)


async def test_scoped_reviewer_added_by_name_sees_only_their_kecamatan(harness: Harness) -> None:
    """A reviewer scoped to Bekasi Utara by name cannot open an application elsewhere."""
    services = harness.services
    await add_application(
        services.database,
        services.secret,
        person_in("327503", 5_700_100),
        user_id=710100,
        code="BKS-UTARA1",
    )
    await add_application(
        services.database,
        services.secret,
        person_in("327501", 5_700_101),
        user_id=710101,
        code="BKS-TIMUR1",
    )
    admin = harness.user(ADMIN)
    await admin.send("/staf tambah 600604 reviewer Bekasi Utara")
    await admin.expect(r"600604")
    scoped = harness.user(600604)
    await scoped.send("/tinjau BKS-TIMUR1")
    await scoped.expect(r"Tidak ada pendaftaran dengan nomor itu")
    await scoped.send("/tinjau BKS-UTARA1")
    await scoped.expect(r"Pendaftaran BKS-UTARA1")


async def test_queue_lists_lowest_desil_first_then_oldest(harness: Harness) -> None:
    """/antrian orders the pending queue by desil, then submission time, and pages it."""
    codes = await pending_batch(harness, 25)
    reviewer = harness.user(REVIEWER)
    await reviewer.send("/antrian")
    page = await reviewer.expect(r"Menunggu verifikasi")
    listed = re.findall(r"BKS-T\d{5}", page.text)
    # desil = index % 5 + 1: desil 1 holds indexes 0, 5, 10, 15, 20 in submission order.
    assert listed[:5] == [codes[i] for i in (0, 5, 10, 15, 20)]
    assert len(listed) == 10
    assert len(page.text) < 4096
    await reviewer.press("▶")
    second = await reviewer.expect(r"Menunggu verifikasi")
    assert re.findall(r"BKS-T\d{5}", second.text)[0] == codes[2]


async def test_search_masks_the_nik_for_reviewers_but_not_admins(harness: Harness) -> None:
    """/cari by NIK finds the application; only admins see the whole NIK."""
    person = make_person(5700000)
    services = harness.services
    await add_application(
        services.database, services.secret, person, user_id=710000, code="BKS-CARI01"
    )
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/cari {person.nik}")
    card = await reviewer.expect(r"BKS-CARI01")
    assert person.nik not in card.text
    assert f"{person.nik[:4]}********{person.nik[-4:]}" in card.text
    admin = harness.user(ADMIN)
    await admin.send("/cari BKS-CARI01")
    assert person.nik in (await admin.expect(r"BKS-CARI01")).text


async def test_full_nik_shown_to_an_admin_is_audited_and_a_masked_one_is_not(
    harness: Harness,
) -> None:
    """An admin's card (full NIK) from /cari or /tinjau is audited with who, which and how;
    a reviewer's masked card is not."""
    services = harness.services
    application_id = await add_application(
        services.database, services.secret, make_person(5700001), user_id=710001, code="BKS-CARI02"
    )
    reviewer, admin = harness.user(REVIEWER), harness.user(ADMIN)
    await reviewer.send("/cari BKS-CARI02")
    await reviewer.expect(r"BKS-CARI02")
    await admin.send("/cari BKS-CARI02")
    await admin.expect(r"BKS-CARI02")
    await admin.send("/tinjau")
    await admin.expect(r"BKS-CARI02")
    async with services.database.read() as session:
        views = (
            await session.execute(
                sa.select(AuditEvent.actor_id, AuditEvent.application_id, AuditEvent.reason)
                .where(AuditEvent.action == "nik_view")
                .order_by(AuditEvent.id)
            )
        ).all()
    assert [tuple(row) for row in views] == [
        (ADMIN, application_id, "via /cari"),
        (ADMIN, application_id, "via /tinjau"),
    ]


async def test_full_nik_view_redelivered_after_a_crash_is_audited_once(harness: Harness) -> None:
    """An admin's /cari delivered again after a crash (same update_id) adds no second view to
    the audit: the view is claimed with its update (found by the whole-bot state machine)."""
    services = harness.services
    await add_application(
        services.database, services.secret, make_person(5700002), user_id=710002, code="BKS-CARI03"
    )
    admin = harness.user(ADMIN)
    await admin.send("/cari BKS-CARI03")
    await admin.expect(r"BKS-CARI03")
    search = harness.emulator.last_update_id
    await harness.stop()
    harness.emulator.redeliver(search)
    await harness.start()
    await admin.expect_no_reply(within=1.0)
    # The restarted bot has a new database handle; the old one is closed.
    async with harness.services.database.read() as session:
        views = (
            await session.execute(
                sa.select(sa.func.count()).where(AuditEvent.action == "nik_view")
            )
        ).scalar_one()
    assert views == 1


async def test_quota_holds_under_concurrent_reviewers_and_a_freed_place_is_offered(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> None:
    """Quota N, 3N applications, four reviewers approving at once: exactly N approved."""
    quota = 5
    harness = Harness(
        emulator,
        tmp_path,
        database_url=database_url,
        program_quota=str(quota),
        reviewer_ids="900002,900003,900004,900005",
    )
    await harness.start()
    try:
        codes = await pending_batch(harness, 3 * quota)
        reviewers = [harness.user(uid) for uid in (900002, 900003, 900004, 900005)]

        async def approve_all(reviewer: EmulatedUser, mine: list[str]) -> None:
            for code in mine:
                await reviewer.send(f"/setujui {code}")
                await reviewer.expect(re.escape(code))

        # Every reviewer tries every application, in a different order.
        await asyncio.gather(
            *(approve_all(r, codes[i:] + codes[:i]) for i, r in enumerate(reviewers))
        )
        async with harness.services.database.read() as session:
            rows = (await session.execute(sa.select(Application))).scalars().all()
        approved = [r for r in rows if r.status == Status.APPROVED]
        waiting = sorted(
            (r for r in rows if r.status == Status.WAITLISTED),
            key=lambda r: (r.dtsen_desil, r.submitted_at),
        )
        assert len(approved) == quota
        assert len(waiting) == 2 * quota
        first_in_line = waiting[0].code

        admin = harness.user(ADMIN)
        await admin.send(f"/tarik {approved[0].code} data ganda")
        await admin.expect(r"ditarik")
        await admin.expect(rf"tempat kosong.*{re.escape(str(first_in_line))}")
        await admin.send(f"/setujui {first_in_line}")
        await admin.expect(r"disetujui")
        assert await status_of(harness, str(first_in_line)) == Status.APPROVED
    finally:
        await harness.stop()


async def test_repository_approvals_in_parallel_never_exceed_the_quota(harness: Harness) -> None:
    """Thirty concurrent approve transactions against quota 7: seven approvals, no more."""
    codes = await pending_batch(harness, 30)
    services = harness.services
    review = ReviewRepository(services.database)
    async with services.database.read() as session:
        ids = (await session.execute(sa.select(Application.id))).scalars().all()
    results = await asyncio.gather(
        *(
            review.decide(
                application_id=int(app_id),
                decision=Decision.APPROVE,
                actor_id=REVIEWER,
                allowed_from=(Status.PENDING,),
                effective_quota=7,
            )
            for app_id in ids
        )
    )
    assert sum(1 for r in results if r.result == "done") == 7
    assert await review.places_taken() == 7
    assert len(codes) == 30


async def test_decision_stands_when_the_worker_blocked_the_bot(harness: Harness) -> None:
    """A blocked worker cannot receive the news; the approval stays and the failure is kept."""
    worker, code = await register(harness, 210006, 6)
    await worker.block()
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/setujui {code}")
    await reviewer.expect(r"disetujui")
    for _ in range(100):
        async with harness.services.database.read() as session:
            note = (await session.execute(sa.select(Notification))).scalars().first()
        if note is not None and note.last_error and note.last_error != IN_FLIGHT:
            break
        await asyncio.sleep(0.05)
    assert note is not None
    assert note.sent_at is None
    assert "blocked" in (note.last_error or "")
    assert await status_of(harness, code) == Status.APPROVED


async def test_worker_erases_their_data_and_an_approved_place_is_freed(harness: Harness) -> None:
    """/hapusdata: the approved worker leaves the programme, staff are told, nothing remains:
    no application, notification or language choice, and their NIK attempts name no NIK."""
    worker, code = await register(harness, 210007, 7)
    admin = harness.user(ADMIN)
    await admin.send(f"/setujui {code}")
    await admin.expect(r"disetujui")
    await worker.expect(r"sudah disetujui")
    await worker.send("/bahasa")
    await worker.expect(r"Pilih bahasa")
    await worker.press("Bahasa Indonesia")
    await worker.expect(r"Bahasa diganti")
    async with harness.services.database.read() as session:
        before = [
            await session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (Notification, UserPreference)
        ]
    assert before == [1, 1]
    await worker.send("/hapusdata")
    await worker.expect(r"menarik persetujuan")
    await worker.press("🗑 Ya, hapus data saya")
    await worker.expect(r"sudah dihapus")
    await admin.expect(rf"{re.escape(code)} keluar dari program")
    async with harness.services.database.read() as session:
        left = (await session.execute(sa.select(Application))).scalars().all()
        trail = (await session.execute(sa.select(AuditEvent.action))).scalars().all()
        notifications = (await session.execute(sa.select(Notification))).scalars().all()
        preferences = (await session.execute(sa.select(UserPreference))).scalars().all()
        attempts = (
            await session.execute(
                sa.select(NikAttempt.nik_hash).where(NikAttempt.telegram_user_id == worker.id)
            )
        ).scalars()
        keys = set(attempts)
    assert left == []
    assert "withdraw" in trail
    assert "erase" in trail
    assert notifications == []
    assert preferences == []
    assert keys  # still counted towards the day's limit ...
    assert hash_identifier(make_person(7).nik, harness.services.secret) not in keys  # ... unlinked
    await worker.send("/status")
    await worker.expect(r"belum punya pendaftaran")


async def test_decision_delivered_again_after_a_crash_changes_nothing(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> None:
    """'/setujui' that waitlisted an application, redelivered after a place came free, does
    not approve it: the same update is not decided twice. (Staff promote here: automatic
    promotion would fill the freed place by itself, tests/test_waitlist.py.)"""
    harness = Harness(
        emulator,
        tmp_path,
        database_url=database_url,
        program_quota="1",
        program_waitlist_promotion="staff",
    )
    await harness.start()
    try:
        first, second = await pending_batch(harness, 2)
        admin, reviewer = harness.user(ADMIN), harness.user(REVIEWER)
        await admin.send(f"/setujui {first}")
        await admin.expect(r"disetujui")
        await reviewer.send(f"/setujui {second}")
        await reviewer.expect(r"daftar tunggu")
        waitlisting = emulator.last_update_id
        await admin.send(f"/tarik {first} data ganda")
        await admin.expect(r"ditarik")
        await harness.stop()
        emulator.redeliver(waitlisting)
        await harness.start()
        await reviewer.send("/antrian")
        await reviewer.expect(r"Kuota terpakai: 0 dari 1")
        assert await status_of(harness, second) == Status.WAITLISTED
    finally:
        await harness.stop()


async def denied_on(harness: Harness, code: str) -> list[tuple[int | None, str | None]]:
    """(actor, reason) of each refused attempt audited against one application."""
    async with harness.services.database.read() as session:
        application_id = (
            await session.execute(sa.select(Application.id).where(Application.code == code))
        ).scalar_one()
        result = await session.execute(
            sa.select(AuditEvent).where(
                AuditEvent.application_id == application_id, AuditEvent.action == "denied"
            )
        )
        return [(event.actor_id, event.reason) for event in result.scalars()]


async def notifications_queued(harness: Harness) -> int:
    """How many worker notifications were ever queued (none are deleted here)."""
    async with harness.services.database.read() as session:
        return len((await session.execute(sa.select(Notification))).scalars().all())


@pytest.mark.parametrize(
    ("command", "decision"),
    [
        ("/setujui {code}", "approve"),
        ("/tolak {code} data ganda", "reject"),
        ("/perbaiki {code} address", "fix"),
    ],
)
async def test_reviewer_cannot_decide_their_own_application(
    harness: Harness, command: str, decision: str
) -> None:
    """A reviewer who registered as a worker too is refused on their own application: it stays
    pending, the worker is sent nothing, and the attempt is audited."""
    _me, code = await register(harness, REVIEWER, 13)
    reviewer = harness.user(REVIEWER)
    await reviewer.send(command.format(code=code))
    await reviewer.expect(rf"{re.escape(code)}.*pendaftaran Anda sendiri")
    assert await status_of(harness, code) == Status.PENDING
    assert await denied_on(harness, code) == [(REVIEWER, f"{decision}: own application")]
    assert await notifications_queued(harness) == 0


async def test_reviewer_cannot_approve_own_application_from_the_card(harness: Harness) -> None:
    """The card's Setujui on one's own application is refused like the command."""
    _me, code = await register(harness, REVIEWER, 14)
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/tinjau {code}")
    await reviewer.expect(re.escape(code))
    await reviewer.press("✅ Setujui")
    await reviewer.expect(r"pendaftaran Anda sendiri")
    assert await status_of(harness, code) == Status.PENDING
    assert await harness.services.review.places_taken() == 0
    assert await denied_on(harness, code) == [(REVIEWER, "approve: own application")]


async def test_admin_cannot_withdraw_their_own_approval(harness: Harness) -> None:
    """/tarik on the admin's own approved application is refused; the place stays taken."""
    services = harness.services
    await add_application(
        services.database,
        services.secret,
        make_person(5_600_013),
        user_id=ADMIN,
        code="BKS-OWN000",
        status=Status.APPROVED,
    )
    admin = harness.user(ADMIN)
    await admin.send("/tarik BKS-OWN000 data ganda")
    await admin.expect(r"BKS-OWN000.*pendaftaran Anda sendiri")
    assert await status_of(harness, "BKS-OWN000") == Status.APPROVED
    assert await services.review.places_taken() == 1
    assert await denied_on(harness, "BKS-OWN000") == [(ADMIN, "withdraw: own application")]
    assert await notifications_queued(harness) == 0


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("/staf hapus ²", r"Cara pakai"),
        ("/staf tambah ³²⁷⁵ reviewer", r"Cara pakai"),
        ("/tinjau ²", r"Tidak ada pendaftaran dengan nomor itu"),
        ("/cari ³²⁷⁵⁰¹¹⁷⁰⁸⁸⁵⁰⁰⁰¹", r"bukan NIK"),
    ],
)
async def test_staff_commands_with_superscript_digits_answer_normally(
    harness: Harness, command: str, answer: str
) -> None:
    """ "²".isdigit() is true but int("²") fails: such numbers get the usual answer."""
    admin = harness.user(ADMIN)
    await admin.send(command)
    await admin.expect(answer)
    await admin.expect_no_reply(within=0.2)


@pytest.mark.parametrize("data", ["sq:²", "sv:ap:²", "sv:sk:¹²"])
async def test_staff_buttons_with_superscript_digits_change_nothing(
    harness: Harness, data: str
) -> None:
    """Forged button data with superscript digits is answered, not a crash."""
    admin = harness.user(ADMIN)
    await pending_batch(harness, 1)
    await admin.send("/bantuan")
    anchor = await admin.expect(r"Bantuan")
    query_id = await admin.press_data(data, anchor.message_id)
    await answer_to(harness, query_id)
    await admin.send("/bantuan")  # handled after the press: every reply to it is in
    await admin.expect(r"Bantuan")
    assert not [m for m in admin.messages() if "gangguan" in (m.text or "")]
    assert await status_of(harness, "BKS-T00000") == Status.PENDING


async def test_identity_correction_that_does_not_match_dtsen_never_loses_the_application(
    harness: Harness,
) -> None:
    """Sent back to fix the name, the worker types one that DTSEN does not know: asked again,
    answers kept; past the daily check limit it is back in review, flagged on the card."""
    person = make_person(7)
    worker, code = await register(harness, 210007, 7)
    [before] = await applications_of(harness, 210007)
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/perbaiki {code} name")
    await reviewer.expect(r"dikembalikan")
    await worker.expect(r"\(2/9\) Kirim nama")
    await worker.send("Zulkarnain Wibisono")
    asked = await worker.expect(r"\(2/9\) Kirim nama")
    assert "tidak cocok dengan daftar program" in asked.text
    [stored] = await applications_of(harness, 210007)
    assert (stored.status, stored.code, stored.nama) == (Status.NEEDS_FIX, code, person.name)
    assert (stored.submitted_at, stored.alamat) == (before.submitted_at, before.alamat)

    # Each different wrong name is another check; the limit runs out within the day.
    limit = harness.settings.nik_attempts_per_day
    for attempt in range(limit):
        await worker.send(f"Zulkarnain Wibisono {'ABCDEFGHIJ'[attempt]}")
        reply = await worker.expect(r"\(2/9\)|tetap dalam peninjauan")
        if "tetap dalam peninjauan" in reply.text:
            break
    assert "tetap dalam peninjauan" in reply.text
    [stored] = await applications_of(harness, 210007)
    assert (stored.status, stored.code, stored.nama) == (Status.PENDING, code, person.name)
    assert stored.submitted_at == before.submitted_at
    assert stored.identity_mismatch_at is not None
    await reviewer.send(f"/tinjau {code}")
    card = await reviewer.expect(re.escape(code))
    assert "koreksi identitas tidak cocok dengan DTSEN" in card.text
    await worker.send("/status")
    await worker.expect(r"menunggu verifikasi")


async def test_birth_date_correction_that_does_not_match_dtsen_keeps_the_application(
    harness: Harness,
) -> None:
    """Sent back to fix the birth date, the worker types one that matches neither DTSEN nor
    the NIK: asked again with the neutral text, the application and its date are kept."""
    person = make_person(8)
    worker, code = await register(harness, 210008, 8)
    [before] = await applications_of(harness, 210008)
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/perbaiki {code} tgl lahir")
    await reviewer.expect(r"dikembalikan")
    await worker.expect(r"\(3/9\)")
    wrong = person.birth_date.replace(year=person.birth_date.year - 3)
    await worker.send(in_words(wrong))
    asked = await worker.expect(r"\(3/9\)")
    assert "tidak cocok dengan daftar program" in asked.text
    [stored] = await applications_of(harness, 210008)
    assert (stored.status, stored.code) == (Status.NEEDS_FIX, code)
    assert (stored.tanggal_lahir, stored.submitted_at) == (person.birth_date, before.submitted_at)
    assert stored.eligibility_reasons == before.eligibility_reasons


@pytest.mark.parametrize("how", ["command", "typed"])
async def test_staff_reason_is_stored_and_sent_without_invisible_characters(
    harness: Harness, how: str
) -> None:
    """A rejection reason with a direction override, a zero-width space and a stack of marks
    (from /tolak or typed after "Ketik alasan") reaches the record, the audit and the worker
    as its visible text only."""
    worker, code = await register(harness, 210009 if how == "command" else 210010, 9)
    reviewer = harness.user(REVIEWER)
    typed = "KTP\u202e luar\u200b kota" + "\u0301" * 12
    if how == "command":
        await reviewer.send(f"/tolak {code} {typed}")
    else:
        await ask_for_a_typed_reason(reviewer, code)
        await reviewer.send(typed)
        await reviewer.expect(r"KTP luar kot")
        await reviewer.press("✅ Kirim")
    await reviewer.expect(r"ditolak")
    notice = await worker.expect(r"tidak disetujui")
    async with harness.services.database.read() as session:
        stored = (
            await session.execute(
                sa.select(Application.decision_reason).where(Application.code == code)
            )
        ).scalar_one()
        audited = (
            await session.execute(
                sa.select(AuditEvent.reason).where(AuditEvent.action == "reject")
            )
        ).scalar_one()
    assert stored is not None
    assert stored.startswith("KTP luar kot")
    assert is_clean(stored)
    assert is_clean(audited or "")
    assert "\u202e" not in notice.text
    assert "\u200b" not in notice.text
    assert "\u0301" * (MAX_MARKS_PER_BASE + 1) not in notice.text


async def test_waitlisted_worker_is_told_the_self_pay_route(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> None:
    """A full quota is a refusal for now: the waiting-list message names paying for oneself."""
    harness = Harness(emulator, tmp_path, database_url=database_url, program_quota="0")
    await harness.start()
    try:
        worker, code = await register(harness, 210090, 90)
        reviewer = harness.user(REVIEWER)
        await reviewer.send(f"/setujui {code}")
        await reviewer.expect(re.escape(code))
        told = await worker.expect(r"daftar tunggu")
        assert "biaya sendiri" in told.text
        assert "Rp8.400/bulan (sampai Maret 2027)" in told.text
    finally:
        await harness.stop()
