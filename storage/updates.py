"""The log of handled update ids, which makes a redelivered update harmless."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Insert, bindparam, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col, select

from storage.engine import Database
from storage.models import ProcessedUpdate, utcnow


@lru_cache(maxsize=4)
def _claim_statement(dialect: str) -> Insert:
    """INSERT of a handled update id that does nothing when it is already there (built once)."""
    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return (
        dialect_insert(ProcessedUpdate)
        .values(update_id=bindparam("update_id"), processed_at=bindparam("processed_at"))
        .on_conflict_do_nothing(index_elements=["update_id"])
    )


async def claim_update(
    transaction: AsyncSession | AsyncConnection, dialect: str, update_id: int
) -> bool:
    """Record an update id in the caller's transaction; False when it was handled before."""
    connection = (
        await transaction.connection() if isinstance(transaction, AsyncSession) else transaction
    )
    result = await connection.execute(
        _claim_statement(dialect), {"update_id": update_id, "processed_at": utcnow()}
    )
    return bool(result.rowcount)


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
