"""Rendering shared by the worker's and the staff's handlers: dates and occupations in words,
and the registration's prompts, keyboards and summary, built from the flow table."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime
from typing import Any

from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest

from domain import flow
from domain.dates import format_date_en, format_date_id
from domain.flow import FIELD_LABELS, STEPS, Facts, Step
from domain.phones import format_phone_display
from domain.program import OTHER_OCCUPATION, occupation_label, relation_label
from domain.reports import WIB, format_moment
from handlers.common import escape
from handlers.context import Context
from storage.models import Application

# A button answer: the query whose message may become the next question, and the choice.
Answered = tuple[CallbackQuery, str]


def format_date(value: date, context: Context) -> str:
    """A date the way the worker's language writes it."""
    if context.tr.language == "en":
        return format_date_en(value)
    return format_date_id(value)


def format_time(moment: datetime, *, short: bool = False) -> str:
    """A moment as people in the programme area read it: in WIB (`25-11-2026 12:00 WIB`;
    short: `25-11 12:00`), never UTC."""
    if short:
        return f"{moment.astimezone(UTC) + WIB:%d-%m %H:%M}"
    return format_moment(moment, WIB)


def today_local(context: Context) -> date:
    """Today's date in WIB (at 02:00 WIB on the 1st it is the 1st, not UTC's 31st)."""
    return (context.services.clock().astimezone(UTC) + WIB).date()


def coverage_text(start: date | None, context: Context) -> str:
    """`Covered from 1 January 2027` for a start still to come, `Covered since ...` after."""
    _ = context._
    if start is None:
        return _("Covered from {start}").format(start="-")
    if start > today_local(context):
        return _("Covered from {start}").format(start=format_date(start, context))
    return _("Covered since {start}").format(start=format_date(start, context))


def occupation_text(draft: Application, context: Context) -> str:
    """The occupation in words, with the worker's own text for "other"."""
    if draft.occupation == OTHER_OCCUPATION and draft.occupation_other:
        return draft.occupation_other
    label = occupation_label(draft.occupation)
    return context._(label) if label else "-"


def facts_of(draft: Application, context: Context) -> Facts:
    """What the flow's readers and keyboards need to know about this draft and programme."""
    return Facts(
        today=context.services.clock().date(),
        regions=context.services.regions,
        regency=context.settings.program_region_code[:4],
        kecamatan_code=draft.kecamatan_code,
    )


def _button(label: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=data)


def is_assisted(draft: Application) -> bool:
    """A draft an operator fills in for a worker who has no Telegram (yet)."""
    return draft.telegram_user_id is None and draft.assisted_by is not None


def callback_prefix(draft: Application) -> str:
    """`reg:` on a worker's own keyboards; `as:<draft id>:` on an operator's, so a press names
    the very draft it answers (and a forged one is caught)."""
    return f"as:{draft.id}:" if is_assisted(draft) else "reg:"


