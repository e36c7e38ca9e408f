"""Staff managed by admins in the bot, beside ADMIN_IDS and REVIEWER_IDS from settings."""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from domain.roles import Role
from storage.engine import Database
from storage.models import AuditEvent, Staff, StaffPendingInput

# How long the bot waits for a staff member's typed reason, and then for its confirmation.
PENDING_INPUT_TTL = timedelta(minutes=10)
AWAIT_REASON = "reason"
AWAIT_CONFIRM = "confirm"
# A reviewer's note for a fix request: "f:" and the field (awaiting holds 16 characters).
AWAIT_NOTE_PREFIX = "f:"


class StaffRepository:
    """Reads and changes the staff table; every change is audited."""

    def __init__(self, database: Database, *, shared: bool = True) -> None:
        self._db = database
        # Who may have a pending input, when this process is the only writer of them (polling:
        # one consumer per token): a superset of the table's users, loaded once and grown by
        # every wait this process starts, so the pending-input check on every worker's text,
        # command and button costs no database read. `shared` processes (webhooks, several
        # processes) read the table every time.
        self._shared = shared
        self._waiting: set[int] | None = None
        self._loading = asyncio.Lock()
        # Operators, likewise known to a polling process without a read per worker's message.
        self._operators: set[int] | None = None

    async def _may_wait(self, user_id: int) -> bool:
        """False only when this member surely has no pending input."""
        if self._shared:
            return True
        return user_id in await self._waiting_users()

    async def _waiting_users(self) -> set[int]:
        async with self._loading:
            if self._waiting is None:
                async with self._db.read() as session:
                    users = await session.execute(
                        sa.select(col(StaffPendingInput.telegram_user_id))
                    )
                    self._waiting = {int(user_id) for user_id in users.scalars()}
            return self._waiting

    async def is_operator(self, *, user_id: int) -> bool:
        """Whether this Telegram id is an operator (asked on every registration message, so a
        polling process answers from memory; `shared` processes read the table)."""
        if self._shared:
            row = await self.get(user_id=user_id)
            return row is not None and row.role == Role.OPERATOR
        async with self._loading:
            if self._operators is None:
                async with self._db.read() as session:
                    users = await session.execute(
                        sa.select(col(Staff.telegram_user_id)).where(
                            col(Staff.role) == Role.OPERATOR
                        )
                    )
                    self._operators = {int(user) for user in users.scalars()}
            return user_id in self._operators

    def _note_role(self, user_id: int, role: str | None) -> None:
        if self._operators is None:
            return
        if role == Role.OPERATOR:
            self._operators.add(user_id)
        else:
            self._operators.discard(user_id)

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
        self._note_role(user_id, role)

    async def remove(self, *, user_id: int, actor_id: int) -> bool:
        """Remove a staff member; False when there was none."""
        async with self._db.write() as session, session.begin():
            row = await session.get(Staff, user_id)
            if row is None:
                return False
            await session.delete(row)
            session.add(AuditEvent(actor_id=actor_id, action="staff_remove", reason=str(user_id)))
        self._note_role(user_id, None)
        return True

    # --- what the bot waits for from a staff member (one entry per member) ---------------------

    async def await_reason(
        self, *, user_id: int, application_id: int, status_read: str, now: datetime
    ) -> None:
        """Wait for this member's typed rejection reason (replacing anything awaited before)."""
        waiting = None if self._shared else await self._waiting_users()
        async with self._db.write() as session, session.begin():
            row = await session.get(StaffPendingInput, user_id)
            if row is not None:
                await session.delete(row)
                await session.flush()
            session.add(
                StaffPendingInput(
                    telegram_user_id=user_id,
                    awaiting=AWAIT_REASON,
                    application_id=application_id,
                    status_read=status_read,
                    token=secrets.token_hex(4),
                    created_at=now,
                )
            )
        if waiting is not None:
            waiting.add(user_id)

    async def await_note(
        self, *, user_id: int, application_id: int, status_read: str, field: str, now: datetime
    ) -> str:
        """Wait for this member's typed note to the worker with a fix of `field` (replacing
        anything awaited before); returns the token for the "send without a note" button."""
        waiting = None if self._shared else await self._waiting_users()
        token = secrets.token_hex(4)
        async with self._db.write() as session, session.begin():
            row = await session.get(StaffPendingInput, user_id)
            if row is not None:
                await session.delete(row)
                await session.flush()
            session.add(
                StaffPendingInput(
                    telegram_user_id=user_id,
                    awaiting=AWAIT_NOTE_PREFIX + field,
                    application_id=application_id,
                    status_read=status_read,
                    token=token,
                    created_at=now,
                )
            )
        if waiting is not None:
            waiting.add(user_id)
        return token

    async def take_note(
        self, *, user_id: int, token: str, now: datetime
    ) -> StaffPendingInput | None:
        """The typed note arrived: end the wait and return it, if it is this live entry."""
        async with self._db.write() as session, session.begin():
            row = await session.get(StaffPendingInput, user_id)
            if row is None:
                return None
            taken = await session.execute(
                sa.delete(StaffPendingInput).where(
                    col(StaffPendingInput.telegram_user_id) == user_id,
                    col(StaffPendingInput.token) == token,
                    col(StaffPendingInput.awaiting).startswith(AWAIT_NOTE_PREFIX),
                    col(StaffPendingInput.created_at) >= now - PENDING_INPUT_TTL,
                )
            )
            return row if getattr(taken, "rowcount", 0) == 1 else None

    async def drop_expired_inputs(self, *, now: datetime) -> int:
        """Delete waits that expired (a typed reason may hold personal data); returns how many."""
        async with self._db.write() as session, session.begin():
            dropped = await session.execute(
                sa.delete(StaffPendingInput).where(
                    col(StaffPendingInput.created_at) < now - PENDING_INPUT_TTL
                )
            )
            return int(getattr(dropped, "rowcount", 0) or 0)

    async def pending_input(self, *, user_id: int, now: datetime) -> StaffPendingInput | None:
        """What the bot waits for from this member, unless it expired (then nothing)."""
        if not await self._may_wait(user_id):
            return None
        async with self._db.read() as session:
            row = await session.get(StaffPendingInput, user_id)
        if row is None or row.created_at < now - PENDING_INPUT_TTL:
            return None
        return row

    async def hold_reason(
        self, *, user_id: int, token: str, reason: str, now: datetime
    ) -> StaffPendingInput | None:
        """The typed reason arrived: keep it until Kirim (with a new token and a new clock)."""
        new_token = secrets.token_hex(4)
        async with self._db.write() as session, session.begin():
            changed = await session.execute(
                sa.update(StaffPendingInput)
                .where(
                    col(StaffPendingInput.telegram_user_id) == user_id,
                    col(StaffPendingInput.token) == token,
                    col(StaffPendingInput.awaiting) == AWAIT_REASON,
                    col(StaffPendingInput.created_at) >= now - PENDING_INPUT_TTL,
                )
                .values(awaiting=AWAIT_CONFIRM, reason=reason, token=new_token, created_at=now)
            )
            if getattr(changed, "rowcount", 0) != 1:
                return None
            return await session.get(StaffPendingInput, user_id, populate_existing=True)

    async def take_confirmed(
        self, *, user_id: int, token: str, now: datetime
    ) -> StaffPendingInput | None:
        """Kirim: end the entry and return it, if it is this member's, confirmable and live."""
        async with self._db.write() as session, session.begin():
            row = await session.get(StaffPendingInput, user_id)
            if row is None:
                return None
            # Deleted only if still the same live entry: of two presses (or two processes)
            # exactly one gets it.
            taken = await session.execute(
                sa.delete(StaffPendingInput).where(
                    col(StaffPendingInput.telegram_user_id) == user_id,
                    col(StaffPendingInput.token) == token,
                    col(StaffPendingInput.awaiting) == AWAIT_CONFIRM,
                    col(StaffPendingInput.created_at) >= now - PENDING_INPUT_TTL,
                )
            )
            return row if getattr(taken, "rowcount", 0) == 1 else None

    async def end_input(self, *, user_id: int, token: str | None = None) -> bool:
        """Stop waiting for this member (only the entry with `token`, when given)."""
        if not await self._may_wait(user_id):
            return False
        async with self._db.read() as session:
            # Called on every command and button press: most users have nothing to end, and a
            # read costs SQLite no write lock.
            row = await session.get(StaffPendingInput, user_id)
        if row is None or (token is not None and row.token != token):
            return False
        async with self._db.write() as session, session.begin():
            query = sa.delete(StaffPendingInput).where(
                col(StaffPendingInput.telegram_user_id) == user_id
            )
            if token is not None:
                query = query.where(col(StaffPendingInput.token) == token)
            changed = await session.execute(query)
            return bool(getattr(changed, "rowcount", 0))
