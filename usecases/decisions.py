"""A staff decision on one application, and the offer of a freed place to staff."""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from domain.lifecycle import Decision, EntryPoint, allowed_from, may_decide
from domain.roles import StaffMember
from storage.review import DecisionOutcome, Result, ReviewRepository
from storage.staff import StaffRepository


class NotPermitted(Exception):
    """The actor's role does not allow this decision (the handlers' guards never let it by)."""


@dataclass(frozen=True)
class FreedPlaceOffer:
    """A place came free: the first waiting application, and every staff member to tell."""

    code: str
    recipients: tuple[int, ...]
    # Why the place came free: the withdrawn application, and the withdrawing side's reason
    # (staff's /tarik) or, without one, the kind of withdrawal (the worker's own consent).
    freed_code: str | None = None
    reason: str | None = None
    by_worker: bool = False


@dataclass(frozen=True)
class Decided:
    """What a decision did, and what the reviewer and others should hear of it."""

    outcome: DecisionOutcome
    quota: int
    # Places taken after an approval that took one (the reviewer sees the count).
    places_taken: int | None = None
    offer: FreedPlaceOffer | None = None

    @property
    def worker_notified(self) -> bool:
        """Whether a notification for the worker was queued (the outbox wants delivering)."""
        return self.outcome.result in (Result.DONE, Result.WAITLISTED)


async def decide(
    review: ReviewRepository,
    staff: StaffRepository,
    settings: Settings,
    *,
    application_id: int,
    decision: Decision,
    actor: StaffMember,
    entry: EntryPoint,
    status_seen: str | None = None,
    reason: str | None = None,
    fix_field: str | None = None,
    update_id: int | None = None,
) -> Decided:
    """Apply `decision` if the lifecycle allows it from where the application is now.

    `status_seen` is the status the reviewer was shown when they chose (a typed reason is
    confirmed later): the decision then applies only while the application is still in it.
    """
    if not may_decide(actor, decision):
        raise NotPermitted(f"{actor.role} may not {decision}")
    quota = settings.effective_quota
    outcome = await review.decide(
        application_id=application_id,
        decision=decision,
        actor_id=actor.user_id,
        allowed_from=allowed_from(decision, entry, status_seen=status_seen),
        effective_quota=quota,
        reason=reason,
        fix_field=fix_field,
        update_id=update_id,
    )
    taken = None
    if outcome.result is Result.DONE and decision is Decision.APPROVE:
        taken = await review.places_taken()
    offer = None
    if outcome.freed_place:
        freed = outcome.application.code if outcome.application is not None else None
        offer = await freed_place_offer(review, staff, settings, freed_code=freed, reason=reason)
    return Decided(outcome, quota, taken, offer)


async def freed_place_offer(
    review: ReviewRepository,
    staff: StaffRepository,
    settings: Settings,
    *,
    freed_code: str | None = None,
    reason: str | None = None,
    by_worker: bool = False,
) -> FreedPlaceOffer | None:
    """The first waiting application and every staff member, or None when nobody waits;
    `freed_code`, `reason` and `by_worker` say why the place came free."""
    waiting = await review.first_waitlisted()
    if waiting is None:
        return None
    recipients = set(settings.staff_ids) | {row.telegram_user_id for row in await staff.all()}
    return FreedPlaceOffer(
        waiting.code or "", tuple(sorted(recipients)), freed_code, reason, by_worker
    )
