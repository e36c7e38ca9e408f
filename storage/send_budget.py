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
    """A reservation's outcome: `at` is the moment granted (None: refused, the queue ahead is
    longer than the caller's horizon); `busy_until` is when the queue ahead ends."""

    at: float | None
    busy_until: float


class SendBudget(Protocol):
    """What the rate limiter asks of a budget, in memory or shared."""

    async def reserve_chat(self, *, chat_id: int, now: float) -> float:
        """The moment this chat's next message may go; the chat's next one comes after it."""

    async def take_slot(self, *, chat_id: int, now: float, horizon: float) -> SlotAnswer:
        """A moment for one message into any chat, granted only when the queue ahead ends
        within `horizon` seconds from now; a granted slot also holds the chat back until one
        chat interval after it."""

    async def pause(self, *, until: float) -> None:
        """Telegram answered 429: nothing goes before `until`."""

    async def release_chat(self, *, chat_id: int, slot: float, now: float) -> None:
        """A message gives up `slot` (it woke too late to use it): the chat, held after that
        slot, is free from `now` again, unless a later message took its turn meanwhile (that
        one keeps its place, and the next reservation comes after it)."""


class MemoryBudget:
    """One process's budget, held in memory."""

    def __init__(self, *, interval: float, chat_interval: float) -> None:
        self.interval = interval
        self.chat_interval = chat_interval
        self.next_free_at = 0.0
        self.paused_until = 0.0
        self._chats: dict[int, float] = {}

    async def reserve_chat(self, *, chat_id: int, now: float) -> float:
        at = max(self._chats.get(chat_id, 0.0), now)
        self._chats[chat_id] = at + self.chat_interval
        if len(self._chats) > 50_000:
            self._forget_quiet_chats(now)
        return at

    async def take_slot(self, *, chat_id: int, now: float, horizon: float) -> SlotAnswer:
        busy_until = max(self.next_free_at, self.paused_until)
        if busy_until > now + horizon:
            return SlotAnswer(None, busy_until)
        at = max(busy_until, now)
        self.next_free_at = at + self.interval
        self._chats[chat_id] = max(self._chats.get(chat_id, 0.0), at + self.chat_interval)
        return SlotAnswer(at, busy_until)

    async def pause(self, *, until: float) -> None:
        self.paused_until = max(self.paused_until, until)

    async def release_chat(self, *, chat_id: int, slot: float, now: float) -> None:
        if self._chats.get(chat_id, 0.0) <= slot + self.chat_interval + _SAME:
            self._chats[chat_id] = now

    def _forget_quiet_chats(self, now: float) -> None:
        """Chats whose next moment has passed need no entry: it would never hold them back."""
        self._chats = {chat: at for chat, at in self._chats.items() if at > now}


_RESERVE_CHAT = sa.text(
    "INSERT INTO chat_send (chat_id, next_allowed_at) "
    "VALUES (:chat_id, CAST(:now AS double precision) + :chat_interval) "
    "ON CONFLICT (chat_id) DO UPDATE SET next_allowed_at = "
    "GREATEST(chat_send.next_allowed_at, CAST(:now AS double precision)) + :chat_interval "
    "RETURNING next_allowed_at - :chat_interval"
)
# One statement, one round trip: the slot is granted only when the queue ahead (the budget's next
# free moment, or the pause) ends within the horizon; the chat is held back after it. The second
# select reads the row as it was before this statement: when to ask again if refused.
_TAKE_SLOT = sa.text(
    "WITH granted AS ("
    " UPDATE send_budget SET next_free_at ="
    " GREATEST(next_free_at, paused_until, CAST(:now AS double precision)) + :interval"
    " WHERE id = 1 AND GREATEST(next_free_at, paused_until)"
    " <= CAST(:now AS double precision) + CAST(:horizon AS double precision)"
    " RETURNING next_free_at - :interval AS at"
    "), held AS ("
    " UPDATE chat_send SET next_allowed_at ="
    " GREATEST(next_allowed_at, (SELECT at FROM granted) + :chat_interval)"
    " WHERE chat_id = :chat_id AND EXISTS (SELECT 1 FROM granted)"
    ") SELECT (SELECT at FROM granted),"
    " (SELECT GREATEST(next_free_at, paused_until) FROM send_budget WHERE id = 1)"
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
    """The budget shared by every process on one PostgreSQL (rows send_budget and chat_send),
    each request one statement in autocommit: one round trip."""

    def __init__(self, database: Database, *, interval: float, chat_interval: float) -> None:
        if database.dialect != "postgresql":
            raise ValueError("a shared send budget needs PostgreSQL")
        self.interval = interval
        self.chat_interval = chat_interval
        self._engine = database.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def reserve_chat(self, *, chat_id: int, now: float) -> float:
        async with self._engine.connect() as connection:
            # Taken again once a pooled connection is ours: a moment granted while waiting for
            # one would already be past, and the messages granted after it would go at once.
            now = max(now, time.time())
            result = await connection.execute(
                _RESERVE_CHAT,
                {"chat_id": chat_id, "now": now, "chat_interval": self.chat_interval},
            )
            return float(result.scalar_one())

    async def take_slot(self, *, chat_id: int, now: float, horizon: float) -> SlotAnswer:
        params = {
            "chat_id": chat_id,
            "horizon": min(horizon, NO_LIMIT),
            "interval": self.interval,
            "chat_interval": self.chat_interval,
        }
        async with self._engine.connect() as connection:
            params["now"] = max(now, time.time())  # as in reserve_chat
            row = (await connection.execute(_TAKE_SLOT, params)).one()
        at = None if row[0] is None else float(row[0])
        return SlotAnswer(at, float(row[1]))

    async def pause(self, *, until: float) -> None:
        async with self._engine.connect() as connection:
            await connection.execute(_PAUSE, {"until": until})

    async def release_chat(self, *, chat_id: int, slot: float, now: float) -> None:
        held = slot + self.chat_interval + _SAME
        async with self._engine.connect() as connection:
            await connection.execute(_RELEASE_CHAT, {"chat_id": chat_id, "held": held, "now": now})
