"""The waiting list moves by itself: the one function every transaction that frees a place calls
(a withdrawal, an erasure, a lapse), under the quota lock, before it commits.

With promotion `auto` the first waiting applications in priority order (desil, then time) are
approved into the free places, each with an audit event (no staff actor: the system) and a
notification for the worker; with `staff` nothing changes and the first waiting one is returned,
for the admins' one-tap button. The quota lock (an advisory lock on PostgreSQL, the write lock on
SQLite) serialises every approval and every promotion, so two frees landing together never
promote the same worker twice or fill past the quota.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from domain.budget import Budget, local_today
from domain.lifecycle import PLACE_HOLDING, Promotion, Status
from storage.budget import read_ledger
from storage.models import Application, AuditEvent, Notification, utcnow
from storage.queue import priority

# PostgreSQL advisory lock key for "the quota" (any constant shared by every process).
QUOTA_LOCK_KEY = 0x52454E54
PROMOTE_ACTION = "promote"
PROMOTE_REASON = "system: a place came free (waiting list)"
# The worker's notification kind for a promotion (its own text: "a place came free").
PROMOTED_KIND = "promoted"


@dataclass(frozen=True)
class Places:
    """What filling a freed place needs to know: the places there are, and who promotes.

    With `budget`, a freed place goes on only while the money left buys a new participant's
    months from `today`'s next month (domain/budget.py: a place freed in July frees only the
    months left); `effective_quota` alone is a plain headcount."""

    effective_quota: int | None = None
    promotion: Promotion = Promotion.AUTO
    budget: Budget | None = None
    today: date | None = None
    # PROGRAM_RENEWAL_FIRST: places that last year's still-eligible members await (pending
    # renewals) are kept for them; newcomers get only what is left.
    reserve_renewals: bool = False


@dataclass(frozen=True)
class Waiting:
    """One waiting application moved (auto) or offered (staff)."""

    application_id: int
    code: str


@dataclass(frozen=True)
class Filled:
    """What became of the freed places: promoted now, or the first waiting one to offer."""

    promoted: tuple[Waiting, ...] = ()
    offered: Waiting | None = None


async def lock_places(session: AsyncSession, dialect: str) -> None:
    """Take the quota lock for the rest of this transaction (SQLite's write transaction, BEGIN
    IMMEDIATE, already holds the database's)."""
    if dialect == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": QUOTA_LOCK_KEY})


async def renewals_waiting(session: AsyncSession) -> int:
    """Last year's members still eligible whose renewal awaits the admin's /perpanjang."""
    query = select(func.count()).where(
        col(Application.status) == Status.PENDING, col(Application.cohort_year).is_not(None)
    )
    return int((await session.execute(query)).scalar_one())


async def free_places(session: AsyncSession, places: Places) -> int:
    """Places that may be filled now: the headcount left and, with a budget, what money buys."""
    free: int | None = None
    if places.effective_quota is not None:
        taken_query = select(func.count()).where(col(Application.status).in_(PLACE_HOLDING))
        free = places.effective_quota - int((await session.execute(taken_query)).scalar_one())
    if places.budget is not None:
        dialect = session.get_bind().dialect.name
        ledger = (await read_ledger(session, dialect, places.budget)).ledger
        by_money = ledger.available(places.today or local_today(utcnow()))
        free = by_money if free is None else min(free, by_money)
    if places.reserve_renewals and free:
        free -= await renewals_waiting(session)  # the waiting list holds newcomers only
    return max(free or 0, 0)


async def fill_freed_places(session: AsyncSession, places: Places) -> Filled:
    """Give free places to the waiting list, inside the caller's transaction, which must hold
    the quota lock (`lock_places`) since before it freed anything."""
    free = await free_places(session, places)
    if free <= 0:
        return Filled()
    waiting_query = (
        select(col(Application.id), col(Application.code), col(Application.chat_id))
        .where(col(Application.status) == Status.WAITLISTED)
        .order_by(*priority())
    )
    if places.promotion is Promotion.STAFF:
        first = (await session.execute(waiting_query.limit(1))).first()
        return (
            Filled(offered=Waiting(int(first[0] or 0), str(first[1] or ""))) if first else Filled()
        )
    promoted: list[Waiting] = []
    # A few more than the free places: a reviewer may reject a waiting one meanwhile.
    candidates = (await session.execute(waiting_query.limit(free + 5))).all()
    now = utcnow()
    for row_id, code, chat_id in candidates:
        application_id = int(row_id or 0)
        if len(promoted) == free:
            break
        # Compare-and-set, as every decision: a waiting application decided meanwhile stays.
        changed = await session.execute(
            update(Application)
            .where(
                col(Application.id) == application_id,
                col(Application.status) == Status.WAITLISTED,
            )
            .values(status=Status.APPROVED, decided_by=None, decided_at=now, updated_at=now)
        )
        if not changed.rowcount:  # type: ignore[attr-defined]
            continue
        session.add(
            AuditEvent(
                at=now,
                actor_id=None,
                action=PROMOTE_ACTION,
                application_id=application_id,
                from_status=Status.WAITLISTED,
                to_status=Status.APPROVED,
                reason=PROMOTE_REASON,
            )
        )
        if chat_id is not None:  # None: nobody holds it on Telegram yet
            session.add(
                Notification(application_id=application_id, chat_id=chat_id, kind=PROMOTED_KIND)
            )
        promoted.append(Waiting(application_id, str(code or "")))
    return Filled(promoted=tuple(promoted))
