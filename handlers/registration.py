"""Worker self-registration: consent, then one question per step, the draft row as the state.

Read top to bottom in the order a worker meets it. The questions themselves are the flow table
(domain/flow.py); storing an answer is the registration use case (usecases/registration.py).
The current step lives in the worker's draft application in the database, never in process
memory, so a restart (or another process) resumes every worker exactly where they were; each
answer is stored in the same transaction that moves the draft to its next step, and a
redelivered update is recognised by its update_id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from domain.eligibility import worker_message
from domain.flow import CHOICES, READERS, InvalidAnswer, Navigation, Step, Values, has_buttons
from domain.i18n import N_
from domain.lifecycle import EDITABLE_STATUSES
from domain.parsing import ParseError
from domain.phones import InvalidPhone, format_phone_display, parse_phone
from domain.program import CONSENT_TEXT, CONSENT_VERSION
from handlers.appeal_notices import offer_appeal
from handlers.common import answer_query, escape, message_of, user_of
from handlers.context import Context
from handlers.views import Answered, ask, ask_again, facts_of, keyboard_for, prompt_text
from storage.models import Application, Status
from usecases.registration import (
    AnswerOutcome,
    Cancelled,
    Ineligible,
    KeptInReview,
    Moved,
    NavigationOutcome,
    Refusal,
    Refused,
    Registration,
    Stale,
    Submitted,
    navigate,
    register_answer,
)

# A correction of a submitted application that does not match DTSEN: asked again, neutrally.
CORRECTION_MISMATCH = N_(
    "This does not match the programme's list. Please check that it is exactly as on your KTP "
    "and send it again. Your application and your other answers are kept."
)
# Why an answer was not taken, said before the same step is asked again.
REFUSALS: dict[Refusal, str] = {
    Refusal.NIK_LIMIT: N_(
        "Too many different NIKs were tried from this account today. Try tomorrow."
    ),
    Refusal.NIK_TAKEN: N_(
        "This NIK cannot be registered from this account. If someone else used your "
        "NIK, or you registered before from another account, contact the office: "
        "{office} (or see /bantuan)."
    ),
    Refusal.CLAIM_LIMIT: N_(
        "Too many different names and dates of birth were checked from this account "
        "today. Try tomorrow."
    ),
    Refusal.CORRECTION_MISMATCH: CORRECTION_MISMATCH,
}


def _button(label: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=data)


# --- starting: welcome and consent ------------------------------------------------------------


async def start(update: Update, context: Context) -> None:
    """/start and /daftar: welcome and consent, or where the worker already is."""
    message = message_of(update)
    user = user_of(update)
    existing = await context.services.applications.open_for(user_id=user.id)
    if existing is not None and existing.status in EDITABLE_STATUSES and existing.step:
        await message.reply_text(
            context._(
                "You are in the middle of your registration. Let's continue where you "
                "left off, or send /batal to cancel and start over."
            )
        )
        await ask_again(message, existing, context)
        return
    if existing is not None:
        await message.reply_text(
            context._(
                "You already have an application: {code}. Send /status to see where it stands."
            ).format(code=existing.code or "-")
        )
        return
    buttons = InlineKeyboardMarkup(
        [[_button(context._("✅ I agree"), "consent:yes"), _button(context._("No"), "consent:no")]]
    )
    await message.reply_text(
        welcome_text(context), parse_mode=ParseMode.HTML, reply_markup=buttons
    )


def welcome_text(context: Context) -> str:
    """The welcome and the consent text (UU PDP), as /start shows them."""
    settings = context.settings
    welcome = context._(
        "Welcome to the BPJS Ketenagakerjaan registration for informal workers.\n"
        "The city pays your JKK (work accident) and JKM (death benefit) premiums: "
        "it is free for you."
    )
    who = context._(
        "For informal workers (ojol, drivers, construction labourers, small traders, waste "
        "pickers) aged {min_age}-{max_age} who live in the programme area and are listed in DTSEN."
    ).format(min_age=settings.program_min_age, max_age=settings.program_max_age)
    consent = context._(CONSENT_TEXT).format(
        draft_hours=settings.draft_expiry_hours, ineligible_days=settings.ineligible_retention_days
    )
    return f"{welcome}\n{who}\n\n{consent}"


async def consent_given(update: Update, context: Context) -> None:
    """Setuju: open the draft (storing the consent version and time) and ask the NIK."""
    query = _query_of(update)
    await alongside_answer(query, _open_draft(update, query, context))


async def _open_draft(update: Update, query: CallbackQuery, context: Context) -> None:
    user = user_of(update)
    applications = context.services.applications
    # No read first: the insert itself refuses a second open application (unique index), and
    # only then is the existing one looked up. Saves a query for nearly every worker.
    existing = applications.cached_draft(user_id=user.id)
    if existing is None:
        existing = await applications.start_draft(
            user_id=user.id,
            chat_id=query.message.chat.id if query.message else user.id,
            consent_version=CONSENT_VERSION,
            first_step=Step.NIK,
            update_id=update.update_id,
        ) or await applications.open_for(user_id=user.id)
    message = query.message
    if existing is not None and existing.status == Status.DRAFT and isinstance(message, Message):
        # One call: the consent message keeps its text, records the choice and asks the NIK.
        step = Step(existing.step or Step.NIK)
        markup = keyboard_for(step, existing, context)
        text = (
            f"{welcome_text(context)}\n\n{escape(context._('✅ I agree'))}"
            f"\n\n{prompt_text(step, existing, context)}"
        )
        if not isinstance(markup, ReplyKeyboardMarkup):
            # Too old to edit, or pressed twice: the buttons go and the step is asked anew.
            with contextlib.suppress(BadRequest):
                await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)
                return
    await _drop_buttons(query)
    if existing is None or not isinstance(message, Message):
        return
    if existing.status == Status.DRAFT:
        await ask_again(message, existing, context)
    else:
        await message.reply_text(
            context._("You already have an application: {code}. Send /status.").format(
                code=existing.code or "-"
            )
        )


async def consent_refused(update: Update, context: Context) -> None:
    """Tidak setuju: nothing is stored."""
    query = _query_of(update)
    await answer_query(query)
    await _drop_buttons(query)
    if isinstance(query.message, Message):
        await query.message.reply_text(
            context._(
                "Understood: nothing has been stored. You can register later by sending /start."
            )
        )


# --- answers: text, contact, buttons ----------------------------------------------------------


async def answer_text(update: Update, context: Context) -> None:
    """A text answer to the current step (or a nudge when there is no registration)."""
    message = message_of(update)
    draft = await _draft_or_hint(message, update, context)
    if draft is None:
        return
    step = Step(draft.step or Step.NIK)
    if has_buttons(step):
        await ask_again(message, draft, context, context._("Please choose one of the buttons."))
        return
    try:
        values = READERS[step](message.text or "", facts_of(draft, context))
    except ParseError as error:
        reason = context._(error.message)
        if isinstance(error, InvalidAnswer):
            reason = reason.format(**error.params)
        await ask_again(message, draft, context, reason)
        return
    await _register(message, update, draft, step, values, context)


async def answer_contact(update: Update, context: Context) -> None:
    """A shared contact: accepted at the phone step when it is the sender's own."""
    message = message_of(update)
    draft = await _draft_or_hint(message, update, context)
    if draft is None:
        return
    contact = message.contact
    if draft.step != Step.PHONE or contact is None:
        await ask_again(message, draft, context, context._("I did not ask for a contact here."))
        return
    if contact.user_id != user_of(update).id:
        await ask_again(
            message,
            draft,
            context,
            context._("Please share your own number, not someone else's contact."),
        )
        return
    try:
        phone = parse_phone(contact.phone_number)
    except InvalidPhone as error:
        await ask_again(message, draft, context, context._(error.message))
        return
    await _register(message, update, draft, Step.PHONE, {"phone": phone}, context)


