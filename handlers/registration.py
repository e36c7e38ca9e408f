"""Worker self-registration: consent, then one question per step, the draft row as the state.

Read top to bottom in the order a worker meets it. The current step lives in the worker's draft
application in the database, never in process memory, so a restart (or another process) resumes
every worker exactly where they were; each answer is stored in the same transaction that moves
the draft to its next step, and a redelivered update is recognised by its update_id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from domain.dates import format_date_en, format_date_id, parse_date
from domain.eligibility import (
    Claim,
    Decision,
    DtsenPerson,
    assess,
    claim_key,
    encode_reasons,
    worker_message,
)
from domain.i18n import N_
from domain.lifecycle import EDITABLE_STATUSES
from domain.names import parse_name
from domain.nik import parse_nik
from domain.parsing import ParseError
from domain.phones import InvalidPhone, format_phone_display, parse_phone
from domain.pii import hash_identifier
from domain.program import (
    CONSENT_TEXT,
    CONSENT_VERSION,
    HEIR_RELATIONS,
    OCCUPATIONS,
    OTHER_OCCUPATION,
    occupation_label,
    relation_label,
)
from domain.text import clean_free_text
from handlers.common import answer_query, escape, message_of, user_of
from handlers.context import Context
from storage.applications import ATTEMPT_WINDOW, Outcome
from storage.models import Application, AttemptKind, Status

ADDRESS_MAX = 200
# A correction of a submitted application that does not match DTSEN: asked again, neutrally.
CORRECTION_MISMATCH = N_(
    "This does not match the programme's list. Please check that it is exactly as on your KTP "
    "and send it again. Your application and your other answers are kept."
)
OCCUPATION_OTHER_MAX = 60


class Step(StrEnum):
    """Where a worker's draft stands; stored in `application.step`."""

    NIK = "nik"
    NAME = "name"
    BIRTH_DATE = "birth_date"
    PHONE = "phone"
    OCCUPATION = "occupation"
    OCCUPATION_OTHER = "occupation_other"
    KECAMATAN = "kecamatan"
    KELURAHAN = "kelurahan"
    ADDRESS = "address"
    HEIR_NAME = "heir_name"
    HEIR_RELATION = "heir_relation"
    SUMMARY = "summary"
    EDIT = "edit"


# The order of the questions. Sub-steps (occupation_other, kelurahan) follow their parent.
FLOW = (
    Step.NIK,
    Step.NAME,
    Step.BIRTH_DATE,
    Step.PHONE,
    Step.OCCUPATION,
    Step.KECAMATAN,
    Step.ADDRESS,
    Step.HEIR_NAME,
    Step.HEIR_RELATION,
)
IDENTITY_STEPS = (Step.NIK, Step.NAME, Step.BIRTH_DATE)


class Retry(Exception):
    """An answer that cannot be used: re-ask the step with this (untranslated) message."""

    def __init__(self, message: str, **params: str) -> None:
        super().__init__(message)
        self.message = message
        self.params = params


@dataclass(frozen=True)
class StepSpec:
    """One question: its prompt, an example answer and how the answer is read."""

    step: Step
    prompt: str
    example: str = ""
    kind: str = "text"  # text | buttons | contact


STEPS: dict[Step, StepSpec] = {
    spec.step: spec
    for spec in (
        StepSpec(
            Step.NIK, N_("Send your <b>NIK</b> (16 digits, on your KTP)."), "3275011708850001"
        ),
        StepSpec(Step.NAME, N_("Send your <b>full name as on your KTP</b>."), "Budi Santoso"),
        StepSpec(
            Step.BIRTH_DATE,
            N_("Send your <b>date of birth</b>."),
            N_("17-08-1985 or 17 Agustus 1985"),
        ),
        StepSpec(
            Step.PHONE,
            N_("Send your <b>mobile number</b>, or tap the button below to share it."),
            "0812-3456-7890",
            kind="contact",
        ),
        StepSpec(Step.OCCUPATION, N_("What is your <b>work</b>?"), kind="buttons"),
        StepSpec(
            Step.OCCUPATION_OTHER, N_("Write your <b>work</b> in a few words."), N_("barber")
        ),
        StepSpec(
            Step.KECAMATAN, N_("Where do you live? Choose your <b>kecamatan</b>."), kind="buttons"
        ),
        StepSpec(Step.KELURAHAN, N_("Choose your <b>kelurahan</b>."), kind="buttons"),
        StepSpec(
            Step.ADDRESS,
            N_("Send your <b>address</b> (street, house number, RT/RW)."),
            N_("Jl. Melati No. 5 RT 01/RW 02"),
        ),
        StepSpec(
            Step.HEIR_NAME,
            N_("Who is your <b>heir</b> for the death benefit (JKM)? Send their full name."),
            "Siti Aminah",
        ),
        StepSpec(
            Step.HEIR_RELATION,
            N_("What is your heir's <b>relationship</b> to you?"),
            kind="buttons",
        ),
        StepSpec(Step.SUMMARY, N_("Please check your data."), kind="buttons"),
        StepSpec(Step.EDIT, N_("Which data do you want to change?"), kind="buttons"),
    )
}

