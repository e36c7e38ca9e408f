"""Appeals (sanggah): filing one, the staff queue, answering it, escalating overdue ones, and
their figures.

Filing and answering are one transaction each, like staff decisions: an answer is a
compare-and-set on the appeal still being open (two staff answering at once cannot both
apply; the loser changes nothing), and whatever it does to the application (back to review,
or an admin's inclusion) is a compare-and-set on the application's status, audited, with the
worker's notification queued in the outbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from domain.appeals import APPEALABLE, AppealStats, AppealStatus, Outcome, median_hours, ticket
from domain.lifecycle import Decision, Status, status_after
from storage.applications import new_application_code
from storage.engine import Database
from storage.models import Appeal, Application, AuditEvent, Notification
from storage.waitlist import Places, free_places, lock_places

# Outbox kinds of the worker's notices about their appeal.
NOTICE = {
    Outcome.REOPEN: "appeal_reopened",
    Outcome.INCLUDE: "appeal_included",
    Outcome.DISMISS: "appeal_dismissed",
}
ESCALATED_NOTICE = "appeal_escalated"
# Audit actions; an inclusion is an override of the DTSEN rule and says so.
AUDIT_ACTION = {
    Outcome.REOPEN: "appeal_reopen",
    Outcome.INCLUDE: "override",
    Outcome.DISMISS: "appeal_dismiss",
}


class Filing(StrEnum):
    """How filing an appeal ended."""

    FILED = "filed"
    ALREADY_OPEN = "already_open"  # one open appeal per application
    NOT_APPEALABLE = "not_appealable"  # no application of theirs in a status one may appeal


class Answer(StrEnum):
    """How answering an appeal ended."""

    DONE = "done"
    ALREADY_ANSWERED = "already_answered"  # someone answered it first (or it never existed)
    OWN_APPLICATION = "own_application"
    CONFLICT = "conflict"  # the NIK or the account holds another open application now


class _Lost(Exception):
    """A compare-and-set found the row changed: nothing of this transaction may stay."""


@dataclass(frozen=True)
class FilingOutcome:
    """The result and the appeal concerned (the new one, or the one already open)."""

    result: Filing
    appeal: Appeal | None = None


@dataclass(frozen=True)
class AnswerOutcome:
    """The result, the appeal as it is now and where the application went (if it moved)."""

    result: Answer
    appeal: Appeal | None = None
    application: Application | None = None
    to_status: str | None = None


class AppealRepository:
    """Appeal rows and the application changes their answers make."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def file(
        self, *, user_id: int, text: str, now: datetime, deadline: date
    ) -> FilingOutcome:
        """File an appeal on the user's latest application, if its status may be appealed."""
        try:
            async with self._db.write() as session, session.begin():
                query = (
                    select(Application)
                    .where(col(Application.telegram_user_id) == user_id)
                    .order_by(col(Application.id).desc())
                    .limit(1)
                )
                application = (await session.execute(query)).scalars().first()
                if application is None or application.status not in APPEALABLE:
                    return FilingOutcome(Filing.NOT_APPEALABLE)
                assert application.id is not None
                existing = await self._open_of(session, application.id)
                if existing is not None:
                    return FilingOutcome(Filing.ALREADY_OPEN, existing)
                appeal = Appeal(
                    application_id=application.id, text=text, filed_at=now, deadline=deadline
                )
                session.add(appeal)
                await session.flush()
                assert appeal.id is not None
                appeal.ticket = ticket(appeal.id)
                # An ineligible check is deleted some days after its last change: an appeal
                # counts as one, so the record stays while the appeal is looked at.
                await session.execute(
                    update(Application)
                    .where(col(Application.id) == application.id)
                    .values(updated_at=now)
                )
                session.add(
                    AuditEvent(
                        actor_id=user_id,
                        action="appeal",
                        application_id=application.id,
                        from_status=application.status,
                        reason=appeal.ticket,
                    )
                )
                await session.flush()
                return FilingOutcome(Filing.FILED, appeal)
        except IntegrityError:
            # Two filings at once: the partial unique index let one through.
            async with self._db.read() as session:
                latest = await self._latest_open_of_user(session, user_id)
            return FilingOutcome(Filing.ALREADY_OPEN, latest)

    async def _open_of(self, session: AsyncSession, application_id: int) -> Appeal | None:
        query = select(Appeal).where(
            col(Appeal.application_id) == application_id,
            col(Appeal.status) == AppealStatus.OPEN,
        )
        return (await session.execute(query)).scalars().first()

    async def _latest_open_of_user(self, session: AsyncSession, user_id: int) -> Appeal | None:
        query = (
            select(Appeal)
            .join(Application, col(Application.id) == col(Appeal.application_id))
            .where(
                col(Application.telegram_user_id) == user_id,
                col(Appeal.status) == AppealStatus.OPEN,
            )
            .order_by(col(Appeal.id).desc())
            .limit(1)
        )
        return (await session.execute(query)).scalars().first()

    async def get(self, *, appeal_id: int) -> tuple[Appeal, Application] | None:
        """One appeal with its application."""
        async with self._db.read() as session:
            query = select(Appeal, Application).join(
                Application, col(Application.id) == col(Appeal.application_id)
            )
            row = (await session.execute(query.where(col(Appeal.id) == appeal_id))).first()
        return None if row is None else (row[0], row[1])

    async def latest_for(self, *, application_id: int) -> Appeal | None:
        """The newest appeal on an application (what a notice about it speaks of)."""
        async with self._db.read() as session:
            query = (
                select(Appeal)
                .where(col(Appeal.application_id) == application_id)
                .order_by(col(Appeal.id).desc())
                .limit(1)
            )
            return (await session.execute(query)).scalars().first()

    async def open_queue(
        self, *, limit: int = 10, kecamatan: Sequence[str] | None = None
    ) -> list[tuple[Appeal, Application]]:
        """Open appeals, the nearest deadline first, with their applications."""
        async with self._db.read() as session:
            query = (
                select(Appeal, Application)
                .join(Application, col(Application.id) == col(Appeal.application_id))
                .where(col(Appeal.status) == AppealStatus.OPEN)
            )
            if kecamatan:
                query = query.where(col(Application.kecamatan_code).in_(kecamatan))
            query = query.order_by(col(Appeal.deadline), col(Appeal.id)).limit(limit)
            return [(row[0], row[1]) for row in (await session.execute(query)).all()]

    async def override_of(self, *, application_id: int) -> AuditEvent | None:
        """The latest manual inclusion (an override) of this application, if any."""
        async with self._db.read() as session:
            query = (
                select(AuditEvent)
                .where(
                    col(AuditEvent.application_id) == application_id,
                    col(AuditEvent.action) == AUDIT_ACTION[Outcome.INCLUDE],
                )
                .order_by(col(AuditEvent.id).desc())
                .limit(1)
            )
            return (await session.execute(query)).scalars().first()

    async def answer(
        self,
        *,
        appeal_id: int,
        outcome: Outcome,
        actor_id: int,
        answer: str | None,
        now: datetime,
        code_prefix: str,
        places: Places,
    ) -> AnswerOutcome:
        """Uphold (re-open or include) or dismiss an open appeal; audit and notify."""
        try:
            return await self._answer(
                appeal_id=appeal_id,
                outcome=outcome,
                actor_id=actor_id,
                answer=answer,
                now=now,
                code_prefix=code_prefix,
                places=places,
            )
        except _Lost:
            pass
        except IntegrityError:
            # Re-opening would give the NIK (or the account) a second live application.
            found = await self.get(appeal_id=appeal_id)
            return AnswerOutcome(Answer.CONFLICT, *(found or (None, None)))
        found = await self.get(appeal_id=appeal_id)
        return AnswerOutcome(Answer.ALREADY_ANSWERED, *(found or (None, None)))

    async def _answer(
        self,
        *,
        appeal_id: int,
        outcome: Outcome,
        actor_id: int,
        answer: str | None,
        now: datetime,
        code_prefix: str,
        places: Places,
    ) -> AnswerOutcome:
        async with self._db.write() as session, session.begin():
            if outcome is Outcome.INCLUDE:
                # Places are counted under the same lock approvals take (storage.review).
                await lock_places(session, self._db.dialect)
            appeal = await session.get(Appeal, appeal_id)
            if appeal is None or appeal.status != AppealStatus.OPEN:
                raise _Lost
            application = await session.get(Application, appeal.application_id)
            if application is None:
                raise _Lost
            if application.telegram_user_id == actor_id:
                return AnswerOutcome(Answer.OWN_APPLICATION, appeal, application)
            status = AppealStatus.DISMISSED if outcome is Outcome.DISMISS else AppealStatus.UPHELD
            # Compare-and-set on the appeal: the first answer wins, a second changes nothing.
            changed = await session.execute(
                update(Appeal)
                .where(col(Appeal.id) == appeal_id, col(Appeal.status) == AppealStatus.OPEN)
                .values(status=status, answered_by=actor_id, answered_at=now, answer=answer)
            )
            if not changed.rowcount:  # type: ignore[attr-defined]
                raise _Lost
            before = application.status
            target: str | None = None
            if outcome is not Outcome.DISMISS:
                target = await self._move(
                    session, application, outcome, actor_id, now, code_prefix, places
                )
            session.add(
                AuditEvent(
                    actor_id=actor_id,
                    action=AUDIT_ACTION[outcome],
                    application_id=application.id,
                    from_status=before,
                    to_status=target,
                    reason=f"{appeal.ticket}: {answer}" if answer else appeal.ticket,
                )
            )
            if application.chat_id is not None and application.id is not None:
                session.add(
                    Notification(
                        application_id=application.id,
                        chat_id=application.chat_id,
                        kind=NOTICE[outcome],
                    )
                )
            await session.flush()
            await session.refresh(appeal)
            await session.refresh(application)
            return AnswerOutcome(Answer.DONE, appeal, application, target)

    async def _move(
        self,
        session: AsyncSession,
        application: Application,
        outcome: Outcome,
        actor_id: int,
        now: datetime,
        code_prefix: str,
        places: Places,
    ) -> str:
        """Re-open for review (pending), or include: approved while places are free, else
        waiting. Raises _Lost when the application moved since the appeal was read."""
        before = application.status
        if before not in APPEALABLE:
            raise _Lost
        values: dict[str, object] = {
            # A refused check never had a number or a place in the queue: it gets both now.
            "code": application.code or new_application_code(code_prefix),
            "submitted_at": application.submitted_at or now,
            "updated_at": now,
            "step": None,
        }
        if outcome is Outcome.REOPEN:
            target = Status.PENDING
        else:
            # The same rule as any approval: a place while the headcount and the money allow.
            free = await free_places(session, places)
            target = status_after(Decision.APPROVE, places_taken=0, quota=free)
            values.update(decided_by=actor_id, decided_at=now)
        values["status"] = target
        changed = await session.execute(
            update(Application)
            .where(col(Application.id) == application.id, col(Application.status) == before)
            .values(**values)
        )
        if not changed.rowcount:  # type: ignore[attr-defined]
            raise _Lost
        return target

    async def escalate_overdue(self, *, today: date, now: datetime) -> list[tuple[Appeal, str]]:
        """Mark every open appeal past its deadline and not yet escalated, and queue the
        worker's notice; returns them with their application's number. Each appeal is
        escalated once: a second run (or a second process) finds escalated_at set."""
        async with self._db.write() as session, session.begin():
            query = (
                select(Appeal, Application)
                .join(Application, col(Application.id) == col(Appeal.application_id))
                .where(
                    col(Appeal.status) == AppealStatus.OPEN,
                    col(Appeal.deadline) < today,
                    col(Appeal.escalated_at).is_(None),
                )
                .order_by(col(Appeal.deadline), col(Appeal.id))
            )
            claimed: list[tuple[Appeal, str]] = []
            for appeal, application in (await session.execute(query)).all():
                changed = await session.execute(
                    update(Appeal)
                    .where(col(Appeal.id) == appeal.id, col(Appeal.escalated_at).is_(None))
                    .values(escalated_at=now)
                )
                if not changed.rowcount:  # type: ignore[attr-defined]
                    continue
                claimed.append((appeal, application.code or "-"))
                if application.chat_id is not None:
                    session.add(
                        Notification(
                            application_id=appeal.application_id,
                            chat_id=application.chat_id,
                            kind=ESCALATED_NOTICE,
                        )
                    )
            return claimed

    async def statistics(
        self, *, today: date, kecamatan: Sequence[str] | None = None
    ) -> AppealStats:
        """Open (and overdue), upheld and dismissed appeals, and the median time to answer."""
        async with self._db.read() as session:
            scoped = sa.select(col(Application.id)).where(
                col(Application.kecamatan_code).in_(kecamatan or ())
            )
            where = [col(Appeal.application_id).in_(scoped)] if kecamatan else []
            overdue = func.sum(
                sa.case(
                    (
                        sa.and_(
                            col(Appeal.status) == AppealStatus.OPEN, col(Appeal.deadline) < today
                        ),
                        1,
                    ),
                    else_=0,
                )
            )
            counts_query = (
                sa.select(col(Appeal.status), func.count(), overdue)
                .where(*where)
                .group_by(col(Appeal.status))
            )
            counts: dict[str, int] = {}
            late = 0
            for status, count, overdue_count in (await session.execute(counts_query)).all():
                counts[str(status)] = int(count)
                late += int(overdue_count or 0)
            times_query = sa.select(col(Appeal.filed_at), col(Appeal.answered_at)).where(
                col(Appeal.answered_at).is_not(None), *where
            )
            hours = [
                (answered - filed).total_seconds() / 3600
                for filed, answered in (await session.execute(times_query)).all()
                if answered is not None
            ]
        return AppealStats(
            open=counts.get(AppealStatus.OPEN, 0),
            overdue=late,
            upheld=counts.get(AppealStatus.UPHELD, 0),
            dismissed=counts.get(AppealStatus.DISMISSED, 0),
            median_hours=median_hours(hours),
        )
