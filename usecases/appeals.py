"""Appeals (sanggah): a worker files one, staff answer it, overdue ones go to the admins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from config.settings import Settings
from domain.appeals import (
    MAX_ANSWER_CHARS,
    MAX_APPEAL_CHARS,
    MIN_APPEAL_CHARS,
    REQUIRED_ROLE,
    AppealStats,
    Outcome,
    add_working_days,
)
from domain.budget import local_today
from domain.roles import Role, StaffMember
from domain.text import strip_invisible
from storage.appeals import AnswerOutcome, AppealRepository, FilingOutcome
from storage.models import Appeal
from storage.staff import StaffRepository
from storage.waitlist import Places


class TextProblem(StrEnum):
    """Why a typed appeal or answer was not taken."""

    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"


class NotPermitted(Exception):
    """The actor's role does not allow this answer (the handlers' guards never let it by)."""


def clean_text(raw: str, *, minimum: int, maximum: int) -> str | TextProblem:
    """The text as stored (invisible characters dropped, spaces collapsed), or its problem."""
    cleaned = " ".join(strip_invisible(raw).split())
    if len(cleaned) < minimum:
        return TextProblem.TOO_SHORT
    if len(cleaned) > maximum:
        return TextProblem.TOO_LONG
    return cleaned


async def file_appeal(
    appeals: AppealRepository, settings: Settings, *, user_id: int, text: str, now: datetime
) -> FilingOutcome | TextProblem:
    """File the worker's appeal on their latest application, due in APPEAL_DEADLINE_DAYS
    working days."""
    cleaned = clean_text(text, minimum=MIN_APPEAL_CHARS, maximum=MAX_APPEAL_CHARS)
    if isinstance(cleaned, TextProblem):
        return cleaned
    deadline = add_working_days(local_today(now), settings.appeal_deadline_days)
    return await appeals.file(user_id=user_id, text=cleaned, now=now, deadline=deadline)


def may_answer(member: StaffMember, outcome: Outcome) -> bool:
    """Whether this staff member's role allows `outcome`."""
    return member.can(REQUIRED_ROLE[outcome])


async def answer_appeal(
    appeals: AppealRepository,
    settings: Settings,
    *,
    appeal_id: int,
    outcome: Outcome,
    actor: StaffMember,
    answer: str | None,
    now: datetime,
) -> AnswerOutcome | TextProblem:
    """Answer an open appeal; a dismissal and an inclusion need a written reason."""
    if not may_answer(actor, outcome):
        raise NotPermitted(f"{actor.role} may not {outcome}")
    reason: str | None = None
    if outcome is not Outcome.REOPEN:
        cleaned = clean_text(answer or "", minimum=3, maximum=MAX_ANSWER_CHARS)
        if isinstance(cleaned, TextProblem):
            return cleaned
        reason = cleaned
    return await appeals.answer(
        appeal_id=appeal_id,
        outcome=outcome,
        actor_id=actor.user_id,
        answer=reason,
        now=now,
        code_prefix=settings.application_code_prefix,
        places=Places(budget=settings.budget, today=local_today(now)),
    )


@dataclass(frozen=True)
class Escalation:
    """Overdue appeals escalated now, and the admins to tell."""

    appeals: tuple[tuple[Appeal, str], ...]
    admins: tuple[int, ...]


async def escalate_overdue(
    appeals: AppealRepository, staff: StaffRepository, settings: Settings, *, now: datetime
) -> Escalation:
    """Claim every overdue appeal not escalated yet (once each) and name the admins."""
    claimed = await appeals.escalate_overdue(today=local_today(now), now=now)
    if not claimed:
        return Escalation((), ())
    admins = set(settings.admin_ids) | {
        row.telegram_user_id for row in await staff.all() if row.role == Role.ADMIN
    }
    return Escalation(tuple(claimed), tuple(sorted(admins)))


async def appeal_statistics(
    appeals: AppealRepository, *, now: datetime, kecamatan: tuple[str, ...] = ()
) -> AppealStats:
    """The appeal figures for /statistik and `rentan-bot stats`."""
    return await appeals.statistics(today=local_today(now), kecamatan=kecamatan or None)
