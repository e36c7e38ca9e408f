"""Last year's cohort: import-cohort assesses each participant, stores them in one transaction
and counts every bad row; the still eligible await renewal, the others are listed for staff."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot import cli
from domain.eligibility import Rules
from domain.lifecycle import Status
from domain.pii import hash_identifier, mask_nik
from storage.cohort_file import CohortFileError, RowProblem
from storage.engine import Database
from storage.migrate import upgrade
from storage.models import Application, AuditEvent
from storage.retention import delete_expired
from testkit.factories import Person, make_people
from testkit.fakes import add_application, row_of, seed_dtsen
from testkit.harness import TEST_PII_SECRET
from usecases.cohort import CohortReport, import_cohort

SECRET = TEST_PII_SECRET.encode()
NOW = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
RULES = Rules(region_code="3275", max_desil=5, min_age=18, max_age=65)
HEADER = "NIK,Nama,No KPJ,No HP,Tanggal Lahir"


def line(person: Person, *, kpj: str = "", nik: str | None = None) -> str:
    """A row as last year's list has it (birth date day-first, phone in local form)."""
    phone = "0" + person.phone.removeprefix("+62")
    return f"{nik or person.nik},{person.name.upper()},{kpj},{phone},{person.birth_date:%d-%m-%Y}"


def cohort_file(*lines: str, header: str = HEADER) -> bytes:
    """A CSV cohort file."""
    return ("\n".join([header, *lines]) + "\n").encode()


async def run(database: Database, data: bytes, filename: str = "sigap2025.csv") -> CohortReport:
    """Import as the CLI does, on the fixed test day."""
    return await import_cohort(
        database,
        data,
        filename=filename,
        column_map={},
        year=2025,
        secret=SECRET,
        rules=RULES,
        now=NOW,
        code_prefix="BKS",
    )


async def applications(database: Database) -> list[Application]:
    """Every application, oldest first."""
    async with database.read() as session:
        query = sa.select(Application).order_by(Application.id)  # type: ignore[arg-type]
        return list((await session.execute(query)).scalars())


@pytest.fixture
def people() -> list[Person]:
    """Eight synthetic participants of last year's list."""
    return make_people(8, seed=2025)


async def test_cohort_import_assesses_each_row_and_counts_every_bad_case(
    database: Database, people: list[Person]
) -> None:
    """Eligible -> awaiting renewal with KPJ kept; desil too high and not in DTSEN -> listed
    with the reason; bad NIK, duplicates and people registered this year -> counted apart."""
    eligible, high, unknown, twice, registered = (
        people[:3],
        people[3],
        people[4],
        people[5],
        people[6],
    )
    rows = [row_of(p) for p in [*eligible, twice, registered]] + [row_of(high, desil=8)]
    await seed_dtsen(database, SECRET, rows)
    await add_application(database, SECRET, registered, user_id=4242, code="BKS-LIVE01")
    data = cohort_file(
        line(eligible[0], kpj="25010000001"),
        line(eligible[1]),
        line(eligible[2], kpj="2501-0000-003"),
        line(high),
        line(unknown),
        line(twice),
        line(twice),
        line(registered),
        line(people[7], nik="1234"),
    )

    report = await run(database, data)

    assert (report.rows, report.renewing, report.not_eligible, report.skipped) == (9, 3, 2, 4)
    assert report.counts() == {
        RowProblem.NOT_IN_DTSEN: 1,
        RowProblem.DUPLICATE_NIK: 2,
        RowProblem.ALREADY_REGISTERED: 1,
        RowProblem.BAD_NIK: 1,
    }
    assert report.reasons == {"desil_too_high": 1, "not_in_dtsen": 1}
    assert mask_nik(twice.nik) in {p.masked_nik for p in report.problems}
    stored = {a.nik: a for a in await applications(database) if a.cohort_year == 2025}
    assert set(stored) == {p.nik for p in [*eligible, high, unknown]}
    first = stored[eligible[0].nik]
    assert first.status == Status.PENDING
    assert first.telegram_user_id is None
    assert first.chat_id is None
    assert first.kpj_number == "25010000001"
    assert stored[eligible[2].nik].kpj_number == "25010000003"
    assert first.nik_hash == hash_identifier(eligible[0].nik, SECRET)
    assert first.code is not None
    assert first.code.startswith("BKS-")
    assert first.kecamatan_code == eligible[0].kode_wilayah[:6]
    assert first.phone == eligible[0].phone
    assert stored[high.nik].status == Status.INELIGIBLE
    assert "desil_too_high" in (stored[high.nik].eligibility_reasons or "")
    assert stored[unknown.nik].status == Status.INELIGIBLE
    async with database.read() as session:
        audits = (
            await session.execute(
                sa.select(AuditEvent.action).where(AuditEvent.action == "import_cohort")
            )
        ).all()
    assert len(audits) == 5


