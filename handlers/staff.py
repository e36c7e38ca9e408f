"""Staff review in Telegram, wired: the queue, the review card, decisions, history, search and
the staff list, each in its own handlers/staff_*.py module.

Every command and every button checks the caller's numeric Telegram id and role on every
update (handlers/staff_access.py); callback data is untrusted and re-validated.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from domain.lifecycle import REQUIRED_ROLE, Decision
from domain.roles import Role
from handlers.context import Context
from handlers.staff_access import staff_button, staff_command
from handlers.staff_admin import history, staff_list
from handlers.staff_card import card_action, review, search
from handlers.staff_decisions import (
    approve_command,
    end_pending_input,
    fix_command,
    reason_confirmation,
    reject_command,
    typed_reason,
    withdraw_command,
)
from handlers.staff_queue import queue, queue_page


def build() -> list[BaseHandler[Update, Context, None]]:
    """Staff commands and buttons (private chats only; every one re-checks the caller)."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    reviewer, admin = Role.REVIEWER, Role.ADMIN
    return [
        CommandHandler("antrian", staff_command(reviewer, queue), filters=private),
        CommandHandler("tinjau", staff_command(reviewer, review), filters=private),
        *(
            CommandHandler(name, staff_command(REQUIRED_ROLE[decision], handler), filters=private)
            for name, decision, handler in (
                ("setujui", Decision.APPROVE, approve_command),
                ("tolak", Decision.REJECT, reject_command),
                ("perbaiki", Decision.FIX, fix_command),
                ("tarik", Decision.WITHDRAW, withdraw_command),
            )
        ),
        CommandHandler("riwayat", staff_command(reviewer, history), filters=private),
        CommandHandler("cari", staff_command(reviewer, search), filters=private),
        CommandHandler("staf", staff_command(admin, staff_list), filters=private),
        CallbackQueryHandler(staff_button(reviewer, queue_page), pattern=r"^sq:"),
        CallbackQueryHandler(staff_button(reviewer, card_action), pattern=r"^sv:"),
        CallbackQueryHandler(staff_button(reviewer, reason_confirmation), pattern=r"^sr:"),
    ]


def build_reason_input() -> list[BaseHandler[Update, Context, None]]:
    """A reviewer's typed rejection reason, checked before the registration flow sees text;
    commands and other buttons end the wait first (and then run as usual)."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    return [
        MessageHandler(private & filters.TEXT & ~filters.COMMAND, typed_reason),
        MessageHandler(private & filters.COMMAND, end_pending_input),
        CallbackQueryHandler(end_pending_input, pattern=r"^(?!sr:)"),
    ]
