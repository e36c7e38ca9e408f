"""The registration flow as one table: each step's field label, prompt, example, keyboard,
reader and next step. Pure: what a question looks like and how its answer is read."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Literal

from domain.address import ADDRESS_HINT, is_findable_address
from domain.dates import parse_date
from domain.i18n import N_
from domain.names import parse_name
from domain.nik import parse_nik
from domain.parsing import ParseError
from domain.phones import parse_phone
from domain.program import HEIR_RELATIONS, OCCUPATIONS, OTHER_OCCUPATION
from domain.regions import Regions
from domain.text import clean_free_text

ADDRESS_MAX = 200
OCCUPATION_OTHER_MAX = 60


class Step(StrEnum):
    """Where a worker's draft stands; stored in `application.step`."""

    NIK = "nik"
    NAME = "name"
    BIRTH_DATE = "birth_date"
    PHONE = "phone"
    ADDRESS = "address"
    KECAMATAN = "kecamatan"
    KELURAHAN = "kelurahan"
    OCCUPATION = "occupation"
    OCCUPATION_OTHER = "occupation_other"
    HEIR_NAME = "heir_name"
    HEIR_RELATION = "heir_relation"
    SUMMARY = "summary"
    EDIT = "edit"


# The answers that make up the identity checked against DTSEN.
IDENTITY_STEPS = (Step.NIK, Step.NAME, Step.BIRTH_DATE)

# Columns of the draft an answer sets, by name.
Values = dict[str, Any]


class AnswerReason(StrEnum):
    """Why an answer (typed or pressed) cannot be used."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    UNKNOWN_CHOICE = "unknown_choice"
    NOT_FINDABLE = "not_findable"  # an address with no street, RT/RW or number


class InvalidAnswer(ParseError[AnswerReason]):
    """An answer that cannot be used: re-ask with `message` (N_ marked) and its `params`."""

    def __init__(self, reason: AnswerReason, message: str, **params: str) -> None:
        super().__init__(reason, message)
        self.params = params


@dataclass(frozen=True)
class Facts:
    """What reading an answer or listing a step's choices depends on besides the answer."""

    today: date
    regions: Regions
    # The programme's regency (4 digits): its kecamatan are the choices.
    regency: str
    # The draft's kecamatan: its kelurahan are the choices.
    kecamatan_code: str | None = None


@dataclass(frozen=True)
class Button:
    """One choice: the value it answers with and its label."""

    value: str
    label: str
    # Labels are msgids to translate; place names are shown as they are.
    translate: bool = True


@dataclass(frozen=True)
class Keyboard:
    """A step's choices, laid out `columns` to a row, with an optional last row of its own."""

    buttons: tuple[Button, ...]
    columns: int = 1
    last: Button | None = None


# The phone step offers Telegram's "share my number" button instead of choices.
CONTACT: Literal["contact"] = "contact"
KeyboardSpec = Callable[[Facts], Keyboard] | Literal["contact"] | None


@dataclass(frozen=True)
class Navigation:
    """A button that moves within the form without answering (back, edit, send, cancel)."""

    target: str


@dataclass(frozen=True)
class Picked:
    """A button that answers: the label to show for the choice and the values it sets."""

    label: str
    values: Values
    translate: bool = True


Reader = Callable[[str, Facts], Values]
Chooser = Callable[[str, Facts], Picked | Navigation]


# --- readers: typed answers --------------------------------------------------------------------


def short_text(text: str, limit: int) -> str:
    """A short free-text answer, clean (the shared free-text rule) and at most `limit` long."""
    # Bidi overrides, zero-width characters, Hangul fillers and stacked marks never reach a
    # staff card or an export.
    cleaned = clean_free_text(text)
    if not cleaned:
        raise InvalidAnswer(AnswerReason.EMPTY, N_("Please write a few words."))
    if len(cleaned) > limit:
        raise InvalidAnswer(
            AnswerReason.TOO_LONG,
            N_("That is too long: at most {limit} characters."),
            limit=str(limit),
        )
    return cleaned


