"""The error handler: log (masked) and tell the worker their place is kept."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import Forbidden

from bot.context import Context

log = logging.getLogger(__name__)


async def on_error(update: object, context: Context) -> None:
    """Log the failure without personal data and apologise to the user, if there is one."""
    error = context.error
    update_id = update.update_id if isinstance(update, Update) else None
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
        services = context.services
        context.translator = services.catalogs.pick(
            services.languages.get(user.id), user.language_code
        )
    try:
        await context.bot.send_message(
            update.effective_chat.id,
            context._(
                "Sorry, something went wrong on our side. Your answers so far are saved: "
                "please send your last answer again in a moment."
            ),
        )
    except Exception:
        log.warning("could not tell user about failed update %s", update_id)
