"""The bot's send budget: when the next message into any chat, and into one chat, may go, and
until when a 429 paused the whole bot. `MemoryBudget` serves one process without a database
round trip; `PostgresBudget` is the same budget shared by every process on one PostgreSQL.

Times are epoch seconds (`time.time()`): processes sharing a budget must share a clock (one
host, or hosts kept in step by NTP, whose error adds to the margins the limiter keeps).
A reservation is a slot: the budget's next free moment moves on by one interval per message,
so messages go evenly spaced and no window ever holds more than the rate allows."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final, Protocol

import sqlalchemy as sa

from storage.engine import Database

# A horizon this large admits every request, however long the queue ahead.
NO_LIMIT: Final = 1e9
# A chat held until no later than its released slot's hold (+ this rounding) was held by that
# slot alone: any later reservation holds it a whole chat interval longer.
_SAME: Final = 0.001


@dataclass(frozen=True)
class SlotAnswer:
    """A reservation's outcome: `at` is the moment granted (None: refused); `busy_until` is when
    the queue ahead ends; `chat_ready`, on a refusal for the chat's sake, is when the chat's
    previous message is a chat interval behind (ask again then)."""

    at: float | None
    busy_until: float
    chat_ready: float | None = None


class SendBudget(Protocol):
    """What the rate limiter asks of a budget, in memory or shared."""

    async def take_slot(self, *, chat_id: int, now: float, horizon: float) -> SlotAnswer:
        """A moment for one message into `chat_id`, granted only when the queue ahead ends
        within `horizon` seconds from now AND the moment is a chat interval after the chat's
        previous one; a granted slot holds the chat until one chat interval after it. The two
        are decided together, so two messages into one chat (from two processes) can never be
        granted moments closer than a chat interval."""

    async def pause(self, *, until: float) -> None:
        """Telegram answered 429: nothing goes before `until`."""

    async def release_chat(self, *, chat_id: int, slot: float, now: float) -> None:
        """A message gives up `slot` (it woke too late to use it): the chat, held after that
        slot, is free from `now` again, unless a later message took its turn meanwhile."""


class MemoryBudget:
    """One process's budget, held in memory."""

    def __init__(self, *, interval: float, chat_interval: float) -> None:
        self.interval = interval
        self.chat_interval = chat_interval
        self.next_free_at = 0.0
        self.paused_until = 0.0
        self._chats: dict[int, float] = {}

    async def take_slot(self, *, chat_id: int, now: float, horizon: float) -> SlotAnswer:
        busy_until = max(self.next_free_at, self.paused_until)
        if busy_until > now + horizon:
            return SlotAnswer(None, busy_until)
        at = max(busy_until, now)
        ready = self._chats.get(chat_id, 0.0)
        if ready > at:
            return SlotAnswer(None, busy_until, ready)
        self.next_free_at = at + self.interval
        self._chats[chat_id] = at + self.chat_interval
        if len(self._chats) > 50_000:
            self._forget_quiet_chats(now)
        return SlotAnswer(at, busy_until)

    async def pause(self, *, until: float) -> None:
        self.paused_until = max(self.paused_until, until)

    async def release_chat(self, *, chat_id: int, slot: float, now: float) -> None:
        if self._chats.get(chat_id, 0.0) <= slot + self.chat_interval + _SAME:
            self._chats[chat_id] = now

    def _forget_quiet_chats(self, now: float) -> None:
        """Chats whose next moment has passed need no entry: it would never hold them back."""
        self._chats = {chat: at for chat, at in self._chats.items() if at > now}


# One transaction a slot, the budget's row locked first: every grant is decided on the newest
# budget AND the newest chat row (read by a statement of its own after the lock, since a
# statement's snapshot is taken before it waits for a lock), so two processes cannot both see a
# chat free.
_LOCK_BUDGET = sa.text(
    "SELECT GREATEST(next_free_at, paused_until) FROM send_budget WHERE id = 1 FOR UPDATE"
)
_CHAT_READY = sa.text("SELECT next_allowed_at FROM chat_send WHERE chat_id = :chat_id")
_GRANT = sa.text(
    "WITH budget AS ("
    " UPDATE send_budget SET next_free_at = CAST(:at AS double precision) + :interval"
    " WHERE id = 1"
    ") INSERT INTO chat_send (chat_id, next_allowed_at)"
    " VALUES (:chat_id, CAST(:at AS double precision) + :chat_interval)"
    " ON CONFLICT (chat_id) DO UPDATE SET next_allowed_at ="
    " GREATEST(chat_send.next_allowed_at, EXCLUDED.next_allowed_at)"
)
_RELEASE_CHAT = sa.text(
    "UPDATE chat_send SET next_allowed_at = CAST(:now AS double precision) "
    "WHERE chat_id = :chat_id AND next_allowed_at <= CAST(:held AS double precision)"
)
_PAUSE = sa.text(
    "UPDATE send_budget SET paused_until = "
    "GREATEST(paused_until, CAST(:until AS double precision)) WHERE id = 1"
)


class PostgresBudget:
    """The budget shared by every process on one PostgreSQL (rows send_budget and chat_send): a
    slot is one short transaction (the budget's row locked, the chat read, both moved on); a
    pause or a chat given back is one statement in autocommit."""

    def __init__(self, database: Database, *, interval: float, chat_interval: float) -> None:
        if database.dialect != "postgresql":
            raise ValueError("a shared send budget needs PostgreSQL")
        self.interval = interval
        self.chat_interval = chat_interval
        self._engine = database.engine.execution_options(isolation_level="AUTOCOMMIT")
        # A slot is one short READ COMMITTED transaction (see _LOCK_BUDGET).
        self._granting = database.engine.execution_options(isolation_level="READ COMMITTED")

    async def take_slot(self, *, chat_id: int, now: float, horizon: float) -> SlotAnswer:
        async with self._granting.connect() as connection, connection.begin():
            busy_until = float((await connection.execute(_LOCK_BUDGET)).scalar_one())
            # Taken again once the connection and the lock are ours: a moment granted while
            # waiting for them would already be past, and the messages after it would bunch.
            now = max(now, time.time())
            if busy_until > now + min(horizon, NO_LIMIT):
                return SlotAnswer(None, busy_until)
            at = max(busy_until, now)
            ready = (await connection.execute(_CHAT_READY, {"chat_id": chat_id})).scalar()
            if ready is not None and float(ready) > at:
                return SlotAnswer(None, busy_until, float(ready))
            await connection.execute(
                _GRANT,
                {
                    "chat_id": chat_id,
                    "at": at,
                    "interval": self.interval,
                    "chat_interval": self.chat_interval,
                },
            )
        return SlotAnswer(at, busy_until)

    async def pause(self, *, until: float) -> None:
        async with self._engine.connect() as connection:
            await connection.execute(_PAUSE, {"until": until})

    async def release_chat(self, *, chat_id: int, slot: float, now: float) -> None:
        held = slot + self.chat_interval + _SAME
        async with self._engine.connect() as connection:
            await connection.execute(_RELEASE_CHAT, {"chat_id": chat_id, "held": held, "now": now})
