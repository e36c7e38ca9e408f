"""The send limiter on a stalled event loop: a message that wakes up well after its slot takes a
fresh one instead of going out in a bunch with everything else that woke late (the bunches are
what go over Telegram's caps), at most LATE_RESERVATIONS times, so it is never starved.

Time is a fake here (a clock and a sleep that wakes late as told), and so is the budget: one
whose queue ahead is always QUEUE_AHEAD long, as when other processes keep it busy."""

from __future__ import annotations

from typing import Any

import pytest

from bot.send_limiter import CHAT_INTERVAL, LATE_RESERVATIONS, LATE_TOLERANCE, SendLimiter
from storage.send_budget import NO_LIMIT, MemoryBudget, SlotAnswer

QUEUE_AHEAD = 0.3
CHAT = 5


class StalledLoop:
    """A clock and a sleep: each sleep wakes the next of `lateness` seconds after it should
    (then on time), as a loop busy elsewhere does."""

    def __init__(self, lateness: list[float]) -> None:
        self.now = 1_000.0
        self.lateness = list(lateness)

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay + (self.lateness.pop(0) if self.lateness else 0.0)


class BusyBudget:
    """A budget whose every slot is QUEUE_AHEAD after the moment asked, and whose chats are
    free; records the slots granted (with the chat and horizon) and the slots given back."""

    def __init__(self) -> None:
        self.slots: list[float] = []
        self.asked: list[tuple[int, float]] = []
        self.released: list[tuple[int, float]] = []

    async def take_slot(self, *, chat_id: int, now: float, horizon: float) -> SlotAnswer:
        self.asked.append((chat_id, horizon))
        self.slots.append(now + QUEUE_AHEAD)
        return SlotAnswer(now + QUEUE_AHEAD, now + QUEUE_AHEAD)

    async def pause(self, *, until: float) -> None:
        raise AssertionError(f"no 429 here (paused until {until})")

    async def release_chat(self, *, chat_id: int, slot: float, now: float) -> None:
        assert now > slot
        self.released.append((chat_id, slot))


async def _send_one(lateness: list[float]) -> tuple[BusyBudget, list[float]]:
    """Send one message; the slots the budget granted and when the message went."""
    loop = StalledLoop(lateness)
    budget = BusyBudget()
    limiter = SendLimiter(budget, clock=loop.clock, sleep=loop.sleep)
    sent: list[float] = []

    async def callback(*_args: Any, **_kwargs: Any) -> bool:
        sent.append(loop.now)
        return True

    await limiter.process_request(callback, (), {}, "sendMessage", {"chat_id": CHAT}, None)
    return budget, sent


async def test_a_message_waking_on_time_keeps_its_slot() -> None:
    budget, sent = await _send_one([LATE_TOLERANCE / 2])
    assert len(budget.slots) == 1
    assert sent == [budget.slots[0] + LATE_TOLERANCE / 2]


async def test_a_message_waking_late_takes_a_fresh_slot_and_goes_in_it() -> None:
    budget, sent = await _send_one([LATE_TOLERANCE + 0.3, 0.0])
    assert len(budget.slots) == 2
    # Sent in the fresh slot, not in a bunch at the moment it woke.
    assert sent == [budget.slots[1]]
    assert budget.slots[1] > budget.slots[0] + LATE_TOLERANCE + 0.3
    # It gave the abandoned slot's hold on its chat back before asking for a slot again.
    assert budget.released == [(CHAT, budget.slots[0])]
    assert [chat for chat, _ in budget.asked] == [CHAT, CHAT]


async def test_a_message_that_keeps_waking_late_still_goes_after_the_last_fresh_slot() -> None:
    budget, sent = await _send_one([LATE_TOLERANCE + 0.3] * 10)
    assert len(budget.slots) == LATE_RESERVATIONS
    assert len(sent) == 1
    assert len(budget.released) == LATE_RESERVATIONS - 1


async def test_a_chat_given_back_is_free_at_once_unless_a_later_message_took_its_turn() -> None:
    """A late message's chat is free again for it at once; but when another message of the
    chat took its turn after the abandoned slot, the late one goes a chat interval after
    that one (which counted on the abandoned slot going first)."""
    budget = MemoryBudget(interval=0.04, chat_interval=CHAT_INTERVAL)
    first = await budget.take_slot(chat_id=CHAT, now=100.0, horizon=NO_LIMIT)
    assert first.at == 100.0
    await budget.release_chat(chat_id=CHAT, slot=100.0, now=100.5)
    again = await budget.take_slot(chat_id=CHAT, now=100.5, horizon=NO_LIMIT)
    assert again.at == 100.5

    other = 7
    late = await budget.take_slot(chat_id=other, now=200.0, horizon=NO_LIMIT)
    assert late.at is not None
    later = await budget.take_slot(chat_id=other, now=late.at + CHAT_INTERVAL, horizon=NO_LIMIT)
    assert later.at == late.at + CHAT_INTERVAL
    await budget.release_chat(chat_id=other, slot=late.at, now=later.at + 0.1)
    refused = await budget.take_slot(chat_id=other, now=later.at + 0.1, horizon=NO_LIMIT)
    assert refused.at is None
    assert refused.chat_ready == later.at + CHAT_INTERVAL


async def test_two_messages_into_one_chat_are_never_granted_closer_than_a_chat_interval() -> None:
    """The chat is decided with the slot: a second message asking while the first's slot is
    still ahead in a long queue is refused until a chat interval after it, then granted there,
    whatever order the two asked in (the gap that made 429s between two processes)."""
    budget = MemoryBudget(interval=0.04, chat_interval=CHAT_INTERVAL)
    # A long queue ahead (other chats): the first message's slot is 0.8 s away.
    for chat in range(20):
        await budget.take_slot(chat_id=1000 + chat, now=300.0, horizon=NO_LIMIT)
    first = await budget.take_slot(chat_id=CHAT, now=300.0, horizon=NO_LIMIT)
    assert first.at == pytest.approx(300.8)
    refused = await budget.take_slot(chat_id=CHAT, now=300.9, horizon=NO_LIMIT)
    assert refused.at is None
    assert refused.chat_ready == first.at + CHAT_INTERVAL
    second = await budget.take_slot(chat_id=CHAT, now=refused.chat_ready, horizon=NO_LIMIT)
    assert second.at is not None
    assert second.at - first.at >= CHAT_INTERVAL - 1e-9


async def test_the_limiter_waits_for_its_chat_without_holding_up_other_chats() -> None:
    """Refused for its chat, a message sleeps until its chat is ready and then goes; the
    message it waited behind went a chat interval before it."""
    loop = StalledLoop([])
    budget = MemoryBudget(interval=0.04, chat_interval=CHAT_INTERVAL)
    limiter = SendLimiter(budget, clock=loop.clock, sleep=loop.sleep)
    sent: list[float] = []

    async def callback(*_args: Any, **_kwargs: Any) -> bool:
        sent.append(loop.now)
        return True

    for _ in range(2):
        await limiter.process_request(callback, (), {}, "sendMessage", {"chat_id": CHAT}, None)
    assert len(sent) == 2
    assert sent[1] - sent[0] >= CHAT_INTERVAL
