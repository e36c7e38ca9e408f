"""import-coverage: BPJS's member list sets how far each enrolled worker's premiums are paid."""

from __future__ import annotations

import asyncio
import io
from datetime import date
from itertools import count
from pathlib import Path

import pytest
from openpyxl import Workbook

from bot import cli
from domain.coverage import parse_paid_through
from domain.lifecycle import Status
from storage.coverage import CoverageProblem, import_coverage, read_coverage
from storage.engine import Database
from storage.enrollment import (
    NO_ROWS,
    TOO_MANY_ROWS,
    UNREADABLE_FILE,
    UNSUPPORTED_FILE,
    KpjFileError,
    import_kpj,
)
from storage.migrate import upgrade
from storage.models import Application
from testkit.factories import make_person
from testkit.fakes import add_applications, make_application
from testkit.harness import TEST_PII_SECRET

SECRET = TEST_PII_SECRET.encode()
TODAY = date(2026, 6, 10)
_seeds = count(5000)


def enrolled(kpj: str, status: Status = Status.ENROLLED) -> Application:
    """An enrolled worker holding `kpj`."""
    seed = next(_seeds)
    return make_application(
        make_person(seed),
        secret=SECRET,
        user_id=800_000 + seed,
        code=f"BKS-C{seed:05d}",
        status=status,
        kpj_number=kpj,
    )


async def paid_through(database: Database, application_id: int | None) -> date | None:
    """The stored paid-through date of one application."""
    async with database.read() as session:
        found = await session.get(Application, application_id)
    assert found is not None
    return found.paid_through


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2026-03", date(2026, 3, 31)),
        ("03/2026", date(2026, 3, 31)),
        ("Maret 2026", date(2026, 3, 31)),
        ("Mar-26", date(2026, 3, 31)),
        ("februari 2028", date(2028, 2, 29)),
        ("2026-04-15", date(2026, 4, 30)),
        (date(2026, 5, 2), date(2026, 5, 31)),
        ("13/2026", None),
        ("bulan lalu", None),
        ("", None),
    ],
)
def test_paid_through_month_is_read_in_every_spelling_bpjs_uses(
    cell: object, expected: date | None
) -> None:
    """Months as BPJS staff type them all mean the month's last day; nonsense means None."""
    assert expected == parse_paid_through(cell)


async def test_member_list_sets_paid_through_and_counts_unknown_and_future_rows(
    database: Database,
) -> None:
    """Known KPJs get the month's last day; unknown KPJs and future months are counted."""
    first, second, gone = (
        enrolled("11111111111"),
        enrolled("22222222222"),
        enrolled("33333333333", Status.WITHDRAWN),
    )
    await add_applications(database, first, second, gone)
    data = (
        b"No. KPJ;Iuran s.d.\n"
        b"111.1111.1111;Maret 2026\n"
        b"22222222222;05/2026\n"
        b"99999999999;2026-04\n"
        b"33333333333;2026-04\n"
        b"44444444444;Agustus 2026\n"
        b"123;2026-04\n"
    )

    report = await import_coverage(database, data, filename="anggota.csv", today=TODAY)

    assert (report.applied, report.rows) == (2, 6)
    assert date(2026, 3, 31) == await paid_through(database, first.id)
    assert date(2026, 5, 31) == await paid_through(database, second.id)
    assert await paid_through(database, gone.id) is None
    assert report.count(CoverageProblem.UNKNOWN_KPJ) == 1
    assert report.count(CoverageProblem.FUTURE_MONTH) == 1
    assert [problem.line for problem in report.problems] == [4, 5, 6, 7]


async def test_xlsx_with_mapped_columns_and_date_cells_is_applied(database: Database) -> None:
    """`--map` names the columns; a date cell counts as its month."""
    worker = enrolled("55555555555")
    await add_applications(database, worker)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Nomor Peserta", "Terakhir Bayar"])
    sheet.append(["55555555555", date(2026, 4, 3)])
    buffer = io.BytesIO()
    book.save(buffer)

    report = await import_coverage(
        database,
        buffer.getvalue(),
        filename="anggota.xlsx",
        today=TODAY,
        column_map={"kpj": "nomor_peserta", "paid_through": "terakhir_bayar"},
    )

    assert report.ok
    assert date(2026, 4, 30) == await paid_through(database, worker.id)


