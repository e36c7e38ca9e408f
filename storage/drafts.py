"""Drafts: the worker's answers being collected (the conversation state), the per-account
attempt limit, and the shared machinery of guarded writes (outcomes, audit rows)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Update,
    bindparam,
    delete,
    func,
    insert,
    or_,
    update,
)
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col, select

from domain.lifecycle import EDITABLE_STATUSES, OPEN_STATUSES, Status
from storage.engine import Database
from storage.models import Application, AttemptKind, AuditEvent, NikAttempt, TZDateTime, utcnow
from storage.updates import claim_update, record_update

# The "per day" of NIK_ATTEMPTS_PER_DAY: attempts older than this no longer count.
ATTEMPT_WINDOW = timedelta(days=1)


class Outcome(StrEnum):
    """What happened to a write that a Telegram update asked for."""

    DONE = "done"
    DUPLICATE = "duplicate"  # the same update_id was handled before
    STALE = "stale"  # the draft moved on (or vanished) since the update was read
    NIK_TAKEN = "nik_taken"  # another live application holds this NIK
    BUSY = "busy"  # the account already has another open application


class Rollback(Exception):
    """Raised inside a transaction to undo it and report an outcome."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


@lru_cache(maxsize=256)
def _draft_update_statement(keys: frozenset[str], *, guard: bool) -> Update:
    """UPDATE of an editable draft at a known step, built once per set of changed columns.

    Statements built per answer cost more Python than the database spends running them.
    """
    table = Application.__table__  # type: ignore[attr-defined]
    columns = table.c
    conditions = [
        columns.id == bindparam("_id"),
        columns.status.in_([str(status) for status in EDITABLE_STATUSES]),
        columns.step == bindparam("_from_step"),
    ]
    if guard:
        # Equality only: update ids restart lower after a week without updates.
        last = columns.last_update_id
        conditions.append(or_(last.is_(None), last != bindparam("_update_id")))
    values: dict[str, Any] = {
        key: bindparam(key) for key in sorted(keys) if not key.startswith("_")
    }
    return update(table).where(*conditions).values(values)


_APPLICATIONS = Application.__table__  # type: ignore[attr-defined]
_AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]
_ATTEMPTS = NikAttempt.__table__  # type: ignore[attr-defined]

# Hot-path statements are built once: building them per message costs more Python than the
# database spends running them.
_INSERT_APPLICATION = insert(_APPLICATIONS).returning(_APPLICATIONS.c.id)
_INSERT_AUDIT = insert(_AUDIT)
_ACCOUNT_ATTEMPTS = (
    _ATTEMPTS.c.telegram_user_id == bindparam("user_id", type_=BigInteger),
    _ATTEMPTS.c.kind == bindparam("kind", type_=String),
    _ATTEMPTS.c.at >= bindparam("since", type_=TZDateTime),
)
# One statement counts and records an attempt: the row goes in when the same key was already
# counted in the window (a repeat, or a redelivered update, is free) or when the account has
# used fewer distinct keys than its limit. A refused attempt leaves no row: the table does not
# grow with a stranger's hammering, and the HMAC of a NIK never looked up is not kept.
_RECORD_ATTEMPT = insert(_ATTEMPTS).from_select(
    ["telegram_user_id", "kind", "nik_hash", "at"],
    core_select(
        bindparam("user_id", type_=BigInteger),
        bindparam("kind", type_=String),
        bindparam("key", type_=String),
        bindparam("now", type_=TZDateTime),
    ).where(
        or_(
            core_select(_ATTEMPTS.c.id)
            .where(*_ACCOUNT_ATTEMPTS, _ATTEMPTS.c.nik_hash == bindparam("key", type_=String))
            .exists(),
            core_select(func.count(func.distinct(_ATTEMPTS.c.nik_hash)))
            .where(*_ACCOUNT_ATTEMPTS)
            .scalar_subquery()
            < bindparam("limit", type_=Integer),
        )
    ),
)


def audit_values(**values: Any) -> dict[str, Any]:
    """A complete audit row for a Core insert (every column bound, `at` now)."""
    row: dict[str, Any] = {column.name: None for column in _AUDIT.c if column.name != "id"}
    row["at"] = utcnow()
    row.update(values)
    return row


def audit_row(audit: AuditEvent) -> dict[str, Any]:
    return audit_values(**audit.model_dump(exclude={"id", "at"}), at=audit.at)


