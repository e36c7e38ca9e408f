"""KPJ import: approved workers become enrolled, every other row is reported and left alone."""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
import zipfile
from datetime import UTC, date, datetime
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from openpyxl import Workbook
from sqlalchemy.exc import IntegrityError

from bot import cli
from domain.lifecycle import Status
from domain.pii import hash_identifier, mask_nik
from storage import enrollment
from storage.engine import Database
from storage.enrollment import (
    MAX_UNCOMPRESSED_BYTES,
    TOO_LARGE_UNPACKED,
    TOO_MANY_ROWS,
    EnrollmentReport,
    KpjFileError,
    ProblemReason,
    import_kpj,
)
from storage.migrate import upgrade
from storage.models import Application, AuditEvent, Notification
from testkit.factories import make_person
from testkit.fakes import add_applications
from testkit.harness import TEST_PII_SECRET

SECRET = TEST_PII_SECRET.encode()
TODAY = date(2026, 11, 25)
ADMIN = 900001
_seeds = count(1)


def application(status: Status, **fields: Any) -> Application:
    """A complete application of a fresh synthetic person, in `status`."""
    seed = next(_seeds)
    person = make_person(seed)
    values: dict[str, Any] = {
        "telegram_user_id": 700_000 + seed,
        "chat_id": 710_000 + seed,
        "status": status,
        "code": f"BKS-K{seed:05d}",
        "nik": person.nik,
        "nik_hash": hash_identifier(person.nik, SECRET),
        "nama": person.name,
        "tanggal_lahir": person.birth_date,
        "jenis_kelamin": person.gender,
        "phone": person.phone,
        "occupation": "ojol",
        "kecamatan_code": person.kode_wilayah[:6],
        "kelurahan_code": person.kode_wilayah,
        "alamat": "Jl. Melati No. 5",
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


def csv_file(*rows: tuple[str, str, str], header: str = "NIK,KPJ,tgl_mulai") -> bytes:
    """A KPJ file as BPJS would send it, in CSV."""
    lines = [header, *(",".join(row) for row in rows)]
    return ("\n".join(lines) + "\n").encode()


def spaced(nik: str) -> str:
    """A NIK typed in groups, as people copy it from a KTP."""
    return f"{nik[:4]} {nik[4:8]} {nik[8:12]} {nik[12:]}"


async def run(database: Database, data: bytes, filename: str = "kpj.csv") -> EnrollmentReport:
    """Import a file as an admin would, on the fixed test day."""
    return await import_kpj(
        database, data, filename=filename, secret=SECRET, actor_id=ADMIN, today=TODAY
    )


async def stored(database: Database, application_id: int | None) -> Application:
    """The application as it is now in the database."""
    async with database.read() as session:
        found = await session.get(Application, application_id)
    assert found is not None
    return found


async def all_of(database: Database, model: type[Any]) -> list[Any]:
    """Every row of a table."""
    async with database.read() as session:
        return list((await session.execute(sa.select(model))).scalars())


async def test_approved_applications_become_enrolled_with_kpj_and_coverage_start(
    database: Database,
) -> None:
    """KPJ and cover start stored, one audit event and notification each; spaced NIKs read."""
    first, second = application(Status.APPROVED), application(Status.APPROVED)
    await add(database, first, second)

    report = await run(
        database,
        csv_file(
            (str(first.nik), "12345678901", "01-12-2026"),
            (spaced(str(second.nik)), "1234 5678 902", "1 Desember 2026"),
        ),
    )

    assert report.ok
    assert (report.rows, report.applied) == (2, 2)
    enrolled = await stored(database, first.id)
    assert enrolled.status == Status.ENROLLED
    assert enrolled.kpj_number == "12345678901"
    assert enrolled.coverage_start == date(2026, 12, 1)
    assert (await stored(database, second.id)).kpj_number == "12345678902"
    audits = [e for e in await all_of(database, AuditEvent) if e.action == "enroll"]
    assert {first.id, second.id} == {e.application_id for e in audits}
    assert {("approved", "enrolled", ADMIN)} == {
        (e.from_status, e.to_status, e.actor_id) for e in audits
    }
    notifications = await all_of(database, Notification)
    assert {(first.id, first.chat_id), (second.id, second.chat_id)} == {
        (n.application_id, n.chat_id) for n in notifications
    }
    assert {"enrolled"} == {n.kind for n in notifications}
    assert all(n.sent_at is None and n.attempts == 0 for n in notifications)


async def test_rows_that_cannot_apply_are_reported_with_line_and_masked_nik(
    database: Database,
) -> None:
    """Unknown, pending, rejected, bad KPJ and bad date rows change nothing and say why."""
    pending = application(Status.PENDING)
    rejected = application(Status.REJECTED)
    bad_kpj = application(Status.APPROVED)
    bad_date = application(Status.APPROVED)
    good = application(Status.APPROVED)
    stranger = make_person(99_999).nik
    await add(database, pending, rejected, bad_kpj, bad_date, good)

    report = await run(
        database,
        csv_file(
            (stranger, "11111111111", "01-12-2026"),  # line 2
            (str(pending.nik), "22222222222", "01-12-2026"),  # line 3
            (str(rejected.nik), "33333333333", "01-12-2026"),  # line 4
            (str(bad_kpj.nik), "1234567890", "01-12-2026"),  # line 5: ten digits
            (str(bad_date.nik), "55555555555", "31-02-2026"),  # line 6
            ("12345", "66666666666", "01-12-2026"),  # line 7
            (str(good.nik), "77777777777", "01-12-2026"),  # line 8
        ),
    )

    assert report.applied == 1
    assert [
        (2, ProblemReason.UNKNOWN_NIK, mask_nik(stranger)),
        (3, ProblemReason.NOT_APPROVED, mask_nik(str(pending.nik))),
        (4, ProblemReason.NOT_APPROVED, mask_nik(str(rejected.nik))),
        (5, ProblemReason.BAD_KPJ, mask_nik(str(bad_kpj.nik))),
        (6, ProblemReason.BAD_DATE, mask_nik(str(bad_date.nik))),
        (7, ProblemReason.BAD_NIK, "*****"),
    ] == [(p.line, p.reason, p.masked_nik) for p in report.problems]
    assert [p.status for p in report.problems[1:3]] == ["pending", "rejected"]
    assert "pending" not in report.problems[1].message(lambda m: m)
    assert "Pending" in report.problems[1].message(lambda m: m)
    for application_ in (pending, rejected, bad_kpj, bad_date):
        assert (await stored(database, application_.id)).status == application_.status
    assert len(await all_of(database, Notification)) == 1


async def test_duplicate_niks_in_the_file_are_all_held_back(database: Database) -> None:
    """Which of two KPJs is right cannot be guessed: neither row applies."""
    twice = application(Status.APPROVED)
    await add(database, twice)

    report = await run(
        database,
        csv_file(
            (str(twice.nik), "12345678901", "01-12-2026"),
            (str(twice.nik), "12345678902", "01-12-2026"),
        ),
    )

    assert report.applied == 0
    assert [(p.line, p.reason) for p in report.problems] == [
        (2, ProblemReason.DUPLICATE_NIK),
        (3, ProblemReason.DUPLICATE_NIK),
    ]
    assert (await stored(database, twice.id)).status == Status.APPROVED


async def test_one_kpj_for_two_workers_is_held_back(database: Database) -> None:
    """A KPJ number belongs to one person; a file giving it twice applies neither row."""
    first, second = application(Status.APPROVED), application(Status.APPROVED)
    await add(database, first, second)

    report = await run(
        database,
        csv_file(
            (str(first.nik), "12345678901", "01-12-2026"),
            (str(second.nik), "12345678901", "01-12-2026"),
        ),
    )

    assert report.applied == 0
    assert {ProblemReason.DUPLICATE_KPJ} == {p.reason for p in report.problems}


async def test_second_run_of_the_same_file_applies_nothing_and_says_already_enrolled(
    database: Database,
) -> None:
    """Idempotent: no second audit event, no second notification."""
    worker = application(Status.APPROVED)
    await add(database, worker)
    data = csv_file((str(worker.nik), "12345678901", "01-12-2026"))

    first = await run(database, data)
    second = await run(database, data)

    assert first.applied == 1
    assert second.applied == 0
    assert [(p.line, p.reason) for p in second.problems] == [(2, ProblemReason.ALREADY_ENROLLED)]
    assert len(await all_of(database, Notification)) == 1
    assert len([e for e in await all_of(database, AuditEvent) if e.action == "enroll"]) == 1


async def test_kpj_already_held_by_another_enrolled_worker_is_refused(database: Database) -> None:
    """A later file cannot hand an enrolled worker's KPJ number to someone else."""
    holder = application(Status.ENROLLED, kpj_number="12345678901")
    newcomer = application(Status.APPROVED)
    await add(database, holder, newcomer)

    report = await run(database, csv_file((str(newcomer.nik), "12345678901", "01-12-2026")))

    assert [p.reason for p in report.problems] == [ProblemReason.KPJ_TAKEN]
    assert (await stored(database, newcomer.id)).status == Status.APPROVED


async def test_semicolon_csv_with_other_header_names_is_understood(database: Database) -> None:
    """Excel on Indonesian Windows writes ";"; headers `No. KPJ` and `Tanggal Kepesertaan`."""
    worker = application(Status.APPROVED)
    await add(database, worker)
    data = f"nik;No. KPJ;Tanggal Kepesertaan\r\n{worker.nik};12345678901;2026-12-01\r\n"

    report = await run(database, b"\xef\xbb\xbf" + data.encode())

    assert report.ok
    assert (await stored(database, worker.id)).coverage_start == date(2026, 12, 1)


async def test_xlsx_file_with_text_and_date_cells_is_applied(database: Database) -> None:
    """An XLSX as admins send it in Telegram: NIK as text, a real date cell, KPJ as a number."""
    worker = application(Status.APPROVED)
    await add(database, worker)
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["NIK", "nomor_kpj", "coverage_start"])
    sheet.append([worker.nik, 12345678901, datetime(2026, 12, 1)])
    stream = io.BytesIO()
    workbook.save(stream)

    report = await run(database, stream.getvalue(), filename="Hasil BPJS.xlsx")

    assert report.ok, report.problems
    enrolled = await stored(database, worker.id)
    assert (enrolled.kpj_number, enrolled.coverage_start) == ("12345678901", date(2026, 12, 1))


