"""The worker's notices about an appeal, and the button that starts one (used by the outbox
under rejection and waiting-list notices, and under a refusal)."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message

from domain.appeals import DTSEN_ROUTE, Outcome, needs_dtsen_route
from domain.eligibility import decode_reasons
from handlers.common import escape
from handlers.context import Context
from storage.appeals import ESCALATED_NOTICE, NOTICE
from storage.models import Application, Notification


def appeal_markup(application_id: int, context: Context) -> InlineKeyboardMarkup:
    """The one button that starts an appeal of this application."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    context._("📝 Appeal this decision"), callback_data=f"wa:{application_id}"
                )
            ]
        ]
    )


async def offer_appeal(message: Message, application_id: int | None, context: Context) -> None:
    """Under a refusal: one line saying it can be appealed, with the button."""
    if application_id is None:
        return
    await message.reply_text(
        context._("If you think this is wrong, you can appeal (sanggah)."),
        reply_markup=appeal_markup(application_id, context),
    )


APPEAL_NOTICES = frozenset({*NOTICE.values(), ESCALATED_NOTICE})


async def appeal_notice(
    notification: Notification, application: Application, context: Context
) -> str:
    """The worker's message about their appeal (the context's translator is the worker's)."""
    _ = context._
    appeal = (
        await context.services.appeals.latest_for(application_id=notification.application_id)
        if notification.application_id is not None
        else None
    )
    ticket = escape((appeal.ticket if appeal else None) or "-")
    code = escape(application.code or "-")
    kind = notification.kind
    if kind == ESCALATED_NOTICE:
        return _(
            "Your appeal {ticket} is taking longer than planned, so it has been passed to the "
            "programme's admins. We will message you with the answer."
        ).format(ticket=ticket)
    if kind == NOTICE[Outcome.REOPEN]:
        return _(
            "Your appeal {ticket} was upheld: your application {code} goes back to the staff "
            "for review. Send /status to follow it."
        ).format(ticket=ticket, code=code)
    if kind == NOTICE[Outcome.INCLUDE]:
        return _(
            "Your appeal {ticket} was upheld: the programme's staff have included your "
            "application {code}. Send /status to see where it stands."
        ).format(ticket=ticket, code=code)
    text = _("Your appeal {ticket} was not upheld.\nReason: {reason}").format(
        ticket=ticket, reason=escape((appeal.answer if appeal else None) or "-")
    )
    if needs_dtsen_route(decode_reasons(application.eligibility_reasons)):
        settings = context.settings
        route = _(DTSEN_ROUTE).format(
            office=escape(settings.office_contact), phone=escape(settings.office_phone)
        )
        text += "\n\n" + route
    return text
