"""Appeals (sanggah) in Telegram: a worker files one with /sanggah (or the button under a
refusal, rejection or waiting-list notice), staff answer from the same command's queue, and
overdue appeals go to the admins once a day.

/sanggah is one command for both audiences: the caller's numeric id decides (staff get the
queue); every staff button re-checks the caller and its callback data is re-validated.
"""

from __future__ import annotations

import logging

from telegram import ForceReply, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from domain.appeals import (
    APPEALABLE,
    MAX_ANSWER_CHARS,
    MAX_APPEAL_CHARS,
    Outcome,
    is_overdue,
    parse_ticket,
)
from domain.budget import local_today
from domain.eligibility import decode_reasons
from domain.roles import Role, StaffMember
from domain.text import is_ascii_number
from handlers import account
from handlers.common import answer_query, escape, message_of, user_of
from handlers.context import Context
from handlers.language import Lookup, translator_for
from handlers.notifications import deliver_notifications
from handlers.staff_access import in_scope, member_of, staff_button
from handlers.views import format_date
from storage.appeals import Answer, Filing, FilingOutcome
from storage.models import Appeal, Application
from usecases.appeals import (
    NotPermitted,
    TextProblem,
    answer_appeal,
    escalate_overdue,
    file_appeal,
    may_answer,
)

log = logging.getLogger(__name__)

QUEUE_SHOWN = 10
# `/sanggah <word> SGH-000123 [reason]`: what staff type to answer.
STAFF_WORDS = {"buka": Outcome.REOPEN, "masuk": Outcome.INCLUDE, "tolak": Outcome.DISMISS}
BUTTON_OUTCOMES = {"ro": Outcome.REOPEN, "in": Outcome.INCLUDE, "dm": Outcome.DISMISS}


# --- the worker's side ---------------------------------------------------------------------------


# A ForceReply prompt starts with this mark; a text replying to a bot message that starts with
# it is an appeal. The state lives in the reply itself (Telegram sends the message replied to),
# so it survives restarts and needs no row.
PROMPT_MARK = "📝"


class _ReplyToPrompt(filters.MessageFilter):
    """A message replying to the bot's appeal prompt."""

    def filter(self, message: Message) -> bool:
        replied = message.reply_to_message
        return (
            replied is not None
            and replied.from_user is not None
            and replied.from_user.is_bot
            and (replied.text or "").startswith(PROMPT_MARK)
        )


async def _ask_for_appeal(message: Message, context: Context) -> None:
    """The prompt the worker answers by replying (Telegram opens the reply for them)."""
    await message.reply_text(
        PROMPT_MARK
        + " "
        + context._(
            "Write your appeal as a reply to this message: what do you think is wrong, and why? "
            "Text only, at most {limit} characters. You can also send /sanggah followed by "
            "your reason."
        ).format(limit=MAX_APPEAL_CHARS),
        reply_markup=ForceReply(selective=True),
    )


async def _worker_appeal(update: Update, context: Context) -> None:
    """/sanggah TEXT from a worker: file it, or say how to."""
    message = message_of(update)
    # The words after the command, however they were separated (spaces are collapsed anyway).
    text = " ".join(context.args or [])
    if not text:
        await _ask_for_appeal(message, context)
        return
    await _file(update, context, text)


async def appeal_reply(update: Update, context: Context) -> None:
    """A reply to the appeal prompt: the appeal's text."""
    await _file(update, context, message_of(update).text or "")


async def _file(update: Update, context: Context, text: str) -> None:
    message = message_of(update)
    services = context.services
    outcome = await file_appeal(
        services.appeals,
        context.settings,
        user_id=user_of(update).id,
        text=text,
        now=services.clock(),
    )
    await message.reply_text(_filing_text(outcome, context), parse_mode=ParseMode.HTML)


def _filing_text(outcome: FilingOutcome | TextProblem, context: Context) -> str:
    _ = context._
    if outcome is TextProblem.TOO_SHORT:
        return _("Please write a little more: what do you think is wrong, and why?")
    if outcome is TextProblem.TOO_LONG:
        return _("That is too long: please keep your appeal to {limit} characters.").format(
            limit=MAX_APPEAL_CHARS
        )
    assert isinstance(outcome, FilingOutcome)
    if outcome.result is Filing.NOT_APPEALABLE:
        return _(
            "Only an application that was refused, rejected or put on the waiting list can be "
            "appealed. Send /status to see yours."
        )
    appeal = outcome.appeal
    ticket = escape(appeal.ticket or "-") if appeal else "-"
    if outcome.result is Filing.ALREADY_OPEN:
        return _(
            "You already have an open appeal, <b>{ticket}</b>. Staff will answer it; you can "
            "appeal again once it is answered."
        ).format(ticket=ticket)
    assert appeal is not None
    return _(
        "Your appeal has been received.\nTicket number: <b>{ticket}</b>\n"
        "Staff will answer by {deadline}; we will message you here."
    ).format(ticket=ticket, deadline=format_date(appeal.deadline, context))


