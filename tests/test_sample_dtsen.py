"""The synthetic DTSEN sample: deterministic, realistic enough, and wrong only where asked."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date
from pathlib import Path

from openpyxl import load_workbook

from bot.sample_dtsen import HEADER, demo_people, write_sample
from domain.nik import check_nik, parse_nik
from testkit.factories import TODAY


def read_rows(path: Path) -> list[list[str]]:
    """Data rows of a sample CSV (header checked and dropped)."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == HEADER
    return rows[1:]


def test_same_seed_writes_the_same_file(tmp_path: Path) -> None:
    """Benchmarks and tests can rely on the exact content for a seed."""
    first, second, other = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    write_sample(first, rows=500, seed=1, bad_rows=10)
    write_sample(second, rows=500, seed=1, bad_rows=10)
    write_sample(other, rows=500, seed=2, bad_rows=10)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_valid_rows_are_consistent_people_with_unique_niks(tmp_path: Path) -> None:
    """Valid NIK, birth date and sex inside it match the row (women's day + 40); NIKs unique."""
    path = tmp_path / "sample.csv"
    write_sample(path, rows=3_000, seed=3)
    rows = read_rows(path)
    assert len(rows) == 3_000
    assert len({row[0] for row in rows}) == 3_000
    for nik_text, nama, born, gender, kode, desil, no_kk, alamat in rows:
        nik = parse_nik(nik_text, today=TODAY)
        birth = date(int(born[6:]), int(born[3:5]), int(born[:2]))
        assert (nik.birth_date, nik.gender) == (birth, gender)
        assert date(1955, 1, 1) <= birth <= date(2008, 12, 31)
        assert nama
        assert nama == nama.upper()
        assert len(kode) == 10
        assert kode.isdigit()
        assert 1 <= int(desil) <= 10
        assert len(no_kk) == 16
        assert no_kk.isdigit()
        assert alamat.startswith("JL. ")


def test_some_people_were_registered_outside_the_city_they_live_in(tmp_path: Path) -> None:
    """NIK prefixes from Kabupaten Bekasi or Jakarta with a Kota Bekasi kelurahan as domicile."""
    path = tmp_path / "sample.csv"
    write_sample(path, rows=5_000, seed=4, outside_share=0.1)
    rows = read_rows(path)
    lives_here = [row for row in rows if row[4].startswith("3275")]
    moved_in = [row for row in lives_here if not row[0].startswith("3275")]
    assert 0.05 < len(moved_in) / len(rows) < 0.2
    prefixes = {row[0][:4] for row in moved_in}
    assert "3216" in prefixes  # Kabupaten Bekasi, not Kota Bekasi
    assert any(prefix.startswith("31") for prefix in prefixes)  # DKI Jakarta
    assert len(lives_here) > 0.95 * len(rows)


def test_families_share_a_card_and_poorer_desil_are_more_common(tmp_path: Path) -> None:
    """Several people per KK with one desil; desil 1 is more frequent than desil 10."""
    path = tmp_path / "sample.csv"
    write_sample(path, rows=5_000, seed=5)
    rows = read_rows(path)
    by_kk: dict[str, set[str]] = {}
    for row in rows:
        by_kk.setdefault(row[6], set()).add(row[5])
    assert 2 < len(rows) / len(by_kk) < 5
    assert all(len(desils) == 1 for desils in by_kk.values())
    desil = Counter(int(row[5]) for row in rows)
    assert desil[1] > 2 * desil[10]
    assert any(row[1].startswith(("H. ", "HJ. ")) for row in rows)


def test_requested_bad_rows_are_bad_in_each_way(tmp_path: Path) -> None:
    """Bad NIK, impossible date, desil 11, duplicate NIK, short region code, in turn."""
    path = tmp_path / "sample.csv"
    write_sample(path, rows=400, seed=6, bad_rows=10)
    rows = read_rows(path)
    assert len(rows) == 400
    bad_nik = [r for r in rows if len(r[0]) != 16 or check_nik(r[0], TODAY) is not None]
    bad_date = [r for r in rows if r[2] in {"30-02-1990", "31-04-1985", "00-01-1970"}]
    bad_desil = [r for r in rows if r[5] == "11"]
    bad_code = [r for r in rows if len(r[4]) != 10]
    repeated = sum(count - 1 for count in Counter(r[0] for r in rows).values() if count > 1)
    assert (len(bad_nik), len(bad_date), len(bad_desil), len(bad_code)) == (2, 2, 2, 2)
    assert repeated == 2


def test_demo_people_are_the_first_valid_rows_whatever_the_bad_rows(tmp_path: Path) -> None:
    """The README can list people from the sample; bad rows never displace them."""
    path = tmp_path / "sample.csv"
    write_sample(path, rows=200, seed=7, bad_rows=20)
    rows = read_rows(path)
    people = demo_people(7, count=5)
    assert [p.nik for p in people] == [row[0] for row in rows[:5]]
    poor = demo_people(7, count=3, where=lambda p: p.desil <= 3 and p.kode_wilayah[:4] == "3275")
    niks = {row[0] for row in rows}
    assert all(p.desil <= 3 and p.nik in niks for p in poor)


def test_xlsx_sample_has_typed_dates_and_text_niks(tmp_path: Path) -> None:
    """A spreadsheet export: NIK as text (16 digits survive), birth date as a date cell."""
    path = tmp_path / "sample.xlsx"
    write_sample(path, rows=30, seed=8, fmt="xlsx")
    workbook = load_workbook(path, read_only=True)
    try:
        rows = list(workbook.worksheets[0].iter_rows(values_only=True))
    finally:
        workbook.close()
    assert rows[0] == HEADER
    first = demo_people(8, count=1)[0]
    nik, _nama, born, *_ = rows[1]
    assert nik == first.nik
    assert born is not None
    assert not isinstance(born, str)
    assert len(rows) == 31