async def answer_other(update: Update, context: Context) -> None:
    """Photos, stickers, voice, locations...: say what is needed instead."""
    message = message_of(update)
    draft = await _draft_or_hint(message, update, context)
    if draft is None:
        return
    step = Step(draft.step or Step.NIK)
    if has_buttons(step):
        reason = context._("Please choose one of the buttons.")
    else:
        reason = context._("I can only read text here.")
    await ask_again(message, draft, context, reason)


async def answer_button(update: Update, context: Context) -> None:
    """A button of the registration keyboards (`reg:<step>:<value>`, untrusted)."""
    query = _query_of(update)
    user = user_of(update)
    parts = (query.data or "").split(":", 2)
    draft = await context.services.applications.open_for(user_id=user.id)
    if is_redelivery(update, draft):
        return
    message = query.message if isinstance(query.message, Message) else None
    if (
        draft is None
        or draft.status not in EDITABLE_STATUSES
        or len(parts) != 3
        or message is None
    ):
        await answer_query(query, context._("This button is no longer active."))
        return
    _prefix, step_name, value = parts
    if step_name != draft.step:
        await answer_query(query, context._("This button is no longer active."))
        await ask_again(message, draft, context)
        return
    step = Step(step_name)
    chooser = CHOICES.get(step)
    if chooser is None:
        # Forged: this step is answered by typing, it never had buttons.
        await answer_query(query, context._("This button is no longer active."))
        return
    try:
        chosen = chooser(value, facts_of(draft, context))
    except InvalidAnswer:
        await answer_query(query, context._("This button is no longer active."))
        return
    if isinstance(chosen, Navigation):
        work = _navigate(message, update, draft, step, chosen, context)
    else:
        label = context._(chosen.label) if chosen.translate else chosen.label
        answered = (query, label)
        work = _register(message, update, draft, step, chosen.values, context, answered)
    await alongside_answer(query, work)


