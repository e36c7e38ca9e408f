"""The money ledger from the database: who is paid for, over which months.

Places held are grouped by the months their cover starts and lapses (a few dozen rows whatever
the number of participants); places freed (withdrawn or erased, read from the audit trail,
which outlives an erased application) are paid up to the month they were freed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from domain.budget import WIB, Budget, Ledger, Span, local_today, parse_month
from domain.lifecycle import PLACE_HOLDING, Status
from storage.models import Application, AuditEvent


@dataclass(frozen=True)
class LedgerRead:
    """The ledger, plus how many places are held by renewed (last year's) participants."""

    ledger: Ledger
    renewed: int


def _month(dialect: str, column: Any, utc_offset: timedelta | None) -> sa.ColumnElement[Any]:
    """`YYYY-MM` of a date column, or of a UTC timestamp column in local time."""
    if dialect == "sqlite":
        if utc_offset is None:
            return func.strftime("%Y-%m", column)
        minutes = int(utc_offset.total_seconds() // 60)
        return func.strftime("%Y-%m", column, f"{minutes:+d} minutes")
    if utc_offset is None:
        return func.to_char(column, "YYYY-MM")
    return func.to_char(func.timezone("UTC", column) + utc_offset, "YYYY-MM")


def _parsed(value: object) -> date | None:
    return None if value is None else parse_month(str(value))


async def read_ledger(
    session: AsyncSession, dialect: str, budget: Budget, *, utc_offset: timedelta = WIB
) -> LedgerRead:
    """Every span the programme pays for, read in `session` (the caller's transaction)."""
    start = _month(dialect, col(Application.coverage_start), None)
    approved = _month(dialect, col(Application.decided_at), utc_offset)
    lapsed = _month(dialect, col(Application.lapsed_at), utc_offset)
    renewed_flag = col(Application.cohort_year).is_not(None)
    held = await session.execute(
        sa.select(start, approved, lapsed, renewed_flag, func.count())
        .where(col(Application.status).in_(PLACE_HOLDING))
        .group_by(start, approved, lapsed, renewed_flag)
    )
    spans: Counter[Span] = Counter()
    placed = renewed = 0
    for start_month, approved_month, lapsed_month, is_renewal, count in held:
        placed += count
        renewed += count if is_renewal else 0
        span = budget.span(
            approved_on=_parsed(approved_month),
            coverage_start=_parsed(start_month),
            ended_on=_parsed(lapsed_month),
        )
        if span is not None:
            spans[span] += count

    # Places freed: the withdrawal's event, the latest approval before it, and the cover start
    # BPJS gave (gone with an erased application: then the month after the approval).
    freed = aliased(AuditEvent)
    approval = (
        sa.select(func.max(col(AuditEvent.at)))
        .where(
            col(AuditEvent.application_id) == col(freed.application_id),
            col(AuditEvent.to_status) == Status.APPROVED,
            col(AuditEvent.at) <= col(freed.at),
        )
        .scalar_subquery()
    )
    freed_rows = await session.execute(
        sa.select(col(freed.at), approval, col(Application.coverage_start))
        .select_from(freed)
        .outerjoin(Application, col(Application.id) == col(freed.application_id))
        .where(
            # A literal, not a parameter: SQLite uses the partial index only for its own text.
            col(freed.to_status) == sa.literal_column(f"'{Status.WITHDRAWN.value}'"),
            col(freed.from_status).in_(PLACE_HOLDING),
        )
    )
    for freed_at, approved_at, coverage_start in freed_rows:
        span = budget.span(
            approved_on=_local(approved_at, utc_offset),
            coverage_start=coverage_start,
            ended_on=_local(freed_at, utc_offset),
        )
        if span is not None:
            spans[span] += 1
    return LedgerRead(Ledger(budget, placed, dict(spans)), renewed)


def _local(moment: datetime | None, utc_offset: timedelta) -> date | None:
    return None if moment is None else local_today(moment, utc_offset)