async def test_file_without_a_kpj_column_is_refused_whole(database: Database) -> None:
    """A wrong file fails loudly, naming the missing column, and applies nothing."""
    worker = application(Status.APPROVED)
    await add(database, worker)

    with pytest.raises(KpjFileError) as raised:
        await run(database, csv_file((str(worker.nik), "01-12-2026", ""), header="nik,tgl,x"))

    assert "KPJ" in str(raised.value)
    assert (await stored(database, worker.id)).status == Status.APPROVED


async def test_other_file_types_are_refused(database: Database) -> None:
    """Only CSV and XLSX: a PDF or an old .xls gets a clear message."""
    with pytest.raises(KpjFileError):
        await run(database, b"%PDF-1.4", filename="kpj.pdf")
    with pytest.raises(KpjFileError):
        await run(database, b"not a zip", filename="kpj.xlsx")


def bomb_xlsx(unpacked_bytes: int = MAX_UNCOMPRESSED_BYTES + 1024 * 1024) -> bytes:
    """A real workbook whose sheet is padded with identical rows until it unpacks to
    `unpacked_bytes`: tens of megabytes of XML in well under a megabyte of zip."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["NIK", "KPJ", "tgl_mulai"])
    stream = io.BytesIO()
    workbook.save(stream)
    row = b'<row><c t="inlineStr"><is><t>' + b"3" * 200 + b"</t></is></c></row>"
    padded = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(stream.getvalue())) as source,
        zipfile.ZipFile(padded, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                head, tail = content.split(b"</sheetData>")
                content = head + row * (unpacked_bytes // len(row)) + b"</sheetData>" + tail
            target.writestr(item.filename, content)
    return padded.getvalue()


async def test_xlsx_that_unpacks_to_tens_of_megabytes_is_refused_before_parsing(
    database: Database,
) -> None:
    """A zip bomb (a million rows fit in 0.14 MB) is refused from the sizes its zip declares,
    with the limit in the message; no row is read and nothing is applied."""
    worker = application(Status.APPROVED)
    await add(database, worker)
    data = bomb_xlsx()
    assert len(data) < 1024 * 1024

    with pytest.raises(KpjFileError) as raised:
        await run(database, data, filename="kpj.xlsx")

    assert raised.value.template == TOO_LARGE_UNPACKED
    assert "50 MB" in str(raised.value)
    assert (await stored(database, worker.id)).status == Status.APPROVED


@pytest.mark.parametrize("filename", ["kpj.csv", "kpj.xlsx"])
async def test_file_with_more_rows_than_the_limit_is_refused_whole(
    database: Database, filename: str
) -> None:
    """KPJ_MAX_ROWS bounds the rows read; past it the file is refused, nothing applied."""
    worker = application(Status.APPROVED)
    await add(database, worker)
    rows = [(str(worker.nik), "12345678901", "01-12-2026")]
    rows += [(f"{index:016d}", "1", "x") for index in range(20)]
    if filename.endswith(".csv"):
        data = csv_file(*rows)
    else:
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet()
        sheet.append(["NIK", "KPJ", "tgl_mulai"])
        for row in rows:
            sheet.append(list(row))
        stream = io.BytesIO()
        workbook.save(stream)
        data = stream.getvalue()

    with pytest.raises(KpjFileError) as raised:
        await import_kpj(
            database,
            data,
            filename=filename,
            secret=SECRET,
            actor_id=ADMIN,
            today=TODAY,
            max_rows=20,
        )

    assert raised.value.template == TOO_MANY_ROWS
    assert "20" in str(raised.value)
    assert (await stored(database, worker.id)).status == Status.APPROVED
    report = await import_kpj(
        database,
        data,
        filename=filename,
        secret=SECRET,
        actor_id=ADMIN,
        today=TODAY,
        max_rows=21,
    )
    assert report.applied == 1


async def test_kpj_file_is_parsed_off_the_event_loop(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the file is parsed the event loop keeps running (the bot keeps answering
    workers): the parse waits until a coroutine on the loop has run, which it could not do if
    the parse held the loop; it runs on another thread, and the import then applies."""
    worker = application(Status.APPROVED)
    await add(database, worker)
    loop = asyncio.get_running_loop()
    parse_started = asyncio.Event()
    loop_ran = threading.Event()
    parsed_on: list[int] = []
    ran_while_parsing: list[bool] = []
    opened = enrollment._open_sheet

    def slow_open(*args: Any) -> contextlib.AbstractContextManager[Any]:
        parsed_on.append(threading.get_ident())
        loop.call_soon_threadsafe(parse_started.set)
        # A deadlock guard, not a timing: on the loop's thread this wait could never end
        # early, since the coroutine that sets the event needs the loop.
        ran_while_parsing.append(loop_ran.wait(timeout=5))
        return opened(*args)

    async def meanwhile_on_the_loop() -> None:
        await parse_started.wait()
        loop_ran.set()

    monkeypatch.setattr(enrollment, "_open_sheet", slow_open)
    data = csv_file((str(worker.nik), "12345678901", "01-12-2026"))
    report, _ = await asyncio.gather(run(database, data), meanwhile_on_the_loop())

    assert ran_while_parsing == [True]
    assert parsed_on != [threading.get_ident()]
    assert report.applied == 1


