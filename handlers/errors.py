"""The error handler: log (masked) and tell the worker their place is kept, or, when the
database cannot take writes (full or read-only disk), that nothing was saved and to try later."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import Forbidden

from handlers.context import Context
from handlers.language import Lookup, translator_for
from storage.engine import is_unwritable

log = logging.getLogger(__name__)


async def on_error(update: object, context: Context) -> None:
    """Log the failure without personal data and apologise to the user, if there is one."""
    error = context.error
    update_id = update.update_id if isinstance(update, Update) else None
    unwritable = error is not None and is_unwritable(error)
    if unwritable:
        # An operator problem, not a bug: one line is enough (the disk needs attention).
        log.error("update %s not saved: the database cannot take writes: %s", update_id, error)
    else:
        log.error("update %s failed: %r", update_id, error, exc_info=error)
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    if isinstance(error, Forbidden):
        return
    if update.effective_chat.type != "private":
        return
    user = update.effective_user
    if user is not None and context.translator is None:
        # The error handler gets a context of its own: pick the user's language again.
        context.translator = await translator_for(
            context.services, user.id, user.language_code, lookup=Lookup.MEMORY
        )
    if unwritable:
        text = context._(
            "Sorry, we could not save your answer: our system cannot store data right now. "
            "Please try again later; you will continue from the same question."
        )
    else:
        text = context._(
            "Sorry, something went wrong on our side. Your answers so far are saved: "
            "please send your last answer again in a moment."
        )
    try:
        await context.bot.send_message(update.effective_chat.id, text)
    except Exception:
        log.warning("could not tell user about failed update %s", update_id)
