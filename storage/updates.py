"""The log of handled update ids, which makes a redelivered update harmless."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import col, select

from storage.engine import Database
from storage.models import ProcessedUpdate


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
