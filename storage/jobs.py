"""Claims of scheduled jobs, so each run is done by one of several processes on one database.

Every process schedules the same jobs; at each tick the first to claim a job runs it and the
others skip that tick. A claim holds for `ttl` (the job's interval), so a claim of a process
that died runs out and the next tick elsewhere runs the job. Rows the jobs send are claimed
one by one as well (notifications, reminders): the job claim saves work, the row claims keep
a message from going out twice.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import Insert, bindparam, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col

from storage.engine import Database
from storage.models import JobClaim


def process_name() -> str:
    """A name for this process in claims: host, pid and a random tag (two bots in one test
    process, or a pid reused after a restart, are told apart)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


@lru_cache(maxsize=4)
def _claim_statement(dialect: str) -> Insert:
    """Take a job's row when it is free, expired or already ours: one atomic statement."""
    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = dialect_insert(JobClaim).values(
        name=bindparam("name"),
        claimed_by=bindparam("owner"),
        claimed_until=bindparam("until"),
    )
    return statement.on_conflict_do_update(
        index_elements=["name"],
        set_={
            "claimed_by": statement.excluded.claimed_by,
            "claimed_until": statement.excluded.claimed_until,
        },
        where=or_(
            col(JobClaim.claimed_until) <= bindparam("now"),
            col(JobClaim.claimed_by) == bindparam("owner"),
        ),
    )


class JobClaims:
    """Claims jobs by name for one process (`owner`)."""

    def __init__(self, database: Database, *, owner: str | None = None) -> None:
        self._db = database
        self.owner = owner or process_name()

    async def claim(self, *, name: str, now: datetime, ttl: timedelta) -> bool:
        """Take the job `name` until `now + ttl`; False while another process holds it."""
        params = {"name": name, "owner": self.owner, "until": now + ttl, "now": now}
        return await self._db.execute_alone(_claim_statement(self._db.dialect), params) > 0
