"""Cover month by month: reading "paid through" months as BPJS writes them, and when a BPU
member's cover lapses (three months unpaid) and when admins are warned (two weeks before)."""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timedelta

from domain.dates import MONTH_NAMES_EN, MONTH_NAMES_ID, MONTHS

# BPJS deactivates a BPU member three months behind on premiums (domain.md, The program).
UNPAID_MONTHS_TO_LAPSE = 3
# Admins hear of a member this long before the lapse, while paying the arrears still saves it.
WARNING_BEFORE_LAPSE = timedelta(days=14)
# Years read from a two-digit year ("Mar-26") are 20yy.
_CENTURY = 2000

_NUMERIC_MONTH = (
    # 2026-03, 2026/3, 2026.03
    re.compile(r"(?P<year>\d{4})[-/.](?P<month>\d{1,2})"),
    # 03/2026, 3-2026, 03.2026
    re.compile(r"(?P<month>\d{1,2})[-/.\s](?P<year>\d{4})"),
    # 202603
    re.compile(r"(?P<year>\d{4})(?P<month>\d{2})"),
)
# A whole date: the month it falls in counts.
_ISO_DATE = re.compile(r"(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})(?:[ T][0-9:.]*)?")
_DMY_DATE = re.compile(r"(?P<day>\d{1,2})[-/.](?P<month>\d{1,2})[-/.](?P<year>\d{4})")
# Maret 2026, Mar-26, Mar 2026, March 2026, 31 Maret 2026
_WORD_MONTH = re.compile(
    r"(?:(?P<day>\d{1,2})[\s\-/.]+)?(?P<word>[^\W\d_]+)[\s\-/.,']+(?P<year>\d{4}|\d{2})"
)


def month_end(year: int, month: int) -> date:
    """The last day of a month."""
    return date(year, month, calendar.monthrange(year, month)[1])


def _checked(year: int, month: int) -> date | None:
    if not 1 <= month <= 12 or not 1900 <= year <= 9999:
        return None
    return month_end(year, month)


def parse_paid_through(value: object) -> date | None:
    """The last day of the month premiums are paid through, from a spreadsheet cell: "2026-03",
    "03/2026", "Maret 2026", "Mar-26", "202603" or a date (its month counts); None when
    unreadable."""
    if isinstance(value, datetime):
        return month_end(value.year, value.month)
    if isinstance(value, date):
        return month_end(value.year, value.month)
    text = " ".join(str(value or "").split()).casefold()
    if not text:
        return None
    for pattern in (_ISO_DATE, _DMY_DATE):
        match = pattern.fullmatch(text)
        if match:
            year, month, day = (int(match.group(key)) for key in ("year", "month", "day"))
            end = _checked(year, month)
            return end if end is not None and 1 <= day <= end.day else None
    for pattern in _NUMERIC_MONTH:
        match = pattern.fullmatch(text)
        if match:
            return _checked(int(match.group("year")), int(match.group("month")))
    match = _WORD_MONTH.fullmatch(text)
    if match:
        named = MONTHS.get(match.group("word"))
        if named is None:
            return None
        year_text = match.group("year")
        year = int(year_text) + (_CENTURY if len(year_text) == 2 else 0)
        return _checked(year, named)
    return None


def is_future_month(paid_through: date, today: date) -> bool:
    """Whether a paid-through month lies after the current one (a typo, or a column mix-up:
    BPJS reports premiums received, which never run ahead of the calendar month)."""
    return (paid_through.year, paid_through.month) > (today.year, today.month)


def lapse_day(paid_through: date) -> date:
    """The first day on which three months after `paid_through` are unpaid: cover has lapsed."""
    month_index = paid_through.year * 12 + paid_through.month - 1 + UNPAID_MONTHS_TO_LAPSE
    last_unpaid = month_end(month_index // 12, month_index % 12 + 1)
    return last_unpaid + timedelta(days=1)


def has_lapsed(paid_through: date, today: date) -> bool:
    """Whether three unpaid months have passed since `paid_through`."""
    return today >= lapse_day(paid_through)


def warning_due(paid_through: date, today: date) -> bool:
    """Whether admins should be warned now: within two weeks of the lapse, not yet past it."""
    lapse = lapse_day(paid_through)
    return lapse - WARNING_BEFORE_LAPSE <= today < lapse


def format_month(value: date, language: str) -> str:
    """A month and year in the reader's language: "Maret 2026", "March 2026"."""
    names = MONTH_NAMES_EN if language == "en" else MONTH_NAMES_ID
    return f"{names[value.month]} {value.year}"
