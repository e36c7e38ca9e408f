"""The decree's annex: participants numbered per kecamatan and kelurahan, totals per kelurahan,
kecamatan and city, and the premium total of the cover period (pure writer, CLI, /ekspor)."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa

from bot import cli
from config.catalogs import Catalogs
from domain.annex import AnnexRow, write_annex
from domain.budget import Budget
from domain.lifecycle import Status
from storage.engine import Database
from storage.migrate import upgrade
from storage.models import AuditEvent
from testkit.factories import make_person
from testkit.fakes import add_applications, make_application
from testkit.harness import TEST_PII_SECRET, Harness

PREMIUM = 16_800
PROGRAMME = Budget(
    quota=10_000,
    budget_idr=2_000_000_000,
    monthly_premium_idr=PREMIUM,
    start=date(2026, 1, 1),
    end=date(2026, 12, 1),
)
BAHASA = Catalogs().get("id")._
# Bekasi Timur: Bekasijaya, Margahayu; Bekasi Barat: Bintara.
BEKASIJAYA, MARGAHAYU, BINTARA = "3275011001", "3275011002", "3275021001"
ADMIN = 900001


def row(nama: str, kelurahan: str, *, approved_on: date, kpj: str = "") -> AnnexRow:
    """A participant living in `kelurahan`."""
    return AnnexRow(
        nik=f"32750{abs(hash(nama)) % 10**11:011d}",
        nama=nama,
        alamat=f"Jl. {nama} No. 1",
        kecamatan_code=kelurahan[:6],
        kelurahan_code=kelurahan,
        kpj_number=kpj,
        approved_on=approved_on,
        coverage_start=None,
        lapsed_on=None,
    )


def sheet_rows(data: bytes) -> list[tuple[Any, ...]]:
    """Every row of the annex's sheet, as values."""
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    return [tuple(values) for values in sheet.iter_rows(values_only=True)]


def test_annex_numbers_participants_per_kecamatan_and_kelurahan_with_totals() -> None:
    """Four participants in two kecamatan: numbered 1-4 in the city, again per kecamatan and
    per kelurahan, a total after each kelurahan and kecamatan, then the city's, and the premium
    of their months of cover (twelve each, nine for one approved in March)."""
    december = date(2025, 12, 10)
    rows = [
        row("SITI", BINTARA, approved_on=december, kpj="12345678901"),
        row("BUDI", MARGAHAYU, approved_on=december),
        row("ANI", BEKASIJAYA, approved_on=date(2026, 3, 5)),
        row("DEWI", BEKASIJAYA, approved_on=december),
    ]
    buffer = io.BytesIO()
    totals = write_annex(rows, buffer, budget=PROGRAMME, translate=BAHASA)

    assert (totals.participants, totals.premium_idr) == (4, (12 + 12 + 9 + 12) * PREMIUM)
    assert totals.per_kelurahan == {BEKASIJAYA: 2, MARGAHAYU: 1, BINTARA: 1}
    values = sheet_rows(buffer.getvalue())
    assert values[0][0] == "Lampiran Surat Keputusan: peserta program bantuan iuran JKK dan JKM"
    assert "01-2026 s.d. 12-2026: 12 bulan" in str(values[1][0])
    header = values[3]
    assert header[:3] == ("No.", "No. di kecamatan", "No. di kelurahan")
    body = [(v[0], v[1], v[2], v[3], v[4], v[5], v[8], v[9], v[10]) for v in values[4:]]
    year, march = 12 * PREMIUM, 9 * PREMIUM
    assert body == [
        (1, 1, 1, "Bekasi Barat", "Bintara", "SITI", "12345678901", 12, year),
        ("Jumlah Kelurahan Bintara: 1 peserta", *(None,) * 7, year),
        ("Jumlah Kecamatan Bekasi Barat: 1 peserta", *(None,) * 7, year),
        (2, 1, 1, "Bekasi Timur", "Bekasijaya", "ANI", None, 9, march),
        (3, 2, 2, "Bekasi Timur", "Bekasijaya", "DEWI", None, 12, year),
        ("Jumlah Kelurahan Bekasijaya: 2 peserta", *(None,) * 7, march + year),
        (4, 3, 1, "Bekasi Timur", "Margahayu", "BUDI", None, 12, year),
        ("Jumlah Kelurahan Margahayu: 1 peserta", *(None,) * 7, year),
        ("Jumlah Kecamatan Bekasi Timur: 3 peserta", *(None,) * 7, march + 2 * year),
        (None,) * 9,
        ("Jumlah seluruh kota: 4 peserta", *(None,) * 7, march + 3 * year),
        ("Total iuran selama masa perlindungan: Rp756.000", *(None,) * 7, march + 3 * year),
    ]


