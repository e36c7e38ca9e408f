"""The bot's outgoing rate limiter (a PTB `BaseRateLimiter`): every message into a chat takes a
slot from one send budget (storage.send_budget), in memory for one process or in PostgreSQL
for several, so the bot as a whole stays within Telegram's caps.

Priorities: an answer to a worker in the middle of a conversation is always given a slot; a new
conversation (/start) only while the queue ahead is short (`NEWCOMER_HORIZON`); notifications
and reminders only when nothing waits (spare capacity). The test is made against the shared
queue, so it holds across processes. A 429 pauses the whole budget for `retry_after` and the
call is tried again."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from enum import IntEnum
from typing import Any, Final

from telegram import Update
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from storage.send_budget import NO_LIMIT, SendBudget

log = logging.getLogger(__name__)


class Priority(IntEnum):
    """Who a message is for, first served first (from 1: PTB drops a falsy rate_limit_args)."""

    CONVERSATION = 1
    NEWCOMER = 2
    NOTIFICATION = 3


# How long the queue ahead may be (seconds) for a message of each priority to join it.
NEWCOMER_HORIZON: Final = 0.5
HORIZONS: Final = {
    Priority.CONVERSATION: NO_LIMIT,
    Priority.NEWCOMER: NEWCOMER_HORIZON,
    Priority.NOTIFICATION: 0.0,
}
# Telegram's clock starts when a request arrives, ours when it leaves: the trip in between
# varies (a loaded machine, a stalled receiver: up to a few tenths of a second). Pacing at 93 %
# of the cap (95 % met a 429 in the bench on a loaded machine; 90 % used 88 %) and 1.2 s per
# chat keeps that jitter, and a wake-up up to LATE_TOLERANCE late,
# from making a 429: a chat's messages leave at least 1.15 s apart.
RATE_HEADROOM: Final = 0.93
CHAT_INTERVAL: Final = 1.2
# Waking later than this after its slot, a message takes a fresh one (at most a few times, so a
# message is never starved): late wake-ups are what bunch messages over the caps. At 27 slots a
# second, 0.05 s is at most two slots bunched, within the headroom.
LATE_TOLERANCE: Final = 0.05
LATE_RESERVATIONS: Final = 3
# Methods that put or change a message in a chat: the ones Telegram's caps count.
COUNTED_METHODS: Final = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendVideo",
        "sendAudio",
        "sendVoice",
        "sendSticker",
        "sendLocation",
        "sendContact",
        "sendMediaGroup",
        "copyMessage",
        "forwardMessage",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "editMessageMedia",
    }
)
# Outside any update (jobs: notifications, reminders) a message is a notification.
update_priority: contextvars.ContextVar[Priority] = contextvars.ContextVar(
    "update_priority", default=Priority.NOTIFICATION
)
update_chat: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "update_chat", default=None
)


def mark_update(update: Update) -> None:
    """Note, for the sends this update causes, whose it is: /start opens a conversation, any
    other update continues one. Sends into another chat (a decision reaching a worker while staff
    act) are notifications."""
    chat = update.effective_chat
    update_chat.set(chat.id if chat else None)
    message = update.message
    starting = bool(message and message.text and message.text.startswith("/start"))
    update_priority.set(Priority.NEWCOMER if starting else Priority.CONVERSATION)


def message_priority(chat_id: int, rate_limit_args: int | None) -> Priority:
    """The priority of one message: the caller's, else the update's."""
    if rate_limit_args is not None:
        return Priority(rate_limit_args)
    current = update_chat.get()
    if current is not None and current != chat_id:
        return Priority.NOTIFICATION
    return update_priority.get()


class SendLimiter(BaseRateLimiter[int]):
    """Takes a slot of the budget for every message into a chat; `rate_limit_args` may name a
    `Priority` for one call."""

    def __init__(
        self,
        budget: SendBudget,
        *,
        max_retries: int = 3,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.budget = budget
        self.max_retries = max_retries
        self._clock = clock
        self._sleep = sleep
        # One request per priority asks the budget at a time, first come first served; the
        # others wait here, in this process, without a database round trip each.
        self._turns = {priority: asyncio.Lock() for priority in Priority}
        self.pauses = 0

    async def initialize(self) -> None:
        """Nothing to open: the budget lives in memory or in the bot's database."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        chat_id = data.get("chat_id")
        if endpoint not in COUNTED_METHODS or not isinstance(chat_id, int):
            return await callback(*args, **kwargs)
        priority = message_priority(chat_id, rate_limit_args)
        for attempt in range(self.max_retries + 1):
            await self._wait_for_slot(chat_id, priority)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as error:
                # The timedelta itself, as PTB's AIORateLimiter reads it (the public property
                # warns while PTB still offers ints).
                seconds = error._retry_after.total_seconds()
                log.warning("Telegram asked to wait %.0f s: the bot pauses sending", seconds)
                await self.budget.pause(until=self._clock() + seconds + 0.1)
                self.pauses += 1
                if attempt == self.max_retries:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _wait_for_slot(self, chat_id: int, priority: Priority) -> None:
        for attempt in range(LATE_RESERVATIONS):
            slot = await self._take_slot(chat_id, priority)
            await self._sleep_until(slot)
            # A process that wakes well after its slot (a stalled event loop, a busy machine)
            # would send in a burst with everything else that woke late, over Telegram's caps:
            # it takes a fresh slot instead; the abandoned one only leaves a gap. It gives its
            # chat back too, unless a later message of the chat took its turn meanwhile.
            if self._clock() - slot <= LATE_TOLERANCE or attempt == LATE_RESERVATIONS - 1:
                return
            await self.budget.release_chat(chat_id=chat_id, slot=slot, now=self._clock())

    async def _take_slot(self, chat_id: int, priority: Priority) -> float:
        horizon = HORIZONS[priority]
        while True:
            async with self._turns[priority]:
                while True:
                    now = self._clock()
                    answer = await self.budget.take_slot(chat_id=chat_id, now=now, horizon=horizon)
                    if answer.at is not None:
                        return answer.at
                    if answer.chat_ready is not None:
                        break
                    await self._sleep(max(answer.busy_until - horizon - now, 0.005))
            # The chat's previous message is less than a chat interval before any slot free
            # now: wait outside the turn (other chats go meanwhile) until a slot at the end of
            # the queue would be far enough behind it.
            ahead = max(answer.busy_until - now, 0.0)
            await self._sleep(max(answer.chat_ready - ahead - now, 0.005))

    async def _sleep_until(self, moment: float) -> None:
        delay = moment - self._clock()
        if delay > 0:
            await self._sleep(delay)