def keyboard_for(step: Step, draft: Application, context: Context) -> Any:
    """The keyboard that goes with a step's prompt (inline buttons or the contact button)."""
    _ = context._
    spec = flow.keyboard_for(step, facts_of(draft, context))
    if spec is None:
        return None
    if spec == flow.CONTACT:
        if is_assisted(draft):
            return None  # the operator's own number is not the worker's: it is typed
        return ReplyKeyboardMarkup(
            [[KeyboardButton(_("📱 Share my number"), request_contact=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )

    prefix = callback_prefix(draft)

    def button(choice: flow.Button) -> InlineKeyboardButton:
        label = _(choice.label) if choice.translate else choice.label
        return _button(label, f"{prefix}{step}:{choice.value}")

    buttons = [button(choice) for choice in spec.buttons]
    rows = [buttons[i : i + spec.columns] for i in range(0, len(buttons), spec.columns)]
    if spec.last is not None:
        rows.append([button(spec.last)])
    return InlineKeyboardMarkup(rows)


def progress_of(step: Step) -> str:
    """`(3/9)` for steps of the main flow, empty otherwise."""
    progress = flow.progress_of(step)
    if progress is None:
        return ""
    return f"({progress[0]}/{progress[1]}) "


def prompt_text(step: Step, draft: Application, context: Context) -> str:
    """The question of a step, with its example; the summary shows the whole draft."""
    _ = context._
    row = STEPS[step]
    if step is Step.SUMMARY:
        return _(row.prompt) + "\n\n" + summary_text(draft, context)
    text = progress_of(step) + _(row.prompt)
    if is_assisted(draft):
        text = _("👤 Registering a worker: answer with the worker's data.") + "\n" + text
    if step is Step.KELURAHAN and draft.kecamatan_code:
        text += "\n" + _("Kecamatan: {name}").format(
            name=escape(context.services.regions.name(draft.kecamatan_code) or "")
        )
    if row.example:
        text += "\n" + _("Example: {example}").format(example=escape(_(row.example)))
    return text


# Fields the summary shows on another field's line rather than their own.
SHOWN_WITH = {Step.HEIR_RELATION: Step.HEIR_NAME}


def summary_text(draft: Application, context: Context) -> str:
    """Everything the worker entered, escaped for HTML, in the order the flow's table asks it
    (a field added to the table without a value here fails loudly, never silently missing)."""
    _ = context._
    regions = context.services.regions
    born = draft.tanggal_lahir
    values = {
        Step.NIK: draft.nik or "-",
        Step.NAME: draft.nama or "-",
        Step.BIRTH_DATE: format_date(born, context) if born else "-",
        Step.PHONE: format_phone_display(draft.phone) if draft.phone else "-",
        Step.ADDRESS: draft.alamat or "-",
        Step.KECAMATAN: ", ".join(
            regions.name(code) or "-"
            for code in (draft.kelurahan_code, draft.kecamatan_code)
            if code
        )
        or "-",
        Step.OCCUPATION: occupation_text(draft, context),
        Step.HEIR_NAME: (
            f"{draft.heir_name or '-'} ({_(relation_label(draft.heir_relation)) or '-'})"
        ),
    }
    return "\n".join(
        f"<b>{escape(_(label))}:</b> {escape(values[step])}"
        for step, label in FIELD_LABELS.items()
        if step not in SHOWN_WITH
    )


async def ask(
    message: Message,
    step: Step,
    draft: Application,
    context: Context,
    answered: Answered | None = None,
    *,
    remove_keyboard: bool = False,
) -> None:
    """Send the prompt of `step`; after a button answer, the pressed message becomes it.
    `remove_keyboard`: a step without buttons takes away the reply keyboard of the last."""
    text = prompt_text(step, draft, context)
    markup = keyboard_for(step, draft, context)
    if markup is None and remove_keyboard:
        markup = ReplyKeyboardRemove()
    if answered is not None:
        query, label = answered
        # One call instead of two (mark the choice, then send the next question), and the
        # chat still reads as a record: the choice heads the next question. A reply keyboard
        # cannot ride on an edit, and an old message may refuse edits: then send anew.
        if markup is None or isinstance(markup, InlineKeyboardMarkup):
            with contextlib.suppress(BadRequest):
                await query.edit_message_text(
                    f"✅ {escape(label)}\n\n{text}", parse_mode=ParseMode.HTML, reply_markup=markup
                )
                return
        await mark_choice(query, label)
    await message.reply_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)


async def ask_again(
    message: Message,
    draft: Application,
    context: Context,
    reason: str | None = None,
    *,
    preface: str | None = None,
) -> None:
    """Re-ask the current step, after a short explanation when there is one (a `reason` the
    answer was not taken, or a plain `preface` such as "let's continue"): one message."""
    step = Step(draft.step or Step.NIK)
    text = prompt_text(step, draft, context)
    if reason:
        text = f"⚠️ {reason}\n\n{text}"
    if preface:
        text = f"{escape(preface)}\n\n{text}"
    await message.reply_text(
        text, parse_mode=ParseMode.HTML, reply_markup=keyboard_for(step, draft, context)
    )


async def mark_choice(query: CallbackQuery, label: str) -> None:
    """Replace the pressed keyboard by the choice, so the chat reads as a record."""
    message = query.message
    if not isinstance(message, Message) or message.text is None:
        return
    # The same choice pressed twice leaves the text unchanged, which Telegram refuses.
    with contextlib.suppress(BadRequest):
        await query.edit_message_text(
            f"{escape(message.text)}\n\n✅ {escape(label)}", parse_mode=ParseMode.HTML
        )
