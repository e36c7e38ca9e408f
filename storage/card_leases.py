"""Which reviewer has which application card open, so two reviewers are not shown the same one.

A hint, not a lock: the decision itself is guarded in the database (a second decision on the
same application is refused and says who decided). Without it, every reviewer asking for the
next card gets the head of the queue and most of their decisions collide. Kept in the
database, so reviewers served by different processes are told apart too.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select

from storage.engine import Database
from storage.models import CardLease

# How long a card shown to a reviewer stays theirs without a newer one.
LEASE = timedelta(minutes=2)


class CardLeaseRepository:
    """Cards open per reviewer, each until `lease_until` or until the reviewer takes another."""

    def __init__(self, database: Database, *, lease: timedelta = LEASE) -> None:
        self._db = database
        self._lease = lease

    async def held_by_others(self, *, reviewer_id: int, now: datetime) -> list[int]:
        """Applications another reviewer has open right now."""
        query = select(col(CardLease.application_id)).where(
            col(CardLease.lease_until) > now, col(CardLease.reviewer_id) != reviewer_id
        )
        async with self._db.read() as session:
            return [int(a) for a in (await session.execute(query)).scalars()]

    async def take(self, *, application_id: int, reviewer_id: int, now: datetime) -> bool:
        """Mark a card as open by this reviewer (their previous card is released); False when
        another reviewer took it first and still holds it."""
        dialect_insert = pg_insert if self._db.dialect == "postgresql" else sqlite_insert
        statement = dialect_insert(CardLease).values(
            application_id=application_id, reviewer_id=reviewer_id, lease_until=now + self._lease
        )
        statement = statement.on_conflict_do_update(
            index_elements=["application_id"],
            set_={
                "reviewer_id": statement.excluded.reviewer_id,
                "lease_until": statement.excluded.lease_until,
            },
            where=or_(
                col(CardLease.lease_until) <= now, col(CardLease.reviewer_id) == reviewer_id
            ),
        )
        async with self._db.write() as session, session.begin():
            # Their previous card, and leases long run out, go (the table stays small).
            await session.execute(
                delete(CardLease).where(
                    or_(
                        col(CardLease.reviewer_id) == reviewer_id,
                        col(CardLease.lease_until) <= now,
                    ),
                    col(CardLease.application_id) != application_id,
                )
            )
            result = await session.execute(statement)
            return bool(result.rowcount)  # type: ignore[attr-defined]
