"""Staff decisions: the queue, approvals under the quota, rejections, fixes, and the audit trail.

Every decision is one transaction that checks the application's current status, applies the
change, writes its audit event and queues the worker's notification (the outbox). The change is
a compare-and-set on the status read: two decisions landing together (on PostgreSQL nothing
else orders them) cannot both apply; the loser rolls back and hears what the winner did.
Approvals also count the places taken inside that transaction, under a lock (BEGIN IMMEDIATE
on SQLite, an advisory lock on PostgreSQL), so two reviewers can never approve past the quota.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from domain.budget import Budget, local_today
from domain.lifecycle import (
    PLACE_HOLDING,
    Decision,
    Promotion,
    Status,
    frees_place,
    status_after,
)
from storage.budget import LedgerRead, read_ledger
from storage.engine import Database
from storage.models import Application, AttemptKind, AuditEvent, NikAttempt, Notification, utcnow
from storage.queue import position_in, priority
from storage.updates import claim_update
from storage.waitlist import Filled, Places, fill_freed_places, lock_places, renewals_waiting


class Result(StrEnum):
    """How a decision ended."""

    DONE = "done"
    WAITLISTED = "waitlisted"  # the quota was full: the application waits instead
    ALREADY_DECIDED = "already_decided"  # not in a state this decision applies to (any more)
    NOT_FOUND = "not_found"
    OWN_APPLICATION = "own_application"  # staff may not decide on their own application


class _ChangedMeanwhile(Exception):
    """The application's status changed between reading it and writing the decision."""


@dataclass(frozen=True)
class DecisionOutcome:
    """The result plus what the reviewer needs to hear about it."""

    result: Result
    application: Application | None = None
    previous_status: str | None = None
    waitlist_position: int | None = None
    freed_place: bool = False
    # What the waiting list did with the freed place (promoted, or the first one to offer).
    filled: Filled | None = None


@dataclass(frozen=True)
class QueueEntry:
    """One line of the review queue."""

    application_id: int
    code: str
    desil: int | None
    kecamatan_code: str | None
    submitted_at: datetime | None
    status: str


@dataclass(frozen=True)
class RiskFlags:
    """Signals a reviewer should see before deciding."""

    same_phone: int  # other people (other NIKs) whose applications give this phone number
    # Distinct NIKs tried from this Telegram account (within the daily limit: NIKs refused by
    # it are not kept; erased ones count until they are deleted, a day later).
    nik_attempts: int
    name_score: float | None
    # Other Telegram accounts that typed this application's NIK (a second claim on it).
    nik_other_accounts: int = 0


def fix_audit(field: str | None, note: str | None) -> str | None:
    """A fix's audit reason: the field, then the note to the worker ("address: RT missing")."""
    return f"{field}: {note}" if note else field


# Applications that ended without a place: what a reviewer should see of a NIK's past.
ENDED_STATUSES = (Status.REJECTED, Status.WITHDRAWN, Status.CANCELLED, Status.INELIGIBLE)


@dataclass(frozen=True)
class Earlier:
    """An earlier application of the same NIK: its number, how and when it ended, and why."""

    code: str
    status: str
    at: datetime
    reason: str | None