# Field labels for the summary, /datasaya and the "change" menu.
FIELD_LABELS: dict[Step, str] = {
    Step.NIK: N_("NIK"),
    Step.NAME: N_("Name"),
    Step.BIRTH_DATE: N_("Date of birth"),
    Step.PHONE: N_("Mobile number"),
    Step.OCCUPATION: N_("Work"),
    Step.KECAMATAN: N_("Kecamatan/kelurahan"),
    Step.ADDRESS: N_("Address"),
    Step.HEIR_NAME: N_("Heir"),
    Step.HEIR_RELATION: N_("Heir's relationship"),
}


# --- prompts -------------------------------------------------------------------------------


# A button answer: the query whose message may become the next question, and the choice.
Answered = tuple[CallbackQuery, str]


def _button(label: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=data)


def keyboard_for(step: Step, draft: Application, context: Context) -> Any:
    """The keyboard that goes with a step's prompt (inline buttons or the contact button)."""
    _ = context._
    regions = context.services.regions
    if step is Step.PHONE:
        return ReplyKeyboardMarkup(
            [[KeyboardButton(_("📱 Share my number"), request_contact=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
    if step is Step.OCCUPATION:
        rows = [[_button(_(label), f"reg:{step}:{code}")] for code, label in OCCUPATIONS.items()]
        return InlineKeyboardMarkup(rows)
    if step is Step.KECAMATAN:
        districts = regions.kecamatan_of(context.settings.program_region_code[:4])
        buttons = [_button(d.name, f"reg:{step}:{d.code}") for d in districts]
        return InlineKeyboardMarkup([buttons[i : i + 2] for i in range(0, len(buttons), 2)])
    if step is Step.KELURAHAN:
        villages = regions.kelurahan_of(draft.kecamatan_code or "")
        buttons = [_button(v.name, f"reg:{step}:{v.code}") for v in villages]
        rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
        rows.append([_button(_("« Back to kecamatan"), f"reg:{step}:back")])
        return InlineKeyboardMarkup(rows)
    if step is Step.HEIR_RELATION:
        rows = [
            [_button(_(label), f"reg:{step}:{code}")] for code, label in HEIR_RELATIONS.items()
        ]
        return InlineKeyboardMarkup(rows)
    if step is Step.SUMMARY:
        return InlineKeyboardMarkup(
            [
                [_button(_("✅ Send"), f"reg:{step}:send")],
                [_button(_("✏️ Change"), f"reg:{step}:edit")],
                [_button(_("✖️ Cancel"), f"reg:{step}:cancel")],
            ]
        )
    if step is Step.EDIT:
        rows = [
            [_button(_(label), f"reg:{step}:{field}")] for field, label in FIELD_LABELS.items()
        ]
        rows.append([_button(_("« Back to summary"), f"reg:{step}:back")])
        return InlineKeyboardMarkup(rows)
    return None


def progress_of(step: Step) -> str:
    """`(3/9)` for steps of the main flow, empty otherwise."""
    parent = {Step.OCCUPATION_OTHER: Step.OCCUPATION, Step.KELURAHAN: Step.KECAMATAN}.get(
        step, step
    )
    if parent not in FLOW:
        return ""
    return f"({FLOW.index(parent) + 1}/{len(FLOW)}) "


def prompt_text(step: Step, draft: Application, context: Context) -> str:
    """The question of a step, with its example; the summary shows the whole draft."""
    _ = context._
    spec = STEPS[step]
    if step is Step.SUMMARY:
        return _(spec.prompt) + "\n\n" + summary_text(draft, context)
    text = progress_of(step) + _(spec.prompt)
    if step is Step.KELURAHAN and draft.kecamatan_code:
        text += "\n" + _("Kecamatan: {name}").format(
            name=escape(context.services.regions.name(draft.kecamatan_code) or "")
        )
    if spec.example:
        text += "\n" + _("Example: {example}").format(example=escape(_(spec.example)))
    return text


async def ask(
    message: Message,
    step: Step,
    draft: Application,
    context: Context,
    answered: Answered | None = None,
) -> None:
    """Send the prompt of `step`; after a button answer, the pressed message becomes it."""
    text = prompt_text(step, draft, context)
    markup = keyboard_for(step, draft, context)
    if answered is not None:
        query, label = answered
        # One call instead of two (mark the choice, then send the next question), and the
        # chat still reads as a record: the choice heads the next question. A reply keyboard
        # cannot ride on an edit, and an old message may refuse edits: then send anew.
        if not isinstance(markup, ReplyKeyboardMarkup):
            with contextlib.suppress(BadRequest):
                await query.edit_message_text(
                    f"✅ {escape(label)}\n\n{text}", parse_mode=ParseMode.HTML, reply_markup=markup
                )
                return
        await _mark_choice(query, label)
    await message.reply_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)


async def ask_again(
    message: Message, draft: Application, context: Context, reason: str | None = None
) -> None:
    """Re-ask the current step, after a short explanation when there is one."""
    step = Step(draft.step or Step.NIK)
    text = prompt_text(step, draft, context)
    if reason:
        text = f"⚠️ {reason}\n\n{text}"
    await message.reply_text(
        text, parse_mode=ParseMode.HTML, reply_markup=keyboard_for(step, draft, context)
    )


def summary_text(draft: Application, context: Context) -> str:
    """Everything the worker entered, escaped for HTML."""
    _ = context._
    regions = context.services.regions
    born = draft.tanggal_lahir
    rows = [
        (FIELD_LABELS[Step.NIK], draft.nik or "-"),
        (FIELD_LABELS[Step.NAME], draft.nama or "-"),
        (FIELD_LABELS[Step.BIRTH_DATE], format_date(born, context) if born else "-"),
        (FIELD_LABELS[Step.PHONE], format_phone_display(draft.phone) if draft.phone else "-"),
        (FIELD_LABELS[Step.OCCUPATION], occupation_text(draft, context)),
        (
            FIELD_LABELS[Step.KECAMATAN],
            ", ".join(
                regions.name(code) or "-"
                for code in (draft.kelurahan_code, draft.kecamatan_code)
                if code
            )
            or "-",
        ),
        (FIELD_LABELS[Step.ADDRESS], draft.alamat or "-"),
        (
            FIELD_LABELS[Step.HEIR_NAME],
            f"{draft.heir_name or '-'} ({_(relation_label(draft.heir_relation)) or '-'})",
        ),
    ]
    return "\n".join(f"<b>{escape(_(label))}:</b> {escape(value)}" for label, value in rows)


def occupation_text(draft: Application, context: Context) -> str:
    """The occupation in words, with the worker's own text for "other"."""
    if draft.occupation == OTHER_OCCUPATION and draft.occupation_other:
        return draft.occupation_other
    label = occupation_label(draft.occupation)
    return context._(label) if label else "-"


def format_date(value: date, context: Context) -> str:
    """A date the way the worker's language writes it."""
    if context.tr.language == "en":
        return format_date_en(value)
    return format_date_id(value)


# --- starting: welcome and consent ------------------------------------------------------------


async def start(update: Update, context: Context) -> None:
    """/start and /daftar: welcome and consent, or where the worker already is."""
    message = message_of(update)
    user = user_of(update)
    existing = await context.services.applications.open_for(user_id=user.id)
    if existing is not None and existing.status in EDITABLE_STATUSES and existing.step:
        await message.reply_text(
            context._(
                "You are in the middle of your registration. Let's continue where you "
                "left off, or send /batal to cancel and start over."
            )
        )
        await ask_again(message, existing, context)
        return
    if existing is not None:
        await message.reply_text(
            context._(
                "You already have an application: {code}. Send /status to see where it stands."
            ).format(code=existing.code or "-")
        )
        return
    buttons = InlineKeyboardMarkup(
        [[_button(context._("✅ I agree"), "consent:yes"), _button(context._("No"), "consent:no")]]
    )
    await message.reply_text(
        welcome_text(context), parse_mode=ParseMode.HTML, reply_markup=buttons
    )


def welcome_text(context: Context) -> str:
    """The welcome and the consent text (UU PDP), as /start shows them."""
    settings = context.settings
    welcome = context._(
        "Welcome to the BPJS Ketenagakerjaan registration for informal workers.\n"
        "The city pays your JKK (work accident) and JKM (death benefit) premiums: "
        "it is free for you."
    )
    who = context._(
        "For informal workers (ojol, drivers, construction labourers, small traders, waste "
        "pickers) aged {min_age}-{max_age} who live in the programme area and are listed in DTSEN."
    ).format(min_age=settings.program_min_age, max_age=settings.program_max_age)
    consent = context._(CONSENT_TEXT).format(
        draft_hours=settings.draft_expiry_hours, ineligible_days=settings.ineligible_retention_days
    )
    return f"{welcome}\n{who}\n\n{consent}"


async def consent_given(update: Update, context: Context) -> None:
    """Setuju: open the draft (storing the consent version and time) and ask the NIK."""
    query = _query_of(update)
    await alongside_answer(query, _open_draft(update, query, context))


async def _open_draft(update: Update, query: CallbackQuery, context: Context) -> None:
    user = user_of(update)
    applications = context.services.applications
    # No read first: the insert itself refuses a second open application (unique index), and
    # only then is the existing one looked up. Saves a query for nearly every worker.
    existing = applications.cached_draft(user_id=user.id)
    if existing is None:
        existing = await applications.start_draft(
            user_id=user.id,
            chat_id=query.message.chat.id if query.message else user.id,
            consent_version=CONSENT_VERSION,
            first_step=Step.NIK,
            update_id=update.update_id,
        ) or await applications.open_for(user_id=user.id)
    message = query.message
    if existing is not None and existing.status == Status.DRAFT and isinstance(message, Message):
        # One call: the consent message keeps its text, records the choice and asks the NIK.
        step = Step(existing.step or Step.NIK)
        markup = keyboard_for(step, existing, context)
        text = (
            f"{welcome_text(context)}\n\n{escape(context._('✅ I agree'))}"
            f"\n\n{prompt_text(step, existing, context)}"
        )
        if not isinstance(markup, ReplyKeyboardMarkup):
            # Too old to edit, or pressed twice: the buttons go and the step is asked anew.
            with contextlib.suppress(BadRequest):
                await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)
                return
    await _drop_buttons(query)
    if existing is None or not isinstance(message, Message):
        return
    if existing.status == Status.DRAFT:
        await ask_again(message, existing, context)
    else:
        await message.reply_text(
            context._("You already have an application: {code}. Send /status.").format(
                code=existing.code or "-"
            )
        )


async def consent_refused(update: Update, context: Context) -> None:
    """Tidak setuju: nothing is stored."""
    query = _query_of(update)
    await answer_query(query)
    await _drop_buttons(query)
    if isinstance(query.message, Message):
        await query.message.reply_text(
            context._(
                "Understood: nothing has been stored. You can register later by sending /start."
            )
        )


# --- answers: text, contact, buttons ----------------------------------------------------------


async def answer_text(update: Update, context: Context) -> None:
    """A text answer to the current step (or a nudge when there is no registration)."""
    message = message_of(update)
    draft = await _draft_or_hint(message, update, context)
    if draft is None:
        return
    step = Step(draft.step or Step.NIK)
    text = message.text or ""
    if STEPS[step].kind == "buttons":
        await ask_again(message, draft, context, context._("Please choose one of the buttons."))
        return
    try:
        values = await READERS[step](text, draft, context)
    except Retry as retry:
        await ask_again(message, draft, context, context._(retry.message).format(**retry.params))
        return
    except ParseError as error:
        await ask_again(message, draft, context, context._(error.message))
        return
    await _save_and_continue(message, update, draft, step, values, context)


async def answer_contact(update: Update, context: Context) -> None:
    """A shared contact: accepted at the phone step when it is the sender's own."""
    message = message_of(update)
    draft = await _draft_or_hint(message, update, context)
    if draft is None:
        return
    contact = message.contact
    if draft.step != Step.PHONE or contact is None:
        await ask_again(message, draft, context, context._("I did not ask for a contact here."))
        return
    if contact.user_id != user_of(update).id:
        await ask_again(
            message,
            draft,
            context,
            context._("Please share your own number, not someone else's contact."),
        )
        return
    try:
        phone = parse_phone(contact.phone_number)
    except InvalidPhone as error:
        await ask_again(message, draft, context, context._(error.message))
        return
    await _save_and_continue(message, update, draft, Step.PHONE, {"phone": phone}, context)


async def answer_other(update: Update, context: Context) -> None:
    """Photos, stickers, voice, locations...: say what is needed instead."""
    message = message_of(update)
    draft = await _draft_or_hint(message, update, context)
    if draft is None:
        return
    step = Step(draft.step or Step.NIK)
    if STEPS[step].kind == "buttons":
        reason = context._("Please choose one of the buttons.")
    else:
        reason = context._("I can only read text here.")
    await ask_again(message, draft, context, reason)


async def answer_button(update: Update, context: Context) -> None:
    """A button of the registration keyboards (`reg:<step>:<value>`, untrusted)."""
    query = _query_of(update)
    user = user_of(update)
    parts = (query.data or "").split(":", 2)
    draft = await context.services.applications.open_for(user_id=user.id)
    if is_redelivery(update, draft):
        return
    message = query.message if isinstance(query.message, Message) else None
    if (
        draft is None
        or draft.status not in EDITABLE_STATUSES
        or len(parts) != 3
        or message is None
    ):
        await answer_query(query, context._("This button is no longer active."))
        return
    _prefix, step_name, value = parts
    if step_name != draft.step:
        await answer_query(query, context._("This button is no longer active."))
        await ask_again(message, draft, context)
        return
    step = Step(step_name)
    chooser = CHOICES.get(step)
    if chooser is None:
        # Forged: this step is answered by typing, it never had buttons.
        await answer_query(query, context._("This button is no longer active."))
        return
    try:
        chosen = await chooser(value, draft, context)
    except Retry:
        await answer_query(query, context._("This button is no longer active."))
        return
    if isinstance(chosen, Navigation):
        work = _navigate(message, update, draft, step, chosen, context)
    else:
        label, values = chosen
        work = _save_and_continue(message, update, draft, step, values, context, (query, label))
    await alongside_answer(query, work)


async def alongside_answer(query: CallbackQuery, work: Coroutine[Any, Any, None]) -> None:
    """Answer a press while doing its work: the worker waits one Telegram round trip less.

    Both always finish; a failure of either is raised afterwards, for the error handler.
    """
    results = await asyncio.gather(answer_query(query), work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


# --- readers: one small function per kind of answer --------------------------------------------

Values = dict[str, Any]
Reader = Callable[[str, Application, Context], Any]


async def read_nik(text: str, draft: Application, context: Context) -> Values:
    """The NIK: valid, within the daily attempt limit, and not registered elsewhere."""
    nik = parse_nik(text, today=_today(context))
    services = context.services
    nik_hash = hash_identifier(nik.digits, services.secret)
    # Counted before anything is looked up: "already registered" tells a stranger something
    # about the NIK too, so it costs an attempt like any other answer.
    if not await _within_daily_limit(draft, AttemptKind.NIK, nik_hash, context):
        raise Retry(
            N_("Too many different NIKs were tried from this account today. Try tomorrow.")
        )
    taken = await services.applications.nik_is_taken(
        nik_hash=nik_hash, except_application=draft.id, user_id=draft.telegram_user_id
    )
    if taken:
        # One text whatever the other application's status, so trying NIKs from a few
        # accounts does not tell who applied and how it went; staff see the second claim.
        raise Retry(
            N_(
                "This NIK cannot be registered from this account. If someone else used your "
                "NIK, or you registered before from another account, contact the office: "
                "{office} (or see /bantuan)."
            ),
            office=escape(context.settings.office_contact),
        )
    return {"nik": nik.digits, "nik_hash": nik_hash, "jenis_kelamin": nik.gender}


async def read_name(text: str, _draft: Application, _context: Context) -> Values:
    """The name as on the KTP, in the worker's own spelling."""
    return {"nama": parse_name(text)}


async def read_birth_date(text: str, _draft: Application, context: Context) -> Values:
    """The date of birth in any of the forms workers type."""
    return {"tanggal_lahir": parse_date(text, today=_today(context))}


async def read_phone(text: str, _draft: Application, _context: Context) -> Values:
    """A typed mobile number."""
    return {"phone": parse_phone(text)}


async def read_occupation_other(text: str, _draft: Application, _context: Context) -> Values:
    """A short description of an occupation not in the list."""
    return {"occupation_other": _short_text(text, OCCUPATION_OTHER_MAX)}


async def read_address(text: str, _draft: Application, _context: Context) -> Values:
    """The domicile address, as free text."""
    return {"alamat": _short_text(text, ADDRESS_MAX)}


async def read_heir_name(text: str, _draft: Application, _context: Context) -> Values:
    """The heir's name."""
    return {"heir_name": parse_name(text)}


READERS: dict[Step, Reader] = {
    Step.NIK: read_nik,
    Step.NAME: read_name,
    Step.BIRTH_DATE: read_birth_date,
    Step.PHONE: read_phone,
    Step.OCCUPATION_OTHER: read_occupation_other,
    Step.ADDRESS: read_address,
    Step.HEIR_NAME: read_heir_name,
}


def _short_text(text: str, limit: int) -> str:
    # The shared free-text rule: bidi overrides, zero-width characters, Hangul fillers and
    # stacked marks never reach a staff card or an export.
    cleaned = clean_free_text(text)
    if not cleaned:
        raise Retry(N_("Please write a few words."))
    if len(cleaned) > limit:
        raise Retry(N_("That is too long: at most {limit} characters."), limit=str(limit))
    return cleaned


# --- choices: buttons ------------------------------------------------------------------------


@dataclass(frozen=True)
class Navigation:
    """A button that moves within the form without answering (back, edit, send, cancel)."""

    target: str


Choice = tuple[str, Values] | Navigation
Chooser = Callable[[str, Application, Context], Any]


async def choose_occupation(value: str, _draft: Application, context: Context) -> Choice:
    """One of the listed occupations."""
    if value not in OCCUPATIONS:
        raise Retry("unknown occupation")
    values: Values = {"occupation": value}
    if value != OTHER_OCCUPATION:
        values["occupation_other"] = None
    return context._(OCCUPATIONS[value]), values


async def choose_kecamatan(value: str, _draft: Application, context: Context) -> Choice:
    """A kecamatan of the programme's region."""
    regency = context.settings.program_region_code[:4]
    district = context.services.regions.district(value)
    if district is None or not value.startswith(regency):
        raise Retry("unknown kecamatan")
    return district.name, {"kecamatan_code": value, "kelurahan_code": None}


async def choose_kelurahan(value: str, draft: Application, context: Context) -> Choice:
    """A kelurahan of the chosen kecamatan, or back to the kecamatan list."""
    if value == "back":
        return Navigation(Step.KECAMATAN)
    village = context.services.regions.village(value)
    if village is None or not value.startswith(draft.kecamatan_code or "-"):
        raise Retry("unknown kelurahan")
    return village.name, {"kelurahan_code": value}


async def choose_relation(value: str, _draft: Application, context: Context) -> Choice:
    """The heir's relationship."""
    if value not in HEIR_RELATIONS:
        raise Retry("unknown relation")
    return context._(HEIR_RELATIONS[value]), {"heir_relation": value}


async def choose_summary(value: str, _draft: Application, _context: Context) -> Choice:
    """Send, change or cancel."""
    if value not in ("send", "edit", "cancel"):
        raise Retry("unknown action")
    return Navigation(value)


async def choose_field(value: str, _draft: Application, _context: Context) -> Choice:
    """A field to change, or back to the summary."""
    if value == "back":
        return Navigation(Step.SUMMARY)
    if value not in FIELD_LABELS:
        raise Retry("unknown field")
    return Navigation(f"fix:{value}")


CHOICES: dict[Step, Chooser] = {
    Step.OCCUPATION: choose_occupation,
    Step.KECAMATAN: choose_kecamatan,
    Step.KELURAHAN: choose_kelurahan,
    Step.HEIR_RELATION: choose_relation,
    Step.SUMMARY: choose_summary,
    Step.EDIT: choose_field,
}


# --- moving on ---------------------------------------------------------------------------------


def next_step(step: Step, draft: Application, values: Values) -> Step:
    """The step after `step`, given the answer just read."""
    if step is Step.OCCUPATION and values.get("occupation") == OTHER_OCCUPATION:
        return Step.OCCUPATION_OTHER
    if step is Step.KECAMATAN:
        return Step.KELURAHAN
    if draft.return_to_summary:
        return Step.SUMMARY
    if step is Step.OCCUPATION_OTHER:
        return Step.KECAMATAN
    if step is Step.KELURAHAN:
        return Step.ADDRESS
    if step is Step.HEIR_RELATION:
        return Step.SUMMARY
    return FLOW[FLOW.index(step) + 1]


async def _save_and_continue(
    message: Message,
    update: Update,
    draft: Application,
    step: Step,
    values: Values,
    context: Context,
    answered: Answered | None = None,
) -> None:
    """Store an answer, assessing eligibility once the identity is complete, then ask on."""
    services = context.services
    merged = _merged(draft, values)
    # A submitted application sent back for a fix: a correction that fails the check must
    # never cost the worker their place, so nothing below closes it.
    correcting = draft.status != Status.DRAFT
    if step in IDENTITY_STEPS and merged.nik and merged.nama and merged.tanggal_lahir:
        claim = _claim_of(merged, context)
        # One NIK is enough to guess its owner's name and birth date check after check, so
        # the checks have a daily limit of their own. Past it, nothing is looked up or stored
        # and the same step is asked again.
        key = hash_identifier(claim_key(claim), services.secret)
        if not await _within_daily_limit(draft, AttemptKind.CLAIM, key, context):
            if correcting:
                await _keep_in_review(message, update, draft, step, context)
                return
            reason = context._(
                "Too many different names and dates of birth were checked from this account "
                "today. Try tomorrow."
            )
            await ask_again(message, draft, context, reason)
            return
        decision, record = await _assess(claim, context)
        values = {**values, **_assessment_values(decision, record)}
        if correcting and not decision.eligible:
            # The previous answers stay; the guarded no-op write still notices an application
            # decided meanwhile (and records the update against redelivery).
            outcome = await services.applications.advance(
                application_id=_id(draft),
                from_step=step,
                to_step=step,
                values={},
                update_id=update.update_id,
            )
            if outcome is Outcome.STALE:
                await _resync(message, update, context)
            elif outcome is Outcome.DONE:
                # The same neutral wording for every finding.
                await ask_again(message, draft, context, context._(CORRECTION_MISMATCH))
            return
        if correcting:
            values["identity_mismatch_at"] = None
        if not decision.eligible:
            outcome = await services.applications.mark_ineligible(
                application_id=_id(draft),
                user_id=draft.telegram_user_id,
                from_status=draft.status,
                from_step=step,
                values=values,
                reasons=encode_reasons(decision.reasons),
                update_id=update.update_id,
            )
            if outcome is Outcome.DONE:
                await message.reply_text(
                    context._(worker_message(decision)),
                    parse_mode=ParseMode.HTML,
                    reply_markup=ReplyKeyboardRemove(),
                )
            elif outcome is Outcome.STALE:
                await _resync(message, update, context)
            return
    following = next_step(step, draft, values)
    outcome = await services.applications.advance(
        application_id=_id(draft),
        from_step=step,
        to_step=following,
        values=values,
        update_id=update.update_id,
        return_to_summary=False if following is Step.SUMMARY else None,
    )
    if outcome is Outcome.STALE:
        await _resync(message, update, context)
        return
    if outcome is not Outcome.DONE:
        return
    merged = _merged(draft, {**values, "step": following})
    if step is Step.PHONE:
        # The contact keyboard must go; an inline keyboard cannot replace it in one message.
        await message.reply_text(
            context._("Number saved: {phone}").format(
                phone=format_phone_display(str(merged.phone))
            ),
            reply_markup=ReplyKeyboardRemove(),
        )
    await ask(message, following, merged, context, answered)


async def _keep_in_review(
    message: Message, update: Update, draft: Application, step: Step, context: Context
) -> None:
    """The daily checks ran out while correcting: back to review, flagged, answers kept."""
    outcome = await context.services.applications.keep_in_review(
        application_id=_id(draft),
        user_id=draft.telegram_user_id,
        from_step=step,
        update_id=update.update_id,
    )
    if outcome is Outcome.STALE:
        await _resync(message, update, context)
        return
    if outcome is not Outcome.DONE:
        return
    await message.reply_text(
        context._(
            "Your correction could not be matched to the programme's list today. Your "
            "application {code} stays in review with the data you sent before; the staff "
            "will look at it and contact you if needed."
        ).format(code=escape(draft.code or "-")),
        parse_mode=ParseMode.HTML,
        reply_markup=ReplyKeyboardRemove(),
    )


async def _navigate(
    message: Message,
    update: Update,
    draft: Application,
    step: Step,
    navigation: Navigation,
    context: Context,
) -> None:
    """Buttons that move without answering: back, change a field, send, cancel."""
    applications = context.services.applications
    target = navigation.target
    if target == "cancel":
        await applications.discard_draft(user_id=draft.telegram_user_id)
        await message.reply_text(_cancelled_text(context))
        return
    if target == "send":
        await _submit(message, update, draft, context)
        return
    if target.startswith("fix:"):
        following, back = Step(target.removeprefix("fix:")), True
    else:
        following, back = Step(target), draft.return_to_summary
    outcome = await applications.advance(
        application_id=_id(draft),
        from_step=step,
        to_step=following,
        values={},
        update_id=update.update_id,
        return_to_summary=back or following is Step.EDIT,
    )
    if outcome is Outcome.DONE:
        await ask(message, following, _merged(draft, {"step": following}), context)
    elif outcome is Outcome.STALE:
        await _resync(message, update, context)


async def _submit(message: Message, update: Update, draft: Application, context: Context) -> None:
    """Kirim: one transaction turns the draft into a pending application with a number."""
    services = context.services
    result = await services.applications.submit(
        application_id=_id(draft),
        user_id=draft.telegram_user_id,
        from_step=Step.SUMMARY,
        prefix=context.settings.application_code_prefix,
        update_id=update.update_id,
    )
    if result.outcome is Outcome.NIK_TAKEN:
        await message.reply_text(
            context._(
                "This NIK has just been registered from another account, so your application "
                "was not sent. If that was not you, contact the office (see /bantuan)."
            )
        )
        return
    if result.outcome is Outcome.STALE:
        # A staff decision (or another tap) changed the application meanwhile.
        await _resync(message, update, context)
        return
    if result.outcome is not Outcome.DONE:
        return
    await message.reply_text(
        context._(
            "✅ Your application has been sent.\n"
            "Application number: <b>{code}</b>\n"
            "Status: waiting for verification.\n"
            "Send /status at any time to see where it stands; we will also message you here."
        ).format(code=escape(result.code or "")),
        parse_mode=ParseMode.HTML,
    )


async def _resync(message: Message, update: Update, context: Context) -> None:
    """The draft changed elsewhere (another process, expiry): show where it really is now."""
    fresh = await _draft_or_hint(message, update, context)
    if fresh is not None:
        await ask_again(message, fresh, context)


async def cancel(update: Update, context: Context) -> None:
    """/batal: leave the registration at any step; the draft is deleted."""
    message = message_of(update)
    removed = await context.services.applications.discard_draft(user_id=user_of(update).id)
    if removed:
        await message.reply_text(_cancelled_text(context), reply_markup=ReplyKeyboardRemove())
    else:
        await message.reply_text(
            context._("There is no registration in progress to cancel. Send /start to begin.")
        )


def _cancelled_text(context: Context) -> str:
    return context._(
        "Registration cancelled; your answers have been deleted. Send /start to begin again."
    )


# --- eligibility -------------------------------------------------------------------------------


async def _within_daily_limit(
    draft: Application, kind: AttemptKind, key_hash: str, context: Context
) -> bool:
    """Count a NIK look-up or an eligibility check for the account; False once it has used
    today's NIK_ATTEMPTS_PER_DAY distinct ones (the same one again is free)."""
    services = context.services
    return await services.applications.record_attempt(
        user_id=draft.telegram_user_id,
        kind=kind,
        key_hash=key_hash,
        since=services.clock() - ATTEMPT_WINDOW,
        limit=context.settings.nik_attempts_per_day,
    )


def _claim_of(draft: Application, context: Context) -> Claim:
    """The identity a draft claims, once its NIK, name and birth date are all there."""
    today = _today(context)
    nik = parse_nik(draft.nik or "", today=today)
    return Claim(nik=nik, name=draft.nama or "", birth_date=draft.tanggal_lahir or today)


async def _assess(claim: Claim, context: Context) -> tuple[Decision, DtsenPerson | None]:
    """Check the identity against DTSEN and the programme rules."""
    services = context.services
    settings = context.settings
    today = _today(context)
    record = await services.dtsen.find(nik=claim.nik.digits)
    return assess(claim, record, settings.eligibility_rules, today), record


def _assessment_values(decision: Decision, record: DtsenPerson | None) -> Values:
    """What staff need later: the matched DTSEN facts, the name score and any flags."""
    return {
        "name_score": decision.name_score,
        "dtsen_desil": record.desil if record else None,
        "dtsen_kode_wilayah": record.kode_wilayah if record else None,
        "eligibility_reasons": encode_reasons(decision.reasons) if decision.reasons else None,
    }


# --- small helpers -----------------------------------------------------------------------------


def is_redelivery(update: Update, draft: Application | None) -> bool:
    """The update this draft applied last, delivered again (Telegram resends what was not
    confirmed). Equality only: ids restart lower after a week without updates. Older repeats
    are stopped by the log of handled updates (common.DuplicateGuard)."""
    return draft is not None and update.update_id == draft.last_update_id


def _today(context: Context) -> date:
    return context.services.clock().date()


def _id(draft: Application) -> int:
    if draft.id is None:
        raise ValueError("draft without id")
    return draft.id


def _merged(draft: Application, values: Values) -> Application:
    """A copy of the draft with new values, for prompts and checks (never persisted)."""
    return draft.model_copy(update=values)


def _query_of(update: Update) -> CallbackQuery:
    query = update.callback_query
    if query is None:
        raise ValueError("update carries no callback query")
    return query


async def _drop_buttons(query: CallbackQuery) -> None:
    # A double tap finds the buttons already gone: nothing to remove.
    with contextlib.suppress(BadRequest):
        await query.edit_message_reply_markup(reply_markup=None)


async def _mark_choice(query: CallbackQuery, label: str) -> None:
    """Replace the pressed keyboard by the choice, so the chat reads as a record."""
    message = query.message
    if not isinstance(message, Message) or message.text is None:
        return
    # The same choice pressed twice leaves the text unchanged, which Telegram refuses.
    with contextlib.suppress(BadRequest):
        await query.edit_message_text(
            f"{escape(message.text)}\n\n✅ {escape(label)}", parse_mode=ParseMode.HTML
        )


async def _draft_or_hint(message: Message, update: Update, context: Context) -> Application | None:
    """The worker's draft, or a hint about /start and /status when there is none."""
    existing = await context.services.applications.open_for(user_id=user_of(update).id)
    if is_redelivery(update, existing):
        return None
    if existing is not None and existing.status in EDITABLE_STATUSES and existing.step:
        return existing
    if existing is not None:
        await message.reply_text(
            context._(
                "Your application {code} has been sent. Send /status to see where it stands."
            ).format(code=existing.code or "-")
        )
    else:
        await message.reply_text(
            context._(
                "Send /start to register, /status to check your application or /bantuan for help."
            )
        )
    return None


def build() -> list[BaseHandler[Update, Context, None]]:
    """The registration handlers (private chats; edits are never answers)."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    return [
        CommandHandler(["start", "daftar"], start, filters=private),
        CommandHandler("batal", cancel, filters=private),
        CallbackQueryHandler(consent_given, pattern=r"^consent:yes$"),
        CallbackQueryHandler(consent_refused, pattern=r"^consent:no$"),
        CallbackQueryHandler(answer_button, pattern=r"^reg:"),
        MessageHandler(private & filters.TEXT & ~filters.COMMAND, answer_text),
        MessageHandler(private & filters.CONTACT, answer_contact),
    ]


def build_fallbacks() -> list[BaseHandler[Update, Context, None]]:
    """Any other message in a private chat: re-ask the current step."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    return [MessageHandler(private & ~filters.COMMAND, answer_other)]
