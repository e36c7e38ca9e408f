"""Submitted applications: submission with a number, corrections kept in review, the NIK
uniqueness rule and the queue position; built on the draft repository."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, String, bindparam, delete, or_, update
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from domain.lifecycle import EDITABLE_STATUSES, LIVE_STATUSES, OPEN_STATUSES, Status
from domain.pii import BlindIndex
from storage.drafts import DraftRepository, Outcome, Rollback
from storage.models import Application, AuditEvent, Notification, utcnow
from storage.queue import position_in
from storage.retention import delete_expired

_APPLICATIONS = Application.__table__  # type: ignore[attr-defined]
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# The outbox kind that tells an operator their worker took the application over.
TAKEN_OVER = "taken_over"


@dataclass(frozen=True)
class SubmitResult:
    """The outcome of a submission and, when it went through, the application number."""

    outcome: Outcome
    code: str | None = None


def new_application_code(prefix: str) -> str:
    """`BKS-4F7K2Q`: the configured prefix and six random Crockford base32 characters."""
    return prefix + "-" + "".join(secrets.choice(CROCKFORD) for _ in range(6))


# A NIK is taken by a live application, or by one staff rejected from another account: the
# answer must not tell a stranger whether the other application is pending, approved or
# rejected (the worker's own rejected application does not stop them applying again).
_NIK_TAKEN = (
    core_select(_APPLICATIONS.c.id)
    .where(
        _APPLICATIONS.c.nik_hash == bindparam("nik_hash"),
        or_(
            _APPLICATIONS.c.status.in_([str(status) for status in LIVE_STATUSES]),
            (_APPLICATIONS.c.status == bindparam("rejected", type_=String))
            & (_APPLICATIONS.c.telegram_user_id != bindparam("user_id", type_=BigInteger)),
        ),
        _APPLICATIONS.c.id != bindparam("except_id"),
    )
    .limit(1)
)


class ApplicationRepository(DraftRepository):
    """Reads and writes applications, drafts included; every write is one short transaction."""

    async def latest_for(self, *, user_id: int) -> Application | None:
        """The user's open application, else their most recent closed one."""
        async with self._db.read() as session:
            query = (
                select(Application)
                .where(Application.telegram_user_id == user_id)
                .order_by(
                    col(Application.status).in_(OPEN_STATUSES).desc(),
                    col(Application.id).desc(),
                )
                .limit(1)
            )
            return (await session.execute(query)).scalars().first()

    async def get(self, *, application_id: int) -> Application | None:
        """One application by id."""
        async with self._db.read() as session:
            return await session.get(Application, application_id)

    async def keep_in_review(
        self, *, application_id: int, user_id: int, from_step: str, update_id: int | None
    ) -> Outcome:
        """A correction staff asked for kept failing the DTSEN check past the daily limit: the
        application goes back to where it was before the fix was asked (pending or waitlisted)
        with its previous answers, flagged for the reviewer, instead of being lost."""
        self._forget(user_id)
        try:
            async with self._db.write() as session, session.begin():
                if not await self._claim_update(session, update_id):
                    raise Rollback(Outcome.DUPLICATE)
                application = await session.get(Application, application_id)
                if (
                    application is None
                    or application.status != Status.NEEDS_FIX
                    or application.step != from_step
                ):
                    raise Rollback(Outcome.STALE)
                # The status the fix was asked from, as the audit trail recorded it.
                previous = (
                    await session.execute(
                        select(col(AuditEvent.from_status))
                        .where(
                            col(AuditEvent.application_id) == application_id,
                            col(AuditEvent.to_status) == Status.NEEDS_FIX,
                        )
                        .order_by(col(AuditEvent.id).desc())
                        .limit(1)
                    )
                ).scalar()
                target = previous if previous == Status.WAITLISTED else Status.PENDING
                now = utcnow()
                application.status = target
                application.step = None
                application.fix_field = None
                application.return_to_summary = False
                application.identity_mismatch_at = now
                application.updated_at = now
                if update_id is not None:
                    application.last_update_id = update_id
                session.add(
                    AuditEvent(
                        actor_id=user_id,
                        action="correction_mismatch",
                        application_id=application_id,
                        from_status=Status.NEEDS_FIX,
                        to_status=target,
                        reason="identity correction did not match DTSEN",
                    )
                )
        except Rollback as rollback:
            return rollback.outcome
        return Outcome.DONE

    async def reopen_requalified(
        self, *, application_id: int, user_id: int, to_step: str, update_id: int | None
    ) -> Outcome:
        """An ineligible application the DTSEN re-check found eligible becomes the worker's
        draft again at `to_step`, its answers kept; BUSY when they have another open one."""
        self._forget(user_id)
        try:
            async with self._db.write() as session, session.begin():
                if not await self._claim_update(session, update_id):
                    raise Rollback(Outcome.DUPLICATE)
                now = utcnow()
                changed = await session.execute(
                    update(Application)
                    .where(
                        col(Application.id) == application_id,
                        col(Application.telegram_user_id) == user_id,
                        col(Application.status) == Status.INELIGIBLE,
                        col(Application.requalified_at).is_not(None),
                    )
                    .values(
                        status=Status.DRAFT,
                        step=to_step,
                        requalified_at=None,
                        updated_at=now,
                        reminded_at=None,
                        last_update_id=update_id,
                    )
                )
                if not changed.rowcount:  # type: ignore[attr-defined]
                    raise Rollback(Outcome.STALE)
                session.add(
                    AuditEvent(
                        actor_id=user_id,
                        action="resume",
                        application_id=application_id,
                        from_status=Status.INELIGIBLE,
                        to_status=Status.DRAFT,
                        reason="eligible after a DTSEN re-check",
                    )
                )
        except Rollback as rollback:
            return rollback.outcome
        except IntegrityError:
            # uq_application_open_user: a new draft or application of theirs came first.
            return Outcome.BUSY
        return Outcome.DONE

    async def submit(
        self,
        *,
        application_id: int,
        user_id: int,
        from_step: str,
        prefix: str,
        update_id: int | None,
    ) -> SubmitResult:
        """Send a complete draft (or a fixed application) to the queue, with its number."""
        self._forget(user_id)
        for _attempt in range(5):
            try:
                async with self._db.write() as session, session.begin():
                    if not await self._claim_update(session, update_id):
                        raise Rollback(Outcome.DUPLICATE)
                    application = await session.get(Application, application_id)
                    if (
                        application is None
                        or application.status not in EDITABLE_STATUSES
                        or application.step != from_step
                    ):
                        raise Rollback(Outcome.STALE)
                    before = application.status
                    now = utcnow()
                    code = application.code or new_application_code(prefix)
                    # Compare-and-set on the status and step read above: a staff decision on
                    # a fix (or another submission) landing meanwhile wins, this one is stale.
                    changed = await session.execute(
                        update(Application)
                        .where(
                            col(Application.id) == application_id,
                            col(Application.status) == before,
                            col(Application.step) == from_step,
                        )
                        .values(
                            code=code,
                            status=Status.PENDING,
                            step=None,
                            fix_field=None,
                            return_to_summary=False,
                            # A fixed application keeps its place: the submission time stays.
                            submitted_at=application.submitted_at or now,
                            updated_at=now,
                        )
                    )
                    if not changed.rowcount:  # type: ignore[attr-defined]
                        raise Rollback(Outcome.STALE)
                    session.add(
                        AuditEvent(
                            actor_id=user_id,
                            action="submit" if before == Status.DRAFT else "resubmit",
                            application_id=application_id,
                            from_status=before,
                            to_status=Status.PENDING,
                        )
                    )
                    await session.flush()
            except Rollback as rollback:
                return SubmitResult(rollback.outcome)
            except IntegrityError as error:
                if "code" in str(error.orig).lower() and "nik" not in str(error.orig).lower():
                    continue  # two submissions drew the same number: draw again
                return SubmitResult(Outcome.NIK_TAKEN)
            return SubmitResult(Outcome.DONE, code)
        raise RuntimeError("could not draw a free application number")

    async def discard_assisted(self, *, application_id: int) -> bool:
        """Delete a draft an operator was filling in for a worker (no Telegram account)."""
        async with self._db.write() as session, session.begin():
            result = await session.execute(
                delete(Application).where(
                    col(Application.id) == application_id,
                    col(Application.telegram_user_id).is_(None),
                    col(Application.status) == Status.DRAFT,
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def unclaimed_holder(self, *, nik_hash: str) -> Application | None:
        """The live application an operator registered with this NIK that no Telegram account
        holds yet (its worker may take it over), if any."""
        async with self._db.read() as session:
            query = select(Application).where(
                col(Application.nik_hash) == nik_hash,
                col(Application.status).in_(LIVE_STATUSES),
                col(Application.telegram_user_id).is_(None),
                col(Application.assisted_by).is_not(None),
            )
            return (await session.execute(query)).scalars().first()

    async def take_over(
        self,
        *,
        application_id: int,
        draft_id: int,
        user_id: int,
        chat_id: int,
        update_id: int | None,
    ) -> Outcome:
        """The worker proved their identity from their own Telegram: their new draft goes and
        the application an operator registered becomes theirs; audited, and the operator is
        told through the outbox, all in one transaction."""
        self._forget(user_id)
        try:
            async with self._db.write() as session, session.begin():
                if not await self._claim_update(session, update_id):
                    raise Rollback(Outcome.DUPLICATE)
                application = await session.get(Application, application_id)
                if (
                    application is None
                    or application.telegram_user_id is not None
                    or application.status not in LIVE_STATUSES
                    or application.assisted_by is None
                ):
                    raise Rollback(Outcome.STALE)
                # The draft goes first: the account may hold one open application only.
                await session.execute(
                    delete(Application).where(
                        col(Application.id) == draft_id,
                        col(Application.telegram_user_id) == user_id,
                        col(Application.status) == Status.DRAFT,
                    )
                )
                await session.flush()
                application.telegram_user_id = user_id
                application.chat_id = chat_id
                application.updated_at = utcnow()
                session.add(
                    AuditEvent(
                        actor_id=user_id,
                        action="take_over",
                        application_id=application_id,
                        from_status=application.status,
                        to_status=application.status,
                        reason=f"assisted by {application.assisted_by}",
                    )
                )
                session.add(
                    Notification(
                        application_id=application_id,
                        chat_id=application.assisted_by,
                        kind=TAKEN_OVER,
                    )
                )
        except Rollback as rollback:
            return rollback.outcome
        except IntegrityError:
            return Outcome.STALE
        return Outcome.DONE

    async def nik_is_taken(
        self, *, nik: BlindIndex, except_application: int | None, user_id: int | None = None
    ) -> bool:
        """Whether a live application (other than this one) already holds this NIK, or one
        rejected from an account other than `user_id` (when given)."""
        async with self._db.engine.connect() as connection:
            params = {
                "nik_hash": nik.hex,
                "except_id": except_application or -1,
                # Without an account, rejected applications do not count (no status is "").
                "rejected": str(Status.REJECTED) if user_id is not None else "",
                "user_id": user_id or 0,
            }
            return (await connection.execute(_NIK_TAKEN, params)).first() is not None

    async def queue_position(self, *, application: Application) -> int:
        """1-based place among pending applications, in the staff queue's order."""
        async with self._db.read() as session:
            return await position_in(session, application, Status.PENDING)

    async def delete_expired(
        self,
        *,
        drafts_idle_since: datetime,
        ineligible_before: datetime,
        attempts_before: datetime,
        updates_before: datetime,
    ) -> int:
        """Delete abandoned drafts, old ineligible records, attempts that only served the
        daily limit (data minimisation) and update ids past Telegram's redelivery window;
        returns how many applications went."""
        # Any cached draft may be among them.
        self.forget()
        return await delete_expired(
            self._db,
            drafts_idle_since=drafts_idle_since,
            ineligible_before=ineligible_before,
            attempts_before=attempts_before,
            updates_before=updates_before,
        )
