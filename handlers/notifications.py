"""Delivering the outbox: one short message per decision, in the worker's language."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError, TimedOut

from domain.coverage import format_month, lapse_day
from domain.flow import FIELD_LABELS, Step
from domain.lifecycle import Status
from handlers.appeal_notices import APPEAL_NOTICES, appeal_markup, appeal_notice
from handlers.common import escape
from handlers.context import Context
from handlers.language import Lookup, translator_for
from handlers.recheck import RESUME_TEXT, resume_markup
from handlers.refusals import self_pay_text
from handlers.views import coverage_text, format_date, keyboard_for, prompt_text
from storage.applications import TAKEN_OVER
from storage.lapses import WARNING_KIND
from storage.models import Application, Notification
from storage.waitlist import PROMOTED_KIND
from usecases.recheck import REQUALIFIED

log = logging.getLogger(__name__)


async def render(
    notification: Notification, application: Application | None, context: Context
) -> str:
    """The message for one notification (the context's translator is the recipient's)."""
    _ = context._
    if application is None:
        return _staff_text(notification, context)
    code = escape(application.code or "-")
    kind = notification.kind
    if kind in APPEAL_NOTICES:
        return await appeal_notice(notification, application, context)
    if kind == Status.APPROVED:
        return _(
            "🎉 Your application {code} has been approved. We will now register you with BPJS "
            "Ketenagakerjaan and message you your KPJ card number."
        ).format(code=code)
    if kind == Status.REJECTED:
        return _(
            "Your application {code} was not approved.\nReason: {reason}\n"
            "Questions? Send /bantuan."
        ).format(code=code, reason=escape(application.decision_reason or "-"))
    if kind == WARNING_KIND and application.paid_through is not None:
        # To an admin: the member's cover is two weeks from lapsing.
        last_day = lapse_day(application.paid_through) - timedelta(days=1)
        return _(
            "⚠️ Cover of {code} is paid through {month}. Unless BPJS Ketenagakerjaan receives "
            "the premiums by {day}, three months are unpaid and the membership is deactivated. "
            "/tinjau {code}"
        ).format(
            code=code,
            month=format_month(application.paid_through, context.tr.language),
            day=format_date(last_day, context),
        )
    if kind == Status.LAPSED:
        return _(
            "Your BPJS Ketenagakerjaan cover ({code}) has ended: three months of premiums were "
            "unpaid. You can register again with /start; questions: /bantuan."
        ).format(code=code)
    if kind == PROMOTED_KIND:
        return _(
            "🎉 A place in the programme came free and your application {code}, first on the "
            "waiting list, has been approved. We will now register you with BPJS "
            "Ketenagakerjaan and message you your KPJ card number."
        ).format(code=code)
    if kind == Status.WAITLISTED:
        position = await context.services.review.waitlist_position(application=application)
        waiting = _(
            "The programme's places are full for now. Your application {code} is on the waiting "
            "list at position {position}; we will message you when a place is free."
        ).format(code=code, position=position)
        # A full quota is a refusal for now: the worker hears what else there is.
        return f"{waiting}\n\n{self_pay_text(context)}"
    if kind == Status.ENROLLED:
        return _(
            "✅ You are now registered with BPJS Ketenagakerjaan (JKK and JKM).\n"
            "KPJ card number: <b>{kpj}</b>\n{coverage}"
        ).format(
            kpj=escape(application.kpj_number or "-"),
            coverage=coverage_text(application.coverage_start, context),
        )
    if kind == Status.NEEDS_FIX:
        field = FIELD_LABELS.get(Step(application.fix_field or Step.ADDRESS), "")
        text = _("Staff checking your application {code} ask you to correct: {field}.").format(
            code=code, field=escape(_(field))
        )
        if application.decision_reason:
            text += "\n" + _("Their note: {note}").format(note=escape(application.decision_reason))
        return text
    if kind == TAKEN_OVER:
        # To the operator who registered the worker, in the operator's language.
        return _(
            "The worker of application {code}, which you registered, has taken it over from "
            "their own Telegram account."
        ).format(code=code)
    if kind == REQUALIFIED:
        return _(RESUME_TEXT)
    if kind == Status.WITHDRAWN:
        text = _("Your application {code} has been withdrawn from the programme.").format(
            code=code
        )
        # Staff's reason when they gave one, else who withdrew it (a notice is only written
        # for staff decisions: a worker's own withdrawal erases their chat's notices).
        reason = application.decision_reason or _("withdrawn by the programme's staff")
        return (
            text
            + "\n"
            + _("Reason: {reason}").format(reason=escape(reason))
            + "\n"
            + _("Questions? Send /bantuan.")
        )
    return _("Your application {code} has changed: send /status to see it.").format(code=code)


def _staff_text(notification: Notification, context: Context) -> str:
    """A message to staff that concerns no application: the re-check after a DTSEN import."""
    _ = context._
    figures = json.loads(notification.payload or "{}")
    return _(
        "DTSEN re-checked after the import: newly eligible {eligible} (told they can carry on), "
        "flagged for review {flagged}, unchanged {unchanged}."
    ).format(
        eligible=int(figures.get("eligible", 0)),
        flagged=int(figures.get("flagged", 0)),
        unchanged=int(figures.get("unchanged", 0)) + int(figures.get("lifted", 0)),
    )


async def deliver_notifications(context: Context) -> None:
    """Send every pending notification at most once visibly; failures are recorded, decisions stay.

    Telegram has no idempotency key, so a send that got no answer (timeout, dropped connection)
    may or may not have reached the worker. Such a notification is recorded as unconfirmed and
    not sent again: a worker reading the same decision twice is worse than one missed message,
    because /status always tells the truth. Sends Telegram answered with an error (429, 5xx) did
    not happen and are retried on the next run.
    """
    services = context.services
    # Called from a reviewer's handler too: their own language comes back afterwards.
    reviewer_translator = context.translator
    try:
        async with services.delivery_lock:
            await _deliver_pending(context)
    finally:
        context.translator = reviewer_translator


async def _deliver_pending(context: Context) -> None:
    services = context.services
    for notification, application in await services.notifications.pending():
        if notification.id is None or not await services.notifications.claim(
            notification=notification
        ):
            continue
        if notification.kind == REQUALIFIED and (
            application is None or application.requalified_at is None
        ):
            # A later import took the offer back before it went out: nothing to carry on.
            await services.notifications.mark_failed(
                notification_id=notification.id, error="offer lapsed", final=True
            )
            continue
        # The notice goes to the chat it was written for (a private chat: the user's own id).
        context.translator = await translator_for(
            services, notification.chat_id, lookup=Lookup.STORED
        )
        try:
            await _send(notification, application, context)
        except Forbidden as error:
            # Blocked by the worker: the decision stands; /status still tells the truth.
            await services.notifications.mark_failed(
                notification_id=notification.id, error=str(error), final=True
            )
            continue
        except (TimedOut, TimeoutError) as error:
            log.warning("notification %s unconfirmed: %s", notification.id, error)
            await services.notifications.mark_unconfirmed(
                notification_id=notification.id, error=str(error)
            )
            continue
        except (BadRequest, TelegramError) as error:
            log.warning("notification %s not delivered: %s", notification.id, error)
            await services.notifications.mark_failed(
                notification_id=notification.id,
                error=str(error),
                final=isinstance(error, BadRequest),
            )
            continue
        await services.notifications.mark_sent(notification_id=notification.id)
        await _follow_up(notification, application, context)


async def _send(
    notification: Notification, application: Application | None, context: Context
) -> None:
    text = await render(notification, application, context)
    markup = None
    if notification.kind == REQUALIFIED and notification.application_id is not None:
        markup = resume_markup(notification.application_id, context)
    elif (
        notification.kind in (Status.REJECTED, Status.WAITLISTED)
        and notification.application_id is not None
    ):
        markup = appeal_markup(notification.application_id, context)  # it may be appealed
    await context.bot.send_message(
        notification.chat_id, text, parse_mode=ParseMode.HTML, reply_markup=markup
    )


async def _follow_up(
    notification: Notification, application: Application | None, context: Context
) -> None:
    """After a fix request, the field's question; the notice itself is already delivered, so a
    failure here is only logged (the worker's next message or /start asks it again)."""
    if application is None or notification.kind != Status.NEEDS_FIX or not application.step:
        return
    step = Step(application.step)
    try:
        await context.bot.send_message(
            notification.chat_id,
            prompt_text(step, application, context),
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard_for(step, application, context),
        )
    except TelegramError as error:
        log.warning("fix prompt after notification %s not sent: %s", notification.id, error)
