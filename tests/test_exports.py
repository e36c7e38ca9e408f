"""The approved list for BPJS Ketenagakerjaan: rows from the database, CSV and XLSX read back."""

from __future__ import annotations

import asyncio
import csv
import io
import stat
from datetime import UTC, date, datetime
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from bot import cli
from config.catalogs import Catalogs
from domain.exports import COLUMNS, ExportRow, write_csv, write_xlsx
from domain.lifecycle import Status
from domain.pii import hash_identifier
from storage.engine import Database
from storage.exports import ExportRepository
from storage.migrate import upgrade
from storage.models import Application, AuditEvent
from testkit.factories import make_person
from testkit.fakes import add_applications
from testkit.harness import TEST_PII_SECRET

SECRET = TEST_PII_SECRET.encode()
BAHASA = Catalogs().get("id")._
_seeds = count(1)


def application(status: Status, **fields: Any) -> Application:
    """A complete application of a fresh synthetic person, in `status`."""
    seed = next(_seeds)
    person = make_person(seed)
    values: dict[str, Any] = {
        "telegram_user_id": 600_000 + seed,
        "chat_id": 600_000 + seed,
        "status": status,
        "code": f"BKS-E{seed:05d}",
        "nik": person.nik,
        "nik_hash": hash_identifier(person.nik, SECRET),
        "nama": person.name,
        "tanggal_lahir": person.birth_date,
        "jenis_kelamin": person.gender,
        "phone": person.phone,
        "occupation": "ojol",
        "kecamatan_code": person.kode_wilayah[:6],
        "kelurahan_code": person.kode_wilayah,
        "alamat": f"Jl. Melati No. {seed}, RT 01/RW 02",
        "heir_name": "Siti Rahayu",
        "heir_relation": "pasangan",
        "dtsen_desil": person.desil,
        "submitted_at": datetime(2026, 11, 20, 3, 0, tzinfo=UTC),
    }
    values.update(fields)
    return Application(**values)


async def add(database: Database, *applications: Application) -> None:
    """Insert applications as they are."""
    await add_applications(database, *applications)


def budi(**changes: Any) -> ExportRow:
    """One stored row with every field known (a NIK whose leading digits Excel would eat)."""
    values: dict[str, Any] = {
        "nik": "3275011708850001",
        "nama": "Budi Santoso",
        "tanggal_lahir": date(1985, 8, 7),
        "jenis_kelamin": "L",
        "alamat": "Jl. Melati No. 5",
        "kecamatan_code": "327501",
        "kelurahan_code": "3275011001",
        "phone": "+6281234567890",
        "occupation": "ojol",
        "occupation_other": "",
        "heir_name": "Siti Rahayu",
        "heir_relation": "pasangan",
        "code": "BKS-4F7K2Q",
    }
    values.update(changes)
    return ExportRow(**values)


def read_csv(data: bytes) -> list[dict[str, str]]:
    """Rows of an exported CSV, as Excel-minded staff would load it."""
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


async def test_repository_yields_only_approved_applications_oldest_first(
    database: Database,
) -> None:
    """Pending, rejected and enrolled applications stay out of the approved list."""
    first = application(Status.APPROVED)
    second = application(Status.APPROVED)
    await add(
        database,
        first,
        application(Status.PENDING),
        application(Status.REJECTED),
        application(Status.ENROLLED),
        second,
    )

    rows = [row async for row in ExportRepository(database).approved_rows()]

    assert [first.nik, second.nik] == [row.nik for row in rows]
    assert rows[0].nama == first.nama
    assert rows[0].tanggal_lahir == first.tanggal_lahir
    assert rows[0].kelurahan_code == first.kelurahan_code


async def test_repository_reads_every_row_across_batches(database: Database) -> None:
    """Batches join up without losing or repeating a row."""
    apps = [application(Status.APPROVED) for _ in range(7)]
    await add(database, *apps)

    rows = [row async for row in ExportRepository(database).approved_rows(batch_rows=3)]

    assert [app.code for app in apps] == [row.code for row in rows]


