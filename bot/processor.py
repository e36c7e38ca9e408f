"""Concurrent update processing that keeps each chat's updates strictly in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

# PTB's own semaphore is taken before `do_process_update`, so a burst from one chat could hold
# every slot while waiting for that chat's lock and stall everyone else. We keep PTB's limit
# out of the way and bound concurrency ourselves, after the per-chat lock.
_UNBOUNDED = 1_000_000


class _ChatLane:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Chats run concurrently (up to `limit` at once); one chat's updates never overlap."""

    def __init__(self, limit: int) -> None:
        super().__init__(max_concurrent_updates=_UNBOUNDED)
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self._lanes: dict[int, _ChatLane] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Wait for this chat's earlier updates, then for a free slot, then process."""
        key = _chat_key(update)
        if key is None:
            async with self._slots:
                await coroutine
            return
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _ChatLane()
        lane.users += 1
        try:
            async with lane.lock, self._slots:
                await coroutine
        finally:
            lane.users -= 1
            if lane.users == 0:
                # Drop idle lanes so memory does not grow with every chat ever seen.
                del self._lanes[key]

    @property
    def waiting_chats(self) -> int:
        """How many chats have updates in flight or queued."""
        return len(self._lanes)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down."""


def _chat_key(update: object) -> int | None:
    if not isinstance(update, Update):
        return None
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return update.effective_user.id
    return None
