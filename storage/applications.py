"""Applications: the worker's draft (the conversation state) and the submitted record."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    case,
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

from domain.lifecycle import EDITABLE_STATUSES, OPEN_STATUSES, PLACE_HOLDING
from storage.engine import Database
from storage.models import (
    LIVE_STATUSES,
    Application,
    AttemptKind,
    AuditEvent,
    Deregistration,
    NikAttempt,
    Notification,
    ProcessedUpdate,
    Status,
    TZDateTime,
    UserPreference,
    utcnow,
)
from storage.queue import position_in
from storage.updates import claim_update, record_update

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# The "per day" of NIK_ATTEMPTS_PER_DAY: attempts older than this no longer count.
ATTEMPT_WINDOW = timedelta(days=1)
# What an erased account's attempts hold instead of an HMAC (see erase_user).
ERASED_PREFIX = "erased:"


class Outcome(StrEnum):
    """What happened to a write that a Telegram update asked for."""

    DONE = "done"
    DUPLICATE = "duplicate"  # the same update_id was handled before
    STALE = "stale"  # the draft moved on (or vanished) since the update was read
    NIK_TAKEN = "nik_taken"  # another live application holds this NIK


@dataclass(frozen=True)
class SubmitResult:
    """The outcome of a submission and, when it went through, the application number."""

    outcome: Outcome
    code: str | None = None


class _Rollback(Exception):
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


def new_application_code(prefix: str) -> str:
    """`BKS-4F7K2Q`: the configured prefix and six random Crockford base32 characters."""
    return prefix + "-" + "".join(secrets.choice(CROCKFORD) for _ in range(6))


_APPLICATIONS = Application.__table__  # type: ignore[attr-defined]
_AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]
_ATTEMPTS = NikAttempt.__table__  # type: ignore[attr-defined]

# Hot-path statements are built once: building them per message costs more Python than the
# database spends running them.
_INSERT_APPLICATION = insert(_APPLICATIONS).returning(_APPLICATIONS.c.id)
_INSERT_AUDIT = insert(_AUDIT)
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


async def _scrub_audit(
    connection: AsyncSession | AsyncConnection, subjects: Sequence[tuple[int, int]]
) -> None:
    """Drop the personal content of these (application id, worker's Telegram id) events."""
    if subjects:
        await connection.execute(
            _SCRUB_AUDIT,
            [{"application_id_": app, "subject_": user} for app, user in subjects],
        )


def _audit_values(**values: Any) -> dict[str, Any]:
    """A complete audit row for a Core insert (every column bound, `at` now)."""
    row: dict[str, Any] = {column.name: None for column in _AUDIT.c if column.name != "id"}
    row["at"] = utcnow()
    row.update(values)
    return row


def _audit_row(audit: AuditEvent) -> dict[str, Any]:
    return _audit_values(**audit.model_dump(exclude={"id", "at"}), at=audit.at)


class ApplicationRepository:
    """Reads and writes applications; every write is one short transaction."""

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

    async def start_draft(
        self,
        *,
        user_id: int,
        chat_id: int,
        consent_version: str,
        first_step: str,
        update_id: int | None,
    ) -> Application | None:
        """Open a draft after consent; the user's existing open application wins a race."""
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
        )
        try:
            async with self._db.transaction() as connection:
                if not await self._claim_update(connection, update_id):
                    return None
                values = draft.model_dump(exclude={"id"})
                draft.id = (await connection.execute(_INSERT_APPLICATION, values)).scalar_one()
                await connection.execute(
                    _INSERT_AUDIT,
                    _audit_values(
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
                    raise _Rollback(Outcome.STALE)
                if update_id is not None:
                    await record_update(self._db, update_id)
            else:
                async with self._db.transaction() as connection:
                    if claim and not await self._claim_update(connection, update_id):
                        raise _Rollback(Outcome.DUPLICATE)
                    result = await connection.execute(statement, params)
                    if not result.rowcount:
                        raise _Rollback(Outcome.STALE)
                    if audit is not None:
                        await connection.execute(_INSERT_AUDIT, _audit_row(audit))
        except _Rollback as rollback:
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
                    raise _Rollback(Outcome.DUPLICATE)
                application = await session.get(Application, application_id)
                if (
                    application is None
                    or application.status != Status.NEEDS_FIX
                    or application.step != from_step
                ):
                    raise _Rollback(Outcome.STALE)
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
        except _Rollback as rollback:
            return rollback.outcome
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
                        raise _Rollback(Outcome.DUPLICATE)
                    application = await session.get(Application, application_id)
                    if (
                        application is None
                        or application.status not in EDITABLE_STATUSES
                        or application.step != from_step
                    ):
                        raise _Rollback(Outcome.STALE)
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
                        raise _Rollback(Outcome.STALE)
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
            except _Rollback as rollback:
                return SubmitResult(rollback.outcome)
            except IntegrityError as error:
                if "code" in str(error.orig).lower() and "nik" not in str(error.orig).lower():
                    continue  # two submissions drew the same number: draw again
                return SubmitResult(Outcome.NIK_TAKEN)
            return SubmitResult(Outcome.DONE, code)
        raise RuntimeError("could not draw a free application number")

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

    async def nik_is_taken(
        self, *, nik_hash: str, except_application: int | None, user_id: int | None = None
    ) -> bool:
        """Whether a live application (other than this one) already holds this NIK, or one
        rejected from an account other than `user_id` (when given)."""
        async with self._db.engine.connect() as connection:
            params = {
                "nik_hash": nik_hash,
                "except_id": except_application or -1,
                # Without an account, rejected applications do not count (no status is "").
                "rejected": str(Status.REJECTED) if user_id is not None else "",
                "user_id": user_id or 0,
            }
            return (await connection.execute(_NIK_TAKEN, params)).first() is not None

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

    async def queue_position(self, *, application: Application) -> int:
        """1-based place among pending applications, in the staff queue's order."""
        async with self._db.read() as session:
            return await position_in(session, application, Status.PENDING)

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

    async def mark_reminded(self, *, application_id: int) -> None:
        """Remember that a draft's worker was reminded, so it happens once."""
        async with self._db.write() as session, session.begin():
            await session.execute(
                update(Application)
                .where(col(Application.id) == application_id)
                .values(reminded_at=utcnow())
            )

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
        self.forget()
        returned = (_APPLICATIONS.c.id, _APPLICATIONS.c.telegram_user_id)
        async with self._db.write() as session, session.begin():
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
            deleted = [(int(row[0]), int(row[1])) for row in (*drafts.all(), *ineligible.all())]
            await _scrub_audit(session, deleted)
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


async def erase_user(database: Database, *, user_id: int) -> Erasure:
    """Withdraw consent: delete every application and preference of one account, and unlink
    its NIK attempts from the NIKs.

    An approved or enrolled application is withdrawn first (its place is freed); the audit
    trail keeps the state changes and the staff who made them, but no personal data and not
    the worker's Telegram id.
    """
    async with database.write() as session, session.begin():
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
        await _scrub_audit(session, [(application_id, user_id) for application_id in ids])
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
        erasure = Erasure(
            applications=len(ids),
            withdrawn_codes=tuple(withdrawn),
            kept_for_deregistration=bool(kept),
        )
    # The erased values would otherwise stay in the WAL's old frames until the next checkpoint.
    await database.checkpoint()
    return erasure
