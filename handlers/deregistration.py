"""/deregistrasi: erased workers who held a place, until staff have told BPJS to stop paying.

Reviewers see the list with masked NIKs; admins see the full NIK (BPJS needs it) and mark a
case done, which deletes what was kept (UU PDP: kept for a legal obligation, no longer).
"""

from __future__ import annotations

from datetime import datetime

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, filters

from domain.pii import mask_nik
from domain.roles import Role, StaffMember
from handlers.common import answer_query, escape, message_of
from handlers.context import Context
from handlers.staff_access import staff_button, staff_command
from storage.models import Deregistration

# One message holds this many cases (Telegram's 4096 characters); the oldest come first.
SHOWN = 25
DONE_WORD = "selesai"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value is not None else "-"


def _case_line(case: Deregistration, member: StaffMember) -> str:
    nik = case.nik if member.role is Role.ADMIN else mask_nik(case.nik)
    return (
        f"<code>{escape(case.code)}</code> · {escape(case.nama)} · NIK <code>{escape(nik)}</code>"
        f" · KPJ {escape(case.kpj_number or '-')} · {_when(case.approved_at)} / "
        f"{_when(case.enrolled_at)} / {_when(case.erased_at)}"
    )


async def deregistrations(update: Update, context: Context, member: StaffMember) -> None:
    """/deregistrasi lists the open cases; /deregistrasi selesai NUMBER marks one done."""
    message = message_of(update)
    args = context.args or []
    if args:
        if len(args) == 2 and args[0].lower() == DONE_WORD:
            await _complete(message, context, member, args[1])
        else:
            await message.reply_text(
                context._("Usage: /deregistrasi, or /deregistrasi selesai NUMBER (admins)")
            )
        return
    text, markup = await _listing(context, member, update.update_id)
    await message.reply_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)


async def _listing(
    context: Context, member: StaffMember, update_id: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    _ = context._
    repository = context.services.deregistrations
    cases = await repository.open_cases()
    if not cases:
        return _("No deregistration is waiting."), None
    if member.role is Role.ADMIN:
        # An admin reads full NIKs here (BPJS needs them): audited like the card's.
        await repository.record_nik_views(
            actor_id=member.user_id, cases=cases[:SHOWN], via="/deregistrasi", update_id=update_id
        )
    lines = [
        _("<b>Deregistrations waiting</b>: {count}").format(count=len(cases)),
        _(
            "Workers who held a place and erased their data. Only this is kept, so that BPJS "
            "Ketenagakerjaan can be told to stop the city's payment (number · name · NIK · KPJ "
            "· approved / enrolled / erased):"
        ),
    ]
    lines += [_case_line(case, member) for case in cases[:SHOWN]]
    if len(cases) > SHOWN:
        lines.append(_("… and {count} more.").format(count=len(cases) - SHOWN))
    if member.role is not Role.ADMIN:
        return "\n".join(lines), None
    lines.append(
        _(
            "Once BPJS Ketenagakerjaan has stopped the payment, mark it done (the kept data is "
            "then deleted): a button below, or /deregistrasi selesai NUMBER."
        )
    )
    buttons = [
        [
            InlineKeyboardButton(
                _("✅ {code} done").format(code=case.code), callback_data=f"dr:{case.code}"
            )
        ]
        for case in cases[:SHOWN]
    ]
    return "\n".join(lines), InlineKeyboardMarkup(buttons)


async def _complete(message: Message, context: Context, member: StaffMember, code: str) -> None:
    _ = context._
    if member.role is not Role.ADMIN:
        await message.reply_text(_("Only admins can mark a deregistration done."))
        return
    done = await context.services.deregistrations.complete(code=code[:20], actor_id=member.user_id)
    if done:
        await message.reply_text(
            _("Deregistration of {code} marked done; its kept data is deleted.").format(
                code=escape(code.upper())
            )
        )
    else:
        await message.reply_text(
            _("No open deregistration with the number {code}.").format(code=escape(code[:20]))
        )


async def done_button(update: Update, context: Context, member: StaffMember) -> None:
    """`dr:<number>` from the admin's list: mark that deregistration done."""
    query = update.callback_query
    assert query is not None
    await answer_query(query)
    if not isinstance(query.message, Message):
        return
    await _complete(query.message, context, member, (query.data or "").removeprefix("dr:"))
    # The list loses the case (and its button), so a second press cannot happen by mistake.
    text, markup = await _listing(context, member, update.update_id)
    await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)


def build() -> list[BaseHandler[Update, Context, None]]:
    """The list for staff and the admin's 'done' (command and button)."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    return [
        CommandHandler(
            "deregistrasi", staff_command(Role.REVIEWER, deregistrations), filters=private
        ),
        CallbackQueryHandler(staff_button(Role.ADMIN, done_button), pattern=r"^dr:"),
    ]
