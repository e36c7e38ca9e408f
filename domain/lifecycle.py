"""The application's lifecycle: its statuses, which decision moves it from where to where, who
may take each decision, and how many places the programme has."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from domain.roles import Role, StaffMember


class Status(StrEnum):
    """Lifecycle of an application; a draft is the worker's conversation in progress."""

    DRAFT = "draft"
    INELIGIBLE = "ineligible"
    PENDING = "pending"
    NEEDS_FIX = "needs_fix"
    APPROVED = "approved"
    WAITLISTED = "waitlisted"
    REJECTED = "rejected"
    ENROLLED = "enrolled"
    WITHDRAWN = "withdrawn"
    CANCELLED = "cancelled"
    # Three months of premiums unpaid: BPJS has deactivated the BPU membership and the worker
    # must register again. Its own closed status rather than `enrolled` with lapsed_at: every
    # count of places (PLACE_HOLDING) and every "one live application per NIK" index then frees
    # the place and the NIK without a second condition, and /status and the card can say so.
    LAPSED = "lapsed"


# Statuses in which an application holds its NIK and its Telegram account.
LIVE_STATUSES = (
    Status.PENDING,
    Status.NEEDS_FIX,
    Status.APPROVED,
    Status.WAITLISTED,
    Status.ENROLLED,
)
# An account has at most one open application: a draft or a live one.
OPEN_STATUSES = (Status.DRAFT, *LIVE_STATUSES)
# Statuses in which the worker is answering questions: a new draft, or a fix staff asked for.
EDITABLE_STATUSES = (Status.DRAFT, Status.NEEDS_FIX)
# Places are taken by approved and enrolled workers; the rest wait.
PLACE_HOLDING = (Status.APPROVED, Status.ENROLLED)
# Only enrolled cover can lapse (an approved worker's cover has not started); nobody decides
# it: the daily cover check applies it from BPJS's paid-through month (storage.lapses).
LAPSES_FROM = (Status.ENROLLED,)

# Last year's participants imported by `rentan-bot import-cohort` (application.cohort_year set)
# who still meet the rules wait for renewal as PENDING, not in a status of their own: they are
# waiting for a decision exactly as a submitted application is (they hold their NIK, they take
# a place only when approved, a reviewer may decide on one like any other), and every rule
# written for pending applications (the live-NIK index, the open-account index, the queue, the
# counts, retention) already holds for them without a migration of those partial indexes.
# What sets them apart is cohort_year: with PROGRAM_RENEWAL_FIRST the admin approves them in
# bulk (/perpanjang) before the queue's new registrations; without it they are simply in the
# queue. Those no longer eligible are INELIGIBLE with the reasons, listed for staff.
RENEWAL_STATUS = Status.PENDING


class Decision(StrEnum):
    """What a reviewer can do to an application."""

    APPROVE = "approve"
    REJECT = "reject"
    FIX = "fix"
    WITHDRAW = "withdraw"


class Promotion(StrEnum):
    """PROGRAM_WAITLIST_PROMOTION: who moves the waiting list when a place frees."""

    AUTO = "auto"  # the first waiting worker is approved at once, by the system
    STAFF = "staff"  # admins get a one-tap button to approve them


class EntryPoint(StrEnum):
    """Where a decision was asked for: a review card's button or a typed command."""

    CARD = "card"
    COMMAND = "command"


# Where each entry point may act. Card buttons only act on what the card showed; withdrawing an
# approval (which frees a place) is its own admin command, /tarik, never a double tap.
CARD_FROM: Mapping[Decision, tuple[Status, ...]] = {
    Decision.APPROVE: (Status.PENDING, Status.WAITLISTED),
    Decision.REJECT: (Status.PENDING, Status.WAITLISTED, Status.NEEDS_FIX),
    Decision.FIX: (Status.PENDING, Status.WAITLISTED),
}
COMMAND_FROM: Mapping[Decision, tuple[Status, ...]] = {
    **CARD_FROM,
    Decision.WITHDRAW: (Status.APPROVED, Status.ENROLLED),
}
_FROM = {EntryPoint.CARD: CARD_FROM, EntryPoint.COMMAND: COMMAND_FROM}

# Statuses a card's buttons can act on; other cards (found with /cari) are for reading.
DECIDABLE_ON_CARD = frozenset(status for statuses in CARD_FROM.values() for status in statuses)

# The least role that may take each decision: withdrawing frees a place, so only admins may.
REQUIRED_ROLE: Mapping[Decision, Role] = {
    Decision.APPROVE: Role.REVIEWER,
    Decision.REJECT: Role.REVIEWER,
    Decision.FIX: Role.REVIEWER,
    Decision.WITHDRAW: Role.ADMIN,
}


def allowed_from(
    decision: Decision, entry: EntryPoint, *, status_seen: str | None = None
) -> tuple[Status, ...]:
    """The statuses `decision` may move an application from when asked for at `entry`.

    With `status_seen` (what the reviewer was shown when they chose), only that status: a
    decision prepared on one state never lands on another.
    """
    statuses = _FROM[entry].get(decision, ())
    if status_seen is None:
        return statuses
    return tuple(status for status in statuses if status == status_seen)


def may_decide(member: StaffMember, decision: Decision) -> bool:
    """Whether this staff member's role allows `decision`."""
    return member.can(REQUIRED_ROLE[decision])


def status_after(decision: Decision, *, places_taken: int, quota: int) -> Status:
    """Where `decision` leads; an approval waits on the list while every place is taken."""
    if decision is Decision.APPROVE:
        return Status.APPROVED if places_taken < quota else Status.WAITLISTED
    if decision is Decision.REJECT:
        return Status.REJECTED
    if decision is Decision.WITHDRAW:
        return Status.WITHDRAWN
    return Status.NEEDS_FIX


def frees_place(before: str, after: str) -> bool:
    """Whether moving from `before` to `after` gives a place back to the waiting list."""
    return before in PLACE_HOLDING and after not in PLACE_HOLDING


def effective_quota(quota: int, budget_idr: int, premium_idr: int) -> int:
    """How many people the budget really covers: min(quota, budget // annual premium)."""
    if premium_idr <= 0 or quota < 0 or budget_idr < 0:
        raise ValueError("quota and budget must be >= 0 and the premium > 0")
    return min(quota, budget_idr // premium_idr)


def renewals_that_fit(waiting: int, *, places_taken: int, quota: int) -> int:
    """How many of `waiting` renewals a bulk approval may approve: the places still free."""
    return max(0, min(waiting, quota - places_taken))