class ReviewRepository:
    """Queue reads and decision writes for staff."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def _lock_quota(self, session: AsyncSession) -> None:
        # SQLite write sessions already hold the database write lock (BEGIN IMMEDIATE).
        await lock_places(session, self._db.dialect)

    async def counts(self, *, kecamatan: Sequence[str] | None = None) -> dict[str, int]:
        """Applications per status (optionally within some kecamatan)."""
        async with self._db.read() as session:
            query = select(col(Application.status), func.count()).group_by(col(Application.status))
            if kecamatan:
                query = query.where(col(Application.kecamatan_code).in_(kecamatan))
            rows = (await session.execute(query)).all()
        return {str(status): int(count) for status, count in rows}

    async def recheck_flagged(self, *, kecamatan: Sequence[str] | None = None) -> int:
        """Pending and waitlisted applications flagged by the DTSEN re-check after an import."""
        async with self._db.read() as session:
            query = select(func.count()).where(
                col(Application.recheck_flag).is_not(None),
                col(Application.status).in_([Status.PENDING, Status.WAITLISTED]),
            )
            if kecamatan:
                query = query.where(col(Application.kecamatan_code).in_(kecamatan))
            return int((await session.execute(query)).scalar_one())

    async def places_taken(self) -> int:
        """Approved plus enrolled applications."""
        async with self._db.read() as session:
            query = select(func.count()).where(col(Application.status).in_(PLACE_HOLDING))
            return int((await session.execute(query)).scalar_one())

    async def ledger(self, *, budget: Budget) -> LedgerRead:
        """The money: every span paid for, and the places held."""
        async with self._db.read() as session:
            return await read_ledger(session, self._db.dialect, budget)

    async def queue(
        self,
        *,
        status: str = Status.PENDING,
        offset: int = 0,
        limit: int = 10,
        kecamatan: Sequence[str] | None = None,
        exclude: Sequence[int] = (),
    ) -> list[QueueEntry]:
        """A page of the queue in priority order."""
        async with self._db.read() as session:
            query = sa.select(
                col(Application.id),
                col(Application.code),
                col(Application.dtsen_desil),
                col(Application.kecamatan_code),
                col(Application.submitted_at),
                col(Application.status),
            ).where(col(Application.status) == status)
            if kecamatan:
                query = query.where(col(Application.kecamatan_code).in_(kecamatan))
            if exclude:
                query = query.where(col(Application.id).not_in(exclude))
            query = query.order_by(*priority()).offset(offset).limit(limit)
            rows = (await session.execute(query)).all()
        return [
            QueueEntry(
                application_id=int(row[0] or 0),
                code=str(row[1] or "-"),
                desil=row[2],
                kecamatan_code=row[3],
                submitted_at=row[4],
                status=str(row[5]),
            )
            for row in rows
        ]

    async def find(
        self, *, code: str | None = None, nik_hash: str | None = None
    ) -> Application | None:
        """An application by its number or by the blind index of its NIK (newest first)."""
        async with self._db.read() as session:
            query = select(Application)
            if code is not None:
                query = query.where(func.upper(col(Application.code)) == code.upper())
            elif nik_hash is not None:
                query = query.where(col(Application.nik_hash) == nik_hash)
            else:
                return None
            query = query.order_by(col(Application.id).desc()).limit(1)
            return (await session.execute(query)).scalars().first()

    async def get(self, *, application_id: int) -> Application | None:
        """One application by id."""
        async with self._db.read() as session:
            return await session.get(Application, application_id)

    async def risk_flags(self, *, application: Application) -> RiskFlags:
        """Same phone elsewhere, NIK attempts from the account, other accounts that typed the
        same NIK, and the name score."""
        async with self._db.read() as session:
            same_phone = 0
            if application.phone:
                # Other people: the worker's own earlier attempts (the same NIK) do not count.
                query = select(func.count(func.distinct(Application.nik_hash))).where(
                    col(Application.phone) == application.phone,
                    col(Application.id) != application.id,
                    col(Application.status).not_in((Status.DRAFT, Status.CANCELLED)),
                    col(Application.nik_hash).is_not(None),
                )
                if application.nik_hash:
                    query = query.where(col(Application.nik_hash) != application.nik_hash)
                same_phone = int((await session.execute(query)).scalar_one())
            attempts_query = select(func.count(func.distinct(NikAttempt.nik_hash))).where(
                col(NikAttempt.telegram_user_id) == application.telegram_user_id,
                # Eligibility checks repeat a NIK with other names and dates: not another NIK.
                col(NikAttempt.kind) == AttemptKind.NIK,
            )
            attempts = int((await session.execute(attempts_query)).scalar_one())
            others = 0
            if application.nik_hash:
                others_query = select(
                    func.count(func.distinct(NikAttempt.telegram_user_id))
                ).where(
                    col(NikAttempt.nik_hash) == application.nik_hash,
                    col(NikAttempt.kind) == AttemptKind.NIK,
                    col(NikAttempt.telegram_user_id) != application.telegram_user_id,
                )
                others = int((await session.execute(others_query)).scalar_one())
        return RiskFlags(
            same_phone=same_phone,
            nik_attempts=attempts,
            name_score=application.name_score,
            nik_other_accounts=others,
        )

    async def earlier_of_nik(self, *, application: Application, limit: int = 5) -> list[Earlier]:
        """Other applications of the same NIK that ended (rejected, withdrawn, cancelled, not
        eligible), newest first: a NIK applying again after a refusal is visible."""
        if not application.nik_hash:
            return []
        async with self._db.read() as session:
            query = (
                sa.select(
                    col(Application.code),
                    col(Application.status),
                    col(Application.decided_at),
                    col(Application.updated_at),
                    col(Application.decision_reason),
                )
                .where(
                    col(Application.nik_hash) == application.nik_hash,
                    col(Application.id) != application.id,
                    col(Application.status).in_(ENDED_STATUSES),
                )
                .order_by(col(Application.id).desc())
                .limit(limit)
            )
            rows = (await session.execute(query)).all()
        return [
            Earlier(
                code=row[0] or "-",
                status=str(row[1]),
                at=row[2] or row[3],
                # A fix note or a reason of a cancelled draft is not why it ended.
                reason=row[4] if row[1] in (Status.REJECTED, Status.WITHDRAWN) else None,
            )
            for row in rows
        ]

    async def history(self, *, application_id: int) -> list[AuditEvent]:
        """The audit trail of one application, oldest first."""
        async with self._db.read() as session:
            query = (
                select(AuditEvent)
                .where(col(AuditEvent.application_id) == application_id)
                .order_by(col(AuditEvent.at), col(AuditEvent.id))
            )
            return list((await session.execute(query)).scalars())

    async def waitlist_position(self, *, application: Application) -> int:
        """1-based place on the waiting list, in the same priority order as the queue."""
        async with self._db.read() as session:
            return await position_in(session, application, Status.WAITLISTED)

    async def first_waitlisted(self) -> Application | None:
        """The waiting application with the highest priority."""
        async with self._db.read() as session:
            query = (
                select(Application)
                .where(col(Application.status) == Status.WAITLISTED)
                .order_by(*priority())
                .limit(1)
            )
            return (await session.execute(query)).scalars().first()

    async def decide(
        self,
        *,
        application_id: int,
        decision: Decision,
        actor_id: int,
        allowed_from: Sequence[str],
        effective_quota: int | None = None,
        budget: Budget | None = None,
        today: date | None = None,
        reason: str | None = None,
        fix_field: str | None = None,
        update_id: int | None = None,
        promotion: Promotion = Promotion.AUTO,
        reserve_renewals: bool = False,
    ) -> DecisionOutcome:
        """Apply one decision if the application is in one of `allowed_from`; audit and notify.

        An approval takes a place while the places held are fewer than `effective_quota` (a
        plain headcount) and, with `budget`, than what the money left buys on `today`
        (`Ledger.quota_now`); otherwise the application waits on the list. A decision that
        frees a place hands it to the waiting list in the same transaction
        (`storage.waitlist.fill_freed_places`, as `promotion` says, within the same money).

        The update that asked for it is recorded in the same transaction, so the same update
        delivered again after a crash is recognised and not decided a second time (a
        waitlisted approval would otherwise take a place freed in between).
        """
        try:
            return await self._decide(
                application_id=application_id,
                decision=decision,
                actor_id=actor_id,
                allowed_from=allowed_from,
                effective_quota=effective_quota,
                budget=budget,
                today=today,
                reason=reason,
                fix_field=fix_field,
                update_id=update_id,
                places=Places(effective_quota, promotion, budget, today, reserve_renewals),
            )
        except _ChangedMeanwhile:
            # Another decision (or the worker) won and nothing of this one was written. The
            # update is still recorded as handled: the reviewer was told nothing changed, so
            # the same update delivered again must not decide after all.
            if update_id is not None:
                async with self._db.write() as session, session.begin():
                    await claim_update(session, self._db.dialect, update_id)
            current = await self.get(application_id=application_id)
            if current is None:
                return DecisionOutcome(Result.NOT_FOUND)
            return DecisionOutcome(Result.ALREADY_DECIDED, current, current.status)

    async def _decide(
        self,
        *,
        application_id: int,
        decision: Decision,
        actor_id: int,
        allowed_from: Sequence[str],
        effective_quota: int | None,
        budget: Budget | None,
        today: date | None,
        reason: str | None,
        fix_field: str | None,
        update_id: int | None,
        places: Places,
    ) -> DecisionOutcome:
        async with self._db.write() as session, session.begin():
            # Approvals take places, and a decision from a place-holding status may free one
            # for the waiting list: both count places under the quota lock, taken first.
            if decision is Decision.APPROVE or any(s in PLACE_HOLDING for s in allowed_from):
                await self._lock_quota(session)
            application = await session.get(Application, application_id)
            if application is None:
                return DecisionOutcome(Result.NOT_FOUND)
            before = application.status
            if application.telegram_user_id == actor_id:
                # Staff who also registered as workers: someone else must decide.
                session.add(
                    AuditEvent(
                        actor_id=actor_id,
                        action="denied",
                        application_id=application_id,
                        from_status=before,
                        reason=f"{decision.value}: own application",
                    )
                )
                return DecisionOutcome(Result.OWN_APPLICATION, application, before)
            fresh = update_id is None or await claim_update(session, self._db.dialect, update_id)
            if before not in allowed_from or not fresh:
                return DecisionOutcome(Result.ALREADY_DECIDED, application, before)
            result = Result.DONE
            taken = 0
            quota = effective_quota if effective_quota is not None else 0
            if decision is Decision.APPROVE:
                # Counted under the quota lock: two approvals never both take the last place.
                if budget is not None:
                    ledger = (await read_ledger(session, self._db.dialect, budget)).ledger
                    taken = ledger.placed
                    money_quota = ledger.quota_now(today or local_today(utcnow()))
                    quota = money_quota if effective_quota is None else min(quota, money_quota)
                else:
                    taken_query = select(func.count()).where(
                        col(Application.status).in_(PLACE_HOLDING)
                    )
                    taken = int((await session.execute(taken_query)).scalar_one())
                if places.reserve_renewals and application.cohort_year is None:
                    # Renewals first: a newcomer takes only places no waiting renewal needs.
                    quota -= await renewals_waiting(session)
            target = status_after(decision, places_taken=taken, quota=quota)
            if decision is Decision.APPROVE and target is Status.WAITLISTED:
                result = Result.WAITLISTED
            now = utcnow()
            values: dict[str, object] = {
                "status": target,
                "decided_by": actor_id,
                "decided_at": now,
                "updated_at": now,
            }
            if decision in (Decision.REJECT, Decision.WITHDRAW, Decision.FIX):
                # For a fix, the reviewer's note to the worker (or none).
                values["decision_reason"] = reason
            if decision is Decision.FIX:
                values.update(fix_field=fix_field, step=fix_field, return_to_summary=True)
            if target == before:
                # A waitlisted application "approved" again while still full: nothing changes.
                return DecisionOutcome(
                    Result.WAITLISTED,
                    application,
                    before,
                    await position_in(session, application, Status.WAITLISTED),
                )
            # Compare-and-set: only if the status is still the one read above (READ COMMITTED
            # re-checks it after waiting for a concurrent writer of the row).
            changed = await session.execute(
                update(Application)
                .where(col(Application.id) == application_id, col(Application.status) == before)
                .values(**values)
            )
            if not changed.rowcount:  # type: ignore[attr-defined]
                raise _ChangedMeanwhile
            session.add(
                AuditEvent(
                    actor_id=actor_id,
                    action=decision.value,
                    application_id=application_id,
                    from_status=before,
                    to_status=target,
                    reason=fix_audit(fix_field, reason) if decision is Decision.FIX else reason,
                )
            )
            if application.chat_id is not None:  # None: nobody has taken it over on Telegram
                session.add(
                    Notification(
                        application_id=application_id, chat_id=application.chat_id, kind=target
                    )
                )
            await session.flush()
            await session.refresh(application)
            position = None
            if target is Status.WAITLISTED:
                position = await position_in(session, application, Status.WAITLISTED)
            freed = frees_place(before, target)
            filled = await fill_freed_places(session, places) if freed else None
            return DecisionOutcome(result, application, before, position, freed, filled)

    async def record_denied(self, *, actor_id: int, action: str, detail: str) -> None:
        """Audit a refused staff action (not staff, forged button, wrong role)."""
        async with self._db.write() as session, session.begin():
            session.add(
                AuditEvent(actor_id=actor_id, action="denied", reason=f"{action}: {detail}"[:500])
            )

    async def purge_denied(self, *, before: datetime) -> int:
        """Delete the audit rows of refused actions older than `before` (they name Telegram
        accounts that are not staff); returns how many went. Decisions stay for good."""
        async with self._db.write() as session, session.begin():
            deleted = await session.execute(
                sa.delete(AuditEvent).where(
                    col(AuditEvent.action) == "denied", col(AuditEvent.at) < before
                )
            )
            return int(deleted.rowcount)  # type: ignore[attr-defined]

    async def record_export(
        self, *, actor_id: int | None, source: str, statuses: Sequence[str], rows: int, kind: str
    ) -> None:
        """Audit a list of full NIKs leaving the database: who (None: the CLI), what, how many."""
        detail = f"{source}: status={'+'.join(statuses)} rows={rows} format={kind}"
        async with self._db.write() as session, session.begin():
            session.add(AuditEvent(actor_id=actor_id, action="export", reason=detail[:500]))

    async def record_nik_view(
        self, *, actor_id: int, application_id: int, via: str, update_id: int
    ) -> None:
        """Audit a staff member shown an application's NIK unmasked, once per update: the
        update is claimed in the same transaction, so a redelivery after a crash (which the
        duplicate guard then drops) never writes the view twice."""
        async with self._db.write() as session, session.begin():
            if not await claim_update(session, self._db.dialect, update_id):
                return
            session.add(
                AuditEvent(
                    actor_id=actor_id,
                    action="nik_view",
                    application_id=application_id,
                    reason=f"via {via}"[:500],
                )
            )
