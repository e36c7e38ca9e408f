"""A staff decision on one application, and the offer of a freed place to staff."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from config.settings import Settings
from domain.budget import local_today
from domain.lifecycle import Decision, EntryPoint, allowed_from, may_decide
from domain.roles import StaffMember
from storage.models import utcnow
from storage.review import DecisionOutcome, Result, ReviewRepository
from storage.staff import StaffRepository
from storage.waitlist import Filled


class NotPermitted(Exception):
    """The actor's role does not allow this decision (the handlers' guards never let it by)."""


@dataclass(frozen=True)
class FreedPlaceOffer:
    """A place came free: the waiting application that got it (promoted automatically) or is
    offered for a one-tap approval, and every staff member to tell."""

    code: str
    recipients: tuple[int, ...]
    application_id: int = 0
    promoted: bool = False
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
    now: datetime | None = None,
) -> Decided:
    """Apply `decision` if the lifecycle allows it from where the application is now.

    `status_seen` is the status the reviewer was shown when they chose (a typed reason is
    confirmed later): the decision then applies only while the application is still in it.
    An approval takes a place only while the money left buys a new participant's months
    (`now` is the clock's moment; its local month decides when the cover would start).
    """
    if not may_decide(actor, decision):
        raise NotPermitted(f"{actor.role} may not {decision}")
    today = local_today(now or utcnow())
    budget = settings.budget
    outcome = await review.decide(
        application_id=application_id,
        decision=decision,
        actor_id=actor.user_id,
        allowed_from=allowed_from(decision, entry, status_seen=status_seen),
        budget=budget,
        today=today,
        reason=reason,
        fix_field=fix_field,
        update_id=update_id,
        promotion=settings.program_waitlist_promotion,
        reserve_renewals=settings.program_renewal_first,
    )
    ledger = (await review.ledger(budget=budget)).ledger
    quota = ledger.quota_now(today)
    taken = None
    if outcome.result is Result.DONE and decision is Decision.APPROVE:
        taken = ledger.placed
    # The freed place went to the waiting list inside the decision (within the money left).
    freed = outcome.application.code if outcome.application is not None else None
    offer = await freed_place_offer(
        staff, settings, outcome.filled, freed_code=freed, reason=reason
    )
    return Decided(outcome, quota, taken, offer)


async def freed_place_offer(
    staff: StaffRepository,
    settings: Settings,
    filled: Filled | None,
    *,
    freed_code: str | None = None,
    reason: str | None = None,
    by_worker: bool = False,
) -> FreedPlaceOffer | None:
    """What staff hear of freed places: the worker promoted into one, or the first waiting one
    offered with a button; None when nobody waits (or no place was freed). `freed_code`,
    `reason` and `by_worker` say why the place came free."""
    if filled is None:
        return None
    if filled.promoted:
        waiting, promoted = filled.promoted[0], True
    elif filled.offered is not None:
        waiting, promoted = filled.offered, False
    else:
        return None
    recipients = set(settings.staff_ids) | {row.telegram_user_id for row in await staff.all()}
    return FreedPlaceOffer(
        waiting.code,
        tuple(sorted(recipients)),
        waiting.application_id,
        promoted,
        freed_code,
        reason,
        by_worker,
    )