def read_nik(text: str, facts: Facts) -> Values:
    """The NIK, parsed once: the `Nik` itself travels on (its checks and hash come later)."""
    return {"nik": parse_nik(text, today=facts.today)}


def read_name(text: str, _facts: Facts) -> Values:
    """The name as on the KTP, in the worker's own spelling."""
    return {"nama": parse_name(text)}


def read_birth_date(text: str, facts: Facts) -> Values:
    """The date of birth in any of the forms workers type."""
    return {"tanggal_lahir": parse_date(text, today=facts.today)}


def read_phone(text: str, _facts: Facts) -> Values:
    """A typed mobile number."""
    return {"phone": parse_phone(text)}


def read_occupation_other(text: str, _facts: Facts) -> Values:
    """A short description of an occupation not in the list."""
    return {"occupation_other": short_text(text, OCCUPATION_OTHER_MAX)}


def read_address(text: str, _facts: Facts) -> Values:
    """The domicile address, as free text that names a findable place (domain/address.py)."""
    address = short_text(text, ADDRESS_MAX)
    if not is_findable_address(address):
        raise InvalidAnswer(AnswerReason.NOT_FINDABLE, ADDRESS_HINT)
    return {"alamat": address}


def read_heir_name(text: str, _facts: Facts) -> Values:
    """The heir's name."""
    return {"heir_name": parse_name(text)}


# --- choosers: pressed answers (the value is untrusted: it may be forged) ---------------------


def _unknown(what: str) -> InvalidAnswer:
    return InvalidAnswer(AnswerReason.UNKNOWN_CHOICE, f"unknown {what}")


def choose_occupation(value: str, _facts: Facts) -> Picked:
    """One of the listed occupations."""
    if value not in OCCUPATIONS:
        raise _unknown("occupation")
    values: Values = {"occupation": value}
    if value != OTHER_OCCUPATION:
        values["occupation_other"] = None
    return Picked(OCCUPATIONS[value], values)


def choose_kecamatan(value: str, facts: Facts) -> Picked:
    """A kecamatan of the programme's region."""
    district = facts.regions.district(value)
    if district is None or not value.startswith(facts.regency):
        raise _unknown("kecamatan")
    return Picked(district.name, {"kecamatan_code": value, "kelurahan_code": None}, False)


def choose_kelurahan(value: str, facts: Facts) -> Picked | Navigation:
    """A kelurahan of the chosen kecamatan, or back to the kecamatan list."""
    if value == "back":
        return Navigation(Step.KECAMATAN)
    village = facts.regions.village(value)
    if village is None or not value.startswith(facts.kecamatan_code or "-"):
        raise _unknown("kelurahan")
    return Picked(village.name, {"kelurahan_code": value}, False)


def choose_relation(value: str, _facts: Facts) -> Picked:
    """The heir's relationship."""
    if value not in HEIR_RELATIONS:
        raise _unknown("relation")
    return Picked(HEIR_RELATIONS[value], {"heir_relation": value})


SUMMARY_ACTIONS = {"send": N_("✅ Send"), "edit": N_("✏️ Change"), "cancel": N_("✖️ Cancel")}


def choose_summary(value: str, _facts: Facts) -> Navigation:
    """Send, change or cancel."""
    if value not in SUMMARY_ACTIONS:
        raise _unknown("action")
    return Navigation(value)


def choose_field(value: str, _facts: Facts) -> Navigation:
    """A field to change, or back to the summary."""
    if value == "back":
        return Navigation(Step.SUMMARY)
    if value not in FIELD_LABELS:
        raise _unknown("field")
    return Navigation(f"fix:{value}")


# --- keyboards ---------------------------------------------------------------------------------


def _listed(choices: dict[str, str]) -> Callable[[Facts], Keyboard]:
    keyboard = Keyboard(tuple(Button(code, label) for code, label in choices.items()))
    return lambda _facts: keyboard


def _kecamatan_keyboard(facts: Facts) -> Keyboard:
    districts = facts.regions.kecamatan_of(facts.regency)
    return Keyboard(tuple(Button(d.code, d.name, False) for d in districts), columns=2)


