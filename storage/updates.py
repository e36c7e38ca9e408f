"""The log of handled update ids, which makes a redelivered update harmless.

Update ids are compared for equality only, never by order: Telegram restarts the sequence at a
random (often much lower) id after a week without updates. An id is unique within Telegram's
redelivery window (it keeps undelivered updates for 24 hours), so the log keeps ids a little
longer than that and housekeeping deletes the rest.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import Insert, bindparam, exists
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col, select

from storage.engine import Database
from storage.models import ProcessedUpdate, utcnow

# How long a handled update id is remembered: Telegram redelivers for up to 24 hours.
REDELIVERY_WINDOW = timedelta(hours=48)

_WAS_PROCESSED = select(exists().where(col(ProcessedUpdate.update_id) == bindparam("update_id")))


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


async def record_update(database: Database, update_id: int) -> None:
    """Record an update id as a statement of its own, after the write it caused committed."""
    await database.execute_alone(
        _claim_statement(database.dialect), {"update_id": update_id, "processed_at": utcnow()}
    )


class UpdateLog:
    """Answers whether an update id was already handled (written by each write transaction)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def recent(self, *, since: datetime, limit: int) -> list[int]:
        """Ids handled since `since`, newest first, at most `limit` of them."""
        query = (
            select(col(ProcessedUpdate.update_id))
            .where(col(ProcessedUpdate.processed_at) >= since)
            .order_by(col(ProcessedUpdate.processed_at).desc())
            .limit(limit)
        )
        async with self._db.read() as session:
            return [int(update_id) for update_id in (await session.execute(query)).scalars()]

    async def was_processed(self, *, update_id: int) -> bool:
        """Whether this update id has been handled before (within the redelivery window)."""
        async with self._db.read() as session:
            result = await session.execute(_WAS_PROCESSED, {"update_id": update_id})
            return bool(result.scalar_one())
