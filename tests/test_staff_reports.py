"""Staff reports through the bot: /statistik, /ekspor and an admin's KPJ file."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime

import openpyxl
import pytest
import sqlalchemy as sa

from domain.lifecycle import Status
from domain.regions import load_regions
from emulator import EmulatedUser
from storage.models import Application, AuditEvent, Notification
from testkit.factories import make_person
from testkit.fakes import add_application, add_applications, make_application
from testkit.harness import Harness
from tests.test_enrollment import bomb_xlsx

ADMIN = 900001
REVIEWER = 900002
STRANGER = 555555
SCOPED = 900010


async def _approved(harness: Harness, count: int) -> list[str]:
    """Approved applications written directly; returns their NIKs."""
    services = harness.services
    niks = []
    for index in range(count):
        person = make_person(8100 + index)
        await add_application(
            services.database,
            services.secret,
            person,
            user_id=810000 + index,
            code=f"BKS-A{index:05d}",
            status=Status.APPROVED,
        )
        niks.append(person.nik)
    return niks


async def test_statistics_come_as_text_and_as_a_chart(harness: Harness) -> None:
    """/statistik answers with quota and budget in words, then a PNG chart."""
    await _approved(harness, 3)
    reviewer = harness.user(REVIEWER)
    await reviewer.send("/statistik")
    text = await reviewer.expect(r"Kuota terpakai")
    assert "3 / 9.920" in text.text
    assert "Rp604.800" in text.text
    for _ in range(100):
        last = reviewer.last_bot_message()
        if last is not None and last.photo is not None:
            break
        await asyncio.sleep(0.05)
    assert last is not None
    assert last.photo is not None
    assert last.photo.startswith(b"\x89PNG")


async def test_statistics_show_the_money_and_the_year(harness: Harness) -> None:
    """/statistik shows money committed, invoiced and remaining, the monthly premium and the
    months of cover, the year (renewed, new, waitlisted, lapsed) and money per month."""
    services = harness.services
    year = harness.settings.program_year
    before_the_year = datetime(year - 1, 11, 20, 3, tzinfo=UTC)
    rows = [
        # Two of last year's participants renewed, one of them already lapsed.
        (Status.ENROLLED, {"cohort_year": year - 1}),
        (Status.APPROVED, {"cohort_year": year - 1, "lapsed_at": before_the_year}),
        (Status.APPROVED, {}),
        (Status.WAITLISTED, {}),
    ]
    for index, (status, fields) in enumerate(rows):
        await add_applications(
            services.database,
            make_application(
                make_person(8300 + index),
                secret=services.secret,
                user_id=830000 + index,
                code=f"BKS-Y{index:05d}",
                status=status,
                decided_at=before_the_year,
                **fields,
            ),
        )
    reviewer = harness.user(REVIEWER)
    await reviewer.send("/statistik")
    text = (await reviewer.expect(r"Kuota terpakai")).text
    # Two places paid for twelve months; the lapsed one lapsed before its cover began.
    assert "Anggaran terpakai: Rp403.200 / Rp2.000.000.000" in text
    assert "Sudah ditagihkan: Rp0 · sisa anggaran: Rp1.999.596.800" in text
    assert f"Iuran per orang per bulan: Rp16.800 · perlindungan 01-{year} s.d. 12-{year}" in text
    assert "Diperpanjang: 2 · baru: 1 · daftar tunggu: 1 · nonaktif: 1" in text
    assert f"01-{year}: 2 · Rp33.600" in text
    assert f"12-{year}: 2 · Rp33.600" in text
    assert len(text) <= 4096
    await _chart_of(reviewer)


async def _approved_in(harness: Harness, kecamatan: str, count: int, first: int) -> None:
    """`count` approved applications of people living in `kecamatan`."""
    services = harness.services
    village = load_regions().kelurahan_of(kecamatan)[0].code
    for index in range(first, first + count):
        await add_application(
            services.database,
            services.secret,
            make_person(8200 + index, kode_wilayah=village),
            user_id=820000 + index,
            code=f"BKS-K{index:05d}",
            status=Status.APPROVED,
        )


async def _chart_of(user: EmulatedUser) -> None:
    """Wait for the chart that follows the statistics text."""
    for _ in range(100):
        last = user.last_bot_message()
        if last is not None and last.photo is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no chart")


async def test_scoped_reviewer_sees_statistics_of_their_kecamatan_only(harness: Harness) -> None:
    """A reviewer scoped to Bekasi Utara sees its figures under a heading that says so; an
    admin sees the whole city."""
    await _approved_in(harness, "327503", 2, first=0)  # Bekasi Utara
    await _approved_in(harness, "327501", 3, first=10)  # Bekasi Timur
    await harness.services.staff.put(
        user_id=SCOPED, role="reviewer", kecamatan_scope="327503", actor_id=ADMIN
    )
    scoped = harness.user(SCOPED)
    await scoped.send("/statistik")
    text = (await scoped.expect(r"Kuota terpakai")).text
    assert "Statistik program: hanya Bekasi Utara" in text
    assert "2 / 9.920" in text
    assert "Bekasi Timur" not in text
    await _chart_of(scoped)
    admin = harness.user(ADMIN)
    await admin.send("/statistik")
    text = (await admin.expect(r"Kuota terpakai")).text
    assert "hanya" not in text.splitlines()[0]
    assert "5 / 9.920" in text
    assert "Bekasi Timur" in text
    await _chart_of(admin)


async def test_admin_export_sends_csv_and_xlsx_with_the_approved_rows(harness: Harness) -> None:
    """/ekspor sends both files; parsed back they hold every approved NIK as text."""
    niks = await _approved(harness, 4)
    admin = harness.user(ADMIN)
    await admin.send("/ekspor")
    csv_message = await admin.expect(r"4 pendaftaran")
    assert csv_message.document is not None
    name, data = csv_message.document
    assert name.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert sorted(row["NIK"] for row in rows) == sorted(niks)
    for _ in range(100):
        last = admin.last_bot_message()
        if last is not None and last.document is not None and last.document[0].endswith("xlsx"):
            break
        await asyncio.sleep(0.05)
    assert last is not None
    assert last.document is not None
    sheet = openpyxl.load_workbook(io.BytesIO(last.document[1]), read_only=True).active
    assert sheet is not None
    values = [row for row in sheet.iter_rows(values_only=True)]
    assert sorted(str(row[0]) for row in values[1:]) == sorted(niks)


async def test_admin_export_is_audited_with_who_what_and_how_many(harness: Harness) -> None:
    """/ekspor leaves one audit row: the admin, the status exported, the row count, the format."""
    await _approved(harness, 3)
    admin = harness.user(ADMIN)
    await admin.send("/ekspor")
    await admin.expect(r"3 pendaftaran")
    async with harness.services.database.read() as session:
        audited = (
            await session.execute(
                sa.select(AuditEvent.actor_id, AuditEvent.action, AuditEvent.reason)
            )
        ).all()
    assert [tuple(row) for row in audited] == [
        (ADMIN, "export", "telegram: status=approved rows=3 format=csv+xlsx")
    ]


@pytest.mark.parametrize("caller", [REVIEWER, STRANGER], ids=["reviewer", "stranger"])
async def test_non_admin_export_reads_like_an_unknown_command(
    harness: Harness, caller: int
) -> None:
    """The full-NIK export is for admins only: others get no file, and the attempt is audited."""
    await _approved(harness, 2)
    user = harness.user(caller)
    await user.send("/ekspor")
    await user.expect(r"tidak mengenal perintah")
    await user.expect_no_reply(within=0.3)
    assert all(message.document is None for message in user.messages())
    async with harness.services.database.read() as session:
        audited = (
            await session.execute(
                sa.select(AuditEvent.action, AuditEvent.reason).where(
                    AuditEvent.actor_id == caller
                )
            )
        ).all()
    assert [tuple(row) for row in audited] == [("denied", "command: /ekspor")]


async def test_admin_kpj_file_enrols_and_notifies_the_worker(harness: Harness) -> None:
    """A KPJ CSV sent to the bot moves the worker to enrolled and tells them their KPJ."""
    [nik] = await _approved(harness, 1)
    admin = harness.user(ADMIN)
    worker = harness.user(810000)
    await worker.send("/bantuan")
    await worker.expect(r"Bantuan")
    content = f"nik,kpj,tgl_mulai\n{nik},12345678901,01-12-2026\n0000000000000000,1,x\n"
    await admin.send_document(content.encode(), "kpj.csv")
    summary = await admin.expect(r"1 dari 2 baris diterapkan")
    assert nik not in summary.text
    await worker.expect(r"12345678901")
    async with harness.services.database.read() as session:
        stored = (await session.execute(sa.select(Application))).scalar_one()
    assert (stored.status, stored.kpj_number) == (Status.ENROLLED, "12345678901")


@pytest.mark.parametrize("sender", [REVIEWER, STRANGER], ids=["reviewer", "stranger"])
async def test_kpj_file_from_a_non_admin_enrols_nobody(harness: Harness, sender: int) -> None:
    """Only an admin's KPJ file is read; anyone else's is answered like any other file."""
    [nik] = await _approved(harness, 1)
    worker = harness.user(810000)
    await worker.send("/bantuan")
    await worker.expect(r"Bantuan")
    user = harness.user(sender)
    await user.send_photo()
    usual = await user.expect(r"Kirim /start untuk mendaftar")
    content = f"nik,kpj,tgl_mulai\n{nik},12345678901,01-12-2026\n"
    await user.send_document(content.encode(), "kpj.csv")
    answer = await user.expect(r".")
    assert answer.text == usual.text
    await user.expect_no_reply(within=0.3)
    await worker.expect_no_reply(within=0.1)
    async with harness.services.database.read() as session:
        stored = (await session.execute(sa.select(Application))).scalar_one()
        notes = (await session.execute(sa.select(Notification))).scalars().all()
    assert (stored.status, stored.kpj_number) == (Status.APPROVED, None)
    assert notes == []


async def test_zip_bomb_kpj_file_gets_one_clear_answer_and_enrols_nobody(
    harness: Harness,
) -> None:
    """An XLSX that unpacks to tens of megabytes is refused before parsing, in one message."""
    [nik] = await _approved(harness, 1)
    admin = harness.user(ADMIN)
    await admin.send_document(bomb_xlsx(), "kpj.xlsx")
    answer = await admin.expect(r"50 MB")
    assert "tidak dibaca" in answer.text
    await admin.expect_no_reply(within=0.3)
    async with harness.services.database.read() as session:
        stored = (await session.execute(sa.select(Application))).scalar_one()
    assert (stored.nik, stored.status) == (nik, Status.APPROVED)