def _kelurahan_keyboard(facts: Facts) -> Keyboard:
    villages = facts.regions.kelurahan_of(facts.kecamatan_code or "")
    return Keyboard(
        tuple(Button(v.code, v.name, False) for v in villages),
        columns=2,
        last=Button("back", N_("« Back to kecamatan")),
    )


def _fields_keyboard(_facts: Facts) -> Keyboard:
    return Keyboard(
        tuple(Button(step, label) for step, label in FIELD_LABELS.items()),
        last=Button("back", N_("« Back to summary")),
    )


# --- the table ---------------------------------------------------------------------------------


def _other_occupation(values: Values) -> Step | None:
    return Step.OCCUPATION_OTHER if values.get("occupation") == OTHER_OCCUPATION else None


@dataclass(frozen=True)
class Row:
    """One step of the flow."""

    step: Step
    prompt: str
    example: str = ""
    # The field's name in the summary, /datasaya and the "change" menu; None: not a field.
    label: str | None = None
    keyboard: KeyboardSpec = None
    read: Reader | None = None  # a typed answer
    choose: Chooser | None = None  # a pressed answer
    # The question after this one in the order of the form.
    then: Step | None = None
    # A sub-question this answer opens; asked even when the worker came from the summary.
    opens: Callable[[Values], Step | None] | None = None
    # The main question a sub-question belongs to (for the "(3/9)" progress).
    part_of: Step | None = None
    numbered: bool = True


ROWS: tuple[Row, ...] = (
    Row(
        Step.NIK,
        N_("Send your <b>NIK</b> (16 digits, on your KTP)."),
        "3275011708850001",
        label=N_("NIK"),
        read=read_nik,
        then=Step.NAME,
    ),
    Row(
        Step.NAME,
        N_("Send your <b>full name as on your KTP</b>."),
        "Budi Santoso",
        label=N_("Name"),
        read=read_name,
        then=Step.BIRTH_DATE,
    ),
    Row(
        Step.BIRTH_DATE,
        N_("Send your <b>date of birth</b>."),
        N_("17-08-1985 or 17 Agustus 1985"),
        label=N_("Date of birth"),
        read=read_birth_date,
        then=Step.PHONE,
    ),
    Row(
        Step.PHONE,
        N_("Send your <b>mobile number</b>, or tap the button below to share it."),
        "0812-3456-7890",
        label=N_("Mobile number"),
        keyboard=CONTACT,
        read=read_phone,
        # A typed question next: its message also takes the contact button away (one message
        # carries one keyboard), so no separate "number saved" message is needed.
        then=Step.ADDRESS,
    ),
    Row(
        Step.ADDRESS,
        N_("Send your <b>address</b> (street, house number, RT/RW)."),
        N_("Jl. Melati No. 5 RT 01/RW 02"),
        label=N_("Address"),
        read=read_address,
        then=Step.KECAMATAN,
    ),
    Row(
        Step.KECAMATAN,
        N_("Where do you live? Choose your <b>kecamatan</b>."),
        label=N_("Kecamatan/kelurahan"),
        keyboard=_kecamatan_keyboard,
        choose=choose_kecamatan,
        opens=lambda _values: Step.KELURAHAN,
    ),
    Row(
        Step.KELURAHAN,
        N_("Choose your <b>kelurahan</b>."),
        keyboard=_kelurahan_keyboard,
        choose=choose_kelurahan,
        then=Step.OCCUPATION,
        part_of=Step.KECAMATAN,
        numbered=False,
    ),
    Row(
        Step.OCCUPATION,
        N_("What is your <b>work</b>?"),
        label=N_("Work"),
        keyboard=_listed(OCCUPATIONS),
        choose=choose_occupation,
        then=Step.HEIR_NAME,
        opens=_other_occupation,
    ),
    Row(
        Step.OCCUPATION_OTHER,
        N_("Write your <b>work</b> in a few words."),
        N_("barber"),
        read=read_occupation_other,
        then=Step.HEIR_NAME,
        part_of=Step.OCCUPATION,
        numbered=False,
    ),
    Row(
        Step.HEIR_NAME,
        N_("Who is your <b>heir</b> for the death benefit (JKM)? Send their full name."),
        "Siti Aminah",
        label=N_("Heir"),
        read=read_heir_name,
        then=Step.HEIR_RELATION,
    ),
    Row(
        Step.HEIR_RELATION,
        N_("What is your heir's <b>relationship</b> to you?"),
        label=N_("Heir's relationship"),
        keyboard=_listed(HEIR_RELATIONS),
        choose=choose_relation,
        then=Step.SUMMARY,
    ),
    Row(
        Step.SUMMARY,
        N_("Please check your data."),
        keyboard=_listed(SUMMARY_ACTIONS),
        choose=choose_summary,
        numbered=False,
    ),
    Row(
        Step.EDIT,
        N_("Which data do you want to change?"),
        keyboard=_fields_keyboard,
        choose=choose_field,
        numbered=False,
    ),
)