async def test_a_file_without_a_month_column_is_refused_whole(database: Database) -> None:
    """A KPJ enrolment file (no paid-through column) applies nothing and says which is missing."""
    worker = enrolled("66666666666")
    await add_applications(database, worker)

    with pytest.raises(KpjFileError, match=r"iuran s\.d\."):
        await import_coverage(
            database,
            b"NIK,KPJ,tgl_mulai\n1,66666666666,01-01-2026\n",
            filename="x.csv",
            today=TODAY,
        )
    assert await paid_through(database, worker.id) is None


@pytest.mark.parametrize(
    ("filename", "body", "template"),
    [
        ("list.txt", b"\n11111111111;2026-03\n", UNSUPPORTED_FILE),
        ("list.xlsx", b"not a zip archive", UNREADABLE_FILE),
        ("list.csv", b"\n11111111111;2026-03\n22222222222;2026-03\n", TOO_MANY_ROWS),
        ("list.csv", b"\n", NO_ROWS),
    ],
    ids=["not-csv-or-xlsx", "broken-xlsx", "too-many-rows", "header-only"],
)
async def test_member_list_and_kpj_list_refuse_a_file_by_the_same_rules(
    database: Database, filename: str, body: bytes, template: str
) -> None:
    """Both BPJS files go through one reader: the same file problem, the same refusal."""
    with pytest.raises(KpjFileError) as coverage:
        read_coverage(b"KPJ;Iuran s.d." + body, filename=filename, today=TODAY, max_rows=1)
    with pytest.raises(KpjFileError) as kpj:
        await import_kpj(
            database,
            b"NIK;KPJ;tgl_mulai" + body,
            filename=filename,
            secret=SECRET,
            actor_id=None,
            today=TODAY,
            max_rows=1,
        )
    assert (template, template) == (coverage.value.template, kpj.value.template)
    assert coverage.value.params == kpj.value.params


def test_member_list_reads_windows_csv_and_grouped_kpj_numbers_as_the_kpj_list_does() -> None:
    """Excel's ANSI "CSV" with ";" and a KPJ written with dots and spaces: read, not refused."""
    data = "Nama;No. KPJ;Iuran s.d.\nJosé;111.1111 1111;Maret 2026\n".encode("cp1252")

    entries = read_coverage(data, filename="anggota.csv", today=TODAY)

    assert [(2, "11111111111", date(2026, 3, 31), None)] == [
        (entry.line, entry.kpj, entry.paid_through, entry.problem) for entry in entries
    ]


def test_import_coverage_command_applies_reports_and_refuses_a_wrong_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI applies known KPJs, exits 1 with the counts; a PDF is one line and exit 1."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    worker = enrolled("77777777777")

    async def seed() -> None:
        db = Database.from_url(url)
        try:
            await upgrade(db)
            await add_applications(db, worker)
        finally:
            await db.dispose()

    asyncio.run(seed())
    source = tmp_path / "anggota.csv"
    source.write_text("KPJ,bulan terakhir dibayar\n77777777777,2026-01\n88888888888,2026-01\n")
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("DEFAULT_LANGUAGE", "en")

    assert cli.main(["import-coverage", str(source)]) == 1
    out = capsys.readouterr().out
    assert "1 of 2 rows applied; 1 unknown KPJ numbers" in out
    assert "88888888888" not in out

    async def stored() -> date | None:
        db = Database.from_url(url)
        try:
            return await paid_through(db, worker.id)
        finally:
            await db.dispose()

    assert date(2026, 1, 31) == asyncio.run(stored())

    wrong = tmp_path / "anggota.pdf"
    wrong.write_bytes(b"%PDF-1.4")
    assert cli.main(["import-coverage", str(wrong)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "import-coverage" in err[0]
