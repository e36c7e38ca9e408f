"""The welcome a worker sees first."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import BaseHandler, CommandHandler, filters

from bot.context import Context
from handlers.common import escape, message_of


async def start(update: Update, context: Context) -> None:
    """Greet the worker and say what the programme gives."""
    settings = context.settings
    text = context._(
        "Welcome to the BPJS Ketenagakerjaan registration for informal workers.\n"
        "The city pays your JKK (work accident) and JKM (death benefit) premiums: "
        "it is free for you."
    )
    contact = context._("Questions? Contact {office}.").format(
        office=escape(settings.office_contact)
    )
    await message_of(update).reply_text(f"{text}\n\n{contact}", parse_mode=ParseMode.HTML)


def build() -> list[BaseHandler[Update, Context, None]]:
    """The welcome handlers."""
    return [CommandHandler(["start", "daftar"], start, filters=filters.ChatType.PRIVATE)]
