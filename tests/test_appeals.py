"""Appeals (sanggah) end to end: filing by command and button, one open per application, the
staff queue, overdue and escalated once, upheld (re-opened or included by an admin), dismissed
with a reason and the DTSEN update route; forged buttons; the answer race on both backends."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from telegram.ext import Job

from bot import cli
from domain.appeals import (
    AppealStats,
    Outcome,
    add_working_days,
    appeal_section,
    is_overdue,
    parse_ticket,
    ticket,
)
from domain.lifecycle import Status
from emulator import EmulatedUser
from handlers.appeals import escalate_appeals
from handlers.context import Context
from storage.appeals import Answer, AnswerOutcome, AppealRepository, Filing
from storage.engine import Database
from storage.models import Appeal, Application, AuditEvent
from storage.retention import erase_user
from storage.waitlist import Places
from testkit.factories import Person, make_person
from testkit.fakes import add_application
from testkit.harness import Harness
from tests.test_registration import applications_of, give_identity, reach_nik, seed
from tests.test_review import answer_to, register

ADMIN = 900001
REVIEWER = 900002
STRANGER = 555555
NO_MATCH = r"belum dapat dicocokkan"


# --- the deadline and the ticket (pure) ----------------------------------------------------------


def test_deadline_counts_working_days_only() -> None:
    """Five working days from a Friday (or a Saturday) end the next Friday; weekends skip."""
    friday = date(2026, 12, 4)
    assert add_working_days(friday, 5) == date(2026, 12, 11)
    assert add_working_days(date(2026, 12, 5), 5) == date(2026, 12, 11)
    assert add_working_days(date(2026, 12, 2), 5) == date(2026, 12, 9)
    assert add_working_days(date(2026, 12, 2), 1) == date(2026, 12, 3)
    assert not is_overdue(date(2026, 12, 11), date(2026, 12, 11))
    assert is_overdue(date(2026, 12, 11), date(2026, 12, 12))


@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 1, 1)), st.integers(1, 30))
def test_deadline_is_a_weekday_exactly_n_working_days_later(start: date, days: int) -> None:
    """Whatever the start, the deadline is a weekday with `days` weekdays after the start."""
    end = add_working_days(start, days)
    assert end.weekday() < 5
    between = [start + timedelta(days=n) for n in range(1, (end - start).days + 1)]
    assert sum(day.weekday() < 5 for day in between) == days


def test_ticket_reads_back() -> None:
    """SGH-000123 names appeal 123, in any case; other text names none."""
    assert ticket(123) == "SGH-000123"
    assert parse_ticket("sgh-000123") == 123
    assert parse_ticket("BKS-000123") is None
    assert parse_ticket("SGH-12x") is None


def test_statistics_section_turns_red_with_overdue_appeals() -> None:
    """The /statistik section marks overdue appeals red and gives the median in hours."""
    calm = appeal_section(AppealStats(2, 0, 1, 1, 26.0), lambda text: text)
    late = appeal_section(AppealStats(2, 1, 0, 0, None), lambda text: text)
    assert "🔴" not in calm[1]
    assert "🔴" in late[1]
    assert "26,0 hours" in "\n".join(calm)
    assert "none answered yet" in "\n".join(late)


# --- end to end ----------------------------------------------------------------------------------


async def refused_worker(
    harness: Harness, user_id: int, seed_value: int, **dtsen: object
) -> tuple[EmulatedUser, Person]:
    """A worker refused by the DTSEN check (not listed, unless `dtsen` changes are given)."""
    person = make_person(seed_value)
    if dtsen:
        await seed(harness, person, **dtsen)
    worker = harness.user(user_id)
    await reach_nik(worker)
    await give_identity(worker, person)
    await worker.expect(NO_MATCH)
    return worker, person


async def run_escalation(harness: Harness) -> None:
    """The daily escalation job, run now (on the harness's clock)."""
    assert harness.app is not None
    await escalate_appeals(Context.from_job(Job(escalate_appeals), harness.app))


async def appeals_in(harness: Harness) -> list[Appeal]:
    """Every appeal row, oldest first."""
    async with harness.services.database.read() as session:
        result = await session.execute(sa.select(Appeal).order_by(Appeal.id))
        return list(result.scalars())


async def test_refused_worker_appeals_it_goes_overdue_is_escalated_once_and_an_admin_includes(
    harness: Harness,
) -> None:
    """Button and command file one appeal; a second is refused; late it turns red and goes to
    the admins once; a reviewer cannot include; an admin's inclusion is audited and shown."""
    worker, person = await refused_worker(harness, 230001, 41)
    await worker.expect(r"mengajukan sanggahan")
    await worker.press("📝 Ajukan sanggahan")
    prompt = await worker.expect(r"Tulis sanggahan Anda sebagai balasan")
    await worker.send(
        "Saya <b>tinggal</b> di Bekasi sejak 2019, mohon dicek lagi.", reply_to=prompt.message_id
    )
    filed = await worker.expect(r"Nomor tiket: SGH-000001")
    assert "Petugas akan menjawab paling lambat" in filed.text
    await worker.send("/sanggah Ini sanggahan kedua untuk pendaftaran yang sama.")
    await worker.expect(r"sudah punya sanggahan .*SGH-000001")
    assert len(await appeals_in(harness)) == 1

    reviewer = harness.user(REVIEWER)
    await reviewer.send("/sanggah")
    card = await reviewer.expect(r"Sanggahan SGH-000001")
    assert "🔴" not in card.text
    assert "NIK tidak ditemukan di data DTSEN" in card.text
    assert "<b>tinggal</b>" in card.text  # escaped: shown as typed, not as bold

    # Eight days later (past five working days), the appeal is red and goes to the admins.
    started = harness.services.clock()
    harness.services.clock = lambda: started + timedelta(days=8)
    await reviewer.send("/sanggah")
    await reviewer.expect(r"🔴 Sanggahan SGH-000001")
    admin = harness.user(ADMIN)
    await run_escalation(harness)
    await admin.expect(r"🔴 Sanggahan yang lewat tenggat(.|\n)*SGH-000001")
    await worker.expect(r"SGH-000001 Anda memerlukan waktu lebih lama")
    await run_escalation(harness)  # the next day's run: already escalated, nobody hears again
    await admin.send("/bantuan")
    await admin.expect(r"Bantuan")
    assert sum("lewat tenggat" in (m.text or "") for m in admin.messages()) == 1
    [appeal] = await appeals_in(harness)
    assert appeal.escalated_at is not None

    # A reviewer may not include: neither the button nor the typed command.
    query_id = await reviewer.press("⭐ Tetapkan manual (admin)")
    assert "Hanya admin" in await answer_to(harness, query_id)
    await reviewer.send("/sanggah masuk SGH-000001 Data keluarga belum diperbarui")
    await reviewer.expect(r"Hanya admin")
    [still_open] = await appeals_in(harness)
    assert still_open.status == "open"

    await admin.send("/sanggah masuk SGH-000001 Data keluarga belum diperbarui kelurahan")
    await admin.expect(r"SGH-000001 diterima dengan penetapan manual: pendaftaran BKS-")
    await worker.expect(r"Sanggahan SGH-000001 Anda diterima: petugas program telah memasukkan")
    [application] = await applications_of(harness, 230001)
    assert application.status == Status.APPROVED
    assert application.code
    async with harness.services.database.read() as session:
        override = (
            await session.execute(sa.select(AuditEvent).where(AuditEvent.action == "override"))
        ).scalar_one()
    assert override.actor_id == ADMIN
    assert override.from_status == Status.INELIGIBLE
    assert "Data keluarga belum diperbarui" in (override.reason or "")
    await admin.send(f"/cari {application.code}")
    shown = await admin.expect(r"Penetapan manual \(pengecualian aturan\) oleh 900001")
    assert "SGH-000001" in shown.text
    await worker.send("/sanggah Satu lagi, apakah bisa?")
    await worker.expect(r"Sanggahan hanya dapat diajukan")
    assert person.nik not in (override.reason or "")


async def test_dismissal_reason_and_the_dtsen_update_route_reach_the_worker(
    harness: Harness,
) -> None:
    """A desil refusal dismissed: the worker reads the reason and how to ask for a DTSEN
    update (kelurahan deliberation, Cek Bansos, the call centre from settings)."""
    worker, _person = await refused_worker(harness, 230002, 42, desil=9)
    await worker.send("/sanggah Penghasilan keluarga kami sudah turun sejak tahun lalu.")
    await worker.expect(r"SGH-000001")
    reviewer = harness.user(REVIEWER)
    await reviewer.send("/sanggah")
    card = await reviewer.expect(r"Sanggahan SGH-000001")
    assert "Desil 9 di atas batas maksimal program 5" in card.text
    await reviewer.press("✖️ Tolak sanggahan")
    await reviewer.expect(r"/sanggah tolak SGH-000001 ALASAN")
    await reviewer.send("/sanggah tolak SGH-000001 Desil keluarga menurut DTSEN masih 9")
    await reviewer.expect(r"SGH-000001 ditolak")
    notice = await worker.expect(r"sanggahan SGH-000001 Anda tidak dapat diterima")
    assert "Alasan: Desil keluarga menurut DTSEN masih 9" in notice.text
    assert "musyawarah kelurahan" in notice.text
    assert "Cek Bansos" in notice.text
    assert "1500444" in notice.text
    # A second answer (the other reviewer, late) changes nothing.
    await reviewer.send("/sanggah buka SGH-000001")
    await reviewer.expect(r"SGH-000001 sudah dijawab")
    [application] = await applications_of(harness, 230002)
    assert application.status == Status.INELIGIBLE


async def test_rejected_worker_appeals_from_the_notice_and_is_re_opened_for_review(
    harness: Harness,
) -> None:
    """The rejection notice carries the appeal button; re-opening sends it back to pending."""
    worker, code = await register(harness, 230003, 43)
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/tinjau {code}")
    await reviewer.expect(re.escape(code))
    await reviewer.press("❌ Tolak")
    await reviewer.expect(r"Mengapa")
    await reviewer.press("Bukan pekerja informal")
    await worker.expect(r"tidak disetujui")
    await worker.press("📝 Ajukan sanggahan")
    await worker.expect(r"Tulis sanggahan Anda")
    await worker.send("/sanggah Saya ojek pangkalan, bukan pegawai tetap.")
    await worker.expect(r"SGH-000001")
    await reviewer.send("/sanggah")
    await reviewer.expect(r"Sanggahan SGH-000001")
    await reviewer.press("↩️ Periksa ulang")
    await reviewer.expect(rf"SGH-000001 diterima: pendaftaran {re.escape(code)} kembali")
    await worker.expect(r"SGH-000001 Anda diterima: pendaftaran .* diperiksa kembali")
    [application] = await applications_of(harness, 230003)
    assert application.status == Status.PENDING


@pytest.mark.parametrize("data", ["sa:ro:{appeal}", "sa:in:{appeal}", "sa:dm:{appeal}"])
async def test_forged_appeal_button_from_a_stranger_changes_nothing(
    harness: Harness, data: str
) -> None:
    """A modified client sending staff appeal data is refused and audited; the appeal stays."""
    worker, _person = await refused_worker(harness, 230004, 44)
    await worker.send("/sanggah Mohon dicek lagi, data saya benar.")
    await worker.expect(r"SGH-000001")
    stranger = harness.user(STRANGER)
    await stranger.send("/bantuan")
    anchor = await stranger.expect(r"Bantuan")
    query_id = await stranger.press_data(data.format(appeal=1), anchor.message_id)
    assert "tidak aktif" in await answer_to(harness, query_id)
    [appeal] = await appeals_in(harness)
    assert appeal.status == "open"
    async with harness.services.database.read() as session:
        denied = (
            await session.execute(sa.select(AuditEvent).where(AuditEvent.action == "denied"))
        ).scalars()
        assert any(str(event.actor_id) == str(STRANGER) for event in denied)


async def test_worker_button_for_someone_elses_application_is_refused(harness: Harness) -> None:
    """`wa:<id>` naming another worker's application is answered as inactive."""
    await refused_worker(harness, 230005, 45)
    [application] = await applications_of(harness, 230005)
    stranger = harness.user(STRANGER)
    await stranger.send("/bantuan")
    anchor = await stranger.expect(r"Bantuan")
    query_id = await stranger.press_data(f"wa:{application.id}", anchor.message_id)
    assert "tidak aktif" in await answer_to(harness, query_id)


async def test_statistik_shows_the_appeal_figures(harness: Harness) -> None:
    """/statistik has an appeals section: open, overdue, upheld, dismissed, median."""
    worker, _person = await refused_worker(harness, 230006, 46)
    await worker.send("/sanggah Mohon dicek lagi, data saya benar.")
    await worker.expect(r"SGH-000001")
    reviewer = harness.user(REVIEWER)
    await reviewer.send("/statistik")
    text = await reviewer.expect(r"Sanggahan")
    assert "Terbuka: 1 (lewat tenggat: 0) · diterima: 0 · ditolak: 0" in text.text
    assert "belum ada yang dijawab" in text.text


async def test_an_appeal_needs_some_text_and_no_more_than_the_limit(harness: Harness) -> None:
    """Too short or too long is explained and nothing is filed; /sanggah alone asks for it."""
    worker, _person = await refused_worker(harness, 230007, 47)
    await worker.send("/sanggah")
    prompt = await worker.expect(r"Tulis sanggahan Anda")
    await worker.send("salah", reply_to=prompt.message_id)
    await worker.expect(r"sedikit lebih lengkap")
    await worker.send("/sanggah salah")
    await worker.expect(r"sedikit lebih lengkap")
    await worker.send("/sanggah " + "panjang " * 80)
    await worker.expect(r"Terlalu panjang")
    assert await appeals_in(harness) == []


# --- storage: the answer race and the filing race on both backends -----------------------------


async def _refused_application(database: Database, user_id: int) -> int:
    return await add_application(
        database,
        b"k" * 32,
        make_person(user_id),
        user_id=user_id,
        code=f"BKS-R{user_id % 100000:05d}",
        status=Status.REJECTED,
    )


async def test_two_staff_answering_at_once_cannot_both_apply(database: Database) -> None:
    """A re-open and a dismissal of one appeal at the same moment: exactly one applies."""
    repository = AppealRepository(database)
    now = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    application_id = await _refused_application(database, 240001)
    filed = await repository.file(user_id=240001, text="tolong cek", now=now, deadline=now.date())
    assert filed.result is Filing.FILED
    assert filed.appeal is not None
    appeal_id = filed.appeal.id or 0

    async def answer(outcome: Outcome, actor: int) -> AnswerOutcome:
        return await repository.answer(
            appeal_id=appeal_id,
            outcome=outcome,
            actor_id=actor,
            answer="alasan" if outcome is Outcome.DISMISS else None,
            now=now,
            code_prefix="BKS",
            places=Places(effective_quota=10),
        )

    results = await asyncio.gather(
        answer(Outcome.REOPEN, REVIEWER), answer(Outcome.DISMISS, ADMIN)
    )
    assert sorted(r.result for r in results) == sorted([Answer.DONE, Answer.ALREADY_ANSWERED])
    winner = next(r for r in results if r.result is Answer.DONE)
    async with database.read() as session:
        application = await session.get(Application, application_id)
        audit = (
            (
                await session.execute(
                    sa.select(AuditEvent.action).where(AuditEvent.application_id == application_id)
                )
            )
            .scalars()
            .all()
        )
    assert application is not None
    expected = Status.PENDING if winner.to_status == Status.PENDING else Status.REJECTED
    assert application.status == expected
    assert len([a for a in audit if a in ("appeal_reopen", "appeal_dismiss")]) == 1


async def test_two_filings_at_once_leave_one_open_appeal(database: Database) -> None:
    """Two /sanggah for the same application at once: one files, the other hears it is open."""
    repository = AppealRepository(database)
    now = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    await _refused_application(database, 240002)
    results = await asyncio.gather(
        *(
            repository.file(user_id=240002, text=f"tolong cek {n}", now=now, deadline=now.date())
            for n in range(2)
        )
    )
    assert sorted(r.result for r in results) == sorted([Filing.FILED, Filing.ALREADY_OPEN])
    stats = await repository.statistics(today=now.date() + timedelta(days=1))
    assert (stats.open, stats.overdue) == (1, 1)


async def test_median_time_to_answer(database: Database) -> None:
    """Answered after 2 h, 4 h and 30 h: the median is 4 h; the open one counts as open."""
    repository = AppealRepository(database)
    filed_at = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    for index, hours in enumerate((2, 4, 30, None)):
        user = 240010 + index
        await _refused_application(database, user)
        filed = await repository.file(
            user_id=user, text="tolong cek", now=filed_at, deadline=date(2026, 12, 14)
        )
        assert filed.appeal is not None
        if hours is not None:
            await repository.answer(
                appeal_id=filed.appeal.id or 0,
                outcome=Outcome.DISMISS if hours == 2 else Outcome.REOPEN,
                actor_id=ADMIN,
                answer="alasan",
                now=filed_at + timedelta(hours=hours),
                code_prefix="BKS",
                places=Places(effective_quota=10),
            )
    stats = await repository.statistics(today=date(2026, 12, 8))
    assert stats == AppealStats(open=1, overdue=0, upheld=2, dismissed=1, median_hours=4.0)


async def test_withdrawing_consent_deletes_the_workers_appeals(database: Database) -> None:
    """/hapusdata's erasure takes the appeal (the worker's own words) with the application."""
    repository = AppealRepository(database)
    now = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    await _refused_application(database, 240020)
    filed = await repository.file(user_id=240020, text="tolong cek", now=now, deadline=now.date())
    assert filed.result is Filing.FILED
    await erase_user(database, user_id=240020)
    async with database.read() as session:
        assert (
            await session.execute(sa.select(sa.func.count()).select_from(Appeal))
        ).scalar() == 0


def test_cli_stats_prints_the_appeal_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rentan-bot stats` ends with the appeals: open, overdue, upheld, dismissed, median."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'stats.db'}")
    monkeypatch.setenv("PII_SECRET", "test-secret-not-for-production-0123456789")
    assert cli.main(["migrate"]) == 0  # stats reads an existing database, it creates none
    assert cli.main(["stats"]) == 0
    printed = capsys.readouterr().out
    assert "Sanggahan" in printed
    assert "Terbuka: 0 (lewat tenggat: 0) · diterima: 0 · ditolak: 0" in printed


async def test_datasaya_shows_the_workers_appeal(harness: Harness) -> None:
    """The right of access covers the appeal: /datasaya shows its ticket, status and text."""
    worker, _person = await refused_worker(harness, 230008, 48)
    await worker.send("/sanggah Mohon dicek lagi, data saya & keluarga benar.")
    await worker.expect(r"SGH-000001")
    await worker.send("/datasaya")
    data = await worker.expect(r"Sanggahan SGH-000001 \(menunggu jawaban\)")
    assert "data saya & keluarga benar" in data.text


async def test_two_inclusions_at_once_never_pass_the_quota(database: Database) -> None:
    """Two admins include two appeals with one place left: one is approved, one waits."""
    repository = AppealRepository(database)
    now = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    appeal_ids = []
    for user in (240031, 240032):
        await _refused_application(database, user)
        filed = await repository.file(
            user_id=user, text="tolong cek", now=now, deadline=now.date()
        )
        assert filed.appeal is not None
        appeal_ids.append(filed.appeal.id or 0)
    results = await asyncio.gather(
        *(
            repository.answer(
                appeal_id=appeal_id,
                outcome=Outcome.INCLUDE,
                actor_id=ADMIN + index,
                answer="data DTSEN terlambat diperbarui",
                now=now,
                code_prefix="BKS",
                places=Places(effective_quota=1),
            )
            for index, appeal_id in enumerate(appeal_ids)
        )
    )
    assert sorted(str(r.to_status) for r in results) == [Status.APPROVED, Status.WAITLISTED]


async def test_two_escalation_runs_at_once_escalate_each_appeal_once(database: Database) -> None:
    """Two processes running the daily job together claim each overdue appeal once between them."""
    repository = AppealRepository(database)
    filed_at = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    for user in (240041, 240042, 240043):
        await _refused_application(database, user)
        await repository.file(
            user_id=user, text="tolong cek", now=filed_at, deadline=date(2026, 12, 8)
        )
    later = datetime(2026, 12, 10, 3, 0, tzinfo=UTC)
    runs = await asyncio.gather(
        *(repository.escalate_overdue(today=later.date(), now=later) for _ in range(2))
    )
    claimed = [appeal.ticket for run in runs for appeal, _code in run]
    assert sorted(claimed) == ["SGH-000001", "SGH-000002", "SGH-000003"]
    assert await repository.escalate_overdue(today=later.date(), now=later) == []
