"""Worker self-registration: consent, then one question per step, the draft row as the state.

Read top to bottom in the order a worker meets it. The questions themselves are the flow table
(domain/flow.py); storing an answer is the registration use case (usecases/registration.py).
The current step lives in the worker's draft application in the database, never in process
memory, so a restart (or another process) resumes every worker exactly where they were; each
answer is stored in the same transaction that moves the draft to its next step, and a
redelivered update is recognised by its update_id.
"""

from __future__ import annotations

from telegram import (
    Message,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ParseMode
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from domain.flow import (
    CHOICES,
    READERS,
    InvalidAnswer,
    Navigation,
    Step,
    Values,
    has_buttons,
    same_answer,
    typed_choice,
)
from domain.i18n import N_
from domain.lifecycle import EDITABLE_STATUSES
from domain.parsing import ParseError
from domain.phones import InvalidPhone, format_phone_display, parse_phone
from domain.program import CONSENT_VERSION
from domain.roles import Role
from handlers.account import status_text
from handlers.appeal_notices import offer_appeal
from handlers.assisted import (
    assisted_draft_of,
    assisted_press,
    cancelled_for_worker_text,
    submitted_for_worker_text,
    taken_over_text,
)
from handlers.common import (
    alongside_answer,
    answer_query,
    escape,
    message_of,
    query_of,
    user_of,
)
from handlers.context import Context
from handlers.notifications import deliver_notifications
from handlers.refusals import RETRY, refusal_keyboard, refusal_text
from handlers.staff_access import member_by_id
from handlers.views import (
    Answered,
    ask,
    ask_again,
    facts_of,
    is_assisted,
    keyboard_for,
)
from handlers.welcome import consent_details, consent_given, consent_refused, start, try_again
from storage.cohort import CohortRepository
from storage.models import Application
from usecases.registration import (
    AnswerOutcome,
    Cancelled,
    CohortClaimed,
    Ineligible,
    KeptInReview,
    Moved,
    NavigationOutcome,
    Refusal,
    Refused,
    Registration,
    Stale,
    Submitted,
    TakenOver,
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
    Refusal.OUT_OF_SCOPE: N_(
        "This place is outside your area as an operator, so you cannot register this worker. "
        "Choose a kelurahan inside your area, or send /batal and ask an admin."
    ),
}


# --- starting: welcome and consent ------------------------------------------------------------


# --- answers: text, contact, buttons ----------------------------------------------------------


async def answer_text(update: Update, context: Context) -> None:
    """A text answer to the current step (or a nudge when there is no registration)."""
    message = message_of(update)
    text = message.text or ""
    if same_answer(text, context.services.catalogs.every("✅ I agree")) and await _typed_consent(
        message, update, context
    ):
        return
    draft = await _draft_or_hint(message, update, context)
    if draft is None:
        return
    step = Step(draft.step or Step.NIK)
    if has_buttons(step):
        await _typed_press(message, update, draft, step, context)
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


async def _typed_press(
    message: Message, update: Update, draft: Application, step: Step, context: Context
) -> None:
    """A button's label typed instead of pressed ("ojol", "Sopir", "kirim"): taken as the
    press, in either language; anything else asks for the buttons."""
    facts = facts_of(draft, context)
    value = typed_choice(step, message.text or "", facts, context.services.catalogs.every)
    if value is None:
        await ask_again(message, draft, context, context._("Please choose one of the buttons."))
        return
    chosen = CHOICES[step](value, facts)
    if isinstance(chosen, Navigation):
        await _navigate(message, update, draft, step, chosen, context)
    else:
        await _register(message, update, draft, step, chosen.values, context)


async def _typed_consent(message: Message, update: Update, context: Context) -> bool:
    """ "Setuju" typed under the welcome: the consent, as if pressed. False when the worker
    already has a registration (then the text is an answer like any other)."""
    user = user_of(update)
    applications = context.services.applications
    if await applications.open_for(user_id=user.id) is not None:
        return False
    draft = await applications.start_draft(
        user_id=user.id,
        chat_id=message.chat.id,
        consent_version=CONSENT_VERSION,
        first_step=Step.NIK,
        update_id=update.update_id,
    ) or await applications.open_for(user_id=user.id)
    if draft is not None:
        await ask_again(message, draft, context)
    return True


async def answer_contact(update: Update, context: Context) -> None:
    """A shared contact: accepted at the phone step when it is the sender's own."""
    message = message_of(update)
    draft = await _draft_or_hint(message, update, context)
    if draft is None:
        return
    contact = message.contact
    if is_assisted(draft):
        await ask_again(
            message,
            draft,
            context,
            context._("Please type the worker's own number (it may be a family member's)."),
        )
        return
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
    """A button of the registration keyboards (`reg:<step>:<value>`, or an operator's
    `as:<draft id>:<step>:<value>`; untrusted)."""
    query = query_of(update)
    user = user_of(update)
    data = query.data or ""
    if data.startswith("as:"):
        draft, data = await assisted_press(user.id, data, context)
        if draft is None:
            await answer_query(query, context._("This button is no longer active."))
            return
    else:
        draft = await context.services.applications.open_for(user_id=user.id)
    parts = data.split(":", 2)
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


# --- storing and moving on: the use case, then its outcome in words -------------------------


async def _registration(context: Context, draft: Application) -> Registration:
    services = context.services
    settings = context.settings
    scope = None
    if is_assisted(draft):
        # The operator's area, looked up afresh (an admin may have changed it meanwhile).
        member = await member_by_id(draft.assisted_by or 0, context)
        scope = member.kecamatan if member and member.role is Role.OPERATOR else ()
    return Registration(
        applications=services.applications,
        dtsen=services.dtsen,
        secret=services.secret,
        rules=settings.eligibility_rules,
        attempts_per_day=settings.nik_attempts_per_day,
        now=services.clock(),
        cohort=CohortRepository(services.database),
        scope=scope,
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
        await _registration(context, draft),
        draft=draft,
        step=step,
        values=values,
        update_id=update.update_id,
    )
    if isinstance(outcome, Moved) and step is Step.PHONE and not is_assisted(draft):
        # The contact keyboard must go. The next question takes it away itself when it has
        # no buttons of its own (the address, in the form's order): one message, not two.
        # Back at the summary, whose buttons cannot ride on the same message, a short line
        # does it first. An operator never had the contact keyboard.
        if keyboard_for(outcome.step, outcome.draft, context) is None:
            await ask(message, outcome.step, outcome.draft, context, remove_keyboard=True)
            return
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
            refusal_text(outcome.decision, context),
            parse_mode=ParseMode.HTML,
            reply_markup=refusal_keyboard(context),
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
    elif isinstance(outcome, CohortClaimed):
        # Last year's participant: their imported application, not a fresh registration.
        welcome = _(
            "Welcome back! You were a participant last year, so you do not need to register again."
        )
        details = await status_text(outcome.application, context)
        await message.reply_text(
            f"{escape(welcome)}\n{details}",
            parse_mode=ParseMode.HTML,
            reply_markup=ReplyKeyboardRemove(),
        )
    elif isinstance(outcome, Cancelled):
        await message.reply_text(_cancelled_text(context, draft))
    elif isinstance(outcome, TakenOver):
        await message.reply_text(taken_over_text(outcome.code, context), parse_mode=ParseMode.HTML)
        context.application.create_task(deliver_notifications(context))
    elif isinstance(outcome, Submitted) and is_assisted(draft):
        await message.reply_text(
            submitted_for_worker_text(outcome.code, context), parse_mode=ParseMode.HTML
        )
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
    user_id = user_of(update).id
    assisted = await assisted_draft_of(user_id, context)
    if assisted is not None:
        await context.services.operators.discard_assisted_draft(operator_id=user_id)
        await message.reply_text(_cancelled_text(context, assisted))
        return
    removed = await context.services.applications.discard_draft(user_id=user_id)
    if removed:
        await message.reply_text(_cancelled_text(context), reply_markup=ReplyKeyboardRemove())
    else:
        await message.reply_text(
            context._("There is no registration in progress to cancel. Send /start to begin.")
        )


def _cancelled_text(context: Context, draft: Application | None = None) -> str:
    if draft is not None and is_assisted(draft):
        return cancelled_for_worker_text(context)
    return context._(
        "Registration cancelled; your answers have been deleted. Send /start to begin again."
    )


# --- small helpers -----------------------------------------------------------------------------


def is_redelivery(update: Update, draft: Application | None) -> bool:
    """The update this draft applied last, delivered again (Telegram resends what was not
    confirmed). Equality only: ids restart lower after a week without updates. Older repeats
    are stopped by the log of handled updates (common.DuplicateGuard)."""
    return draft is not None and update.update_id == draft.last_update_id


async def _draft_or_hint(message: Message, update: Update, context: Context) -> Application | None:
    """The draft this user answers (an operator's for a worker comes first, else their own),
    or a hint about /start and /status when there is none."""
    user_id = user_of(update).id
    existing = await assisted_draft_of(user_id, context)
    if existing is not None:
        return None if is_redelivery(update, existing) else existing
    existing = await context.services.applications.open_for(user_id=user_id)
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
        CallbackQueryHandler(consent_given, pattern=r"^consent:yes(:details)?(:[a-z0-9]{1,16})?$"),
        CallbackQueryHandler(consent_details, pattern=r"^consent:details(:[a-z0-9]{1,16})?$"),
        CallbackQueryHandler(consent_refused, pattern=r"^consent:no$"),
        CallbackQueryHandler(try_again, pattern=f"^{RETRY}$"),
        CallbackQueryHandler(answer_button, pattern=r"^(reg|as):"),
        MessageHandler(private & filters.TEXT & ~filters.COMMAND, answer_text),
        MessageHandler(private & filters.CONTACT, answer_contact),
    ]


def build_fallbacks() -> list[BaseHandler[Update, Context, None]]:
    """Any other message in a private chat: re-ask the current step."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    return [MessageHandler(private & ~filters.COMMAND, answer_other)]
