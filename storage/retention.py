"""Retention and erasure: what expires (abandoned drafts, old ineligible checks, attempts,
update ids) and what withdrawing consent deletes or unlinks."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Integer, bindparam, case, delete, func, or_, update
from sqlalchemy import select as core_select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col, select

from domain.lifecycle import PLACE_HOLDING, Status
from storage.engine import Database
from storage.models import (
    Appeal,
    Application,
    AttemptKind,
    AuditEvent,
    Deregistration,
    NikAttempt,
    Notification,
    ProcessedUpdate,
    UserPreference,
    utcnow,
)
from storage.waitlist import Filled, Places, fill_freed_places, lock_places

_APPLICATIONS = Application.__table__  # type: ignore[attr-defined]
_AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]
_ATTEMPTS = NikAttempt.__table__  # type: ignore[attr-defined]
# What an erased account's attempts hold instead of an HMAC (see erase_user).
ERASED_PREFIX = "erased:"


# An erased account's attempts: one key's rows get one stand-in (see erase_user).
_ANONYMISE_ATTEMPTS = (
    update(_ATTEMPTS)
    .where(
        _ATTEMPTS.c.telegram_user_id == bindparam("user_id"),
        _ATTEMPTS.c.nik_hash == bindparam("old_key"),
    )
    .values(nik_hash=bindparam("new_key"))
)


# What erasure and retention leave of a worker's audit events: the chain (kind, time, statuses,
# staff actors) stays; the free text goes (eligibility findings hold typed and DTSEN birth
# dates and the desil, a staff reason may quote a NIK or a phone) and the worker's own
# Telegram id is unlinked. The consent version names no one and records the legal basis.
_SCRUB_AUDIT = (
    update(_AUDIT)
    .where(_AUDIT.c.application_id == bindparam("application_id_", type_=Integer))
    .values(
        reason=case((_AUDIT.c.action == "consent", _AUDIT.c.reason), else_=None),
        actor_id=case(
            (_AUDIT.c.actor_id == bindparam("subject_", type_=BigInteger), None),
            else_=_AUDIT.c.actor_id,
        ),
    )
)


async def scrub_audit(
    connection: AsyncSession | AsyncConnection, subjects: Sequence[tuple[int, int]]
) -> None:
    """Drop the personal content of these (application id, worker's Telegram id) events."""
    if subjects:
        await connection.execute(
            _SCRUB_AUDIT,
            [{"application_id_": app, "subject_": user} for app, user in subjects],
        )


async def delete_expired(
    database: Database,
    *,
    drafts_idle_since: datetime,
    ineligible_before: datetime,
    attempts_before: datetime,
    updates_before: datetime,
) -> int:
    """Delete abandoned drafts, old ineligible records, attempts that only served the
    daily limit (data minimisation) and update ids past Telegram's redelivery window;
    returns how many applications went."""
    returned = (_APPLICATIONS.c.id, _APPLICATIONS.c.telegram_user_id)
    async with database.write() as session, session.begin():
        drafts = await session.execute(
            delete(_APPLICATIONS)
            .where(
                _APPLICATIONS.c.status == str(Status.DRAFT),
                _APPLICATIONS.c.updated_at < drafts_idle_since,
            )
            .returning(*returned)
        )
        ineligible = await session.execute(
            delete(_APPLICATIONS)
            .where(
                _APPLICATIONS.c.status == str(Status.INELIGIBLE),
                _APPLICATIONS.c.updated_at < ineligible_before,
            )
            .returning(*returned)
        )
        # An imported cohort member found ineligible never had a Telegram account (None): 0 is
        # nobody's id, so only the application's own events are scrubbed.
        deleted = [(int(row[0]), int(row[1] or 0)) for row in (*drafts.all(), *ineligible.all())]
        await scrub_audit(session, deleted)
        await delete_appeals(session, [application_id for application_id, _user in deleted])
        # Past the window an id may come again (Telegram restarts the sequence after a
        # quiet week), so a kept row would drop a new update.
        await session.execute(
            delete(ProcessedUpdate).where(col(ProcessedUpdate.processed_at) < updates_before)
        )
        # Eligibility checks and erased accounts' attempts exist for the daily limit only;
        # NIK look-ups stay for the staff risk flag (distinct NIKs tried from the account).
        await session.execute(
            delete(NikAttempt).where(
                col(NikAttempt.at) < attempts_before,
                or_(
                    col(NikAttempt.kind) != AttemptKind.NIK,
                    col(NikAttempt.nik_hash).startswith(ERASED_PREFIX),
                ),
            )
        )
        return len(deleted)


async def delete_appeals(
    connection: AsyncSession | AsyncConnection, application_ids: Sequence[int]
) -> None:
    """An application that goes takes its appeals with it (the worker's own words)."""
    if application_ids:
        await connection.execute(
            delete(Appeal).where(col(Appeal.application_id).in_(application_ids))
        )


async def _keep_for_deregistration(
    session: AsyncSession, applications: Sequence[Application]
) -> set[int]:
    """Write what BPJS needs to stop paying for the workers who held a place (NIK, name, KPJ,
    when approved and enrolled); returns the ids of the applications kept so."""
    holding = {
        a.id: (a, a.code, a.nik)
        for a in applications
        if a.status in PLACE_HOLDING and a.id and a.code and a.nik
    }
    if not holding:
        return set()
    reached = await session.execute(
        core_select(_AUDIT.c.application_id, _AUDIT.c.to_status, func.max(_AUDIT.c.at))
        .where(
            _AUDIT.c.application_id.in_(list(holding)),
            _AUDIT.c.to_status.in_([str(Status.APPROVED), str(Status.ENROLLED)]),
        )
        .group_by(_AUDIT.c.application_id, _AUDIT.c.to_status)
    )
    when = {(row[0], row[1]): row[2] for row in reached}
    now = utcnow()
    for application_id, (application, code, nik) in holding.items():
        session.add(
            Deregistration(
                application_id=application_id,
                code=code,
                nik=nik,
                nama=application.nama or "-",
                kpj_number=application.kpj_number,
                # An application put in place without a decision (an import) has no event.
                approved_at=when.get((application_id, Status.APPROVED)) or application.decided_at,
                enrolled_at=when.get((application_id, Status.ENROLLED)),
                erased_at=now,
            )
        )
    return set(holding)


@dataclass(frozen=True)
class Erasure:
    """What erasing a worker's data removed; codes that held a place are returned for staff."""

    applications: int
    withdrawn_codes: tuple[str, ...]
    # NIK, name, KPJ and dates kept until staff have deregistered the worker with BPJS.
    kept_for_deregistration: bool = False
    # What the waiting list did with the places freed (None: none freed, or no `places`).
    filled: Filled | None = None


async def erase_user(database: Database, *, user_id: int, places: Places | None = None) -> Erasure:
    """Withdraw consent: delete every application and preference of one account, and unlink
    its NIK attempts from the NIKs.

    An approved or enrolled application is withdrawn first (its place is freed); the audit
    trail keeps the state changes and the staff who made them, but no personal data and not
    the worker's Telegram id. With `places`, a freed place goes to the waiting list in the same
    transaction (`storage.waitlist`).
    """
    async with database.write() as session, session.begin():
        if places is not None:
            # Before any row lock, in the order approvals take them: quota, then rows.
            await lock_places(session, database.dialect)
        # Locked as read (PostgreSQL; SQLite's write transaction already excludes writers): a
        # decision landing meanwhile waits, and an approval is withdrawn and reported, never
        # deleted as if it were still pending.
        rows = (
            (
                await session.execute(
                    select(Application)
                    .where(col(Application.telegram_user_id) == user_id)
                    .with_for_update()
                )
            )
            .scalars()
            .all()
        )
        ids = [a.id for a in rows if a.id is not None]
        kept = await _keep_for_deregistration(session, rows)
        # Before this erasure's own events are added: they name no one already.
        await scrub_audit(session, [(application_id, user_id) for application_id in ids])
        # Staff commands and buttons the account was refused: unlinked too.
        await session.execute(
            update(AuditEvent)
            .where(col(AuditEvent.actor_id) == user_id, col(AuditEvent.action) == "denied")
            .values(actor_id=None, reason=None)
        )
        withdrawn: list[str] = []
        for application in rows:
            if application.status in PLACE_HOLDING and application.code:
                withdrawn.append(application.code)
                session.add(
                    AuditEvent(
                        actor_id=None,
                        action="withdraw",
                        application_id=application.id,
                        from_status=application.status,
                        to_status=Status.WITHDRAWN,
                        reason="consent withdrawn",
                    )
                )
            session.add(
                AuditEvent(
                    actor_id=None,
                    action="erase",
                    application_id=application.id,
                    from_status=Status.WITHDRAWN
                    if application.code in withdrawn
                    else application.status,
                    reason="consent withdrawn (UU PDP); kept to deregister (legal obligation)"
                    if application.id in kept
                    else "consent withdrawn (UU PDP)",
                )
            )
        if ids:
            await session.execute(
                delete(Notification).where(col(Notification.application_id).in_(ids))
            )
            await session.execute(delete(Application).where(col(Application.id).in_(ids)))
            await delete_appeals(session, ids)
        # The attempts are not deleted: an account could otherwise try its NIKs for the day,
        # erase, and try as many again. Each distinct HMAC (a NIK, or a NIK with a name and a
        # birth date) gets a random stand-in instead, so the rows count as the same number of
        # distinct attempts and name no one: unlike an HMAC, a random value cannot be checked
        # against a NIK, even with PII_SECRET. They go once they leave the window
        # (delete_expired); the same NIK tried again after the erasure counts anew.
        keys = await session.execute(
            core_select(_ATTEMPTS.c.nik_hash)
            .where(_ATTEMPTS.c.telegram_user_id == user_id)
            .distinct()
        )
        stand_ins = [
            {"user_id": user_id, "old_key": key, "new_key": ERASED_PREFIX + secrets.token_hex(16)}
            for key in keys.scalars()
        ]
        if stand_ins:
            await session.execute(_ANONYMISE_ATTEMPTS, stand_ins)
        await session.execute(
            delete(UserPreference).where(col(UserPreference.telegram_user_id) == user_id)
        )
        filled = None
        if withdrawn and places is not None:
            filled = await fill_freed_places(session, places)
        erasure = Erasure(
            applications=len(ids),
            withdrawn_codes=tuple(withdrawn),
            kept_for_deregistration=bool(kept),
            filled=filled,
        )
    # The erased values would otherwise stay in the WAL's old frames until the next checkpoint.
    await database.checkpoint()
    return erasure
