"""The worker's first screen: the city, the programme, who it is for and a short consent
question (UU PDP), with the whole consent text one tap away."""

from __future__ import annotations

import contextlib

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest

from domain.program import CONSENT_TEXT
from handlers.common import answer_query, escape
from handlers.context import Context


def _button(label: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=data)


def consent_buttons(context: Context, *, details: bool = False) -> InlineKeyboardMarkup:
    """Agree / No, and on the short screen a button to the consent's details."""
    # The agreement records which text was on screen when it was given.
    agree = "consent:yes:details" if details else "consent:yes"
    rows = [[_button(context._("✅ I agree"), agree), _button(context._("No"), "consent:no")]]
    if not details:
        rows.append([_button(context._("ℹ️ More about your data"), "consent:details")])
    return InlineKeyboardMarkup(rows)


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
    with contextlib.suppress(BadRequest):
        await query.edit_message_text(
            welcome_text(context, details=True),
            parse_mode=ParseMode.HTML,
            reply_markup=consent_buttons(context, details=True),
        )
