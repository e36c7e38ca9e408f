"""The daily cover check: admins are warned once before a member's cover lapses, and members
three months unpaid are marked lapsed, their places going to the waiting list, in one
transaction. Safe to run as often as wanted: what was warned is stored (`lapse_warned_for`)
and a lapse is a compare-and-set from `enrolled`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy import func, update
from sqlmodel import col, select

from domain.coverage import has_lapsed, warning_due
from domain.lifecycle import LAPSES_FROM, Status
from storage.engine import Database
from storage.models import Application, AuditEvent, Notification, utcnow
from storage.waitlist import Filled, Places, fill_freed_places, lock_places

LAPSE_ACTION = "lapse"
LAPSE_REASON = "system: three months of premiums unpaid (BPJS paid-through month)"
# The admins' notification kind for a coming lapse (one per admin and member and month).
WARNING_KIND = "lapse_warning"
# No warning or lapse is due while paid_through is later than this many days ago: the
# earliest warning comes ~2,5 months after it (three unpaid months less two weeks).
_QUIET_DAYS = 70


@dataclass(frozen=True)
class CoverCheck:
    """What one run did: members warned about, members lapsed, what became of their places."""

    warned: tuple[str, ...] = ()
    lapsed: tuple[str, ...] = ()
    filled: Filled | None = None


async def check_cover(
    database: Database, *, today: date, admin_ids: Iterable[int], places: Places
) -> CoverCheck:
    """Warn the admins (through the outbox) about members two weeks from lapsing, and lapse
    the members three months unpaid; each warning once per paid-through month."""
    admins = sorted(set(admin_ids))
    async with database.write() as session, session.begin():
        # Before any row is touched, as every transaction that frees a place.
        await lock_places(session, database.dialect)
        rows = (
            await session.execute(
                sa.select(
                    col(Application.id),
                    col(Application.code),
                    col(Application.chat_id),
                    col(Application.paid_through),
                    col(Application.lapse_warned_for),
                ).where(
                    col(Application.status).in_(LAPSES_FROM),
                    col(Application.paid_through) < today - timedelta(days=_QUIET_DAYS),
                )
            )
        ).all()
        now = utcnow()
        warned: list[str] = []
        lapsed: list[str] = []
        for application_id, code, chat_id, paid_through, warned_for in rows:
            if paid_through is None or application_id is None:
                continue
            if has_lapsed(paid_through, today):
                changed = await session.execute(
                    update(Application)
                    .where(
                        col(Application.id) == application_id,
                        col(Application.status).in_(LAPSES_FROM),
                    )
                    .values(status=Status.LAPSED, lapsed_at=now, updated_at=now)
                )
                if not changed.rowcount:  # type: ignore[attr-defined]
                    continue
                session.add(
                    AuditEvent(
                        at=now,
                        actor_id=None,
                        action=LAPSE_ACTION,
                        application_id=application_id,
                        from_status=Status.ENROLLED,
                        to_status=Status.LAPSED,
                        reason=LAPSE_REASON,
                    )
                )
                if chat_id is not None:
                    session.add(
                        Notification(
                            application_id=application_id, chat_id=chat_id, kind=Status.LAPSED
                        )
                    )
                lapsed.append(str(code or "-"))
            elif warning_due(paid_through, today) and warned_for != paid_through:
                await session.execute(
                    update(Application)
                    .where(col(Application.id) == application_id)
                    .values(lapse_warned_for=paid_through)
                )
                session.add_all(
                    Notification(application_id=application_id, chat_id=admin, kind=WARNING_KIND)
                    for admin in admins
                )
                warned.append(str(code or "-"))
        filled = await fill_freed_places(session, places) if lapsed else None
    return CoverCheck(warned=tuple(warned), lapsed=tuple(lapsed), filled=filled)


async def lapsed_count(database: Database, *, kecamatan: Iterable[str] | None = None) -> int:
    """Members whose cover lapsed (for the statistics), optionally within some kecamatan."""
    async with database.read() as session:
        query = select(func.count()).where(col(Application.status) == Status.LAPSED)
        scope = list(kecamatan or ())
        if scope:
            query = query.where(col(Application.kecamatan_code).in_(scope))
        return int((await session.execute(query)).scalar_one())
