"""Dates of birth: the forms Indonesians type, day first, and every way a date can be refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.dates import (
    MONTH_NAMES_EN,
    MONTH_NAMES_ID,
    MONTHS,
    DateReason,
    InvalidDate,
    format_date_en,
    format_date_id,
    parse_date,
)
from testkit.factories import TODAY

INDEPENDENCE = date(1985, 8, 17)


def reason_for(text: str, today: date = TODAY) -> DateReason:
    with pytest.raises(InvalidDate) as error:
        parse_date(text, today=today)
    return error.value.reason


@pytest.mark.parametrize(
    "typed",
    [
        "17-08-1985",
        "17/8/1985",
        "17.08.85",
        "17 8 1985",
        "1985-08-17",
        "17 Agustus 1985",
        "17 agt 1985",
        "17 Agu 1985",
        "17 Ags 1985",
        "17 Aug 1985",
        "17 August 1985",
        "17-Agustus-1985",
        "17 AGUSTUS 1985",
        "17 Agt. 1985",
        "17 Agustus 85",
        "August 17, 1985",
        "17th August 1985",
        "１７－０８－１９８５",  # full-width digits and dash
        "١٧/٠٨/١٩٨٥",  # Arabic-Indic digits
        "۱۷.۰۸.۱۹۸۵",  # Extended Arabic-Indic digits
        "\u200b17 - 08 - 1985\u00a0",
        "17081985",
        "170885",
    ],
)
def test_common_ways_of_typing_a_date_are_read(typed: str) -> None:
    """Numeric, Indonesian and English forms all give 17 August 1985."""
    assert parse_date(typed, today=TODAY) == INDEPENDENCE


@pytest.mark.parametrize(
    ("words", "month"),
    [
        (("Januari", "Jan", "January"), 1),
        (("Februari", "Feb", "Pebruari"), 2),
        (("Maret", "Mar", "March"), 3),
        (("April", "Apr"), 4),
        (("Mei", "May"), 5),
        (("Juni", "Jun", "June"), 6),
        (("Juli", "Jul", "July"), 7),
        (("Agustus", "Agu", "Agt", "Ags", "Aug"), 8),
        (("September", "Sep", "Sept"), 9),
        (("Oktober", "Okt", "Oct"), 10),
        (("November", "Nov", "Nop"), 11),
        (("Desember", "Des", "Dec"), 12),
    ],
)
def test_indonesian_and_english_month_names_and_abbreviations_are_read(
    words: tuple[str, ...], month: int
) -> None:
    """Every listed spelling names its month."""
    for word in words:
        assert date(1990, month, 5) == parse_date(f"5 {word} 1990", today=TODAY)


def test_numeric_dates_are_day_first() -> None:
    """03-04-1990 is 3 April (Indonesian order), never 4 March."""
    assert date(1990, 4, 3) == parse_date("03-04-1990", today=TODAY)


def test_american_month_first_date_is_impossible_not_swapped() -> None:
    """08/17/1985 has month 17: it is refused rather than silently reordered."""
    assert reason_for("08/17/1985") == DateReason.IMPOSSIBLE


def test_two_digit_year_already_reached_is_this_century() -> None:
    """17-08-25 on 2026-11-25 is 2025."""
    assert date(2025, 8, 17) == parse_date("17-08-25", today=TODAY)


def test_two_digit_year_later_this_year_is_last_century() -> None:
    """01-12-26 on 2026-11-25 would be next week, so it is 1926."""
    assert date(1926, 12, 1) == parse_date("01-12-26", today=TODAY)


def test_29_february_2000_is_accepted() -> None:
    """2000 was a leap year."""
    assert date(2000, 2, 29) == parse_date("29-02-2000", today=TODAY)


def test_today_is_not_in_the_future() -> None:
    """The boundary date itself is accepted."""
    assert parse_date("25-11-2026", today=TODAY) == TODAY


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["", "   ", "\u200b"])
def test_empty_date_is_rejected(typed: str) -> None:
    """Nothing to read is EMPTY."""
    assert reason_for(typed) == DateReason.EMPTY


@pytest.mark.parametrize(
    "typed", ["kemarin", "17 Agustusan 1985", "17@08@1985", "17-08-1985!", "17 8 19850", "..."]
)
def test_unreadable_date_is_unrecognised(typed: str) -> None:
    """Unknown words, odd characters and oversized numbers are UNRECOGNISED."""
    assert reason_for(typed) == DateReason.UNRECOGNISED


def test_date_with_two_month_names_is_unrecognised() -> None:
    """ "17 Agustus Mei 1985" names two months."""
    assert reason_for("17 Agustus Mei 1985") == DateReason.UNRECOGNISED


def test_date_with_four_numbers_is_unrecognised() -> None:
    """A fourth number has no place in a date."""
    assert reason_for("17-08-19-85") == DateReason.UNRECOGNISED


def test_31_february_is_impossible() -> None:
    """31-02 does not roll over into March."""
    assert reason_for("31-02-1985") == DateReason.IMPOSSIBLE


def test_29_february_in_a_non_leap_year_is_impossible() -> None:
    """1985 has no 29 February."""
    assert reason_for("29-02-1985") == DateReason.IMPOSSIBLE


def test_29_february_1900_is_impossible() -> None:
    """1900 was not a leap year (divisible by 100, not by 400)."""
    assert reason_for("29-02-1900") == DateReason.IMPOSSIBLE


def test_month_13_is_impossible() -> None:
    """Months run 1-12."""
    assert reason_for("17-13-1985") == DateReason.IMPOSSIBLE


def test_day_00_is_impossible() -> None:
    """Days start at 1."""
    assert reason_for("00-08-1985") == DateReason.IMPOSSIBLE


def test_31_april_is_impossible() -> None:
    """April has 30 days."""
    assert reason_for("31 April 1985") == DateReason.IMPOSSIBLE


def test_date_after_today_is_in_the_future() -> None:
    """A birth next year is refused."""
    assert reason_for("17-08-2027") == DateReason.FUTURE


def test_tomorrow_is_in_the_future() -> None:
    """The day after `today` is refused."""
    assert reason_for("26-11-2026") == DateReason.FUTURE


def test_two_digit_year_with_no_past_reading_is_in_the_future() -> None:
    """On 1950-06-01, 17-08-60 is 1960 (future) or 1860 (before 1900)."""
    assert reason_for("17-08-60", today=date(1950, 6, 1)) == DateReason.FUTURE


@pytest.mark.parametrize("typed", ["17-8", "17 Agustus", "Agustus 1985", "1985", "17"])
def test_date_missing_a_part_is_ambiguous(typed: str) -> None:
    """Only two of day, month and year: which one is missing cannot be guessed."""
    assert reason_for(typed) == DateReason.AMBIGUOUS


@pytest.mark.parametrize("typed", ["17-08-985", "17-8-5", "17 Agustus 198"])
def test_date_with_a_three_or_one_digit_year_is_ambiguous(typed: str) -> None:
    """A year with a digit missing could be several years."""
    assert reason_for(typed) == DateReason.AMBIGUOUS


@pytest.mark.parametrize("typed", ["17-08-1899", "01-01-0001", "17-08-0000"])
def test_date_before_1900_is_too_old(typed: str) -> None:
    """Nobody alive was born before 1900; the year is a typo."""
    assert reason_for(typed) == DateReason.TOO_OLD


def test_every_date_reason_has_its_own_message() -> None:
    """No two reasons share worker-facing text."""
    assert len(DateReason) == len({InvalidDate(reason).message for reason in DateReason})


# --- formatting --------------------------------------------------------------------------------


def test_format_date_id_writes_the_indonesian_month() -> None:
    """17 Agustus 1985, day without a leading zero."""
    assert format_date_id(INDEPENDENCE) == "17 Agustus 1985"
    assert format_date_id(date(2001, 3, 5)) == "5 Maret 2001"


def test_format_date_en_writes_the_english_month() -> None:
    """17 August 1985."""
    assert format_date_en(INDEPENDENCE) == "17 August 1985"


# --- round trips -------------------------------------------------------------------------------

_FULL_WIDTH = str.maketrans("0123456789-/.", "０１２３４５６７８９－／．")
_ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

FORMATS: dict[str, Callable[[date], str]] = {
    "dd-mm-yyyy": lambda d: f"{d.day:02d}-{d.month:02d}-{d.year}",
    "d/m/yyyy": lambda d: f"{d.day}/{d.month}/{d.year}",
    "dd.mm.yy": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year % 100:02d}",
    "d m yyyy": lambda d: f"{d.day} {d.month} {d.year}",
    "iso": lambda d: d.isoformat(),
    "ddmmyyyy": lambda d: f"{d.day:02d}{d.month:02d}{d.year}",
    "indonesian": format_date_id,
    "english": format_date_en,
    "indonesian upper": lambda d: format_date_id(d).upper(),
    "indonesian dashed": lambda d: format_date_id(d).replace(" ", "-"),
    "abbreviated": lambda d: f"{d.day} {MONTH_NAMES_EN[d.month][:3].lower()} {d.year}",
    "english month first": lambda d: f"{MONTH_NAMES_EN[d.month]} {d.day}, {d.year}",
    "full-width": lambda d: f"{d.day:02d}-{d.month:02d}-{d.year}".translate(_FULL_WIDTH),
    "arabic-indic": lambda d: f"{d.day:02d}/{d.month:02d}/{d.year}".translate(_ARABIC),
}


@given(
    st.dates(min_value=date(TODAY.year - 99, 1, 1), max_value=TODAY),
    st.sampled_from(sorted(FORMATS)),
)
def test_a_date_written_in_any_supported_format_reads_back_the_same(
    value: date, format_name: str
) -> None:
    """Format -> parse is the identity, two-digit years included (within the last 99 years)."""
    assert value == parse_date(FORMATS[format_name](value), today=TODAY)


@given(st.dates(min_value=date(1900, 1, 1), max_value=TODAY), st.sampled_from(sorted(MONTHS)))
def test_every_month_word_reads_back_with_any_past_date(value: date, word: str) -> None:
    """Each spelling in the month table is read as its own month (when the day exists)."""
    month = MONTHS[word]
    try:
        expected = value.replace(month=month)
    except ValueError:
        return  # e.g. 31 in a 30-day month: covered by the IMPOSSIBLE tests
    if expected > TODAY:
        return
    assert expected == parse_date(f"{value.day} {word} {value.year}", today=TODAY)


def test_month_name_tables_have_twelve_months() -> None:
    """Index 1-12, with a blank at 0 so that month numbers index directly."""
    assert len(MONTH_NAMES_ID) == len(MONTH_NAMES_EN) == 13
    assert set(range(1, 13)) == set(MONTHS.values())
