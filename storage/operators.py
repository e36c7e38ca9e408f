"""Assisted registration and community links: an operator's draft for a worker without Telegram
(kept apart from any registration of their own), what they registered, and the figures staff
watch for fraud; community link codes and who arrived by them."""

from __future__ import annotations

import secrets
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select

from domain.lifecycle import Status
from domain.operators import (
    NIGHT_FROM,
    NIGHT_UNTIL,
    REFUSED_STATUSES,
    ChannelCount,
    DayCount,
)
from domain.reports import WIB
from storage.drafts import audit_values
from storage.engine import Database
from storage.models import Application, AuditEvent, Community, utcnow
from storage.updates import claim_update

_APPLICATIONS = Application.__table__  # type: ignore[attr-defined]
_AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]
# Community codes: lower-case letters and digits without look-alikes, short enough to type.
CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
CODE_LENGTH = 8


def _unclaimed_draft(operator_id: int) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        col(Application.assisted_by) == operator_id,
        col(Application.telegram_user_id).is_(None),
        col(Application.status) == Status.DRAFT,
    )


class OperatorRepository:
    """Operators' drafts and communities; every write is one short transaction."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def assisted_draft(self, *, operator_id: int) -> Application | None:
        """The draft this operator is filling in for a worker, if any."""
        async with self._db.read() as session:
            query = select(Application).where(*_unclaimed_draft(operator_id))
            return (await session.execute(query)).scalars().first()

    async def opened_since(self, *, operator_id: int, since: datetime) -> int:
        """Assisted registrations this operator opened since `since` (for the daily cap)."""
        async with self._db.read() as session:
            query = select(func.count()).where(
                col(Application.assisted_by) == operator_id, col(Application.created_at) >= since
            )
            return int((await session.execute(query)).scalar_one())

    async def start_assisted_draft(
        self,
        *,
        operator_id: int,
        consent_version: str,
        first_step: str,
        update_id: int | None,
    ) -> Application | None:
        """Open a draft for a worker after the operator confirmed their consent; None when this
        update was handled before or the operator already has one open (it wins)."""
        now = utcnow()
        draft = Application(
            telegram_user_id=None,
            chat_id=None,
            assisted_by=operator_id,
            status=Status.DRAFT,
            step=first_step,
            consent_version=consent_version,
            consent_at=now,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._db.transaction() as connection:
                if update_id is not None and not await claim_update(
                    connection, self._db.dialect, update_id
                ):
                    return None
                values = draft.model_dump(exclude={"id"})
                inserted = await connection.execute(
                    sa.insert(_APPLICATIONS).returning(_APPLICATIONS.c.id), values
                )
                draft.id = inserted.scalar_one()
                await connection.execute(
                    sa.insert(_AUDIT),
                    audit_values(
                        actor_id=operator_id,
                        action="consent_assisted",
                        application_id=draft.id,
                        to_status=Status.DRAFT,
                        reason=consent_version,
                    ),
                )
        except IntegrityError:
            return None
        return draft

    async def discard_assisted_draft(self, *, operator_id: int) -> bool:
        """Delete the operator's assisted draft (the worker's answers go too)."""
        async with self._db.write() as session, session.begin():
            result = await session.execute(
                sa.delete(Application).where(*_unclaimed_draft(operator_id))
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def registered_by(self, *, operator_id: int, code: str) -> Application | None:
        """An application this operator registered, by its number (others': None)."""
        async with self._db.read() as session:
            query = select(Application).where(
                col(Application.code) == code.strip().upper(),
                col(Application.assisted_by) == operator_id,
            )
            return (await session.execute(query)).scalars().first()

    def _local(self) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
        """The WIB day and hour of `created_at`, as the backend computes them."""
        created = _APPLICATIONS.c.created_at
        if self._db.dialect == "sqlite":
            # SQLite stores UTC as naive text; its date functions take the offset as a modifier.
            shift = f"{int(WIB.total_seconds() // 60):+d} minutes"
            hour = sa.cast(func.strftime("%H", created, shift), sa.Integer)
            return func.date(created, shift), hour
        local = func.timezone("UTC", created) + WIB
        return sa.cast(local, sa.Date), sa.cast(sa.extract("hour", local), sa.Integer)

    async def registrations_per_day(self) -> list[DayCount]:
        """Every operator's registrations per WIB day, with how many were refused and how
        many opened at night (one GROUP BY: no application is loaded)."""
        day, hour = self._local()
        night = sa.or_(hour >= NIGHT_FROM.hour, hour < NIGHT_UNTIL.hour)
        refused = _APPLICATIONS.c.status.in_([str(s) for s in REFUSED_STATUSES])
        async with self._db.read() as session:
            rows = await session.execute(
                sa.select(
                    _APPLICATIONS.c.assisted_by,
                    day,
                    func.count(),
                    func.sum(sa.case((refused, 1), else_=0)),
                    func.sum(sa.case((night, 1), else_=0)),
                )
                .where(_APPLICATIONS.c.assisted_by.is_not(None))
                .group_by(_APPLICATIONS.c.assisted_by, day)
            )
            return [
                DayCount(int(op), _as_date(d), int(n), int(bad or 0), int(late or 0))
                for op, d, n, bad, late in rows
            ]

    async def shared_phones(self, *, at_least: int) -> dict[int, int]:
        """Per operator: their registrations whose phone number `at_least` applications
        (anyone's) carry."""
        phones = _APPLICATIONS.c.phone
        assisted = sa.select(phones).where(_APPLICATIONS.c.assisted_by.is_not(None))
        shared = (
            sa.select(phones)
            .where(phones.in_(assisted.scalar_subquery()))
            .group_by(phones)
            .having(func.count() >= at_least)
        )
        async with self._db.read() as session:
            rows = await session.execute(
                sa.select(_APPLICATIONS.c.assisted_by, func.count())
                .where(
                    _APPLICATIONS.c.assisted_by.is_not(None),
                    phones.in_(shared.scalar_subquery()),
                )
                .group_by(_APPLICATIONS.c.assisted_by)
            )
            return {int(op): int(count) for op, count in rows}

    # --- community links ------------------------------------------------------------------------

    async def add_community(self, *, name: str, actor_id: int) -> Community:
        """A new community with a fresh random code (audited)."""
        for _attempt in range(5):
            community = Community(
                code="".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH)),
                name=name,
                created_by=actor_id,
            )
            try:
                async with self._db.write() as session, session.begin():
                    session.add(community)
                    await session.flush()
                    session.add(
                        AuditEvent(
                            actor_id=actor_id,
                            action="community_add",
                            reason=f"{community.id}:{community.code}",
                        )
                    )
            except IntegrityError:
                continue  # the code was drawn before: draw again
            return community
        raise RuntimeError("could not draw a free community code")

    async def community_by_code(self, *, code: str) -> Community | None:
        """The community of a link code, if there is one."""
        async with self._db.read() as session:
            query = select(Community).where(col(Community.code) == code)
            return (await session.execute(query)).scalars().first()

    async def communities(self) -> list[tuple[Community, ChannelCount]]:
        """Every community, oldest first, with its registrations and completions."""
        counts = dict(await self._counts(_APPLICATIONS.c.community_id))
        async with self._db.read() as session:
            query = select(Community).order_by(col(Community.id))
            rows = list((await session.execute(query)).scalars())
        found = [(row, counts.get(str(row.id))) for row in rows]
        return [
            (row, ChannelCount(row.name, c.registrations if c else 0, c.completions if c else 0))
            for row, c in found
        ]

    async def channel_counts(self) -> tuple[list[ChannelCount], list[ChannelCount]]:
        """Registrations and completions per community (by name) and per operator (by id)."""
        per_community = [count for _row, count in await self.communities() if count.registrations]
        per_operator = [count for _key, count in await self._counts(_APPLICATIONS.c.assisted_by)]
        return per_community, per_operator

    async def _counts(self, column: sa.ColumnElement[Any]) -> list[tuple[str, ChannelCount]]:
        """(key, counts) per value of `column`, NULL left out."""
        async with self._db.read() as session:
            rows = await session.execute(
                sa.select(column, func.count(), func.count(_APPLICATIONS.c.submitted_at))
                .where(column.is_not(None))
                .group_by(column)
            )
            return [
                (str(key), ChannelCount(str(key), int(count), int(done)))
                for key, count, done in rows
            ]


def _as_date(value: object) -> date:
    """SQLite returns the day as `YYYY-MM-DD` text, PostgreSQL as a date."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))
