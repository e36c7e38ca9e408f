"""The DTSEN re-check after an import, as one transaction: read the applications concerned and
their rows in the new table, apply what a judge (the use case) decides, queue the messages."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Update, bindparam, insert, update
from sqlalchemy import select as core_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from domain.eligibility import DtsenPerson
from domain.lifecycle import OPEN_STATUSES, Status
from domain.pii import BlindIndex
from domain.roles import Role
from storage.drafts import audit_values
from storage.engine import Database
from storage.models import Application, AuditEvent, DtsenRecord, Notification, Staff, utcnow

_DTSEN = DtsenRecord.__table__  # type: ignore[attr-defined]
_APPLICATIONS = Application.__table__  # type: ignore[attr-defined]
_AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]
_NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
# DTSEN rows fetched per query (by nik_key); well below SQLite's 32.766 bound parameters.
CHUNK = 500


@dataclass(frozen=True)
class Change:
    """What the re-check does to one application: `outcome` is what the summary counts it as,
    `values` the columns to set (none: nothing is written), `notify` a notification kind for
    the worker, `audit` the reason recorded in the audit trail."""

    outcome: str
    values: Mapping[str, Any] = field(default_factory=dict)
    notify: str | None = None
    audit: str | None = None


Judge = Callable[[Application, DtsenPerson | None], Change]


def _person(row: Any) -> DtsenPerson:
    return DtsenPerson(
        nama=row.nama,
        tanggal_lahir=row.tanggal_lahir,
        jenis_kelamin=row.jenis_kelamin,
        kode_wilayah=row.kode_wilayah,
        desil=row.desil,
        desil_provinsi=row.desil_provinsi,
        desil_kabupaten_kota=row.desil_kabupaten_kota,
        kode_kabupaten_kota_ktp=row.kode_kabupaten_kota_ktp,
        status_bekerja=row.status_bekerja,
        status_dalam_pekerjaan=row.status_dalam_pekerjaan,
        lapangan_usaha=row.lapangan_usaha,
    )


async def _records(
    session: AsyncSession, indexes: Iterable[BlindIndex]
) -> dict[bytes, DtsenPerson]:
    """The DTSEN rows of these NIKs, by HMAC digest (fetched by key, matched on the digest)."""
    wanted = {index.digest: index.key for index in indexes}
    keys = sorted(set(wanted.values()))
    found: dict[bytes, DtsenPerson] = {}
    for start in range(0, len(keys), CHUNK):
        query = core_select(_DTSEN).where(_DTSEN.c.nik_key.in_(keys[start : start + CHUNK]))
        for row in (await session.execute(query)).all():
            digest = bytes(row.nik_hash)
            if digest in wanted:
                found[digest] = _person(row)
    return found


async def _open_accounts(session: AsyncSession) -> set[int]:
    """Accounts with a draft or a live application: they have moved on from a refusal."""
    query = select(col(Application.telegram_user_id)).where(
        col(Application.status).in_([str(status) for status in OPEN_STATUSES]),
        col(Application.telegram_user_id).is_not(None),
    )
    return {user for user in (await session.execute(query)).scalars() if user is not None}


def _one_refusal_per_account(
    applications: list[Application], open_accounts: set[int]
) -> list[Application]:
    """Applications in review, and of the refused ones only each account's newest, and none of
    an account that has an open application (an offer to carry on could not re-open it)."""
    newest: dict[int, Application] = {}
    kept = []
    for application in applications:
        account = application.telegram_user_id
        if application.status != Status.INELIGIBLE:
            kept.append(application)
        elif account is not None and account not in open_accounts:
            # (A refusal nobody holds on Telegram, e.g. an imported one, has nobody to offer to.)
            known = newest.get(account)
            if known is None or (known.id or 0) < (application.id or 0):
                newest[account] = application
    return kept + sorted(newest.values(), key=lambda application: application.id or 0)


class RecheckRepository:
    """Runs a re-check of applications against the DTSEN table in service."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def recheck(
        self,
        *,
        statuses: Sequence[str],
        judge: Judge,
        admin_ids: Iterable[int],
        summary_kind: str,
    ) -> Counter[str]:
        """Judge every application in `statuses` that still has its NIK, write the changes,
        queue the workers' messages and one summary per admin chat, all in one transaction;
        returns the count per outcome.

        The applications read are locked until the end (SQLite holds the write lock from the
        start, PostgreSQL locks the rows: a staff decision on one of them waits the few seconds
        this takes), so every change is written as judged, in a few executemany statements.
        """
        counts: Counter[str] = Counter()
        async with self._db.write() as session, session.begin():
            query = (
                select(Application)
                .where(
                    col(Application.status).in_([str(status) for status in statuses]),
                    col(Application.nik_hash).is_not(None),
                )
                .with_for_update()
            )
            applications = _one_refusal_per_account(
                list((await session.execute(query)).scalars()), await _open_accounts(session)
            )
            indexes = {app.id: BlindIndex.from_hex(app.nik_hash or "") for app in applications}
            records = await _records(session, indexes.values())
            # Plain rows from here on: the session tracks nothing while the writes run.
            session.expunge_all()
            connection = await session.connection()
            now = utcnow()
            audits: list[dict[str, Any]] = []
            messages: list[dict[str, Any]] = []
            writes: defaultdict[frozenset[str], list[dict[str, Any]]] = defaultdict(list)
            for application in applications:
                change = judge(application, records.get(indexes[application.id].digest))
                counts[change.outcome] += 1
                if change.values:
                    values = {**change.values, "recheck_at": now, "updated_at": now}
                    writes[frozenset(values)].append({**values, "_id": application.id})
                if change.audit is not None:
                    audits.append(
                        audit_values(
                            action="dtsen_recheck",
                            application_id=application.id,
                            from_status=application.status,
                            to_status=application.status,
                            reason=change.audit,
                        )
                    )
                if change.notify is not None and application.chat_id is not None:
                    messages.append(
                        _notification(application.id, application.chat_id, change.notify)
                    )
            staff_admins = await session.execute(
                select(col(Staff.telegram_user_id)).where(col(Staff.role) == Role.ADMIN)
            )
            text = summary_payload(counts)
            for chat_id in sorted({*admin_ids, *staff_admins.scalars()}):
                messages.append(_notification(None, chat_id, summary_kind, text))
            # One statement per set of changed columns (a statement per application costs ~2 ms
            # each on SQLite: 2.000 flags took 5 s).
            for keys, rows in writes.items():
                await connection.execute(_update_statement(keys), rows)
            if audits:
                await connection.execute(insert(_AUDIT), audits)
            if messages:
                await connection.execute(insert(_NOTIFICATIONS), messages)
        return counts


def _notification(
    application_id: int | None, chat_id: int, kind: str, payload: str | None = None
) -> dict[str, Any]:
    return {
        "application_id": application_id,
        "chat_id": chat_id,
        "kind": kind,
        "created_at": utcnow(),
        "sent_at": None,
        "attempts": 0,
        "last_error": None,
        "payload": payload,
    }


def _update_statement(keys: frozenset[str]) -> Update:
    values: dict[str, Any] = {key: bindparam(key) for key in sorted(keys)}
    return update(_APPLICATIONS).where(_APPLICATIONS.c.id == bindparam("_id")).values(values)


def summary_payload(counts: Counter[str]) -> str:
    """The figures of a re-check as the admins' notification carries them."""
    return json.dumps(dict(counts), separators=(",", ":"), sort_keys=True)
