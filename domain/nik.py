"""NIK (Nomor Induk Kependudukan): cleaning, validation and decoding of the 16-digit KTP number.

Layout `PP KK CC DDMMYY SSSS`: province, regency, kecamatan of first registration, birth date
(day + 40 for women), serial. The century is not encoded.
"""

from __future__ import annotations

import calendar
import functools
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Literal

from domain.i18n import N_
from domain.parsing import ParseError, clean_text
from domain.regions import Regions, load_regions

NIK_LENGTH = 16
# Births before this year are not plausible for anyone alive; see `_decode_birth_date`.
EARLIEST_BIRTH_YEAR = 1900

Gender = Literal["L", "P"]


class NikReason(StrEnum):
    """Why a NIK was refused."""

    EMPTY = "empty"
    NOT_DIGITS = "not_digits"
    WRONG_LENGTH = "wrong_length"
    UNKNOWN_PROVINCE = "unknown_province"
    BAD_DATE = "bad_date"
    FUTURE_BIRTH = "future_birth"
    ZERO_SERIAL = "zero_serial"


_MESSAGES: dict[NikReason, str] = {
    NikReason.EMPTY: N_("Please type your NIK: the 16-digit number on your KTP."),
    NikReason.NOT_DIGITS: N_(
        "A NIK contains only digits. Please type the 16 digits printed on your KTP."
    ),
    NikReason.WRONG_LENGTH: N_(
        "A NIK has exactly 16 digits. Please check the number on your KTP and type it again."
    ),
    NikReason.UNKNOWN_PROVINCE: N_(
        "The first two digits of this NIK are not a province code. "
        "Please check the number on your KTP and type it again."
    ),
    NikReason.BAD_DATE: N_(
        "Digits 7 to 12 of a NIK are a date of birth, and here they are not a real date. "
        "Please check the number on your KTP and type it again."
    ),
    NikReason.FUTURE_BIRTH: N_(
        "The date of birth inside this NIK is in the future. "
        "Please check the number on your KTP and type it again."
    ),
    NikReason.ZERO_SERIAL: N_(
        "The last four digits of a NIK cannot be 0000. "
        "Please check the number on your KTP and type it again."
    ),
}


class InvalidNik(ParseError[NikReason]):
    """A NIK that cannot be accepted; `reason` says why."""

    def __init__(self, reason: NikReason, message: str | None = None) -> None:
        super().__init__(reason, _MESSAGES[reason] if message is None else message)


@dataclass(frozen=True, slots=True)
class Nik:
    """A valid NIK and what it encodes. `repr` shows only the masked form (logs are not PII)."""

    digits: str
    province_code: str
    regency_code: str
    district_code: str
    birth_date: date
    gender: Gender
    serial: str

    @property
    def masked(self) -> str:
        """Region and serial kept, birth date hidden: `3275********0001`."""
        return f"{self.digits[:4]}{'*' * 8}{self.digits[12:]}"

    def __repr__(self) -> str:
        return f"Nik(masked={self.masked!r})"


# Separators people type or paste inside a NIK (after clean_text() has made dashes ASCII).
_DROP_SEPARATORS = str.maketrans("", "", " .-")


def clean_nik_digits(text: str) -> str:
    """Normalise digits to ASCII and drop separators and invisible characters; no validation."""
    cleaned = clean_text(text)
    # Any other whitespace (tabs, newlines from a paste) is a separator too.
    return "".join(cleaned.split()).translate(_DROP_SEPARATORS)


