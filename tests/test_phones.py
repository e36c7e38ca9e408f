"""Mobile numbers: every usual way of typing one gives the same E.164; landlines are refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.phones import InvalidPhone, PhoneReason, format_phone_display, parse_phone

E164 = "+6281234567890"


def reason_for(text: str) -> PhoneReason:
    with pytest.raises(InvalidPhone) as error:
        parse_phone(text)
    return error.value.reason


@pytest.mark.parametrize(
    "typed",
    [
        "081234567890",
        "0812-3456-7890",
        "0812 3456 7890",
        "0812.3456.7890",
        "(0812) 3456 7890",
        "+6281234567890",
        "+62 812 3456 7890",
        "+62-812-3456-7890",
        "+62 (0)812 3456 7890",
        "6281234567890",
        "62 812 3456 7890",
        "81234567890",
        "812-3456-7890",
        "0062 812 3456 7890",
        "０８１２－３４５６－７８９０",  # full-width
        "٠٨١٢٣٤٥٦٧٨٩٠",  # Arabic-Indic
        "\u200b0812\u00a03456\u00a07890 ",
    ],
)
def test_usual_ways_of_typing_a_mobile_number_give_the_same_e164(typed: str) -> None:
    """Trunk 0, country code with or without +, a bare 8, grouping and other digit sets."""
    assert parse_phone(typed) == E164


@pytest.mark.parametrize(
    "typed", ["0811234567", "085712345678", "0895123456789", "0881234567", "08381234567"]
)
def test_numbers_of_every_carrier_and_length_are_accepted(typed: str) -> None:
    """Telkomsel, Indosat, XL, AXIS and Smartfren numbers of 10 to 13 digits."""
    assert parse_phone(typed) == "+62" + typed[1:]


@pytest.mark.parametrize("typed", ["", "  ", "\u200b"])
def test_empty_phone_is_rejected(typed: str) -> None:
    """Nothing typed is EMPTY."""
    assert reason_for(typed) == PhoneReason.EMPTY


@pytest.mark.parametrize("typed", ["0812-ABC-DEFG", "nomor saya 0812345678", "0812#3456", "---"])
def test_phone_with_letters_or_symbols_is_unrecognised(typed: str) -> None:
    """Letters are refused, not read as a keypad vanity number."""
    assert reason_for(typed) == PhoneReason.UNRECOGNISED


def test_plus_in_the_middle_of_a_phone_is_unrecognised() -> None:
    """Only a leading + is meaningful."""
    assert reason_for("0812+34567890") == PhoneReason.UNRECOGNISED


@pytest.mark.parametrize("typed", ["+14155552671", "+44 20 7946 0000", "+60 12-345 6789"])
def test_valid_foreign_number_is_not_indonesian(typed: str) -> None:
    """A real number of another country is NOT_INDONESIAN."""
    assert reason_for(typed) == PhoneReason.NOT_INDONESIAN


@pytest.mark.parametrize("typed", ["021-1234567", "(021) 7654321", "+62 22 1234567"])
def test_landline_is_not_mobile(typed: str) -> None:
    """A Jakarta or Bandung fixed line is NOT_MOBILE."""
    assert reason_for(typed) == PhoneReason.NOT_MOBILE


def test_toll_free_0800_is_not_mobile() -> None:
    """0800 numbers are toll-free service lines."""
    assert reason_for("0800 1234567") == PhoneReason.NOT_MOBILE


@pytest.mark.parametrize("typed", ["0841234567", "0841-2345-6789"])
def test_084x_number_is_invalid(typed: str) -> None:
    """No operator has the 084x block."""
    assert reason_for(typed) == PhoneReason.INVALID


@pytest.mark.parametrize("typed", ["0812345", "08123456789012345", "12", "62812"])
def test_number_too_short_or_too_long_is_invalid(typed: str) -> None:
    """A mobile number has 10-13 digits with the trunk 0."""
    assert reason_for(typed) == PhoneReason.INVALID


def test_every_phone_reason_has_its_own_message() -> None:
    """No two reasons share worker-facing text."""
    assert len(PhoneReason) == len({InvalidPhone(reason).message for reason in PhoneReason})


def test_display_format_is_the_familiar_national_form() -> None:
    """+6281234567890 is shown as 0812-3456-7890."""
    assert format_phone_display(E164) == "0812-3456-7890"


# --- round trips -------------------------------------------------------------------------------

_FULL_WIDTH = str.maketrans("0123456789-+", "０１２３４５６７８９－＋")

STYLES: dict[str, Callable[[str], str]] = {
    "trunk zero": lambda national: "0" + national,
    "plus country code": lambda national: "+62" + national,
    "country code": lambda national: "62" + national,
    "bare 8": lambda national: national,
    "grouped": lambda national: f"0{national[:3]}-{national[3:7]}-{national[7:]}",
    "parenthesised": lambda national: f"(0{national[:3]}) {national[3:7]} {national[7:]}",
    "spaced international": lambda national: f"+62 {national[:3]} {national[3:7]} {national[7:]}",
    "full-width": lambda national: ("0" + national).translate(_FULL_WIDTH),
    "display": lambda national: format_phone_display("+62" + national),
}

# Prefixes of all five operators, after the trunk 0.
MOBILE_PREFIXES = ("811", "812", "813", "821", "852", "814", "855", "895", "817", "859", "877")
MOBILE_PREFIXES_AXIS_SMARTFREN = ("831", "838", "881", "889")


@given(
    st.sampled_from(MOBILE_PREFIXES + MOBILE_PREFIXES_AXIS_SMARTFREN),
    st.text(alphabet="0123456789", min_size=8, max_size=9),
    st.sampled_from(sorted(STYLES)),
)
def test_a_mobile_number_typed_in_any_style_gives_the_same_e164(
    prefix: str, subscriber: str, style: str
) -> None:
    """Every input style of every valid mobile number normalises to +62 and the national digits."""
    national = prefix + subscriber
    assert parse_phone(STYLES[style](national)) == "+62" + national