async def appeal_button(update: Update, context: Context) -> None:
    """`wa:<application id>` under a refusal: how to appeal, if it is the caller's own."""
    query = update.callback_query
    assert query is not None
    parts = (query.data or "").split(":")
    application = None
    if len(parts) == 2 and is_ascii_number(parts[1]):
        application = await context.services.applications.get(application_id=int(parts[1]))
    if (
        application is None
        or application.telegram_user_id != user_of(update).id
        or application.status not in APPEALABLE
    ):
        # Someone else's application, a forged id or a decided case: nothing to appeal here.
        await answer_query(query, context._("This button is no longer active."))
        return
    await answer_query(query)
    await _ask_for_appeal(message_of(update), context)


async def appeal_command(update: Update, context: Context) -> None:
    """/sanggah: staff get the appeal queue (or answer one); workers file an appeal."""
    member = await member_of(update, context)
    if member is None:
        await _worker_appeal(update, context)
        return
    args = context.args or []
    if args and args[0].lower() in STAFF_WORDS:
        await _typed_answer(update, context, member, STAFF_WORDS[args[0].lower()], args[1:])
        return
    await _queue(update, context, member)


# --- the staff's side ----------------------------------------------------------------------------


def appeal_card(appeal: Appeal, application: Application, context: Context) -> str:
    """One appeal as staff read it: ticket, deadline (red when overdue), the application, its
    DTSEN finding and the worker's text."""
    _ = context._
    overdue = is_overdue(appeal.deadline, local_today(context.services.clock()))
    findings = "; ".join(
        escape(_(reason.staff_template).format(**reason.params))
        for reason in decode_reasons(application.eligibility_reasons)
    )
    status = _(account.STATUS_WORDS.get(application.status, application.status))
    lines = [
        ("🔴 " if overdue else "")
        + _("<b>Appeal {ticket}</b> · answer by {deadline}").format(
            ticket=escape(appeal.ticket or "-"), deadline=format_date(appeal.deadline, context)
        ),
        _("Application {code} · {status}").format(
            code=escape(application.code or "-"), status=escape(status)
        ),
        _("DTSEN finding: {findings}").format(findings=findings or "-"),
    ]
    if application.decision_reason:
        lines.append(
            _("Reason given: {reason}").format(reason=escape(application.decision_reason))
        )
    lines.append(_("The worker writes: {text}").format(text=escape(appeal.text)))
    return "\n".join(lines)


def _staff_buttons(appeal: Appeal, context: Context) -> InlineKeyboardMarkup:
    _ = context._
    ident = appeal.id
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(_("↩️ Re-open for review"), callback_data=f"sa:ro:{ident}")],
            [
                InlineKeyboardButton(_("⭐ Include (admin)"), callback_data=f"sa:in:{ident}"),
                InlineKeyboardButton(_("✖️ Dismiss"), callback_data=f"sa:dm:{ident}"),
            ],
        ]
    )


async def _queue(update: Update, context: Context, member: StaffMember) -> None:
    message = message_of(update)
    entries = await context.services.appeals.open_queue(
        limit=QUEUE_SHOWN, kecamatan=member.kecamatan or None
    )
    if not entries:
        await message.reply_text(context._("No appeals are waiting."))
        return
    for appeal, application in entries:
        await message.reply_text(
            appeal_card(appeal, application, context),
            parse_mode=ParseMode.HTML,
            reply_markup=_staff_buttons(appeal, context),
        )


def _how_to_answer(outcome: Outcome, ticket: str, context: Context) -> str:
    word = next(word for word, value in STAFF_WORDS.items() if value is outcome)
    return context._(
        "Type the reason (at most {limit} characters; the worker reads a dismissal's):\n"
        "<code>/sanggah {word} {ticket} REASON</code>"
    ).format(limit=MAX_ANSWER_CHARS, word=word, ticket=escape(ticket))


async def appeal_action(update: Update, context: Context, member: StaffMember) -> None:
    """`sa:<ro|in|dm>:<appeal id>` under an appeal: re-open at once; the others ask for the
    written reason they need."""
    query = update.callback_query
    assert query is not None
    parts = (query.data or "").split(":")
    outcome = BUTTON_OUTCOMES.get(parts[1]) if len(parts) == 3 else None
    found = None
    if outcome is not None and is_ascii_number(parts[2]):
        found = await context.services.appeals.get(appeal_id=int(parts[2]))
    if outcome is None or found is None or not in_scope(member, found[1]):
        await answer_query(query, context._("This button is no longer active."))
        return
    if not may_answer(member, outcome):
        await context.services.review.record_denied(
            actor_id=member.user_id, action="button", detail=(query.data or "")[:60]
        )
        await answer_query(query, context._("Only an admin can include an application."))
        return
    await answer_query(query)
    appeal = found[0]
    if outcome is Outcome.REOPEN:
        await _answer(message_of(update), context, member, appeal.id or 0, outcome, None)
    else:
        await message_of(update).reply_text(
            _how_to_answer(outcome, appeal.ticket or "-", context), parse_mode=ParseMode.HTML
        )


