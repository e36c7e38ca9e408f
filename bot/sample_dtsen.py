"""Synthetic DTSEN extracts (no real person in them) for demos, tests and the import benchmark.

Rows come in families (one KK: same desil, domicile, address and family card number), names are
made-up combinations of common Indonesian names, and NIKs are valid: the prefix is the kecamatan
of first registration, which for a share of people lies outside the city they now live in.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import random
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal, TextIO

from domain.regions import load_regions

HEADER = (
    "nik",
    "nama",
    "tanggal_lahir",
    "jenis_kelamin",
    "kode_wilayah",
    "desil",
    "no_kk",
    "alamat",
)

FIRST_BIRTH = date(1955, 1, 1)
LAST_BIRTH = date(2008, 12, 31)
# Bad rows are never placed among the first rows, so `demo_people` stay importable.
CLEAN_HEAD_ROWS = 20

# Common given names, Javanese, Sundanese, Betawi and Islamic, as found in any kelurahan list.
MALE_GIVEN = (
    "AHMAD", "AGUS", "ANDI", "ASEP", "BAMBANG", "BUDI", "DEDI", "DEDE", "DIMAS", "EKO",
    "FAJAR", "HADI", "HENDRA", "IWAN", "JOKO", "MUHAMMAD", "NANANG", "RIZKI", "RUDI", "SLAMET",
    "SUTRISNO", "TEGUH", "UJANG", "WAHYU", "YANTO", "YUSUF", "SUPRIYADI", "ABDUL", "ARIF",
    "ROHMAT",
)  # fmt: skip
FEMALE_GIVEN = (
    "SITI", "DEWI", "SRI", "ANI", "LESTARI", "RINA", "WATI", "YUNI", "FITRI", "NUR",
    "RATNA", "INDAH", "SARI", "DIAN", "PUTRI", "WULAN", "AYU", "EKA", "MAYA", "TUTI",
    "EUIS", "NENENG", "SUPARMI", "KHOIRUNNISA", "NURHAYATI", "AMINAH", "MARYAM", "ROSITA", "IDA",
    "YULIANI",
)  # fmt: skip
# Second names: family-style names and the common second given names.
SECOND_NAMES = (
    "SANTOSO", "WIJAYA", "SAPUTRA", "HIDAYAT", "KURNIAWAN", "SETIAWAN", "PRATAMA", "SUSANTO",
    "NUGROHO", "RAHAYU", "HANDAYANI", "PURNAMA", "MAULANA", "HASANAH", "PERMATA", "SURYANI",
    "WIBOWO", "GUNAWAN", "FIRMANSYAH", "RAMADHAN", "AMINAH", "FAUZI", "HIDAYATULLAH", "SUNARTO",
    "SETIADI", "LESTARI", "KARTIKA", "APRILIA", "NURJANAH", "SAFITRI",
)  # fmt: skip
STREETS = (
    "MELATI", "MAWAR", "KENANGA", "CEMPAKA", "ANGGREK", "NUSANTARA", "PERJUANGAN", "KALIMALANG",
    "JATIWARINGIN", "CUT MUTIAH", "SERSAN AMAN", "PRAMUKA", "MERDEKA", "RAYA NAROGONG",
    "H. MAWI", "SETU", "KAYURINGIN", "BINTARA", "CIKUNIR", "PEKAYON",
)  # fmt: skip
# Weight of desil 1..10 among families in an extract: poorer families are over-represented.
DESIL_WEIGHTS = (16, 14, 13, 12, 10, 9, 8, 7, 6, 5)
FAMILY_SIZES = (1, 2, 3, 4, 5, 6)
FAMILY_SIZE_WEIGHTS = (12, 18, 25, 25, 13, 7)
# Where people registered elsewhere first got their NIK: Kabupaten Bekasi, Jakarta, and the
# regencies most migrants to Bekasi come from (Karawang, Bogor, Brebes, Tegal, Kebumen).
OUTSIDE_REGENCIES = ("3216", "3171", "3172", "3173", "3174", "3175", "3215", "3201", "3329",
                     "3328", "3305")  # fmt: skip
# A few families in a city's extract live just across the border (Kabupaten Bekasi).
OUTSIDE_DOMICILE_SHARE = 0.01
OUTSIDE_DOMICILE_REGENCY = "3216"

BadKind = Literal["bad_nik", "bad_date", "bad_desil", "duplicate_nik", "bad_kode_wilayah"]
BAD_KINDS: tuple[BadKind, ...] = (
    "bad_nik",
    "bad_date",
    "bad_desil",
    "duplicate_nik",
    "bad_kode_wilayah",
)

# One row of the file: nik, nama, tanggal_lahir (dd-mm-yyyy), jenis_kelamin, kode_wilayah, desil,
# no_kk, alamat.
Row = tuple[str, str, str, str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class SamplePerson:
    """One synthetic person as a sample file holds them (NIK in full: the data is made up)."""

    nik: str
    nama: str
    tanggal_lahir: date
    jenis_kelamin: str
    kode_wilayah: str
    desil: int
    no_kk: str
    alamat: str


class _Generator:
    """The deterministic stream of valid rows for one seed; families, unique NIKs."""

    def __init__(
        self, seed: int, region_code: str, outside_share: float, serial_base: int = 0
    ) -> None:
        regions = load_regions()
        self.serial_base = serial_base
        self.rng = random.Random(seed)
        self.outside_share = outside_share
        home_kecamatan = [k.code for k in regions.kecamatan_of(region_code)]
        self.home_villages = [v.code for k in home_kecamatan for v in regions.kelurahan_of(k)]
        if not self.home_villages:
            raise ValueError(f"no kelurahan known for regency {region_code!r} (4 digits)")
        self.border_villages = [
            v.code
            for k in regions.kecamatan_of(OUTSIDE_DOMICILE_REGENCY)
            for v in regions.kelurahan_of(k.code)
        ]
        outside = [
            k.code
            for regency in OUTSIDE_REGENCIES
            if regency != region_code
            for k in regions.kecamatan_of(regency)
        ]
        # NIK prefixes: every kecamatan that can appear, home ones first.
        self.prefixes = home_kecamatan + outside
        self.home_count = len(home_kecamatan)
        self.prefix_index = {code: i for i, code in enumerate(self.prefixes)}
        self.days = (LAST_BIRTH - FIRST_BIRTH).days + 1
        # Birth dates as text, precomputed once: (dd-mm-yyyy, DDMMYY for men, DDMMYY for women).
        self.day_text: list[tuple[str, str, str]] = []
        for offset in range(self.days):
            d = FIRST_BIRTH + timedelta(days=offset)
            yy = d.year % 100
            self.day_text.append(
                (
                    f"{d.day:02d}-{d.month:02d}-{d.year}",
                    f"{d.day:02d}{d.month:02d}{yy:02d}",
                    f"{d.day + 40:02d}{d.month:02d}{yy:02d}",
                )
            )
        # People registered so far per (prefix, birth date, gender): NIK serials stay unique
        # without remembering any NIK (2 bytes per slot, ~8 MB for all of Bekasi's prefixes).
        self.serials = array("H", bytes(2 * len(self.prefixes) * self.days * 2))
        self.families = 0

    def _serial(self, prefix: str, day: int, female: bool) -> int:
        slot = (self.prefix_index[prefix] * self.days + day) * 2 + female
        count = self.serials[slot] + 1
        self.serials[slot] = count
        # Real serials do not all start at 0001; a fixed offset per slot keeps them unique.
        return self.serial_base + (slot * 2654435761 >> 7) % 900 + count

    def _name(self, female: bool, born_year: int) -> str:
        random_ = self.rng.random
        given = FEMALE_GIVEN if female else MALE_GIVEN
        name = given[int(random_() * len(given))]
        roll = random_()
        if roll >= 0.35:  # else a one-word name, common in Java
            name += " " + SECOND_NAMES[int(random_() * len(SECOND_NAMES))]
            if roll >= 0.9:
                name += " " + SECOND_NAMES[int(random_() * len(SECOND_NAMES))]
        # Hajj titles on older people, as they appear on KTPs and in extracts.
        if born_year < 1975 and random_() < 0.15:
            name = ("HJ. " if female else "H. ") + name
        return name

    def families_rows(self) -> Iterator[Row]:
        """Valid rows forever, a family at a time."""
        # int(random() * n) rather than randrange/choice/choices: this loop makes 2,6 M rows for
        # the benchmark, and those are 3-10 times slower per call.
        random_ = self.rng.random
        days = self.days
        adult = days - 18 * 365  # the last birth day of someone 18 in 2008
        parent = days - 23 * 365  # heads of families with children: born by 1985
        home, border, prefixes = self.home_villages, self.border_villages, self.prefixes
        desil_cumulative = list(itertools.accumulate(DESIL_WEIGHTS))
        size_cumulative = list(itertools.accumulate(FAMILY_SIZE_WEIGHTS))
        while True:
            self.families += 1
            if border and random_() < OUTSIDE_DOMICILE_SHARE:
                village = border[int(random_() * len(border))]
            else:
                village = home[int(random_() * len(home))]
            roll = random_()
            if roll < self.outside_share:  # registered elsewhere first, moved here since
                prefix = prefixes[
                    self.home_count + int(random_() * (len(prefixes) - self.home_count))
                ]
            elif roll < self.outside_share + 0.15 or village[:6] not in self.prefix_index:
                prefix = prefixes[int(random_() * self.home_count)]  # moved within the city
            else:
                prefix = village[:6]
            desil = str(bisect.bisect(desil_cumulative, random_() * desil_cumulative[-1]) + 1)
            size = bisect.bisect(size_cumulative, random_() * size_cumulative[-1]) + 1
            street = STREETS[int(random_() * len(STREETS))]
            number, rt, rw = (
                int(random_() * 150) + 1,
                int(random_() * 15) + 1,
                int(random_() * 12) + 1,
            )
            # One address in five has a comma, so a CSV export quotes it.
            separator = ", " if random_() < 0.2 else " "
            alamat = f"JL. {street} NO. {number}{separator}RT {rt:03d} RW {rw:03d}"
            issued = self.day_text[int(random_() * days)][1]
            no_kk = f"{village[:6]}{issued}{self.families % 9999 + 1:04d}"
            # The head of the family, a spouse of about the same age, children 18+ years younger.
            head_day = int(random_() * (parent if size > 2 else adult))
            head_female = random_() < 0.15
            members = [(head_day, head_female)]
            if size > 1:
                spouse_day = head_day + int(random_() * 3600) - 1800
                members.append((min(max(spouse_day, 0), adult - 1), not head_female))
            first_child = head_day + 18 * 365
            for _ in range(size - 2):
                child_day = first_child + int(random_() * (days - first_child))
                members.append((child_day, random_() < 0.5))
            for day, female in members:
                text = self.day_text[day]
                serial = self._serial(prefix, day, female)
                nik = f"{prefix}{text[2] if female else text[1]}{serial:04d}"
                name = self._name(female, 1955 + day // 365)
                yield (nik, name, text[0], "P" if female else "L", village, desil, no_kk, alamat)


def _bad_row(kind: BadKind, good: Row, earlier: Row | None, rng: random.Random) -> Row:
    """A row that the import must skip, derived from a valid one."""
    nik, nama, born, gender, village, desil, no_kk, alamat = good
    if kind == "duplicate_nik" and earlier is not None:
        # The same person listed twice, as merged registers do; the first listing wins.
        return earlier
    if kind == "bad_date":
        return (nik, nama, rng.choice(("30-02-1990", "31-04-1985", "00-01-1970")), gender,
                village, desil, no_kk, alamat)  # fmt: skip
    if kind == "bad_desil":
        return (nik, nama, born, gender, village, "11", no_kk, alamat)
    if kind == "bad_kode_wilayah":
        return (nik, nama, born, gender, village[:6], desil, no_kk, alamat)
    broken = rng.choice((nik[:12] + "0000", nik[:8] + "13" + nik[10:], nik[:15], nik[:15] + "X"))
    return (broken, nama, born, gender, village, desil, no_kk, alamat)


def _rows(
    *, rows: int, seed: int, bad_rows: int, region_code: str, outside_share: float
) -> Iterator[Row]:
    """`rows` rows in file order: valid people, with `bad_rows` bad ones spread among them."""
    if not 0 <= bad_rows <= rows:
        raise ValueError("bad_rows must be between 0 and rows")
    good = _Generator(seed, region_code, outside_share).families_rows()
    # Bad rows are inserted between valid ones and drawn from their own generators, so the valid
    # people (and `demo_people`) do not depend on `bad_rows`.
    bad_rng = random.Random(f"bad-{seed}")
    # Serials from 5000 up: a bad row never shares its NIK with a valid row by accident.
    spare = (
        _Generator(seed + 1, region_code, outside_share, serial_base=5000).families_rows()
        if bad_rows
        else good
    )
    first = CLEAN_HEAD_ROWS if rows - CLEAN_HEAD_ROWS >= bad_rows else 0
    bad_at = set(bad_rng.sample(range(first, rows), bad_rows))
    earlier: Row | None = None
    bad_count = 0
    for line in range(rows):
        if line in bad_at:
            kind = BAD_KINDS[bad_count % len(BAD_KINDS)]
            bad_count += 1
            yield _bad_row(kind, next(spare), earlier, bad_rng)
        else:
            earlier = next(good)
            yield earlier


def write_sample(
    path: Path,
    *,
    rows: int,
    seed: int,
    bad_rows: int = 0,
    fmt: Literal["csv", "xlsx"] = "csv",
    region_code: str = "3275",
    outside_share: float = 0.05,
    delimiter: str = ",",
    bom: bool = False,
) -> None:
    """Write a synthetic extract with `rows` data rows (`bad_rows` of them invalid) to `path`."""
    stream = _rows(
        rows=rows,
        seed=seed,
        bad_rows=bad_rows,
        region_code=region_code,
        outside_share=outside_share,
    )
    if fmt == "xlsx":
        _write_xlsx(path, stream)
        return
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        _write_csv(handle, stream, delimiter)


def _write_csv(handle: TextIO, stream: Iterator[Row], delimiter: str) -> None:
    writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
    writer.writerow(HEADER)
    batch: list[Row] = []
    for row in stream:
        batch.append(row)
        if len(batch) == 10_000:
            writer.writerows(batch)
            batch.clear()
    writer.writerows(batch)


def _write_xlsx(path: Path, stream: Iterator[Row]) -> None:
    from openpyxl import Workbook

    # Write-only mode streams rows to disk instead of building the sheet in memory.
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("DTSEN")
    sheet.append(list(HEADER))
    for nik, nama, born, gender, village, desil, no_kk, alamat in stream:
        # Dates and desil as typed cells, NIKs as text: what a spreadsheet export looks like.
        try:
            birth: datetime | str = datetime.strptime(born, "%d-%m-%Y")
        except ValueError:
            birth = born  # the impossible dates of bad rows stay text
        sheet.append([nik, nama, birth, gender, village, int(desil), no_kk, alamat])
    workbook.save(path)


def demo_people(
    seed: int,
    *,
    count: int = 5,
    region_code: str = "3275",
    outside_share: float = 0.05,
    where: Callable[[SamplePerson], bool] | None = None,
) -> list[SamplePerson]:
    """The first `count` people (matching `where`) of the sample written with this seed."""
    people: list[SamplePerson] = []
    generator = _Generator(seed, region_code, outside_share).families_rows()
    # Scanning is bounded so an impossible `where` fails instead of looping forever.
    for _ in range(1_000_000):
        nik, nama, born, gender, village, desil, no_kk, alamat = next(generator)
        person = SamplePerson(
            nik=nik,
            nama=nama,
            tanggal_lahir=datetime.strptime(born, "%d-%m-%Y").date(),
            jenis_kelamin=gender,
            kode_wilayah=village,
            desil=int(desil),
            no_kk=no_kk,
            alamat=alamat,
        )
        if where is None or where(person):
            people.append(person)
            if len(people) == count:
                return people
    raise ValueError("not enough sample people match `where`")