# Everything else is derived from the table.
STEPS: dict[Step, Row] = {row.step: row for row in ROWS}
# The order of the questions. Sub-steps (occupation_other, kelurahan) follow their parent.
FLOW: tuple[Step, ...] = tuple(row.step for row in ROWS if row.numbered)
# Field labels for the summary, /datasaya and the "change" menu, in the form's order.
FIELD_LABELS: dict[Step, str] = {row.step: row.label for row in ROWS if row.label is not None}
READERS: dict[Step, Reader] = {row.step: row.read for row in ROWS if row.read is not None}
CHOICES: dict[Step, Chooser] = {row.step: row.choose for row in ROWS if row.choose is not None}


def has_buttons(step: Step) -> bool:
    """Whether a step is answered by pressing a button, not by typing."""
    return STEPS[step].choose is not None


def keyboard_for(step: Step, facts: Facts) -> Keyboard | Literal["contact"] | None:
    """The choices that go with a step's prompt, or the contact button, or nothing."""
    spec = STEPS[step].keyboard
    if spec is None or isinstance(spec, str):
        return spec
    return spec(facts)


def _comparable(text: str) -> str:
    """Words only, case-folded: "✅ Setuju", " setuju " and "SETUJU!" compare equal."""
    return " ".join(re.findall(r"[^\W_]+", text.casefold()))


def same_answer(text: str, spellings: Iterable[str]) -> bool:
    """Whether typed text is one of these labels, ignoring case, spaces, emoji and punctuation."""
    wanted = _comparable(text)
    return bool(wanted) and any(wanted == _comparable(spelling) for spelling in spellings)


def typed_choice(
    step: Step, text: str, facts: Facts, translations: Callable[[str], Iterable[str]]
) -> str | None:
    """The value of the button whose label (in any language, via `translations`), code, or
    word in brackets ("ojol") the worker typed instead of pressing it; None when none is."""
    spec = keyboard_for(step, facts)
    if not isinstance(spec, Keyboard):
        return None
    buttons = spec.buttons if spec.last is None else (*spec.buttons, spec.last)
    for button in buttons:
        labels = tuple(translations(button.label)) if button.translate else (button.label,)
        inner = (part for label in labels for part in re.findall(r"\(([^)]*)\)", label))
        if same_answer(text, (*labels, button.value, *inner)):
            return button.value
    return None


def progress_of(step: Step) -> tuple[int, int] | None:
    """`(3, 9)` for the main questions and their sub-questions; None for the rest."""
    row = STEPS[step]
    parent = row.part_of or step
    if parent not in FLOW:
        return None
    return FLOW.index(parent) + 1, len(FLOW)


def next_step(step: Step, values: Values, *, return_to_summary: bool) -> Step:
    """The step after `step`, given the answer just read and whether the worker came from
    the summary (then the summary, once any sub-question this answer opens is answered)."""
    row = STEPS[step]
    opened = row.opens(values) if row.opens is not None else None
    if opened is not None:
        return opened
    if return_to_summary:
        return Step.SUMMARY
    if row.then is None:
        raise ValueError(f"step {step} is not answered: it has no next step")
    return row.then