async def _typed_answer(
    update: Update, context: Context, member: StaffMember, outcome: Outcome, args: list[str]
) -> None:
    message = message_of(update)
    appeal_id = parse_ticket(args[0]) if args else None
    found = await context.services.appeals.get(appeal_id=appeal_id) if appeal_id else None
    if found is None or not in_scope(member, found[1]):
        await message.reply_text(context._("No appeal with that ticket number."))
        return
    if not may_answer(member, outcome):
        await context.services.review.record_denied(
            actor_id=member.user_id, action="command", detail=f"/sanggah {outcome}"
        )
        await message.reply_text(context._("Only an admin can include an application."))
        return
    # The reason as typed, after the command, the word and the ticket.
    reason = (message.text or "").split(maxsplit=3)[3:]
    await _answer(message, context, member, found[0].id or 0, outcome, " ".join(reason))


async def _answer(
    message: Message,
    context: Context,
    member: StaffMember,
    appeal_id: int,
    outcome: Outcome,
    reason: str | None,
) -> None:
    services = context.services
    try:
        result = await answer_appeal(
            services.appeals,
            context.settings,
            appeal_id=appeal_id,
            outcome=outcome,
            actor=member,
            answer=reason,
            now=services.clock(),
        )
    except NotPermitted:
        await message.reply_text(context._("Only an admin can include an application."))
        return
    _ = context._
    if isinstance(result, TextProblem):
        ticket_of = await services.appeals.get(appeal_id=appeal_id)
        ticket = ticket_of[0].ticket if ticket_of else "-"
        await message.reply_text(
            _how_to_answer(outcome, ticket or "-", context), parse_mode=ParseMode.HTML
        )
        return
    appeal, application = result.appeal, result.application
    ticket = escape(appeal.ticket or "-") if appeal else "-"
    code = escape(application.code or "-") if application else "-"
    if result.result is Answer.DONE:
        status = _(account.STATUS_WORDS.get(result.to_status or "", result.to_status or ""))
        done = {
            Outcome.REOPEN: _("Appeal {ticket} upheld: application {code} is back in review."),
            Outcome.INCLUDE: _(
                "Appeal {ticket} upheld by manual inclusion: application {code} is now {status}."
            ),
            Outcome.DISMISS: _("Appeal {ticket} dismissed; the worker will read your reason."),
        }[outcome]
        await message.reply_text(done.format(ticket=ticket, code=code, status=escape(status)))
        context.application.create_task(deliver_notifications(context))
    elif result.result is Answer.OWN_APPLICATION:
        await message.reply_text(_("You cannot answer an appeal on your own application."))
    elif result.result is Answer.CONFLICT:
        await message.reply_text(
            _(
                "Appeal {ticket} cannot re-open application {code}: its NIK or the worker's "
                "account has another open application now."
            ).format(ticket=ticket, code=code)
        )
    else:
        await message.reply_text(
            _("Appeal {ticket} has already been answered.").format(ticket=ticket)
        )


# --- escalation ---------------------------------------------------------------------


async def escalate_appeals(context: Context) -> None:
    """Daily: tell the admins about appeals past their deadline, each appeal once (its
    escalated_at is set before anyone is told), and the workers that it was passed on."""
    services = context.services
    escalation = await escalate_overdue(
        services.appeals, services.staff, services.settings, now=services.clock()
    )
    if not escalation.appeals:
        return
    for admin in escalation.admins:
        _ = (await translator_for(services, admin, lookup=Lookup.STORED))._
        lines = [_("🔴 Appeals past their deadline, unanswered:")]
        lines += [
            _("{ticket} (application {code}), due {deadline}").format(
                ticket=escape(appeal.ticket or "-"),
                code=escape(code),
                deadline=appeal.deadline.isoformat(),
            )
            for appeal, code in escalation.appeals
        ]
        lines.append(_("Send /sanggah to answer them."))
        try:
            await context.bot.send_message(admin, "\n".join(lines), parse_mode=ParseMode.HTML)
        except TelegramError as error:
            # At most once: escalated_at is already set (see storage.appeals.escalate_overdue).
            log.warning("appeal escalation to an admin not sent: %s", error)
    await deliver_notifications(context)


def build() -> list[BaseHandler[Update, Context, None]]:
    """/sanggah for workers and staff, the worker's button and the staff's buttons."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    return [
        CommandHandler("sanggah", appeal_command, filters=private),
        MessageHandler(private & filters.TEXT & ~filters.COMMAND & _ReplyToPrompt(), appeal_reply),
        CallbackQueryHandler(appeal_button, pattern=r"^wa:"),
        CallbackQueryHandler(staff_button(Role.REVIEWER, appeal_action), pattern=r"^sa:"),
    ]
