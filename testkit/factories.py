"""Synthetic people with valid NIKs (no real data), and Hypothesis strategies for their parts."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from hypothesis import strategies as st

from domain.eligibility import Claim, DtsenPerson
from domain.nik import Gender, parse_nik
from domain.regions import load_regions

# The fixed "today" of the domain tests; any date works, this one is in the programme's year.
TODAY = date(2026, 11, 25)
KOTA_BEKASI = "3275"

# Made-up combinations of common Indonesian given names and family names.
MALE_NAMES = (
    "Budi", "Agus", "Andi", "Dedi", "Eko", "Hendra", "Joko", "Rudi", "Slamet", "Wahyu",
    "Yusuf", "Arif", "Bambang", "Dimas", "Fajar", "Hadi", "Iwan", "Rizki", "Teguh", "Yanto",
)  # fmt: skip
FEMALE_NAMES = (
    "Siti", "Dewi", "Sri", "Ani", "Lestari", "Rina", "Wati", "Yuni", "Fitri", "Nur",
    "Ratna", "Indah", "Sari", "Dian", "Putri", "Wulan", "Ayu", "Eka", "Maya", "Tuti",
)  # fmt: skip
FAMILY_NAMES = (
    "Santoso", "Wijaya", "Saputra", "Hidayat", "Kurniawan", "Setiawan", "Pratama", "Susanto",
    "Nugroho", "Rahayu", "Handayani", "Purnama", "Maulana", "Hasanah", "Permata", "Suryani",
    "Wibowo", "Gunawan", "Firmansyah", "Ramadhan",
)  # fmt: skip
# Telkomsel, Indosat, XL, AXIS and Smartfren prefixes (after the trunk 0).
MOBILE_PREFIXES = (
    "811",
    "812",
    "813",
    "821",
    "822",
    "852",
    "857",
    "858",
    "817",
    "877",
    "838",
    "881",
)


def make_nik(
    *,
    district: str = "327501",
    birth_date: date = date(1985, 8, 17),
    serial: int = 1,
    gender: Gender = "L",
) -> str:
    """The 16 digits of a NIK from `district` (6 digits) for this birth date, serial and gender."""
    if len(district) != 6 or not district.isdigit():
        raise ValueError(f"district must be 6 digits: {district!r}")
    if not 1 <= serial <= 9999:
        raise ValueError(f"serial must be 1-9999: {serial}")
    day = birth_date.day + (40 if gender == "P" else 0)
    return f"{district}{day:02d}{birth_date.month:02d}{birth_date.year % 100:02d}{serial:04d}"


@dataclass(frozen=True)
class Person:
    """A synthetic worker as both the bot (claim) and DTSEN (row) would see them."""

    nik: str
    name: str
    birth_date: date
    gender: Gender
    kode_wilayah: str  # the 10-digit kelurahan of domicile
    desil: int
    phone: str  # E.164

    def claim(self, *, today: date = TODAY, **changes: Any) -> Claim:
        """What the worker types: by default exactly what DTSEN holds."""
        claim = Claim(
            nik=parse_nik(self.nik, today=today), name=self.name, birth_date=self.birth_date
        )
        return replace(claim, **changes)

    def dtsen(self, **changes: Any) -> DtsenPerson:
        """Their DTSEN row, upper-case as extracts usually are."""
        row = DtsenPerson(
            nama=self.name.upper(),
            tanggal_lahir=self.birth_date,
            jenis_kelamin=self.gender,
            kode_wilayah=self.kode_wilayah,
            desil=self.desil,
        )
        return replace(row, **changes)


def make_person(seed: int = 0, **overrides: Any) -> Person:
    """A deterministic synthetic person of Kota Bekasi, aged 20-60 in 2026; override any field.

    `district` (6 digits) and `serial` shape the NIK; the same seed draws the same values whatever
    is overridden, so two people differing in one field can be made from one seed.
    """
    rng = random.Random(seed)
    regions = load_regions()
    gender: Gender = overrides.get("gender", rng.choice(("L", "P")))
    given = rng.choice(MALE_NAMES if gender == "L" else FEMALE_NAMES)
    family = rng.sample(FAMILY_NAMES, 2)
    name = " ".join([given, *family[: 1 + (rng.random() < 0.3)]])
    birth_date: date = overrides.get(
        "birth_date", date(1966, 1, 1) + timedelta(days=rng.randrange(40 * 365))
    )
    kecamatan = rng.choice(regions.kecamatan_of(KOTA_BEKASI)).code
    village = rng.choice(regions.kelurahan_of(kecamatan)).code
    district = overrides.pop("district", kecamatan)
    serial = overrides.pop("serial", rng.randint(1, 9999))
    person = Person(
        nik=make_nik(district=district, birth_date=birth_date, serial=serial, gender=gender),
        name=name,
        birth_date=birth_date,
        gender=gender,
        kode_wilayah=village,
        desil=rng.randint(1, 5),
        phone=f"+62{rng.choice(MOBILE_PREFIXES)}{rng.randrange(10**8):08d}",
    )
    return replace(person, **overrides)


def make_people(count: int, seed: int = 0) -> list[Person]:
    """`count` synthetic people with distinct NIKs, the same list for the same seed."""
    people: list[Person] = []
    seen: set[str] = set()
    rng = random.Random(seed)
    while len(people) < count:
        person = make_person(rng.randrange(2**32))
        if person.nik not in seen:
            seen.add(person.nik)
            people.append(person)
    return people


# --- Hypothesis strategies ---------------------------------------------------------------------


@st.composite
def nik_parts(draw: st.DrawFn, today: date = TODAY) -> tuple[str, date, int, Gender]:
    """(district, birth date, serial, gender) that make a valid NIK read back unchanged on `today`.

    Birth dates lie within the last 99 years, where the century rule is unambiguous; the district
    is any six digits under a real province (NIK prefixes keep codes that no longer exist).
    """
    province = draw(st.sampled_from(sorted(load_regions().province_codes)))
    rest = draw(st.integers(0, 9999))
    birth = draw(st.dates(min_value=date(today.year - 99, 1, 1), max_value=today))
    serial = draw(st.integers(1, 9999))
    gender: Gender = draw(st.sampled_from(("L", "P")))
    return f"{province}{rest:04d}", birth, serial, gender


@st.composite
def valid_niks(draw: st.DrawFn, today: date = TODAY) -> str:
    """The 16 digits of a valid NIK."""
    district, birth, serial, gender = draw(nik_parts(today))
    return make_nik(district=district, birth_date=birth, serial=serial, gender=gender)
