"""A worker's own account: /status, /datasaya, /bahasa, /bantuan and unknown commands."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from config.catalogs import LANGUAGES
from domain.coverage import format_month
from domain.eligibility import Decision, decode_reasons
from domain.flow import FIELD_LABELS, STEPS, Step
from domain.i18n import N_
from domain.lifecycle import EDITABLE_STATUSES, Status
from domain.roles import Role, StaffMember
from handlers.common import answer_query, escape, message_of, user_of
from handlers.context import Context
from handlers.language import remember_language, translator_for
from handlers.refusals import refusal_text
from handlers.staff_menu import STAFF_COMMANDS, publish_staff_menu
from handlers.views import ask_again, coverage_text, format_time, summary_text
from storage.models import Application
from usecases.roles import staff_member

STATUS_WORDS: dict[str, str] = {
    Status.DRAFT: N_("registration in progress"),
    Status.INELIGIBLE: N_("not eligible"),
    Status.PENDING: N_("waiting for verification"),
    Status.NEEDS_FIX: N_("needs a correction from you"),
    Status.APPROVED: N_("approved"),
    Status.WAITLISTED: N_("on the waiting list"),
    Status.REJECTED: N_("rejected"),
    Status.ENROLLED: N_("registered with BPJS Ketenagakerjaan"),
    Status.WITHDRAWN: N_("withdrawn"),
    Status.CANCELLED: N_("cancelled"),
    Status.LAPSED: N_("cover lapsed (three months of premiums unpaid)"),
}
# A member of last year's cohort waiting for the admin's bulk renewal (/perpanjang).
RENEWAL_WORDS = N_("waiting for renewal")
APPEAL_STATUS_WORDS: dict[str, str] = {
    "open": N_("waiting for an answer"),
    "upheld": N_("upheld"),
    "dismissed": N_("not upheld"),
}
LANGUAGE_NAMES = {"id": "Bahasa Indonesia", "en": "English"}


async def status(update: Update, context: Context) -> None:
    """/status: the worker's own application in words."""
    message = message_of(update)
    application = await context.services.applications.latest_for(user_id=user_of(update).id)
    if application is None:
        await message.reply_text(
            context._("You have no application yet. Send /start to register.")
        )
        return
    await message.reply_text(await status_text(application, context), parse_mode=ParseMode.HTML)
    if application.status in EDITABLE_STATUSES and application.step:
        await ask_again(message, application, context)


async def status_text(application: Application, context: Context) -> str:
    """Number, status in words and what it means for this status."""
    _ = context._
    words = _(STATUS_WORDS.get(application.status, application.status))
    renewing = application.cohort_year is not None and application.status == Status.PENDING
    if renewing:
        words = _(RENEWAL_WORDS)
    lines = []
    if application.cohort_year is not None:
        lines.append(
            _("Participant of {year}: you were in last year's programme.").format(
                year=application.cohort_year
            )
        )
    if application.code:
        lines.append(_("Application number: <b>{code}</b>").format(code=escape(application.code)))
    lines.append(_("Status: <b>{status}</b>").format(status=escape(words)))
    if application.kpj_number and application.status != Status.ENROLLED:
        # Carried over from last year's membership.
        lines.append(_("KPJ card number: <b>{kpj}</b>").format(kpj=escape(application.kpj_number)))
    if application.status == Status.PENDING and not renewing:
        position = await context.services.applications.queue_position(application=application)
        lines.append(
            _("Your place in the verification queue: {position}.").format(position=position)
        )
    elif application.status == Status.WAITLISTED:
        position = await context.services.review.waitlist_position(application=application)
        lines.append(
            _("Your place on the waiting list: number {position}.").format(position=position)
        )
    elif application.status in (Status.REJECTED, Status.WITHDRAWN) and application.decision_reason:
        lines.append(_("Reason: {reason}").format(reason=escape(application.decision_reason)))
    elif application.status == Status.ENROLLED:
        lines.append(
            _("KPJ card number: <b>{kpj}</b>\n{coverage}").format(
                kpj=escape(application.kpj_number or "-"),
                coverage=coverage_text(application.coverage_start, context),
            )
        )
        if application.paid_through is not None:
            lines.append(
                _("Cover active until {month}").format(
                    month=format_month(application.paid_through, context.tr.language)
                )
            )
    elif application.status == Status.LAPSED:
        lines.append(
            _(
                "Three months of premiums were unpaid, so BPJS Ketenagakerjaan ended your "
                "cover. You can register again with /start."
            )
        )
    elif application.status == Status.INELIGIBLE:
        lines.append(ineligible_note(application, context))
    elif application.status == Status.NEEDS_FIX and application.fix_field:
        field = FIELD_LABELS.get(Step(application.fix_field), application.fix_field)
        lines.append(
            _("Staff asked you to correct: {field}. Answer the question below.").format(
                field=escape(_(field))
            )
        )
        if application.decision_reason:
            lines.append(_("Their note: {note}").format(note=escape(application.decision_reason)))
    elif application.status == Status.DRAFT:
        lines.append(_("Answer the question below to continue, or send /batal to cancel."))
    return "\n".join(lines)


