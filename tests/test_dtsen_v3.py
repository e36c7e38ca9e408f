"""DTSEN V3: the persons file and the family file imported together, joined on the KK number."""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from datetime import date
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import inspect, text

from bot.cli import main
from bot.sample_dtsen import demo_people
from bot.sample_dtsen_v3 import write_v3_sample
from domain.pii import digest_key, identifier_digest
from storage.dtsen import STAGING_TABLE, DtsenImportError, SkipReason, import_dtsen
from storage.dtsen.records import DtsenRepository
from storage.engine import Database
from storage.migrate import upgrade
from testkit.factories import TODAY, Person, make_people

SECRET = b"test-pii-secret-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[1]
PERSON_COLUMNS = ("nomor_induk_kependudukan", "nomor_kartu_keluarga", "nama", "tanggal_lahir",
                  "jenis_kelamin", "status_bekerja", "status_dalam_pekerjaan_utama",
                  "lapangan_usaha_dari_pekerjaan_utama", "kode_kabupaten_kota_ktp")  # fmt: skip
WORK_NAMES = ("status_bekerja", "status_dalam_pekerjaan_utama",
              "lapangan_usaha_dari_pekerjaan_utama")  # fmt: skip
FAMILY_COLUMNS = ("nomor_kartu_keluarga", "kode_kelurahan_desa", "desil_nasional",
                  "desil_provinsi", "desil_kabupaten_kota")  # fmt: skip


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated database of its own: a SQLite file, and a PostgreSQL database (COPY loader)."""
    db = Database.from_url(database_url)
    await upgrade(db)
    try:
        yield db
    finally:
        await db.dispose()


def write(
    path: Path, header: Sequence[str], rows: Sequence[Sequence[str]], sep: str = "|"
) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=sep, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def person_row(person: Person, kk: str, *, nik: str | None = None) -> list[str]:
    return [nik or person.nik, kk, person.name, person.birth_date.isoformat(),
            "1" if person.gender == "L" else "2", "1", "5", "8", "3216"]  # fmt: skip


def kk_of(number: int) -> str:
    return f"327501010120{number:04d}"


def codebook(path: Path, entries: Sequence[tuple[str, object, str]]) -> Path:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["kolom", "kode", "keterangan"])
    for entry in entries:
        sheet.append(list(entry))
    workbook.save(path)
    return path


CODES = [("jenis_kelamin", 1, "Laki-laki"), ("jenis_kelamin", 2, "Perempuan"),
         ("status_bekerja", 1, "Bekerja"), ("status_dalam_pekerjaan_utama", 5, "Pekerja bebas"),
         ("lapangan_usaha_dari_pekerjaan_utama", 8, "Transportasi dan pergudangan")]  # fmt: skip


def small_pair(tmp_path: Path, people: Sequence[Person]) -> tuple[Path, Path]:
    """Two people a family, every family in Jakasampurna; families' desils 3, 5, 7."""
    persons = [person_row(p, kk_of(i // 2)) for i, p in enumerate(people)]
    families = [[kk_of(i), "3275021005", "3", "5", "7"] for i in range((len(people) + 1) // 2)]
    return (
        write(tmp_path / "anggota.csv", PERSON_COLUMNS, persons),
        write(tmp_path / "keluarga.csv", FAMILY_COLUMNS, families),
    )


async def test_pair_stores_the_familys_desils_domicile_and_decoded_work(
    database: Database, tmp_path: Path
) -> None:
    """A person found by NIK carries the family's three desils and kelurahan, the KTP regency
    and the work variables as the codebook words them; the index equals domain.pii's HMAC."""
    people = make_people(40, seed=1)
    persons, families = small_pair(tmp_path, people)
    summary = await import_dtsen(
        database, persons, families=families, codebook=codebook(tmp_path / "k.xlsx", CODES),
        secret=SECRET, today=TODAY,
    )  # fmt: skip
    assert (summary.rows_loaded, summary.rows_skipped) == (40, 0)
    found = await DtsenRepository(database, SECRET).find(nik=people[7].nik)
    assert found is not None
    assert (found.nama, found.tanggal_lahir, found.jenis_kelamin) == (
        people[7].name, people[7].birth_date, people[7].gender,
    )  # fmt: skip
    assert (found.kode_wilayah, found.desil, found.desil_provinsi) == ("3275021005", 3, 5)
    assert (found.desil_kabupaten_kota, found.kode_kabupaten_kota_ktp) == (7, "3216")
    assert (found.status_bekerja, found.status_dalam_pekerjaan, found.lapangan_usaha) == (
        "Bekerja", "Pekerja bebas", "Transportasi dan pergudangan",
    )  # fmt: skip
    async with database.engine.connect() as connection:
        row = (await connection.execute(text(
            "SELECT nik_hash, nik_key FROM dtsen_record WHERE nama = :n"
        ), {"n": people[7].name})).one()  # fmt: skip
    digest = identifier_digest(people[7].nik, SECRET)
    assert (bytes(row.nik_hash), row.nik_key) == (digest, digest_key(digest))


async def test_without_a_codebook_work_codes_are_stored_raw(
    database: Database, tmp_path: Path
) -> None:
    """No codebook: gender 1/2 still reads as L/P, the work variables keep their codes."""
    people = make_people(6, seed=2)
    persons, families = small_pair(tmp_path, people)
    await import_dtsen(database, persons, families=families, secret=SECRET, today=TODAY)
    found = await DtsenRepository(database, SECRET).find(nik=people[0].nik)
    assert found is not None
    assert (found.jenis_kelamin, found.status_bekerja, found.lapangan_usaha) == (
        people[0].gender, "1", "8",
    )  # fmt: skip


async def test_spreadsheet_floats_are_normalised_and_scientific_notation_refused(
    database: Database, tmp_path: Path
) -> None:
    """`3275...0001.0` and spaced numbers are the digits; `3.27501E+15` lost digits: that row
    is skipped as scientific_notation and counted, with the NIK masked in the report."""
    people = make_people(30, seed=3)
    rows = [person_row(p, kk_of(i // 2) + ".0") for i, p in enumerate(people)]
    rows[1][0] = people[1].nik + ".0"
    rows[2][0] = f"{people[2].nik[:8]} {people[2].nik[8:]}"
    rows[3][0] = "3.27501E+15"
    families = [[kk_of(i), "3275021005", "3", "5", "7"] for i in range(15)]
    report = tmp_path / "report.csv"
    summary = await import_dtsen(
        database, write(tmp_path / "p.csv", PERSON_COLUMNS, rows),
        families=write(tmp_path / "f.csv", FAMILY_COLUMNS, families),
        secret=SECRET, today=TODAY, report_path=report,
    )  # fmt: skip
    assert summary.skipped_by_reason == {SkipReason.SCIENTIFIC_NOTATION: 1}
    repo = DtsenRepository(database, SECRET)
    assert await repo.find(nik=people[1].nik) is not None
    assert await repo.find(nik=people[2].nik) is not None
    assert await repo.find(nik=people[3].nik) is None
    assert "5,scientific_notation" in report.read_text()
    assert "3.27501E+15" not in report.read_text()


async def test_orphans_families_without_persons_and_duplicate_kks_are_counted(
    database: Database, tmp_path: Path
) -> None:
    """A person whose KK is not in the family file, a family nobody belongs to, a KK listed
    twice (the first row serves) and a NIK listed twice: each skipped and counted."""
    people = make_people(30, seed=4)
    rows = [person_row(p, kk_of(i // 2)) for i, p in enumerate(people)]
    rows[5][1] = kk_of(900)
    rows.append(person_row(people[0], kk_of(0)))
    families = [[kk_of(i), "3275021005", "3", "5", "7"] for i in range(15)]
    families.append([kk_of(0), "3275021005", "9", "9", "9"])
    families.append([kk_of(500), "3275021005", "1", "1", "1"])
    summary = await import_dtsen(
        database, write(tmp_path / "p.csv", PERSON_COLUMNS, rows),
        families=write(tmp_path / "f.csv", FAMILY_COLUMNS, families),
        secret=SECRET, today=TODAY, max_bad_share=0.5,
    )  # fmt: skip
    assert dict(summary.skipped_by_reason) == {
        SkipReason.NO_FAMILY: 1, SkipReason.FAMILY_WITHOUT_PERSONS: 1,
        SkipReason.DUPLICATE_KK: 1, SkipReason.DUPLICATE_NIK: 1,
    }  # fmt: skip
    assert summary.rows_loaded == 29
    found = await DtsenRepository(database, SECRET).find(nik=people[0].nik)
    assert found is not None
    assert found.desil == 3


@pytest.mark.parametrize("domicile", ["parts", "names"])
async def test_domicile_from_parts_per_level_or_from_names(
    domicile: str, database: Database, tmp_path: Path
) -> None:
    """Kemendagri code in parts (32, 75, 02, 1005) or only the names (BEKASI BARAT,
    JAKASAMPURNA) both give the 10-digit kelurahan 3275021005."""
    sample = write_v3_sample(tmp_path, rows=60, seed=7, domicile=domicile)  # type: ignore[arg-type]
    await import_dtsen(database, sample.persons, families=sample.families, secret=SECRET,
                       today=TODAY)  # fmt: skip
    person = demo_people(7, count=1)[0]
    found = await DtsenRepository(database, SECRET).find(nik=person.nik)
    assert found is not None
    assert found.kode_wilayah == person.kode_wilayah


async def test_v3_sample_round_trips(database: Database, tmp_path: Path) -> None:
    """The sample's people are found with their national desil; its bad rows are all skipped."""
    sample = write_v3_sample(tmp_path, rows=400, seed=7, bad_rows=10)
    summary = await import_dtsen(
        database, sample.persons, families=sample.families, codebook=sample.codebook,
        secret=SECRET, today=TODAY,
    )  # fmt: skip
    assert summary.rows_loaded == 400 - sample.bad_persons
    assert summary.rows_skipped >= sample.bad_persons + sample.bad_families
    for reason in ("scientific_notation", "bad_nik", "no_family", "duplicate_nik", "bad_date"):
        assert summary.skipped_by_reason[SkipReason(reason)] >= 1
    repo = DtsenRepository(database, SECRET)
    for person in demo_people(7, count=5):
        found = await repo.find(nik=person.nik)
        assert found is not None
        assert (found.nama, found.desil, found.kode_wilayah) == (
            person.nama, person.desil, person.kode_wilayah,
        )  # fmt: skip
        assert found.status_bekerja in {"Bekerja", "Tidak bekerja"}


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
           "PII_SECRET": SECRET.decode(), "PYTHONPATH": str(ROOT)}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, env=env,
        cwd=tmp_path, timeout=300, check=False,
    )  # fmt: skip


def test_cli_writes_a_v3_sample_and_imports_the_pair(tmp_path: Path) -> None:
    """`sample-dtsen --v3 -o DIR` then `import-dtsen PERSONS FAMILIES --codebook`, end to end."""
    made = _cli(tmp_path, "sample-dtsen", "--v3", "-o", "out", "--rows", "300", "--bad-rows", "5")
    assert made.returncode == 0, made.stderr
    out = tmp_path / "out"
    done = _cli(tmp_path, "import-dtsen", str(out / "anggota_keluarga_dtsen_v3_2026_sample.csv"),
                str(out / "keluarga_dtsen_v3_2026_sample.csv"), "--codebook",
                str(out / "Kode_DTSEN_V3_2026_sample.xlsx"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "loaded 295 rows" in done.stdout


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Environment for main(): a SQLite file already holding one good import of 40 people."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("PII_SECRET", SECRET.decode())
    persons, families = small_pair(tmp_path, make_people(40, seed=5))
    assert main(["import-dtsen", str(persons), str(families)]) == 0
    return tmp_path


def _rows(tmp_path: Path) -> int:
    import sqlite3

    with sqlite3.connect(tmp_path / "cli.db") as connection:
        return int(connection.execute("SELECT count(*) FROM dtsen_record").fetchone()[0])


def _refused(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> str:
    capsys.readouterr()
    assert main(["import-dtsen", *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert _rows(tmp_path) == 40  # the table in service is untouched
    return err


def test_bad_input_is_one_line_and_leaves_the_table(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Codebook that does not match, a missing column (named), the family file given as
    persons, two files of different regions, an empty family file: exit 1, one line each."""
    tmp = cli_env
    persons, families = tmp / "anggota.csv", tmp / "keluarga.csv"
    wrong_book = codebook(tmp / "wrong.xlsx", [("kode_pos", 17111, "Bekasi")])
    assert "does not match" in _refused(capsys, tmp, str(persons), str(families), "--codebook",
                                        str(wrong_book))  # fmt: skip
    other_codes = codebook(tmp / "other.xlsx", [("status_bekerja", 77, "Bekerja")])
    assert "does not match" in _refused(capsys, tmp, str(persons), str(families), "--codebook",
                                        str(other_codes))  # fmt: skip
    lines = families.read_text().splitlines()
    no_desil = tmp / "no_desil.csv"
    no_desil.write_text("\n".join(line.rsplit("|", 1)[0] for line in lines) + "\n")
    err = _refused(capsys, tmp, str(persons), str(no_desil))
    assert "lacks the column desil_kabupaten_kota" in err
    err = _refused(capsys, tmp, str(families), str(persons))
    assert "keluarga.csv is a family file" in err
    others = [[f"3216{n:012d}", "3216011001", "3", "3", "3"] for n in range(20)]
    elsewhere = write(tmp / "elsewhere.csv", FAMILY_COLUMNS, others)
    assert "do not belong together" in _refused(capsys, tmp, str(persons), str(elsewhere))
    empty = write(tmp / "empty.csv", FAMILY_COLUMNS, [])
    assert "has no family rows" in _refused(capsys, tmp, str(persons), str(empty))
    (tmp / "zero.csv").write_text("")
    assert "is empty" in _refused(capsys, tmp, str(persons), str(tmp / "zero.csv"))


async def test_pair_refusal_raises_before_touching_the_table(
    database: Database, tmp_path: Path
) -> None:
    """The refusals are DtsenImportError, on PostgreSQL too (the COPY loader's path)."""
    persons, _families = small_pair(tmp_path, make_people(4, seed=6))
    empty = write(tmp_path / "empty.csv", FAMILY_COLUMNS, [])
    with pytest.raises(DtsenImportError, match="has no family rows"):
        await import_dtsen(database, persons, families=empty, secret=SECRET, today=TODAY)
    assert await DtsenRepository(database, SECRET).count() == 0


async def test_cancelled_pair_import_leaves_the_table_in_service(
    database: Database, tmp_path: Path
) -> None:
    """Ctrl-C (the task cancelled) during a pair import: the previous table keeps serving and
    no staging table is left behind."""
    people = make_people(40, seed=8)
    persons, families = small_pair(tmp_path, people)
    await import_dtsen(database, persons, families=families, secret=SECRET, today=TODAY)
    sample = write_v3_sample(tmp_path / "v3", rows=2_000, seed=7, bad_rows=5)
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Future[object]] = []

    def cancel_at_first_chunk(_rows: int) -> None:
        loop.call_soon_threadsafe(tasks[0].cancel)
        time.sleep(0.5)  # the import's thread waits here while the cancel reaches it

    tasks.append(asyncio.ensure_future(import_dtsen(
        database, sample.persons, families=sample.families, secret=SECRET, today=TODAY,
        on_progress=cancel_at_first_chunk,
    )))  # fmt: skip
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    repo = DtsenRepository(database, SECRET)
    assert await repo.count() == 40
    assert await repo.find(nik=people[0].nik) is not None
    async with database.engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    assert STAGING_TABLE not in tables


def test_writer_rows_carry_the_keyed_hash_of_each_nik() -> None:
    """The rows a writer process builds from a batch of DuckDB's persons' pass joined to the
    families: the blind index of each NIK (the bot's own digest and key), then the checked
    columns as they came, the family's domicile and desils, the work codes decoded through the
    codebook; the NIKs and lines for the duplicate check; and the rows the family refuses."""
    import numpy as np
    import pyarrow as pa

    from storage.dtsen.v3_pack import FamilyIndex, NikFields, hash_batch, join_batch
    from storage.dtsen.v3_rows import build_rows
    from storage.dtsen.validate import KeyedHash

    people = make_people(5, seed=11)
    kks = [3275010101010001, 3275010101010001, 3275010101010002, 3275010101019999,
           3275010101010003]  # fmt: skip
    expected: list[list[object]] = [
        [p.name for p in people[:3]], ["1990-01-02"] * 3, ["L", "P", "L"],
        ["3275021005", "3275021005", "3275011001"], [3, 3, 10], [5, 5, None], [7, 7, 9],
        ["3275", None, "3216"], ["Bekerja", None, "2"], [None] * 3, ["8", None, ""],
    ]  # fmt: skip
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array([None] * 5, pa.int8()), pa.array([p.nik for p in people]),
            pa.array(kks, pa.uint64()), pa.array([p.name for p in people]),
            pa.array([date(1990, 1, 2)] * 5, pa.date32()), pa.array(["L", "P", "L", "L", "P"]),
            pa.array(["3275", None, "3216", None, None]), pa.array(["1", None, "2", "1", "1"]),
            pa.array([None] * 5, pa.string()), pa.array(["8", None, "", "8", "8"]),
        ],
        names=["reason", "nik", "kk", "nama", "born", "sex", "ktp", *WORK_NAMES],
    )  # fmt: skip
    families = FamilyIndex(
        kk=np.array([3275010101010001, 3275010101010002, 3275010101010003], np.uint64),
        line=np.array([2, 3, 4], np.int32), kode_values=["3275021005", "3275011001"],
        kode_at=np.array([0, 1, 0], np.int32),
        desils=(np.array([3, 10, -1], np.int8), np.array([5, -2, 1], np.int8),
                np.array([7, 9, 1], np.int8)),
    )  # fmt: skip
    found = np.zeros(5, np.bool_)
    hashed = hash_batch(batch, 2, NikFields(TODAY), KeyedHash(SECRET))
    chunk = join_batch(hashed, families, [{"1": "Bekerja"}, None, None], TODAY, found)
    rows = build_rows(chunk.columns)
    for row, person, line in zip(rows, people[:3], (2, 3, 4), strict=True):
        digest = identifier_digest(person.nik, SECRET)
        assert row[:4] == (line, digest, digest_key(digest), person.name)
        assert isinstance(row[1], bytearray)  # bound without sqlite3's adapter lookup
    assert [row[4:] for row in rows] == [
        tuple(column[i] for column in expected[1:]) for i in range(3)
    ]
    assert chunk.niks.tolist() == [int(p.nik) for p in people[:3]]
    assert chunk.lines.tolist() == [2, 3, 4]
    assert [(line, why) for line, why, _detail, _nik in chunk.bad] == [
        (5, "no_family"),
        (6, "bad_desil"),
    ]
    assert found.tolist() == [False, False, True, True, True]


Loaded = tuple[list[tuple[object, ...]], dict[SkipReason, int]]


async def _table_and_report(database: Database, sample_dir: Path, *, parallel: bool) -> Loaded:
    sample = write_v3_sample(sample_dir, rows=3_000, seed=5, bad_rows=12)
    summary = await import_dtsen(
        database, sample.persons, families=sample.families, codebook=sample.codebook,
        secret=SECRET, today=TODAY, parallel=parallel,
    )  # fmt: skip
    async with database.engine.connect() as connection:
        rows = (await connection.execute(text("SELECT * FROM dtsen_record ORDER BY id"))).all()
    return [tuple(row) for row in rows], dict(summary.skipped_by_reason)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL loads with COPY
async def test_pair_in_writer_processes_loads_what_one_process_loads(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big pair on SQLite is hashed and written by writer processes, chunk after chunk in
    file order: the table and the report are those of the import in one process."""
    import storage.dtsen.v3 as v3

    monkeypatch.setattr(v3, "CHUNK_ROWS", 500)  # many chunks, handed to both processes
    monkeypatch.setattr(v3, "WRITERS", 2)  # taking turns to write, as on more than two cores
    alone, alone_report = await _table_and_report(database, tmp_path / "a", parallel=False)
    beside, beside_report = await _table_and_report(database, tmp_path / "b", parallel=True)
    assert len(beside) > 2_900
    assert beside == alone
    assert beside_report == alone_report
    assert beside_report[SkipReason.DUPLICATE_NIK] >= 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # writer processes: SQLite's
async def test_cancelled_pair_import_in_writer_processes_leaves_the_table(
    database: Database, tmp_path: Path
) -> None:
    """Ctrl-C while writer processes load: they are stopped, the previous table serves."""
    people = make_people(10, seed=9)
    persons, families = small_pair(tmp_path, people)
    await import_dtsen(database, persons, families=families, secret=SECRET, today=TODAY)
    sample = write_v3_sample(tmp_path / "v3", rows=2_000, seed=7, bad_rows=5)
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Future[object]] = []

    def cancel_at_first_chunk(_rows: int) -> None:
        loop.call_soon_threadsafe(tasks[0].cancel)
        time.sleep(0.5)

    tasks.append(asyncio.ensure_future(import_dtsen(
        database, sample.persons, families=sample.families, secret=SECRET, today=TODAY,
        on_progress=cancel_at_first_chunk, parallel=True,
    )))  # fmt: skip
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    repo = DtsenRepository(database, SECRET)
    assert await repo.count() == 10
    async with database.engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    assert STAGING_TABLE not in tables


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # DuckDB's process: SQLite's
@pytest.mark.parametrize("parallel", [False, True], ids=["duckdb_here", "duckdb_process"])
async def test_a_file_duckdb_cannot_read_is_one_line_and_leaves_the_table(
    parallel: bool, database: Database, tmp_path: Path
) -> None:
    """A persons row with more cells than the header, deep in the file: DuckDB stops there,
    in this process or in its own, and the import says so in one line without the row's
    NIK; the previous table serves."""
    people = make_people(10, seed=9)
    persons, families = small_pair(tmp_path, people)
    await import_dtsen(database, persons, families=families, secret=SECRET, today=TODAY)
    many = make_people(3_000, seed=12)
    rows = [person_row(p, kk_of(i // 2)) for i, p in enumerate(many)]
    rows[2_500] = [*rows[2_500], "extra", "cells"]
    family_rows = [[kk_of(i), "3275021005", "3", "5", "7"] for i in range(1_500)]
    with pytest.raises(DtsenImportError) as refused:
        await import_dtsen(
            database, write(tmp_path / "p.csv", PERSON_COLUMNS, rows),
            families=write(tmp_path / "f.csv", FAMILY_COLUMNS, family_rows),
            secret=SECRET, today=TODAY, parallel=parallel,
        )  # fmt: skip
    message = str(refused.value)
    assert message.startswith("cannot read p.csv and f.csv: ")
    assert "\n" not in message
    assert many[2_500].nik not in message
    assert await DtsenRepository(database, SECRET).count() == 10


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # DuckDB's process: SQLite's
@pytest.mark.parametrize("parallel", [False, True], ids=["duckdb_here", "duckdb_process"])
async def test_rows_scanned_in_parallel_keep_their_line_numbers(
    parallel: bool, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB scans the persons file in many small pieces on all its threads; the rows still
    come in file order, so each person is stored under their own line."""
    import storage.dtsen.v3 as v3

    monkeypatch.setattr(v3, "CSV_BUFFER", 1 << 16)  # ~25 pieces of a 1,6 MB file
    people = make_people(16_000, seed=13)
    rows = [person_row(p, kk_of(i // 2)) for i, p in enumerate(people)]
    families = [[kk_of(i), "3275021005", "3", "5", "7"] for i in range(8_000)]
    summary = await import_dtsen(
        database, write(tmp_path / "p.csv", PERSON_COLUMNS, rows),
        families=write(tmp_path / "f.csv", FAMILY_COLUMNS, families),
        secret=SECRET, today=TODAY, parallel=parallel,
    )  # fmt: skip
    assert summary.rows_loaded == len(people)
    async with database.engine.connect() as connection:
        stored = (await connection.execute(text("SELECT id, nik_hash FROM dtsen_record"))).all()
    assert {line: bytes(digest) for line, digest in stored} == {
        line: identifier_digest(p.nik, SECRET) for line, p in enumerate(people, start=2)
    }


@pytest.mark.parametrize(
    ("cores", "threads", "memory"),  # DuckDB shows MiB: 48 MB, 96 MB
    [(1, 1, "45.7 MiB"), (2, 2, "45.7 MiB"), (8, 4, "91.5 MiB"), (64, 4, "91.5 MiB")],
)
def test_duckdb_gets_memory_for_each_of_its_threads_and_at_most_four(
    cores: int, threads: int, memory: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each thread scanning a CSV pins a few 4 MB blocks: on 8 cores DuckDB's own thread count
    ran out of 48 MB on Kota Bekasi's file. Its threads are capped and its memory follows."""
    import storage.dtsen.v3_stream as stream

    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    queries = stream.LocalQueries()
    queries.start(str(tmp_path / "spill"))
    try:
        settings = dict(queries.db.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('threads', 'memory_limit')"
        ).fetchall())  # fmt: skip
    finally:
        queries.close()
    assert settings["threads"] == str(threads)
    assert settings["memory_limit"] == memory
