"""Reading dates of birth the way Indonesians type them, and writing them back out."""

from __future__ import annotations

import calendar
import re
from datetime import date
from enum import StrEnum

from domain.i18n import N_
from domain.parsing import ParseError, clean_text

EARLIEST_YEAR = 1900


class DateReason(StrEnum):
    """Why a date was refused."""

    EMPTY = "empty"
    UNRECOGNISED = "unrecognised"
    IMPOSSIBLE = "impossible"
    FUTURE = "future"
    AMBIGUOUS = "ambiguous"
    TOO_OLD = "too_old"


_MESSAGES: dict[DateReason, str] = {
    DateReason.EMPTY: N_(
        "Please type your date of birth as day-month-year, for example 17-08-1985."
    ),
    DateReason.UNRECOGNISED: N_(
        "I could not read that date. Please type it as day-month-year, for example 17-08-1985."
    ),
    DateReason.IMPOSSIBLE: N_(
        "That date does not exist. Please check the day and the month, for example 17-08-1985."
    ),
    DateReason.FUTURE: N_(
        "That date is in the future. Please type your date of birth, for example 17-08-1985."
    ),
    DateReason.AMBIGUOUS: N_(
        "Please type the whole date: day, month and a four-digit year, for example 17-08-1985."
    ),
    DateReason.TOO_OLD: N_(
        "That date is before 1900. Please check the year, for example 17-08-1985."
    ),
}


class InvalidDate(ParseError[DateReason]):
    """A date that cannot be accepted; `reason` says why."""

    def __init__(self, reason: DateReason, message: str | None = None) -> None:
        super().__init__(reason, _MESSAGES[reason] if message is None else message)


# Data, not UI text: the spellings people type, matched after casefold().
_MONTH_WORDS: dict[int, tuple[str, ...]] = {
    1: ("januari", "jan", "january"),
    2: ("februari", "feb", "pebruari", "peb", "february"),
    3: ("maret", "mar", "march"),
    4: ("april", "apr"),
    5: ("mei", "may"),
    6: ("juni", "jun", "june"),
    7: ("juli", "jul", "july"),
    8: ("agustus", "agu", "agt", "ags", "aug", "august"),
    9: ("september", "sep", "sept"),
    10: ("oktober", "okt", "oct", "october"),
    11: ("november", "nov", "nop", "nopember"),
    12: ("desember", "des", "dec", "december"),
}
MONTHS: dict[str, int] = {word: month for month, words in _MONTH_WORDS.items() for word in words}

MONTH_NAMES_ID = (
    "",
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
)
# Spelled out rather than calendar.month_name, which follows the process locale.
MONTH_NAMES_EN = (
    "",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# Longest day in each month (index 0 unused).
_MAX_DAY = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# A run of digits, a run of letters, a run of separators, or any other single character.
_TOKENS = re.compile(r"(?P<num>[0-9]+)|(?P<word>[^\W\d_]+)|(?P<sep>[\s\-/.,]+)|(?P<other>.)")
# English ordinal suffixes ("17th August 1985") are dropped when they follow a number.
_ORDINALS = frozenset({"st", "nd", "rd", "th"})


def _tokens(text: str) -> list[str]:
    """Numbers and words in order; raise UNRECOGNISED on any other character."""
    tokens: list[str] = []
    for match in _TOKENS.finditer(text):
        kind = match.lastgroup
        value = match.group()
        if kind == "other":
            raise InvalidDate(DateReason.UNRECOGNISED)
        if kind == "word" and value in _ORDINALS and tokens and tokens[-1].isdigit():
            continue
        if kind != "sep":
            tokens.append(value)
    return tokens


def _split_fields(tokens: list[str]) -> tuple[str, str | int, str]:
    """(day, month, year) as typed, the month already a number when it was a word."""
    words = [token for token in tokens if not token.isdigit()]
    numbers = [token for token in tokens if token.isdigit()]
    if len(words) > 1 or len(numbers) > 3:
        raise InvalidDate(DateReason.UNRECOGNISED)
    if words:
        month = MONTHS.get(words[0])
        if month is None:
            raise InvalidDate(DateReason.UNRECOGNISED)
        if len(numbers) < 2:
            raise InvalidDate(DateReason.AMBIGUOUS)  # "Agustus 1985": the day is missing
        if len(numbers) > 2:
            raise InvalidDate(DateReason.UNRECOGNISED)
        # 17 Agustus 1985, or the English August 17, 1985; never a year before the month.
        if words[0] not in (tokens[0], tokens[1]):
            raise InvalidDate(DateReason.UNRECOGNISED)
        return numbers[0], month, numbers[1]
    if len(numbers) == 3:
        first, second, third = numbers
        if len(first) == 4:  # ISO 1985-08-17, the only year-first form
            return third, second, first
        return first, second, third
    if len(numbers) == 1:
        compact = numbers[0]
        # Day-first without separators, as on forms: 17081985 or 170885.
        if len(compact) in (6, 8):
            return compact[:2], compact[2:4], compact[4:]
        if len(compact) <= 4:
            raise InvalidDate(DateReason.AMBIGUOUS)  # a year or a day alone
        raise InvalidDate(DateReason.UNRECOGNISED)
    raise InvalidDate(DateReason.AMBIGUOUS)  # "17-8": which year?


def _resolve(day_text: str, month_field: str | int, year_text: str, today: date) -> date:
    if len(day_text) > 2 or (isinstance(month_field, str) and len(month_field) > 2):
        raise InvalidDate(DateReason.UNRECOGNISED)
    if len(year_text) > 4:
        raise InvalidDate(DateReason.UNRECOGNISED)
    if len(year_text) in (1, 3):
        # "17-08-985" or "17-8-5": a digit is missing and guessing which one is unsafe.
        raise InvalidDate(DateReason.AMBIGUOUS)
    day, month, year = int(day_text), int(month_field), int(year_text)
    # 29 February passes here and is settled once the year is known.
    if not (1 <= month <= 12 and 1 <= day <= _MAX_DAY[month]):
        raise InvalidDate(DateReason.IMPOSSIBLE)
    if len(year_text) == 2:
        # The most recent century that does not put the date in the future (as for NIKs);
        # tuples rather than dates so that 29-02-00 can pick its century first.
        year += today.year - today.year % 100
        if (year, month, day) > (today.year, today.month, today.day):
            year -= 100
        if year < EARLIEST_YEAR:
            raise InvalidDate(DateReason.FUTURE)
    if month == 2 and day == 29 and not calendar.isleap(year):
        raise InvalidDate(DateReason.IMPOSSIBLE)
    if year < EARLIEST_YEAR:
        raise InvalidDate(DateReason.TOO_OLD)
    result = date(year, month, day)
    if result > today:
        raise InvalidDate(DateReason.FUTURE)
    return result


def parse_date(text: str, *, today: date) -> date:
    """Read a date typed day-first (or ISO year-first); raise `InvalidDate` with a reason."""
    cleaned = clean_text(text).casefold()
    if not cleaned:
        raise InvalidDate(DateReason.EMPTY)
    tokens = _tokens(cleaned)
    if not tokens:
        raise InvalidDate(DateReason.UNRECOGNISED)
    day, month, year = _split_fields(tokens)
    return _resolve(day, month, year, today)


def format_date_id(value: date) -> str:
    """A date in Indonesian: `17 Agustus 1985`."""
    return f"{value.day} {MONTH_NAMES_ID[value.month]} {value.year}"


def format_date_en(value: date) -> str:
    """A date in English: `17 August 1985`."""
    return f"{value.day} {MONTH_NAMES_EN[value.month]} {value.year}"
