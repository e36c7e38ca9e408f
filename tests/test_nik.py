"""NIK parsing: what a worker may type, what is refused and why, and what the digits encode."""

from __future__ import annotations

import pickle
from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from domain.nik import Gender, InvalidNik, Nik, NikReason, check_nik, clean_nik_digits, parse_nik
from domain.parsing import ParseError
from domain.regions import load_regions
from testkit.factories import TODAY, make_nik, nik_parts, valid_niks

# 17 August 1985, man, Bekasi Timur, serial 0001.
VALID = "3275011708850001"


def reason_for(text: str, today: date = TODAY) -> NikReason:
    with pytest.raises(InvalidNik) as error:
        parse_nik(text, today=today)
    return error.value.reason


# --- decoding ----------------------------------------------------------------------------------


def test_valid_nik_decodes_region_birth_date_gender_and_serial() -> None:
    """Each part of the 16 digits lands in its own field."""
    nik = parse_nik(VALID, today=TODAY)
    assert nik.digits == VALID
    assert (nik.province_code, nik.regency_code, nik.district_code) == ("32", "3275", "327501")
    assert date(1985, 8, 17) == nik.birth_date
    assert nik.gender == "L"
    assert nik.serial == "0001"


def test_day_plus_40_means_a_woman_born_on_that_day() -> None:
    """Women's NIKs carry the birth day plus 40."""
    nik = parse_nik("3275015708850002", today=TODAY)
    assert nik.gender == "P"
    assert date(1985, 8, 17) == nik.birth_date


def test_woman_born_on_the_31st_has_day_71() -> None:
    """71 is the highest valid day field."""
    assert date(1990, 12, 31) == parse_nik("3275017112900003", today=TODAY).birth_date


def test_two_digit_year_already_reached_this_year_is_this_century() -> None:
    """YY 25 on 2026-11-25 is 2025: the most recent century not in the future."""
    assert parse_nik("3275011708250001", today=TODAY).birth_date.year == 2025


def test_two_digit_year_later_this_year_is_last_century() -> None:
    """YY 26 with a December birthday on 2026-11-25 would be in the future, so 1926."""
    assert date(1926, 12, 1) == parse_nik("3275010112260001", today=TODAY).birth_date


def test_birth_today_is_this_century() -> None:
    """A birth on `today` itself is not in the future."""
    assert date(2026, 11, 25) == parse_nik("3275012511260001", today=TODAY).birth_date


def test_29_february_2000_is_read_as_2000_not_the_impossible_1900() -> None:
    """2000 was a leap year; 1900 was not."""
    assert date(2000, 2, 29) == parse_nik("3275012902000001", today=TODAY).birth_date


def test_nik_with_29_february_in_leap_year_is_accepted() -> None:
    """29 February exists in 1988."""
    assert date(1988, 2, 29) == parse_nik("3275012902880001", today=TODAY).birth_date


def test_masked_nik_keeps_regency_and_serial_only() -> None:
    """The masked form hides the district and the birth date."""
    assert parse_nik(VALID, today=TODAY).masked == "3275********0001"


def test_repr_of_a_nik_does_not_reveal_the_digits() -> None:
    """A Nik that ends up in a log line shows only its masked form."""
    text = repr(parse_nik(VALID, today=TODAY))
    assert VALID not in text
    assert "1708" not in text
    assert "3275********0001" in text


def test_parse_nik_accepts_a_regions_instance() -> None:
    """Callers that already hold the region data can pass it in."""
    assert parse_nik(VALID, today=TODAY, regions=load_regions()).digits == VALID


# --- formatting people type --------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "3275 0117 0885 0001",
        "3275.01.170885.0001",
        "32.75.01-170885-0001",
        "  3275011708850001  ",
        "３２７５０１１７０８８５０００１",  # full-width
        "٣٢٧٥٠١١٧٠٨٨٥٠٠٠١",  # Arabic-Indic
        "۳۲۷۵۰۱۱۷۰۸۸۵۰۰۰۱",  # Extended Arabic-Indic
        "3275\u200b0117\u200c0885\u200d0001\ufeff\u2060",  # zero-width characters
        "3275\u00a00117\u00a00885\u00a00001",  # no-break spaces
        "3275\u20130117\u20140885\u22120001",  # en dash, em dash, minus
        "3275\n0117\t0885 0001",
    ],
)
def test_nik_typed_with_separators_or_other_digit_sets_is_accepted(typed: str) -> None:
    """Spaces, dots, dashes, invisible characters and non-ASCII digits are normalised away."""
    assert parse_nik(typed, today=TODAY).digits == VALID


