"""/hapusdata: a worker withdraws consent and their data is erased (UU PDP Art. 8-9)."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, filters

from domain.i18n import N_
from domain.lifecycle import PLACE_HOLDING
from handlers.common import answer_query, message_of, user_of
from handlers.context import Context
from handlers.notifications import deliver_notifications
from handlers.staff_decisions import offer_freed_place
from usecases.erasure import erase

# What a worker who held a place is told before and after erasing: what stays, why, how long.
KEPT_FOR_DEREGISTRATION = N_(
    "Because you held a place in the programme, the office keeps only your NIK, name, BPJS "
    "Ketenagakerjaan membership number (KPJ) and the dates you were approved, registered and "
    "erased. It must keep them (a legal obligation under UU PDP) to tell BPJS "
    "Ketenagakerjaan to stop the city paying your premium. They are deleted as soon as staff "
    "have done so; everything else is deleted now."
)


async def ask_erase(update: Update, context: Context) -> None:
    """Explain what erasing means (and what is kept) and ask for confirmation."""
    _ = context._
    buttons = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(_("🗑 Yes, delete my data"), callback_data="erase:yes")],
            [InlineKeyboardButton(_("No, keep it"), callback_data="erase:no")],
        ]
    )
    text = _(
        "Do you want to withdraw your consent and delete your data? Your registration ends: "
        "if you were approved or registered, you leave the programme and staff are told. "
        "This cannot be undone."
    )
    current = await context.services.applications.open_for(user_id=user_of(update).id)
    if current is not None and current.status in PLACE_HOLDING:
        text += "\n\n" + _(KEPT_FOR_DEREGISTRATION)
    await message_of(update).reply_text(text, reply_markup=buttons)


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
    erased = await erase(
        services.database,
        services.applications,
        services.staff,
        context.settings,
        user_id=user.id,
        languages=services.languages,
    )
    if message is not None:
        done = context._(
            "Your consent is withdrawn and your data has been deleted. You can register "
            "again at any time with /start."
        )
        if erased.kept_for_deregistration:
            done += "\n\n" + context._(KEPT_FOR_DEREGISTRATION)
        await message.reply_text(done)
    for code in erased.withdrawn_codes:
        text = context._("Consent withdrawn by the worker: {code} left the programme.").format(
            code=code
        )
        text += "\n" + context._(
            "Tell BPJS Ketenagakerjaan to stop the membership, then mark it done: /deregistrasi"
        )
        for staff_id in erased.staff_to_tell:
            try:
                await context.bot.send_message(staff_id, text)
            except Exception:
                continue
    if erased.offer is not None:
        await offer_freed_place(context, erased.offer)
        if erased.offer.promoted:
            # The promoted worker's notification waits in the outbox.
            context.application.create_task(deliver_notifications(context))


def build() -> list[BaseHandler[Update, Context, None]]:
    """The erasure command and its confirmation."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    return [
        CommandHandler("hapusdata", ask_erase, filters=private),
        CallbackQueryHandler(confirm_erase, pattern=r"^erase:(yes|no)$"),
    ]
