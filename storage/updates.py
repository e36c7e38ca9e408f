"""The log of handled update ids, which makes a redelivered update harmless."""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from storage.engine import Database
from storage.models import ProcessedUpdate, utcnow


async def claim_update(session: AsyncSession, dialect: str, update_id: int) -> bool:
    """Record an update id in the caller's transaction; False when it was handled before."""
    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        dialect_insert(ProcessedUpdate)
        .values(update_id=update_id, processed_at=utcnow())
        .on_conflict_do_nothing(index_elements=["update_id"])
    )
    result = await session.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]


class UpdateLog:
    """Answers whether an update id was already handled (written by each write transaction)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def newest(self) -> int:
        """The highest update id handled so far, 0 for none."""
        async with self._db.read() as session:
            query = select(func.max(col(ProcessedUpdate.update_id)))
            return int((await session.execute(query)).scalar_one() or 0)

    async def was_processed(self, *, update_id: int) -> bool:
        """Whether this update id has been handled before."""
        async with self._db.read() as session:
            return await session.get(ProcessedUpdate, update_id) is not None
