"""Indonesian mobile numbers: read what a worker types, store E.164, show the familiar 08xx."""

from __future__ import annotations

import re
from enum import StrEnum

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from domain.i18n import N_
from domain.parsing import ParseError, clean_text

REGION = "ID"
COUNTRY_CODE = 62


class PhoneReason(StrEnum):
    """Why a phone number was refused."""

    EMPTY = "empty"
    UNRECOGNISED = "unrecognised"
    NOT_INDONESIAN = "not_indonesian"
    NOT_MOBILE = "not_mobile"
    INVALID = "invalid"


_MESSAGES: dict[PhoneReason, str] = {
    PhoneReason.EMPTY: N_("Please type your mobile number, for example 0812-3456-7890."),
    PhoneReason.UNRECOGNISED: N_(
        "I could not read that as a phone number. "
        "Please type only the digits, for example 0812-3456-7890."
    ),
    PhoneReason.NOT_INDONESIAN: N_(
        "This is not an Indonesian number. Please give an Indonesian mobile number (08...)."
    ),
    PhoneReason.NOT_MOBILE: N_(
        "This is not a mobile number. Please give a mobile number that starts with 08."
    ),
    PhoneReason.INVALID: N_(
        "This number is not valid. Please check it and type it again, for example 0812-3456-7890."
    ),
}


class InvalidPhone(ParseError[PhoneReason]):
    """A phone number that cannot be accepted; `reason` says why."""

    def __init__(self, reason: PhoneReason, message: str | None = None) -> None:
        super().__init__(reason, _MESSAGES[reason] if message is None else message)


# Digits with the usual grouping characters and at most one leading "+". Letters are refused
# here because phonenumbers would read them as a keypad vanity number ("0812-ABC").
_SHAPE = re.compile(r"\+?[0-9 ()./-]+")
_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


def parse_phone(text: str) -> str:
    """Read an Indonesian mobile number as typed and return it as E.164 (`+62812...`)."""
    cleaned = clean_text(text)
    if not cleaned:
        raise InvalidPhone(PhoneReason.EMPTY)
    digits = re.sub(r"[^0-9]", "", cleaned)
    if not digits or not _SHAPE.fullmatch(cleaned):
        raise InvalidPhone(PhoneReason.UNRECOGNISED)
    if cleaned.startswith("+"):
        candidate = "+" + digits
    elif digits.startswith("00"):
        # "00" + country code, an international prefix phonenumbers does not take for "ID".
        candidate = "+" + digits[2:]
    else:
        # phonenumbers already reads "62812..." as the country code and "812..." as a national
        # number missing its trunk 0.
        candidate = digits
    if candidate.startswith("+620"):
        # "+62 (0)812...": the trunk 0 kept after the country code, as on many business cards.
        candidate = "+62" + candidate[4:]
    try:
        number = phonenumbers.parse(candidate, REGION)
    except NumberParseException as error:
        raise InvalidPhone(PhoneReason.UNRECOGNISED) from error
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(PhoneReason.INVALID)
    if number.country_code != COUNTRY_CODE:
        raise InvalidPhone(PhoneReason.NOT_INDONESIAN)
    # The programme reaches workers on their own mobile: landlines (021...) and service numbers
    # (0800 toll-free) are refused.
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise InvalidPhone(PhoneReason.NOT_MOBILE)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def format_phone_display(e164: str) -> str:
    """The national form people recognise: `+6281234567890` -> `0812-3456-7890`."""
    number = phonenumbers.parse(e164, REGION)
    return phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