async def test_repository_can_list_enrolled_applications(database: Database) -> None:
    """`statuses=(enrolled,)` gives the enrolled list instead."""
    enrolled = application(Status.ENROLLED, kpj_number="12345678901")
    await add(database, application(Status.APPROVED), enrolled)

    rows = await ExportRepository(database).collect(statuses=(Status.ENROLLED,))

    assert [enrolled.nik] == [row.nik for row in rows]


async def test_export_is_one_snapshot_even_when_writes_land_between_its_reads(
    database: Database,
) -> None:
    """An approval and a withdrawal committed while the list is being read (between two
    batches) do not show up in it: the file is the list as it stood when reading began."""
    first, second = application(Status.APPROVED), application(Status.APPROVED)
    await add(database, first, second)
    rows = ExportRepository(database).approved_rows(batch_rows=1)

    seen = [(await anext(rows)).code]
    await add(database, application(Status.APPROVED))
    async with database.write() as session, session.begin():
        stored = await session.get(Application, second.id)
        assert stored is not None
        stored.status = Status.WITHDRAWN
    seen += [row.code async for row in rows]

    assert [first.code, second.code] == seen
    assert len(await ExportRepository(database).collect()) == 2  # the next export sees both


def test_csv_has_the_bpjs_columns_in_order_with_a_bom() -> None:
    """UTF-8 with BOM for Excel, Bahasa headers in the BPJS order, one row per worker."""
    stream = io.BytesIO()

    assert write_csv([budi()], stream, period="12 bulan", translate=BAHASA) == 1

    data = stream.getvalue()
    assert data.startswith(b"\xef\xbb\xbf")
    header = next(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert list(COLUMNS) == header
    assert header[0] == "NIK"
    assert header[-1] == "NOMOR_PENDAFTARAN"
    assert len(header) == 16


def test_csv_row_holds_formatted_values() -> None:
    """Dates dd-mm-yyyy, phone 08..., region names, Bahasa labels, JKK+JKM, the period."""
    stream = io.BytesIO()
    write_csv([budi()], stream, period="Tahun 2027", translate=BAHASA)

    (row,) = read_csv(stream.getvalue())

    assert row == {
        "NIK": "3275011708850001",
        "NO_KPJ": "",
        "NAMA": "Budi Santoso",
        "TANGGAL_LAHIR": "07-08-1985",
        "JENIS_KELAMIN": "L",
        "ALAMAT": "Jl. Melati No. 5",
        "KELURAHAN": "Bekasijaya",
        "KECAMATAN": "Bekasi Timur",
        "KABUPATEN_KOTA": "Kota Bekasi",
        "NO_HP": "081234567890",
        "PEKERJAAN": "Ojek online",
        "PROGRAM": "JKK+JKM",
        "PERIODE": "Tahun 2027",
        "AHLI_WARIS": "Siti Rahayu",
        "HUBUNGAN_AHLI_WARIS": "Suami/Istri",
        "NOMOR_PENDAFTARAN": "BKS-4F7K2Q",
    }


def test_csv_keeps_the_workers_own_occupation_and_defuses_formulas() -> None:
    """ "Other" shows what the worker typed; a cell starting with = cannot run in Excel."""
    stream = io.BytesIO()
    row = budi(occupation="lainnya", occupation_other="Tukang parkir", alamat='=HYPERLINK("x")')
    write_csv([row], stream, translate=BAHASA)

    (read,) = read_csv(stream.getvalue())

    assert read["PEKERJAAN"] == "Tukang parkir"
    assert read["ALAMAT"] == '\'=HYPERLINK("x")'


def test_csv_to_a_path_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """Full NIKs on disk: the file is created mode 0600, and no temporary file is left."""
    target = tmp_path / "bpjs.csv"

    write_csv([budi(), budi(nik="3275014708900002")], target, translate=BAHASA)

    assert len(read_csv(target.read_bytes())) == 2
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [target] == list(tmp_path.iterdir())


def test_xlsx_keeps_nik_as_sixteen_digit_text(tmp_path: Path) -> None:
    """NIK, phone and date are text cells formatted '@', so Excel never shows 3,27501E+15."""
    target = tmp_path / "bpjs.xlsx"

    assert write_xlsx([budi()], target, period="12 bulan", translate=BAHASA) == 1

    sheet = load_workbook(target).worksheets[0]
    header, row = list(sheet.iter_rows(min_row=1, max_row=2))
    assert list(COLUMNS) == [cell.value for cell in header]
    nik = row[0]
    assert nik.value == "3275011708850001"
    assert nik.data_type == "s"
    assert nik.number_format == "@"
    assert row[COLUMNS.index("NO_HP")].value == "081234567890"
    assert row[COLUMNS.index("TANGGAL_LAHIR")].value == "07-08-1985"
    assert row[COLUMNS.index("PROGRAM")].value == "JKK+JKM"
    assert "TEMPAT_LAHIR" not in COLUMNS  # no source holds it: no always-empty column
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_xlsx_writes_formula_like_text_as_plain_text() -> None:
    """A worker's "=..." address stays a string, never a formula or an error cell."""
    stream = io.BytesIO()
    write_xlsx([budi(alamat="=1+1", heir_name="#N/A")], stream, translate=BAHASA)

    sheet = load_workbook(io.BytesIO(stream.getvalue())).worksheets[0]
    row = next(sheet.iter_rows(min_row=2, max_row=2))
    assert row[COLUMNS.index("ALAMAT")].value == "=1+1"
    assert row[COLUMNS.index("ALAMAT")].data_type == "s"
    assert row[COLUMNS.index("AHLI_WARIS")].value == "#N/A"


def _seed_cli_database(url: str, *applications: Application) -> None:
    async def seed() -> None:
        db = Database.from_url(url)
        try:
            await upgrade(db)
            await add(db, *applications)
        finally:
            await db.dispose()

    asyncio.run(seed())


def test_export_command_writes_the_approved_list_as_xlsx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rentan-bot export --format xlsx -o FILE` writes approved workers, prints a count only."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    approved = application(Status.APPROVED)
    _seed_cli_database(url, approved, application(Status.PENDING))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PII_SECRET", TEST_PII_SECRET)
    target = tmp_path / "out.xlsx"

    code = cli.main(["export", "--status", "approved", "--format", "xlsx", "-o", str(target)])

    assert code == 0
    rows = list(load_workbook(target).worksheets[0].iter_rows(min_row=2, values_only=True))
    assert [approved.nik] == [row[0] for row in rows]
    out = capsys.readouterr().out
    assert str(target) in out
    assert str(approved.nik) not in out


def test_export_command_lists_enrolled_workers_as_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--status enrolled` with a .csv name writes CSV of the enrolled ones."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    enrolled = application(Status.ENROLLED, kpj_number="12345678901")
    _seed_cli_database(url, enrolled, application(Status.APPROVED))
    monkeypatch.setenv("DATABASE_URL", url)
    target = tmp_path / "enrolled.csv"

    assert cli.main(["export", "--status", "enrolled", "-o", str(target)]) == 0

    assert [enrolled.nik] == [row["NIK"] for row in read_csv(target.read_bytes())]


def _audit_rows(url: str) -> list[tuple[int | None, str, str | None]]:
    async def read() -> list[tuple[int | None, str, str | None]]:
        db = Database.from_url(url)
        try:
            async with db.read() as session:
                result = await session.execute(
                    sa.select(AuditEvent.actor_id, AuditEvent.action, AuditEvent.reason)
                )
                return [(row.actor_id, row.action, row.reason) for row in result]
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_export_command_is_audited_with_status_count_and_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI export leaves an audit row: the CLI as actor, the status, the rows, the format."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    _seed_cli_database(
        url,
        application(Status.APPROVED),
        application(Status.APPROVED),
        application(Status.PENDING),
    )
    monkeypatch.setenv("DATABASE_URL", url)
    target = tmp_path / "out.xlsx"

    assert cli.main(["export", "--status", "approved", "-o", str(target)]) == 0

    assert _audit_rows(url) == [(None, "export", "cli: status=approved rows=2 format=xlsx")]
