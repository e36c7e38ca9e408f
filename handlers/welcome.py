"""The worker's first screen: the city, the programme, who it is for and a short consent
question (UU PDP), with the whole consent text one tap away; /start, and the answer to it."""

from __future__ import annotations

import contextlib

from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest

from domain.flow import Step
from domain.lifecycle import EDITABLE_STATUSES, Status
from domain.program import CONSENT_TEXT, CONSENT_VERSION
from handlers.common import (
    alongside_answer,
    answer_query,
    drop_buttons,
    escape,
    message_of,
    query_of,
    user_of,
)
from handlers.context import Context
from handlers.views import ask_again, keyboard_for, prompt_text


def _button(label: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=data)


def consent_buttons(
    context: Context, *, details: bool = False, community: str = ""
) -> InlineKeyboardMarkup:
    """Agree / No, and on the short screen a button to the consent's details."""
    # The agreement records which text was on screen when it was given; a community link's code
    # rides on the buttons (callback data), so no process memory is needed to count it.
    suffix = f":{community}" if community else ""
    agree = f"consent:yes:details{suffix}" if details else f"consent:yes{suffix}"
    rows = [[_button(context._("✅ I agree"), agree), _button(context._("No"), "consent:no")]]
    if not details:
        rows.append([_button(context._("ℹ️ More about your data"), f"consent:details{suffix}")])
    return InlineKeyboardMarkup(rows)


def parse_consent(data: str) -> tuple[bool, str]:
    """`consent:yes[:details][:CODE]` or `consent:details[:CODE]` -> (details shown, CODE)."""
    rest = data.removeprefix("consent:").removeprefix("yes").removeprefix(":")
    details = rest == "details" or rest.startswith("details:")
    if details:
        rest = rest.removeprefix("details").removeprefix(":")
    return details, rest


def welcome_text(context: Context, *, details: bool = False) -> str:
    """The first screen: the city, the programme, who it is for and a short consent question
    (UU PDP); with `details`, the whole consent text instead of the short question."""
    settings = context.settings
    welcome = context._(
        "Welcome to <b>{program}</b>, {city}.\n"
        "The city pays your BPJS Ketenagakerjaan premiums (JKK work accident, JKM death "
        "benefit): free for you. For informal workers aged {min_age}-{max_age} listed in DTSEN."
    ).format(
        program=escape(settings.program_name),
        city=escape(settings.city_name),
        min_age=settings.program_min_age,
        max_age=settings.program_max_age,
    )
    if not details:
        consent = context._(
            "To check and register you, we store your NIK, name, date of birth, phone, work, "
            "address and heir (UU PDP). Do you agree?"
        )
        return f"{welcome}\n\n{consent}"
    consent = context._(CONSENT_TEXT).format(
        draft_hours=settings.draft_expiry_hours, ineligible_days=settings.ineligible_retention_days
    )
    return f"{welcome}\n\n{consent}"


async def consent_details(update: Update, context: Context) -> None:
    """The consent's details, in place of the short screen, with Agree / No."""
    query = update.callback_query
    if query is None:
        raise ValueError("update carries no callback query")
    await answer_query(query)
    # Pressed twice: the text is already the detailed one.
    _details, community = parse_consent(query.data or "")
    with contextlib.suppress(BadRequest):
        await query.edit_message_text(
            welcome_text(context, details=True),
            parse_mode=ParseMode.HTML,
            reply_markup=consent_buttons(context, details=True, community=community),
        )


async def start(update: Update, context: Context) -> None:
    """/start and /daftar: welcome and consent, or where the worker already is."""
    message = message_of(update)
    user = user_of(update)
    existing = await context.services.applications.open_for(user_id=user.id)
    if existing is not None and existing.status in EDITABLE_STATUSES and existing.step:
        preface = context._(
            "You are in the middle of your registration. Let's continue where you "
            "left off, or send /batal to cancel and start over."
        )
        await ask_again(message, existing, context, preface=preface)
        return
    if existing is not None:
        await message.reply_text(
            context._(
                "You already have an application: {code}. Send /status to see where it stands."
            ).format(code=existing.code or "-")
        )
        return
    # Arrived by a community link (/start CODE): unknown codes are ignored.
    code = (context.args or [""])[0][:16]
    if code and await context.services.operators.community_by_code(code=code) is None:
        code = ""
    await message.reply_text(
        welcome_text(context),
        parse_mode=ParseMode.HTML,
        reply_markup=consent_buttons(context, community=code),
    )


async def consent_given(update: Update, context: Context) -> None:
    """Setuju: open the draft (storing the consent version and time) and ask the NIK."""
    query = query_of(update)
    await alongside_answer(query, _open_draft(update, query, context))


async def _open_draft(update: Update, query: CallbackQuery, context: Context) -> None:
    user = user_of(update)
    applications = context.services.applications
    # No read first: the insert itself refuses a second open application (unique index), and
    # only then is the existing one looked up. Saves a query for nearly every worker.
    existing = applications.cached_draft(user_id=user.id)
    if existing is None:
        _details, code = parse_consent(query.data or "")
        community = await context.services.operators.community_by_code(code=code) if code else None
        existing = await applications.start_draft(
            user_id=user.id,
            chat_id=query.message.chat.id if query.message else user.id,
            consent_version=CONSENT_VERSION,
            first_step=Step.NIK,
            update_id=update.update_id,
            community_id=community.id if community else None,
        ) or await applications.open_for(user_id=user.id)
    message = query.message
    if existing is not None and existing.status == Status.DRAFT and isinstance(message, Message):
        # One call: the consent message keeps its text, records the choice and asks the NIK.
        step = Step(existing.step or Step.NIK)
        markup = keyboard_for(step, existing, context)
        text = (
            f"{welcome_text(context, details=parse_consent(query.data or '')[0])}"
            f"\n\n{escape(context._('✅ I agree'))}"
            f"\n\n{prompt_text(step, existing, context)}"
        )
        if not isinstance(markup, ReplyKeyboardMarkup):
            # Too old to edit, or pressed twice: the buttons go and the step is asked anew.
            with contextlib.suppress(BadRequest):
                await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)
                return
    await drop_buttons(query)
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
    query = query_of(update)
    await answer_query(query)
    await drop_buttons(query)
    if isinstance(query.message, Message):
        await query.message.reply_text(
            context._(
                "Understood: nothing has been stored. You can register later by sending /start."
            )
        )


async def try_again(update: Update, context: Context) -> None:
    """ "Try again" under a refusal: the refusal stays as it was read, and the registration
    starts anew (the same NIK costs no new attempt; other checks count as usual)."""
    query = query_of(update)
    await answer_query(query)
    await drop_buttons(query)
    await start(update, context)