class DraftRepository:
    """Reads and writes drafts; every write is one short transaction."""

    def __init__(self, database: Database, *, cache_size: int = 2_000) -> None:
        self._db = database
        # Drafts being answered right now, by Telegram user id: saves a read per answer; kept
        # small because idle drafts would only cost memory (10.000 of them: +23 MB). The database
        # stays the truth: every write is guarded by the draft's step and last_update_id, and
        # a guard that fails (another process, expiry, erasure) evicts the entry.
        self._drafts: OrderedDict[int, Application] = OrderedDict()
        self._owners: dict[int, int] = {}
        self._cache_size = cache_size

    def _remember(self, application: Application | None, user_id: int) -> None:
        if application is None or application.status not in EDITABLE_STATUSES:
            self._forget(user_id)
            return
        self._drafts[user_id] = application
        self._drafts.move_to_end(user_id)
        if application.id is not None:
            self._owners[application.id] = user_id
        if len(self._drafts) > self._cache_size:
            _, oldest = self._drafts.popitem(last=False)
            self._owners.pop(oldest.id or -1, None)

    def _forget(self, user_id: int) -> None:
        dropped = self._drafts.pop(user_id, None)
        if dropped is not None and dropped.id is not None:
            self._owners.pop(dropped.id, None)

    def forget(self, *, user_id: int | None = None) -> None:
        """Drop cached drafts (one user's, or all after changes made elsewhere)."""
        if user_id is None:
            self._drafts.clear()
            self._owners.clear()
        else:
            self._forget(user_id)

    async def _claim_update(
        self, transaction: AsyncSession | AsyncConnection, update_id: int | None
    ) -> bool:
        """Record an update id in this transaction; False when it was handled before."""
        return update_id is None or await claim_update(transaction, self._db.dialect, update_id)

    def cached_draft(self, *, user_id: int) -> Application | None:
        """The user's draft if this process holds it, without touching the database."""
        return self._drafts.get(user_id)

    async def open_for(self, *, user_id: int) -> Application | None:
        """The user's draft or live application, if any."""
        cached = self._drafts.get(user_id)
        if cached is not None:
            return cached
        async with self._db.read() as session:
            query = select(Application).where(
                Application.telegram_user_id == user_id,
                col(Application.status).in_(OPEN_STATUSES),
            )
            found = (await session.execute(query)).scalars().first()
        self._remember(found, user_id)
        return found

    async def start_draft(
        self,
        *,
        user_id: int,
        chat_id: int,
        consent_version: str,
        first_step: str,
        update_id: int | None,
        community_id: int | None = None,
    ) -> Application | None:
        """Open a draft after consent; the user's existing open application wins a race.
        `community_id`: the community whose link the worker arrived by."""
        self._forget(user_id)
        now = utcnow()
        draft = Application(
            telegram_user_id=user_id,
            chat_id=chat_id,
            status=Status.DRAFT,
            step=first_step,
            consent_version=consent_version,
            consent_at=now,
            created_at=now,
            updated_at=now,
            community_id=community_id,
        )
        try:
            async with self._db.transaction() as connection:
                if not await self._claim_update(connection, update_id):
                    return None
                values = draft.model_dump(exclude={"id"})
                draft.id = (await connection.execute(_INSERT_APPLICATION, values)).scalar_one()
                await connection.execute(
                    _INSERT_AUDIT,
                    audit_values(
                        actor_id=user_id,
                        action="consent",
                        application_id=draft.id,
                        to_status=Status.DRAFT,
                        reason=consent_version,
                    ),
                )
        except IntegrityError:
            return None
        self._remember(draft, user_id)
        return draft

    async def advance(
        self,
        *,
        application_id: int,
        from_step: str,
        to_step: str | None,
        values: Mapping[str, Any],
        update_id: int | None,
        return_to_summary: bool | None = None,
    ) -> Outcome:
        """Store an answer and move the draft to its next step, in one transaction."""
        changes = dict(values)
        changes.update(step=to_step, updated_at=utcnow(), reminded_at=None)
        if return_to_summary is not None:
            changes["return_to_summary"] = return_to_summary
        # The hot path: the guarded UPDATE runs alone and the update id is logged after it, two
        # short statements instead of a transaction. A crash between the two leaves this update
        # unlogged, but it is then the draft's last_update_id, which catches its redelivery.
        return await self._update_draft(application_id, from_step, changes, update_id, claim=False)

    async def _update_draft(
        self,
        application_id: int,
        from_step: str,
        changes: Mapping[str, Any],
        update_id: int | None,
        audit: AuditEvent | None = None,
        *,
        claim: bool = True,
    ) -> Outcome:
        params: dict[str, Any] = {**changes, "_id": application_id, "_from_step": from_step}
        if update_id is not None:
            params["last_update_id"] = update_id
            params["_update_id"] = update_id
        statement = _draft_update_statement(frozenset(params), guard=update_id is not None)
        owner = self._owners.get(application_id)
        try:
            if not claim and audit is None:
                # The common case, an answer: one guarded UPDATE, a transaction by itself.
                if not await self._db.execute_alone(statement, params):
                    raise Rollback(Outcome.STALE)
                if update_id is not None:
                    await record_update(self._db, update_id)
            else:
                async with self._db.transaction() as connection:
                    if claim and not await self._claim_update(connection, update_id):
                        raise Rollback(Outcome.DUPLICATE)
                    result = await connection.execute(statement, params)
                    if not result.rowcount:
                        raise Rollback(Outcome.STALE)
                    if audit is not None:
                        await connection.execute(_INSERT_AUDIT, audit_row(audit))
        except Rollback as rollback:
            if owner is not None:
                self._forget(owner)
            return rollback.outcome
        if owner is not None:
            cached = self._drafts.get(owner)
            if cached is not None:
                stored = {k: v for k, v in params.items() if not k.startswith("_")}
                self._remember(cached.model_copy(update=stored), owner)
        return Outcome.DONE

    async def mark_ineligible(
        self,
        *,
        application_id: int,
        user_id: int,
        from_step: str,
        values: Mapping[str, Any],
        reasons: str,
        update_id: int | None,
        from_status: str = Status.DRAFT,
    ) -> Outcome:
        """Close a draft as ineligible, keeping the exact reasons for staff."""
        changes = dict(values)
        changes.update(
            status=Status.INELIGIBLE,
            step=None,
            eligibility_reasons=reasons,
            updated_at=utcnow(),
        )
        audit = AuditEvent(
            actor_id=user_id,
            action="assess",
            application_id=application_id,
            from_status=from_status,
            to_status=Status.INELIGIBLE,
            reason=reasons,
        )
        return await self._update_draft(application_id, from_step, changes, update_id, audit)

    async def discard_draft(self, *, user_id: int) -> bool:
        """Delete the user's draft (data minimisation); True when there was one."""
        self._forget(user_id)
        async with self._db.write() as session, session.begin():
            result = await session.execute(
                delete(Application).where(
                    col(Application.telegram_user_id) == user_id,
                    col(Application.status) == Status.DRAFT,
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def record_attempt(
        self, *, user_id: int, kind: AttemptKind, key_hash: str, since: datetime, limit: int
    ) -> bool:
        """Count a NIK look-up or an eligibility check against the account's limit; False when
        `limit` distinct keys of this kind were already used since `since` (nothing stored).

        The same key again within the window is always allowed and counts once.
        """
        params = {
            "user_id": user_id,
            "kind": str(kind),
            "key": key_hash,
            "now": utcnow(),
            "since": since,
            "limit": limit,
        }
        return await self._db.execute_alone(_RECORD_ATTEMPT, params) > 0

    async def drafts_to_remind(
        self, *, idle_since: datetime, limit: int = 500
    ) -> list[Application]:
        """Drafts untouched since `idle_since` whose worker was not reminded yet."""
        async with self._db.read() as session:
            query = (
                select(Application)
                .where(
                    col(Application.status) == Status.DRAFT,
                    col(Application.updated_at) < idle_since,
                    col(Application.reminded_at).is_(None),
                )
                .limit(limit)
            )
            return list((await session.execute(query)).scalars())

    async def claim_reminder(
        self, *, application_id: int, idle_since: datetime, now: datetime
    ) -> bool:
        """Take a draft's one reminder before sending it (compare-and-set): False when another
        process took it first, or the worker answered since it was read."""
        statement = (
            update(Application)
            .where(
                col(Application.id) == application_id,
                col(Application.status) == Status.DRAFT,
                col(Application.reminded_at).is_(None),
                col(Application.updated_at) < idle_since,
            )
            .values(reminded_at=now)
        )
        async with self._db.write() as session, session.begin():
            result = await session.execute(statement)
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release_reminder(self, *, application_id: int) -> None:
        """Give a claimed reminder back after Telegram refused its send, so a later run tries
        again."""
        async with self._db.write() as session, session.begin():
            await session.execute(
                update(Application)
                .where(col(Application.id) == application_id)
                .values(reminded_at=None)
            )

    async def mark_reminded(self, *, application_id: int) -> None:
        """Remember that a draft's worker was reminded, so it happens once."""
        async with self._db.write() as session, session.begin():
            await session.execute(
                update(Application)
                .where(col(Application.id) == application_id)
                .values(reminded_at=utcnow())
            )