def ineligible_note(application: Application, context: Context) -> str:
    """The same neutral wording the worker saw at the end of the check."""
    decision = Decision(
        eligible=False,
        reasons=decode_reasons(application.eligibility_reasons),
        name_score=application.name_score,
    )
    return refusal_text(decision, context)


async def my_data(update: Update, context: Context) -> None:
    """/datasaya: everything stored about the worker (UU PDP right of access)."""
    message = message_of(update)
    user = user_of(update)
    application = await context.services.applications.latest_for(user_id=user.id)
    if application is None:
        await message.reply_text(context._("We store no registration data about you."))
        return
    _ = context._
    consent = (
        _("Consent given: {when} (version {version})").format(
            when=format_time(application.consent_at),
            version=escape(application.consent_version or "-"),
        )
        if application.consent_at
        else ""
    )
    text = "\n".join(
        part
        for part in (
            _("<b>Your stored data</b>"),
            summary_text(application, context),
            _("Status: {status}").format(
                status=escape(_(STATUS_WORDS.get(application.status, application.status)))
            ),
            consent,
            await appeal_line(application, context),
        )
        if part
    )
    await message.reply_text(text, parse_mode=ParseMode.HTML)


async def appeal_line(application: Application, context: Context) -> str:
    """The worker's latest appeal on this application, as stored (their own words)."""
    if application.id is None:
        return ""
    appeal = await context.services.appeals.latest_for(application_id=application.id)
    if appeal is None:
        return ""
    return context._("Appeal {ticket} ({status}): {text}").format(
        ticket=escape(appeal.ticket or "-"),
        status=escape(context._(APPEAL_STATUS_WORDS.get(appeal.status, appeal.status))),
        text=escape(appeal.text),
    )


async def choose_language(update: Update, context: Context) -> None:
    """/bahasa: pick Bahasa Indonesia or English."""
    buttons = [
        [InlineKeyboardButton(LANGUAGE_NAMES[code], callback_data=f"lang:{code}")]
        for code in LANGUAGES
    ]
    await message_of(update).reply_text(
        context._("Choose your language:"), reply_markup=InlineKeyboardMarkup(buttons)
    )


async def set_language(update: Update, context: Context) -> None:
    """A language button: remember the choice for this user."""
    query = update.callback_query
    if query is None:
        return
    code = (query.data or "").removeprefix("lang:")
    if code not in LANGUAGES:
        await answer_query(query)
        return
    services = context.services
    user = user_of(update)
    await services.preferences.set_language(user_id=user.id, language=code)
    remember_language(services, user.id, code)
    context.translator = await translator_for(services, user.id, user.language_code)
    await answer_query(query)
    # A second tap on the same button finds the text already changed, which Telegram refuses;
    # then the question was asked again already.
    try:
        await query.edit_message_text(
            context._("Language set to {language}.").format(language=LANGUAGE_NAMES[code])
        )
    except BadRequest:
        return
    # The question the worker is at, again, in the language just chosen.
    application = await services.applications.open_for(user_id=user.id)
    if (
        application is not None
        and application.status in EDITABLE_STATUSES
        and isinstance(query.message, Message)
    ):
        await _remind_step(query.message, application, context)