def test_clean_nik_digits_removes_separators_but_keeps_letters() -> None:
    """The cleaning step does not validate: letters survive for the caller to refuse."""
    assert clean_nik_digits(" 32.75-01 ١٧ ") == "32750117"
    assert clean_nik_digits("NIK 3275") == "NIK3275"


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["", "   ", "\u200b\u200b", " . - "])
def test_empty_nik_is_rejected(typed: str) -> None:
    """Nothing, or only separators and invisible characters, is EMPTY."""
    assert reason_for(typed) == NikReason.EMPTY


@pytest.mark.parametrize(
    "typed",
    [
        "3275O11708850001",  # letter O for zero
        "NIK 3275011708850001",
        "3275/01/170885/0001",
        "327501170885000¹",  # superscript one
        "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯",
        "३२७५०११७०८८५०००१",  # Devanagari digits are not what an Indonesian phone sends
        "+3275011708850001",
    ],
)
def test_nik_with_letters_or_other_characters_is_rejected(typed: str) -> None:
    """Anything that is not a digit or a separator is NOT_DIGITS."""
    assert reason_for(typed) == NikReason.NOT_DIGITS


@pytest.mark.parametrize("typed", ["327501170885001", "32750117088500011", "3275"])
def test_nik_with_wrong_number_of_digits_is_rejected(typed: str) -> None:
    """Fewer or more than 16 digits is WRONG_LENGTH."""
    assert reason_for(typed) == NikReason.WRONG_LENGTH


@pytest.mark.parametrize("province", ["00", "10", "20", "54", "99"])
def test_nik_with_unknown_province_is_rejected(province: str) -> None:
    """The first two digits must be one of the 38 province codes."""
    assert reason_for(f"{province}75011708850001") == NikReason.UNKNOWN_PROVINCE


def test_nik_with_31_february_is_rejected() -> None:
    """No calendar roll-over: 31-02 is not 3 March."""
    assert reason_for("3275013102850001") == NikReason.BAD_DATE


def test_nik_with_29_february_in_non_leap_year_is_rejected() -> None:
    """1985 has no 29 February."""
    assert reason_for("3275012902850001") == NikReason.BAD_DATE


def test_nik_with_29_february_1900_is_rejected() -> None:
    """YY 00 read as 1900 (today early in 2000) has no 29 February: 1900 was not leap."""
    assert reason_for("3275012902000001", today=date(2000, 1, 15)) == NikReason.BAD_DATE


def test_nik_with_month_13_is_rejected() -> None:
    """Months run 01-12."""
    assert reason_for("3275011713850001") == NikReason.BAD_DATE


def test_nik_with_month_00_is_rejected() -> None:
    """Month 00 does not exist."""
    assert reason_for("3275011700850001") == NikReason.BAD_DATE


def test_nik_with_day_00_is_rejected() -> None:
    """Day 00 does not exist."""
    assert reason_for("3275010008850001") == NikReason.BAD_DATE


@pytest.mark.parametrize("day", range(32, 41))
def test_nik_with_day_32_to_40_is_rejected(day: int) -> None:
    """Between a man's 31 and a woman's 41 there are no valid days."""
    assert reason_for(f"327501{day:02d}0885" + "0001") == NikReason.BAD_DATE


@pytest.mark.parametrize("day", [72, 80, 81, 99])
def test_nik_with_day_above_71_is_rejected(day: int) -> None:
    """A woman's day ends at 71; 81 is not "day 1" (python-stdnum's modulo pitfall)."""
    assert reason_for(f"327501{day:02d}0885" + "0001") == NikReason.BAD_DATE


def test_nik_of_woman_with_day_71_in_a_30_day_month_is_rejected() -> None:
    """71 - 40 = 31, and April has 30 days."""
    assert reason_for("3275017104850002") == NikReason.BAD_DATE


def test_nik_with_future_birth_is_rejected() -> None:
    """On 1950-06-01, YY 60 is 1960 (future) or 1860 (before 1900): no valid reading."""
    assert reason_for("3275011708600001", today=date(1950, 6, 1)) == NikReason.FUTURE_BIRTH


def test_nik_with_serial_0000_is_rejected() -> None:
    """Serials start at 0001."""
    assert reason_for("3275011708850000") == NikReason.ZERO_SERIAL