async def alongside_answer(query: CallbackQuery, work: Coroutine[Any, Any, None]) -> None:
    """Answer a press while doing its work: the worker waits one Telegram round trip less.

    Both always finish; a failure of either is raised afterwards, for the error handler.
    """
    results = await asyncio.gather(answer_query(query), work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


# --- storing and moving on: the use case, then its outcome in words -------------------------


def _registration(context: Context) -> Registration:
    services = context.services
    settings = context.settings
    return Registration(
        applications=services.applications,
        dtsen=services.dtsen,
        secret=services.secret,
        rules=settings.eligibility_rules,
        attempts_per_day=settings.nik_attempts_per_day,
        now=services.clock(),
    )


async def _register(
    message: Message,
    update: Update,
    draft: Application,
    step: Step,
    values: Values,
    context: Context,
    answered: Answered | None = None,
) -> None:
    """Store an answer through the use case and say what happened."""
    outcome = await register_answer(
        _registration(context), draft=draft, step=step, values=values, update_id=update.update_id
    )
    if isinstance(outcome, Moved) and step is Step.PHONE:
        # The contact keyboard must go; an inline keyboard cannot replace it in one message.
        await message.reply_text(
            context._("Number saved: {phone}").format(
                phone=format_phone_display(str(outcome.draft.phone))
            ),
            reply_markup=ReplyKeyboardRemove(),
        )
    await _render(message, update, draft, outcome, context, answered)


async def _render(
    message: Message,
    update: Update,
    draft: Application,
    outcome: AnswerOutcome | NavigationOutcome,
    context: Context,
    answered: Answered | None = None,
) -> None:
    """An answer's (or a navigation's) outcome, in the worker's language."""
    _ = context._
    if isinstance(outcome, Moved):
        await ask(message, outcome.step, outcome.draft, context, answered)
    elif isinstance(outcome, Refused) and outcome.refusal is Refusal.NIK_TAKEN_MEANWHILE:
        await message.reply_text(
            _(
                "This NIK has just been registered from another account, so your application "
                "was not sent. If that was not you, contact the office (see /bantuan)."
            )
        )
    elif isinstance(outcome, Refused):
        reason = _(REFUSALS[outcome.refusal]).format(
            office=escape(context.settings.office_contact)
        )
        await ask_again(message, draft, context, reason)
    elif isinstance(outcome, Ineligible):
        await message.reply_text(
            _(worker_message(outcome.decision)),
            parse_mode=ParseMode.HTML,
            reply_markup=ReplyKeyboardRemove(),
        )
        await offer_appeal(message, draft.id, context)
    elif isinstance(outcome, KeptInReview):
        await message.reply_text(
            _(
                "Your correction could not be matched to the programme's list today. Your "
                "application {code} stays in review with the data you sent before; the staff "
                "will look at it and contact you if needed."
            ).format(code=escape(outcome.code or "-")),
            parse_mode=ParseMode.HTML,
            reply_markup=ReplyKeyboardRemove(),
        )
    elif isinstance(outcome, Cancelled):
        await message.reply_text(_cancelled_text(context))
    elif isinstance(outcome, Submitted):
        await message.reply_text(
            _(
                "✅ Your application has been sent.\n"
                "Application number: <b>{code}</b>\n"
                "Status: waiting for verification.\n"
                "Send /status at any time to see where it stands; we will also message you here."
            ).format(code=escape(outcome.code)),
            parse_mode=ParseMode.HTML,
        )
    elif isinstance(outcome, Stale):
        await _resync(message, update, context)


async def _navigate(
    message: Message,
    update: Update,
    draft: Application,
    step: Step,
    navigation: Navigation,
    context: Context,
) -> None:
    """Buttons that move without answering: back, change a field, send, cancel."""
    outcome = await navigate(
        context.services.applications,
        draft=draft,
        step=step,
        target=navigation.target,
        update_id=update.update_id,
        code_prefix=context.settings.application_code_prefix,
    )
    await _render(message, update, draft, outcome, context)


async def _resync(message: Message, update: Update, context: Context) -> None:
    """The draft changed elsewhere (another process, expiry): show where it really is now."""
    fresh = await _draft_or_hint(message, update, context)
    if fresh is not None:
        await ask_again(message, fresh, context)


async def cancel(update: Update, context: Context) -> None:
    """/batal: leave the registration at any step; the draft is deleted."""
    message = message_of(update)
    removed = await context.services.applications.discard_draft(user_id=user_of(update).id)
    if removed:
        await message.reply_text(_cancelled_text(context), reply_markup=ReplyKeyboardRemove())
    else:
        await message.reply_text(
            context._("There is no registration in progress to cancel. Send /start to begin.")
        )


def _cancelled_text(context: Context) -> str:
    return context._(
        "Registration cancelled; your answers have been deleted. Send /start to begin again."
    )


# --- small helpers -----------------------------------------------------------------------------


def is_redelivery(update: Update, draft: Application | None) -> bool:
    """The update this draft applied last, delivered again (Telegram resends what was not
    confirmed). Equality only: ids restart lower after a week without updates. Older repeats
    are stopped by the log of handled updates (common.DuplicateGuard)."""
    return draft is not None and update.update_id == draft.last_update_id


def _query_of(update: Update) -> CallbackQuery:
    query = update.callback_query
    if query is None:
        raise ValueError("update carries no callback query")
    return query


async def _drop_buttons(query: CallbackQuery) -> None:
    # A double tap finds the buttons already gone: nothing to remove.
    with contextlib.suppress(BadRequest):
        await query.edit_message_reply_markup(reply_markup=None)


async def _draft_or_hint(message: Message, update: Update, context: Context) -> Application | None:
    """The worker's draft, or a hint about /start and /status when there is none."""
    existing = await context.services.applications.open_for(user_id=user_of(update).id)
    if is_redelivery(update, existing):
        return None
    if existing is not None and existing.status in EDITABLE_STATUSES and existing.step:
        return existing
    if existing is not None:
        await message.reply_text(
            context._(
                "Your application {code} has been sent. Send /status to see where it stands."
            ).format(code=existing.code or "-")
        )
    else:
        await message.reply_text(
            context._(
                "Send /start to register, /status to check your application or /bantuan for help."
            )
        )
    return None


def build() -> list[BaseHandler[Update, Context, None]]:
    """The registration handlers (private chats; edits are never answers)."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    return [
        CommandHandler(["start", "daftar"], start, filters=private),
        CommandHandler("batal", cancel, filters=private),
        CallbackQueryHandler(consent_given, pattern=r"^consent:yes$"),
        CallbackQueryHandler(consent_refused, pattern=r"^consent:no$"),
        CallbackQueryHandler(answer_button, pattern=r"^reg:"),
        MessageHandler(private & filters.TEXT & ~filters.COMMAND, answer_text),
        MessageHandler(private & filters.CONTACT, answer_contact),
    ]


def build_fallbacks() -> list[BaseHandler[Update, Context, None]]:
    """Any other message in a private chat: re-ask the current step."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    return [MessageHandler(private & ~filters.COMMAND, answer_other)]
