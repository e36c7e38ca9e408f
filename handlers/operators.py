"""Operators and community links: /daftarkan (an operator registers a worker without Telegram,
through the same conversation), /status NUMBER for what they registered, /operator (admins:
the fraud figures) and /komunitas (admins: community link codes).

Every command and button checks the caller's numeric Telegram id and role on every update.
"""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, filters

from domain.flow import Step
from domain.operators import OperatorFigures
from domain.reports import format_percent
from domain.roles import Role, StaffMember
from domain.text import clean_free_text
from handlers import account
from handlers.common import answer_query, escape, message_of
from handlers.context import Context
from handlers.staff_access import member_of, staff_button, staff_command
from handlers.views import ask, ask_again
from handlers.welcome import welcome_text
from usecases.operators import OverLimit, add_community, figures, open_assisted

COMMUNITY_NAME_MAX = 100


async def register_worker(update: Update, context: Context, member: StaffMember) -> None:
    """/daftarkan: the consent text to read aloud, then the worker's confirmation (by the
    operator); an assisted registration already open is continued instead."""
    message = message_of(update)
    draft = await context.services.operators.assisted_draft(operator_id=member.user_id)
    if draft is not None:
        preface = context._(
            "You are registering a worker. Let's continue where you left off, or send "
            "/batal to cancel it."
        )
        await ask_again(message, draft, context, preface=preface)
        return
    _ = context._
    text = (
        _("<b>Read this to the worker</b>, then confirm that they heard it and agree.")
        + "\n\n"
        # The whole consent text: the worker hears it read aloud, with no button to open.
        + welcome_text(context, details=True)
    )
    buttons = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    _("✅ The worker heard it and agrees"), callback_data="asc:yes"
                )
            ],
            [InlineKeyboardButton(_("No"), callback_data="asc:no")],
        ]
    )
    await message.reply_text(text, parse_mode=ParseMode.HTML, reply_markup=buttons)


async def consent_button(update: Update, context: Context, member: StaffMember) -> None:
    """The operator confirms (or not) the worker's consent: open the assisted draft."""
    query = update.callback_query
    if query is None or not isinstance(query.message, Message):
        return
    await answer_query(query)
    message = query.message
    if query.data != "asc:yes":
        await message.reply_text(context._("Understood: nothing has been stored."))
        return
    services = context.services
    opened = await open_assisted(
        services.operators,
        operator_id=member.user_id,
        daily_limit=context.settings.operator_daily_limit,
        now=services.clock(),
        update_id=update.update_id,
    )
    if isinstance(opened, OverLimit):
        await message.reply_text(
            context._(
                "You have registered {limit} workers today, the most allowed per operator "
                "and day. Please continue tomorrow, or ask an admin."
            ).format(limit=opened.limit)
        )
        return
    if opened is None:
        return
    if opened.new:
        await ask(message, Step(opened.draft.step or Step.NIK), opened.draft, context)
    else:
        await ask_again(message, opened.draft, context)


async def status(update: Update, context: Context) -> None:
    """/status NUMBER: an operator checks an application they registered (only those); for
    anyone else /status reads as usual."""
    member = await member_of(update, context)
    if member is None or member.role is not Role.OPERATOR:
        await account.status(update, context)
        return
    message = message_of(update)
    code = (context.args or [""])[0]
    application = await context.services.operators.registered_by(
        operator_id=member.user_id, code=code
    )
    if application is None:
        await message.reply_text(
            context._("None of the applications you registered has that number.")
        )
        return
    text = await account.status_text(application, context)
    owner = (
        context._("The worker has taken it over from their own Telegram.")
        if application.telegram_user_id is not None
        else context._("The worker has not taken it over from Telegram yet.")
    )
    await message.reply_text(f"{text}\n{escape(owner)}", parse_mode=ParseMode.HTML)


def _figures_line(row: OperatorFigures, context: Context) -> str:
    return context._(
        "{operator}: today {today} · busiest day {busiest} · total {total} · refused "
        "{refused} ({share}) · at night {night} · shared phone numbers {phones}"
    ).format(
        operator=row.operator_id,
        today=row.today,
        busiest=row.busiest_day,
        total=row.total,
        refused=row.refused,
        share=format_percent(row.refused, row.total),
        night=row.night,
        phones=row.shared_phones,
    )


async def operators(update: Update, context: Context, _member: StaffMember) -> None:
    """/operator (admins): every operator with their registrations and the fraud signs."""
    services = context.services
    rows = await figures(services.operators, services.staff, now=services.clock())
    lines = [
        context._("<b>Operators</b> (today and night hours in WIB; night: 22:00-05:00)"),
        context._("Daily limit per operator: {limit}").format(
            limit=context.settings.operator_daily_limit
        ),
    ]
    lines += [escape(_figures_line(row, context)) for row in rows[:60]]
    if not rows:
        lines.append(context._("No operators yet. Add one: /staf tambah ID operator AREA"))
    await message_of(update).reply_text("\n".join(lines)[:4000], parse_mode=ParseMode.HTML)


async def communities(update: Update, context: Context, member: StaffMember) -> None:
    """/komunitas (admins): the community links with their counts; /komunitas tambah NAME."""
    message = message_of(update)
    args = context.args or []
    services = context.services
    username = context.bot.username
    if args and args[0] == "tambah":
        name = clean_free_text(" ".join(args[1:]))
        if not name or len(name) > COMMUNITY_NAME_MAX:
            await message.reply_text(
                context._("Give the community a name of at most {limit} characters.").format(
                    limit=COMMUNITY_NAME_MAX
                )
            )
            return
        community = await add_community(services.operators, name=name, actor_id=member.user_id)
        await message.reply_text(
            context._("Link for {name}:\n{link}").format(
                name=escape(community.name),
                link=escape(f"https://t.me/{username}?start={community.code}"),
            ),
            parse_mode=ParseMode.HTML,
        )
        return
    rows = await services.operators.communities()
    lines = [context._("<b>Communities</b> (registrations / sent)")]
    lines += [
        f"{escape(row.name)} · {counts.registrations} / {counts.completions} · "
        + escape(f"https://t.me/{username}?start={row.code}")
        for row, counts in rows[-60:]
    ]
    lines.append(context._("Add one: /komunitas tambah NAME"))
    await message.reply_text("\n".join(lines)[:4000], parse_mode=ParseMode.HTML)


def build() -> list[BaseHandler[Update, Context, None]]:
    """Operator and community commands (private chats only; every one re-checks the caller).
    Registered before the worker's /status, which `/status NUMBER` from others falls back to."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    return [
        CommandHandler(
            "daftarkan", staff_command(Role.OPERATOR, register_worker), filters=private
        ),
        CommandHandler("status", status, filters=private, has_args=True),
        CommandHandler("operator", staff_command(Role.ADMIN, operators), filters=private),
        CommandHandler("komunitas", staff_command(Role.ADMIN, communities), filters=private),
        CallbackQueryHandler(staff_button(Role.OPERATOR, consent_button), pattern=r"^asc:"),
    ]
