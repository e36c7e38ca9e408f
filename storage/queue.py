"""The review queue's order, and an application's place in it (the staff queue, the worker's
/status and the waiting list all count the same way)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from storage.models import Application, utcnow


def priority() -> tuple[ColumnElement[Any], ...]:
    """Lowest desil first, then oldest submission, then id for stability.

    A submitted application always matched a DTSEN row, so its desil is never NULL; ordering on
    the bare column lets the (status, dtsen_desil, submitted_at) index serve the queue.
    """
    return (
        col(Application.dtsen_desil).asc(),
        col(Application.submitted_at).asc(),
        col(Application.id).asc(),
    )


async def position_in(session: AsyncSession, application: Application, status: str) -> int:
    """1-based place of `application` among those in `status`, in the queue's priority order."""
    desil = application.dtsen_desil if application.dtsen_desil is not None else 11
    submitted = application.submitted_at or utcnow()
    query = select(func.count()).where(
        col(Application.status) == status,
        col(Application.id) != application.id,
        or_(
            col(Application.dtsen_desil) < desil,
            (col(Application.dtsen_desil) == desil) & (col(Application.submitted_at) < submitted),
        ),
    )
    return int((await session.execute(query)).scalar_one()) + 1
