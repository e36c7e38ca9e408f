"""The button under the DTSEN re-check's message: a worker who now qualifies carries on."""

from __future__ import annotations

import contextlib

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest
from telegram.ext import BaseHandler, CallbackQueryHandler

from domain.i18n import N_
from domain.text import is_ascii_number
from handlers.common import answer_query, user_of
from handlers.context import Context
from handlers.views import ask
from usecases.recheck import NotResumed, Resumed, resume_requalified

PREFIX = "rc:"
RESUME_TEXT = N_(
    "Good news: after the city updated the programme's list, your data now matches it. You can "
    "carry on with your registration from where you stopped."
)
RESUME_LABEL = N_("▶️ Continue my registration")


def resume_markup(application_id: int, context: Context) -> InlineKeyboardMarkup:
    """The one button of the message, naming the application it re-opens."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    context._(RESUME_LABEL), callback_data=f"{PREFIX}{application_id}"
                )
            ]
        ]
    )


async def resume(update: Update, context: Context) -> None:
    """`rc:<id>` (untrusted): re-open the presser's own requalified application and ask the
    question it stopped before; anything else says the button is no longer active."""
    query = update.callback_query
    if query is None:
        return
    raw = (query.data or "").removeprefix(PREFIX)
    message = query.message if isinstance(query.message, Message) else None
    if not is_ascii_number(raw) or len(raw) > 12 or message is None:
        await answer_query(query, context._("This button is no longer active."))
        return
    outcome = await resume_requalified(
        context.services.applications,
        user_id=user_of(update).id,
        application_id=int(raw),
        update_id=update.update_id,
    )
    if outcome is NotResumed.DUPLICATE:
        return
    if isinstance(outcome, Resumed):
        await answer_query(query)
        with contextlib.suppress(BadRequest):  # pressed twice: the button is already gone
            await query.edit_message_reply_markup(reply_markup=None)
        await ask(message, outcome.step, outcome.draft, context)
        return
    if outcome is NotResumed.BUSY:
        await answer_query(query)
        await message.reply_text(
            context._("You already have an application in progress. Send /status to see it.")
        )
        return
    await answer_query(query, context._("This button is no longer active."))


def build() -> list[BaseHandler[Update, Context, None]]:
    """The re-check button (private chats only, like every button: see bot/app.py)."""
    return [CallbackQueryHandler(resume, pattern=r"^rc:")]
