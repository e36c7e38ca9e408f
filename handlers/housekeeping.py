"""Periodic jobs: remind idle workers once, delete expired drafts, old ineligible checks,
attempts that no longer count, update ids past Telegram's redelivery window and old audit rows
of refused staff actions."""

from __future__ import annotations

import logging
from datetime import timedelta

from telegram.error import Forbidden, TelegramError, TimedOut

from handlers.context import Context
from handlers.language import Lookup, translator_for
from handlers.notifications import deliver_notifications
from handlers.staff_decisions import offer_freed_place
from storage.drafts import ATTEMPT_WINDOW
from storage.updates import REDELIVERY_WINDOW
from usecases.coverage import review_cover

log = logging.getLogger(__name__)


async def tidy_drafts(context: Context) -> None:
    """Remind workers whose draft has been idle, then delete what retention no longer allows."""
    services = context.services
    settings = services.settings
    now = services.clock()
    idle_since = now - timedelta(minutes=settings.draft_reminder_minutes)
    idle = await services.applications.drafts_to_remind(idle_since=idle_since)
    for draft in idle:
        if draft.id is None or draft.telegram_user_id is None or draft.chat_id is None:
            continue  # a draft nobody holds on Telegram has nobody to remind
        # Claimed before it is sent: two processes running this job at once remind once.
        if not await services.applications.claim_reminder(
            application_id=draft.id, idle_since=idle_since, now=now
        ):
            continue
        translator = await translator_for(services, draft.telegram_user_id, lookup=Lookup.STORED)
        _ = translator._
        try:
            await context.bot.send_message(
                draft.chat_id,
                _(
                    "Your registration is not finished yet. Send /start to continue where you "
                    "left off. Unfinished registrations are deleted after {hours} hours."
                ).format(hours=settings.draft_expiry_hours),
            )
        except Forbidden:
            pass  # the worker blocked the bot; the draft expires on its own
        except (TimedOut, TimeoutError) as error:
            # No answer: it may have arrived, and a reminder is never sent twice.
            log.warning("reminder for draft %s unconfirmed: %s", draft.id, error)
        except TelegramError as error:
            log.warning("reminder for draft %s not sent: %s", draft.id, error)
            await services.applications.release_reminder(application_id=draft.id)
    deleted = await services.applications.delete_expired(
        drafts_idle_since=now - timedelta(hours=settings.draft_expiry_hours),
        ineligible_before=now - timedelta(days=settings.ineligible_retention_days),
        attempts_before=now - ATTEMPT_WINDOW,
        updates_before=now - REDELIVERY_WINDOW,
    )
    if deleted:
        log.info("deleted %d expired drafts and ineligible checks", deleted)
    denied = await services.review.purge_denied(
        before=now - timedelta(days=settings.denied_retention_days)
    )
    if denied:
        log.info("deleted %d old audit rows of refused staff actions", denied)
    await services.staff.drop_expired_inputs(now=now)


async def check_cover(context: Context) -> None:
    """Warn admins two weeks before a member's cover lapses and lapse the members three months
    unpaid (their places go to the waiting list); delivered through the outbox."""
    services = context.services
    # The calendar day in Kota Bekasi (WIB, UTC+7), whatever the server's zone.
    today = (services.clock() + timedelta(hours=7)).date()
    reviewed = await review_cover(
        services.database, services.staff, services.settings, today=today
    )
    if reviewed.check.lapsed:
        log.info("cover lapsed for %d members", len(reviewed.check.lapsed))
    if reviewed.offer is not None:
        await offer_freed_place(context, reviewed.offer)
    if reviewed.notified:
        await deliver_notifications(context)
