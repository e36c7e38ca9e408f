"""/perpanjang (admins): renew last year's cohort in bulk, confirmed with a button, and list the
members no longer eligible with the reason (/perpanjang daftar)."""

from __future__ import annotations

import contextlib

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, filters

from domain.budget import local_today
from domain.eligibility import decode_reasons
from domain.lifecycle import renewals_that_fit
from domain.pii import mask_nik
from domain.roles import Role, StaffMember
from handlers.common import answer_query, escape, message_of
from handlers.context import Context
from handlers.staff_access import staff_button, staff_command
from usecases.cohort import renew_all, renewal_overview

# Members listed per message (Telegram's 4096 characters); the rest are counted.
SHOWN = 25
LIST_WORD = "daftar"
PREFIX = "rn:"


async def renewals(update: Update, context: Context, _member: StaffMember) -> None:
    """/perpanjang: the count to confirm; /perpanjang daftar: those no longer eligible."""
    message = message_of(update)
    args = context.args or []
    if args and args[0].lower() == LIST_WORD:
        await _not_renewable(message, context)
        return
    if args:
        await message.reply_text(context._("Usage: /perpanjang, or /perpanjang daftar"))
        return
    text, markup = await _overview(context)
    await message.reply_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)


async def _overview(context: Context) -> tuple[str, InlineKeyboardMarkup | None]:
    _ = context._
    settings = context.settings
    overview = await renewal_overview(
        context.services.database,
        context.services.review,
        budget=settings.budget,
        today=local_today(context.services.clock()),
        shown=0,
    )
    lines: list[str] = []
    markup = None
    if not settings.program_renewal_first:
        lines.append(
            _(
                "Renewals do not come first (PROGRAM_RENEWAL_FIRST=false): the {count} "
                "renewals waiting are in the normal queue (/antrian) with new registrations."
            ).format(count=overview.waiting)
        )
    elif not overview.waiting:
        lines.append(_("No renewal is waiting."))
    else:
        fits = renewals_that_fit(overview.waiting, places_taken=0, quota=overview.places_free)
        lines.append(
            _(
                "<b>Renewals waiting</b>: {count} of last year's participants still meet the "
                "rules. Places free: {free}."
            ).format(count=overview.waiting, free=overview.places_free)
        )
        if fits < overview.waiting:
            lines.append(
                _("Only {fits} fit: {left} would stay waiting until a place frees.").format(
                    fits=fits, left=overview.waiting - fits
                )
            )
        if fits:
            label = _("✅ Renew {count}").format(count=fits)
            button = InlineKeyboardButton(label, callback_data=f"{PREFIX}{overview.waiting}")
            markup = InlineKeyboardMarkup([[button]])
            lines.append(_("Each renewal is approved and recorded in the audit log."))
    if overview.not_renewable:
        lines.append(
            _("{count} no longer meet the rules: /perpanjang daftar lists them.").format(
                count=overview.not_renewable
            )
        )
    return "\n".join(lines), markup


async def _not_renewable(message: Message, context: Context) -> None:
    _ = context._
    overview = await renewal_overview(
        context.services.database,
        context.services.review,
        budget=context.settings.budget,
        today=local_today(context.services.clock()),
        shown=SHOWN,
    )
    if not overview.not_renewable:
        await message.reply_text(_("No member of last year's cohort was found ineligible."))
        return
    lines = [
        _(
            "<b>No longer eligible</b>: {count} of last year's participants (number · NIK · "
            "name · reason):"
        ).format(count=overview.not_renewable)
    ]
    for application in overview.not_renewable_shown:
        reasons = "; ".join(
            _(reason.staff_template).format(**reason.params)
            for reason in decode_reasons(application.eligibility_reasons)
            if reason.blocking
        )
        lines.append(
            f"<code>{escape(application.code or '-')}</code> · "
            f"{escape(mask_nik(application.nik or ''))} · {escape(application.nama or '-')} · "
            f"{escape(reasons)}"
        )
    if overview.not_renewable > len(overview.not_renewable_shown):
        more = overview.not_renewable - len(overview.not_renewable_shown)
        lines.append(_("… and {count} more.").format(count=more))
    await message.reply_text("\n".join(lines), parse_mode=ParseMode.HTML)


async def confirm(update: Update, context: Context, member: StaffMember) -> None:
    """`rn:<count>`: approve the waiting renewals, if `count` is still how many wait."""
    query = update.callback_query
    assert query is not None
    _ = context._
    count = (query.data or "").removeprefix(PREFIX)
    # Callback data is untrusted: only a count as the overview writes it, and only while
    # renewals come first.
    if not count.isdigit() or len(count) > 7 or not context.settings.program_renewal_first:
        await answer_query(query, _("This button is no longer active."))
        return
    await answer_query(query)
    result = await renew_all(
        context.services.database,
        actor_id=member.user_id,
        budget=context.settings.budget,
        today=local_today(context.services.clock()),
        expected=int(count),
        update_id=update.update_id,
    )
    if result.changed:
        text, markup = await _overview(context)
        text = _("The number waiting changed meanwhile; here it is now.") + "\n\n" + text
    else:
        text = _("✅ {count} renewals approved.").format(count=result.approved)
        if result.still_waiting:
            text += "\n" + _("{count} stay waiting: no place is free.").format(
                count=result.still_waiting
            )
        markup = None
    if isinstance(query.message, Message):
        # The confirmation goes away with its button: a second press cannot repeat it.
        with contextlib.suppress(BadRequest):
            await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)
            return
        await query.message.reply_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)


def build() -> list[BaseHandler[Update, Context, None]]:
    """The admin's renewal command and its confirmation button."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    return [
        CommandHandler("perpanjang", staff_command(Role.ADMIN, renewals), filters=private),
        CallbackQueryHandler(staff_button(Role.ADMIN, confirm), pattern=rf"^{PREFIX}"),
    ]
