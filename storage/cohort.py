"""Last year's cohort in the database: the import's one transaction, the bulk renewal the admin
confirms (/perpanjang), the list of those no longer eligible, and a member taking their
imported application over from Telegram.

The bulk renewal is one transaction under the quota lock (BEGIN IMMEDIATE on SQLite, the
advisory lock decisions take on PostgreSQL) whose UPDATE is a compare-and-set on the status:
two admins confirming at once approve each renewal once, and never past the quota.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.budget import Budget
from domain.eligibility import DtsenPerson
from domain.lifecycle import LIVE_STATUSES, RENEWAL_STATUS, Status, renewals_that_fit
from domain.pii import BlindIndex
from storage.applications import new_application_code
from storage.budget import read_ledger
from storage.drafts import audit_values
from storage.engine import Database
from storage.models import Application, AuditEvent, DtsenRecord, Notification, utcnow
from storage.updates import claim_update
from storage.waitlist import lock_places

_APPLICATIONS = Application.__table__  # type: ignore[attr-defined]
_AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]
_DTSEN = DtsenRecord.__table__  # type: ignore[attr-defined]
# Values per IN (...) list: well under SQLite's and asyncpg's parameter limits.
CHUNK = 500
IMPORT_ACTION = "import_cohort"
RENEW_ACTION = "renew"
CLAIM_ACTION = "claim_cohort"


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _waiting_clause() -> Any:
    return sa.and_(
        col(Application.status) == RENEWAL_STATUS, col(Application.cohort_year).is_not(None)
    )


@dataclass(frozen=True)
class Stored:
    """What the import's transaction did: rows held back by what the database holds already."""

    inserted: int
    already_registered: frozenset[str]  # nik_hash of a live application this year
    already_imported: frozenset[str]  # nik_hash of this cohort year, imported before
    kpj_taken: frozenset[str]  # nik_hash whose KPJ number another application holds


@dataclass(frozen=True)
class RenewalResult:
    """A bulk renewal: approved now, still waiting (no place), or the count had changed."""

    approved: int
    still_waiting: int
    changed: bool = False  # the number shown to the admin is not the number waiting now


