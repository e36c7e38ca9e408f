"""Deregistrations: what is kept of an erased worker who held a place, until BPJS is told."""

from __future__ import annotations

from sqlalchemy import delete, func
from sqlmodel import col, select

from domain.lifecycle import Status
from storage.engine import Database
from storage.models import AuditEvent, Deregistration
from storage.updates import claim_update


class DeregistrationRepository:
    """Open deregistrations for staff, and an admin marking one done (which deletes it)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def open_cases(self) -> list[Deregistration]:
        """Every deregistration not yet marked done, oldest erasure first."""
        async with self._db.read() as session:
            query = select(Deregistration).order_by(
                col(Deregistration.erased_at), col(Deregistration.id)
            )
            return list((await session.execute(query)).scalars())

    async def record_nik_views(
        self, *, actor_id: int, cases: list[Deregistration], via: str, update_id: int
    ) -> None:
        """Audit a staff member shown these cases' NIKs unmasked (one row per case, naming
        the erased application), once per update: the update is claimed in the same
        transaction, so a redelivery after a crash never writes the views twice."""
        async with self._db.write() as session, session.begin():
            if not cases or not await claim_update(session, self._db.dialect, update_id):
                return
            session.add_all(
                AuditEvent(
                    actor_id=actor_id,
                    action="nik_view",
                    application_id=case.application_id,
                    reason=f"via {via}"[:500],
                )
                for case in cases
            )

    async def complete(self, *, code: str, actor_id: int) -> bool:
        """Mark one done: its kept data is deleted and the audit says who and when (without
        the data). False when no open deregistration has this number."""
        async with self._db.write() as session, session.begin():
            query = select(Deregistration).where(
                func.upper(col(Deregistration.code)) == code.upper()
            )
            found = (await session.execute(query)).scalars().all()
            if not found:
                return False
            for case in found:
                session.add(
                    AuditEvent(
                        actor_id=actor_id,
                        action="deregistered",
                        application_id=case.application_id,
                        from_status=Status.WITHDRAWN,
                    )
                )
            ids = [case.id for case in found]
            await session.execute(delete(Deregistration).where(col(Deregistration.id).in_(ids)))
            return True
