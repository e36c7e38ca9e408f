"""/hapusdata: a worker withdraws consent and their data is erased (UU PDP Art. 8-9)."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, filters

from bot.context import Context
from handlers.common import answer_query, message_of, user_of
from handlers.staff import offer_freed_place
from storage.applications import erase_user


async def ask_erase(update: Update, context: Context) -> None:
    """Explain what erasing means and ask for confirmation."""
    _ = context._
    buttons = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(_("🗑 Yes, delete my data"), callback_data="erase:yes")],
            [InlineKeyboardButton(_("No, keep it"), callback_data="erase:no")],
        ]
    )
    await message_of(update).reply_text(
        _(
            "Do you want to withdraw your consent and delete your data? Your registration ends: "
            "if you were approved or registered, you leave the programme and staff are told. "
            "This cannot be undone."
        ),
        reply_markup=buttons,
    )


async def confirm_erase(update: Update, context: Context) -> None:
    """The confirmation button: erase now (well within the 3x24 hours the law allows)."""
    query = update.callback_query
    if query is None:
        return
    await answer_query(query)
    message = query.message if isinstance(query.message, Message) else None
    if query.data != "erase:yes":
        if message is not None:
            await message.reply_text(context._("Nothing was deleted."))
        return
    user = user_of(update)
    services = context.services
    erasure = await erase_user(services.database, user_id=user.id)
    services.applications.forget(user_id=user.id)
    services.languages.pop(user.id, None)
    if message is not None:
        await message.reply_text(
            context._(
                "Your consent is withdrawn and your data has been deleted. You can register "
                "again at any time with /start."
            )
        )
    for code in erasure.withdrawn_codes:
        text = context._("Consent withdrawn by the worker: {code} left the programme.").format(
            code=code
        )
        for staff_id in sorted(context.settings.staff_ids):
            try:
                await context.bot.send_message(staff_id, text)
            except Exception:
                continue
    if erasure.withdrawn_codes:
        await offer_freed_place(context)


def build() -> list[BaseHandler[Update, Context, None]]:
    """The erasure command and its confirmation."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    return [
        CommandHandler("hapusdata", ask_erase, filters=private),
        CallbackQueryHandler(confirm_erase, pattern=r"^erase:(yes|no)$"),
    ]