async def test_second_import_of_the_same_file_adds_nobody(
    database: Database, people: list[Person]
) -> None:
    """Run twice: the renewals count as registered this year, the ineligible as imported."""
    await seed_dtsen(database, SECRET, [row_of(people[0]), row_of(people[1], desil=9)])
    data = cohort_file(line(people[0]), line(people[1]))
    await run(database, data)

    again = await run(database, data)

    assert (again.renewing, again.not_eligible) == (0, 0)
    assert again.counts() == {RowProblem.ALREADY_REGISTERED: 1, RowProblem.ALREADY_IMPORTED: 1}
    assert len(await applications(database)) == 2


async def test_a_file_without_a_name_column_imports_nothing(
    database: Database, people: list[Person]
) -> None:
    """A wrong file is refused whole, naming what is missing."""
    with pytest.raises(CohortFileError, match="nama"):
        await run(database, cohort_file(people[0].nik, header="NIK"))
    with pytest.raises(CohortFileError, match=r"\.csv and \.xlsx"):
        await run(database, b"%PDF-1.4", filename="list.pdf")
    assert await applications(database) == []


async def test_other_column_names_are_read_with_map(
    database: Database, people: list[Person]
) -> None:
    """--map names the columns of a file whose header the import does not know."""
    await seed_dtsen(database, SECRET, [row_of(people[0])])
    data = cohort_file(f"{people[0].nik};{people[0].name}", header="NOMOR KTP;PESERTA")
    report = await import_cohort(
        database,
        data,
        filename="list.csv",
        column_map={"nik": "Nomor KTP", "nama": "peserta"},
        year=2025,
        secret=SECRET,
        rules=RULES,
        now=NOW,
        code_prefix="BKS",
    )
    assert report.renewing == 1


async def test_ineligible_cohort_members_expire_like_other_ineligible_checks(
    database: Database, people: list[Person]
) -> None:
    """Retention deletes them after its period, though they never had a Telegram account."""
    await run(database, cohort_file(line(people[0])))  # not in DTSEN: ineligible

    later = NOW + timedelta(days=400)
    deleted = await delete_expired(
        database,
        drafts_idle_since=later,
        ineligible_before=later,
        attempts_before=later,
        updates_before=later,
    )
    assert deleted == 1


def test_import_cohort_command_reports_and_exits_1_on_skipped_rows(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    people: list[Person],
) -> None:
    """`rentan-bot import-cohort FILE --year 2025`: totals, masked NIKs, exit 1 (a duplicate)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"

    async def prepare() -> None:
        db = Database.from_url(url)
        try:
            await upgrade(db)
            await seed_dtsen(db, SECRET, [row_of(people[0]), row_of(people[1])])
        finally:
            await db.dispose()

    asyncio.run(prepare())
    source = tmp_path / "sigap.csv"
    source.write_bytes(cohort_file(line(people[0]), line(people[1]), line(people[1])))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PII_SECRET", TEST_PII_SECRET)

    assert cli.main(["import-cohort", str(source), "--year", "2025"]) == 1

    out = capsys.readouterr().out
    assert "1 awaiting renewal" in out
    assert "duplicate_nik: 2" in out
    assert mask_nik(people[1].nik) in out
    assert people[1].nik not in out


def test_import_cohort_command_refuses_a_wrong_file_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file without the NIK and name columns: one line on stderr, exit 1."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("PII_SECRET", TEST_PII_SECRET)
    source = tmp_path / "kpj.csv"
    source.write_bytes(b"KPJ,tgl_mulai\n12345678901,01-01-2026\n")

    assert cli.main(["import-cohort", str(source), "--year", "2025"]) == 1

    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "lacks nik, nama" in err