class CohortRepository:
    """Cohort reads and writes; every write is one transaction."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def dtsen_rows(self, indexes: Sequence[BlindIndex]) -> dict[bytes, DtsenPerson]:
        """The DTSEN rows of many NIKs at once, by digest (one query per 500, not per NIK)."""
        found: dict[bytes, DtsenPerson] = {}
        wanted = {index.digest for index in indexes}
        columns = [_DTSEN.c[name] for name in ("nik_hash", *DtsenPerson.__slots__)]
        async with self._db.engine.connect() as connection:
            for chunk in _chunks(sorted({index.key for index in indexes})):
                rows = await connection.execute(
                    select(*columns).where(_DTSEN.c.nik_key.in_(chunk))
                )
                for row in rows:
                    digest = bytes(row[0])
                    if digest in wanted:
                        found[digest] = DtsenPerson(*row[1:])
        return found

    async def store(self, *, rows: Sequence[dict[str, Any]], year: int, reason: str) -> Stored:
        """Insert the assessed rows (complete `application` values) in ONE transaction, leaving
        out NIKs a live application holds, NIKs of this cohort year imported before and KPJ
        numbers another application holds. All or nothing."""
        async with self._db.write() as session, session.begin():
            hashes = [row["nik_hash"] for row in rows]
            live: set[str] = set()
            imported: set[str] = set()
            for chunk in _chunks(hashes):
                result = await session.execute(
                    select(
                        _APPLICATIONS.c.nik_hash,
                        _APPLICATIONS.c.status,
                        _APPLICATIONS.c.cohort_year,
                    ).where(_APPLICATIONS.c.nik_hash.in_(chunk))
                )
                for nik_hash, status, cohort_year in result:
                    if status in LIVE_STATUSES:
                        live.add(nik_hash)
                    elif cohort_year == year and status == Status.INELIGIBLE:
                        imported.add(nik_hash)
            kpjs = [row["kpj_number"] for row in rows if row["kpj_number"]]
            held_kpj: set[str] = set()
            for chunk in _chunks(kpjs):
                result = await session.execute(
                    select(_APPLICATIONS.c.kpj_number).where(_APPLICATIONS.c.kpj_number.in_(chunk))
                )
                held_kpj.update(kpj for (kpj,) in result)
            taken = {row["nik_hash"] for row in rows if row["kpj_number"] in held_kpj}
            keep = [
                row
                for row in rows
                if row["nik_hash"] not in live
                and row["nik_hash"] not in imported
                and row["nik_hash"] not in taken
            ]
            await self._give_codes(session, keep)
            if keep:
                ids = (
                    (
                        await session.execute(
                            insert(_APPLICATIONS).returning(
                                _APPLICATIONS.c.id, sort_by_parameter_order=True
                            ),
                            keep,
                        )
                    )
                    .scalars()
                    .all()
                )
                await session.execute(
                    insert(_AUDIT),
                    [
                        audit_values(
                            action=IMPORT_ACTION,
                            application_id=application_id,
                            to_status=row["status"],
                            reason=reason,
                            at=row["created_at"],
                        )
                        for application_id, row in zip(ids, keep, strict=True)
                    ],
                )
        return Stored(len(keep), frozenset(live), frozenset(imported), frozenset(taken))

    async def _give_codes(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        """An application number each, unique among these and every stored one."""
        if not rows:
            return
        prefix = rows[0]["code"]
        codes: set[str] = set()
        pending = list(range(len(rows)))
        while pending:
            drawn: dict[int, str] = {}
            for position in pending:
                code = new_application_code(prefix)
                while code in codes:
                    code = new_application_code(prefix)
                codes.add(code)
                drawn[position] = code
            stored: set[str] = set()
            for chunk in _chunks(list(drawn.values())):
                result = await session.execute(
                    select(_APPLICATIONS.c.code).where(_APPLICATIONS.c.code.in_(chunk))
                )
                stored.update(code for (code,) in result)
            pending = [position for position, code in drawn.items() if code in stored]
            for position, code in drawn.items():
                rows[position]["code"] = code

    # --- renewal -------------------------------------------------------------------------------

    async def waiting(self) -> int:
        """Cohort members still eligible and waiting for renewal."""
        async with self._db.read() as session:
            query = select(func.count()).select_from(_APPLICATIONS).where(_waiting_clause())
            return int((await session.execute(query)).scalar_one())

    async def not_renewable(self, *, limit: int) -> tuple[int, list[Application]]:
        """Cohort members the import found no longer eligible: how many, and the first ones."""
        where = (
            col(Application.status) == Status.INELIGIBLE,
            col(Application.cohort_year).is_not(None),
        )
        async with self._db.read() as session:
            total = int(
                (
                    await session.execute(
                        select(func.count()).select_from(_APPLICATIONS).where(*where)
                    )
                ).scalar_one()
            )
            query = sa.select(Application).where(*where).order_by(col(Application.id)).limit(limit)
            return total, list((await session.execute(query)).scalars())

    async def renew(
        self, *, actor_id: int, budget: Budget, today: date, expected: int, update_id: int | None
    ) -> RenewalResult:
        """Approve the waiting renewals that fit under the quota, in priority order, each with
        an audit event and (when the member has taken it over) a notification.

        `expected` is the count the admin confirmed: when another admin (or an import) changed
        it meanwhile nothing is approved and the new count comes back to be confirmed.
        """
        async with self._db.write() as session, session.begin():
            await lock_places(session, self._db.dialect)
            if update_id is not None and not await claim_update(
                session, self._db.dialect, update_id
            ):
                return RenewalResult(0, expected)  # the same press delivered again
            waiting_query = (
                select(func.count()).select_from(_APPLICATIONS).where(_waiting_clause())
            )
            waiting = int((await session.execute(waiting_query)).scalar_one())
            if waiting != expected:
                return RenewalResult(0, waiting, changed=True)
            # The same money rule as every approval (domain/budget.py), under the same lock.
            ledger = (await read_ledger(session, self._db.dialect, budget)).ledger
            fits = renewals_that_fit(
                waiting, places_taken=ledger.placed, quota=ledger.quota_now(today)
            )
            if not fits:
                return RenewalResult(0, waiting)
            chosen = (
                sa.select(col(Application.id))
                .where(_waiting_clause())
                .order_by(
                    col(Application.dtsen_desil).asc(),
                    col(Application.submitted_at).asc(),
                    col(Application.id).asc(),
                )
                .limit(fits)
            )
            now = utcnow()
            # Compare-and-set on the status: a renewal decided meanwhile is not approved twice.
            changed = await session.execute(
                update(_APPLICATIONS)
                .where(
                    _APPLICATIONS.c.id.in_(chosen.scalar_subquery()),
                    _APPLICATIONS.c.status == RENEWAL_STATUS,
                )
                .values(
                    status=Status.APPROVED, decided_by=actor_id, decided_at=now, updated_at=now
                )
                .returning(
                    _APPLICATIONS.c.id, _APPLICATIONS.c.chat_id, _APPLICATIONS.c.cohort_year
                )
            )
            approved = changed.all()
            if approved:
                await session.execute(
                    insert(_AUDIT),
                    [
                        audit_values(
                            actor_id=actor_id,
                            action=RENEW_ACTION,
                            application_id=application_id,
                            from_status=RENEWAL_STATUS,
                            to_status=Status.APPROVED,
                            reason=f"renewal of the {cohort_year} cohort",
                            at=now,
                        )
                        for application_id, _chat, cohort_year in approved
                    ],
                )
                notices = [
                    {
                        "application_id": application_id,
                        "chat_id": chat_id,
                        "kind": Status.APPROVED,
                        "created_at": now,
                        "attempts": 0,
                    }
                    for application_id, chat_id, _year in approved
                    if chat_id is not None
                ]
                if notices:
                    await session.execute(insert(Notification), notices)
            return RenewalResult(len(approved), waiting - len(approved))

    # --- a member taking their application over ------------------------------------------------

    async def unclaimed(self, *, nik: BlindIndex) -> Application | None:
        """The live imported application of this NIK that no Telegram account holds yet."""
        async with self._db.read() as session:
            query = sa.select(Application).where(
                col(Application.nik_hash) == nik.hex,
                col(Application.status).in_(LIVE_STATUSES),
                col(Application.cohort_year).is_not(None),
                col(Application.telegram_user_id).is_(None),
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
    ) -> Application | None:
        """Give the imported application to this account, deleting the draft it typed the
        identity in (its consent carries over); None when someone else took it first."""
        try:
            return await self._take_over(application_id, draft_id, user_id, chat_id, update_id)
        except _Taken:
            return None

    async def _take_over(
        self, application_id: int, draft_id: int, user_id: int, chat_id: int, update_id: int | None
    ) -> Application | None:
        async with self._db.write() as session, session.begin():
            if update_id is not None and not await claim_update(
                session, self._db.dialect, update_id
            ):
                return None
            draft = await session.get(Application, draft_id)
            if draft is None or draft.status != Status.DRAFT or draft.telegram_user_id != user_id:
                return None
            consent = (draft.consent_version, draft.consent_at)
            # The draft goes first: the account may hold one open application at a time.
            await session.execute(sa.delete(_APPLICATIONS).where(_APPLICATIONS.c.id == draft_id))
            now = utcnow()
            changed = await session.execute(
                update(_APPLICATIONS)
                .where(
                    _APPLICATIONS.c.id == application_id,
                    _APPLICATIONS.c.telegram_user_id.is_(None),
                    _APPLICATIONS.c.status.in_([str(status) for status in LIVE_STATUSES]),
                )
                .values(
                    telegram_user_id=user_id,
                    chat_id=chat_id,
                    consent_version=consent[0],
                    consent_at=consent[1],
                    updated_at=now,
                    last_update_id=update_id,
                )
            )
            if not changed.rowcount:  # type: ignore[attr-defined]
                raise _Taken
            application = await session.get(Application, application_id)
            assert application is not None
            session.add(
                AuditEvent(
                    actor_id=user_id,
                    action=CLAIM_ACTION,
                    application_id=application_id,
                    from_status=application.status,
                    to_status=application.status,
                    reason=f"cohort {application.cohort_year} member opened the bot",
                )
            )
            await session.flush()
            await session.refresh(application)
            return application


class _Taken(Exception):
    """Another account took the application over first (the transaction is rolled back)."""