# Longest day in each month; 29 February is settled once the year is known.
_MAX_DAY = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _decode_birth_date(dd: int, mm: int, yy: int, today: date) -> date | NikReason:
    """The birth date in a NIK, or why there is none. Women's days are 41-71."""
    day = dd - 40 if dd > 40 else dd
    # dd 00, 32-40 and above 71 all land outside 1-31 here.
    if not (1 <= mm <= 12 and 1 <= day <= _MAX_DAY[mm]):
        return NikReason.BAD_DATE
    # The most recent century that does not put the birth after `today`. Comparing tuples rather
    # than dates lets 29-02-00 pick its century before the leap-year check.
    year = today.year - today.year % 100 + yy
    if (year, mm, day) > (today.year, today.month, today.day):
        year -= 100
    if year < EARLIEST_BIRTH_YEAR:
        # Every reading is after `today` or before 1900: only reachable for a `today` early in
        # a century (e.g. 1950 with YY 60); kept so the check is total.
        return NikReason.FUTURE_BIRTH
    if mm == 2 and day == 29 and not calendar.isleap(year):
        return NikReason.BAD_DATE
    return date(year, mm, day)


def _validate(digits: str, today: date, provinces: frozenset[str]) -> date | NikReason:
    """The birth date of a cleaned NIK, or the first reason (in reporting order) it is invalid."""
    if not digits:
        return NikReason.EMPTY
    if not (digits.isascii() and digits.isdigit()):
        return NikReason.NOT_DIGITS
    if len(digits) != NIK_LENGTH:
        return NikReason.WRONG_LENGTH
    if digits[:2] not in provinces:
        return NikReason.UNKNOWN_PROVINCE
    birth = _decode_birth_date(int(digits[6:8]), int(digits[8:10]), int(digits[10:12]), today)
    if isinstance(birth, date) and digits[12:] == "0000":
        return NikReason.ZERO_SERIAL
    return birth


@functools.cache
def _default_provinces() -> frozenset[str]:
    return load_regions().province_codes


@functools.lru_cache(maxsize=4)
def _valid_birth_fields(today: date) -> frozenset[str]:
    """Every DDMMYY that decodes to a birth date on `today` (about 73k strings, ~0.1 s)."""
    valid = []
    for yy in range(100):
        for mm in range(1, 13):
            for day in range(1, _MAX_DAY[mm] + 1):
                if isinstance(_decode_birth_date(day, mm, yy, today), date):
                    valid.append(f"{day:02d}{mm:02d}{yy:02d}")
                    valid.append(f"{day + 40:02d}{mm:02d}{yy:02d}")
    return frozenset(valid)


def nik_fast_sets(today: date) -> tuple[frozenset[str], frozenset[str]]:
    """The sets behind `check_nik`'s fast path: province codes and valid DDMMYY birth fields.

    A 16-digit ASCII NIK whose `[:2]` and `[6:12]` are in them and whose `[12:]` is not "0000"
    is valid; a bulk import inlines this test and calls `check_nik` only for the rest.
    """
    return _default_provinces(), _valid_birth_fields(today)


def check_nik(digits16: str, today: date) -> NikReason | None:
    """Why an already-clean 16-digit string is not a valid NIK, or None; cheap, for imports."""
    # The common (valid) case costs three slices and three set lookups; the table of valid
    # birth fields is built once per `today`. Anything odd takes the slow path for its reason.
    if (
        len(digits16) == NIK_LENGTH
        and digits16.isdigit()
        and digits16.isascii()
        and digits16[:2] in _default_provinces()
        and digits16[6:12] in _valid_birth_fields(today)
        and digits16[12:] != "0000"
    ):
        return None
    outcome = _validate(digits16, today, _default_provinces())
    return outcome if isinstance(outcome, NikReason) else None


def parse_nik(text: str, *, today: date, regions: Regions | None = None) -> Nik:
    """Read a NIK as a worker typed it; raise `InvalidNik` with a reason if it is not valid."""
    digits = clean_nik_digits(text)
    provinces = _default_provinces() if regions is None else regions.province_codes
    # Only the province is checked against the region list: the rest of the prefix is the place
    # of *first* registration, and regencies split since then keep their old codes in NIKs.
    birth = _validate(digits, today, provinces)
    if isinstance(birth, NikReason):
        raise InvalidNik(birth)
    return Nik(
        digits=digits,
        province_code=digits[:2],
        regency_code=digits[:4],
        district_code=digits[:6],
        birth_date=birth,
        gender="P" if int(digits[6:8]) > 40 else "L",
        serial=digits[12:],
    )