def test_invalid_nik_is_a_parse_error_with_a_translatable_message() -> None:
    """Handlers catch ParseError and show `message`; the input itself is never echoed."""
    with pytest.raises(ParseError) as error:
        parse_nik("3275011708850000", today=TODAY)
    assert isinstance(error.value, ValueError)
    assert error.value.reason == NikReason.ZERO_SERIAL
    assert "0000" in error.value.message
    assert "3275011708850000" not in str(error.value)


def test_invalid_nik_survives_pickling() -> None:
    """Exceptions cross process boundaries (e.g. an import worker) intact."""
    error = pickle.loads(pickle.dumps(InvalidNik(NikReason.BAD_DATE)))
    assert (NikReason.BAD_DATE, InvalidNik(NikReason.BAD_DATE).message) == (
        error.reason,
        error.message,
    )


def test_every_reason_has_its_own_message() -> None:
    """No two reasons share worker-facing text."""
    messages = {InvalidNik(reason).message for reason in NikReason}
    assert len(NikReason) == len(messages)


# --- the fast bulk check -----------------------------------------------------------------------


def test_check_nik_accepts_a_valid_nik() -> None:
    """A clean valid NIK has no reason against it."""
    assert check_nik(VALID, TODAY) is None


@pytest.mark.parametrize(
    ("digits", "reason"),
    [
        ("", NikReason.EMPTY),
        ("3275 11708850001", NikReason.NOT_DIGITS),
        ("３２７５０１１７０８８５０００１", NikReason.NOT_DIGITS),  # not clean: the caller's job
        ("327501170885001", NikReason.WRONG_LENGTH),
        ("9975011708850001", NikReason.UNKNOWN_PROVINCE),
        ("3275013102850001", NikReason.BAD_DATE),
        ("3275011708850000", NikReason.ZERO_SERIAL),
    ],
)
def test_check_nik_reports_the_same_reasons_as_parse_nik(digits: str, reason: NikReason) -> None:
    """The bulk check and the chat parser agree on clean input."""
    assert reason == check_nik(digits, TODAY)


@given(st.text(alphabet="0123456789", min_size=16, max_size=16))
def test_check_nik_agrees_with_parse_nik_on_any_16_digits(digits: str) -> None:
    """The fast path never accepts what the full parser refuses, nor the reverse."""
    try:
        parse_nik(digits, today=TODAY)
        expected = None
    except InvalidNik as error:
        expected = error.reason
    assert expected == check_nik(digits, TODAY)


# --- properties --------------------------------------------------------------------------------


@given(nik_parts())
def test_every_nik_built_from_valid_parts_parses_back_to_them(
    parts: tuple[str, date, int, Gender],
) -> None:
    """Region, birth date (century included), serial and gender all round-trip."""
    district, birth, serial, gender = parts
    digits = make_nik(district=district, birth_date=birth, serial=serial, gender=gender)
    nik = parse_nik(digits, today=TODAY)
    assert (
        Nik(
            digits=digits,
            province_code=district[:2],
            regency_code=district[:4],
            district_code=district,
            birth_date=birth,
            gender=gender,
            serial=f"{serial:04d}",
        )
        == nik
    )
    assert check_nik(digits, TODAY) is None


@given(st.text())
def test_every_string_that_is_not_16_digits_after_cleaning_is_rejected(text: str) -> None:
    """Only exactly 16 ASCII digits (after normalisation) can ever be accepted."""
    cleaned = clean_nik_digits(text)
    assume(not (len(cleaned) == 16 and cleaned.isascii() and cleaned.isdigit()))
    with pytest.raises(InvalidNik):
        parse_nik(text, today=TODAY)


_FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@given(valid_niks(), st.lists(st.sampled_from([" ", ".", "-", "\u00a0", "\u200b"]), max_size=15))
def test_noisy_formatting_of_a_valid_nik_parses_to_the_same_nik(
    digits: str, separators: list[str]
) -> None:
    """Separators anywhere between the digits, and full-width digits, change nothing."""
    noisy = "".join(
        digit + (separators[i] if i < len(separators) else "") for i, digit in enumerate(digits)
    )
    expected = parse_nik(digits, today=TODAY)
    assert expected == parse_nik(noisy, today=TODAY)
    assert expected == parse_nik(noisy.translate(_FULL_WIDTH), today=TODAY)
