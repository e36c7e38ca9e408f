"""The update queue: updates the emulated people cause, getUpdates long polling and offset
confirmation, replays after a crash, restarted update ids, and waiting until all is quiet."""

from __future__ import annotations

import asyncio
import collections
import copy
import itertools

from emulator.api import MAX_LONG_POLL, ApiError, JSONDict, bad
from emulator.params import opt_float, opt_int
from emulator.state import EmulatorState


class UpdatesMixin(EmulatorState):
    """Creating, queueing and handing out updates, by getUpdates or (see webhooks) by POST."""

    @property
    def pending_updates(self) -> int:
        """Updates not yet confirmed by a getUpdates offset."""
        return len(self._updates)

    def _push_update(self, kind: str, payload: JSONDict) -> JSONDict:
        # The update carries a copy: later edits to the stored message must not rewrite history.
        update = {"update_id": self._next_update_id, kind: copy.deepcopy(payload)}
        self._next_update_id += 1
        self._updates.append(update)
        self._updates_signal.fire()
        self._touch()
        return update

    @property
    def last_update_id(self) -> int:
        """The id of the newest update created so far (0 when none)."""
        return self._next_update_id - 1

    def restart_update_ids(self, next_id: int) -> None:
        """Start the update id sequence again at `next_id`, as Telegram does after a week
        without updates ("chosen randomly instead of sequentially"): usually far below the ids
        the bot has seen. Only with nothing pending, as after such a quiet week."""
        if self._updates:
            raise RuntimeError("update ids restart only when no update is pending")
        if next_id < 1:
            raise ValueError("update ids start at 1")
        self._old_sequence_end = max(self._old_sequence_end, self._next_update_id - 1)
        self._next_update_id = next_id
        # Delivery is tracked per sequence: the new ids are fresh even when they are lower.
        self._delivered_up_to = next_id - 1

    def redeliver(self, *update_ids: int) -> None:
        """Queue already delivered updates again, as Telegram does after a crash before the
        bot confirmed them (same update_id); a bot restarting with offset 0 receives them."""
        by_id = {u["update_id"]: u for u in self._delivered}
        missing = [i for i in update_ids if i not in by_id]
        if missing:
            raise KeyError(f"updates {missing} were never delivered (or are too old)")
        queued = {u["update_id"] for u in self._updates}
        merged = list(self._updates) + [
            copy.deepcopy(by_id[i]) for i in update_ids if i not in queued
        ]
        self._updates = collections.deque(sorted(merged, key=lambda u: int(u["update_id"])))
        self._updates_signal.fire()
        self._touch()

    async def wait_idle(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 - a per-call deadline reads better in tests
        *,
        quiet: float = 0.05,
    ) -> None:
        """Wait until every update was fetched and no call is in flight for `quiet` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"emulator not idle after {timeout}s: {self._in_flight} calls in flight, "
                    f"{len(self._updates)} updates unconfirmed"
                )
            if self._in_flight == 0 and self._all_fetched():
                settled_at = self._activity_count
                await self._activity.wait(min(quiet, remaining))
                if settled_at == self._activity_count and self._in_flight == 0:
                    return
            else:
                await self._activity.wait(remaining)

    def _all_fetched(self) -> bool:
        return not self._updates or self._updates[-1]["update_id"] <= self._delivered_up_to

    def _confirm(self, offset: int) -> None:
        if offset > self._next_update_id and offset <= self._old_sequence_end + 1:
            # An offset from before the ids restarted confirms only what the bot was given.
            offset = self._delivered_up_to + 1
        if offset > 0:
            while self._updates and self._updates[0]["update_id"] < offset:
                self._updates.popleft()
        elif offset < 0:
            while len(self._updates) > -offset:
                self._updates.popleft()

    def _deliverable(self, limit: int) -> list[JSONDict]:
        allowed = self._allowed_updates
        if allowed is not None:
            # Telegram never delivers a type the bot opted out of; dropping matches that.
            kept = [u for u in self._updates if _update_kind(u) in allowed]
            if len(kept) != len(self._updates):
                self._updates = collections.deque(kept)
        return list(itertools.islice(self._updates, limit))

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = opt_int(params, "offset", 0)
        limit = min(max(opt_int(params, "limit", 100), 1), 100)
        timeout = min(max(opt_float(params, "timeout", 0.0), 0.0), MAX_LONG_POLL)
        if "allowed_updates" in params:
            allowed = params["allowed_updates"]
            if not isinstance(allowed, list):
                raise bad("can't parse allowed_updates JSON object")
            self._allowed_updates = frozenset(map(str, allowed)) if allowed else None
        self._confirm(offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            batch = self._deliverable(limit)
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._closing.is_set():
                break
            await self._updates_signal.wait(remaining)
        if batch:
            fresh = [u for u in batch if u["update_id"] > self._delivered_up_to]
            self._delivered.extend(copy.deepcopy(u) for u in fresh)
            self._delivered_up_to = max(self._delivered_up_to, batch[-1]["update_id"])
            self._touch()
        return batch


def _update_kind(update: JSONDict) -> str:
    return next(k for k in update if k != "update_id")
