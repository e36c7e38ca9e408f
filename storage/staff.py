"""Staff managed by admins in the bot, beside ADMIN_IDS and REVIEWER_IDS from settings."""

from __future__ import annotations

from sqlmodel import col, select

from storage.engine import Database
from storage.models import AuditEvent, Staff


class StaffRepository:
    """Reads and changes the staff table; every change is audited."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def get(self, *, user_id: int) -> Staff | None:
        """The staff row of a Telegram user id, if any."""
        async with self._db.read() as session:
            return await session.get(Staff, user_id)

    async def all(self) -> list[Staff]:
        """Every staff row, by id."""
        async with self._db.read() as session:
            query = select(Staff).order_by(col(Staff.telegram_user_id))
            return list((await session.execute(query)).scalars())

    async def put(
        self, *, user_id: int, role: str, kecamatan_scope: str | None, actor_id: int
    ) -> None:
        """Add a staff member or change their role."""
        async with self._db.write() as session, session.begin():
            row = await session.get(Staff, user_id)
            if row is None:
                session.add(
                    Staff(
                        telegram_user_id=user_id,
                        role=role,
                        kecamatan_scope=kecamatan_scope,
                        added_by=actor_id,
                    )
                )
            else:
                row.role = role
                row.kecamatan_scope = kecamatan_scope
            session.add(
                AuditEvent(actor_id=actor_id, action="staff_add", reason=f"{user_id}:{role}")
            )

    async def remove(self, *, user_id: int, actor_id: int) -> bool:
        """Remove a staff member; False when there was none."""
        async with self._db.write() as session, session.begin():
            row = await session.get(Staff, user_id)
            if row is None:
                return False
            await session.delete(row)
            session.add(AuditEvent(actor_id=actor_id, action="staff_remove", reason=str(user_id)))
            return True
