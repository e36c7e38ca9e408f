"""Operators: opening an assisted registration (within the daily cap), the figures staff see
per operator, and community links."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.flow import Step
from domain.operators import SHARED_PHONE_MIN, OperatorFigures, day_start, operator_figures
from domain.program import CONSENT_VERSION
from domain.roles import Role
from storage.models import Application, Community
from storage.operators import OperatorRepository
from storage.staff import StaffRepository


@dataclass(frozen=True)
class Opened:
    """The assisted draft the operator answers now (new, or the one already open)."""

    draft: Application
    new: bool


@dataclass(frozen=True)
class OverLimit:
    """The operator opened OPERATOR_DAILY_LIMIT registrations today already."""

    limit: int


async def open_assisted(
    operators: OperatorRepository,
    *,
    operator_id: int,
    daily_limit: int,
    now: datetime,
    update_id: int | None,
) -> Opened | OverLimit | None:
    """After the operator confirmed the worker's consent: their open assisted draft, or a new
    one within today's cap; None when this press was handled before."""
    existing = await operators.assisted_draft(operator_id=operator_id)
    if existing is not None:
        return Opened(existing, new=False)
    opened = await operators.opened_since(operator_id=operator_id, since=day_start(now))
    if opened >= daily_limit:
        return OverLimit(daily_limit)
    draft = await operators.start_assisted_draft(
        operator_id=operator_id,
        consent_version=CONSENT_VERSION,
        first_step=Step.NIK,
        update_id=update_id,
    )
    if draft is None:
        # A second press (or another process) opened it meanwhile: that one is answered.
        existing = await operators.assisted_draft(operator_id=operator_id)
        return None if existing is None else Opened(existing, new=False)
    return Opened(draft, new=True)


async def figures(
    operators: OperatorRepository, staff: StaffRepository, *, now: datetime
) -> list[OperatorFigures]:
    """Every operator (current ones, and anyone who registered workers) with their figures."""
    current = [row.telegram_user_id for row in await staff.all() if row.role == Role.OPERATOR]
    days = await operators.registrations_per_day()
    shared = await operators.shared_phones(at_least=SHARED_PHONE_MIN)
    return operator_figures(current, days, shared, now)


async def add_community(operators: OperatorRepository, *, name: str, actor_id: int) -> Community:
    """A new community link code."""
    return await operators.add_community(name=name, actor_id=actor_id)