def test_annex_keeps_niks_as_text() -> None:
    """A 16-digit NIK is a text cell: Excel would round it as a number."""
    buffer = io.BytesIO()
    write_annex(
        [row("SITI", BINTARA, approved_on=date(2025, 12, 1))],
        buffer,
        budget=PROGRAMME,
        translate=BAHASA,
    )
    sheet = openpyxl.load_workbook(io.BytesIO(buffer.getvalue())).active
    assert sheet is not None
    nik = sheet.cell(5, 7)
    assert isinstance(nik.value, str)
    assert len(nik.value) == 16


def _participants(year: int) -> list[Any]:
    """Two approved and one enrolled before `year`, one pending (not in the annex)."""
    before = datetime(year - 1, 12, 1, 3, tzinfo=UTC)
    return [
        make_application(
            make_person(9100 + index),
            secret=TEST_PII_SECRET.encode(),
            user_id=910_000 + index,
            code=f"BKS-X{index:05d}",
            status=status,
            decided_at=before,
        )
        for index, status in enumerate(
            (Status.APPROVED, Status.APPROVED, Status.ENROLLED, Status.PENDING)
        )
    ]


def test_export_annex_command_writes_the_xlsx_and_audits_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rentan-bot export --annex -o FILE.xlsx`: approved and enrolled, the premium total
    printed, and one audit row naming the annex."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'annex.db'}"

    async def seed() -> None:
        database = Database.from_url(url)
        try:
            await upgrade(database)
            await add_applications(database, *_participants(2026))
        finally:
            await database.dispose()

    asyncio.run(seed())
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PROGRAM_YEAR", "2026")
    target = tmp_path / "lampiran.xlsx"

    assert cli.main(["export", "--annex", "-o", str(target)]) == 0

    assert "Rp604.800" in capsys.readouterr().out  # 3 x 12 x Rp16.800
    values = sheet_rows(target.read_bytes())
    assert [v[0] for v in values if isinstance(v[0], int)] == [1, 2, 3]
    assert (target.stat().st_mode & 0o777) == 0o600

    async def audited() -> list[Any]:
        database = Database.from_url(url)
        try:
            async with database.read() as session:
                query = sa.select(AuditEvent.action, AuditEvent.reason)
                return [tuple(r) for r in (await session.execute(query)).all()]
        finally:
            await database.dispose()

    assert asyncio.run(audited()) == [
        ("export", "cli: status=approved+enrolled rows=3 format=annex")
    ]


def test_export_annex_refuses_a_csv_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The annex is a spreadsheet: a .csv name is refused with one line."""
    assert cli.main(["export", "--annex", "-o", str(tmp_path / "lampiran.csv")]) == 1
    assert "XLSX" in capsys.readouterr().err


async def test_admin_gets_the_annex_with_ekspor_lampiran(harness: Harness) -> None:
    """/ekspor lampiran sends the annex of every participant, numbered, with the total."""
    await add_applications(
        harness.services.database, *_participants(harness.settings.program_year)
    )
    admin = harness.user(ADMIN)
    await admin.send("/ekspor lampiran")
    message = await admin.expect(r"Lampiran SK: 3 peserta, total iuran Rp604\.800")
    assert message.document is not None
    name, data = message.document
    assert name.startswith("lampiran_sk_")
    assert name.endswith(".xlsx")
    values = sheet_rows(data)
    assert [v[0] for v in values if isinstance(v[0], int)] == [1, 2, 3]
    assert values[-1][0] == "Total iuran selama masa perlindungan: Rp604.800"