async def help_text(update: Update, context: Context) -> None:
    """/bantuan: what the bot does, its commands and the office to contact."""
    _ = context._
    text = "\n".join(
        (
            _("<b>Help</b>"),
            _("/start – register for the programme (or continue)"),
            _("/status – see where your application stands"),
            _("/datasaya – see the data we store about you"),
            _("/batal – cancel the registration in progress"),
            _("/bahasa – change the language"),
            _("/hapusdata – withdraw consent and delete your data"),
            "",
            _("Office: {office}").format(office=escape(context.settings.office_contact)),
        )
    )
    member = await staff_member(
        user_of(update).id, settings=context.settings, staff=context.services.staff
    )
    if member is not None:
        text += "\n\n" + _staff_help(context, member)
        # Their menu too: Telegram refused it while they had never opened the bot.
        await publish_staff_menu(context.bot, context.services.catalogs, member.user_id, member)
    await message_of(update).reply_text(text, parse_mode=ParseMode.HTML)


def _staff_help(context: Context, member: StaffMember) -> str:
    """The staff section of /bantuan: the commands this member's role may use."""
    _ = context._
    role = _("admin") if member.role is Role.ADMIN else _("reviewer")
    lines = [_("<b>For staff</b> (you are {role})").format(role=role)]
    lines += [
        f"/{name} – {escape(_(description))}"
        for name, description, needed in STAFF_COMMANDS
        if member.can(needed) and name not in ("bahasa", "bantuan")
    ]
    return "\n".join(lines)


async def unknown_command(update: Update, context: Context) -> None:
    """A command the bot does not know: say so, and where the worker is."""
    message = message_of(update)
    unknown = context._("I don't know that command. Send /bantuan to see what I can do.")
    application = await context.services.applications.open_for(user_id=user_of(update).id)
    if (
        application is not None
        and application.status in EDITABLE_STATUSES
        and await _remind_step(message, application, context, preface=unknown)
    ):
        return
    await message.reply_text(unknown)


async def _remind_step(
    message: Message, application: Application, context: Context, *, preface: str | None = None
) -> bool:
    """The current question after `preface`, in one message; False when there is none."""
    if application.step and Step(application.step) in STEPS:
        await ask_again(message, application, context, preface=preface)
        return True
    return False


async def edited(update: Update, context: Context) -> None:
    """Edits are never answers: ask for a new message instead."""
    message = update.edited_message
    if message is None or message.chat.type != "private":
        return
    await message.reply_text(
        context._("I don't read edited messages. Please send your answer as a new message.")
    )


def build() -> list[BaseHandler[Update, Context, None]]:
    """Account commands for workers."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    return [
        CommandHandler("status", status, filters=private),
        CommandHandler("datasaya", my_data, filters=private),
        CommandHandler("bahasa", choose_language, filters=private),
        CommandHandler(["bantuan", "help"], help_text, filters=private),
        CallbackQueryHandler(set_language, pattern=r"^lang:"),
        MessageHandler(filters.UpdateType.EDITED_MESSAGE, edited),
    ]


async def unknown_button(update: Update, context: Context) -> None:
    """A press whose data no handler knows (forged or from an old version): answer it anyway,
    so the client stops its spinner, and change nothing."""
    query = update.callback_query
    if query is not None:
        await answer_query(query, context._("This button is no longer active."))


def build_unknown() -> list[BaseHandler[Update, Context, None]]:
    """Registered last: any other command or button."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    return [
        MessageHandler(private & filters.COMMAND, unknown_command),
        CallbackQueryHandler(unknown_button),
    ]
