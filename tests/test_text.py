"""The free-text rule: stored text has no control, format or invisible characters and no
stacks of combining marks; every reader of free text follows it."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.eligibility import Reason, ReasonCode, encode_reasons
from domain.flow import ADDRESS_MAX, InvalidAnswer, short_text
from domain.lifecycle import Status
from domain.names import InvalidName, NameReason, parse_name
from domain.text import (
    MAX_MARKS_PER_BASE,
    clean_free_text,
    has_invisible,
    is_ascii_number,
    is_clean,
    strip_invisible,
)
from storage.engine import Database
from storage.models import Application, AuditEvent
from testkit.factories import make_person
from testkit.fakes import add_applications, make_application

BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
HANGUL_FILLERS = "\u115f\u1160\u3164\uffa0"
HOSTILE = st.sampled_from(
    [*BIDI_CONTROLS, *HANGUL_FILLERS, "\u200b", "\u200d", "\ufeff", "\x00", "\x07", "\u0301"]
)
# Any text, with the characters the rule is about mixed in generously.
TEXTS = st.lists(st.one_of(st.characters(), HOSTILE), max_size=60).map("".join)


def assert_follows_the_rule(text: str) -> None:
    """No Cc/Cf (bidi controls are Cf), no invisible letters, at most N marks per base."""
    marks = 0
    for char in text:
        category = unicodedata.category(char)
        assert category not in ("Cc", "Cf", "Co", "Cs", "Cn"), repr(text)
        assert char not in BIDI_CONTROLS + HANGUL_FILLERS, repr(text)
        marks = marks + 1 if category.startswith("M") else 0
        assert marks <= MAX_MARKS_PER_BASE, repr(text)
    assert text == text.strip()


@given(TEXTS)
def test_cleaned_free_text_follows_the_rule(text: str) -> None:
    """Whatever is typed, the cleaned text has no control/format characters or mark stacks."""
    cleaned = clean_free_text(text)
    assert_follows_the_rule(cleaned)
    assert is_clean(cleaned)
    assert_follows_the_rule(strip_invisible(text))


@given(TEXTS)
def test_an_address_is_stored_clean_or_asked_again(text: str) -> None:
    """The address reader (and the other short free-text answers) store only clean text."""
    try:
        stored = short_text(text, ADDRESS_MAX)
    except InvalidAnswer:
        return
    assert_follows_the_rule(stored)


@given(TEXTS)
def test_a_name_is_stored_clean_or_refused(text: str) -> None:
    """Names (the worker's and the heir's) are clean or refused with a re-prompt."""
    try:
        stored = parse_name(text)
    except InvalidName:
        return
    assert_follows_the_rule(stored)


@pytest.mark.parametrize("filler", list(HANGUL_FILLERS))
def test_a_name_of_hangul_fillers_is_refused(filler: str) -> None:
    """Invisible "letters" are not a name, alone or between real ones."""
    for typed in (filler * 3, f"Budi{filler}Santoso"):
        with pytest.raises(InvalidName) as error:
            parse_name(typed)
        assert error.value.reason in (NameReason.BAD_CHARACTERS, NameReason.EMPTY)


def test_zalgo_name_keeps_its_letters_without_the_stack() -> None:
    """Dozens of marks on each letter are cut down to the limit."""
    zalgo = "".join(char + "\u0300\u0301\u0302\u0303\u0304\u0305\u0306" for char in "Budi")
    stored = parse_name(zalgo + " Santoso")
    assert_follows_the_rule(stored)
    assert unicodedata.normalize("NFKD", stored).encode("ascii", "ignore") == b"Budi Santoso"


def test_real_accents_are_kept() -> None:
    """Vietnamese stacks two marks on a letter: within the limit, nothing is lost."""
    assert clean_free_text("Nguyễn Thị Ánh") == "Nguyễn Thị Ánh"
    assert parse_name("Nguyễn Thị Ánh") == "Nguyễn Thị Ánh"


def test_address_with_a_direction_override_is_stored_without_it() -> None:
    """U+202E would turn the rest of a staff card around: it is dropped."""
    assert short_text("Jl. Melati\u202e No. 5\u2066", ADDRESS_MAX) == "Jl. Melati No. 5"
    assert has_invisible("Jl.\u202eMelati")
    assert not has_invisible("Jl. Melati\tNo. 5")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("123", True), ("0", True), ("²", False), ("³²⁷⁵", False), ("١٢", False), ("", False)],
)
def test_only_plain_digits_count_as_a_number(text: str, expected: bool) -> None:
    """Superscripts pass str.isdigit() but int() refuses them; they are not numbers here."""
    assert is_ascii_number(text) is expected
    if expected:
        int(text)


async def test_every_dtsen_finding_at_once_fits_the_application_and_the_audit(
    database: Database,
) -> None:
    """All findings of one check, as JSON, are longer than 500 characters; PostgreSQL keeps
    them whole (a varchar(500) refused the write, losing the worker's answer)."""
    reasons = encode_reasons(
        [
            Reason(ReasonCode.NAME_MISMATCH, {"score": 12, "threshold": 85}),
            Reason(
                ReasonCode.BIRTH_DATE_MISMATCH, {"claimed": "1960-08-17", "dtsen": "1961-08-18"}
            ),
            Reason(
                ReasonCode.NIK_DATE_MISMATCH, {"claimed": "1960-08-17", "nik_date": "1961-08-18"}
            ),
            Reason(
                ReasonCode.OUTSIDE_REGION, {"region": "3171010001", "programme_region": "3275"}
            ),
            Reason(ReasonCode.DESIL_TOO_HIGH, {"desil": 10, "max_desil": 5}),
            Reason(ReasonCode.TOO_OLD, {"age": 100, "max_age": 60}),
            Reason(ReasonCode.GENDER_MISMATCH, {"nik_gender": "L", "dtsen_gender": "P"}),
        ]
    )
    assert len(reasons) > 500
    application = make_application(make_person(3), secret=b"s" * 32, user_id=1, code="BKS-LONG01")
    application.status, application.eligibility_reasons = Status.INELIGIBLE, reasons
    await add_applications(database, application)
    async with database.write() as session, session.begin():
        session.add(AuditEvent(action="assess", application_id=application.id, reason=reasons))
    async with database.read() as session:
        stored = await session.get(Application, application.id)
    assert stored is not None
    assert stored.eligibility_reasons == reasons