async def test_one_kpj_number_cannot_be_stored_on_two_applications(database: Database) -> None:
    """The unique index on kpj_number: whatever writes it, a second holder is refused;
    applications without a number (NULL) are not compared."""
    await add(database, application(Status.APPROVED), application(Status.APPROVED))
    await add(database, application(Status.ENROLLED, kpj_number="12345678901"))
    with pytest.raises(IntegrityError):
        await add(database, application(Status.WITHDRAWN, kpj_number="12345678901"))


async def test_concurrent_imports_giving_one_kpj_to_different_workers_enrol_one(
    database: Database,
) -> None:
    """Four imports at once, each giving the same KPJ to another NIK: one worker ends with
    it, every other import reports it as taken rather than failing."""
    workers = [application(Status.APPROVED) for _ in range(4)]
    await add(database, *workers)
    files = [csv_file((str(worker.nik), "12345678901", "01-12-2026")) for worker in workers]

    reports = await asyncio.gather(*(run(database, data) for data in files))

    assert sum(report.applied for report in reports) == 1
    assert sorted(p.reason for r in reports for p in r.problems) == [ProblemReason.KPJ_TAKEN] * 3
    holders = [a for a in await all_of(database, Application) if a.kpj_number == "12345678901"]
    assert [holder.status for holder in holders] == [Status.ENROLLED]


def test_import_kpj_command_enrols_and_reports_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rentan-bot import-kpj FILE` applies good rows, lists bad ones masked, exits 1."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    worker = application(Status.APPROVED)
    pending = application(Status.PENDING)

    async def seed() -> None:
        db = Database.from_url(url)
        try:
            await upgrade(db)
            await add(db, worker, pending)
        finally:
            await db.dispose()

    asyncio.run(seed())
    today = date.today().strftime("%d-%m-%Y")
    source = tmp_path / "kpj.csv"
    source.write_bytes(
        csv_file((str(worker.nik), "12345678901", today), (str(pending.nik), "12345678902", today))
    )
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PII_SECRET", TEST_PII_SECRET)

    assert cli.main(["import-kpj", str(source)]) == 1

    out = capsys.readouterr().out
    assert mask_nik(str(pending.nik)) in out
    assert str(pending.nik) not in out
    assert str(worker.nik) not in out

    async def status_of_worker() -> str:
        db = Database.from_url(url)
        try:
            return (await stored(db, worker.id)).status
        finally:
            await db.dispose()

    assert asyncio.run(status_of_worker()) == Status.ENROLLED


def test_import_kpj_command_needs_the_pii_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without PII_SECRET no NIK can be matched: exit 2 naming the variable."""
    source = tmp_path / "kpj.csv"
    source.write_bytes(csv_file())
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'none.db'}")

    assert cli.main(["import-kpj", str(source)]) == 2
    assert "PII_SECRET" in capsys.readouterr().err


async def test_worker_registered_by_an_operator_is_enrolled_without_a_chat_to_tell(
    database: Database,
) -> None:
    """An application an operator registered (no Telegram account yet) is enrolled like any
    other; only the worker with a chat gets a notification (the import does not fail)."""
    assisted = application(
        Status.APPROVED, telegram_user_id=None, chat_id=None, assisted_by=600001
    )
    own = application(Status.APPROVED)
    await add(database, assisted, own)

    report = await run(
        database,
        csv_file(
            (str(assisted.nik), "12345678911", "01-12-2026"),
            (str(own.nik), "12345678912", "01-12-2026"),
        ),
    )

    assert (report.rows, report.applied) == (2, 2)
    assert (await stored(database, assisted.id)).status == Status.ENROLLED
    assert [(own.id, own.chat_id)] == [
        (n.application_id, n.chat_id) for n in await all_of(database, Notification)
    ]
